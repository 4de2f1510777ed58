"""The U-Net and training loop of stage 03 on the two datasets, and RGB -> Sentinel-2 pre-training.

Training parameters (:func:`dataset_params`)
    the profile's (widths, batch size, AdaDelta, 1 - Dice, patience, seed), with
    the dataset's band names and channel count, patches of ``min(patch_size, 256)`` (the datasets'
    chips are 256 x 256; the demo's 128-pixel patches are random crops of them), and the budget
    ``dataset_max_epochs`` x ``dataset_patches_per_epoch`` with ``dataset_val_patches`` validation
    patches per epoch (stage 03's own budget is not used: it may grow), so that each notebook
    runs in minutes on the demo profile. Scores on a split pool every pixel of every
    chip once (:func:`score_split`).

Batch-normalisation statistics (:func:`recalibrate_batchnorm`)
    the U-Net normalises with running averages of its batch statistics when it predicts (eval
    mode). In short runs with AdaDelta's large early steps those averages trail the weights: on the
    check-dam replica after 8 demo epochs the kept model predicted 40 % of the pixels as gully in
    eval mode (true share 6 %, IoU 0.15) and 6 % with batch statistics (IoU 0.84). So the kept
    model's statistics are also re-estimated with its weights frozen, as a plain average over
    ``dataset_patches_per_epoch`` training patches (unflipped, seeded; ``torch.optim.swa_utils.update_bn``
    does the same for averaged weights), and both are scored: "as trained" and "statistics
    recomputed". The validation loss that picked the kept epoch is the loop's, in eval mode.

Pre-training (:func:`transfer_rgb`), as the QTP dataset's authors suggest ("pre-train the weight
of the semantic segmentation model and improve the accuracy of water extraction in other regions")
    the 5-band Sentinel-2 model (B2, B3, B4, B11, NDWI) starts from the RGB model: every layer is
    copied except the first convolution, whose filters over R, G and B become those over B4 (red),
    B3 (green) and B2 (blue), each scaled by ``mean(RGB band) / mean(Sentinel-2 band)`` of the two
    training sets (the RGB chips are 8-bit stretched 0..1, the reflectances about 0.02-0.3: the
    scaling keeps each filter's response to a typical pixel); the filters over B11 and NDWI are
    initialised fresh, exactly as the from-scratch run initialises them (same seed). Both runs
    then train with the same seed, data and budget (:func:`pretraining_comparison`), and
    :func:`pretraining_verdict` says which start won on each criterion: the kept validation loss and
    the test IoU in both readings of the batch-norm statistics. One seed and a short budget: the
    verdict is one draw.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from lakepaper.datasets.metrics import score_table
from lakepaper.errors import ParameterError
from lakepaper.samples.chips import Chip
from lakepaper.train import loop
from lakepaper.train.checkpoint import load_model, read_checkpoint
from lakepaper.train.evaluate import region_counts
from lakepaper.unet import UNet

#: Sentinel-2 band <- RGB channel of the pre-trained first layer; other bands start fresh.
S2_FROM_RGB = {"B4": "R", "B3": "G", "B2": "B"}
FIRST_CONV = "down.0.0.weight"


def dataset_params(p: Mapping[str, Any], bands: Sequence[str], *, chip_px: int = 256, **changes: Any) -> dict:
    """The training parameters of a dataset run (see the module doc); ``changes`` override any."""
    q = dict(p)
    q.update(
        composite_bands=tuple(bands),
        in_channels=len(bands),
        patch_size=min(int(p["patch_size"]), int(chip_px)),
        max_epochs=int(p["dataset_max_epochs"]),
        patches_per_epoch=int(p["dataset_patches_per_epoch"]),
        val_patches_per_epoch=int(p["dataset_val_patches"]),
        # the dataset papers train with flips only; the radiometric and 30 m augmentations of stage 03
        # (issue 21) are for Sentinel-2 composites
        radiometric_offset=0.0,
        radiometric_gain=0.0,
        coarse_view_probability=0.0,
    )
    q.update(changes)
    return q


def channel_means(chips: Sequence[Chip]) -> np.ndarray:
    """Mean of each band over every pixel of the chips."""
    sums = sum(c.image.reshape(c.image.shape[0], -1).astype(np.float64).sum(axis=1) for c in chips)
    return sums / sum(c.image.shape[1] * c.image.shape[2] for c in chips)


def transfer_rgb(
    rgb_state: Mapping[str, torch.Tensor],
    rgb_bands: Sequence[str],
    target_bands: Sequence[str],
    p: Mapping[str, Any],
    *,
    gains: Mapping[str, float] | None = None,
) -> tuple[dict[str, torch.Tensor], pd.DataFrame]:
    """The initial weights of a ``target_bands`` model from an RGB model (see the module doc).

    Args:
        rgb_state: the RGB model's ``state_dict``.
        rgb_bands: its band order (``R, G, B``).
        target_bands: the new model's band order (``B2, B3, B4, B11, NDWI``).
        p: training parameters (``unet_widths``, ``unet_upsample``, ``train_seed``): the fresh
            weights are those ``torch.manual_seed(train_seed)`` gives, as in the training loop.
        gains: Sentinel-2 band -> factor on the copied filters (default 1).

    Returns:
        (state_dict, mapping): mapping has one row per target band: band, source (an RGB band or
        ``fresh``), gain.

    Raises:
        ParameterError: the two architectures differ beyond the first layer's input channels.
    """
    torch.manual_seed(int(p["train_seed"]))
    target = UNet(len(target_bands), tuple(p["unet_widths"]), p["unet_upsample"])
    state = {k: v.clone() for k, v in target.state_dict().items()}
    for key, value in rgb_state.items():
        if key not in state:
            raise ParameterError("unet_widths", f"the RGB model has layer {key!r} that the target lacks")
        if key != FIRST_CONV:
            if state[key].shape != value.shape:
                shapes = f"RGB {tuple(value.shape)}, target {tuple(state[key].shape)}"
                raise ParameterError("unet_widths", f"layer {key}: {shapes}")
            state[key] = value.detach().clone()
    rows = []
    for i, band in enumerate(target_bands):
        src = S2_FROM_RGB.get(band)
        gain = float((gains or {}).get(band, 1.0)) if src else float("nan")
        if src in rgb_bands:
            state[FIRST_CONV][:, i] = rgb_state[FIRST_CONV][:, list(rgb_bands).index(src)] * gain
        rows.append({"band": band, "source": src if src in rgb_bands else "fresh", "gain": gain})
    return state, pd.DataFrame(rows)


@contextmanager
def _initial_state(state: Mapping[str, torch.Tensor] | None) -> Iterator[dict]:
    """Make :func:`lakepaper.train.loop.train` start from ``state``.

    Passed as ``init_state`` where the loop takes one; otherwise the loop's model constructor is
    wrapped for the duration of the call so that the model it builds loads ``state`` (the rest of
    the loop, resuming included, is untouched).
    """
    if state is None:
        yield {}
        return
    if "init_state" in inspect.signature(loop.train).parameters:
        yield {"init_state": state}
        return
    original = loop.UNet

    def build(*args, **kwargs):
        model = original(*args, **kwargs)
        model.load_state_dict(state)
        return model

    loop.UNet = build
    try:
        yield {}
    finally:
        loop.UNet = original


def train_model(
    train_chips: Sequence[Chip],
    val_chips: Sequence[Chip],
    out_dir: str | os.PathLike[str],
    q: Mapping[str, Any],
    *,
    init_state: Mapping[str, torch.Tensor] | None = None,
    progress: bool = False,
) -> dict:
    """:func:`lakepaper.train.loop.train` from ``init_state`` (None: the usual seeded start).

    A run started from given weights is never resumed from an earlier ``last.pt`` (whose fingerprint
    knows nothing of the initial weights): it starts over.
    """
    with _initial_state(init_state) as extra:
        return loop.train(train_chips, val_chips, out_dir, q, resume=init_state is None, progress=progress, **extra)


def recalibrate_batchnorm(
    checkpoint: str | os.PathLike[str],
    chips: Sequence[Chip],
    q: Mapping[str, Any],
    out_path: str | os.PathLike[str],
) -> Path:
    """Write a copy of ``checkpoint`` whose batch-norm statistics are re-estimated on ``chips``.

    The running mean and variance of every batch-norm layer are reset and recomputed as the plain
    average over ``dataset_patches_per_epoch`` patches drawn as for validation (area-proportional,
    unflipped, from ``numpy.random.default_rng([train_seed, 0, 2])``); no weight changes.
    """
    from torch import nn

    from lakepaper.train.checkpoint import save_checkpoint
    from lakepaper.train.sampler import PatchSampler

    model, meta = load_model(checkpoint, bands=tuple(q["composite_bands"]))
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    sampler = PatchSampler(chips, int(meta["patch_size"]), flip_probability=0.0, pad_value=float(q["pad_value"]))
    rng = np.random.default_rng([int(q["train_seed"]), 0, 2])
    n, batch = int(q["dataset_patches_per_epoch"]), int(q["batch_size"])
    model.train()
    with torch.no_grad():
        for i in range(0, n, batch):
            model(torch.from_numpy(sampler.draw(rng, min(batch, n - i), augment=False).image))
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    model.eval()
    keep = ("bands", "patch_size", "params", "epoch", "val_loss", "metrics")
    return save_checkpoint(out_path, model, **{k: meta[k] for k in keep})


def score_split(
    checkpoint: str | os.PathLike[str],
    chips: Sequence[Chip],
    q: Mapping[str, Any],
    *,
    groups: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Pooled scores of a checkpoint on chips: recall, precision, F1, IoU, background IoU, mIoU, OA.

    Rows: one per group (``groups`` maps a chip's ``region_id`` to its group) and ``all``.
    """
    model, meta = load_model(checkpoint, bands=tuple(q["composite_bands"]))
    counts = region_counts(
        model,
        chips,
        patch_size=int(meta["patch_size"]),
        batch=int(q["batch_size"]),
        threshold=float(q["prob_threshold"]),
        pad_value=float(q["pad_value"]),
    )
    if groups is None:
        return score_table(counts)
    return score_table(counts.assign(group=counts.region_id.map(groups)), "group")


def score_kept_model(
    result: Mapping[str, Any],
    train_chips: Sequence[Chip],
    test_chips: Sequence[Chip],
    q: Mapping[str, Any],
    *,
    groups: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Test scores of a run's kept model, as trained and with batch-norm statistics recomputed.

    Writes ``best_bn.pt`` beside ``best.pt``.

    Args:
        groups: a chip's ``region_id`` -> its group (e.g. originals and copies), scored apart as
            well as all together.

    Returns:
        One row per reading (``as trained``, ``statistics recomputed``) with the pooled counts and
        scores of :func:`score_split`; with ``groups``, one row per reading and group (index
        ``statistics``, ``samples of``; group ``all`` holds every chip).
    """
    best = Path(result["best"])
    bn = recalibrate_batchnorm(best, train_chips, q, best.with_name("best_bn.pt"))
    readings = (("as trained", best), ("statistics recomputed", bn))
    if groups is not None:
        scores = {r: score_split(ck, test_chips, q, groups=groups) for r, ck in readings}
        return pd.concat(scores, names=["statistics", "samples of"])
    return pd.DataFrame({r: score_split(ck, test_chips, q).loc["all"] for r, ck in readings}).T


def pretraining_comparison(
    train_chips: Sequence[Chip],
    val_chips: Sequence[Chip],
    test_chips: Sequence[Chip],
    rgb_checkpoint: str | os.PathLike[str],
    rgb_chips: Sequence[Chip],
    out_dir: str | os.PathLike[str],
    q: Mapping[str, Any],
    *,
    progress: bool = False,
) -> dict:
    """Train the Sentinel-2 model from scratch and from the RGB model, same seed, data and budget.

    Writes ``scratch/`` and ``pretrained/`` (each a training folder) in ``out_dir``.

    Returns:
        dict: ``history`` (epoch, val_loss and val_iou of both runs), ``test`` (one row per run and
        reading of the batch-norm statistics: best epoch, its validation loss, the test scores),
        ``mapping`` (the first-layer transfer), ``results`` (the two train results).
    """
    out_dir = Path(out_dir)
    rgb = read_checkpoint(rgb_checkpoint)
    bands = tuple(q["composite_bands"])
    s2_means = dict(zip(bands, channel_means(train_chips), strict=True))
    rgb_means = dict(zip(rgb["bands"], channel_means(rgb_chips), strict=True))
    gains = {b: rgb_means[c] / s2_means[b] for b, c in S2_FROM_RGB.items() if b in s2_means and c in rgb_means}
    state, mapping = transfer_rgb(rgb["state"], rgb["bands"], bands, q, gains=gains)
    results = {
        "scratch": train_model(train_chips, val_chips, out_dir / "scratch", q, progress=progress),
        "pretrained": train_model(
            train_chips, val_chips, out_dir / "pretrained", q, init_state=state, progress=progress
        ),
    }
    history = pd.concat(
        [r["history"][["epoch", "val_loss", "val_iou"]].assign(run=name) for name, r in results.items()],
        ignore_index=True,
    )
    tables = []
    for name, r in results.items():
        t = score_kept_model(r, train_chips, test_chips, q)
        t.insert(0, "best_val_loss", float(r["best_val_loss"]))
        t.insert(0, "best_epoch", int(r["best_epoch"]))
        t.insert(0, "run", name)
        tables.append(t.rename_axis("statistics").reset_index())
    test = pd.concat(tables, ignore_index=True).set_index(["run", "statistics"])
    return {"history": history, "test": test, "mapping": mapping, "results": results}


def pretraining_scores(test: pd.DataFrame) -> pd.DataFrame:
    """:func:`pretraining_comparison`'s test table as shown: kept epoch, its validation loss, scores in %."""
    table = test[["best_epoch", "best_val_loss", "recall", "precision", "f1", "iou"]].astype(float)
    table[["recall", "precision", "f1", "iou"]] *= 100
    return table


def pretraining_verdict(history: pd.DataFrame, test: pd.DataFrame) -> dict:
    """Which start won, pre-trained or scratch, on each criterion of :func:`pretraining_comparison`.

    Criteria: the lower kept validation loss ("as trained", the loop's reading), and the higher test
    IoU in each reading of the batch-norm statistics (``tie`` when equal).

    Returns:
        dict: ``winners`` (criterion -> ``pretrained``, ``scratch`` or ``tie``), ``iou_gain``
        (reading -> test IoU of pretrained minus scratch, in points), ``epochs_lower`` (epochs whose
        validation loss is lower with pre-training) of ``epochs``, and ``verdict``: the one value of
        ``winners`` when they all agree, else None (the criteria disagree).
    """
    table = pretraining_scores(test)
    val = history.pivot(index="epoch", columns="run", values="val_loss")
    kept = table.xs("as trained", level="statistics")
    winners = {"kept validation loss": kept.best_val_loss.idxmin()}
    gains = {}
    for reading, iou in table.iou.unstack("run").iterrows():
        gains[reading] = float(iou["pretrained"] - iou["scratch"])
        winners[f"test IoU, {reading}"] = "tie" if gains[reading] == 0 else iou.idxmax()
    agreed = set(winners.values())
    return {
        "winners": winners,
        "iou_gain": gains,
        "epochs_lower": int((val["pretrained"] < val["scratch"]).sum()),
        "epochs": len(val),
        "verdict": agreed.pop() if len(agreed) == 1 else None,
    }
