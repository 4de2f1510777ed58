"""Figures of stage 06: the lake-level validation of the paper's Fig. 5 (Table 1 is a table, not a figure)."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from lakepaper.figures.samples import TYPE_MARKERS
from lakepaper.metrics import fit_line

TYPE_COLOURS = {"NR": "tab:blue", "AR": "tab:orange", "BR": "tab:red", "IL": "tab:cyan", "SL": "tab:olive"}


def _loglog(ax, x, y, floor: float, **kw) -> None:
    ax.scatter(np.maximum(x, floor), np.maximum(y, floor), **kw)


def _fit_text(t: pd.DataFrame) -> str:
    ols = fit_line(t.area_km2, t.overlap_km2)
    org = fit_line(t.area_km2, t.overlap_km2, through_origin=True)
    return (
        f"n = {ols['n']}\nOLS: y = {ols['slope']:.3f} x {ols['intercept']:+.4f}, R² = {ols['r2']:.3f}\n"
        f"through 0: slope {org['slope']:.3f}, R² = {org['r2']:.3f}"
    )


def fig5(
    labelled: pd.DataFrame,
    predicted: pd.DataFrame,
    summary: pd.DataFrame,
    *,
    published_min: float | None = 86.0,
    pixel_km2: float = 1e-4,
    published_recall: Mapping[str, float] | None = None,
    min_km2: float | None = 0.005,
) -> Figure:
    """Fig. 5: (a) true predicted area per labelled lake and per predicted lake; (b) mean recall and precision.

    Args:
        labelled, predicted: the tables of :func:`lakepaper.metrics.lake_tables` (``region_type``,
            ``area_km2``, ``overlap_km2``; predicted with ``river_residue``).
        summary: :func:`lakepaper.metrics.lake_level_summary` (per size group).
        published_min: the paper's floor for groups above 0.005 km2 (%), drawn as a dashed line.
        published_recall: size group name -> the paper's mean recall (%) of that group, drawn as a black tick
            (the paper: 95.5 % for 0.1-1 km2, 93.1 % for 1-20 km2).
        min_km2: the minimum lake area of the product: groups below it (scored before the filter) are shaded.
        pixel_km2: pixel area; lakes with no true predicted area are drawn at half a pixel.

    The fits in (a) leave out predicted lakes flagged as river residue (drawn in grey).
    """
    fig = plt.figure(figsize=(13, 8.5))
    grid = fig.add_gridspec(2, 2, height_ratios=[1.15, 1], hspace=0.35, wspace=0.22)
    ax_l, ax_p, ax_b = fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1]), fig.add_subplot(grid[1, :])
    floor = pixel_km2 / 2
    hi = max(labelled.area_km2.max() if len(labelled) else 1, predicted.area_km2.max() if len(predicted) else 1)
    line = np.array([floor, hi * 1.5])

    for kind, g in labelled.groupby("region_type"):
        colour, marker = TYPE_COLOURS.get(kind, "k"), TYPE_MARKERS.get(kind, "o")
        _loglog(
            ax_l,
            g.area_km2,
            g.overlap_km2,
            floor,
            s=9,
            marker=marker,
            facecolor="none",
            edgecolor=colour,
            lw=0.7,
            label=f"{kind} ({len(g)})",
        )
    kept = predicted[~predicted.river_residue.astype(bool)] if "river_residue" in predicted else predicted
    residue = predicted[predicted.river_residue.astype(bool)] if "river_residue" in predicted else predicted[:0]
    _loglog(
        ax_p,
        kept.area_km2,
        kept.overlap_km2,
        floor,
        s=9,
        facecolor="none",
        edgecolor="tab:blue",
        lw=0.7,
        label=f"predicted lakes ({len(kept)})",
    )
    if len(residue):
        _loglog(
            ax_p,
            residue.area_km2,
            residue.overlap_km2,
            floor,
            s=9,
            color="0.55",
            lw=0.7,
            label=f"river residue ({len(residue)})",
        )
    for ax, t, what in ((ax_l, labelled, "labelled"), (ax_p, kept, "predicted")):
        ax.plot(line, line, "k--", lw=0.8, label="1:1")
        ax.set_xscale("log"), ax.set_yscale("log")
        ax.set_xlim(floor * 0.8, hi * 1.5), ax.set_ylim(floor * 0.8, hi * 1.5)
        ax.set_xlabel(f"{what} lake area (km²)"), ax.set_ylabel("true predicted area (km²)")
        ax.text(
            0.03,
            0.97,
            _fit_text(t),
            transform=ax.transAxes,
            va="top",
            fontsize=8,
            bbox={"fc": "white", "ec": "0.8", "alpha": 0.9},
        )
        ax.legend(fontsize=7.5, loc="lower right")
        ax.grid(True, which="major", lw=0.3, alpha=0.6)
    ax_l.set_title("(a) per labelled lake, by region type")
    ax_p.set_title("(a) per predicted lake (grey: removed as river residue)")

    x = np.arange(len(summary))
    w = 0.38
    rec, pre = 100 * summary.mean_recall.to_numpy(float), 100 * summary.mean_precision.to_numpy(float)
    ax_b.bar(x - w / 2, np.nan_to_num(rec), w, label="mean recall of labelled lakes", color="tab:blue")
    ax_b.bar(x + w / 2, np.nan_to_num(pre), w, label="mean precision of predicted lakes", color="tab:orange")
    for xi, r, p, nl, npd in zip(x, rec, pre, summary.labelled, summary.predicted, strict=True):
        for dx, v, n in ((-w / 2, r, nl), (w / 2, p, npd)):
            if n > 0:
                txt = "–" if not np.isfinite(v) else f"{v:.0f}"
                ax_b.text(xi + dx, (v if np.isfinite(v) else 0) + 1, f"{txt}\nn={n}", ha="center", fontsize=7)
    if published_min is not None:
        ax_b.axhline(published_min, color="k", ls="--", lw=0.8, label=f"paper: > {published_min:g} % above 0.005 km²")
    if min_km2 is not None and "hi_km2" in summary:
        below = np.flatnonzero(summary.hi_km2.to_numpy(float) <= min_km2 * (1 + 1e-9))
        if len(below):
            ax_b.axvspan(
                -0.5, below.max() + 0.5, color="0.92", zorder=0, label=f"below {min_km2:g} km²: removed by the filter"
            )
    ticked = False
    for xi, group in zip(x, summary.index, strict=True):
        v = (published_recall or {}).get(str(group))
        if v is not None:
            ax_b.plot([xi - w, xi], [v, v], color="k", lw=2.2, label=None if ticked else "paper's mean recall")
            ax_b.text(xi - w / 2, v - 6, f"{v:g}", ha="center", fontsize=7, color="k")
            ticked = True
    ax_b.set_xticks(x, [str(i) for i in summary.index])
    ax_b.set_ylim(0, 115), ax_b.set_ylabel("%"), ax_b.set_xlabel("lake size group (km²)")
    ax_b.set_title("(b) mean recall and precision per size group")
    ax_b.legend(fontsize=8, loc="lower right")
    return fig


def table1_bars(table: pd.DataFrame, published: Mapping[str, float] | None = None) -> Figure:
    """Table 1 as bars: recall, precision, F1 and IoU (%) per region type and overall.

    Where ``table`` also has the stitched columns (``"stitched " + score``, as
    :func:`lakepaper.metrics.table1_beside_stitched` writes), each bar gets a black tick at the stitched value.
    """
    cols = ["recall", "precision", "f1", "iou"]
    fig, ax = plt.subplots(figsize=(9, 4), layout="constrained")
    x = np.arange(len(table))
    w = 0.2
    stitched = all(f"stitched {c}" in table for c in cols)
    for i, c in enumerate(cols):
        ax.bar(x + (i - 1.5) * w, 100 * table[c].to_numpy(float), w, label=c)
        if stitched:
            ax.scatter(
                x + (i - 1.5) * w,
                100 * table[f"stitched {c}"].to_numpy(float),
                marker="_",
                s=120,
                color="k",
                zorder=3,
                label="stitched (stage 04)" if i == 0 else None,
            )
    ax.set_xticks(x, list(table.index)), ax.set_ylim(0, 105), ax.set_ylabel("%")
    if published:
        for k, v in published.items():
            ax.axhline(v, lw=0.6, ls=":", color="k")
            ax.text(len(table) - 0.5, v, f" paper {k} {v:g}", fontsize=7, va="center")
    ax.legend(ncol=5, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), frameon=False)
    ax.set_title("Table 1: patch-level accuracy per region type, isolated patches (pixels pooled)")
    return fig
