"""Figures of stage 05: the river-mask cases (Fig. 3) and GLAKES before and after the floodplain mask (Fig. 4)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import shapely
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch, PathPatch
from matplotlib.path import Path as MplPath

CASE_TITLES = {
    "a": "(a) intersects GLAKES, ratio {r:.2f} >= {t:g}: kept whole",
    "b": "(b) no GLAKES, ratio {r:.2f} >= {t:g}: masked",
    "c": "(c) intersects GLAKES, ratio {r:.2f} < {t:g}: masked",
    "d": "(d) no GLAKES, ratio {r:.2f} < {t:g}: deleted",
}


def _patch(geom, **kw) -> PathPatch | None:
    """A matplotlib patch of a (multi)polygon, holes included."""
    verts, codes = [], []
    for poly in shapely.get_parts(geom):
        if shapely.get_type_id(poly) != 3 or poly.is_empty:
            continue
        for ring in (poly.exterior, *poly.interiors):
            xy = np.asarray(ring.coords)
            verts.append(xy)
            codes.append(np.r_[MplPath.MOVETO, np.full(len(xy) - 2, MplPath.LINETO), MplPath.CLOSEPOLY])
    if not verts:
        return None
    return PathPatch(MplPath(np.concatenate(verts), np.concatenate(codes)), **kw)


def _draw(ax, geoms, **kw) -> None:
    for g in np.atleast_1d(np.asarray(geoms, dtype=object)):
        if g is None:
            continue
        p = _patch(g, **kw)
        if p is not None:
            ax.add_patch(p)


def _background(ax, composite_dir, tile: str, bounds) -> None:
    """NDWI of the composite under the view, when the composite is there."""
    if composite_dir is None:
        return
    path = Path(composite_dir) / "tiles" / f"{tile}.tif"
    if not path.exists():
        return
    from lakepaper.composite.local import read_composite

    bands, _, meta = read_composite(path)
    ndwi = bands[list(meta["band_names"]).index("NDWI")]
    t = meta["transform"]
    h, w = ndwi.shape
    ax.imshow(
        ndwi,
        cmap="Greys_r",
        vmin=-0.6,
        vmax=0.6,
        extent=(t.c, t.c + w * t.a, t.f + h * t.e, t.f),
        interpolation="nearest",
        zorder=0,
    )


def fig3(
    examples: Mapping[str, dict], *, threshold: float, composite_dir: str | os.PathLike[str] | None = None
) -> Figure:
    """Fig. 3: one polygon the river mask cut for each case a-d (the largest of its case on the tiles).

    Each panel shows the predicted polygon before the mask (outline), the river mask (orange), GLAKES (green
    dashes) and what the rule kept (blue), over the composite's NDWI when ``composite_dir`` is given. A case
    without an example on these tiles says so.
    """
    fig, axes = plt.subplots(2, 2, figsize=(10, 9.5))
    for ax, case in zip(axes.ravel(), "abcd", strict=True):
        ex = examples.get(case)
        if ex is None:
            ax.text(
                0.5,
                0.5,
                f"({case}) no polygon of this case\non these tiles",
                ha="center",
                va="center",
                transform=ax.transAxes,
            )
            ax.set_xticks([]), ax.set_yticks([])
            continue
        x0, y0, x1, y1 = ex["bounds"]
        _background(ax, composite_dir, ex["tile"], ex["bounds"])
        _draw(ax, ex["rivers"], facecolor=(1.0, 0.55, 0.1, 0.45), edgecolor="none", zorder=1)
        kept = ex["before"] if case == "a" else (None if case == "d" else ex["after"])
        if kept is not None:
            _draw(ax, [kept], facecolor=(0.1, 0.35, 0.9, 0.75), edgecolor="none", zorder=2)
        _draw(ax, [ex["before"]], facecolor="none", edgecolor="k", lw=0.8, zorder=3)
        _draw(ax, ex["glakes"], facecolor="none", edgecolor=(0.1, 0.6, 0.2), lw=1.2, ls="--", zorder=4)
        ax.set_xlim(x0, x1), ax.set_ylim(y0, y1)
        ax.set_aspect("equal")
        ax.set_title(
            CASE_TITLES[case].format(r=ex["ratio"], t=threshold) + f"\n{ex['tile']}, "
            f"{ex['area_m2'] / 1e6:.3f} km2 before",
            fontsize=9,
        )
        ax.set_xticks([]), ax.set_yticks([])
    handles = [
        Patch(facecolor="none", edgecolor="k", label="prediction before the mask"),
        Patch(facecolor=(1.0, 0.55, 0.1, 0.45), label="river mask (GRWL + OSM)"),
        Patch(facecolor="none", edgecolor=(0.1, 0.6, 0.2), ls="--", label="GLAKES"),
        Patch(facecolor=(0.1, 0.35, 0.9, 0.75), label="kept"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=4, frameon=False)
    fig.suptitle("Fig. 3 - river mask: Area Ratio = area after / area before the mask")
    fig.tight_layout(rect=(0, 0.04, 1, 0.97), h_pad=2.5)  # room for the lower titles
    return fig


def fig4(examples: Mapping[str, dict]) -> Figure:
    """Fig. 4: GLAKES before and after the floodplain mask, for the lake it split into most pieces (a, b) and the
    lake it removed the largest share of (c, d); pixels removed are shown in orange in the "after" panels."""
    order = [k for k in ("split", "removed") if k in examples]
    fig, axes = plt.subplots(max(len(order), 1), 2, figsize=(9, 4.9 * max(len(order), 1)), squeeze=False)
    if not order:
        for ax in axes.ravel():
            ax.text(
                0.5,
                0.5,
                "no GLAKES lake touched by the\nfloodplain mask on these tiles",
                ha="center",
                va="center",
                transform=ax.transAxes,
            )
            ax.set_xticks([]), ax.set_yticks([])
        return fig
    cmap = ListedColormap(["white", (0.1, 0.35, 0.9), (1.0, 0.55, 0.1)])
    letters = iter("abcdef")
    for row, key in zip(axes, order, strict=True):
        ex = examples[key]
        before = ex["before"].astype(np.uint8)
        after = np.where(ex["after"], 1, np.where(ex["before"] & ex["floodplain_removed"], 2, 0)).astype(np.uint8)
        what = (
            f"split into {int(ex['score'])} pieces"
            if key == "split"
            else f"{100 * ex['score']:.0f} % of the lake removed (paddies, flood water)"
        )
        for ax, img, label in ((row[0], before, "before"), (row[1], after, "after")):
            ax.imshow(img, cmap=cmap, vmin=0, vmax=2, extent=ex["extent"], interpolation="nearest")
            ax.set_title(f"({next(letters)}) GLAKES {label} the floodplain mask\n{ex['tile']}: {what}", fontsize=9)
            ax.set_xticks([]), ax.set_yticks([])
    fig.legend(
        handles=[
            Patch(facecolor=(0.1, 0.35, 0.9), label="GLAKES lake"),
            Patch(facecolor=(1.0, 0.55, 0.1), label="removed: SHIFT floodplain, occurrence < 30 %"),
        ],
        loc="lower center",
        ncol=2,
        frameon=False,
    )
    fig.suptitle("Fig. 4 - GLAKES before and after the floodplain mask")
    fig.tight_layout(rect=(0, 0.05, 1, 0.96), h_pad=2.5)  # room for the lower titles
    return fig


def rule_effects(pixels: pd.DataFrame) -> Figure:
    """Predicted lake pixels by truth class after each step (stacked bars): what each rule removed or added."""
    classes = [c for c in ("lake", "lagoon", "ocean", "river", "paddy", "land") if c in pixels.columns]
    colours = {
        "lake": (0.1, 0.35, 0.9),
        "lagoon": (0.5, 0.3, 0.7),
        "ocean": (0.1, 0.1, 0.4),
        "river": (1.0, 0.55, 0.1),
        "paddy": (0.55, 0.75, 0.2),
        "land": (0.7, 0.7, 0.7),
    }
    fig, ax = plt.subplots(figsize=(8, 4.2))
    bottom = np.zeros(len(pixels))
    for c in classes:
        v = pixels[c].to_numpy(float) / 1e4  # 10 m pixels -> km2
        ax.bar(pixels.index, v, bottom=bottom, color=colours[c], label=c)
        bottom += v
    ax.set_ylabel("predicted lake area (km2) on each truth class")
    ax.set_title("What each post-processing step keeps, against the truth")
    ax.legend(frameon=False, ncol=3)
    fig.tight_layout()
    return fig
