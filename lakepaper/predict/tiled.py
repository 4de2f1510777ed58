"""Seamless sliding-window prediction of one tile, strip by strip, into two Cloud-Optimised GeoTIFFs.

The tile is read one strip of windows at a time (``size`` rows plus what the reflection padding
needs), the windows of the strip go through the model ``batch`` at a time, and the kept centres
are written into the outputs as they come. Peak memory is therefore one strip (bands x size x
tile width) plus one batch of windows, whatever the tile's height (:mod:`.windows` explains the
geometry).

The strip loop runs one of two ways (``pipeline``), with byte-identical outputs:

* ``sequential``: read and pad a strip, run its windows through the model, stitch and write it, then
  the next strip;
* ``overlapped``: reader threads read, pad and batch the next strips (GDAL releases the GIL) while
  the model runs on this one, a writer thread stitches and writes (deflate) the finished strips,
  and the two COGs are laid out at once at the end; at most ``DEPTH`` strips wait at either end,
  so memory stays bounded by the strip. On CUDA the readers stack the windows straight into pinned
  host buffers of the model call (:func:`lakepaper.predict.model.make_forward`), which copies
  them without blocking, so the GPU is fed while the CPU threads read and write;
* ``auto`` (the default): ``AUTO_PIPELINE`` per device of the model call (its ``device``
  attribute; a plain function counts as CPU). On the 2-core AVX-512 CPU of the README the threads
  take time from the convolutions (``benchmarks/predict.py --pipeline both``, demo profile, 3072 px
  tile: overlapped ran at 0.94-0.95 of the sequential throughput in bf16, the precision ``auto``
  picks there, and 0.80-1.23 in fp32), so CPU stays sequential; with a GPU the CPU cores would
  otherwise wait for it, so CUDA overlaps.

Outputs, on the input's grid (CRS, transform, size):

* ``<name>_prob.tif``: uint8 lake probability x ``PROB_SCALE`` (0..250; tag ``SCALE``), 255 no data;
* ``<name>_mask.tif``: uint8 1 lake (probability > ``threshold``), 0 not lake, 255 no data.

No data propagates from the input: a pixel without a valid value in every band is 255 in both
(the model sees 0 there, and its neighbours see that 0 as context). Both files are written to
temporary names and renamed into place last, so a killed run leaves no tile that looks finished.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.errors import RasterioIOError
from rasterio.windows import Window

from lakepaper.errors import InputError, ParameterError
from lakepaper.io import atomic_path
from lakepaper.predict import windows

PROB_SCALE = 250
NODATA = 255
#: Creation options of the outputs: Cloud-Optimised GeoTIFF, deflate (uint8 masks compress well).
COG_OPTIONS = {"driver": "COG", "compress": "DEFLATE", "blocksize": 512, "overview_resampling": "nearest"}

#: A model call: float32 (batch, bands, size, size) -> lake probability (batch, size, size) in 0..1.
Forward = Callable[[np.ndarray], np.ndarray]
PIPELINES = ("auto", "sequential", "overlapped")
#: What ``pipeline="auto"`` runs, by the model call's device type (anything not listed: ``overlapped``).
AUTO_PIPELINE = {"cpu": "sequential", "cuda": "overlapped"}
#: Strips read ahead of the model, and finished strips waiting for the writer, at most (overlapped loop).
DEPTH = 2


@dataclass
class InputTile:
    """A GeoTIFF to predict: which of its bands feed the model, and how to undo its scaling.

    Band order: the model's ``bands`` are looked up by the file's band descriptions when it has
    them (a lakepaper composite does); otherwise the file's first bands are taken in the order
    ``file_bands`` gives. Scaling: ``scale`` if given, else the file's ``SCALE`` tag, else 1.
    """

    path: Path
    bands: tuple[str, ...]
    indexes: list[int]
    scale: float
    nodata: float | None
    profile: dict

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        bands: Sequence[str],
        *,
        scale: float | None = None,
        file_bands: Sequence[str] | None = None,
    ) -> InputTile:
        path = Path(path)
        if not path.exists():
            raise InputError(path, "input tile not found")
        try:
            with rasterio.open(path) as src:
                profile, tags, desc = dict(src.profile), src.tags(), list(src.descriptions)
        except RasterioIOError as exc:
            raise InputError(path, f"not a readable GeoTIFF ({exc})") from exc
        names = list(file_bands) if file_bands else [d for d in desc if d] if all(desc) else None
        if names is None:
            raise InputError(path, f"bands have no names: pass the file's band order (e.g. --bands {','.join(bands)})")
        if file_bands and len(file_bands) > profile["count"]:
            n = profile["count"]
            raise InputError(path, f"has {n} bands, but {len(file_bands)} were named: {list(file_bands)}")
        missing = [b for b in bands if b not in names]
        if missing:
            raise InputError(path, f"lacks band(s) {missing} the model was trained on; it has {names}")
        if scale is None:
            scale = float(tags.get("SCALE", 1.0))
        if not scale > 0:
            raise ParameterError("scale", f"must be positive, got {scale}")
        return cls(path, tuple(bands), [names.index(b) + 1 for b in bands], float(scale), profile["nodata"], profile)

    @property
    def shape(self) -> tuple[int, int]:
        return self.profile["height"], self.profile["width"]

    def read_rows(self, src: rasterio.io.DatasetReader, r0: int, r1: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows ``r0..r1`` (clipped to the tile): float32 values (NaN where no data) and the valid mask."""
        win = Window(0, r0, self.shape[1], r1 - r0)
        raw = src.read(self.indexes, window=win)
        data = raw.astype(np.float32) / self.scale
        bad = ~np.isfinite(data)
        if self.nodata is not None and not np.isnan(self.nodata):
            bad |= raw == self.nodata
        valid = ~bad.any(axis=0)
        data[:, ~valid] = np.nan
        return data, valid


def _padded_strip(tile: InputTile, src, row0: int, size: int, edge: int) -> tuple[np.ndarray, np.ndarray]:
    """The input rows ``row0 .. row0 + size`` (tile coordinates, may exceed the tile), reflect-padded,
    and padded by ``edge`` columns left and enough right for whole windows; NaN set to 0."""
    n_rows, n_cols = tile.shape
    lo, hi = max(row0, 0), min(row0 + size, n_rows)
    data, valid = tile.read_rows(src, lo, hi)
    col_starts = windows.starts(n_cols, size, edge)
    right = col_starts[-1] + size - n_cols
    pad = ((0, 0), (lo - row0, row0 + size - hi), (edge, right))
    data = np.pad(np.nan_to_num(data, nan=0.0), pad, mode="reflect")
    return data, valid


def resolve_pipeline(pipeline: str, device: str = "cpu") -> str:
    """``sequential`` or ``overlapped``: ``auto`` becomes ``AUTO_PIPELINE``'s choice for ``device``."""
    if pipeline not in PIPELINES:
        raise ParameterError("pipeline", f"expected one of {PIPELINES}, got {pipeline!r}")
    if pipeline != "auto":
        return pipeline
    return AUTO_PIPELINE.get(str(device).split(":")[0], "overlapped")


@dataclass
class _Strips:
    """What every strip of one tile shares: its geometry, the model call and the two open outputs.

    A model call with an ``empty(shape)`` attribute (:func:`lakepaper.predict.model.make_forward` on CUDA) gets its
    windows in float32 arrays it allocated (pinned host memory), stacked there by the reader threads.
    """

    tile: InputTile
    forward: Forward
    size: int
    edge: int
    keep: int
    batch: int
    threshold: float
    col_starts: list[int]
    dst_p: rasterio.io.DatasetWriter
    dst_m: rasterio.io.DatasetWriter

    def batches(self, src, r0: int) -> tuple[Iterator[np.ndarray], np.ndarray]:
        """The strip at ``r0``: its windows ``batch`` at a time (float32, made as iterated) and its valid mask."""
        strip, valid = _padded_strip(self.tile, src, r0, self.size, self.edge)
        e, n = self.edge, self.size
        cuts = [strip[:, :, c + e : c + e + n] for c in self.col_starts]
        groups = (cuts[k : k + self.batch] for k in range(0, len(cuts), self.batch))
        empty = getattr(self.forward, "empty", None)
        if empty is None:
            return (np.stack(g).astype(np.float32) for g in groups), valid
        # the model call's own host buffers (pinned memory on CUDA): the windows are stacked straight into them
        return (np.stack(g, out=empty((len(g), strip.shape[0], n, n))) for g in groups), valid

    def model(self, batches) -> tuple[list[np.ndarray], float]:
        """The probabilities of every window of a strip, and the seconds spent in the model."""
        probs, seconds = [], 0.0
        for x in batches:
            t0 = time.perf_counter()
            probs.extend(self.forward(x))
            seconds += time.perf_counter() - t0
        return probs, seconds

    def write(self, r0: int, probs: list[np.ndarray], valid: np.ndarray) -> tuple[int, int]:
        """Stitch the kept centres of a strip, write them into both outputs; (lake pixels, no-data pixels)."""
        n_rows, n_cols = self.tile.shape
        edge, keep = self.edge, self.keep
        row_lo, row_hi = r0 + edge, min(r0 + edge + keep, n_rows)
        centre = np.concatenate([q[edge : edge + keep, edge : edge + keep] for q in probs], axis=1)
        centre = centre[: row_hi - row_lo, :n_cols]
        ok = valid[row_lo - max(r0, 0) : row_hi - max(r0, 0)]
        prob8 = np.where(ok, np.rint(np.clip(centre, 0, 1) * PROB_SCALE), NODATA).astype(np.uint8)
        mask8 = np.where(ok, centre > self.threshold, NODATA).astype(np.uint8)
        win = Window(0, row_lo, n_cols, row_hi - row_lo)
        self.dst_p.write(prob8, 1, window=win)
        self.dst_m.write(mask8, 1, window=win)
        return int((mask8 == 1).sum()), int((~ok).sum())


def _sequential(job: _Strips, row_starts: list[int], bar) -> tuple[float, int, int]:
    """One strip after the other in this thread; (model seconds, lake pixels, no-data pixels)."""
    model_s, lake, nodata = 0.0, 0, 0
    with rasterio.open(job.tile.path) as src:
        for r0 in row_starts:
            batches, valid = job.batches(src, r0)
            probs, seconds = job.model(batches)
            n_lake, n_nodata = job.write(r0, probs, valid)
            model_s, lake, nodata = model_s + seconds, lake + n_lake, nodata + n_nodata
            bar.update()
    return model_s, lake, nodata


def _overlapped(job: _Strips, row_starts: list[int], bar, readers: int) -> tuple[float, int, int]:
    """Reader threads ``DEPTH`` strips ahead, the model in this thread, a writer thread behind; same result."""
    local, handles, lock = threading.local(), [], threading.Lock()

    def read(r0: int) -> tuple[list[np.ndarray], np.ndarray]:
        src = getattr(local, "src", None)
        if src is None:  # one dataset handle per reader thread: GDAL handles are not shared across threads
            src = local.src = rasterio.open(job.tile.path)
            with lock:
                handles.append(src)
        batches, valid = job.batches(src, r0)
        return list(batches), valid

    model_s, lake, nodata = 0.0, 0, 0
    pending: deque[Future] = deque()
    writes: deque[Future] = deque()
    try:
        with (
            ThreadPoolExecutor(readers, thread_name_prefix="lakepaper-read") as pool,
            ThreadPoolExecutor(1, thread_name_prefix="lakepaper-write") as writer,  # one thread: strips in order
        ):
            try:
                ahead = iter(row_starts)
                for r0 in ahead:
                    pending.append(pool.submit(read, r0))
                    if len(pending) > DEPTH:
                        break
                for r0 in row_starts:
                    batches, valid = pending.popleft().result()
                    nxt = next(ahead, None)
                    if nxt is not None:
                        pending.append(pool.submit(read, nxt))
                    probs, seconds = job.model(batches)
                    del batches
                    model_s += seconds
                    writes.append(writer.submit(job.write, r0, probs, valid))
                    while len(writes) > DEPTH or (writes and writes[0].done()):
                        n_lake, n_nodata = writes.popleft().result()
                        lake, nodata = lake + n_lake, nodata + n_nodata
                        bar.update()
                while writes:
                    n_lake, n_nodata = writes.popleft().result()
                    lake, nodata = lake + n_lake, nodata + n_nodata
                    bar.update()
            except BaseException:
                for f in (*pending, *writes):
                    f.cancel()
                raise
    finally:
        for src in handles:
            src.close()
    return model_s, lake, nodata


def predict_tile(
    forward: Forward,
    tile: InputTile,
    out_prob: str | os.PathLike[str],
    out_mask: str | os.PathLike[str],
    *,
    size: int,
    edge: int,
    batch: int = 4,
    threshold: float = 0.5,
    progress: bool = False,
    run_id: str = "",
    pipeline: str = "auto",
    readers: int | None = None,
) -> dict:
    """Predict every pixel of ``tile`` once; write the probability and mask COGs.

    Args:
        forward: the model call (see ``Forward``); its ``device`` attribute, if any, picks the ``auto`` pipeline.
        tile: the opened input (:meth:`InputTile.open`).
        out_prob, out_mask: the two GeoTIFFs to write.
        size: window side (the model's patch size); edge: pixels discarded at each window border.
        batch: windows per model call.
        threshold: probability above which a pixel is lake (the paper's 0.5).
        run_id: written into both files as the ``RUN_ID`` tag (:func:`lakepaper.predict.cluster.run_id`: which
            model, input and settings made them); empty: no tag.
        pipeline: ``sequential``, ``overlapped`` or ``auto`` (see the module's docstring); the outputs are the
            same bytes either way.
        readers: reader threads of the overlapped loop (default: 1 on CPU, up to 4 with a GPU).

    Returns:
        tile, pixels, windows, lake share, no-data share, seconds (total and in the model), the pipeline run.
    """
    from tqdm.auto import tqdm

    keep = windows.check_geometry(size, edge)
    if batch < 1:
        raise ParameterError("batch", f"must be >= 1, got {batch}")
    if not 0.0 < threshold < 1.0:
        raise ParameterError("prob_threshold", f"must lie in (0, 1), got {threshold}")
    device = str(getattr(forward, "device", "cpu"))
    pipeline = resolve_pipeline(pipeline, device)
    if readers is None:
        readers = 1 if device == "cpu" else max(1, min(4, (os.cpu_count() or 2) // 2))
    if readers < 1:
        raise ParameterError("readers", f"must be >= 1, got {readers}")
    started = time.perf_counter()
    n_rows, n_cols = tile.shape
    row_starts, col_starts = windows.starts(n_rows, size, edge), windows.starts(n_cols, size, edge)
    profile = {k: tile.profile[k] for k in ("crs", "transform", "width", "height")}
    out = dict(
        profile,
        driver="GTiff",
        count=1,
        dtype="uint8",
        nodata=NODATA,
        tiled=True,
        blockxsize=256,
        blockysize=256,
        compress="deflate",
    )
    if n_cols < 256 or n_rows < 256:
        out.update(tiled=False) if min(n_cols, n_rows) < 16 else out.update(blockxsize=16, blockysize=16)
    bar_options = {"unit": "strip", "disable": not progress, "leave": False}
    with atomic_path(out_prob) as tmp_prob, atomic_path(out_mask) as tmp_mask:
        # strips go to plain GeoTIFFs first; the COG driver then lays out the blocks and overviews
        strips = [t.with_name(t.name + ".strips.tif") for t in (tmp_prob, tmp_mask)]
        try:
            with (
                rasterio.open(strips[0], "w", **out) as dst_p,
                rasterio.open(strips[1], "w", **out) as dst_m,
                tqdm(total=len(row_starts), desc=tile.path.stem, **bar_options) as bar,
            ):
                job = _Strips(tile, forward, size, edge, keep, batch, threshold, col_starts, dst_p, dst_m)
                if pipeline == "overlapped":
                    model_s, lake, nodata = _overlapped(job, row_starts, bar, readers)
                else:
                    model_s, lake, nodata = _sequential(job, row_starts, bar)
                common = {"THRESHOLD": threshold, "WINDOW": size, "EDGE": edge, "SOURCE": tile.path.name}
                if run_id:
                    common["RUN_ID"] = run_id
                dst_p.update_tags(SCALE=PROB_SCALE, CONTENT=f"lake probability x {PROB_SCALE}", **common)
                dst_m.update_tags(SCALE=1, CONTENT="lake mask: 1 lake, 0 not lake", **common)
                dst_p.set_band_description(1, "lake_probability")
                dst_m.set_band_description(1, "lake")
            pairs = ((strips[0], tmp_prob), (strips[1], tmp_mask))
            if pipeline == "overlapped":  # the two COGs at once (GDAL compresses without the GIL)
                with ThreadPoolExecutor(2, thread_name_prefix="lakepaper-cog") as pool:
                    for f in [pool.submit(rasterio.shutil.copy, a, b, **COG_OPTIONS) for a, b in pairs]:
                        f.result()
            else:
                for a, b in pairs:
                    rasterio.shutil.copy(a, b, **COG_OPTIONS)
        finally:
            for s in strips:
                s.unlink(missing_ok=True)
    pixels = n_rows * n_cols
    return {
        "tile": tile.path.stem,
        "pixels": pixels,
        "windows": len(row_starts) * len(col_starts),
        "lake_share": lake / pixels,
        "nodata_share": nodata / pixels,
        "seconds": time.perf_counter() - started,
        "model_seconds": model_s,
        "pipeline": pipeline,
    }
