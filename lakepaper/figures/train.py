"""Figures of stage 03: the training curves."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

PANELS = (
    ("loss", "loss (1 - Dice + L2)"),
    ("recall", "recall"),
    ("precision", "precision"),
    ("f1", "F1"),
    ("iou", "IoU"),
)


def training_curves(history: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Loss, recall, precision, F1 and IoU per epoch, training (solid) and validation (dashed).

    Args:
        history: ``history.csv`` of stage 03 (columns ``epoch``, ``loss``, ``val_loss``, ``iou``,
            ``val_iou``, ...; ``best`` marks the epochs that improved the validation loss).
        title: a suptitle (e.g. the profile and device).

    The kept checkpoint (the lowest validation loss) is marked by a vertical line in every panel.
    Scores are those of the pixels pooled over each epoch's patches (threshold 0.5).
    """
    fig, axes = plt.subplots(1, len(PANELS), figsize=(3.1 * len(PANELS), 3.0), constrained_layout=True)
    epochs = history["epoch"].to_numpy()
    best = int(history.loc[history["val_loss"].idxmin(), "epoch"]) if len(history) else None
    for ax, (col, label) in zip(axes, PANELS, strict=True):
        ax.plot(epochs, history[col].to_numpy(float), "-", color="tab:blue", lw=1.3, label="training")
        ax.plot(epochs, history[f"val_{col}"].to_numpy(float), "--", color="tab:orange", lw=1.3, label="validation")
        if best is not None:
            ax.axvline(best, color="grey", lw=0.8, ls=":")
        ax.set_xlabel("epoch"), ax.set_title(label, fontsize=10), ax.grid(True, lw=0.4, alpha=0.6)
        if col != "loss":
            vals = history[[col, f"val_{col}"]].to_numpy(float)
            lo = np.nanmin(vals) if np.isfinite(vals).any() else 0.0  # all NaN: e.g. no lake predicted yet
            ax.set_ylim(max(0.0, min(lo, 1.0) - 0.05), 1.01)
    axes[0].legend(fontsize=8, title=f"kept: epoch {best}" if best is not None else None, title_fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig
