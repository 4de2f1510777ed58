"""Predicting many tiles in parallel with Dask distributed, resumably.

Each tile is one task: the worker loads the checkpoint once (cached per process), predicts the
tile strip by strip (:func:`lakepaper.predict.tiled.predict_tile`) and writes its two COGs
atomically. A tile whose outputs both exist *and* carry this run's ``RUN_ID`` tag (a hash of the
checkpoint's bytes, the input tile's bytes and the settings) is skipped, so a killed run continues
where it stopped, never trusts a half-written file (there is none: outputs are renamed into place),
and a tile predicted by another model, from another composite or with another threshold is
predicted again rather than kept.

Where it runs: ``scheduler`` = the address of any running Dask scheduler (``tcp://host:8786``:
a cluster of GPU or CPU machines), else a ``LocalCluster`` of ``n_workers`` processes with
``threads`` torch threads each, else (``scheduler="sync"``) in this process without Dask (for
debugging and tests).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from lakepaper import io
from lakepaper.errors import ParameterError
from lakepaper.predict.model import load_forward
from lakepaper.predict.tiled import InputTile, predict_tile

_CACHE: dict[tuple, Any] = {}


def output_paths(out_dir: str | os.PathLike[str], name: str) -> tuple[Path, Path]:
    """The probability and mask files of a tile: ``<out_dir>/<name>_prob.tif``, ``<name>_mask.tif``."""
    return Path(out_dir) / f"{name}_prob.tif", Path(out_dir) / f"{name}_mask.tif"


def run_id(tile_path: str | os.PathLike[str], checkpoint_hash: str, settings: dict) -> str:
    """What makes a tile's outputs: the checkpoint, the input tile's bytes, the settings (threads aside)."""
    h = hashlib.sha256(checkpoint_hash.encode())
    h.update(io.sha256_file(tile_path).encode())
    h.update(json.dumps({k: v for k, v in sorted(settings.items()) if k not in ("threads", "run_id")}).encode())
    return h.hexdigest()[:32]


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


def predict_one(tile_path: str, checkpoint: str, out_dir: str, settings: dict) -> dict:
    """One tile, in whichever process runs it (model cached per process and settings)."""
    import torch

    torch.set_num_threads(int(settings.get("threads", 1)))
    key = (checkpoint, settings["precision"])
    if key not in _CACHE:
        _CACHE[key] = load_forward(checkpoint, precision=settings["precision"])
    forward, bands, size = _CACHE[key]
    tile = InputTile.open(tile_path, bands, scale=settings.get("scale"))
    prob, mask = output_paths(out_dir, Path(tile_path).stem)
    info = predict_tile(
        forward,
        tile,
        prob,
        mask,
        size=settings.get("size") or size,
        edge=settings["edge"],
        batch=settings["batch"],
        threshold=settings["threshold"],
        run_id=settings.get("run_id", ""),
    )
    info.pop("pipeline")  # how the strips were scheduled (per device) changes no output, as threads do not
    return info


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
    scheduler: str | None = None,
    n_workers: int | None = None,
    threads: int = 1,
    progress: bool = True,
) -> pd.DataFrame:
    """Predict every tile not yet done; return one row per tile (``skipped`` for those already done).

    Args:
        tiles: input GeoTIFFs (composites of stage 01, or any file in the documented band order).
        checkpoint: the trained model (stage 03).
        out_dir: where ``<tile>_prob.tif`` and ``<tile>_mask.tif`` go.
        edge, threshold, batch: see :func:`lakepaper.predict.tiled.predict_tile`.
        precision: ``fp32`` or ``bf16`` (see :mod:`lakepaper.predict.model`).
        size: window side (default: the patch size the model was trained at).
        scheduler: a Dask scheduler address, ``"sync"`` (no Dask), or None (a LocalCluster).
        n_workers: LocalCluster processes (default: CPU count // threads).
        threads: torch threads per worker.
    """
    from tqdm.auto import tqdm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = {
        "edge": edge,
        "threshold": threshold,
        "batch": batch,
        "precision": precision,
        "size": size,
        "threads": threads,
    }
    model_hash = io.sha256_file(checkpoint) if Path(checkpoint).is_file() else str(checkpoint)
    todo, rows = [], []
    for t in map(Path, tiles):
        rid = run_id(t, model_hash, settings)
        if is_done(out_dir, t.stem, rid):
            rows.append({"tile": t.stem, "skipped": True})
        else:
            todo.append((str(t), rid))
    args = [(t, str(checkpoint), str(out_dir), settings | {"run_id": rid}) for t, rid in todo]
    bar = tqdm(total=len(todo), desc="tiles", unit="tile", disable=not progress)
    if scheduler == "sync":
        for a in args:
            rows.append(predict_one(*a) | {"skipped": False})
            bar.update()
    else:
        from dask.distributed import Client, LocalCluster, as_completed

        if threads < 1:
            raise ParameterError("threads", f"must be >= 1, got {threads}")
        cluster = None
        if scheduler is None:
            workers = n_workers or max(1, (os.cpu_count() or 1) // threads)
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster or scheduler)
        try:
            futures = [client.submit(predict_one, *a, pure=False) for a in args]
            for fut in as_completed(futures):
                rows.append(fut.result() | {"skipped": False})
                bar.update()
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    bar.close()
    return pd.DataFrame(rows).sort_values("tile").reset_index(drop=True)
