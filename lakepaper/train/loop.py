"""The training loop of the paper (section 2.3, Supplementary Table 1), resumable and deterministic.

One epoch = ``patches_per_epoch`` training patches in batches of ``batch_size`` (area-proportional
draws, random flips; :mod:`lakepaper.train.sampler`), one AdaDelta step per batch on the loss
``1 - Dice(batch) + l2_output * |W_out|^2``, then ``val_patches_per_epoch`` validation patches
(unflipped) scored with the same loss in eval mode. After each epoch:

* ``best.pt`` is rewritten when the validation loss is lower than every earlier epoch's;
* training stops when it has not been lower for ``patience`` epochs (or after ``max_epochs``);
* ``history.csv``, ``timing.csv`` (seconds per epoch), ``last.pt`` (everything needed to continue)
  and ``train.log`` are written.

Randomness: the weights are initialised from ``torch.manual_seed(train_seed)``; the patches of
epoch ``k`` come from ``numpy.random.default_rng([train_seed, k, 0])`` (validation: ``[train_seed,
k, 1]``, or ``[train_seed, 0, 1]`` every epoch when ``val_resample`` is False). Nothing else is
random (no dropout), so on the CPU two runs with the same seed give byte-identical ``best.pt``,
``last.pt`` and ``history.csv`` (wall times go to ``timing.csv`` and ``train.log`` only), and a
run continued from ``last.pt`` after an interruption ends exactly where an uninterrupted one does:
epoch ``k``'s patches do not depend on how the run got there. On CUDA, cuDNN kernels are not
bitwise reproducible; the run is statistically the same.

Arithmetic: on CUDA, ``train_precision_cuda`` (``fp16``: autocast with loss scaling, the authors'
mixed precision; ``bf16``; ``fp32``); on the CPU, ``train_precision_cpu`` (``auto``: ``bf16`` where
the CPU computes it natively, else ``fp32``; or either), and ``train_channels_last`` for the memory
layout. The loss is always summed in fp32.

Resuming: ``train(..., resume=True)`` (default) continues from ``last.pt`` when it was written
with the same parameters and the same training data (a fingerprint); ``max_epochs`` and
``patience`` may differ (raise them to extend a finished run). Otherwise it starts over.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from lakepaper import io, perturb
from lakepaper.errors import InputError, ParameterError
from lakepaper.samples.chips import Chip, read_training_set
from lakepaper.train.checkpoint import plain, read_checkpoint, save_checkpoint
from lakepaper.train.loss import METRICS, add_counts, confusion, dice_loss, scores
from lakepaper.train.sampler import CoarseView, Patches, PatchSampler, Radiometric, check_chips
from lakepaper.unet import LEVELS, UNet

log = logging.getLogger("lakepaper.train")

#: The parameters that define a training run (all stored in every checkpoint).
TRAIN_PARAMS = (
    "composite_bands",
    "in_channels",
    "patch_size",
    "unet_widths",
    "unet_upsample",
    "batch_size",
    "optimizer",
    "learning_rate",
    "adadelta_rho",
    "adadelta_eps",
    "l2_output",
    "loss",
    "dice_smooth",
    "flip_probability",
    "radiometric_offset",
    "radiometric_gain",
    "coarse_view_probability",
    "pad_value",
    "patches_per_epoch",
    "val_patches_per_epoch",
    "val_resample",
    "patience",
    "max_epochs",
    "train_seed",
    "prob_threshold",
    "train_precision_cpu",
    "train_precision_cuda",
    "train_channels_last",
)
#: Parameters a resumed run may change (to extend a run); every other one must be the same.
EXTENDABLE = ("max_epochs", "patience")
PRECISIONS = {"cpu": ("auto", "fp32", "bf16"), "cuda": ("fp32", "fp16", "bf16")}
HISTORY = "history.csv"
TIMING = "timing.csv"
LOG = "train.log"


def train_params(p: Mapping[str, Any]) -> dict[str, Any]:
    """The training parameters of a resolved parameter dict, checked.

    Raises:
        ParameterError: a missing parameter, or a value this implementation does not provide.
    """
    missing = [k for k in TRAIN_PARAMS if k not in p]
    if missing:
        raise ParameterError(missing[0], "missing from the parameters given (use params.resolve(profile))")
    q = {k: p[k] for k in TRAIN_PARAMS}
    if q["optimizer"] != "adadelta":
        raise ParameterError("optimizer", f"only 'adadelta' (the paper's) is implemented, got {q['optimizer']!r}")
    if q["loss"] != "dice":
        raise ParameterError("loss", f"only 'dice' (the paper's) is implemented, got {q['loss']!r}")
    if q["in_channels"] != len(q["composite_bands"]):
        raise ParameterError("in_channels", f"{q['in_channels']} differs from the {len(q['composite_bands'])} bands")
    if q["patch_size"] % 2**LEVELS or q["patch_size"] < 2**LEVELS:
        raise ParameterError("patch_size", f"must be a positive multiple of {2**LEVELS}, got {q['patch_size']}")
    for name in ("radiometric_offset", "radiometric_gain", "coarse_view_probability"):
        if not 0.0 <= q[name] < 1.0:
            raise ParameterError(name, f"must lie in [0, 1), got {q[name]}")
    jitter = [k for k in ("radiometric_offset", "radiometric_gain", "coarse_view_probability") if q[k] > 0]
    unknown = [b for b in q["composite_bands"] if b not in perturb.REFLECTANCE_BANDS and b not in perturb.INDEX_BANDS]
    if jitter and unknown:
        raise ParameterError(
            jitter[0],
            f"the augmentation acts on Sentinel-2 reflectance bands and knows no band {unknown}: set "
            f"{', '.join(jitter)} to 0 for these bands",
        )
    for name in ("batch_size", "patches_per_epoch", "val_patches_per_epoch", "max_epochs", "patience"):
        if q[name] < 1:
            raise ParameterError(name, f"must be at least 1, got {q[name]}")
    for dev, choices in PRECISIONS.items():
        if q[f"train_precision_{dev}"] not in choices:
            raise ParameterError(f"train_precision_{dev}", f"expected one of {choices}")
    return q


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` if given, else CUDA when present, else the CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def precision_of(q: Mapping[str, Any], device: torch.device) -> str:
    """The arithmetic used on ``device``: fp32, bf16 or fp16 (``auto`` resolved for this CPU)."""
    from lakepaper.hardware import native_bf16

    if device.type == "cuda":
        return q["train_precision_cuda"]
    chosen = q["train_precision_cpu"]
    if chosen == "auto":
        return "bf16" if native_bf16("cpu") else "fp32"
    return chosen


def autocast(device: torch.device, precision: str):
    """The autocast context of a precision (a no-op for fp32)."""
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.float16 if precision == "fp16" else torch.bfloat16)


def data_fingerprint(*splits: Sequence[Chip]) -> str:
    """SHA-256 of the regions, areas, images and labels of the splits, in order."""
    h = hashlib.sha256()
    for chips in splits:
        h.update(b"|split|")
        for c in chips:
            h.update(f"{c.region_id}:{c.area_km2!r}:{c.image.shape}".encode())
            h.update(np.ascontiguousarray(c.image, dtype=np.float32).tobytes())
            h.update(np.ascontiguousarray(c.label, dtype=np.uint8).tobytes())
            if c.observed is not None:  # pixels left out of the loss change the training too
                h.update(b"observed" + np.ascontiguousarray(c.observed, dtype=bool).tobytes())
    return h.hexdigest()


def _fingerprint(q: Mapping[str, Any], data: str) -> str:
    fixed = {k: v for k, v in plain(q).items() if k not in EXTENDABLE}
    return hashlib.sha256(json.dumps({"params": fixed, "data": data}, sort_keys=True).encode()).hexdigest()


def _to_device(batch: Patches, device: torch.device, channels_last: bool):
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.from_numpy(batch.image).to(device).contiguous(memory_format=fmt)
    y = torch.from_numpy(batch.label).to(device).unsqueeze(1)
    v = torch.from_numpy(batch.valid).to(device).unsqueeze(1)
    return x, y, v


def _batches(sampler: PatchSampler, rng: np.random.Generator, n: int, batch: int, augment: bool):
    """``n`` patches drawn one batch at a time (memory stays at one batch, the draws the same)."""
    for i in range(0, n, batch):
        yield sampler.draw(rng, min(batch, n - i), augment=augment)


@contextmanager
def _file_log(path: Path):
    handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    old = log.level
    log.setLevel(logging.INFO)
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(old)
        handler.close()


def load_splits(samples_dir: str | os.PathLike[str], bands: Sequence[str], splits=("train", "val")) -> dict:
    """The chips of each split of a stage-02 folder, checked (errors name the chip's file)."""
    out = {}
    for split in splits:
        chips = read_training_set(samples_dir, split)
        check_chips(chips, bands, split=split, folder=samples_dir)
        out[split] = chips
    return out


def train(
    train_chips: Sequence[Chip],
    val_chips: Sequence[Chip],
    out_dir: str | os.PathLike[str],
    p: Mapping[str, Any],
    *,
    device: str | torch.device | None = None,
    resume: bool = True,
    progress: bool = True,
    folder: str | os.PathLike[str] | None = None,
    on_epoch_end: Callable[[int, dict], None] | None = None,
    init_state: Mapping[str, torch.Tensor] | None = None,
) -> dict:
    """Train the U-Net; write ``best.pt``, ``last.pt``, ``history.csv`` and ``train.log`` in ``out_dir``.

    Args:
        train_chips, val_chips: the training and validation regions (``read_training_set``).
        out_dir: the stage folder.
        p: resolved parameters (``params.resolve(profile)``); the ones in ``TRAIN_PARAMS`` are used.
        device: None: CUDA when present, else the CPU.
        resume: continue from ``out_dir/last.pt`` when it matches (see the module doc).
        progress: a progress bar per epoch and a summary line after it.
        folder: the samples folder the chips come from (for error messages).
        on_epoch_end: called as ``f(epoch, history_row)`` after each epoch's files are written.
        init_state: weights to start from (a ``state_dict`` of the same architecture: fine-tuning,
            transfer) instead of the seeded initialisation; part of the resume fingerprint.

    Returns:
        dict with ``history`` (DataFrame), ``best`` and ``last`` (paths), ``best_epoch``,
        ``best_val_loss``, ``stopped`` (``early stopping`` or ``max_epochs``), ``device``,
        ``precision``, ``resumed_from`` (the epoch continued after, 0 for a fresh run).

    Raises:
        ParameterError: a training parameter this implementation does not provide.
        InputError: a chip with NaN, a non-binary label, or bands other than the model's, before
            anything is trained or written.
    """
    from tqdm.auto import tqdm

    q = train_params(p)
    bands = tuple(q["composite_bands"])
    check_chips(train_chips, bands, split="train", folder=folder)
    check_chips(val_chips, bands, split="val", folder=folder)
    device = pick_device(device)
    precision = precision_of(q, device)
    channels_last = bool(q["train_channels_last"])
    data = data_fingerprint(train_chips, val_chips)
    if init_state is not None:
        h = hashlib.sha256(data.encode())
        for k in sorted(init_state):
            h.update(k.encode() + init_state[k].detach().cpu().contiguous().numpy().tobytes())
        data = h.hexdigest()
    fingerprint = _fingerprint(q, data)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    best_path, last_path, history_path = out_dir / "best.pt", out_dir / "last.pt", out_dir / HISTORY
    timing_path = out_dir / TIMING

    torch.manual_seed(int(q["train_seed"]))
    model = UNet(q["in_channels"], q["unet_widths"], q["unet_upsample"])
    if init_state is not None:
        model.load_state_dict(init_state)
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adadelta(
        model.parameters(), lr=q["learning_rate"], rho=q["adadelta_rho"], eps=q["adadelta_eps"]
    )
    scaler = torch.amp.GradScaler("cuda", enabled=precision == "fp16" and device.type == "cuda")
    train_sampler = PatchSampler(
        train_chips,
        q["patch_size"],
        flip_probability=q["flip_probability"],
        pad_value=q["pad_value"],
        jitter=(
            Radiometric(q["composite_bands"], q["radiometric_offset"], q["radiometric_gain"]),
            CoarseView(q["composite_bands"], q["coarse_view_probability"]),
        ),
    )
    val_sampler = PatchSampler(val_chips, q["patch_size"], flip_probability=0.0, pad_value=q["pad_value"])

    history: list[dict] = []
    timing: list[dict] = []  # wall time per epoch, kept out of the checkpoints and history.csv
    best_val, best_epoch, wait, start = math.inf, 0, 0, 1
    with _file_log(out_dir / LOG):
        if resume and last_path.exists():
            try:
                state = read_checkpoint(last_path)
            except InputError as e:  # not ours, or damaged outside this code (writes are atomic)
                log.warning("cannot resume (%s): starting over", e)
                state = {}
            r = state.get("resume", {})
            if r.get("fingerprint") == fingerprint:
                model.load_state_dict(state["state"])
                optimizer.load_state_dict(r["optimizer"])
                scaler.load_state_dict(r["scaler"])
                history = json.loads(r["history"]) if isinstance(r["history"], str) else list(r["history"])
                best_val, best_epoch, wait = r["best_val"], r["best_epoch"], r["wait"]
                start = state["epoch"] + 1
                timing = read_timing(timing_path, before=start)
                log.info(
                    "resuming after epoch %d of %s (best %.5f at epoch %d)",
                    state["epoch"],
                    last_path,
                    best_val,
                    best_epoch,
                )
            elif state:
                log.warning("%s was written with other parameters or data: starting over", last_path)
        if start == 1:
            for f in (best_path, last_path, history_path, timing_path):
                f.unlink(missing_ok=True)
            log.info(
                "new run on %s (%s%s): %s",
                device,
                precision,
                ", channels-last" if channels_last else "",
                json.dumps(plain(q)),
            )
            log.info("train %d regions, val %d regions", len(train_chips), len(val_chips))
        resumed_from = start - 1

        def step_loss(prob, y, v):
            return dice_loss(prob, y, v, q["dice_smooth"]) + q["l2_output"] * model.l2_penalty()

        epoch = start - 1
        while epoch < q["max_epochs"] and wait < q["patience"]:
            epoch += 1
            t0 = time.perf_counter()
            n_tr, n_va, bs = q["patches_per_epoch"], q["val_patches_per_epoch"], q["batch_size"]
            bar = tqdm(total=n_tr + n_va, desc=f"epoch {epoch}", unit="patch", disable=not progress, leave=False)
            # --- train
            model.train()
            rng = np.random.default_rng([int(q["train_seed"]), epoch, 0])
            loss_sum, counts, seen = 0.0, {}, 0
            for batch in _batches(train_sampler, rng, n_tr, bs, augment=True):
                x, y, v = _to_device(batch, device, channels_last)
                optimizer.zero_grad(set_to_none=True)
                with autocast(device, precision):
                    prob = model(x)
                loss = step_loss(prob, y, v)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                loss_sum += float(loss.detach()) * len(batch)
                counts = add_counts(counts, confusion(prob, y, v, q["prob_threshold"]))
                seen += len(batch)
                bar.update(len(batch))
                bar.set_postfix(loss=f"{loss_sum / seen:.4f}")
            row = {"epoch": epoch, "loss": loss_sum / n_tr, **scores(counts)}
            # --- validate
            model.eval()
            rng = np.random.default_rng([int(q["train_seed"]), epoch if q["val_resample"] else 0, 1])
            loss_sum, counts = 0.0, {}
            with torch.no_grad():
                for batch in _batches(val_sampler, rng, n_va, bs, augment=False):
                    x, y, v = _to_device(batch, device, channels_last)
                    with autocast(device, precision):
                        prob = model(x)
                    loss_sum += float(step_loss(prob, y, v)) * len(batch)
                    counts = add_counts(counts, confusion(prob, y, v, q["prob_threshold"]))
                    bar.update(len(batch))
            bar.close()
            row.update({"val_loss": loss_sum / n_va, **{f"val_{k}": v for k, v in scores(counts).items()}})
            improved = row["val_loss"] < best_val
            if improved:
                best_val, best_epoch, wait = row["val_loss"], epoch, 0
            else:
                wait += 1
            row["best"] = improved
            seconds = round(time.perf_counter() - t0, 3)
            history.append(plain(row))
            timing.append({"epoch": epoch, "seconds": seconds})
            # --- write: best, then the history, then last.pt, which commits the epoch: a run killed before
            # last.pt is written redoes this epoch (rewriting best and history identically); after it, the
            # epoch's files are all complete (last.pt before history.csv left a short history.csv behind
            # when the run was killed in its final epoch: a rerun finds nothing left to train)
            # (no wall time in best.pt: equal runs give equal bytes, which stage 04's RUN_ID hashes)
            metrics = {k: row[k] for k in row if k != "epoch"}
            meta = {
                "bands": bands,
                "patch_size": q["patch_size"],
                "params": q,
                "epoch": epoch,
                "val_loss": row["val_loss"],
                "metrics": metrics,
            }
            if improved:
                save_checkpoint(best_path, model, **meta)
            write_history(history, history_path)
            write_timing(timing, timing_path)
            # the history as JSON text: pickled as objects, a resumed run's rows (strings shared from the
            # file it loaded) would pickle to other bytes than an uninterrupted run's, with equal content
            resume_state = {
                "fingerprint": fingerprint,
                "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict(),
                "history": json.dumps(history),
                "best_val": best_val,
                "best_epoch": best_epoch,
                "wait": wait,
            }
            save_checkpoint(last_path, model, **meta, resume=resume_state)
            msg = (
                f"epoch {epoch}: loss {row['loss']:.4f} val_loss {row['val_loss']:.4f} "
                f"val_iou {row['val_iou']:.4f} {'*' if improved else ''} ({seconds:.1f} s)"
            )
            log.info(msg)
            if progress:
                tqdm.write(msg)
            if on_epoch_end is not None:
                on_epoch_end(epoch, row | {"seconds": seconds})
        stopped = "early stopping" if wait >= q["patience"] else "max_epochs"
        log.info("stopped (%s) after epoch %d; best epoch %d, val_loss %.5f", stopped, epoch, best_epoch, best_val)
    return {
        "history": history_frame(history, timing),
        "best": best_path,
        "last": last_path,
        "best_epoch": best_epoch,
        "best_val_loss": best_val,
        "stopped": stopped,
        "device": str(device),
        "precision": precision,
        "channels_last": channels_last,
        "resumed_from": resumed_from,
    }


COLUMNS = ["epoch", "loss", *METRICS, "val_loss", *(f"val_{m}" for m in METRICS), "best"]


def history_frame(history: Sequence[Mapping[str, Any]], timing: Sequence[Mapping[str, Any]] = ()) -> pd.DataFrame:
    """The history rows as a DataFrame with a fixed column order, plus ``seconds`` from ``timing``."""
    frame = pd.DataFrame(list(history), columns=COLUMNS)
    seconds = {int(t["epoch"]): float(t["seconds"]) for t in timing}
    frame["seconds"] = [seconds.get(int(e), math.nan) for e in frame["epoch"]]
    return frame


def write_history(history: Sequence[Mapping[str, Any]], path: str | os.PathLike[str]) -> Path:
    """``history.csv`` (atomically), full float precision, no wall times (equal runs, equal bytes)."""
    frame = pd.DataFrame(list(history), columns=COLUMNS)
    with io.atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.10g")
    return Path(path)


def write_timing(timing: Sequence[Mapping[str, Any]], path: str | os.PathLike[str]) -> Path:
    """``timing.csv``: seconds per epoch (a volatile file: :data:`lakepaper.io.VOLATILE`)."""
    with io.atomic_path(path) as tmp:
        pd.DataFrame(list(timing), columns=["epoch", "seconds"]).to_csv(tmp, index=False)
    return Path(path)


def read_timing(path: str | os.PathLike[str], *, before: int) -> list[dict]:
    """The timing rows of epochs before ``before`` (an unreadable or missing file: none)."""
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError):
        return []
    if list(frame.columns) != ["epoch", "seconds"]:
        return []
    rows = zip(frame.epoch, frame.seconds, strict=True)
    return [{"epoch": int(e), "seconds": float(t)} for e, t in rows if e < before]
