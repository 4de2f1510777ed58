"""Binary lake masks to polygons (:func:`vectorize`), and polygons back to pixels (:func:`burn`).

Vectorising (:func:`vectorize`)
    ``rasterio.features.shapes`` (GDAL's polygonizer) traces each connected region of lake pixels
    into one polygon whose vertices are pixel corners, in the raster's CRS. **Connectivity** is 4 by
    default (:data:`CONNECTIVITY`): pixels that share an edge belong to one lake, pixels that meet
    only at a corner are two lakes, as ArcGIS' *Raster to Polygon* (which the authors used) and
    :mod:`lakepaper.metrics` count them. With ``connectivity=8`` corner neighbours join one lake;
    GDAL then writes rings that touch themselves at a corner, which OGC forbids, so those
    polygons are repaired with ``shapely.make_valid`` into a MultiPolygon (one lake, parts meeting
    at corners) and counted as repaired. **Holes**: dry pixels enclosed by a lake (islands) are
    holes (interior rings), so a lake's area excludes its islands; a hole that meets the shore or
    another hole at a single corner is valid and kept. No data (255) is not lake. The coordinate
    lists GDAL returns are turned into shapely geometries in one call (``from_ragged_array``),
    2-5x faster than one ``shape()`` per polygon.
Back to pixels (:func:`burn`)
    The polygons of any step, from every partition that reaches a tile's core, rasterised onto the
    core's grid at pixel centres: how each step is scored on the prediction's own pixels
    (:mod:`lakepaper.postprocess.evaluate`) and how the product's masks are written.

A tile's core as one partition of polygons is :func:`vectorize_tile`; the tiles and partitions are
:mod:`lakepaper.postprocess.partitions`, lakes across tile borders :mod:`lakepaper.postprocess.seams`.
"""

from __future__ import annotations

from collections.abc import Sequence

import geopandas as gpd
import numpy as np
import shapely
from rasterio import features
from rasterio.transform import Affine

from lakepaper.errors import ParameterError
from lakepaper.postprocess.crs import crs_key, reproject
from lakepaper.postprocess.partitions import NODATA, MaskTile, Partition, read_core

#: Default pixel connectivity of a lake (see the module docstring).
CONNECTIVITY = 4


def check_connectivity(connectivity: int) -> int:
    if connectivity not in (4, 8):
        raise ParameterError("connectivity", f"must be 4 or 8, got {connectivity!r}")
    return connectivity


# --- vectorising -----------------------------------------------------------------------------------


def vectorize(
    values: np.ndarray,
    transform: Affine,
    *,
    mask: np.ndarray | None = None,
    connectivity: int = CONNECTIVITY,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Polygons of the connected regions of equal value where ``mask`` is True.

    Args:
        values: uint8/int16/int32/float32 raster (a binary mask, or lake ids to keep pieces apart).
        transform: the raster's affine transform (coordinates are written in its CRS).
        mask: where to trace (default: ``values != 0``).
        connectivity: 4 or 8.

    Returns:
        (polygons as a shapely array, the value of each, number repaired to be valid).
    """
    check_connectivity(connectivity)
    values = np.asarray(values)
    if values.dtype == bool:
        values = values.astype(np.uint8)
    if values.dtype not in (np.uint8, np.int16, np.uint16, np.int32, np.float32):
        values = values.astype(np.int32)
    if mask is None:
        mask = values != 0
    if not mask.any():
        return np.empty(0, dtype=object), np.empty(0, dtype=values.dtype), 0
    coords: list = []
    ring_offsets = [0]
    poly_offsets = [0]
    vals = []
    for geom, value in features.shapes(values, mask=mask, transform=transform, connectivity=connectivity):
        for ring in geom["coordinates"]:
            coords.extend(ring)
            ring_offsets.append(len(coords))
        poly_offsets.append(len(ring_offsets) - 1)
        vals.append(value)
    geoms = shapely.from_ragged_array(
        shapely.GeometryType.POLYGON,
        np.asarray(coords, dtype=float),
        (np.asarray(ring_offsets, dtype=np.int64), np.asarray(poly_offsets, dtype=np.int64)),
    )
    bad = ~shapely.is_valid(geoms)
    n_bad = int(bad.sum())
    if n_bad:
        geoms[bad] = [_polygonal(g) for g in shapely.make_valid(geoms[bad])]
    return geoms, np.asarray(vals).astype(values.dtype), n_bad


def _polygonal(g):
    """The polygonal part of a repaired geometry (lines and points that make_valid may add are dropped)."""
    return polygonal(g)


def polygonal(g, *, min_area: float = 0.0):
    """The polygon parts of a geometry (collections flattened, lines and points dropped, parts of at most
    ``min_area`` dropped) as a Polygon, a MultiPolygon, or an empty Polygon."""
    parts, todo = [], [g]
    while todo:  # flatten nested collections
        for p in shapely.get_parts(todo.pop()):
            t = shapely.get_type_id(p)
            if t == 3 and p.area > min_area:
                parts.append(p)
            elif t in (6, 7):
                todo.append(p)
    if not parts:
        return shapely.Polygon()
    return parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts)


def vectorize_tile(tile: MaskTile, *, connectivity: int = CONNECTIVITY) -> tuple[Partition, dict]:
    """The lake polygons of one tile's core as a partition (columns ``tile``), and counts."""
    mask = read_core(tile)
    geoms, _, n_bad = vectorize(mask, tile.core_transform, mask=mask == 1, connectivity=connectivity)
    frame = gpd.GeoDataFrame({"tile": np.full(len(geoms), tile.name, dtype=object)}, geometry=geoms, crs=tile.crs)
    info = {
        "tile": tile.name,
        "pixels": int(mask.size),
        "lake_pixels": int((mask == 1).sum()),
        "nodata_pixels": int((mask == NODATA).sum()),
        "polygons": len(geoms),
        "repaired": n_bad,
    }
    return Partition(tile.name, tile.crs, tile.core_polygon(), frame, tile.res), info


# --- back to pixels -------------------------------------------------------------------------------


def burn(
    parts: Sequence[Partition], tile: MaskTile, *, index: bool = False
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """The polygons of every partition that reach a tile's core, burnt onto the core's grid (pixel centres).

    Args:
        index: False: uint8 1 inside a polygon. True: int32 1..n, one number per polygon.

    Returns:
        (raster, the (partition, row) of each number 1..n; empty when ``index`` is False).
    """
    h, w = tile.core_shape
    box = tile.core_polygon()
    dense = shapely.segmentize(box, max(tile.res * 64, 1.0))
    geoms, owners = [], []
    for k, p in enumerate(parts):
        if not len(p.frame):
            continue
        b = box if crs_key(p.crs) == crs_key(tile.crs) else reproject([dense], tile.crs, p.crs)[0]
        idx = np.sort(p.frame.sindex.query(b, predicate="intersects"))
        if not len(idx):
            continue
        geoms.append(reproject(np.asarray(p.frame.geometry.values[idx]), p.crs, tile.crs))
        owners.extend((k, int(r)) for r in idx)
    dtype = np.int32 if index else np.uint8
    if not geoms or h == 0 or w == 0:
        return np.zeros((h, w), dtype), owners if index else []
    g = np.concatenate(geoms)
    values = np.arange(1, len(g) + 1) if index else np.ones(len(g), int)
    raster = features.rasterize(
        zip(g, values.tolist(), strict=True), out_shape=(h, w), transform=tile.core_transform, fill=0, dtype=dtype
    )
    return raster, owners if index else []
