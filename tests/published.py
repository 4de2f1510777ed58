"""Small reference files in the *published* schemas (column names and types from each dataset's documentation,
cited in :mod:`lakepaper.references`), not the simulated world's: GLAKES, PLD, HydroLAKES, GRWL, GeoDAR dams,
OSM land polygons, Global Aridity Index v3, a GSW occurrence tile.

Used by ``tests/test_references.py`` (at the equator, 15 E) and ``tests/test_real_format.py`` (over a tile).
"""

from __future__ import annotations

import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
import shapely
from rasterio.transform import from_origin

#: Global-AI v3's nodata (int32).
AI_NODATA = -2147483648


def _box(x0, y0, size):
    return shapely.box(x0, y0, x0 + size, y0 + size)


def write_published(
    d: Path,
    *,
    crs: str = "EPSG:32633",
    origin: tuple[float, float] = (500000.0, 0.0),
    size: float = 2000.0,
    ai_origin: tuple[float, float] | None = (14.99, 0.03),
    ai_cells: int = 4,
    ai_value: int = 1500,
    gsw_cells: int = 80,
) -> Path:
    """The files under ``d``, laid out around the square ``origin`` (lower left, in ``crs``) of side ``size`` m.

    Two lakes (GLAKES, PLD, HydroLAKES), one river centre line 200 m below the top (GRWL), one dam, one land
    polygon over the square; an aridity raster (AI x 10000 = ``ai_value``; the corner cell nodata) and a GSW
    occurrence tile (10 %, its west half 255 = no data, untagged) from ``ai_origin`` (west, north; default: the
    square's lon/lat box less 0.01 degrees). The defaults are the square of ``tests/test_references.py``.
    """
    d.mkdir(parents=True, exist_ok=True)
    x0, y0 = origin

    def lonlat(geoms):
        return gpd.GeoSeries(geoms, crs=crs).to_crs(4326).to_numpy()

    if ai_origin is None:
        minx, miny, maxx, maxy = lonlat([_box(x0, y0, size)])[0].bounds
        ai_origin = (minx - 0.01, maxy + 0.01)
    lakes = lonlat([_box(x0 + 100, y0 + 100, 300), _box(x0 + 1000, y0 + 1000, 500)])
    gpd.GeoDataFrame(  # GLAKES (Pi et al., 2022)
        {
            "Lake_id": np.array([1001, 1002], "int64"),
            "Area_PW": [0.08, 0.2],
            "Area_bound": [0.09, 0.25],
            "Lake_type": np.array([1, 2], "int32"),
        },
        geometry=lakes,
        crs=4326,
    ).to_file(d / "glakes.gpkg")
    gpd.GeoDataFrame(  # SWOT PLD: 10-digit lake_id, names, ref_area (km2), ...
        {
            "lake_id": np.array([1120000001, 1120000002], "int64"),
            "names": ["", "Lac"],
            "grand_id": np.array([0, 0], "int32"),
            "ref_area": [0.09, 0.25],
            "ref_wse": [101.2, 99.0],
        },
        geometry=lakes,
        crs=4326,
    ).to_file(d / "pld.gpkg")
    gpd.GeoDataFrame(  # HydroLAKES v1.0
        {
            "Hylak_id": np.array([7, 8], "int32"),
            "Lake_name": ["", "Lac"],
            "Lake_type": np.array([1, 2], "int16"),
            "Lake_area": [0.1, 0.26],
            "Shore_len": [1.2, 2.0],
            "Vol_total": [0.5, 3.1],
        },
        geometry=lakes,
        crs=4326,
    ).to_file(d / "HydroLAKES_polys_v10.shp")
    line = shapely.LineString([(x0, y0 + size - 200), (x0 + size, y0 + size - 200)])
    gpd.GeoDataFrame(  # GRWL v01.01 vector
        {
            "utm_east": [x0 + size / 2],
            "utm_north": [y0 + size - 200],
            "width_m": [120.0],
            "nchannels": np.array([1], "int32"),
            "segmentID": np.array([3], "int32"),
            "segmentInd": np.array([17], "int32"),
            "lakeFlag": np.array([0], "int32"),
            "elev_m": [55.0],
        },
        geometry=lonlat([line]),
        crs=4326,
    ).to_file(d / "grwl.shp")
    dam = lonlat([shapely.Point(x0 + 1250, y0 + 1000)])[0]
    gpd.GeoDataFrame(  # GeoDAR v1.1 dams
        {
            "id_v11": np.array([5], "int32"),
            "id_v10": np.array([5], "int32"),
            "id_grd_v13": np.array([0], "int32"),
            "lat": [round(dam.y, 6)],
            "lon": [round(dam.x, 6)],
            "qa_rank": ["M1"],
            "rv_mcm_v11": [12.5],
        },
        geometry=[dam],
        crs=4326,
    ).to_file(d / "GeoDAR_v11_dams.shp")
    gpd.GeoDataFrame({"FID": [0]}, geometry=lonlat([_box(x0, y0, size)]), crs=4326).to_file(d / "land_polygons.shp")
    # Global-AI v3: int32 AI x 10000, 30 arc-s; one nodata cell
    ai = np.full((ai_cells, ai_cells), ai_value, np.int32)
    ai[0, 0] = AI_NODATA
    with rasterio.open(
        d / "ai_v3_yr.tif", "w", driver="GTiff", width=ai_cells, height=ai_cells, count=1, dtype="int32",
        crs="EPSG:4326", transform=from_origin(*ai_origin, 1 / 120, 1 / 120), nodata=AI_NODATA,
    ) as ds:  # fmt: skip
        ds.write(ai, 1)
    # GSW occurrence tile: uint8 percent, 255 no data, no nodata tag (as the JRC tiles, named by their 10-degree
    # corner: west, north)
    occ = np.full((gsw_cells, gsw_cells), 10, np.uint8)
    occ[:, : gsw_cells // 2] = 255
    west, north = math.floor(ai_origin[0] / 10) * 10, math.ceil(ai_origin[1] / 10) * 10
    name = f"occurrence_{abs(west)}{'E' if west >= 0 else 'W'}_{abs(north)}{'N' if north >= 0 else 'S'}.tif"
    (d / "gsw").mkdir(exist_ok=True)
    with rasterio.open(
        d / "gsw" / name, "w", driver="GTiff", width=gsw_cells, height=gsw_cells, count=1, dtype="uint8",
        crs="EPSG:4326", transform=from_origin(*ai_origin, 0.0005, 0.0005),
    ) as ds:  # fmt: skip
        ds.write(occ, 1)
    return d
