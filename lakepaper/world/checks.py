"""Is the simulated world realistic enough? The measurements the world stage reports and tests assert.

* the real s2cloudless classifier finds the simulated clouds (it was trained on real L1C data, so
  if it does, the simulated spectra are cloud-like and the clear ones are not);
* the lake sizes follow the configured power law;
* NDWI separates water from land in normal regions, and fails where the paper says it does
  (building shadows, glaciers, salt flats, rivers beside lakes);
* per optical water type, where ``NDWI > 0`` and ``MNDWI > 0`` fail (highly turbid water: NDWI <= 0
  while MNDWI stays > 0), so that a model that only learned "NDWI > 0" shows (:mod:`lakepaper.water_types`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage

from lakepaper import scoring
from lakepaper import truth as truth_contract
from lakepaper import water_types as wt
from lakepaper.errors import InputError
from lakepaper.io import read_raster
from lakepaper.world import lakes as lk
from lakepaper.world.files import WorldFiles
from lakepaper.world.scenes import FLAG
from lakepaper.world.spectra import SURFACES
from lakepaper.world.truth import size_cap_km2

_NOT_CLEAR = FLAG["thick_cloud"] | FLAG["thin_cloud"] | FLAG["haze"] | FLAG["shadow"] | FLAG["snow"] | FLAG["water"]


def cloud_scores(world: WorldFiles, *, margin_px: int | None = None) -> pd.DataFrame:
    """Cloud-detection scores of the s2cloudless probability (> 50 %) against the simulated truth.

    Two readings per scene. ``*_10m``: every valid 10 m pixel. ``*_block``: thick-cloud pixels
    and clear-land pixels at least one classifier block (``margin_px``, default the cloud
    factor) from any cloud edge and from any haze or thin cloud: the classifier sees 80 m
    blocks, so a 10 m pixel within one block of a cloud edge shares its block with the cloud,
    and scoring it scores the resampling, not the spectra.

    Returns:
        One row per scene with pixel counts (recall = hits / thick, false positive rate =
        false / clear) and per-surface false-positive counts of clear land.
    """
    cfg = world.info()["config"]
    margin = margin_px or int(cfg["cloud_factor"])
    rows = []
    for scene in world.scenes().itertuples():
        prob, _ = world.read_scene(scene.tile, scene.system_index, "CLDPRB")
        flags, _ = read_raster(world.flags_path(scene.tile, scene.system_index))
        cover, _ = read_raster(world.truth_path(scene.tile, "cover"))
        prob, flags, cover = prob[0], flags[0], cover[0]
        valid = (prob != 255) & ((flags & FLAG["no_data"]) == 0)
        hit = prob > 50
        thick = ((flags & FLAG["thick_cloud"]) > 0) & valid
        clear = ((flags & _NOT_CLEAR) == 0) & valid
        cloudy = (flags & (FLAG["thick_cloud"] | FLAG["thin_cloud"] | FLAG["haze"])) > 0
        thick_in = ndimage.binary_erosion(thick, iterations=margin) if thick.any() else thick
        clear_far = clear & ~ndimage.binary_dilation(cloudy, iterations=margin) if cloudy.any() else clear
        row = {
            "tile": scene.tile,
            "system_index": scene.system_index,
            "thick_10m": int(thick.sum()),
            "hits_10m": int((hit & thick).sum()),
            "clear_10m": int(clear.sum()),
            "false_10m": int((hit & clear).sum()),
            "thick_block": int(thick_in.sum()),
            "hits_block": int((hit & thick_in).sum()),
            "clear_block": int(clear_far.sum()),
            "false_block": int((hit & clear_far).sum()),
        }
        for name, code in SURFACES.items():
            sel = clear_far & (cover == code)
            if sel.any():
                row[f"clear_{name}"] = int(sel.sum())
                row[f"false_{name}"] = int((hit & sel).sum())
        rows.append(row)
    return pd.DataFrame(rows).fillna(0)


def cloud_summary(scores: pd.DataFrame) -> dict[str, float]:
    """Pooled recall on thick cloud and false-positive rate on clear land, both readings."""
    s = scores.sum(numeric_only=True)
    out = {}
    for kind in ("10m", "block"):
        out[f"recall_{kind}"] = scoring.ratio(s[f"hits_{kind}"], s[f"thick_{kind}"])  # NaN without thick cloud
        out[f"fpr_{kind}"] = scoring.ratio(s[f"false_{kind}"], s[f"clear_{kind}"])
    return out


def false_positive_by_surface(scores: pd.DataFrame) -> pd.Series:
    """Share of clear-land pixels (block reading) with probability > 50 %, per surface class."""
    s = scores.sum(numeric_only=True)
    names = [c[len("clear_") :] for c in scores.columns if c.startswith("clear_") and c[6:] in SURFACES]
    return pd.Series({n: s[f"false_{n}"] / s[f"clear_{n}"] for n in names if s[f"clear_{n}"] > 0}).sort_values()


def size_law(world: WorldFiles, *, a_min: float = 0.005) -> dict[str, float]:
    """Fit the power-law exponent back from the written lake table.

    Only lakes drawn from the law (not the designed oxbows, reservoirs, lagoons and anchor
    lakes) and at least ``a_min`` km2 (50 pixels: smaller shapes are dominated by pixelation)
    are fitted, with the truncated-Pareto likelihood up to the largest area the law draws into a
    tile (:func:`lakepaper.world.truth.size_cap_km2`).
    """
    import geopandas as gpd

    cfg = world.info()["config"]
    lakes = gpd.read_parquet(world.lakes_path)
    law = lakes[lakes["from_size_law"]]
    a_max = size_cap_km2(int(cfg["tile_px"]), float(cfg["max_lake_km2"]))
    tau, se, n = lk.fit_exponent(law["area_km2"].to_numpy(), a_min=a_min, a_max=a_max)
    return {
        "configured": float(cfg["size_exponent"]),
        "fitted": tau,
        "stderr": se,
        "n": n,
        "a_min": a_min,
        "a_max": a_max,
    }


#: Truth flags that make an observation not clear-sky (haze is kept: no recipe masks it).
NOT_CLEAR_SKY = truth_contract.NOT_CLEAR_SKY


def clear_means(world: WorldFiles, tile: str, *, swir: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Mean of the truly clear observations of a tile (truth flags, not a cloud mask).

    Args:
        swir: also average B11 (product ``L2A_20m``, band 0), brought to the 10 m grid by repeating
            each 20 m pixel 2 x 2 (nearest neighbour, as the composite resamples it).

    Returns:
        (reflectance (4, rows, cols) of B2 B3 B4 B8, with ``swir`` (5, rows, cols) of B2 B3 B4 B8
        B11, as x10000 floats; mean per-scene NDWI), NaN where a pixel was never seen clear. NDWI is
        averaged per scene, as the paper composites it.
    """
    scenes = world.scenes().query("tile == @tile")
    refl = ndwi_sum = count = None
    for s in scenes.itertuples():
        bands, _ = world.read_scene(tile, s.system_index, "L2A_10m")
        flags, _ = read_raster(world.flags_path(tile, s.system_index))
        bands = bands.astype(np.float32)
        if swir:
            b11 = world.read_scene(tile, s.system_index, "L2A_20m")[0][0].astype(np.float32)
            b11 = np.repeat(np.repeat(b11, 2, axis=0), 2, axis=1)[: bands.shape[1], : bands.shape[2]]
            bands = np.concatenate([bands, b11[None]])
        ok = (flags[0] & NOT_CLEAR_SKY) == 0
        ndwi = np.where(ok, (bands[1] - bands[3]) / np.maximum(bands[1] + bands[3], 1), 0.0)
        if refl is None:
            refl, ndwi_sum, count = np.zeros_like(bands), np.zeros_like(ndwi), np.zeros(ok.shape, np.int32)
        refl += np.where(ok, bands, 0.0)
        ndwi_sum += ndwi
        count += ok
    seen = count > 0
    refl = np.where(seen, refl / np.maximum(count, 1), np.nan).astype(np.float32)
    return refl, np.where(seen, ndwi_sum / np.maximum(count, 1), np.nan).astype(np.float32)


def clear_mean_ndwi(world: WorldFiles, tile: str) -> np.ndarray:
    """Mean NDWI over the truly clear observations of a tile (see :func:`clear_means`)."""
    return clear_means(world, tile)[1]


def ndwi_iou(world: WorldFiles, *, threshold: float = 0.0) -> pd.DataFrame:
    """Counts for "mean clear-sky NDWI > threshold" against the truth, per sample region.

    Two truths: ``water`` (any water flooded at least half of the time: lakes, rivers, sea,
    paddies) asks whether NDWI separates water from land; ``lake`` (the true lakes at their
    typical extent) asks whether NDWI alone would map lakes. Regions carry the paper's region
    type (NR, AR, BR, IL, SL), so the counts pool into the table the notebook shows.
    """
    import geopandas as gpd

    regions = gpd.read_file(world.regions_path)
    rows = []
    for tile, group in regions.groupby("tile"):
        ndwi = clear_mean_ndwi(world, tile)
        lake, _ = read_raster(world.truth_path(tile, "lake_id"))
        occ, _ = read_raster(world.truth_path(tile, "occurrence"))
        pred_all = np.nan_to_num(ndwi, nan=-1.0) > threshold
        for r in group.itertuples():
            win = np.s_[r.row_off : r.row_off + r.height, r.col_off : r.col_off + r.width]
            pred = pred_all[win]
            row = {"region_id": r.region_id, "tile": tile, "region_type": r.region_type}
            for name, truth in (("water", occ[0][win] >= 50), ("lake", lake[0][win] > 0)):
                c = scoring.confusion(truth, pred, nodata=None)
                row |= {f"{name}_{k}": c[k] for k in ("tp", "fp", "fn")}
            rows.append(row)
    return pd.DataFrame(rows)


def iou_table(counts: pd.DataFrame, *, truth: str = "lake", by: str = "region_type") -> pd.DataFrame:
    """Pool the ``<truth>_tp/fp/fn`` counts by a column and add IoU, precision and recall.

    Counts summed per group, then scored (:mod:`lakepaper.scoring`: NaN where a denominator is 0).
    """
    g = scoring.pooled(counts, by, total=False, prefix=f"{truth}_", keys=("tp", "fp", "fn"))
    g.index.name = by
    return g[["tp", "fp", "fn", "iou", "precision", "recall"]]


def index_type_counts(world: WorldFiles, *, margin_px: int = wt.MARGIN_PX) -> pd.DataFrame:
    """Counts of ``NDWI > 0`` and ``MNDWI > 0`` per tile and optical water type against the lakes.

    The indices are those of the truly clear mean of each tile (:func:`clear_means` with B11: the
    ratio of mean reflectances, a perfect cloud mask, so what fails is the index, not the masking);
    the zones and counts are :func:`lakepaper.water_types.zones` and
    :func:`~lakepaper.water_types.type_counts` on the pixels seen clear at least once.

    Raises:
        InputError: a tile of the world has no ``water_type.tif`` (a world made before water types).
    """
    frames = []
    for tile in world.tiles().tile:
        if not world.has(tile, wt.TRUTH_NAME):
            raise InputError(world.truth_path(tile, wt.TRUTH_NAME), "this world has no optical water types")
        refl, _ = clear_means(world, tile, swir=True)
        water = read_raster(world.truth_path(tile, wt.TRUTH_NAME))[0][0]
        lake = read_raster(world.truth_path(tile, "lake_id"))[0][0] > 0
        maps = wt.index_maps(refl[1], refl[3], refl[4])
        seen = ~np.isnan(refl[1])
        counts = wt.type_counts(wt.zones(water, margin_px=margin_px), lake, maps, valid=seen)
        frames.append(counts.assign(tile=tile))
    return pd.concat(frames, ignore_index=True)


def index_iou_by_type(world: WorldFiles, *, margin_px: int = wt.MARGIN_PX) -> pd.DataFrame:
    """IoU of ``NDWI > 0`` and ``MNDWI > 0`` per optical water type, lake pixels pooled over the tiles.

    One row per type present (and ``all``); columns ``lake_px`` (lake pixels of the type) and one
    IoU per index (:func:`index_type_counts` pooled by :func:`lakepaper.water_types.type_table`).
    """
    return wt.type_table(index_type_counts(world, margin_px=margin_px))
