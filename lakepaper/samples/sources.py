"""Your own samples: sample regions as polygons and labels as rasters (stage 02 on real data).

**Regions** (:func:`read_sample_regions`): any vector file GeoPandas reads (a GeoPackage, a
Shapefile, ...), in any CRS, one polygon per region with

* ``region_id``: unique, usable in a file name (no ``/``, ``\\`` or spaces); absent: ``R0001``,
  ``R0002``, ... in the file's order (a warning says so);
* a region-type column (``type_column``, default ``region_type``; in a Shapefile, whose column
  names are cut at 10 characters, ``region_typ`` is found too) holding NR, AR, BR, IL or SL
  (``params.region_types``).

Each polygon is reprojected to the grid of every composite tile of stage 01
(``01_composite/tiles/*.tif``) and placed on the tile it overlaps most; its window is the pixel
bounding box of the polygon on that tile (clipped to the tile, with a warning). The regions table
then has the columns of the simulated world's ``regions.gpkg``: ``region_id, tile, region_type,
row_off, col_off, height, width, area_km2`` (the polygon's area on the tile), ``crs_tile`` and
the polygon in EPSG:4326. Pixels of the window whose centre lies outside the polygon get the label
``LABEL_NODATA`` (the sample is the polygon: they are left out of training and scoring).

**Label rasters** (:class:`LabelRasters`): ``labels`` is either a folder of one GeoTIFF per region,
``<region_id>.tif``, or one GeoTIFF (a mosaic) covering the regions. Values 1 (lake) and 0 (not
lake); the raster's nodata, and a region's pixels the raster does not cover, are ``LABEL_NODATA``.
A label raster must lie on the composite's grid (same CRS, pixel size and pixel alignment):
resample it there first, the stage does not (labels are not to be interpolated silently).
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from rasterio.errors import RasterioIOError
from rasterio.features import geometry_mask
from rasterio.transform import Affine
from rasterio.windows import Window
from shapely.geometry import box

from lakepaper.errors import InputError

#: Relative tolerance on a label raster's pixel size and pixel alignment against the composite's grid.
GRID_TOLERANCE = 1e-3
_BAD_ID = re.compile(r"[\\/\s]")


def tile_grids(composite_dir: str | os.PathLike[str]) -> dict[str, dict]:
    """tile -> ``{"path", "crs", "transform", "shape"}`` of every composite tile (headers only).

    Raises:
        InputError: no tiles, or a tile that is not a readable GeoTIFF.
    """
    folder = Path(composite_dir) / "tiles"
    paths = sorted(folder.glob("*.tif"))
    if not paths:
        raise InputError(folder, "no composite tiles (*.tif) here: run stage 01 first")
    grids = {}
    for path in paths:
        try:
            with rasterio.open(path) as src:
                grids[path.stem] = {"path": path, "crs": src.crs, "transform": src.transform, "shape": src.shape}
        except RasterioIOError as exc:
            raise InputError(path, f"not a readable GeoTIFF ({exc})") from exc
    return grids


def _type_column(frame: gpd.GeoDataFrame, path: Path, type_column: str) -> str:
    if type_column in frame.columns:
        return type_column
    if path.suffix.lower() == ".shp" and type_column[:10] in frame.columns:  # Shapefile names are cut at 10
        return type_column[:10]
    raise InputError(
        path, f"no region-type column {type_column!r} (columns: {[c for c in frame.columns if c != 'geometry']})"
    )


def _ids(frame: gpd.GeoDataFrame, path: Path) -> list[str]:
    if "region_id" not in frame.columns:
        warnings.warn(f"{path}: no region_id column; regions named R0001... in the file's order", stacklevel=3)
        return [f"R{k + 1:04d}" for k in range(len(frame))]
    ids = []
    for k, v in enumerate(frame.region_id):
        if v is None or (isinstance(v, float) and math.isnan(v)) or str(v).strip() == "":
            raise InputError(path, f"row {k + 1}: empty region_id")
        # a whole number read as float (a Shapefile's numeric column) is written without ".0"
        ids.append(str(int(v)) if isinstance(v, float) and float(v).is_integer() else str(v))
    for v in ids:
        if _BAD_ID.search(v):
            raise InputError(path, f"region {v!r}: a region_id names its chip files; no slashes or spaces")
    seen = set()
    for v in ids:
        if v in seen:
            raise InputError(path, f"region {v}: region_id appears twice")
        seen.add(v)
    return ids


def read_sample_regions(
    path: str | os.PathLike[str],
    composite_dir: str | os.PathLike[str],
    *,
    type_column: str = "region_type",
    region_types: Sequence[str] = ("NR", "AR", "BR", "IL", "SL"),
) -> gpd.GeoDataFrame:
    """Your sample polygons as a regions table on the composite's tiles (see the module docstring).

    Raises:
        InputError: naming the file (and the region): missing or unreadable, no CRS, no type column,
            an unknown type, a duplicate or unusable id, an empty or non-polygon geometry, a region
            that overlaps no composite tile or covers no pixel centre.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "sample regions file not found")
    try:
        frame = gpd.read_file(path)
    except Exception as exc:  # pyogrio's errors vary by driver
        raise InputError(path, f"not a readable vector file ({exc})") from exc
    if frame.empty:
        raise InputError(path, "no sample regions in this file")
    if frame.crs is None:
        raise InputError(path, "sample regions have no CRS; save them with one (any CRS is reprojected)")
    column = _type_column(frame, path, type_column)
    ids = _ids(frame, path)
    types = [str(v).strip() for v in frame[column]]
    for rid, kind in zip(ids, types, strict=True):
        if kind not in region_types:
            raise InputError(
                path, f"region {rid}: type {kind!r} in column {column!r}, expected one of {list(region_types)}"
            )
    for rid, geom in zip(ids, frame.geometry, strict=True):
        if geom is None or geom.is_empty:
            raise InputError(path, f"region {rid}: empty geometry")
        if geom.geom_type not in ("Polygon", "MultiPolygon"):
            raise InputError(path, f"region {rid}: a {geom.geom_type}; sample regions are polygons")
        if not geom.is_valid:
            raise InputError(path, f"region {rid}: invalid polygon; fix it, e.g. make_valid")

    grids = tile_grids(composite_dir)
    # each region on the tile it overlaps most (area in the tile's CRS)
    best: list[tuple[float, str | None]] = [(0.0, None)] * len(frame)
    for tile, g in grids.items():
        t, (h, w) = g["transform"], g["shape"]
        extent = box(*_bounds(t, h, w))
        local = frame.geometry.to_crs(g["crs"])
        for k, geom in enumerate(local):
            a = geom.intersection(extent).area
            if a > best[k][0]:
                best[k] = (a, tile)
    rows = []
    for k, (rid, kind) in enumerate(zip(ids, types, strict=True)):
        tile = best[k][1]
        if tile is None:
            raise InputError(
                path, f"region {rid}: overlaps no composite tile of {Path(composite_dir) / 'tiles'} ({len(grids)})"
            )
        g = grids[tile]
        t, (h, w) = g["transform"], g["shape"]
        geom = gpd.GeoSeries([frame.geometry.iloc[k]], crs=frame.crs).to_crs(g["crs"]).iloc[0]
        inside = geom.intersection(box(*_bounds(t, h, w)))
        if inside.area < geom.area * (1 - 1e-6):
            warnings.warn(f"{path}: region {rid} reaches beyond composite tile {tile}; clipped to it", stacklevel=2)
        c0, r0, c1, r1 = _pixel_box(inside.bounds, t, h, w)
        win_t = t @ Affine.translation(c0, r0)
        if r1 <= r0 or c1 <= c0 or geometry_mask([inside], (r1 - r0, c1 - c0), win_t, invert=True).sum() == 0:
            raise InputError(path, f"region {rid}: covers no pixel centre of composite tile {tile}")
        epsg = g["crs"].to_epsg()
        rows.append(
            {
                "region_id": rid,
                "tile": tile,
                "region_type": kind,
                "row_off": r0,
                "col_off": c0,
                "height": r1 - r0,
                "width": c1 - c0,
                "area_km2": float(inside.area) / 1e6,
                "crs_tile": int(epsg) if epsg is not None else 0,
                "geometry": geom,
            }
        )
    out = gpd.GeoDataFrame(rows, geometry="geometry")
    # polygons back to EPSG:4326, tile by tile (each from its own CRS)
    out["geometry"] = [
        gpd.GeoSeries([r.geometry], crs=grids[r.tile]["crs"]).to_crs(4326).iloc[0] for r in out.itertuples()
    ]
    return out.set_crs(4326, allow_override=True)


def _bounds(t: Affine, h: int, w: int) -> tuple[float, float, float, float]:
    xs, ys = (t.c, t.c + t.a * w), (t.f, t.f + t.e * h)
    return min(xs), min(ys), max(xs), max(ys)


def _pixel_box(bounds, t: Affine, h: int, w: int) -> tuple[int, int, int, int]:
    """(col0, row0, col1, row1) of the pixels whose area meets ``bounds`` (a north-up grid), clipped to the tile."""
    inv = ~t
    cols, rows = zip(*(inv @ (x, y) for x in bounds[0::2] for y in bounds[1::2]), strict=True)
    eps = 1e-2  # a polygon edge within 1/100 pixel of a pixel edge is on it (reprojection round-off)
    c0, c1 = math.floor(min(cols) + eps), math.ceil(max(cols) - eps)
    r0, r1 = math.floor(min(rows) + eps), math.ceil(max(rows) - eps)
    return max(c0, 0), max(r0, 0), min(c1, w), min(r1, h)


def polygon_mask(region, crs, transform: Affine, shape: tuple[int, int]) -> np.ndarray:
    """True where a pixel's centre lies inside the region's polygon (the table's EPSG:4326 outline)."""
    geom = gpd.GeoSeries([region.geometry], crs=4326).to_crs(crs).iloc[0]
    return geometry_mask([geom], shape, transform, invert=True)


class LabelRasters:
    """The label rasters of ``labels``: a folder of ``<region_id>.tif``, or one mosaic GeoTIFF."""

    def __init__(self, source: str | os.PathLike[str]) -> None:
        self.source = Path(source)
        if not self.source.exists():
            raise InputError(self.source, "label rasters not found (a folder of <region_id>.tif, or one GeoTIFF)")

    def path_of(self, region_id: str) -> Path:
        if self.source.is_file():
            return self.source
        for suffix in (".tif", ".tiff", ".TIF", ".TIFF"):
            p = self.source / f"{region_id}{suffix}"
            if p.exists():
                return p
        raise InputError(self.source, f"region {region_id}: no label raster {region_id}.tif in this folder")

    def read(
        self, region_id: str, tile: str, crs, transform: Affine, shape: tuple[int, int]
    ) -> tuple[np.ndarray, np.ndarray]:
        """A region's label on its window of the composite grid: (uint8 0/1, bool observed).

        Raises:
            InputError: naming the raster: unreadable, on another grid than composite tile ``tile``,
                covering none of the region, or holding values other than 0, 1 and its nodata.
        """
        path = self.path_of(region_id)
        try:
            with rasterio.open(path) as src:
                self._check_grid(path, src, region_id, tile, crs, transform)
                col = round((transform.c - src.transform.c) / src.transform.a)
                row = round((transform.f - src.transform.f) / src.transform.e)
                h, w = shape
                c0, r0 = max(col, 0), max(row, 0)
                c1, r1 = min(col + w, src.width), min(row + h, src.height)
                if c1 <= c0 or r1 <= r0:
                    raise InputError(path, f"region {region_id}: this label raster covers none of the region")
                part = src.read(1, window=Window(c0, r0, c1 - c0, r1 - r0))
                nodata = src.nodata
        except RasterioIOError as exc:
            raise InputError(path, f"not a readable GeoTIFF ({exc})") from exc
        values = np.full(shape, np.nan)
        values[r0 - row : r1 - row, c0 - col : c1 - col] = part
        observed = np.isfinite(values)
        if nodata is not None:
            observed &= values != nodata
        bad = np.unique(values[observed & ~np.isin(values, (0, 1))])
        if bad.size:
            raise InputError(
                path, f"region {region_id}: label values {bad[:10].tolist()}; expected 1 (lake), 0 (not lake) or nodata"
            )
        return np.where(observed, values, 0).astype(np.uint8), observed

    @staticmethod
    def _check_grid(path: Path, src, region_id: str, tile: str, crs, transform: Affine) -> None:
        t = src.transform
        problem = None
        if src.crs is None or src.crs != crs:
            problem = f"CRS {src.crs} vs the composite's {crs}"
        elif t.b != 0 or t.d != 0:
            problem = "a rotated grid"
        elif not (
            math.isclose(t.a, transform.a, rel_tol=GRID_TOLERANCE)
            and math.isclose(t.e, transform.e, rel_tol=GRID_TOLERANCE)
        ):
            problem = f"pixel size {t.a:g} x {-t.e:g} vs the composite's {transform.a:g} x {-transform.e:g}"
        else:
            dc, dr = (transform.c - t.c) / t.a, (transform.f - t.f) / t.e
            if abs(dc - round(dc)) > GRID_TOLERANCE or abs(dr - round(dr)) > GRID_TOLERANCE:
                problem = f"pixels shifted by ({dc % 1:.3f}, {dr % 1:.3f}) of a pixel"
        if problem:
            raise InputError(
                path,
                f"region {region_id}: label raster on another grid than composite tile {tile} ({problem}); "
                "resample it onto the composite's grid",
            )
