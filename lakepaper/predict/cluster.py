"""Predicting many tiles in parallel with Dask distributed, resumably.

Each tile is one task: the worker loads the checkpoint once (cached per process; a compiled model is
compiled there, at its first call), predicts the tile strip by strip
(:func:`lakepaper.predict.tiled.predict_tile`) and writes its two COGs atomically.

Which tiles are done: a tile whose outputs both exist *and* carry this run's ``RUN_ID`` tag (a hash of
the checkpoint's bytes, the input tile's bytes and the settings) is not predicted again, so a killed
run continues where it stopped, never trusts a half-written file (there is none: outputs are renamed
into place), and a tile predicted by another model, from another composite or with another threshold
is predicted again rather than kept. So that a list of 100,000 tiles (the global land grid) resumes
without hashing every input and opening every output in the client, each finished tile is also
recorded in a ledger, ``<out_dir>/.predicted.sqlite`` (:class:`Ledger`: the tile, its input's size and
modification time, the model and settings, its ``RUN_ID``): a tile whose record matches (same model and
settings, input unchanged in size and time, both outputs present in one listing of the folder) is
skipped at once; any other is sent to a worker, which hashes its input and checks the tags (skipping it
if they match: a lost or deleted ledger costs one hash per tile, never a prediction) before predicting.

Where it runs (:func:`plan_workers`):

* ``scheduler`` = the address of any running Dask scheduler (``tcp://host:8786``: a cluster of GPU or
  CPU machines; where its workers declare a ``GPU`` resource, each task asks for one);
* ``scheduler="sync"``: in this process without Dask (for debugging and tests);
* else a local cluster fitted to this machine: with CUDA, one worker per visible GPU, each pinned to
  its own (``CUDA_VISIBLE_DEVICES``, worker resource ``{"GPU": 1}``, which every task requests), with
  ``cores // GPUs`` CPU threads for its reader threads; on the CPU, ``n_workers`` processes of
  ``threads_per_worker`` torch threads, so that ``n_workers x threads_per_worker = cores`` (either
  given; neither: one thread per worker, one worker per core).

Progress: a bar over all the tiles (those done before count from the start), with finished tiles and
km2 per hour and the time left.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import math
import os
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from lakepaper import io
from lakepaper.errors import InputError, ParameterError
from lakepaper.predict.model import COMPILES, load_forward
from lakepaper.predict.tiled import InputTile, predict_tile

_CACHE: dict[tuple, Any] = {}
#: The ledger of finished tiles in the output folder (a hidden name: not an output, not in the stage's hashes).
LEDGER = ".predicted.sqlite"
#: Settings that change where or how fast a tile runs, not its outputs (beyond floating-point rounding):
#: left out of the ``RUN_ID``.
EXECUTION = ("threads", "run_id", "compile", "model_hash")
DEVICES = ("auto", "cpu", "cuda")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS tiles (
    name TEXT PRIMARY KEY, source TEXT, size INTEGER, mtime_ns INTEGER, settings TEXT, run_id TEXT,
    pixels INTEGER, km2 REAL, seconds REAL, finished REAL
);
"""


def output_paths(out_dir: str | os.PathLike[str], name: str) -> tuple[Path, Path]:
    """The probability and mask files of a tile: ``<out_dir>/<name>_prob.tif``, ``<name>_mask.tif``."""
    return Path(out_dir) / f"{name}_prob.tif", Path(out_dir) / f"{name}_mask.tif"


def _outputs_settings(settings: dict) -> dict:
    return {k: v for k, v in sorted(settings.items()) if k not in EXECUTION}


def run_id(tile_path: str | os.PathLike[str], checkpoint_hash: str, settings: dict) -> str:
    """What makes a tile's outputs: the checkpoint, the input tile's bytes, the settings (``EXECUTION`` aside)."""
    h = hashlib.sha256(checkpoint_hash.encode())
    h.update(io.sha256_file(tile_path).encode())
    h.update(json.dumps(_outputs_settings(settings), sort_keys=True).encode())
    return h.hexdigest()[:32]


def settings_key(checkpoint_hash: str, settings: dict) -> str:
    """The part of :func:`run_id` every tile of a run shares (model and settings): the ledger's ``settings``."""
    text = json.dumps([checkpoint_hash, _outputs_settings(settings)], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def is_done(out_dir: str | os.PathLike[str], name: str, rid: str) -> bool:
    """Both outputs of a tile exist and were written by the run ``rid``."""
    import rasterio

    for path in output_paths(out_dir, name):
        try:
            with rasterio.open(path) as src:
                if src.tags().get("RUN_ID") != rid:
                    return False
        except rasterio.errors.RasterioIOError:  # missing or unreadable: not done
            return False
    return True


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


class Ledger:
    """The finished tiles of an output folder (``<out_dir>/.predicted.sqlite``), written by the client only.

    A record is a shortcut, never the proof: the outputs' ``RUN_ID`` tags are. A record whose input changed
    (size or modification time), whose settings differ, or whose outputs are gone makes the tile go to a
    worker, which checks the tags. Deleting the file is always safe.

    Raises:
        InputError: the file exists but is not a ledger (or cannot be written).
    """

    def __init__(self, out_dir: str | os.PathLike[str]) -> None:
        self.path = Path(out_dir) / LEDGER
        self.db = None
        try:
            self.db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            if self.db is not None:
                self.db.close()
            problem = f"cannot use the ledger of finished tiles ({exc}); delete it to start a new one"
            raise InputError(self.path, problem + " (finished tiles are still recognised by their tags)") from exc

    def finished(self, key: str) -> dict[str, tuple[int, int]]:
        """Tile name -> (input size, input mtime_ns) of the tiles recorded with the settings ``key``."""
        rows = self.db.execute("SELECT name, size, mtime_ns FROM tiles WHERE settings = ?", (key,))
        return {name: (size, mtime) for name, size, mtime in rows}

    def record(self, name: str, source: Path, stat: tuple[int, int] | None, key: str, row: dict) -> None:
        """The tile ``name`` (input ``source`` with ``stat`` as seen before it ran) is done with settings ``key``."""
        if stat is None:
            return
        self.db.execute(
            "INSERT OR REPLACE INTO tiles VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (name, str(source), stat[0], stat[1], key, row.get("run_id"), row.get("pixels"), row.get("km2"),
             row.get("seconds"), time.time()),
        )  # fmt: skip

    def close(self) -> None:
        self.db.close()


def pixel_km2(profile: dict) -> float:
    """Area of one pixel of a raster profile, km2 (projected CRS: its linear unit; geographic: at the centre)."""
    t, crs = profile["transform"], profile.get("crs")
    area = abs(t.a * t.e - t.b * t.d)
    if crs is not None and crs.is_geographic:
        lat = t.f + t.e * profile["height"] / 2
        return area * 111.32**2 * math.cos(math.radians(lat))
    factor = crs.linear_units_factor[1] if crs is not None and crs.is_projected else 1.0
    return area * factor**2 * 1e-6


def cpu_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def visible_gpus() -> tuple[str, ...]:
    """The CUDA devices this process sees, each as ``CUDA_VISIBLE_DEVICES`` names it (index, UUID or MIG id)."""
    import torch

    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    names = [s.strip() for s in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if s.strip()]
    return tuple(names[:n]) if len(names) >= n else tuple(str(i) for i in range(n))


@dataclass(frozen=True)
class WorkerPlan:
    """A local cluster fitted to the machine: ``n_workers`` processes of ``threads`` torch threads each, on
    ``device``; with CUDA, worker ``i`` sees only GPU ``gpus[i]``."""

    device: str
    n_workers: int
    threads: int
    gpus: tuple[str, ...] = ()


def plan_workers(
    device: str = "auto",
    n_workers: int | None = None,
    threads_per_worker: int | None = None,
    *,
    cores: int | None = None,
    gpus: Sequence[str] | None = None,
) -> WorkerPlan:
    """How many workers, of how many threads, on which device.

    Args:
        device: ``auto`` (CUDA if a GPU is visible), ``cpu`` or ``cuda``.
        n_workers: worker processes (CUDA: at most one per GPU, default one per GPU; CPU: default
            ``cores // threads_per_worker``).
        threads_per_worker: torch threads per worker (default ``cores // n_workers``; on the CPU with
            neither given, 1, and one worker per core).
        cores: CPU cores (default: those this process may use); gpus: visible GPUs (default: :func:`visible_gpus`).

    Raises:
        ParameterError: an unknown device, ``cuda`` without a GPU, more workers than GPUs, a count below 1.
    """
    if device not in DEVICES:
        raise ParameterError("device", f"expected one of {DEVICES}, got {device!r}")
    for name, value in (("n_workers", n_workers), ("threads_per_worker", threads_per_worker)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ParameterError(name, f"must be a whole number >= 1 (or unset), got {value!r}")
    cores = cores or cpu_cores()
    gpus = tuple(visible_gpus() if gpus is None and device != "cpu" else gpus or ())
    if device == "auto":
        device = "cuda" if gpus else "cpu"
    if device == "cuda":
        if not gpus:
            raise ParameterError("device", "cuda was asked for, but no CUDA device is visible")
        n = n_workers or len(gpus)
        if n > len(gpus):
            raise ParameterError("n_workers", f"one worker per GPU: at most {len(gpus)} here, got {n}")
        return WorkerPlan("cuda", n, threads_per_worker or max(1, cores // n), gpus[:n])
    if n_workers and threads_per_worker:
        return WorkerPlan("cpu", n_workers, threads_per_worker)
    if n_workers:
        return WorkerPlan("cpu", n_workers, max(1, cores // n_workers))
    threads = threads_per_worker or 1
    return WorkerPlan("cpu", max(1, cores // threads), threads)


def local_cluster(plan: WorkerPlan):
    """A Dask cluster of worker processes on this machine, as ``plan`` says; with CUDA, each worker's
    ``CUDA_VISIBLE_DEVICES`` is its own GPU and it offers the resource ``{"GPU": 1}``."""
    from dask.distributed import LocalCluster

    if plan.device != "cuda":
        return LocalCluster(n_workers=plan.n_workers, threads_per_worker=1, processes=True, dashboard_address=None)
    import logging

    from dask.distributed import Nanny, Scheduler, SpecCluster

    workers = {
        f"gpu-{gpu}": {
            "cls": Nanny,
            "options": {"nthreads": 1, "resources": {"GPU": 1}, "env": {"CUDA_VISIBLE_DEVICES": gpu}},
        }
        for gpu in plan.gpus
    }
    scheduler = {"cls": Scheduler, "options": {"dashboard_address": None}}
    return SpecCluster(workers=workers, scheduler=scheduler, silence_logs=logging.WARNING, name="lakepaper-gpu")


def task_resources(client) -> dict | None:
    """``{"GPU": 1}`` where the cluster's workers offer GPUs (each task then holds one), else None."""
    workers = client.scheduler_info(n_workers=-1).get("workers", {})
    return {"GPU": 1} if any("GPU" in (w.get("resources") or {}) for w in workers.values()) else None


def predict_one(tile_path: str, checkpoint: str, out_dir: str, settings: dict) -> dict:
    """One tile, in whichever process runs it (model cached per process and settings).

    Without ``settings["run_id"]``, it is computed here (:func:`run_id`, from ``settings["model_hash"]``) and a
    tile whose outputs already carry it is not predicted again (``skipped``).
    """
    import torch

    threads = settings.get("threads")
    if threads:
        torch.set_num_threads(int(threads))
    name = Path(tile_path).stem
    rid = settings.get("run_id")
    if rid is None:
        rid = run_id(tile_path, settings.get("model_hash", str(checkpoint)), settings)
        if is_done(out_dir, name, rid):
            return {"tile": name, "skipped": True, "run_id": rid}
    compile_mode = settings.get("compile", "auto")
    key = (checkpoint, settings["precision"], compile_mode)
    if key not in _CACHE:
        _CACHE[key] = load_forward(checkpoint, precision=settings["precision"], compile=compile_mode)
    forward, bands, size = _CACHE[key]
    tile = InputTile.open(tile_path, bands, **(settings.get("tile") or {}))
    prob, mask = output_paths(out_dir, name)
    cuda = str(getattr(forward, "device", "cpu")) == "cuda"
    info = predict_tile(
        forward,
        tile,
        prob,
        mask,
        size=settings.get("size") or size,
        edge=settings["edge"],
        batch=settings["batch"],
        threshold=settings["threshold"],
        run_id=rid,
        readers=max(1, min(4, int(threads) // 2)) if cuda and threads else None,
    )
    info.pop("pipeline")  # how the strips were scheduled (per device) changes no output, as threads do not
    return info | {"run_id": rid, "km2": info["pixels"] * pixel_km2(tile.profile)}


def predict_tiles(
    tiles: Sequence[str | os.PathLike[str]],
    checkpoint: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    edge: int,
    threshold: float = 0.5,
    batch: int = 4,
    precision: str = "fp32",
    size: int | None = None,
    compile: str = "auto",
    tile_options: dict | None = None,
    scheduler: str | None = None,
    device: str = "auto",
    n_workers: int | None = None,
    threads_per_worker: int | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Predict every tile not yet done; return one row per tile (``skipped`` for those already done).

    Args:
        tiles: input GeoTIFFs (composites of stage 01, or any file in the documented band order), any number.
        checkpoint: the trained model (stage 03).
        out_dir: where ``<tile>_prob.tif`` and ``<tile>_mask.tif`` go (and the ledger, ``.predicted.sqlite``).
        edge, threshold, batch: see :func:`lakepaper.predict.tiled.predict_tile`.
        precision: ``fp32`` or ``bf16`` (see :mod:`lakepaper.predict.model`).
        size: window side (default: the patch size the model was trained at).
        compile: the model call's ``torch.compile`` mode (:func:`lakepaper.predict.model.resolve_compile`,
            resolved in each worker for its device).
        tile_options: how to read the inputs, :meth:`lakepaper.predict.tiled.InputTile.open`'s keywords (``scale``,
            ``offset``, ``file_bands``); part of the ``RUN_ID``. None: each file's own metadata.
        scheduler: a Dask scheduler address, ``"sync"`` (no Dask), or None (a local cluster, :func:`plan_workers`).
        device, n_workers, threads_per_worker: the local cluster's (:func:`plan_workers`); with ``sync`` or an
            address, ``threads_per_worker`` alone counts (torch threads per worker; default: left as they are).

    Raises:
        ParameterError: a bad ``compile``, device or worker count.
        InputError: an unreadable ledger, or (from the tile's task) an unreadable input.
    """
    from tqdm.auto import tqdm

    if compile not in COMPILES:
        raise ParameterError("compile", f"expected one of {COMPILES}, got {compile!r}")
    plan = plan_workers(device, n_workers, threads_per_worker) if scheduler is None else None
    if plan is None and threads_per_worker is not None:
        plan_workers("cpu", 1, threads_per_worker)  # the same checks
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = {"edge": edge, "threshold": threshold, "batch": batch, "precision": precision, "size": size}
    if tile_options:
        settings["tile"] = dict(tile_options)
    model_hash = io.sha256_file(checkpoint) if Path(checkpoint).is_file() else str(checkpoint)
    key = settings_key(model_hash, settings)
    task = settings | {
        "threads": plan.threads if plan else threads_per_worker,
        "compile": compile,
        "model_hash": model_hash,
    }
    ledger = Ledger(out_dir)
    try:
        known, present = ledger.finished(key), {e.name for e in os.scandir(out_dir)}
        rows, todo = [], []
        for t in map(Path, tiles):
            stat, outputs = _stat(t), [p.name for p in output_paths(out_dir, t.stem)]
            if stat is not None and known.get(t.stem) == stat and all(o in present for o in outputs):
                rows.append({"tile": t.stem, "skipped": True})
            else:
                todo.append((t, stat))
        bar = tqdm(total=len(rows) + len(todo), initial=len(rows), desc="tiles", unit="tile", disable=not progress)
        started, done, km2 = time.perf_counter(), 0, 0.0

        def finish(path: Path, stat, row: dict) -> None:
            nonlocal done, km2
            ledger.record(path.stem, path, stat, key, row)
            row.pop("run_id", None)
            km2 += row.pop("km2", 0.0)
            rows.append(row | {"skipped": row.get("skipped", False)})
            done += 1  # tiles finished in this run (predicted, or found done by their tags)
            hours = (time.perf_counter() - started) / 3600
            bar.set_postfix_str(f"{done / hours:,.0f} tiles/h, {km2 / hours:,.0f} km2/h", refresh=False)
            bar.update()

        args = ((str(t), str(checkpoint), str(out_dir), task) for t, _ in todo)
        stats = {str(t): (t, stat) for t, stat in todo}
        if scheduler == "sync":
            for a in args:
                finish(*stats[a[0]], predict_one(*a))
        else:
            _on_dask(args, stats, finish, scheduler, plan)
        bar.close()
    finally:
        ledger.close()
    if not rows:
        return pd.DataFrame(columns=["tile", "skipped"])
    return pd.DataFrame(rows).sort_values("tile").reset_index(drop=True)


def _on_dask(args, stats: dict, finish, scheduler: str | None, plan: WorkerPlan | None) -> None:
    """The tasks on a local cluster (``plan``) or the scheduler at ``scheduler``, a bounded number in flight (so
    that a list of any length costs the scheduler no more than a few tasks per worker at a time)."""
    from dask.distributed import Client, as_completed

    cluster = local_cluster(plan) if scheduler is None else None
    client = Client(cluster or scheduler)
    try:
        resources = task_resources(client)
        workers = max(1, len(client.nthreads()))

        owner: dict = {}

        def submit(a):
            fut = client.submit(predict_one, *a, pure=False, resources=resources)
            owner[fut] = a[0]
            return fut

        pending = as_completed([submit(a) for a in itertools.islice(args, max(16, 4 * workers))])
        for fut in pending:
            finish(*stats[owner.pop(fut)], fut.result())
            nxt = next(args, None)
            if nxt is not None:
                pending.add(submit(nxt))
    finally:
        with contextlib.suppress(Exception):
            client.close()
        if cluster is not None:
            cluster.close()
