"""Figures of notebooks 09-10: the QTP lake and Jilin-1 check-dam datasets."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from lakepaper import io
from lakepaper.samples.chips import Chip

RUN_COLOURS = {"scratch": "tab:blue", "pretrained": "tab:red"}


def _show_rgb(ax, image: np.ndarray, title: str | None = None) -> None:
    """Show an (h, w, 3) uint8 or (3, h, w) float 0..1 image."""
    if image.ndim == 3 and image.shape[0] == 3:
        image = np.clip(np.moveaxis(image, 0, -1), 0, 1)
    ax.imshow(image, interpolation="nearest")
    ax.set_xticks([]), ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)


def _outline(ax, mask: np.ndarray, colour: str) -> None:
    if mask.any() and not mask.all():
        ax.contour(mask.astype(float), levels=[0.5], colors=[colour], linewidths=0.8)


def qtp_pairs(ix, names: Sequence[str]) -> Figure:
    """QTP pairs as read: the RGB image, the ground-truth file, and the mask drawn on the image."""
    from lakepaper.datasets.images import read_pixels
    from lakepaper.datasets.qtp import read_pair

    fig, axes = plt.subplots(3, len(names), figsize=(2.1 * len(names), 6.6), constrained_layout=True, squeeze=False)
    row = ix.pairs.set_index("name")
    for j, name in enumerate(names):
        image, mask = read_pair(ix, name)
        truth = read_pixels(ix.root / row.loc[name, "truth"])[0]
        _show_rgb(axes[0, j], image, f"{name}: image")
        _show_rgb(axes[1, j], truth if truth.ndim == 3 else np.repeat(truth[..., None], 3, -1), "ground truth file")
        _show_rgb(axes[2, j], image, f"mask ({mask.mean():.0%} lake)")
        _outline(axes[2, j], mask, "red")
    return fig


def predictions(model, chips: Sequence[Chip], *, threshold: float = 0.5, title: str | None = None) -> Figure:
    """Chips with their label (yellow) and the model's prediction (magenta) outlined."""
    import torch

    fig, axes = plt.subplots(1, len(chips), figsize=(2.4 * len(chips), 2.7), constrained_layout=True, squeeze=False)
    model.eval()
    with torch.no_grad():
        for ax, c in zip(axes[0], chips, strict=True):
            prob = model(torch.from_numpy(np.ascontiguousarray(c.image[None])))[0, 0].numpy()
            pred = prob > threshold
            inter, union = (pred & (c.label == 1)).sum(), (pred | (c.label == 1)).sum()
            _show_rgb(ax, c.image[:3], f"{c.region_id}: IoU {inter / union:.2f}" if union else c.region_id)
            _outline(ax, c.label, "yellow")
            _outline(ax, pred, "magenta")
    fig.legend(
        handles=[
            plt.Line2D([], [], color="yellow", label="label"),
            plt.Line2D([], [], color="magenta", label="prediction"),
        ],
        loc="lower center",
        ncol=2,
        fontsize=8,
        bbox_to_anchor=(0.5, -0.08),
    )
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def pretraining_curves(history: pd.DataFrame, test: pd.DataFrame | None = None) -> Figure:
    """Validation loss and IoU per epoch, from scratch vs from the RGB model (same seed and budget).

    ``test``: :func:`lakepaper.datasets.training.pretraining_comparison`'s table; the legend gives
    each run's test IoU as trained and with batch-norm statistics recomputed.
    """
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), constrained_layout=True)
    for run, g in history.groupby("run"):
        colour = RUN_COLOURS.get(run, "grey")
        label = run
        if test is not None:  # rows (run, reading of the batch-norm statistics)
            ious = ", ".join(f"{float(v):.3f}" for v in test.xs(run, level="run")["iou"])
            label = f"{run} (test IoU {ious})"
        axes[0].plot(g.epoch, g.val_loss, "-o", ms=3, color=colour, label=label)
        axes[1].plot(g.epoch, g.val_iou, "-o", ms=3, color=colour, label=run)
        best = g.loc[g.val_loss.idxmin()]
        axes[0].plot(best.epoch, best.val_loss, "*", ms=11, color=colour)
    axes[0].set_title("validation loss (1 - Dice + L2); star: kept", fontsize=10)
    axes[1].set_title("validation IoU", fontsize=10)
    for ax in axes:
        ax.set_xlabel("epoch"), ax.grid(True, lw=0.4, alpha=0.6)
    axes[0].legend(fontsize=8)
    return fig


def checkdam_overview(image: str | os.PathLike[str], grid, annotations, *, max_px: int = 1200) -> Figure:
    """The large image with its 256 x 256 grid: kept cells (green), dam land annotated (red outline)."""
    import rasterio
    from rasterio.enums import Resampling

    with rasterio.open(image) as src:
        f = max(1, int(np.ceil(max(src.width, src.height) / max_px)))
        arr = src.read([1, 2, 3], out_shape=(3, src.height // f, src.width // f), resampling=Resampling.average)
        b = src.bounds
    fig, ax = plt.subplots(figsize=(7.5, 7.5 * (b.top - b.bottom) / (b.right - b.left)), constrained_layout=True)
    ax.imshow(np.moveaxis(arr, 0, -1), extent=(b.left, b.right, b.bottom, b.top), interpolation="nearest")
    for cell in grid.itertuples():
        x0, y0, x1, y1 = cell.geometry.bounds
        ax.add_patch(
            plt.Rectangle(
                (x0, y0),
                x1 - x0,
                y1 - y0,
                fill=False,
                lw=1.2 if cell.kept else 0.4,
                ec="lime" if cell.kept else "white",
                alpha=0.9 if cell.kept else 0.5,
            )
        )
    for geom in annotations.geometry:
        for g in getattr(geom, "geoms", [geom]):
            ax.plot(*g.exterior.xy, color="red", lw=0.7)
    kept = int(grid.kept.sum())
    ax.set_title(f"{Path(image).name}: {len(grid)} cells, {kept} with dam land (green), annotations (red)", fontsize=9)
    ax.set_xlabel("easting (m)"), ax.set_ylabel("northing (m)")
    ax.ticklabel_format(useOffset=False, style="plain")
    return fig


def gulliest_source(samples: pd.DataFrame) -> str:
    """The source cell whose original chip (copy 0) has the largest gully share: the one to show."""
    return samples.loc[samples.gully_share[samples.copy_no == 0].idxmax(), "source"]


def augmentation_copies(folder: str | os.PathLike[str], samples: pd.DataFrame, source: str | None = None) -> Figure:
    """The copies of one chip with their masks outlined, and where each copy's corner lies on the ground.

    Args:
        source: the source cell (default: :func:`gulliest_source`).
    """
    source = gulliest_source(samples) if source is None else source
    rows = samples[samples.source == source].sort_values("copy_no")
    fig, axes = plt.subplots(1, len(rows), figsize=(2.3 * len(rows), 2.8), constrained_layout=True, squeeze=False)
    for ax, s in zip(axes[0], rows.itertuples(), strict=True):
        image, meta = io.read_raster(Path(folder) / s.image)
        mask, _ = io.read_raster(Path(folder) / s.mask)
        t = meta["transform"]
        label = s.op if s.brightness == 1.0 else f"{s.op} x{s.brightness:.2f}"
        _show_rgb(ax, np.moveaxis(image, 0, -1), f"{s.name}\n{label}\ncorner at ({t.c:.0f}, {t.f:.0f})")
        _outline(ax, mask[0], "red")
    return fig
