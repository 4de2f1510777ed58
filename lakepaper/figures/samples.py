"""Figures of stage 02: the paper's Fig. 2 and a look at the labels of single regions."""

from __future__ import annotations

import geopandas as gpd
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from lakepaper import io, scoring

SPLIT_COLOURS = {"train": "tab:blue", "val": "tab:orange", "test": "tab:green"}  # as the paper's caption
TYPE_MARKERS = {"NR": "o", "AR": "s", "BR": "^", "IL": "D", "SL": "v"}
FAN_DEG = 4.0  # radius of the ring a tile's regions are drawn on in Fig. 2a, degrees


def dodge(sites: np.ndarray, width: float, height: float, *, rounds: int = 200) -> np.ndarray:
    """Centres for boxes of ``width`` x ``height`` (degrees) at ``sites`` (n, 2: lon, lat), moved apart along
    the longitude only until no two overlap; sites that do not crowd one another keep their place.

    Each round pushes every overlapping pair apart by half the overlap each, in the order of the sites,
    so the result depends only on the sites. Two sites at the same place part in the order given.
    """
    xy = np.array(sites, dtype=float).reshape(-1, 2)
    for _ in range(rounds):
        moved = False
        for i in range(len(xy)):
            for j in range(i + 1, len(xy)):
                dx, dy = xy[j, 0] - xy[i, 0], xy[j, 1] - xy[i, 1]
                overlap = width - abs(dx)
                if abs(dy) < height and overlap > 1e-9:
                    step = (overlap / 2 + 1e-6) * (1.0 if dx >= 0 else -1.0)
                    xy[i, 0] -= step
                    xy[j, 0] += step
                    moved = True
        if not moved:
            break
    return xy


def fig2(regions: gpd.GeoDataFrame, *, bins: int = 27) -> Figure:
    """Fig. 2: (a) where the regions are, by split and type; (b) their sizes; (c) count and area per type.

    Args:
        regions: the regions table of stage 02 (EPSG:4326, with ``split``, ``region_type``, ``area_km2``).
        bins: equal-width bins in log10(area) for (b) (the paper's 27).
    """
    fig = plt.figure(figsize=(12, 7.5))
    grid = fig.add_gridspec(2, 2, height_ratios=[1.25, 1], hspace=0.35, wspace=0.25)
    ax_map, ax_size, ax_type = fig.add_subplot(grid[0, :]), fig.add_subplot(grid[1, 0]), fig.add_subplot(grid[1, 1])

    # Regions of one tile lie within a few km of each other: at this scale they are fanned out on a
    # ring around their tile's position (a schematic, like a dodged plot), so every one is visible.
    centre = regions.geometry.representative_point()
    ax_map.set_xlim(-180, 180), ax_map.set_ylim(-60, 80), ax_map.grid(True, lw=0.4, alpha=0.6)
    # Tiles a few degrees apart would overlap, rings and labels: their rings are dodged apart along the
    # longitude (a box of ring and the label under it each, in degrees at this size), a thin line back to
    # the tile's place (the dot).
    xy = np.zeros((len(regions), 2))
    tiles = regions.groupby("tile").indices
    sites = np.array([[centre.iloc[idx].x.mean(), centre.iloc[idx].y.mean()] for idx in tiles.values()])
    rings = dodge(sites, width=4 * FAN_DEG, height=5 * FAN_DEG) if len(sites) else sites
    for (tile, idx), site, ring in zip(tiles.items(), sites, rings, strict=True):
        angle = 2 * np.pi * np.arange(len(idx)) / len(idx)
        xy[idx] = ring + FAN_DEG * np.c_[np.cos(angle), np.sin(angle)]
        if np.abs(ring - site).max() > 1e-6:
            ax_map.plot([site[0], ring[0]], [site[1], ring[1]], color="0.5", lw=0.5)
        ax_map.plot(*site, "k.", ms=3)
        ax_map.annotate(
            f"{tile} ({len(idx)})",
            ring,
            xytext=(0, -12 - FAN_DEG * 2),
            textcoords="offset points",
            fontsize=6.5,
            ha="center",
        )
    for (split, kind), g in regions.groupby(["split", "region_type"]):
        pos = regions.index.get_indexer(g.index)
        ax_map.scatter(
            xy[pos, 0],
            xy[pos, 1],
            s=14,
            marker=TYPE_MARKERS.get(kind, "o"),
            facecolor="none",
            edgecolor=SPLIT_COLOURS.get(split, "grey"),
            lw=0.9,
        )
    handles = [plt.Line2D([], [], ls="", marker="o", mfc="none", mec=c, label=s) for s, c in SPLIT_COLOURS.items()]
    handles += [plt.Line2D([], [], ls="", marker=m, mfc="none", mec="k", label=t) for t, m in TYPE_MARKERS.items()]
    ax_map.legend(handles=handles, ncol=8, fontsize=8, loc="lower left")
    ax_map.set_xlabel("longitude"), ax_map.set_ylabel("latitude")
    ax_map.set_title(
        "(a) sample regions by split (colour) and type (marker), fanned out around their tile "
        "(dot; a line where moved apart)"
    )

    logs = np.log10(regions.area_km2.to_numpy(float))
    edges = np.linspace(logs.min(), logs.max() + 1e-9, bins + 1)
    stack = [np.log10(regions.area_km2[regions.split == s]) for s in SPLIT_COLOURS]
    ax_size.hist(stack, bins=edges, stacked=True, color=list(SPLIT_COLOURS.values()), label=list(SPLIT_COLOURS))
    ax_size.set_xlabel("log10 region area (km²)"), ax_size.set_ylabel("regions")
    ax_size.set_title(f"(b) region size, {bins} equal-width bins in log space"), ax_size.legend(fontsize=8)

    per = regions.groupby("region_type").agg(count=("region_id", "size"), area=("area_km2", "sum"))
    per = per.reindex([t for t in TYPE_MARKERS if t in per.index])
    x = np.arange(len(per))
    ax_type.bar(x - 0.2, per["count"], 0.4, color="0.35", label="count")
    ax_type.set_ylabel("regions"), ax_type.set_xticks(x, per.index)
    twin = ax_type.twinx()
    twin.bar(x + 0.2, per["area"], 0.4, color="tab:cyan", label="area")
    twin.set_ylabel("total area (km²)")
    ax_type.legend(
        handles=[*ax_type.get_legend_handles_labels()[0], *twin.get_legend_handles_labels()[0]],
        fontsize=8,
        loc="upper left",
        framealpha=0.9,
    )
    ax_type.set_ylim(0, per["count"].max() * 1.3), twin.set_ylim(0, per["area"].max() * 1.3)
    ax_type.set_title("(c) count and total area per region type")
    fig.suptitle(f"Fig. 2 · {len(regions)} sample regions")
    return fig


def label_gallery(samples_dir, regions: pd.DataFrame, iou: pd.DataFrame, *, per_type: int = 1) -> Figure:
    """For ``per_type`` regions of each type: true colour, NDWI, NDWI-only label vs edited label."""
    from lakepaper.samples.labels import initial_label

    picks = regions.sort_values("area_km2", ascending=False).groupby("region_type").head(per_type)
    picks = picks.sort_values("region_type")
    fig, axes = plt.subplots(len(picks), 3, figsize=(9, 3 * len(picks)), squeeze=False)
    scored = iou.set_index("region_id") if len(iou) else None
    for ax_row, r in zip(axes, picks.itertuples(), strict=True):
        image, meta = io.read_raster(f"{samples_dir}/{r.image}")
        label = io.read_raster(f"{samples_dir}/{r.label}")[0][0]  # 255 (never observed) is shown as neither
        names = list(meta["band_names"])
        rgb = np.stack([image[names.index(b)] for b in ("B4", "B3", "B2")], axis=-1)
        ax_row[0].imshow(np.clip(rgb * 3.5, 0, 1) ** (1 / 1.3))
        ndwi = image[names.index("NDWI")]
        ax_row[1].imshow(ndwi, cmap="RdBu", vmin=-0.8, vmax=0.8)
        first = initial_label(ndwi, r.threshold)
        overlay = np.zeros((*label.shape, 3))
        overlay[(first == 1) & (label == 1)] = (0.1, 0.4, 1.0)  # both
        overlay[(first == 1) & (label == 0)] = (1.0, 0.3, 0.2)  # removed by edits
        overlay[(first == 0) & (label == 1)] = (0.2, 0.9, 0.3)  # added by edits
        ax_row[2].imshow(overlay)
        title = f"{r.region_id} {r.region_type}, NDWI > {r.threshold:.2f}"
        if scored is not None and r.region_id in scored.index:
            s = scored.loc[r.region_id]
            iou_n, iou_e = (scoring.scores(s[f"{k}_tp"], s[f"{k}_fp"], s[f"{k}_fn"])["iou"] for k in ("ndwi", "edited"))
            title += f"\nIoU vs truth: NDWI {iou_n:.2f}, edited {iou_e:.2f}"
        ax_row[0].set_ylabel(title, fontsize=8)
    for ax, t in zip(axes[0], ["true colour", "NDWI", "label: kept / removed / added"], strict=True):
        ax.set_title(t, fontsize=9)
    for ax in axes.ravel():
        ax.set_xticks([]), ax.set_yticks([])
    fig.tight_layout()
    return fig
