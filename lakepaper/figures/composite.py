"""Figures of stage 01: what compositing does to cloudy scenes."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from lakepaper.composite import stac as reader
from lakepaper.composite.local import read_composite
from lakepaper.figures import true_colour


def composite_vs_scenes(tile: str, items: Sequence, composite_path, p: dict, *, n_scenes: int = 2) -> Figure:
    """The cloudiest kept scenes of a tile (its STAC items) beside its composite (true colour, NDWI) and clear count."""
    from lakepaper.composite.sources import to_dn

    comp, count, meta = read_composite(composite_path)
    names = meta["band_names"]
    cloudiest = sorted(items, key=lambda it: -float(it.properties.get("eo:cloud_cover", 0.0)))[:n_scenes]
    geobox = reader.tile_geobox(items, reader.Area(tile=tile), float(p.get("resolution_m", 10.0)))
    ds = reader.load(cloudiest, ["B2", "B3", "B4"], geobox) if cloudiest else None
    fig, axes = plt.subplots(1, n_scenes + 3, figsize=(3.2 * (n_scenes + 3), 3.6))
    for ax, it in zip(axes, cloudiest, strict=False):
        i = list(ds.id.values).index(it.id)
        dn = np.stack([to_dn(ds[b].isel(time=i).values) for b in ("B2", "B3", "B4")])
        ax.imshow(true_colour(np.concatenate([dn, np.zeros_like(dn[:1])])))
        ax.set_title(f"scene {it.datetime:%Y-%m-%d}\ncloudy {float(it.properties['eo:cloud_cover']):.0f} %", fontsize=9)
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
    limit = p["max_scene_cloud_pct"]
    fig.suptitle(f"Tile {tile}: {len(items)} scenes kept (cloudy < {limit:g} %), masked, averaged")
    fig.tight_layout()
    return fig
