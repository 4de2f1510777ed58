"""The local backend: one composite GeoTIFF per tile from scenes on disk.

The recipe of the paper (section 2.1), run on files laid out like the simulated world
(:mod:`lakepaper.world.generate`): select the tile's L2A scenes with
``CLOUDY_PIXEL_PERCENTAGE < max_scene_cloud_pct`` acquired within ``start_date..end_date``;
join each with its cloud probability on ``system:index``; mask clouds, shadows, their buffer,
snow/ice and no data (:mod:`lakepaper.composite.masks`); average B2, B3, B4, B11 and per-scene
NDWI over the clear observations (:mod:`lakepaper.composite.kernel`).

B11 (20 m) is resampled to 10 m by **nearest neighbour**: each 20 m pixel covers exactly 2 x 2
pixels of the 10 m grid, no value is invented, and it is what Earth Engine does when a 20 m
band is used at 10 m without an explicit ``resample()``.

The tile is processed in blocks of rows (:func:`composite_tile`): each block is read through
rasterio windows with a halo of :func:`halo_rows` rows (the reach of the shadow projection and
the buffer), masked, and its own rows accumulated; scenes stream through the kernel ``batch`` at
a time. Memory is bounded by the block size and the batch, not by the number of scenes; the
result is bit-identical for any block size. Blocks and scenes are dask tasks on the threaded
scheduler, so reading (GDAL), masking and the kernel overlap on the cores.

Every input is checked (band names and count, CRS and grid against the tile) before any block
is computed, and the GeoTIFF is written atomically at the end, so a failure leaves no file.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
import dask.threaded
import numpy as np
import pandas as pd
import rasterio
from rasterio._err import CPLE_BaseError
from rasterio.crs import CRS
from rasterio.errors import RasterioError, RasterioIOError
from rasterio.io import DatasetReader
from rasterio.transform import Affine
from rasterio.windows import Window

from lakepaper import io
from lakepaper.composite.kernel import MEAN_BANDS, Accumulator
from lakepaper.composite.masks import scene_mask, upsample2
from lakepaper.errors import InputError, ParameterError
from lakepaper.world.files import WorldFiles
from lakepaper.world.scenes import REFLECTANCE_SCALE

#: Name of the band after the composite bands: clear observations per pixel.
COUNT_BAND = "clear_count"
#: Nodata of the composite bands (never 0: 0 is a valid reflectance and NDWI).
NODATA = -32768
#: Parameters of the recipe read here and in masks.py; the Earth Engine backend (gee.py) reads the same.
RECIPE_PARAMS = (
    "cloud_buffer_m",
    "cloud_prob_threshold",
    "cloud_proj_dist_km",
    "composite_bands",
    "composite_scale",
    "end_date",
    "max_scene_cloud_pct",
    "nir_dark_threshold",
    "resolution_m",
    "scl_snow_class",
    "start_date",
)

#: Bytes per pixel of a scene in a batch buffer: B2 B3 B4 B8 B11 as uint16 and the clear mask.
_SCENE_BYTES = 11
#: Default size of one batch buffer (:func:`default_block_rows`), bytes.
BATCH_BUDGET = 256 * 2**20
#: At most this many checked scene files stay open until read (one-block tiles: each file read once).
_KEEP_OPEN = 256
#: Block edges and halos are multiples of this many 10 m rows (aligned on 20 m and 80 m grids).
_ALIGN = 8

#: Per product: expected band names (None: any single band) and pixel size relative to 10 m.
_PRODUCTS: dict[str, tuple[tuple[str, ...] | None, int]] = {
    "L2A_10m": (("B2", "B3", "B4", "B8"), 1),
    "L2A_20m": (("B11", "SCL"), 2),
    "CLDPRB": (None, 1),
}


def _date(p: dict[str, Any], name: str) -> dt.date:
    try:
        return dt.date.fromisoformat(str(p[name]))
    except (KeyError, ValueError) as exc:
        raise ParameterError(name, f"expected an ISO date like 2017-03-28, got {p.get(name)!r}") from exc


def select_scenes(world: WorldFiles, tile: str, p: dict[str, Any]) -> pd.DataFrame:
    """The scenes of a tile that the paper keeps: in the date range and below the scene cloud limit.

    Raises:
        ParameterError: unknown tile, bad dates, or no scene of the tile in the date range.
    """
    scenes = world.scenes()
    if tile not in set(world.tiles().tile):
        raise ParameterError("tile", f"unknown tile {tile!r} in {world.root}")
    start, end = _date(p, "start_date"), _date(p, "end_date")
    if end < start:
        raise ParameterError("end_date", f"{end} is before start_date {start}")
    of_tile = scenes[scenes.tile == tile]
    dates = of_tile.date.dt.date
    in_range = of_tile[(dates >= start) & (dates <= end)]
    if in_range.empty:
        raise ParameterError(
            "start_date", f"no scene of tile {tile} between start_date {start} and end_date {end}: empty selection"
        )
    limit = float(p["max_scene_cloud_pct"])
    keep = in_range[in_range["CLOUDY_PIXEL_PERCENTAGE"].to_numpy() < limit]
    return keep.sort_values(["date", "system_index"]).reset_index(drop=True)


def tile_grid(world: WorldFiles, tile: str, resolution_m: float) -> tuple[CRS, Affine, tuple[int, int]]:
    """CRS, 10 m transform and (rows, cols) of a tile, from world.json."""
    rec = world.tiles().set_index("tile").loc[tile]
    left, bottom, right, top = rec["bounds"]
    n = int(rec["size_px"])
    if not math.isclose((right - left) / n, resolution_m):
        raise InputError(world.root / "world.json", f"tile {tile} is not on a {resolution_m} m grid")
    return CRS.from_epsg(int(rec["epsg"])), Affine(resolution_m, 0, left, 0, -resolution_m, top), (n, n)


def _check_file(path: Path, product: str, crs: CRS, transform: Affine, shape: tuple[int, int]) -> None:
    _open_checked(path, product, crs, transform, shape).close()


def _open_checked(path: Path, product: str, crs: CRS, transform: Affine, shape: tuple[int, int]) -> DatasetReader:
    """Open a scene file and check its bands, CRS and grid against the tile's; the dataset, open."""
    names, factor = _PRODUCTS[product]
    if not path.exists():
        raise InputError(path, f"{product} file of the scene is missing")
    try:
        src = rasterio.open(path)
    except RasterioIOError as exc:
        raise InputError(path, f"not a readable GeoTIFF ({exc})") from exc
    try:
        count, desc, src_crs, src_tr, src_shape = src.count, src.descriptions, src.crs, src.transform, src.shape
        want = names or ("probability",)
        if count != len(want):
            raise InputError(path, f"{product} has {count} band(s), expected {len(want)} {list(want)}")
        if names is not None and tuple(desc) != names:
            raise InputError(path, f"{product} bands are {list(desc)}, expected {list(names)}")
        if src_crs != crs:
            raise InputError(path, f"CRS {src_crs} differs from the tile's {crs}")
        grid = transform * Affine.scale(factor)
        want_shape = (shape[0] // factor, shape[1] // factor)
        if not src_tr.almost_equals(grid) or src_shape != want_shape:
            raise InputError(
                path, f"grid {src_shape} {tuple(src_tr)[:6]} differs from the tile's {want_shape} {tuple(grid)[:6]}"
            )
    except BaseException:
        src.close()
        raise
    return src


def _check_params(p: dict[str, Any]) -> list[str]:
    bands = list(p["composite_bands"])
    unknown = [b for b in bands if b not in MEAN_BANDS]
    if unknown or len(set(bands)) != len(bands):
        raise ParameterError("composite_bands", f"{bands}: each of {list(MEAN_BANDS)} at most once")
    if not isinstance(p["composite_scale"], int) or not 0 < p["composite_scale"] <= 10000:
        raise ParameterError("composite_scale", f"expected an int in 1..10000, got {p['composite_scale']!r}")
    return bands


def halo_rows(p: dict[str, Any], resolution_m: float = 10.0) -> int:
    """Rows of context a block needs on each side for its masks to be those of the whole tile.

    A pixel's mask depends on cloud up to ``cloud_proj_dist_km`` away (the shadow projection)
    and on cloud or shadow up to ``cloud_buffer_m`` away (the buffer); the sum in pixels, rounded
    up to a multiple of 8 rows so that the 20 m bands (and any grid up to 80 m) stay aligned.
    """
    need = math.ceil(max(float(p["cloud_proj_dist_km"]), 0.0) * 1000.0 / resolution_m)
    need += math.ceil(max(float(p["cloud_buffer_m"]), 0.0) / resolution_m)
    return _ALIGN * math.ceil(need / _ALIGN)


def default_block_rows(shape: tuple[int, int], batch: int, halo: int, budget: int = BATCH_BUDGET) -> int:
    """Rows of a block such that one batch buffer, halo included, stays within ``budget`` bytes.

    A batch buffer holds ``batch`` scenes x (block rows + 2 halo) x cols x 11 bytes (B2 B3 B4 B8
    B11 as uint16 and the clear mask). Never fewer than 2 x ``halo`` rows (the halo would
    otherwise be read more than the block itself: a smaller ``batch`` is then the way to save
    memory); a multiple of 256 rows (the scene files' tile height) from 256 rows on, of 8 below.
    """
    rows, cols = shape
    fit = budget // (batch * _SCENE_BYTES * cols) - 2 * halo
    fit = max(fit, 2 * halo, _ALIGN)
    fit = fit // 256 * 256 if fit >= 256 else fit // _ALIGN * _ALIGN
    return rows if fit >= rows else fit


def composite_tile(
    world: WorldFiles,
    tile: str,
    out_path: str | os.PathLike[str],
    *,
    p: dict[str, Any],
    batch: int = 8,
    block_rows: int | None = None,
    num_workers: int | None = None,
) -> dict:
    """Composite one tile and write it as a single int16 GeoTIFF.

    The file has the bands of ``p["composite_bands"]`` in that order (the paper's B2, B3, B4,
    B11, NDWI; note that the authors' own files were ordered NDWI, B4, B3, B2, B11), each
    multiplied by ``p["composite_scale"]`` (tag ``SCALE``; reflectance x 1000, NDWI x 1000),
    then a last band ``clear_count`` (clear observations, unscaled). Composite bands are
    ``-32768`` (the file's nodata) where no clear observation exists. A stack in which every
    observation is cloudy, or from which the scene cloud limit removed every scene, gives an
    all-nodata composite (and count 0), not an error: the data say nothing was seen.

    The tile is processed in blocks of ``block_rows`` rows. Each block is read (rasterio windows)
    with :func:`halo_rows` rows of context above and below, so that its shadow projection and
    buffer see the clouds beyond it; only its own rows are accumulated. Its scenes stream through
    the kernel ``batch`` at a time. The result is bit-identical whatever ``block_rows`` and
    ``num_workers`` (tests check it); ``batch`` changes the float32 summation order (at most one
    stored unit). Blocks and scenes are dask tasks on the threaded scheduler: decoding (GDAL),
    masks (OpenCV, numpy) and the kernel (numba) release the GIL, so ``num_workers`` threads
    overlap them.

    Memory, with ``H = block_rows + 2 x halo`` (the block as read) and ``W`` the tile's columns:

    * two batch buffers, 2 x ``batch`` x H x W x 11 bytes (one is filled while the other is
      accumulated);
    * up to two blocks' sums and their finishing, 2 x ``block_rows`` x W x ~64 bytes;
    * one scene being read and masked per worker, ``num_workers`` x H x W x ~30 bytes;
    * the output, (bands + 1) x rows x W x 2 bytes.

    None of these depends on the number of scenes (``benchmarks/composite_memory.py`` measures it).

    Args:
        world: the world (or any folder laid out like it).
        tile: tile name.
        out_path: the GeoTIFF to write.
        p: parameters (``lakepaper.params.resolve``).
        batch: scenes fed to the kernel at once (a larger batch keeps its sums in cache longer).
        block_rows: rows per block, a multiple of 8; default :func:`default_block_rows` (a batch
            buffer of about 256 MB; the whole tile when it fits).
        num_workers: threads; default ``os.cpu_count()``.

    Returns:
        A summary: tile, path, scene counts, clear share, mean count, seconds.

    Raises:
        ParameterError: unknown tile, bad parameter (or ``batch``, ``block_rows``,
            ``num_workers``), or no scene in the date range.
        InputError: a scene file missing, with wrong bands, on another CRS or grid, or not
            readable. Every file's bands, CRS and grid are checked before any block runs; the
            GeoTIFF is written atomically once every block is done, so a failure leaves no file.
    """
    started = time.perf_counter()
    bands = _check_params(p)
    batch = _positive_int("batch", batch)
    workers = _positive_int("num_workers", (os.cpu_count() or 1) if num_workers is None else num_workers)
    res = float(p.get("resolution_m", 10.0))
    chosen = select_scenes(world, tile, p)
    crs, transform, shape = tile_grid(world, tile, res)
    if shape[0] % 2 or shape[1] % 2:
        raise InputError(
            world.root / "world.json", f"tile {tile} has an odd size {shape}: the 20 m grid cannot cover it"
        )
    halo = halo_rows(p, res)
    if block_rows is None:
        block_rows = default_block_rows(shape, batch, halo)
    elif _positive_int("block_rows", block_rows) % _ALIGN:
        raise ParameterError("block_rows", f"expected a multiple of {_ALIGN}, got {block_rows}")
    scenes = [
        _Scene(
            {prod: world.scene_path(tile, s.system_index, prod) for prod in _PRODUCTS},
            float(s.MEAN_SOLAR_AZIMUTH_ANGLE),
        )
        for s in chosen.itertuples()
    ]
    out = np.full((len(bands) + 1, *shape), NODATA, np.int16)
    run = _BlockRun(scenes, shape, halo, min(block_rows, shape[0]), batch, workers, out, bands, p, res)
    try:
        run.check(crs, transform, workers)  # every input, before any block runs
        graph, finals = run.graph()
        results = dask.threaded.get(graph, finals, num_workers=workers)
    finally:
        run.close()
    seen = sum(n_seen for n_seen, _ in results)
    counted = sum(n_count for _, n_count in results)

    tags = {
        "SCALE": p["composite_scale"],
        "BANDS": ",".join(bands),
        "COUNT_BAND": COUNT_BAND,
        "TILE": tile,
        "N_SCENES": len(chosen),
        "START_DATE": p["start_date"],
        "END_DATE": p["end_date"],
        "RECIPE": "lakepaper local: s2cloudless>{cloud_prob_threshold}, dark NIR<{nir_dark_threshold} x "
        "projection {cloud_proj_dist_km} km, buffer {cloud_buffer_m} m, SCL {scl_snow_class} removed".format(**p),
    }
    with rasterio.Env(GDAL_NUM_THREADS=str(workers)):  # the file's blocks compressed on the workers
        io.write_raster(
            out_path, out, crs=crs, transform=transform, nodata=NODATA, band_names=[*bands, COUNT_BAND], tags=tags
        )
    pixels = shape[0] * shape[1]
    return {
        "tile": tile,
        "path": str(out_path),
        "scenes_in_range": int(len(chosen)),
        "scenes": list(chosen.system_index),
        "clear_share": seen / pixels,
        "mean_count": counted / pixels,
        "seconds": round(time.perf_counter() - started, 3),
    }


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ParameterError(name, f"expected a positive int, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class _Scene:
    paths: dict[str, Path]
    azimuth_deg: float


class _BlockRun:
    """The dask graph of one tile: per block, per batch, one read-and-mask task per scene and one kernel call.

    Batch ``g`` (numbered over all blocks) fills buffer ``g % 2`` once the kernel call of batch
    ``g - 2`` is done with it; a block's kernel calls run in scene order (same sums, same bits);
    then the block's rows of ``out`` are finished in ``workers`` pieces.
    """

    def __init__(self, scenes, shape, halo, block_rows, batch, workers, out, bands, p, res) -> None:
        self.scenes, self.shape, self.halo, self.batch, self.workers = scenes, shape, halo, batch, workers
        self.out, self.bands, self.p, self.res = out, bands, p, res
        rows, cols = shape
        self.blocks = [(r0, min(r0 + block_rows, rows)) for r0 in range(0, rows, block_rows)]
        tall = max(self._window(r0, r1)[1] - self._window(r0, r1)[0] for r0, r1 in self.blocks)
        self.n = n = min(batch, max(len(scenes), 1))
        self.buffers = [
            (np.empty(n * 5 * tall * cols, np.uint16), np.empty(n * tall * cols, bool))
            for _ in range(2 if scenes else 0)
        ]
        self.opened: dict[Path, DatasetReader] = {}
        self.lock = threading.Lock()

    def check(self, crs: CRS, transform: Affine, workers: int) -> None:
        """Check every scene file (on ``workers`` threads); raise the first failure in scene order.

        When the tile is one block, each file is read once: its checked dataset stays open for
        that read (up to ``_KEEP_OPEN`` files), which saves opening it twice.
        """
        paths = [(path, prod) for sc in self.scenes for prod, path in sc.paths.items()]
        keep = len(self.blocks) == 1 and len(paths) <= _KEEP_OPEN

        def one(item: tuple[Path, str]) -> InputError | DatasetReader | None:
            try:
                src = _open_checked(*item, crs, transform, self.shape)
            except InputError as exc:
                return exc
            if keep:
                return src
            src.close()
            return None

        with ThreadPoolExecutor(workers) as pool:
            done = list(pool.map(one, paths))
        for (path, _), res in zip(paths, done, strict=True):
            if isinstance(res, DatasetReader):
                self.opened[path] = res
        for res in done:
            if isinstance(res, InputError):
                raise res

    def close(self) -> None:
        """Close the checked files not read (after a failure: tasks still running reopen what they need)."""
        with self.lock:
            opened, self.opened = self.opened, {}
        for src in opened.values():
            src.close()

    def _window(self, r0: int, r1: int) -> tuple[int, int]:
        return max(r0 - self.halo, 0), min(r1 + self.halo, self.shape[0])

    def graph(self) -> tuple[dict, list[str]]:
        """The task graph (dask's plain dict form: ``key: (function, *arguments)``) and its final keys."""
        graph: dict[str, tuple] = {}
        finals, adds = [], []
        for b, (r0, r1) in enumerate(self.blocks):
            acc = None
            for first in range(0, len(self.scenes), self.batch):
                g = len(adds)
                free = adds[g - 2] if g >= 2 else None  # buffer g % 2 was last used by kernel call g - 2
                loads = []
                for j in range(min(self.batch, len(self.scenes) - first)):
                    graph[f"load-{g}-{j}"] = (self._load, g % 2, j, first + j, r0, r1, free)
                    loads.append(f"load-{g}-{j}")
                graph[f"add-{g}"] = (self._add, acc, g % 2, len(loads), r0, r1, loads)
                acc = f"add-{g}"
                adds.append(acc)
            step = -(-(r1 - r0) // self.workers)  # the block's finishing in row pieces, one per worker
            for q, a in enumerate(range(r0, r1, step)):
                graph[f"finish-{b}-{q}"] = (self._finish, acc, r0, r1, a, min(a + step, r1))
                finals.append(f"finish-{b}-{q}")
        return graph, finals

    def _views(self, k: int, r0: int, r1: int) -> tuple[np.ndarray, np.ndarray]:
        """Buffer ``k`` as (scenes, 5, rows, cols) and (scenes, rows, cols) for block ``r0:r1`` read with its halo."""
        h0, h1 = self._window(r0, r1)
        n, cols = self.n, self.shape[1]
        stack, clear = self.buffers[k]
        size = n * (h1 - h0) * cols
        return stack[: 5 * size].reshape(n, 5, h1 - h0, cols), clear[:size].reshape(n, h1 - h0, cols)

    def _load(self, k: int, j: int, i: int, r0: int, r1: int, _free: Any) -> None:
        """Read and mask scene ``i`` for block ``r0:r1`` (halo included) into slot ``j`` of buffer ``k``."""
        scene = self.scenes[i]
        h0, h1 = self._window(r0, r1)
        stack, clear = self._views(k, r0, r1)
        cols = self.shape[1]
        rows10, rows20 = Window(0, h0, cols, h1 - h0), Window(0, h0 // 2, cols // 2, (h1 - h0) // 2)
        self._read(scene.paths["L2A_10m"], rows10, out=stack[j, :4])
        b20 = self._read(scene.paths["L2A_20m"], rows20)
        prob = self._read(scene.paths["CLDPRB"], rows10)
        stack[j, 4] = upsample2(b20[0])
        mask = scene_mask(
            stack[j, :4], stack[j, 4], b20[1], prob[0], azimuth_deg=scene.azimuth_deg, p=self.p, resolution_m=self.res
        )
        clear[j] = mask.clear

    def _read(self, path: Path, window: Window, out: np.ndarray | None = None) -> np.ndarray:
        with self.lock:
            src = self.opened.pop(path, None)  # a file checked and kept open is read once, here
        return _read(path, window, out, src)

    def _add(self, acc: Accumulator | None, k: int, n: int, r0: int, r1: int, _loads: Any) -> Accumulator:
        if acc is None:
            acc = Accumulator((r1 - r0, self.shape[1]), parallel=False)
        stack, clear = self._views(k, r0, r1)
        acc.add(stack[:n], clear[:n], row0=r0 - self._window(r0, r1)[0])
        return acc

    def _finish(self, acc: Accumulator | None, r0: int, r1: int, a: int, z: int) -> tuple[int, int]:
        """Scale rows ``a:z`` of block ``r0:r1``'s means into ``out``; their clear pixels and observations."""
        if acc is None:  # no scene: nothing seen, composite bands left at nodata
            self.out[-1, a:z] = 0
            return 0, 0
        scale = self.p["composite_scale"]
        out = self.out[:, a:z]
        sums, count = acc.sums[:, a - r0 : z - r0], acc.count[a - r0 : z - r0]
        seen = count > 0
        with np.errstate(invalid="ignore", divide="ignore"):  # never-clear pixels: NaN, left at nodata
            for i, name in enumerate(self.bands):
                # the arithmetic of Accumulator.result(): float64 mean to float32; then x scale in float32
                plane = (sums[MEAN_BANDS.index(name)] / count).astype(np.float32)
                factor = scale if name == "NDWI" else scale / REFLECTANCE_SCALE
                np.copyto(out[i], np.clip(np.rint(plane * factor), -32767, 32767).astype(np.int16), where=seen)
        out[-1] = np.minimum(count, 32767).astype(np.int16)
        return int(seen.sum()), int(count.sum(dtype=np.int64))


def _read(path: Path, window: Window, out: np.ndarray | None = None, src: DatasetReader | None = None) -> np.ndarray:
    """Read a window of a GeoTIFF (from ``src`` if given, which is then closed)."""
    try:
        with src or rasterio.open(path) as opened:
            return opened.read(window=window, out=out)
    except (RasterioError, CPLE_BaseError) as exc:
        why = str(exc.__cause__ or exc)  # rasterio puts GDAL's own message in the cause
        rows = f"rows {window.row_off}..{window.row_off + window.height}"
        raise InputError(path, f"{rows} are not readable ({why})") from exc


def read_composite(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray, dict]:
    """Read a composite and undo its scaling.

    Returns:
        (bands (n, rows, cols) float32: reflectance, NDWI in -1..1, NaN where nodata;
        count (rows, cols) int32; meta: profile, tags, ``band_names`` of the returned bands).

    Raises:
        InputError: not a composite (no SCALE tag or no count band).
    """
    arr, meta = io.read_raster(path)
    names = list(meta["band_names"])
    scale = meta["tags"].get("SCALE")
    if scale is None or COUNT_BAND not in names:
        raise InputError(path, f"not a lakepaper composite (needs tag SCALE and a {COUNT_BAND} band)")
    k = names.index(COUNT_BAND)
    count = arr[k].astype(np.int32)
    keep = [i for i in range(len(names)) if i != k]
    data = arr[keep].astype(np.float32)
    data[arr[keep] == meta["nodata"]] = np.nan
    data /= float(scale)
    meta["band_names"] = [names[i] for i in keep]
    return data, count, meta
