"""Stage 02 over a world: labels for every sample region, the split, and the training set on disk.

For each region (``regions.gpkg`` of stage 00; on real data, your own sample polygons placed on the
composite's tiles by :func:`lakepaper.samples.sources.read_sample_regions`): cut the composite of
stage 01, threshold its NDWI at the region's threshold, apply the region's edits (or read its label
raster, :class:`lakepaper.samples.sources.LabelRasters`), and write the image and label chips
(:mod:`lakepaper.samples.chips`). Then split the regions 60/20/20 by type
(:mod:`lakepaper.samples.split`) and write the regions table.

Where the labels come from:

* given label rasters (``labels``): applied as they are (no threshold, no edits; scored against a
  truth, where there is one, beside NDWI at the default threshold);
* given files (``thresholds``, ``edits``): an analyst's work, applied as they are;
* none given, on the simulated world: the simulated analyst (:mod:`lakepaper.samples.analyst`)
  writes ``thresholds.csv`` and ``edits.gpkg`` into the stage folder first, and the labels are
  then made from *those files*, exactly as from an analyst's.

Where the world has a truth (the simulated one), each region's NDWI-only and edited labels are
scored against it (``label_iou.csv``).

Chips are written into a hidden folder that replaces ``chips/`` only when every region is done,
and the regions table is written last, so a failure leaves the previous result or nothing.
"""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from rasterio.transform import Affine

from lakepaper import io, scoring
from lakepaper.composite.local import read_composite
from lakepaper.errors import InputError, ParameterError
from lakepaper.samples import analyst, labels
from lakepaper.samples.chips import LABEL_NODATA, REGIONS_FILE, write_chip
from lakepaper.samples.sources import LabelRasters, polygon_mask, read_sample_regions
from lakepaper.samples.split import stratified_split
from lakepaper.truth import Truth

#: Share of a region's pixels without a clear observation above which a warning is given (they
#: are filled with the region's median of each band, so the model sees no NaN).
GAP_WARN_SHARE = 0.01
REGION_COLUMNS = ("region_id", "tile", "region_type", "row_off", "col_off", "height", "width", "area_km2")


def _read_regions(path: Path) -> gpd.GeoDataFrame:
    if not path.exists():
        raise InputError(path, "regions file not found")
    regions = gpd.read_file(path)
    missing = set(REGION_COLUMNS) - set(regions.columns)
    if missing:
        raise InputError(path, f"regions lack column(s) {sorted(missing)}")
    return regions


def _fill_gaps(image: np.ndarray, region_id: str) -> np.ndarray:
    gaps = ~np.isfinite(image).all(axis=0)
    if gaps.any():
        share = gaps.mean()
        if share > GAP_WARN_SHARE:
            warnings.warn(
                f"region {region_id}: {share:.1%} of pixels have no clear observation; filled with the median",
                stacklevel=3,
            )
        med = np.nanmedian(image[:, ~gaps], axis=1)
        image = np.where(gaps[None], med[:, None, None], image)
    return image.astype(np.float32)


def build_samples(
    truth: Truth | None,
    composite_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    p: dict[str, Any],
    *,
    regions_path: str | os.PathLike[str] | None = None,
    world_regions: str | os.PathLike[str] | None = None,
    type_column: str = "region_type",
    label_rasters: str | os.PathLike[str] | None = None,
    thresholds: str | os.PathLike[str] | None = None,
    edits: str | os.PathLike[str] | None = None,
    previous_splits: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> dict[str, pd.DataFrame]:
    """Label every region and write the training set into ``out_dir``.

    Args:
        truth: a truth folder (:class:`lakepaper.truth.Truth`, the simulated world's); None: no truth
            (nothing is scored against one, and the simulated analyst cannot label).
        composite_dir: stage 01's folder (``tiles/<tile>.tif``).
        out_dir: the stage folder.
        p: parameters (``ndwi_threshold``, ``split_fractions``, ``sample_seed``, ``region_types``).
        regions_path: your sample polygons (any vector file, any CRS; :mod:`lakepaper.samples.sources`).
        world_regions: the simulated world's ``regions.gpkg`` (already on its tiles, typed), used when
            ``regions_path`` is None.
        type_column: the region-type column of ``regions_path``.
        label_rasters: a folder of ``<region_id>.tif`` label rasters or one mosaic GeoTIFF, on the
            composite's grid; None: labels from ``thresholds`` and ``edits``.
        thresholds: a threshold table (CSV); None with ``edits`` and ``label_rasters`` None: the
            simulated analyst.
        edits: an edit layer; see :mod:`lakepaper.samples.labels`.
        previous_splits: a CSV ``region_id, split`` of an earlier run: those regions keep their set.

    Returns:
        ``regions`` (the table written), ``iou`` (per-region counts against the truth, empty
        without one) and ``skipped`` (regions left out, with the reason).

    Raises:
        InputError: a composite tile missing, a bad threshold table or edit layer (naming the region).
    """
    from tqdm.auto import tqdm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    composite_dir = Path(composite_dir)
    if regions_path:
        regions = read_sample_regions(
            regions_path, composite_dir, type_column=type_column, region_types=tuple(p["region_types"])
        )
    elif world_regions is None:
        raise ParameterError("regions", "no simulated world here: give your sample regions file")
    else:
        regions = _read_regions(Path(world_regions))
    if label_rasters is not None and (thresholds is not None or edits is not None):
        raise ParameterError("labels", "give label rasters or a threshold table and edit layer, not both")
    rasters = LabelRasters(label_rasters) if label_rasters is not None else None
    simulated = thresholds is None and edits is None and rasters is None
    has_truth = truth.has(str(regions.tile.iloc[0])) if truth is not None and len(regions) else False
    if simulated and not has_truth:
        if truth is None:
            raise ParameterError(
                "labels", "no truth here for the simulated analyst: give label rasters, or thresholds and edits files"
            )
        raise InputError(truth.root, "no truth here for the simulated analyst: pass thresholds= and edits= files")

    tiles = {}
    for tile in sorted(regions.tile.unique()):
        path = composite_dir / "tiles" / f"{tile}.tif"
        if not path.exists():
            raise InputError(
                path,
                f"composite of tile {tile} missing (regions {list(regions.region_id[regions.tile == tile][:3])}...)",
            )
        data, count, meta = read_composite(path)
        lakes = io.read_raster(truth.truth_path(tile, "lake_id"))[0][0] > 0 if has_truth else None
        tiles[tile] = (data, count, meta, lakes)

    def window(r) -> tuple:
        return np.s_[r.row_off : r.row_off + r.height, r.col_off : r.col_off + r.width]

    def grid(r) -> tuple[int, Affine]:
        meta = tiles[r.tile][2]
        return meta["crs"], meta["transform"] @ Affine.translation(r.col_off, r.row_off)

    if simulated:  # the demo analyst writes the files a real analyst would
        thresholds, edits = out / "thresholds.csv", out / "edits.gpkg"
        chosen, drawn = {}, []
        for k, r in enumerate(regions.itertuples()):
            data, _, meta, lakes = tiles[r.tile]
            ndwi, t_win = data[meta["band_names"].index("NDWI")][window(r)], lakes[window(r)]
            chosen[r.region_id] = analyst.choose_threshold(ndwi, t_win)
            crs, transform = grid(r)
            rng = np.random.default_rng([int(p["sample_seed"]), 33, k])
            e = analyst.make_edits(labels.initial_label(ndwi, chosen[r.region_id]), t_win, transform, r.region_id, rng)
            drawn.append(e.set_crs(crs).to_crs(4326))
        labels.write_thresholds(thresholds, chosen)
        layer = gpd.GeoDataFrame(pd.concat(drawn, ignore_index=True), geometry="geometry", crs=4326)
        io.write_vector(layer, edits, "Polygon")

    table = labels.read_thresholds(thresholds)
    edit_layer = labels.read_edits(edits)
    unknown = sorted(set(edit_layer.region_id) - set(regions.region_id))
    if unknown:
        raise InputError(edits, f"edits for unknown region(s) {unknown[:5]}")

    staging = out / ".partial"  # chips are written to .partial/chips/, then moved to chips/
    shutil.rmtree(staging, ignore_errors=True)
    rows, scores, skipped = [], [], []
    try:
        for r in tqdm(list(regions.itertuples()), desc="labels", unit="region", disable=not progress):
            data, count, meta, lakes = tiles[r.tile]
            if not (count[window(r)] > 0).any():
                warnings.warn(f"region {r.region_id}: no clear observation in the composite; left out", stacklevel=2)
                skipped.append({"region_id": r.region_id, "reason": "no composite coverage"})
                continue
            crs, transform = grid(r)
            image = data[:, window(r)[0], window(r)[1]]
            ndwi = image[meta["band_names"].index("NDWI")]
            if rasters is None:
                t = float(table.get(r.region_id, p["ndwi_threshold"]))
                first = labels.initial_label(ndwi, t)
                mine = labels.edits_for_region(edit_layer, r.region_id, crs, transform, first.shape, source=edits or "")
                label = labels.apply_edits(first, mine, transform)
            else:  # the label as given: no threshold, no edits
                t, mine = float("nan"), edit_layer.iloc[:0]
                label, labelled = rasters.read(r.region_id, r.tile, crs, transform, ndwi.shape)
                first = labels.initial_label(ndwi, float(p["ndwi_threshold"]))  # scored as "ndwi"
            # never seen clear: the image gets the region's median (the model needs numbers), the label
            # LABEL_NODATA (neither lake nor land: left out of training and scoring); so are pixels
            # outside your polygon or without a label in your raster
            seen = np.isfinite(image).all(axis=0)
            if regions_path:
                seen &= polygon_mask(r, crs, transform, ndwi.shape)
            if rasters is not None:
                seen &= labelled
            if (regions_path or rasters is not None) and not seen.any():
                warnings.warn(f"region {r.region_id}: no labelled pixel seen clear; left out", stacklevel=2)
                skipped.append({"region_id": r.region_id, "reason": "no labelled pixel"})
                continue
            image = _fill_gaps(image, r.region_id)
            image_rel, label_rel = write_chip(
                staging,
                r.region_id,
                image,
                np.where(seen, label, LABEL_NODATA),
                crs=crs,
                transform=transform,
                bands=tuple(meta["band_names"]),
            )
            share = float(label[seen].mean()) if seen.any() else 0.0
            rows.append({"region_id": r.region_id, "threshold": t, "n_edits": len(mine), "lake_share": share})
            rows[-1] |= {"image": image_rel, "label": label_rel}
            if lakes is not None:
                t_win = lakes[window(r)][seen]  # scored where the composite saw the ground
                default = labels.initial_label(ndwi, float(p["ndwi_threshold"]))
                scores.append(
                    {"region_id": r.region_id, "region_type": r.region_type}
                    | {f"default_{k}": v for k, v in labels.iou_counts(default[seen], t_win).items()}
                    | {f"ndwi_{k}": v for k, v in labels.iou_counts(first[seen], t_win).items()}
                    | {f"edited_{k}": v for k, v in labels.iou_counts(label[seen], t_win).items()}
                )
        final = out / "chips"
        shutil.rmtree(final, ignore_errors=True)
        os.replace(staging / "chips", final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    done = regions.merge(pd.DataFrame(rows), on="region_id")
    previous = None
    if previous_splits:
        prev = pd.read_csv(previous_splits, dtype={"region_id": str})
        previous = dict(zip(prev.region_id, prev.split, strict=True))
    done["split"] = stratified_split(done, p["split_fractions"], int(p["sample_seed"]), previous=previous)
    done = gpd.GeoDataFrame(done, geometry="geometry", crs=regions.crs)
    iou = pd.DataFrame(scores)
    if not iou.empty:
        iou = iou.merge(done[["region_id", "split"]], on="region_id")
        io.write_text(out / "label_iou.csv", iou.to_csv(index=False))
    io.write_vector(done, out / REGIONS_FILE, "Polygon")
    return {"regions": done, "iou": iou, "skipped": pd.DataFrame(skipped, columns=["region_id", "reason"])}


#: The labels scored against the truth: NDWI at the default threshold, at the region's chosen one, edited.
LABEL_KINDS = ("default", "ndwi", "edited")


def iou_by_type(iou: pd.DataFrame) -> pd.DataFrame:
    """IoU, precision and recall of each kind of label (``LABEL_KINDS``) per region type and overall.

    Counts pooled over the regions, then scored (:mod:`lakepaper.scoring`: NaN where a denominator is 0).
    """
    rows = {}
    for name, g in scoring.groups(iou, "region_type"):
        row = {"regions": len(g)}
        for kind in LABEL_KINDS:
            s = scoring.scores_of(scoring.sums(g, prefix=f"{kind}_"))
            row |= {f"{kind}_{k}": s[k] for k in ("iou", "precision", "recall")}
        rows[name] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def label_summary(regions: pd.DataFrame) -> pd.DataFrame:
    """The label table without a truth: regions and mean lake share per region type and overall
    (the truth columns of :func:`iou_by_type` are absent, there being nothing to score against)."""
    rows = {
        name: {"regions": len(g), "lake_share": float(g.lake_share.mean()) if len(g) else float("nan")}
        for name, g in scoring.groups(regions, "region_type")
    }
    return pd.DataFrame.from_dict(rows, orient="index")
