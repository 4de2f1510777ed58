"""Figures of stage 04: a stitched tile prediction beside its composite and the truth."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from lakepaper import io, scoring
from lakepaper.composite.local import read_composite
from lakepaper.predict.cluster import output_paths
from lakepaper.predict.tiled import NODATA, PROB_SCALE


def prediction_vs_truth(
    composite: str | os.PathLike[str], pred_dir: str | os.PathLike[str], tile: str, world_dir=None
) -> Figure:
    """True colour, probability, and the mask against the truth (blue hit, red false lake, green missed)."""
    bands, _, meta = read_composite(composite)
    names = meta["band_names"]
    rgb = np.stack([bands[names.index(b)] for b in ("B4", "B3", "B2")], axis=-1)
    rgb = np.clip(np.nan_to_num(rgb) * 3.5, 0, 1) ** (1 / 1.3)
    prob_path, mask_path = output_paths(pred_dir, tile)
    prob = io.read_raster(prob_path)[0][0]
    mask = io.read_raster(mask_path)[0][0]
    truth_path = Path(world_dir) / "truth" / tile / "lake_id.tif" if world_dir else None
    panels = 3 if truth_path and truth_path.exists() else 2
    fig, axes = plt.subplots(1, panels, figsize=(4.6 * panels, 4.8))
    axes[0].imshow(rgb), axes[0].set_title(f"{tile}: composite (true colour)")
    p = np.where(prob == NODATA, np.nan, prob / PROB_SCALE)
    im = axes[1].imshow(p, cmap="viridis", vmin=0, vmax=1)
    axes[1].set_title("lake probability")
    fig.colorbar(im, ax=axes[1], fraction=0.046, pad=0.02)
    if panels == 3:
        truth = io.read_raster(truth_path)[0][0] > 0
        pred = mask == 1
        over = np.ones((*mask.shape, 3))
        over[pred & truth] = (0.1, 0.35, 0.9)
        over[pred & ~truth] = (0.9, 0.2, 0.15)
        over[~pred & truth] = (0.2, 0.75, 0.3)
        over[mask == NODATA] = (0.6, 0.6, 0.6)
        iou = scoring.scores_of(scoring.confusion(truth, pred, nodata=None))["iou"]  # no data counts as not lake
        axes[2].imshow(over)
        axes[2].set_title(f"mask vs truth: IoU {iou:.3f}\nblue hit, red false, green missed")
    for ax in axes:
        ax.set_xticks([]), ax.set_yticks([])
    fig.tight_layout()
    return fig
