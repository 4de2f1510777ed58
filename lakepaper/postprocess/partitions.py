"""The prediction's tiles on disk and each tile's share of the product (a partition).

Tiles and partitions (:class:`MaskTile`, :class:`Partition`)
    Each tile of the prediction is one partition: its polygons in the tile's own CRS (metres), and
    its *core*, the part of the raster it owns. Where tiles were exported with an overlap (the
    inference margin), the core is the tile's footprint in the tile grid (``tile_grid.gpkg``) and
    pixels outside it are ignored; without a grid the core is the whole raster
    (:func:`mask_tiles`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
import shapely
from pyproj import CRS
from rasterio.transform import Affine
from rasterio.windows import Window

from lakepaper.errors import InputError

#: No-data value of the masks of stage 04.
NODATA = 255


@dataclass
class Partition:
    """One tile's share of the product: its polygons in its own CRS and the core it owns."""

    name: str
    crs: CRS
    core: shapely.Polygon
    frame: gpd.GeoDataFrame
    res: float = 10.0

    def __post_init__(self) -> None:
        if self.frame.geometry.name != "geometry":
            self.frame = self.frame.rename_geometry("geometry")
        self.frame = self.frame.reset_index(drop=True)

    def with_frame(self, frame: gpd.GeoDataFrame) -> Partition:
        return Partition(self.name, self.crs, self.core, frame.reset_index(drop=True), self.res)


@dataclass(frozen=True)
class MaskTile:
    """A tile of the prediction on disk: its mask file, grid and the window it owns (its core)."""

    name: str
    path: Path
    crs: CRS
    transform: Affine
    shape: tuple[int, int]
    core: Window

    @property
    def res(self) -> float:
        return abs(self.transform.a)

    @property
    def core_transform(self) -> Affine:
        return self.transform * Affine.translation(self.core.col_off, self.core.row_off)

    @property
    def core_shape(self) -> tuple[int, int]:
        return int(self.core.height), int(self.core.width)

    @property
    def core_slices(self) -> tuple[slice, slice]:
        """The core as (rows, columns) of the whole raster, to cut it out of or write it into a full-tile array."""
        return (
            slice(self.core.row_off, self.core.row_off + self.core.height),
            slice(self.core.col_off, self.core.col_off + self.core.width),
        )

    def core_polygon(self) -> shapely.Polygon:
        h, w = self.core_shape
        t = self.core_transform
        x0, y0 = t.c, t.f
        x1, y1 = x0 + w * t.a, y0 + h * t.e
        return shapely.box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def mask_tiles(
    prediction_dir: str | os.PathLike[str],
    *,
    tile_grid: gpd.GeoDataFrame | None = None,
    pattern: str = "*_mask.tif",
    tiles: Sequence[str] | None = None,
) -> list[MaskTile]:
    """The mask files of a prediction folder (``<tile>_mask.tif``), sorted by tile name.

    Args:
        prediction_dir: folder with ``<tile>_mask.tif`` (stage 04's ``tiles`` folder).
        tile_grid: optional footprints (any CRS) with a ``tile`` column: each tile's core is its footprint
            on its raster's grid, rounded to whole pixels; tiles not in the grid own their whole raster.
        tiles: only these tiles (default: every mask file).

    Raises:
        InputError: the folder is missing or holds no masks, a requested tile has none, or a mask is not a
            single-band uint8 raster with a CRS.
    """
    folder = Path(prediction_dir)
    if not folder.is_dir():
        raise InputError(folder, "prediction folder not found (stage 04's tiles, or a stand-in)")
    suffix = pattern.lstrip("*")
    files = {p.name[: -len(suffix)]: p for p in sorted(folder.glob(pattern))}
    if tiles is not None:
        missing = [t for t in tiles if t not in files]
        if missing:
            raise InputError(folder, f"no mask for tile(s) {missing}")
        files = {t: files[t] for t in tiles}
    if not files:
        raise InputError(folder, f"no prediction masks ({pattern}) here")
    grid = None
    if tile_grid is not None and len(tile_grid):
        grid = tile_grid.set_index("tile").geometry
    out = []
    for name, path in files.items():
        try:
            with rasterio.open(path) as ds:
                if ds.count != 1 or ds.dtypes[0] != "uint8" or ds.crs is None:
                    raise InputError(path, "a mask must be one uint8 band (1 lake, 0 not, 255 no data) with a CRS")
                crs, transform, shape = CRS.from_user_input(ds.crs.to_wkt()), ds.transform, (ds.height, ds.width)
        except rasterio.errors.RasterioIOError as exc:
            raise InputError(path, f"not a readable GeoTIFF ({exc})") from exc
        window = Window(0, 0, shape[1], shape[0])
        if grid is not None and name in grid.index:
            fp = gpd.GeoSeries([grid.loc[name]], crs=tile_grid.crs).to_crs(crs).iloc[0]
            window = _core_window(fp, transform, shape)
        out.append(MaskTile(name, path, crs, transform, shape, window))
    return out


def _core_window(footprint, transform: Affine, shape: tuple[int, int]) -> Window:
    """The window of whole pixels whose centres lie inside the footprint's bounding box, within the raster."""
    left, bottom, right, top = footprint.bounds
    inv = ~transform
    c0, r0 = inv * (left, top)
    c1, r1 = inv * (right, bottom)
    c0, c1 = sorted((c0, c1))
    r0, r1 = sorted((r0, r1))
    c0, r0 = max(0, round(c0)), max(0, round(r0))
    c1, r1 = min(shape[1], round(c1)), min(shape[0], round(r1))
    if c1 <= c0 or r1 <= r0:
        return Window(0, 0, 0, 0)
    return Window(c0, r0, c1 - c0, r1 - r0)


def read_core(tile: MaskTile) -> np.ndarray:
    """The mask within the tile's core (uint8 1 lake, 0 not, 255 no data)."""
    with rasterio.open(tile.path) as ds:
        return ds.read(1, window=tile.core)
