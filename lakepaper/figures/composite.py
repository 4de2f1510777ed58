"""Figures of stage 01: what compositing does to cloudy scenes."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from lakepaper.composite.local import read_composite, select_scenes
from lakepaper.figures.world import true_colour
from lakepaper.io import read_raster
from lakepaper.world.files import WorldFiles


def composite_vs_scenes(world: WorldFiles, tile: str, composite_path, p: dict, *, n_scenes: int = 2) -> Figure:
    """The cloudiest kept scenes of a tile beside its composite (true colour, NDWI) and clear-count map."""
    comp, count, meta = read_composite(composite_path)
    names = meta["band_names"]
    scenes = select_scenes(world, tile, p).sort_values("CLOUDY_PIXEL_PERCENTAGE", ascending=False).head(n_scenes)
    fig, axes = plt.subplots(1, n_scenes + 3, figsize=(3.2 * (n_scenes + 3), 3.6))
    for ax, s in zip(axes, scenes.itertuples(), strict=False):
        l2a, _ = read_raster(world.scene_path(tile, s.system_index, "L2A_10m"))
        ax.imshow(true_colour(l2a))
        ax.set_title(f"scene {s.date:%Y-%m-%d}\ncloudy {s.CLOUDY_PIXEL_PERCENTAGE:.0f} %", fontsize=9)
    dn = np.stack([comp[names.index(b)] for b in ("B2", "B3", "B4")]) * 10000
    dn = np.concatenate([dn, np.zeros_like(dn[:1])])  # true_colour reads B2 B3 B4 (B8 unused)
    axes[n_scenes].imshow(true_colour(np.nan_to_num(dn)))
    axes[n_scenes].set_title("composite, true colour", fontsize=9)
    axes[n_scenes + 1].imshow(comp[names.index("NDWI")], cmap="RdBu", vmin=-0.8, vmax=0.8)
    axes[n_scenes + 1].set_title("composite NDWI", fontsize=9)
    im = axes[n_scenes + 2].imshow(count, cmap="viridis")
    axes[n_scenes + 2].set_title("clear observations", fontsize=9)
    fig.colorbar(im, ax=axes[n_scenes + 2], fraction=0.046)
    for ax in axes:
        ax.set_xticks([]), ax.set_yticks([])
    fig.suptitle(f"Tile {tile}: {len(select_scenes(world, tile, p))} scenes kept (cloudy < 60 %), masked, averaged")
    fig.tight_layout()
    return fig
