"""The sample regions of stage 02 cut out of per-tile rasters: the one region reader.

Stage 02 writes ``regions.gpkg`` (:func:`lakepaper.samples.chips.read_regions`): one row per
region with its ``tile``, its window on the tile's pixel grid (``row_off``, ``col_off``,
``height``, ``width``), its ``split`` and its ``label`` chip. Stages 04 and 05 write their
per-tile rasters on the same grid (the composite's), so a region's prediction, product or river
residue is that window of the tile's raster. Everything that scores a raster against the labels
cuts the regions out here:

* :func:`by_tile`: the regions of a split, tile by tile (so each tile's raster is read once);
* :func:`cut`: a region's window of a tile array, refused when it is not inside the tile;
* :func:`read_label`: a region's label chip as 0/1 and where it was observed (``LABEL_NODATA``:
  the composite never saw the ground there; such pixels are left out of every score);
* :func:`cut_regions`: region_id -> the window of per-tile files (e.g. stage 05's residue);
* :func:`read_test_regions`: :class:`~lakepaper.metrics.Region` objects (label, prediction with
  the label's unobserved pixels set to no data, pixel area, grid) for :mod:`lakepaper.metrics`;
* :func:`burn`, :func:`read_residue`: polygons burnt into a region's grid; the river mask's residue
  of each region, from rasters or polygons.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from lakepaper import io, scoring
from lakepaper import water_types as wt
from lakepaper.composite.local import read_composite
from lakepaper.errors import InputError
from lakepaper.metrics import Region
from lakepaper.samples.chips import LABEL_NODATA, read_regions
from lakepaper.scoring import NODATA
from lakepaper.truth import Truth

PathLike = str | os.PathLike[str]


def by_tile(samples_dir: PathLike, split: str = "test") -> Iterator[tuple[str, pd.DataFrame]]:
    """(tile, its regions of ``split``) for each tile, tiles sorted, regions in the table's order."""
    regions = read_regions(samples_dir)
    yield from regions[regions.split == split].groupby("tile", sort=True)


def cut(array: np.ndarray, region, source: object) -> np.ndarray:
    """A region's window (``row_off``, ``col_off``, ``height``, ``width``) of a tile's 2-D array.

    Raises:
        InputError: the window is not inside the array (``source`` names the tile's file or name).
    """
    out = array[region.row_off : region.row_off + region.height, region.col_off : region.col_off + region.width]
    if out.shape != (region.height, region.width):
        raise InputError(source, f"region {region.region_id} is not inside the tile")
    return out


def read_label(samples_dir: PathLike, region) -> tuple[np.ndarray, np.ndarray]:
    """A region's label chip: (uint8 1 lake, 0 not; bool observed, False where ``LABEL_NODATA``)."""
    raw = io.read_raster(Path(samples_dir) / region.label)[0][0]
    observed = raw != LABEL_NODATA
    return np.where(observed, raw, 0).astype(np.uint8), observed


def tiles(
    samples_dir: PathLike, raster_dir: PathLike, *, name: str, split: str = "test"
) -> Iterator[tuple[Path, np.ndarray, dict, pd.DataFrame]]:
    """(path, first band, metadata, regions) of each tile's raster ``raster_dir/name`` (``{tile}`` filled in).

    Raises:
        InputError: a tile's raster is missing or unreadable.
    """
    for tile, group in by_tile(samples_dir, split):
        path = Path(raster_dir) / name.format(tile=tile)
        data, meta = io.read_raster(path)
        yield path, data[0], meta, group


def cut_regions(
    samples_dir: PathLike, raster_dir: PathLike, *, split: str = "test", name: str = "{tile}_residue.tif"
) -> dict[str, np.ndarray]:
    """region_id -> the window of each region of ``split`` cut from per-tile rasters on the composite grid.

    E.g. stage 05's ``tiles/<tile>_residue.tif`` (1 where the river mask removed predicted lake) or its
    ``tiles/<tile>_mask.tif`` (the post-processed product).

    Raises:
        InputError: a tile's raster is missing, or a region is not inside it.
    """
    out: dict[str, np.ndarray] = {}
    for path, band, _, group in tiles(samples_dir, raster_dir, name=name, split=split):
        for r in group.itertuples():
            out[r.region_id] = cut(band, r, path)
    return out


def read_test_regions(
    samples_dir: PathLike, mask_dir: PathLike, *, split: str = "test", mask_name: str = "{tile}_mask.tif"
) -> list[Region]:
    """The regions of ``split`` with their labels and the prediction cut from per-tile masks (stage 04 or 05).

    Pixels the label never observed (``LABEL_NODATA``) get the prediction's ``NODATA``, so every score
    leaves them out, and label 0.

    Args:
        samples_dir: ``build/<profile>/02_samples`` (regions.gpkg and the label chips).
        mask_dir: folder of per-tile masks on the composite grid (1 lake, 0 not, 255 no data).
        mask_name: file name pattern of a tile's mask.

    Raises:
        InputError: a tile's mask is missing, or a region is not inside it.
    """
    from rasterio.windows import Window
    from rasterio.windows import transform as window_transform

    out = []
    for path, mask, meta, group in tiles(samples_dir, mask_dir, name=mask_name, split=split):
        t = meta["transform"]
        res = abs(t.a * t.e) / 1e6
        for r in group.itertuples():
            label, observed = read_label(samples_dir, r)
            pred = np.where(observed, cut(mask, r, path), NODATA).astype(np.uint8)
            grid = window_transform(Window(r.col_off, r.row_off, r.width, r.height), t)
            out.append(Region(r.region_id, r.region_type, label, pred, res, meta["crs"], grid))
    return out


def burn(polygons, region: Region, *, values: str | None = None) -> np.ndarray:
    """Polygons (any CRS) burnt into a region's grid (pixel centres): bool mask, or ``values`` column ids (0 none).

    E.g. the polygons the river mask removed (stage 05) as a region's river-residue mask, or the
    product's lake polygons as ``pred_ids`` for :func:`lakepaper.metrics.lake_overlap`.

    Raises:
        InputError: the region has no grid (``crs``/``transform``), or the polygons have no CRS.
    """
    from rasterio import features

    if region.crs is None or region.transform is None:
        raise InputError(region.region_id, "region has no grid (crs, transform): read it with read_test_regions")
    if polygons.crs is None:
        raise InputError("polygons", "no CRS")
    shape = np.shape(region.label)
    g = polygons.to_crs(region.crs)
    left, top = region.transform.c, region.transform.f
    right, bottom = region.transform @ (shape[1], shape[0])
    g = g.cx[min(left, right) : max(left, right), min(top, bottom) : max(top, bottom)]
    dtype = np.int32 if values else np.uint8
    if not len(g):
        return np.zeros(shape, dtype if values else bool)
    vals = g[values].to_numpy() if values else np.ones(len(g), dtype)
    burnt = features.rasterize(
        zip(g.geometry, vals, strict=True), out_shape=shape, transform=region.transform, fill=0, dtype=dtype
    )
    return burnt if values else burnt.astype(bool)


def read_residue(residue: PathLike, samples_dir: PathLike, regions: Iterable[Region]) -> dict[str, np.ndarray]:
    """region_id -> boolean mask of the pixels the river mask removed, for each test region.

    Args:
        residue: a folder of per-tile rasters ``<tile>_residue.tif`` on the composite grid (1 = removed,
            stage 05's ``tiles/``), or a vector file of the removed polygons (any CRS).
        samples_dir: stage 02's folder (the regions' windows, for rasters).
        regions: the test regions with their grids (:func:`read_test_regions`, for polygons).

    Raises:
        InputError: a raster or the vector file is missing, or a region is not inside its tile.
    """
    if Path(residue).is_dir():  # rasters on the composite grid, 1 = removed by the river mask
        return {k: v == 1 for k, v in cut_regions(samples_dir, residue, name="{tile}_residue.tif").items()}
    if not Path(residue).exists():
        raise InputError(residue, "river-mask residue: no such folder or file")
    import geopandas as gpd

    removed = gpd.read_file(residue)  # polygons of removed water, any CRS
    return {r.region_id: burn(removed, r) for r in regions}


def held_out(shape: tuple[int, int], regions: pd.DataFrame, *, splits: Iterable[str] = wt.SEEN_SPLITS) -> np.ndarray:
    """True on a tile's pixels outside every region window of ``splits`` (the model never saw them).

    Args:
        shape: the tile's (rows, cols).
        regions: the tile's rows of stage 02's ``regions.gpkg`` (``row_off``, ``col_off``,
            ``height``, ``width``, ``split``); windows are clipped to the tile.
        splits: the splits a model trained or was selected on (default ``train`` and ``val``).
    """
    out = np.ones(shape, bool)
    seen = regions[regions["split"].isin(list(splits))] if len(regions) else regions
    for r in seen.itertuples():
        out[max(r.row_off, 0) : r.row_off + r.height, max(r.col_off, 0) : r.col_off + r.width] = False
    return out


def water_type_counts(
    truth: Truth | str | os.PathLike[str],
    composite_dir: str | os.PathLike[str],
    samples_dir: str | os.PathLike[str],
    mask_dir: str | os.PathLike[str] | None = None,
    *,
    margin_px: int = wt.MARGIN_PX,
) -> pd.DataFrame:
    """Counts per tile, optical water type and method of a whole run, on held-out pixels.

    :func:`lakepaper.water_types.type_counts` per tile.

    Every tile of stage 01's composites (``composite_dir/tiles/<tile>.tif``) is scored against the
    truth's ``water_type`` and ``lake_id`` rasters. Counted pixels are those outside stage 02's
    training and validation regions (``samples_dir/regions.gpkg``, :func:`held_out`) that the
    composite observed at least once and, with ``mask_dir``, that stage 04 predicted (its
    ``<tile>_mask.tif``: 1 lake, 0 not, 255 no data): every method is scored on the same pixels.

    Args:
        truth: a truth folder (:class:`lakepaper.truth.Truth`) with ``water_type.tif`` per tile.
        composite_dir: stage 01's folder.
        samples_dir: stage 02's folder.
        mask_dir: stage 04's ``tiles`` folder; None: only the two indices.
        margin_px: the zones' margin (:func:`lakepaper.water_types.zones`).

    Returns:
        :func:`lakepaper.water_types.type_counts`' rows with leading ``tile`` and ``scope`` columns, for
        each of :data:`lakepaper.water_types.SCOPES` (``lakes``: the zones of lake water alone, at the truth's
        ``lake_id_max`` where it has one, else ``lake_id``); methods ``NDWI > 0``, ``MNDWI > 0`` and (with
        ``mask_dir``) ``model``.

    Raises:
        InputError: no composite, a tile without truth water types or prediction, or grids that differ.
    """
    truth = truth if isinstance(truth, Truth) else Truth(truth)
    paths = sorted((Path(composite_dir) / "tiles").glob("*.tif"))
    if not paths:
        raise InputError(Path(composite_dir) / "tiles", "no composite tiles (<tile>.tif) here: run 01_composite first")
    regions = read_regions(samples_dir)
    frames = []
    for path in paths:
        tile = path.stem
        if not truth.has(tile, wt.TRUTH_NAME):
            raise InputError(truth.truth_path(tile, wt.TRUTH_NAME), f"the truth has no water types of tile {tile}")
        bands, count, meta = read_composite(path)
        water = io.read_raster(truth.truth_path(tile, wt.TRUTH_NAME))[0][0]
        lake = io.read_raster(truth.truth_path(tile, "lake_id"))[0][0] > 0
        extent = (
            io.read_raster(truth.truth_path(tile, "lake_id_max"))[0][0] > 0 if truth.has(tile, "lake_id_max") else lake
        )
        scoring.check_pair(water, count, name=f"{tile}: water types/composite")
        scoring.check_pair(water, lake, name=f"{tile}: water types/lake_id")
        scoring.check_pair(water, extent, name=f"{tile}: water types/lake_id_max")
        maps = wt.composite_index_maps(bands, meta["band_names"], source=path)
        valid = held_out(water.shape, regions[regions["tile"] == tile]) & (count > 0)
        if mask_dir is not None:
            mask_path = Path(mask_dir) / f"{tile}_mask.tif"
            if not mask_path.exists():
                raise InputError(mask_path, f"no prediction of tile {tile}")
            pred = io.read_raster(mask_path)[0][0]
            scoring.check_pair(water, pred, name=f"{tile}: water types/prediction")
            maps["model"] = pred == 1
            valid &= pred != scoring.NODATA
        for scope in wt.SCOPES:
            zone, counted = wt.scope_zones(water, extent, scope, margin_px=margin_px)
            counts = wt.type_counts(zone, lake, maps, valid=valid & counted)
            frames.append(counts.assign(tile=tile, scope=scope))
    out = pd.concat(frames, ignore_index=True)
    return out[["tile", "scope", *(c for c in out.columns if c not in ("tile", "scope"))]]
