"""Stage 01's imagery sources: where the composites come from.

Every source writes the same contract into the stage folder:

* ``tiles/<tile>.tif``: int16, bands ``composite_bands`` (B2 B3 B4 B11 NDWI, described by name)
  x ``composite_scale`` (tag ``SCALE``), then ``clear_count`` (unscaled); nodata ``-32768``;
  tags ``SCALE``, ``BANDS``, ``COUNT_BAND``, ``TILE``, ``SOURCE``;
* ``tile_grid.gpkg``: one polygon per tile in EPSG:4326, columns ``tile`` and ``path``
  (``tiles/<tile>.tif``).

Sources (the notebook parameter ``source``):

``world``
    The demo: the simulated world's own static STAC catalog (``00_world/stac``, written by stage 00
    in Earth Search's layout), read exactly as ``stac`` reads any catalog, one output tile per world
    tile (``lakepaper:tile``). Only the recorded source, and the truth it brings, differ.
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
    batches, so memory is bounded by the block and batch, not by the tile or the scene count; tiles
    run on Dask (a ``LocalCluster`` by default). The cloud probability (``cloud_probability``,
    :func:`cloud_source`) is the items' ``s2cloudless`` asset when every item of the tile has one
    (the world's catalog does); else computed from their L1C items
    (:mod:`lakepaper.composite.cloudless`), as Earth Engine's layer is; else **SCL only** (classes 8,
    9 and 10: medium and high cloud probability, thin cirrus). The manifest says which, per tile.
``cogs``
    A folder of composites made elsewhere (``cogs``, one ``<tile>.tif`` per tile) and their tile
    grid (``tile_grid``: a GeoPackage with a ``tile`` column, one polygon per tile, any CRS).
    Each file is checked: bands described, in the model's order ``composite_bands`` (a sixth
    band ``clear_count`` may follow); integer data with a ``SCALE`` tag (value / SCALE =
    reflectance or NDWI) and a nodata value, or float reflectance (NaN or nodata); a CRS, the
    grid's own when the grid is projected; its footprint that of its grid tile. It is then
    rewritten into the contract (no ``clear_count``: 1 where observed, and ``COUNT_KNOWN=0``).
``gee``
    The Earth Engine backend over the land tiles of ``area``: exports, a resumable ledger, downloads,
    checks (:func:`lakepaper.composite.exports.composite_gee`); the same contract, with the model's
    edge margin around each tile core.
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
from rasterio._err import CPLE_BaseError
from rasterio.crs import CRS
from rasterio.errors import RasterioError, RasterioIOError
from rasterio.transform import Affine
from rasterio.windows import Window
from shapely.geometry import box

from lakepaper import io
from lakepaper.composite import stac as reader
from lakepaper.composite.grid import write_tile_grid
from lakepaper.composite.kernel import DN_SCALE
from lakepaper.composite.local import (
    _ALIGN,
    COUNT_BAND,
    NODATA,
    _BlockRun,
    _check_params,
    _positive_int,
    default_block_rows,
    halo_rows,
)
from lakepaper.errors import InputError, ParameterError

SOURCES = ("world", "stac", "cogs", "gee")
#: The stage's own parameters that belong to each source (the others are not recorded).
SOURCE_ARGS = {
    "world": ("cloud_probability",),
    "stac": ("stac", "area", "cloud_probability"),
    "cogs": ("cogs", "tile_grid"),
    "gee": (
        "area",
        "gee_destination",
        "gee_bucket",
        "gee_project",
        "gee_max_concurrent",
        "gee_max_attempts",
        "gee_ledger",
        "land_mask",
    ),
}
#: The Earth Engine export ledger in the stage folder (:mod:`lakepaper.composite.exports`).
GEE_LEDGER = "gee_exports.sqlite"
#: Recipe parameters only the local backend reads (Earth Engine has the probability layer).
LOCAL_PARAMS = ("cloudless_resolution_m",)
#: SCL classes taken as cloud when a catalog has no s2cloudless asset.
SCL_CLOUD = (8, 9, 10)
#: L2A bands the recipe reads: B2 B3 B4 B8 (10 m), B11 (20 m), SCL (20 m).
_REFLECTANCE = ("B2", "B3", "B4", "B8", "B11")
#: Those read on the 10 m grid; B11 and SCL are read on their own 20 m grid and repeated 2 x 2.
_REFLECTANCE_10M = _REFLECTANCE[:4]
#: Rows of one odc-stac chunk (a block read touches only the chunks of its rows).
_CHUNK = 512


def check_source(source: str) -> str:
    """The source name, or a ParameterError naming the choices."""
    if source not in SOURCES:
        raise ParameterError("source", f"unknown source {source!r}; choose one of {', '.join(SOURCES)}")
    return source


def clear_outputs(out: Path, *, ledger: Path | None = None) -> Path:
    """Remove what an earlier run of the stage (of any source) left: tiles, tile grid, figures, export ledger.

    ``ledger``: an Earth Engine run's ledger; when it exists, the run resumes from it and the tiles it
    placed stay (:func:`lakepaper.composite.exports.composite_gee` checks them again).
    """
    import shutil

    if ledger is not None and Path(ledger).is_file():
        folders = ("figures",)
    else:
        folders = ("tiles", "figures")
        (out / GEE_LEDGER).unlink(missing_ok=True)
    for folder in folders:
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
    """The local backend's block run, reading each scene's block from STAC (odc-stac)."""

    def __init__(self, ds, ds20, items, cloud: str, from_l1c, *args: Any) -> None:
        super().__init__(*args)
        self.ds, self.ds20, self.items, self.cloud, self.from_l1c = ds, ds20, items, cloud, from_l1c

    def check(self) -> None:
        """Every local asset the recipe reads, before any block runs: the file exists, opens as a raster, and lies
        on the CRS and grid its item declares (``proj:code``/``proj:epsg``, the asset's ``proj:transform`` and
        ``proj:shape``); the first problem is raised, naming the file. Assets given by URL are left to GDAL."""
        for it in self.items:
            crs = it.properties.get("proj:code") or (
                f"EPSG:{it.properties['proj:epsg']}" if it.properties.get("proj:epsg") else None
            )
            for name in self.names:
                asset = it.assets[reader.asset_key(it, name)]
                path = _local(asset.get_absolute_href() or "")
                if path is None:
                    continue
                if not path.exists():
                    raise InputError(path, f"asset {name} of item {it.id} is missing")
                try:
                    with rasterio.open(path) as src:
                        got_crs, got_t, got_shape = src.crs, src.transform, src.shape
                except RasterioIOError as exc:
                    raise InputError(path, f"not a readable GeoTIFF ({exc})") from exc
                if crs is not None and got_crs != CRS.from_user_input(crs):
                    raise InputError(path, f"CRS {got_crs} differs from its item's {crs} ({it.id})")
                want_t, want_shape = asset.extra_fields.get("proj:transform"), asset.extra_fields.get("proj:shape")
                if want_t and not got_t.almost_equals(Affine(*want_t[:6])):
                    raise InputError(path, f"grid {tuple(got_t)[:6]} differs from its item's {tuple(want_t[:6])}")
                if want_shape and tuple(got_shape) != tuple(want_shape):
                    raise InputError(path, f"shape {got_shape} differs from its item's {tuple(want_shape)}")

    def _unreadable(self, i: int, h0: int, h1: int, exc: Exception) -> InputError:
        """The error of a failed block read, naming the asset file that fails (tried one by one), else the item."""
        why = str(exc.__cause__ or exc)
        it = self.items[i]
        for name in self.names:
            path = _local(it.assets[reader.asset_key(it, name)].get_absolute_href() or "")
            if path is None:
                continue
            try:
                with rasterio.open(path) as src:
                    src.read(1)  # odc-stac reads whole chunks: the failing rows may lie outside the block's
            except (RasterioError, CPLE_BaseError) as err:
                return InputError(path, f"rows {h0}..{h1} are not readable ({err.__cause__ or err})")
        return InputError(it.id, f"rows {h0}..{h1} of the item are not readable ({why})")

    @property
    def names(self) -> list[str]:
        return [*_REFLECTANCE, "scl", *(["s2cloudless"] if self.cloud == "asset" else [])]

    def _load(self, k: int, j: int, i: int, r0: int, r1: int, _free: Any) -> None:
        import dask

        from lakepaper.composite.masks import PROB_NODATA, scene_mask, upsample2

        h0, h1 = self._window(r0, r1)  # even rows: the 20 m block is rows h0 / 2 .. h1 / 2 of its own grid
        try:
            block, block20 = dask.compute(
                self.ds.isel(time=i, y=slice(h0, h1)),
                self.ds20.isel(time=i, y=slice(h0 // 2, h1 // 2)),
                scheduler="synchronous",
            )
        except (RasterioError, CPLE_BaseError, OSError) as exc:
            raise self._unreadable(i, h0, h1, exc) from exc
        stack, clear = self._views(k, r0, r1)
        for b, name in enumerate(_REFLECTANCE_10M):
            stack[j, b] = to_dn(block[name].values)
        stack[j, 4] = upsample2(to_dn(block20["B11"].values))  # nearest: each 20 m pixel is 2 x 2 at 10 m
        scl20 = np.asarray(block20["scl"].values)
        scl = upsample2(scl20)
        if self.cloud == "scl":
            prob = np.where(np.isin(scl, SCL_CLOUD), 100, 0).astype(np.uint8)
            prob[scl == 0] = PROB_NODATA
        elif self.cloud == "l1c":
            prob = self.from_l1c.rows(i, h0, h1)
        else:
            prob = np.asarray(block["s2cloudless"].values, np.uint8)
        azimuth = float(self.ds.sun_azimuth.values[i])
        mask = scene_mask(stack[j, :4], stack[j, 4], scl20, prob, azimuth_deg=azimuth, p=self.p, resolution_m=self.res)
        clear[j] = mask.clear


def _local(href: str) -> Path | None:
    """The file behind an asset's absolute href; None for a URL (http, s3, ...)."""
    if "://" in href and not href.startswith("file://"):
        return None
    return Path(href.removeprefix("file://"))


def asset_files(items: Sequence, names: Sequence[str]) -> list[Path]:
    """The local files behind the bands ``names`` of ``items`` (assets given by URL are left out)."""
    paths = (_local(it.assets[reader.asset_key(it, n)].get_absolute_href() or "") for it in items for n in names)
    return [p for p in paths if p is not None]


#: Where a tile's cloud probability came from (``cloud`` of :func:`composite_stac_tile`) -> its summary name.
CLOUD_SOURCES = {"asset": "s2cloudless", "l1c": "s2cloudless from L1C", "scl": "SCL only"}


def cloud_source(tile: str, items: Sequence, l1c: Sequence | None, cloud: str = "auto") -> str:
    """``asset``, ``l1c`` or ``scl``: what ``cloud`` asks for, or for ``auto`` the first the items allow.

    Raises:
        ParameterError: an unknown choice; InputError: the choice is not available for this tile.
    """
    has_asset = bool(items) and all("s2cloudless" in it.assets for it in items)
    if cloud == "auto":
        return "asset" if has_asset else "l1c" if l1c is not None else "scl"
    if cloud not in CLOUD_SOURCES:
        raise ParameterError("cloud_probability", f"{cloud!r}: choose auto, {', '.join(CLOUD_SOURCES)}")
    if cloud == "asset" and not has_asset:
        raise InputError(tile, "cloud_probability 'asset': not every item of the tile has an s2cloudless asset")
    if cloud == "l1c" and l1c is None:
        raise InputError(tile, "cloud_probability 'l1c': the catalog has no sentinel-2-l1c item for every item")
    return cloud


def to_dn(reflectance: np.ndarray) -> np.ndarray:
    """Reflectance (NaN no data) as the kernel's uint16 x 10000, 0 no data; valid pixels at least 1.

    Exact for DNs read from a product: ``rint((DN x 1e-4 + offset) x 1e4)`` is ``DN + offset x 1e4``.
    A reflectance <= 0 (dark water after the -0.1 offset) becomes 1, not 0, so it stays an observation.
    """
    r = np.asarray(reflectance, np.float32)
    ok = np.isfinite(r)
    dn = np.clip(np.rint(np.where(ok, r, 0) * np.float32(DN_SCALE)), 1, 65535).astype(np.uint16)
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
    source: str = "stac",
    cloud: str = "auto",
    l1c: list | None = None,
) -> dict:
    """Composite one tile's STAC items with the local backend's recipe and kernel; write its GeoTIFF.

    The file has the bands of ``p["composite_bands"]`` in that order (the paper's B2, B3, B4,
    B11, NDWI; the authors' own files were ordered NDWI, B4, B3, B2, B11), each multiplied by
    ``p["composite_scale"]`` (tag ``SCALE``), then ``clear_count`` (clear observations,
    unscaled); ``-32768`` (nodata) where no clear observation exists. The grid is the items' own
    (their finest asset's ``proj:transform`` and ``proj:shape``).

    Memory, with ``H = block_rows + 2 x halo`` (the block as read) and ``W`` the tile's columns:
    two batch buffers, 2 x ``batch`` x H x W x 11 bytes; up to two blocks' sums, 2 x
    ``block_rows`` x W x ~64 bytes; one scene being read and masked per worker, ``num_workers`` x
    H x W x ~30 bytes (odc-stac reads the block's chunks only); the output, (bands + 1) x rows x W x
    2 bytes. None of these depends on the number of scenes (``benchmarks/composite_memory.py``).

    Args:
        tile: the output tile's name.
        items: its L2A items (:func:`find_tiles`), all on one grid.
        out_path: the GeoTIFF to write (atomically, once every block is done).
        p: parameters (``lakepaper.params.resolve``).
        batch: scenes fed to the kernel at once.
        block_rows: rows per block, a multiple of 8; default :func:`default_block_rows` (a batch
            buffer of about 256 MB; the whole tile when it fits).
        num_workers: threads; default ``os.cpu_count()``.
        source: the stage-01 source written in the file's ``SOURCE`` tag.
        cloud: where the cloud probability comes from (:data:`CLOUD_SOURCES`): ``asset``, the items'
            ``s2cloudless`` asset; ``l1c``, computed from ``l1c`` (the L1C item of each item,
            :mod:`lakepaper.composite.cloudless`); ``scl``, SCL classes 8, 9, 10 as cloud; ``auto``,
            the first of these the items allow.
        l1c: the L1C item of each of ``items`` (:func:`lakepaper.composite.cloudless.l1c_items`), or None.

    Raises:
        ParameterError: a bad parameter (or ``batch``, ``block_rows``, ``num_workers``).
        InputError: an item lacks a band, an asset file is missing or unreadable (checked before any
            block runs), the items lie on different grids, or the grid has an odd size.
    """
    started = time.perf_counter()
    bands = _check_params(p)
    batch = _positive_int("batch", batch)
    workers = _positive_int("num_workers", (os.cpu_count() or 1) if num_workers is None else num_workers)
    if block_rows is not None and _positive_int("block_rows", block_rows) % _ALIGN:
        raise ParameterError("block_rows", f"expected a multiple of {_ALIGN}, got {block_rows}")
    res = float(p.get("resolution_m", 10.0))
    geobox = reader.tile_geobox(items, reader.Area(tile=tile), res)  # the items' own grid
    shape = tuple(int(v) for v in geobox.shape)
    if shape[0] % 2 or shape[1] % 2:
        raise InputError(tile, f"the tile's grid has an odd size {shape}: its 20 m bands cannot cover it")
    cloud = cloud_source(tile, items, l1c, cloud)
    names = [*_REFLECTANCE_10M, *(["s2cloudless"] if cloud == "asset" else [])]
    ds = reader.load(items, names, geobox, chunks=_CHUNK)
    ds20 = reader.load(items, ["B11", "scl"], geobox.zoom_out(2), chunks=_CHUNK // 2)  # on their own 20 m grid
    from_l1c = None
    if cloud == "l1c":
        from lakepaper.composite.cloudless import FromL1C

        from_l1c = FromL1C(l1c, geobox, float(p["cloudless_resolution_m"]))
    halo = halo_rows(p, res)
    if block_rows is None:
        block_rows = default_block_rows(shape, batch, halo)
    block_rows = max(_ALIGN, block_rows // _ALIGN * _ALIGN)
    out = np.full((len(bands) + 1, *shape), NODATA, np.int16)
    scenes = list(range(len(items)))
    run = _StacRun(
        ds,
        ds20,
        items,
        cloud,
        from_l1c,
        scenes,
        shape,
        halo,
        min(block_rows, shape[0]),
        batch,
        workers,
        out,
        bands,
        p,
        res,
    )
    import dask.threaded

    run.check()
    graph, finals = run.graph()
    results = dask.threaded.get(graph, finals, num_workers=workers)
    seen = sum(a for a, _ in results)
    counted = sum(b for _, b in results)
    cloud_mask = {
        "scl": "SCL only (classes 8, 9, 10)",
        "l1c": "s2cloudless from L1C at {cloudless_resolution_m:g} m > cloud_prob_threshold".format(**p),
        "asset": "s2cloudless > cloud_prob_threshold",
    }[cloud]
    tags = _tags(
        p,
        tile,
        source,
        N_SCENES=len(items),
        START_DATE=p["start_date"],
        END_DATE=p["end_date"],
        CLOUD_MASK=cloud_mask,
        RECIPE="lakepaper {src}: cloud {m}, dark NIR<{nir_dark_threshold} x projection {cloud_proj_dist_km} km, "
        "buffer {cloud_buffer_m} m, SCL {scl_snow_class} removed".format(src=source, m=cloud_mask, **p),
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
        "n_scenes": len(items),
        "clear_share": seen / pixels,
        "mean_count": counted / pixels,
        "cloud_mask": CLOUD_SOURCES[cloud],
        "seconds": round(time.perf_counter() - started, 3),
        "_grid": (tile, crs, tuple(geobox.boundingbox)),
    }


def composite_stac(
    stac: str,
    area: Any,
    out_dir: Path,
    p: dict[str, Any],
    *,
    progress: bool = True,
    source: str = "stac",
    tiles: dict[str, list] | None = None,
    scheduler: str | None = None,
    n_workers: int | None = None,
    cloud: str = "auto",
) -> pd.DataFrame:
    """Composite every tile of ``area`` from the STAC source into ``out_dir``; the summary, one row per tile.

    Tiles are Dask tasks, as stage 04's are: ``scheduler`` None starts a ``LocalCluster`` of
    ``n_workers`` processes (default: one per core) with one thread each, so that memory is bounded
    per worker by one tile's blocks and batches (:func:`composite_stac_tile`); an address
    (``tcp://host:8786``) uses a running cluster (its workers must see the catalog's files);
    ``"sync"`` composites the tiles one after the other in this process, each on all cores. The
    result is the same bytes whichever way (a tile's blocks and threads do not change its sums).
    The progress bar counts tiles and shows the scenes and the bytes of their local asset files
    read so far (for an API, the scenes only). ``source`` is the stage-01 source recorded in the
    files (``world`` for the simulated world's own catalog); ``tiles``, the items of each tile when
    already found (:func:`find_tiles`); ``cloud``, where the cloud probability comes from
    (:func:`cloud_source`; for ``l1c`` and for ``auto`` on items without an ``s2cloudless`` asset, the
    L1C items are looked up in the same source).
    """
    from tqdm.auto import tqdm

    check_stac_args(stac, area)
    tiles = find_tiles(str(stac), area, p) if tiles is None else tiles
    jobs = [(t, items, out_dir / "tiles" / f"{t}.tif", _l1c_for(stac, items, cloud)) for t, items in tiles.items()]
    rows, scenes, n_bytes = [], 0, 0
    bar = tqdm(total=len(jobs), desc="composites", unit="tile", disable=not progress)

    def done(row: dict, items: list) -> None:
        nonlocal scenes, n_bytes
        rows.append(row)
        scenes += len(items)
        n_bytes += sum(f.stat().st_size for f in asset_files(items, [*_REFLECTANCE, "scl"]) if f.exists())
        bar.set_postfix(scenes=scenes, read=f"{n_bytes / 2**20:.0f} MiB")
        bar.update()

    if scheduler == "sync" or len(jobs) <= 1:
        for t, items, path, l1c in jobs:
            done(composite_stac_tile(t, items, path, p, source=source, cloud=cloud, l1c=l1c), items)
    else:
        from dask.distributed import Client, LocalCluster, as_completed

        cluster = None
        if not scheduler:
            workers = _positive_int("n_workers", n_workers or min(os.cpu_count() or 1, len(jobs)))
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster or scheduler)
        try:
            futures = {}
            for t, items, path, l1c in jobs:
                portable = [_portable(it) for it in items]
                l1c_portable = None if l1c is None else [_portable(it) for it in l1c]
                job = (t, portable, str(path), p, source, cloud, l1c_portable)
                futures[client.submit(_composite_remote, *job, pure=False)] = items
            for fut in as_completed(futures):
                done(fut.result(), futures[fut])
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    bar.close()
    rows.sort(key=lambda r: r["tile"])
    write_tile_grid(out_dir, [r.pop("_grid") for r in rows])
    summary = pd.DataFrame(rows)
    summary["path"] = summary["path"].map(lambda s: str(Path(s).relative_to(out_dir)))
    return summary


def _portable(item) -> dict:
    """An item as a dict with absolute asset hrefs (what a worker process can open without its catalog)."""
    d = item.to_dict(include_self_link=False, transform_hrefs=False)
    for key, asset in item.assets.items():
        d["assets"][key]["href"] = asset.get_absolute_href()
    return d


def _composite_remote(
    tile: str, items: list[dict], out_path: str, p: dict[str, Any], source: str, cloud: str, l1c: list[dict] | None
) -> dict:
    """One tile on a Dask worker (one thread: the cluster's processes are the parallelism)."""
    import pystac

    got = [pystac.Item.from_dict(d) for d in items]
    l1c_items = None if l1c is None else [pystac.Item.from_dict(d) for d in l1c]
    return composite_stac_tile(tile, got, Path(out_path), p, source=source, num_workers=1, cloud=cloud, l1c=l1c_items)


def _l1c_for(stac: str, items: list, cloud: str) -> list | None:
    """The L1C items of a tile's items when its cloud probability will be computed from them."""
    if cloud == "l1c" or (cloud == "auto" and not all("s2cloudless" in it.assets for it in items)):
        from lakepaper.composite.cloudless import l1c_items

        return l1c_items(stac, items)
    return None


def check_stac_args(stac: Any, area: Any) -> None:
    """``stac`` and ``area`` given, or a ParameterError naming the one missing."""
    if not str(stac or ""):
        raise ParameterError("stac", "source='stac' needs a catalog path or STAC API URL in the parameter 'stac'")
    if area is None or area == "" or area == []:
        raise ParameterError("area", "source='stac' needs an area: [minx, miny, maxx, maxy], a GeoPackage or tiles")


def catalog_tiles(stac: str | os.PathLike[str]) -> list[str]:
    """The world tiles (``lakepaper:tile``) of a static catalog's L2A items, in name order.

    Raises:
        InputError: the catalog has no item naming its tile.
    """
    items = reader._walk_static(str(stac), "sentinel-2-l2a")
    tiles = sorted({str(it.properties["lakepaper:tile"]) for it in items if "lakepaper:tile" in it.properties})
    if not tiles:
        raise InputError(
            stac, "no sentinel-2-l2a item with a lakepaper:tile property: not the simulated world's catalog"
        )
    return tiles


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
