"""The tile grid every stage-01 source writes: ``tile_grid.gpkg``, one footprint per composite tile.

Columns ``tile`` and ``path`` (``tiles/<tile>.tif``), polygons in EPSG:4326 (each tile's bounds in its
own CRS, reprojected); stage 05 reads it to know which part of the world each tile owns.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import geopandas as gpd
import pandas as pd
from rasterio.crs import CRS
from shapely.geometry import box

from lakepaper import io


def write_tile_grid(out: Path, tiles: Sequence[tuple[str, CRS | str | int, tuple[float, float, float, float]]]) -> Path:
    """``tile_grid.gpkg``: (tile, CRS, bounds in that CRS) per tile, as the world source writes it."""
    grid = pd.concat(
        [
            gpd.GeoDataFrame({"tile": [t], "path": [f"tiles/{t}.tif"]}, geometry=[box(*b)], crs=crs).to_crs(4326)
            for t, crs, b in tiles
        ],
        ignore_index=True,
    )
    return io.write_vector(gpd.GeoDataFrame(grid, geometry="geometry", crs=4326), out / "tile_grid.gpkg", "Polygon")
