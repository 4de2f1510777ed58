"""Stage 01's imagery sources: where the composites come from (issue 17, item 2).

Every source writes the same contract into the stage folder:

* ``tiles/<tile>.tif``: int16, bands ``composite_bands`` (B2 B3 B4 B11 NDWI, described by name)
  x ``composite_scale`` (tag ``SCALE``), then ``clear_count`` (unscaled); nodata ``-32768``;
  tags ``SCALE``, ``BANDS``, ``COUNT_BAND``, ``TILE``, ``SOURCE``;
* ``tile_grid.gpkg``: one polygon per tile in EPSG:4326, columns ``tile`` and ``path``
  (``tiles/<tile>.tif``).

Sources (the notebook parameter ``source``):

``world``
    The simulated world's own files (:func:`lakepaper.composite.stage.composite_world`), the demo.
``stac``
    A STAC catalog (``stac``: a static ``catalog.json`` or its folder, or an API URL such as
    ``https://earth-search.aws.element84.com/v1``) and an ``area``:

    * ``[minx, miny, maxx, maxy]``: a bounding box in longitude / latitude (EPSG:4326);
    * a path to a GeoPackage / Shapefile / GeoJSON of polygons (any CRS): each polygon's bounds;
    * a list of tile names, e.g. ``["14VNK", "33TWM"]`` (MGRS) or ``["T07"]`` (a world tile).

    Output tiles: one per given tile name; for a box or polygons, one per MGRS square
    (``s2:mgrs_tile`` / ``grid:code``) that the area touches, the **whole** square on its items'
    own UTM grid (cropping a square to the area is a later step). The recipe and kernel are the
    local backend's (:mod:`lakepaper.composite.local`), block by block with the same halo and
    batches, so memory is bounded by the block and batch, not by the tile or the scene count. The
    cloud probability is the item's ``s2cloudless`` asset when every item of the tile has one
    (the world's catalog does); otherwise the cloud mask comes from **SCL only** (classes 8, 9
    and 10: medium and high cloud probability, thin cirrus), which the manifest says per tile.
    Computing s2cloudless from the L1C assets is a later step (issue 17, item 1).
``cogs``
    A folder of composites made elsewhere (``cogs``, one ``<tile>.tif`` per tile) and their tile
    grid (``tile_grid``: a GeoPackage with a ``tile`` column, one polygon per tile, any CRS).
    Each file is checked: bands described, in the model's order ``composite_bands`` (a sixth
    band ``clear_count`` may follow); integer data with a ``SCALE`` tag (value / SCALE =
    reflectance or NDWI) and a nodata value, or float reflectance (NaN or nodata); a CRS, the
    grid's own when the grid is projected; its footprint that of its grid tile. It is then
    rewritten into the contract (no ``clear_count``: 1 where observed, and ``COUNT_KNOWN=0``).
``gee``
    The Earth Engine backend: not a source of this stage yet (issue 18).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
from rasterio.crs import CRS
from rasterio.errors import RasterioIOError
from rasterio.transform import Affine
from rasterio.windows import Window
from shapely.geometry import box

from lakepaper import io
from lakepaper.composite import stac as reader
from lakepaper.composite.grid import write_tile_grid
from lakepaper.composite.local import (
    _ALIGN,
    COUNT_BAND,
    NODATA,
    _BlockRun,
    _check_params,
    default_block_rows,
    halo_rows,
)
from lakepaper.errors import InputError, ParameterError

SOURCES = ("world", "stac", "cogs", "gee")
#: The stage's own parameters that belong to each source (the others are not recorded).
SOURCE_ARGS = {"world": (), "stac": ("stac", "area"), "cogs": ("cogs", "tile_grid"), "gee": ()}
#: SCL classes taken as cloud when a catalog has no s2cloudless asset.
SCL_CLOUD = (8, 9, 10)
#: L2A bands the recipe reads: B2 B3 B4 B8 (10 m), B11 (20 m), SCL (20 m).
_REFLECTANCE = ("B2", "B3", "B4", "B8", "B11")
#: Rows of one odc-stac chunk (a block read touches only the chunks of its rows).
_CHUNK = 512
#: DN per unit reflectance of the kernel's input.
_DN = 10000.0


def check_source(source: str) -> str:
    """The source name, or a ParameterError naming the choices (``gee``: the Earth Engine issue)."""
    if source == "gee":
        raise ParameterError(
            "source",
            "'gee' (the Earth Engine backend) is not a stage-01 source yet: see issue 18, 'Earth Engine at global "
            "scale'; export its composites and use source='cogs' meanwhile",
        )
    if source not in SOURCES:
        raise ParameterError("source", f"unknown source {source!r}; choose one of world, stac, cogs")
    return source


def clear_outputs(out: Path) -> Path:
    """Remove what an earlier run of the stage (of any source) left: tiles, tile grid, figures."""
    import shutil

    for folder in ("tiles", "figures"):
        if (out / folder).is_dir():
            shutil.rmtree(out / folder)
    (out / "tile_grid.gpkg").unlink(missing_ok=True)
    return out


def _tags(p: dict[str, Any], tile: str, source: str, **more: Any) -> dict[str, Any]:
    return {
        "SCALE": p["composite_scale"],
        "BANDS": ",".join(p["composite_bands"]),
        "COUNT_BAND": COUNT_BAND,
        "TILE": tile,
        "SOURCE": source,
        **more,
    }


# --- stac ------------------------------------------------------------------------------------------


def parse_area(area: Any) -> tuple[str, list]:
    """``("bbox", [Area])``, ``("polygons", [Area, ...])`` or ``("tiles", [Area, ...])`` from the parameter.

    Raises:
        ParameterError: none of the three forms.
    """
    if isinstance(area, list | tuple) and len(area) == 4 and all(isinstance(v, int | float) for v in area):
        return "bbox", [reader.Area(bbox=tuple(float(v) for v in area), crs="EPSG:4326")]
    if isinstance(area, list | tuple) and area and all(isinstance(v, str) for v in area):
        return "tiles", [reader.Area(tile=v) for v in area]
    if isinstance(area, str | os.PathLike) and str(area):
        path = Path(area)
        if not path.exists():
            raise ParameterError("area", f"no such file {path} (a GeoPackage of areas)")
        try:
            shapes = gpd.read_file(path)
        except Exception as exc:  # pyogrio's errors vary by driver
            raise InputError(path, f"not a readable vector file ({exc})") from exc
        if shapes.crs is None or shapes.empty:
            raise InputError(path, "no CRS or no polygon: the areas are unknown")
        return "polygons", [
            reader.Area(bbox=tuple(g.bounds), crs="EPSG:4326") for g in shapes.to_crs(4326).geometry if g is not None
        ]
    raise ParameterError(
        "area",
        f"expected [minx, miny, maxx, maxy] in lon/lat, a GeoPackage of areas, or a list of tile names; got {area!r}",
    )


def _mgrs(item) -> str:
    p = item.properties
    code = p.get("s2:mgrs_tile") or str(p.get("grid:code", "")).removeprefix("MGRS-")
    if not code:
        raise InputError(item.get_self_href() or item.id, "no s2:mgrs_tile or grid:code: its MGRS square is unknown")
    return str(code)


def find_tiles(stac: str, area: Any, p: dict[str, Any]) -> dict[str, list]:
    """Output tile name -> its items (date range and scene cloud limit of ``p``), in name order.

    Raises:
        InputError: the source has nothing over the area, or a given tile has no item.
    """
    kind, areas = parse_area(area)
    kw = {
        "start_date": p["start_date"],
        "end_date": p["end_date"],
        "max_scene_cloud_pct": p["max_scene_cloud_pct"],
    }
    tiles: dict[str, dict[str, Any]] = {}
    for a in areas:
        items = reader.find_items(stac, a, **kw)
        if kind == "tiles":
            if not items:
                raise InputError(
                    stac, f"no sentinel-2-l2a item of tile {a.tile} between the dates under the cloud limit"
                )
            tiles.setdefault(a.tile, {}).update({it.id: it for it in items})
        else:
            for it in items:
                tiles.setdefault(_mgrs(it), {})[it.id] = it
    if not tiles:
        raise InputError(stac, f"no sentinel-2-l2a item over the area {area!r} between the dates under the cloud limit")
    return {t: sorted(v.values(), key=lambda it: (it.datetime, it.id)) for t, v in sorted(tiles.items())}


class _StacRun(_BlockRun):
    """The local backend's block run, reading each scene's block from STAC (odc-stac) instead of files."""

    def __init__(self, ds, cloud_from_scl: bool, *args: Any) -> None:
        super().__init__(*args)
        self.ds, self.cloud_from_scl = ds, cloud_from_scl

    def check(self, *args: Any) -> None:  # the reader checked the items' assets
        return None

    def _load(self, k: int, j: int, i: int, r0: int, r1: int, _free: Any) -> None:
        from lakepaper.composite.masks import PROB_NODATA, scene_mask

        h0, h1 = self._window(r0, r1)
        block = self.ds.isel(time=i, y=slice(h0, h1)).compute(scheduler="synchronous")
        stack, clear = self._views(k, r0, r1)
        for b, name in enumerate(_REFLECTANCE):
            stack[j, b] = to_dn(block[name].values)
        scl = np.asarray(block["scl"].values)
        if self.cloud_from_scl:
            prob = np.where(np.isin(scl, SCL_CLOUD), 100, 0).astype(np.uint8)
            prob[scl == 0] = PROB_NODATA
        else:
            prob = np.asarray(block["s2cloudless"].values, np.uint8)
        azimuth = float(self.ds.sun_azimuth.values[i])
        mask = scene_mask(
            stack[j, :4], stack[j, 4], scl[::2, ::2], prob, azimuth_deg=azimuth, p=self.p, resolution_m=self.res
        )
        clear[j] = mask.clear


def to_dn(reflectance: np.ndarray) -> np.ndarray:
    """Reflectance (NaN no data) as the kernel's uint16 x 10000, 0 no data; valid pixels at least 1.

    Exact for DNs read from a product: ``rint((DN x 1e-4 + offset) x 1e4)`` is ``DN + offset x 1e4``.
    A reflectance <= 0 (dark water after the -0.1 offset) becomes 1, not 0, so it stays an observation.
    """
    r = np.asarray(reflectance, np.float32)
    ok = np.isfinite(r)
    dn = np.clip(np.rint(np.where(ok, r, 0) * np.float32(_DN)), 1, 65535).astype(np.uint16)
    dn[~ok] = 0
    return dn


def composite_stac_tile(
    tile: str,
    items: list,
    out_path: Path,
    p: dict[str, Any],
    *,
    batch: int = 8,
    block_rows: int | None = None,
    num_workers: int | None = None,
) -> dict:
    """Composite one tile's STAC items with the local backend's recipe and kernel; write its GeoTIFF.

    Raises:
        InputError: the items lack a band, lie on different grids, or the grid has an odd size.
    """
    started = time.perf_counter()
    bands = _check_params(p)
    workers = num_workers or os.cpu_count() or 1
    res = float(p.get("resolution_m", 10.0))
    geobox = reader.tile_geobox(items, reader.Area(tile=tile), res)  # the items' own grid
    shape = tuple(int(v) for v in geobox.shape)
    if shape[0] % 2 or shape[1] % 2:
        raise InputError(tile, f"the tile's grid has an odd size {shape}: its 20 m bands cannot cover it")
    cloud_from_scl = not all("s2cloudless" in it.assets for it in items)
    names = [*_REFLECTANCE, "scl", *([] if cloud_from_scl else ["s2cloudless"])]
    ds = reader.load(items, names, geobox, chunks=_CHUNK)
    halo = halo_rows(p, res)
    if block_rows is None:
        block_rows = default_block_rows(shape, batch, halo)
    block_rows = max(_ALIGN, block_rows // _ALIGN * _ALIGN)
    out = np.full((len(bands) + 1, *shape), NODATA, np.int16)
    scenes = list(range(len(items)))
    run = _StacRun(
        ds, cloud_from_scl, scenes, shape, halo, min(block_rows, shape[0]), batch, workers, out, bands, p, res
    )
    import dask.threaded

    graph, finals = run.graph()
    results = dask.threaded.get(graph, finals, num_workers=workers)
    seen = sum(a for a, _ in results)
    counted = sum(b for _, b in results)
    cloud_mask = "SCL only (classes 8, 9, 10)" if cloud_from_scl else "s2cloudless > cloud_prob_threshold"
    tags = _tags(
        p,
        tile,
        "stac",
        N_SCENES=len(items),
        START_DATE=p["start_date"],
        END_DATE=p["end_date"],
        CLOUD_MASK=cloud_mask,
        RECIPE="lakepaper stac: cloud {m}, dark NIR<{nir_dark_threshold} x projection {cloud_proj_dist_km} km, "
        "buffer {cloud_buffer_m} m, SCL {scl_snow_class} removed".format(m=cloud_mask, **p),
    )
    crs = CRS.from_user_input(str(geobox.crs))
    transform = Affine(*tuple(geobox.transform)[:6])
    io.write_raster(
        out_path, out, crs=crs, transform=transform, nodata=NODATA, band_names=[*bands, COUNT_BAND], tags=tags
    )
    pixels = shape[0] * shape[1]
    return {
        "tile": tile,
        "path": str(out_path),
        "scenes_in_range": len(items),
        "n_scenes": len(items),
        "clear_share": seen / pixels,
        "mean_count": counted / pixels,
        "cloud_mask": "SCL only" if cloud_from_scl else "s2cloudless",
        "seconds": round(time.perf_counter() - started, 3),
        "_grid": (tile, crs, tuple(geobox.boundingbox)),
    }


def composite_stac(stac: str, area: Any, out_dir: Path, p: dict[str, Any], *, progress: bool = True) -> pd.DataFrame:
    """Composite every tile of ``area`` from the STAC source into ``out_dir``; the summary, one row per tile."""
    from tqdm.auto import tqdm

    if not str(stac):
        raise ParameterError("stac", "source='stac' needs a catalog path or STAC API URL in the parameter 'stac'")
    if area is None or area == "" or area == []:
        raise ParameterError("area", "source='stac' needs an area: [minx, miny, maxx, maxy], a GeoPackage or tiles")
    tiles = find_tiles(str(stac), area, p)
    rows = [
        composite_stac_tile(t, items, out_dir / "tiles" / f"{t}.tif", p)
        for t, items in tqdm(tiles.items(), desc="composites", unit="tile", disable=not progress)
    ]
    write_tile_grid(out_dir, [r.pop("_grid") for r in rows])
    summary = pd.DataFrame(rows)
    summary["path"] = summary["path"].map(lambda s: str(Path(s).relative_to(out_dir)))
    return summary


# --- cogs ------------------------------------------------------------------------------------------


def read_user_grid(path: str | os.PathLike[str]) -> gpd.GeoDataFrame:
    """The user's tile grid: polygons with a ``tile`` column, a CRS."""
    path = Path(path)
    if not str(path) or not path.exists():
        raise ParameterError(
            "tile_grid", f"source='cogs' needs the composites' tile grid (a GeoPackage); not found: {path}"
        )
    try:
        grid = gpd.read_file(path)
    except Exception as exc:  # pyogrio's errors vary by driver
        raise InputError(path, f"not a readable vector file ({exc})") from exc
    if "tile" not in grid.columns:
        raise InputError(path, f"no 'tile' column (columns: {list(grid.columns)})")
    if grid.crs is None:
        raise InputError(path, "no CRS")
    if grid.tile.duplicated().any():
        raise InputError(path, f"tiles listed twice: {sorted(set(grid.tile[grid.tile.duplicated()]))}")
    return grid


def check_cog(path: Path, bands: Sequence[str], grid_crs: CRS, footprint) -> dict[str, Any]:
    """Check one user composite against the contract; what is needed to rewrite it.

    Raises:
        InputError: naming the file and what is wrong (bands, scale, nodata, CRS, footprint).
    """
    try:
        src = rasterio.open(path)
    except RasterioIOError as exc:
        raise InputError(path, f"not a readable GeoTIFF ({exc})") from exc
    with src:
        desc = [d or "" for d in src.descriptions]
        want = list(bands)
        if desc[: len(want)] != want or len(desc) not in (len(want), len(want) + 1):
            raise InputError(path, f"bands are described {desc}, expected {want} (then optionally {COUNT_BAND!r})")
        has_count = len(desc) == len(want) + 1
        if has_count and desc[-1] != COUNT_BAND:
            raise InputError(path, f"band {len(desc)} is {desc[-1]!r}, expected {COUNT_BAND!r}")
        dtype = np.dtype(src.dtypes[0])
        scale = src.tags().get("SCALE")
        if dtype.kind in "iu":
            if scale is None:
                raise InputError(path, f"integer data ({dtype}) without a SCALE tag: value / SCALE must be reflectance")
            try:
                scale = float(scale)
            except ValueError:
                raise InputError(path, f"SCALE tag {scale!r} is not a number") from None
            if not scale > 0:
                raise InputError(path, f"SCALE tag {scale} is not positive")
            if src.nodata is None:
                raise InputError(path, "integer data without a nodata value (0 is a valid reflectance)")
        elif dtype.kind == "f":
            scale = float(scale) if scale is not None else 1.0
        else:
            raise InputError(path, f"data type {dtype} is neither integer nor float")
        if src.crs is None:
            raise InputError(path, "no CRS")
        if grid_crs.is_projected and src.crs != grid_crs:
            raise InputError(path, f"CRS {src.crs.to_string()} differs from the tile grid's {grid_crs.to_string()}")
        fp = gpd.GeoSeries([box(*src.bounds)], crs=src.crs).to_crs(4326).iloc[0]
        tile_fp = gpd.GeoSeries([footprint], crs=grid_crs).to_crs(4326).iloc[0]
        overlap = fp.intersection(tile_fp).area / max(fp.union(tile_fp).area, 1e-30)
        if overlap < 0.95:
            raise InputError(path, f"its footprint overlaps its grid tile by {overlap:.0%} of their union (< 95 %)")
        return {"scale": scale, "nodata": src.nodata, "has_count": has_count, "float": dtype.kind == "f"}


def import_cogs(cogs: str, tile_grid: str, out_dir: Path, p: dict[str, Any], *, rows: int = 1024) -> pd.DataFrame:
    """Check every composite of ``cogs`` against ``tile_grid`` and rewrite it into the contract."""
    bands = _check_params(p)
    folder = Path(cogs)
    if not str(cogs) or not folder.is_dir():
        raise ParameterError("cogs", f"source='cogs' needs a folder of composites <tile>.tif; not a folder: {folder}")
    grid = read_user_grid(tile_grid)
    files = {f.stem: f for f in sorted(folder.glob("*.tif"))}
    missing = [t for t in grid.tile if t not in files]
    if missing:
        raise InputError(folder, f"no composite for tile(s) {missing} of {tile_grid}")
    extra = sorted(set(files) - set(grid.tile))
    if extra:
        raise InputError(files[extra[0]], f"tile {extra[0]!r} is not in the tile grid {tile_grid}")
    grid_crs = CRS.from_user_input(grid.crs.to_wkt())
    checked = {t: check_cog(files[t], bands, grid_crs, g) for t, g in zip(grid.tile, grid.geometry, strict=True)}
    out_rows, extents = [], []
    scale = p["composite_scale"]
    for t, info in checked.items():
        started = time.perf_counter()
        with rasterio.open(files[t]) as src:
            out = np.full((len(bands) + 1, src.height, src.width), NODATA, np.int16)
            for r0 in range(0, src.height, rows):
                win = Window(0, r0, src.width, min(rows, src.height - r0))
                arr = src.read(window=win)
                data = arr[: len(bands)].astype(np.float64)
                bad = ~np.isfinite(data)
                if info["nodata"] is not None and not np.isnan(info["nodata"]):
                    bad |= arr[: len(bands)] == info["nodata"]
                value = np.clip(np.rint(np.where(bad, 0, data) / info["scale"] * scale), -32767, 32767)
                block = out[:, r0 : r0 + win.height]
                np.copyto(block[: len(bands)], value.astype(np.int16), where=~bad)
                seen = ~bad.any(axis=0)
                if info["has_count"]:
                    block[-1] = np.clip(np.where(arr[-1] == info["nodata"], 0, arr[-1]), 0, 32767).astype(np.int16)
                else:
                    block[-1] = seen.astype(np.int16)
            crs, transform, bounds = src.crs, src.transform, tuple(src.bounds)
            tags = _tags(p, t, "cogs", ORIGIN=str(files[t]), COUNT_KNOWN=int(info["has_count"]))
        path = out_dir / "tiles" / f"{t}.tif"
        io.write_raster(
            path, out, crs=crs, transform=transform, nodata=NODATA, band_names=[*bands, COUNT_BAND], tags=tags
        )
        count = out[-1].astype(np.int64)
        out_rows.append(
            {
                "tile": t,
                "path": f"tiles/{t}.tif",
                "origin": str(files[t]),
                "clear_share": float((out[0] != NODATA).mean()),
                "mean_count": float(count.mean()) if info["has_count"] else float("nan"),
                "seconds": round(time.perf_counter() - started, 3),
            }
        )
        extents.append((t, crs, bounds))
    write_tile_grid(out_dir, extents)
    return pd.DataFrame(out_rows)
