"""The local backend's engine: the paper's recipe (section 2.1) run block by block on this machine.

What the scenes are and where they come from is :mod:`lakepaper.composite.sources`' business
(any STAC catalog or API, the simulated world's included, read with odc-stac); this module holds
what every local run shares: the recipe's parameters (:data:`RECIPE_PARAMS`, which the Earth
Engine backend reads too), the block geometry (:func:`halo_rows`, :func:`default_block_rows`), the
dask graph of one tile (:class:`_BlockRun`) and the composite file's reader (:func:`read_composite`).

Per scene: mask clouds, shadows, their buffer, snow/ice and no data
(:mod:`lakepaper.composite.masks`); then average B2, B3, B4, B11 and per-scene NDWI over the
clear observations (:mod:`lakepaper.composite.kernel`). B11 (20 m) is resampled to 10 m by
**nearest neighbour**: each 20 m pixel covers exactly 2 x 2 pixels of the 10 m grid, no value is
invented, and it is what Earth Engine does when a 20 m band is used at 10 m without an explicit
``resample()``.

A tile is processed in blocks of rows: each block is read with a halo of :func:`halo_rows` rows
(the reach of the shadow projection and the cloud morphology), masked, and its own rows
accumulated; scenes stream through the kernel ``batch`` at a time. Memory is bounded by the block
size and the batch, not by the number of scenes; the result is bit-identical for any block size.
Blocks and scenes are dask tasks on the threaded scheduler, so reading (GDAL), masking and the
kernel overlap on the cores.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from lakepaper import io
from lakepaper.composite.kernel import DN_SCALE, MEAN_BANDS, Accumulator
from lakepaper.errors import InputError, ParameterError

#: Name of the band after the composite bands: clear observations per pixel.
COUNT_BAND = "clear_count"
#: Nodata of the composite bands (never 0: 0 is a valid reflectance and NDWI).
NODATA = -32768
#: Parameters of the recipe read here and in masks.py; the Earth Engine backend (gee.py) reads the same.
RECIPE_PARAMS = (
    "cloud_buffer_m",
    "cloud_erode_m",
    "cloud_morphology",
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

    A pixel's mask depends on cloud up to ``cloud_proj_dist_km`` away (the shadow projection),
    then on cloud | shadow within every step of ``cloud_morphology`` (the erosion looks
    ``cloud_erode_m`` away to decide what survives, the buffer ``cloud_buffer_m`` further): the sum
    in pixels, rounded up to a multiple of 8 rows so that the 20 m bands (and any grid up to 80 m)
    stay aligned.
    """
    from lakepaper.composite.masks import morphology_steps

    need = math.ceil(max(float(p["cloud_proj_dist_km"]), 0.0) * 1000.0 / resolution_m)
    need += sum(math.ceil(radius_m / resolution_m) for _, radius_m in morphology_steps(p))
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


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ParameterError(name, f"expected a positive int, got {value!r}")
    return int(value)


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

    def check(self) -> None:
        """Check every scene's inputs before any block runs (raise the first problem, naming it)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what :meth:`check` opened."""

    def _load(self, k: int, j: int, i: int, r0: int, r1: int, _free: Any) -> None:
        """Read and mask scene ``i`` for block ``r0:r1`` (halo included) into slot ``j`` of buffer ``k``."""
        raise NotImplementedError

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
                factor = scale if name == "NDWI" else scale / DN_SCALE
                np.copyto(out[i], np.clip(np.rint(plane * factor), -32767, 32767).astype(np.int16), where=seen)
        out[-1] = np.minimum(count, 32767).astype(np.int16)
        return int(seen.sum()), int(count.sum(dtype=np.int64))


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
