"""Supplementary Table 1 (the U-Net's hyperparameters), generated from the parameters a run used.

The values come from a checkpoint's ``params`` (or any resolved parameter dict), never typed in,
so the table shows what was actually trained; each row names its provenance (the labels of
:data:`lakepaper.params.ORIGINS`: the paper, the authors' released code, the Earth Engine tutorial, or
this compendium's own choice) and its source (``params.CONSTANTS``).

Example:
    >>> from lakepaper import params
    >>> t = supplementary_table1(params.resolve("paper"))
    >>> t.loc[t.hyperparameter == "Optimizer", "value"].item()
    'AdaDelta (learning rate 1.0, rho 0.95, epsilon 1e-07)'
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from lakepaper import io
from lakepaper.params import CONSTANTS, ORIGINS
from lakepaper.unet import UNet, count_parameters


def _src(*names: str) -> str:
    return "; ".join(f"{n}: {CONSTANTS[n].source}" for n in names if n in CONSTANTS)


def provenance(*names: str) -> str:
    """The provenance labels of the constants ``names``, each once, in the order of :data:`ORIGINS`.

    >>> provenance("learning_rate", "patience", "adadelta_rho")
    "the paper; the authors' released code"
    """
    found = {CONSTANTS[n].origin for n in names if n in CONSTANTS}
    return "; ".join(text for key, text in ORIGINS.items() if key in found)


def supplementary_table1(
    p: Mapping[str, Any], *, device: str | None = None, precision: str | None = None, channels_last: bool | None = None
) -> pd.DataFrame:
    """One row per hyperparameter: ``hyperparameter``, ``value``, ``params`` (the names), ``provenance``, ``source``.

    Args:
        p: the parameters used (a checkpoint's ``params`` or ``params.resolve(profile)``).
        device, precision, channels_last: what the run actually used (None: not reported).
    """
    w = tuple(p["unet_widths"])
    n_params = count_parameters(UNet(p["in_channels"], w, p["unet_upsample"]))
    s = p["patch_size"]
    if device is None:
        arithmetic = f"CPU: {p['train_precision_cpu']}; CUDA: {p['train_precision_cuda']} (mixed precision)"
    else:
        arithmetic = f"{precision} on {device}" + (", channels-last" if channels_last else "")
    rows = [
        ("Input size", f"{s} x {s} x {p['in_channels']}", ("patch_size", "in_channels")),
        ("Input bands", ", ".join(p["composite_bands"]) + " (reflectance 0..1, NDWI -1..1)", ("composite_bands",)),
        (
            "Architecture",
            f"U-Net, 4 levels of widths {'-'.join(map(str, w[:4]))}, bottleneck {w[4]}; "
            "two 3x3 convolutions + ReLU per block; batch normalisation after each encoder block and each upsampling; "
            f"{p['unet_upsample']} upsampling; no dropout",
            ("unet_widths", "unet_upsample"),
        ),
        ("Trainable parameters", f"{n_params:,}", ("unet_widths",)),
        ("Output layer", f"1x1 convolution + sigmoid, L2 {p['l2_output']:g} on its kernel", ("l2_output",)),
        ("Loss", f"1 - Dice over the batch (smoothing {p['dice_smooth']:g})", ("loss", "dice_smooth")),
        (
            "Optimizer",
            f"AdaDelta (learning rate {p['learning_rate']}, rho {p['adadelta_rho']}, epsilon {p['adadelta_eps']:g})",
            ("optimizer", "learning_rate", "adadelta_rho", "adadelta_eps"),
        ),
        ("Batch size", str(p["batch_size"]), ("batch_size",)),
        (
            "Patches per epoch",
            f"{p['patches_per_epoch']} training, {p['val_patches_per_epoch']} validation "
            f"({'drawn afresh each epoch' if p['val_resample'] else 'one fixed set'})",
            ("patches_per_epoch", "val_patches_per_epoch", "val_resample"),
        ),
        (
            "Patch sampling",
            "region drawn with probability proportional to its area, patch at a uniformly random "
            f"position; smaller regions padded with {p['pad_value']:g} (padding left out of loss and metrics)",
            ("pad_value",),
        ),
        (
            "Augmentation",
            f"horizontal and vertical flips, p = {p['flip_probability']} each (training only)",
            ("flip_probability",),
        ),
        ("Model kept", "lowest validation loss", ("loss",)),
        (
            "Early stopping",
            f"after {p['patience']} epochs without a lower validation loss (at most {p['max_epochs']} epochs)",
            ("patience", "max_epochs"),
        ),
        ("Arithmetic", arithmetic, ("train_precision_cpu", "train_precision_cuda", "train_channels_last")),
        ("Lake threshold", f"probability > {p['prob_threshold']}", ("prob_threshold",)),
        ("Seed", f"{p['train_seed']} (weights and patch draws; the authors set none)", ("train_seed",)),
    ]
    return pd.DataFrame(
        [
            {"hyperparameter": h, "value": v, "params": ", ".join(n), "provenance": provenance(*n), "source": _src(*n)}
            for h, v, n in rows
        ]
    )


def to_markdown(table: pd.DataFrame) -> str:
    """A GitHub-flavoured markdown table (no extra dependency)."""
    cols = list(table.columns)

    def cell(x: Any) -> str:
        return str(x).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(cell(r[c]) for c in cols) + " |" for _, r in table.iterrows()]
    return "\n".join(lines) + "\n"


def write_table(table: pd.DataFrame, path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write ``<path>.csv`` and ``<path>.md`` atomically; return both paths."""
    path = Path(path)
    csv, md = path.with_suffix(".csv"), path.with_suffix(".md")
    with io.atomic_path(csv) as tmp:
        table.to_csv(tmp, index=False)
    io.write_text(md, "**Supplementary Table 1.** Hyperparameters of the U-Net as trained.\n\n" + to_markdown(table))
    return csv, md
