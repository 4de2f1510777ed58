"""The lake product: one row per lake, in EPSG:4326, as a GeoPackage and a GeoParquet.

Columns (:data:`COLUMNS`)
    ``id``             int64, 1..n in a stable order: by tile, then north to south, then west to east
                       (the same lakes give the same ids)
    ``area_km2``       area on the WGS84 ellipsoid (:func:`lakepaper.stats.geodesic_area_km2`), islands
                       (holes) excluded
    ``perimeter_km``   geodesic length of every ring (shore and island shores), ``pyproj.Geod``
    ``centroid_lon``,  the area centroid, computed in the tile's projected CRS and transformed to
    ``centroid_lat``   degrees; for a crescent-shaped lake it may lie outside the water
    ``source``         what found the lake: ``prediction`` (the U-Net; completion may have enlarged it),
                       ``glakes`` or ``pld`` (added by completion), ``manual`` (added by review)
    ``sources``        every source that contributed area, joined by "+" (e.g. ``prediction+glakes``)
    ``reservoir``      True where the lake intersects OSM / GeoDAR reservoirs, a GeoDAR dam, or is a
                       GLAKES reservoir
    ``river_case``     the river-mask case of Fig. 3 (``a`` kept whole, ``b`` / ``c`` masked) or ""
                       where the river mask did not cut the lake (reservoirs are never cut)
    ``tile``           the prediction tile that holds the lake's representative point
Files
    ``lakes.gpkg`` (layer ``lakes``) through :func:`lakepaper.io.write_vector` (byte-reproducible) and
    ``lakes.parquet`` (GeoParquet 1.x via geopandas), both written atomically. The layer type is
    Polygon, or MultiPolygon when 8-connectivity made lakes whose parts meet at a corner.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Geod

from lakepaper import io
from lakepaper.postprocess.crs import reproject
from lakepaper.postprocess.partitions import Partition
from lakepaper.postprocess.vectorize import polygonal
from lakepaper.stats import geodesic_area_km2

COLUMNS = (
    "id",
    "area_km2",
    "perimeter_km",
    "centroid_lon",
    "centroid_lat",
    "source",
    "sources",
    "reservoir",
    "river_case",
    "tile",
)
SOURCES = ("prediction", "glakes", "pld", "manual")

_GEOD = Geod(ellps="WGS84")


def perimeter_km(geoms4326) -> np.ndarray:
    """Geodesic length (km) of every ring of lon/lat polygons, vectorised over all vertices."""
    geoms = np.asarray(geoms4326, dtype=object)
    out = np.zeros(len(geoms))
    if not len(geoms):
        return out
    parts, part_owner = shapely.get_parts(geoms, return_index=True)
    rings, ring_owner = shapely.get_rings(parts, return_index=True)
    coords, which = shapely.get_coordinates(rings, return_index=True)
    same = which[:-1] == which[1:]
    _, _, dist = _GEOD.inv(coords[:-1, 0][same], coords[:-1, 1][same], coords[1:, 0][same], coords[1:, 1][same])
    per_ring = np.bincount(which[:-1][same], weights=dist, minlength=len(rings))
    return np.bincount(part_owner[ring_owner], weights=per_ring, minlength=len(geoms)) / 1000.0


def empty_product() -> gpd.GeoDataFrame:
    frame = pd.DataFrame(
        {
            "id": pd.Series(dtype="int64"),
            "area_km2": pd.Series(dtype=float),
            "perimeter_km": pd.Series(dtype=float),
            "centroid_lon": pd.Series(dtype=float),
            "centroid_lat": pd.Series(dtype=float),
            "source": pd.Series(dtype=object),
            "sources": pd.Series(dtype=object),
            "reservoir": pd.Series(dtype=bool),
            "river_case": pd.Series(dtype=object),
            "tile": pd.Series(dtype=object),
        }
    )
    return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries([], crs=4326), crs=4326)


#: Parts of a lake smaller than this share of a pixel are slivers of geometry operations, not water.
SLIVER_PX = 0.01


def _clean(geoms: np.ndarray, *, min_area: float, explode: bool) -> tuple[np.ndarray, np.ndarray]:
    """Valid polygonal geometries without slivers; with ``explode`` one row per polygon. Returns (geoms, source row)."""
    geoms = np.asarray(geoms, dtype=object).copy()
    bad = ~shapely.is_valid(geoms)
    if bad.any():
        geoms[bad] = shapely.make_valid(geoms[bad])
    odd = bad | (shapely.get_type_id(geoms) != 3)
    if odd.any():
        geoms[odd] = [polygonal(g, min_area=min_area) for g in geoms[odd]]
    if explode:
        parts, idx = shapely.get_parts(geoms, return_index=True)
        return parts, idx
    return geoms, np.arange(len(geoms))


def _largest_parts(g, share: float = 1e-6):
    """The polygon parts of ``g`` of at least ``share`` of its largest part's area."""
    p = polygonal(g)
    if p.geom_type != "MultiPolygon":
        return p
    areas = shapely.area(shapely.get_parts(p))
    return polygonal(p, min_area=share * areas.max())


def product_frame(parts: Sequence[Partition], *, explode: bool = True) -> gpd.GeoDataFrame:
    """The product table from the final partitions (each in its tile's CRS).

    Geometries are made valid in the tile's CRS and again after the transformation to degrees (which can fold a
    ring at sub-millimetre scale), parts smaller than ``SLIVER_PX`` of a pixel are dropped, and with ``explode``
    (4-connectivity) a lake of several parts becomes one lake per part.
    """
    frames = []
    for p in parts:
        f = p.frame
        if not len(f):
            continue
        native, rows = _clean(f.geometry.values, min_area=SLIVER_PX * p.res * p.res, explode=explode)
        keep = ~shapely.is_empty(native)
        native, rows = native[keep], rows[keep]
        f = f.iloc[rows].reset_index(drop=True)
        g4326 = reproject(native, p.crs, 4326)
        bad = ~shapely.is_valid(g4326)
        if bad.any():  # a fold of a near-duplicate vertex: keep what is not a crumb of it
            g4326[bad] = [_largest_parts(g) for g in shapely.make_valid(g4326[bad])]
        cen = reproject(shapely.centroid(native), p.crs, 4326)
        frames.append(
            gpd.GeoDataFrame(
                {
                    "area_km2": np.round(geodesic_area_km2(g4326), 6),
                    "perimeter_km": np.round(perimeter_km(g4326), 4),
                    "centroid_lon": np.round(shapely.get_x(cen), 7),
                    "centroid_lat": np.round(shapely.get_y(cen), 7),
                    "source": f["source"].to_numpy() if "source" in f else "prediction",
                    "sources": f["sources"].to_numpy() if "sources" in f else "prediction",
                    "reservoir": f["reservoir"].to_numpy(bool) if "reservoir" in f else False,
                    "river_case": f["river_case"].to_numpy() if "river_case" in f else "",
                    "tile": p.name,
                },
                geometry=g4326,
                crs=4326,
            )
        )
    if not frames:
        return empty_product()
    out = pd.concat(frames, ignore_index=True)
    out = out.sort_values(["tile", "centroid_lat", "centroid_lon"], ascending=[True, False, True], kind="stable")
    out.insert(0, "id", np.arange(1, len(out) + 1, dtype=np.int64))
    out = gpd.GeoDataFrame(out.reset_index(drop=True), geometry="geometry", crs=4326)
    return out[[*COLUMNS, "geometry"]]


def by_source(product: gpd.GeoDataFrame) -> pd.DataFrame:
    """Lakes and their area (km2) per ``source`` of the product (what found them)."""
    return product.groupby("source").agg(lakes=("id", "size"), area_km2=("area_km2", "sum"))


def geometry_type(product: gpd.GeoDataFrame) -> str:
    types = set(product.geometry.geom_type) if len(product) else set()
    return "MultiPolygon" if "MultiPolygon" in types else "Polygon"


def write_product(product: gpd.GeoDataFrame, out_dir: str | os.PathLike[str], name: str = "lakes") -> dict[str, Path]:
    """Write ``<name>.gpkg`` and ``<name>.parquet`` atomically; return their paths."""
    out_dir = Path(out_dir)
    gpkg = io.write_vector(product, out_dir / f"{name}.gpkg", geometry_type(product))
    parquet = out_dir / f"{name}.parquet"
    with io.atomic_path(parquet) as tmp:
        product.to_parquet(tmp, index=False)
    return {"gpkg": gpkg, "parquet": parquet}


def read_product(path: str | os.PathLike[str]) -> gpd.GeoDataFrame:
    """A product file (GeoPackage or GeoParquet)."""
    path = Path(path)
    if not path.exists():
        from lakepaper.errors import InputError

        raise InputError(path, "lake product not found: run the 05_postprocess stage first")
    return gpd.read_parquet(path) if path.suffix == ".parquet" else gpd.read_file(path)
