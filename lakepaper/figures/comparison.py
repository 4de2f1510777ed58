"""Figures of stage 08: comparison with GLAKES and PLD (the paper's Figs. 7, 8 and 9).

Fig. 8's regions are either given (:func:`region_panels`: lon/lat boxes, optional composite
basemaps) or, on the simulated world, picked from its tiles (:func:`world_panels`: one tile per kind
of landscape the paper shows, over stage 01's composite).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import shapely
from matplotlib import patheffects
from matplotlib.colors import SymLogNorm
from matplotlib.figure import Figure

from lakepaper.compare import clip
from lakepaper.figures.maps import add_coastlines, global_axes

#: Colours of the catalogues, by name (others get the next of the default cycle).
CATALOGUE_COLOURS = {
    "GLAKESplus": "tab:red",
    "this run": "tab:red",
    "GLAKES": "tab:blue",
    "PLD": "tab:green",
    "HydroLAKES": "tab:purple",
    "truth": "k",
}


def _colours(names: Sequence[str]) -> dict[str, str]:
    cycle = iter(plt.rcParams["axes.prop_cycle"].by_key()["color"][4:] * 3)
    return {n: CATALOGUE_COLOURS.get(n) or next(cycle) for n in names}


def fig7(table: pd.DataFrame, *, notes: str = "") -> Figure:
    """Fig. 7: lake count and total area per size group for each catalogue (log scale, values printed).

    Args:
        table: :func:`lakepaper.compare.size_group_comparison` (catalogue, size_group, count, area_km2).
        notes: a line under the title (e.g. the minimum lake sizes of the references).
    """
    names = list(dict.fromkeys(table.catalogue))
    groups = list(dict.fromkeys(table.size_group))
    colours = _colours(names)
    fig, axes = plt.subplots(2, 1, figsize=(12, 8), sharex=True)
    x = np.arange(len(groups))
    w = 0.8 / max(len(names), 1)
    for ax, value, label in ((axes[0], "count", "lake count"), (axes[1], "area_km2", "total lake area (km²)")):
        for i, name in enumerate(names):
            t = table[table.catalogue == name].set_index("size_group").reindex(groups)
            v = t[value].to_numpy(float)
            pos = x + (i - (len(names) - 1) / 2) * w
            ax.bar(pos, np.where(v > 0, v, np.nan), w, color=colours[name], label=name)
            for p, vi in zip(pos, v, strict=True):
                if vi > 0:
                    ax.text(p, vi * 1.15, f"{vi:.3g}", ha="center", va="bottom", fontsize=6.5, rotation=90)
        ax.set_yscale("log"), ax.set_ylabel(label), ax.grid(True, axis="y", lw=0.3, alpha=0.6)
        top = table[value].replace(0, np.nan).max()
        if np.isfinite(top):
            ax.set_ylim(top=top * 30)
    axes[0].legend(fontsize=8, ncol=len(names))
    axes[1].set_xticks(x, groups), axes[1].set_xlabel("lake size group (km²)")
    axes[0].set_title(
        "Fig. 7: lake count (top) and total area (bottom) per size group" + (f"\n{notes}" if notes else "")
    )
    return fig


@dataclass
class MapPanel:
    """One region of Fig. 8: a lon/lat box, the catalogues to outline and optional basemaps.

    Basemaps are arrays with their ``extent`` (left, right, bottom, top) in ``crs``: ``ndwi`` (rows, cols)
    and ``rgb`` (rows, cols, 3, 0..1). Catalogues are drawn in ``crs`` (e.g. the composite's UTM zone).
    """

    title: str
    box: tuple[float, float, float, float]
    catalogues: Mapping[str, gpd.GeoDataFrame]
    ndwi: np.ndarray | None = None
    rgb: np.ndarray | None = None
    extent: tuple[float, float, float, float] | None = None
    crs: str | object = "EPSG:4326"
    left: Sequence[str] = ("GLAKES", "PLD")
    right: Sequence[str] = ("GLAKESplus",)
    extra: dict = field(default_factory=dict)


def composite_basemap(path: str | os.PathLike[str]) -> dict:
    """NDWI and a stretched true-colour image of a composite tile, with extent and CRS, for a MapPanel."""
    from lakepaper.composite.local import read_composite

    bands, _, meta = read_composite(path)
    names = list(meta["band_names"])
    rgb = np.stack([bands[names.index(b)] for b in ("B4", "B3", "B2")], axis=-1)
    lo, hi = np.nanpercentile(rgb, [2, 98])
    rgb = np.clip((rgb - lo) / (hi - lo if hi > lo else 1), 0, 1)
    rgb = np.nan_to_num(rgb, nan=1.0)
    t = meta["transform"]
    h, w = bands.shape[1:]
    extent = (t.c, t.c + w * t.a, t.f + h * t.e, t.f)
    return {"ndwi": bands[names.index("NDWI")], "rgb": rgb, "extent": extent, "crs": meta["crs"]}


def composite_panel(
    title: str,
    path: str | os.PathLike[str],
    catalogues: Mapping[str, gpd.GeoDataFrame],
    *,
    box: tuple[float, float, float, float] | None = None,
    left: Sequence[str] = ("GLAKES", "PLD"),
    right: Sequence[str] = ("GLAKESplus",),
) -> MapPanel:
    """A Fig. 8 panel over a composite tile: its NDWI and true colour as basemaps, in its CRS.

    Args:
        box: lon/lat box to show (default: the whole tile).
    """
    bm = composite_basemap(path)
    if box is None:
        e = bm["extent"]
        box = tuple(
            float(v)
            for v in gpd.GeoSeries([shapely.box(e[0], e[2], e[1], e[3])], crs=bm["crs"]).to_crs(4326).total_bounds
        )
    return MapPanel(title, box, catalogues, left=left, right=right, **bm)


def region_panels(
    regions: Sequence[Sequence],
    basemaps: Sequence[str],
    catalogues: Mapping[str, gpd.GeoDataFrame],
    *,
    right: Sequence[str] = ("GLAKESplus",),
) -> list[MapPanel]:
    """Fig. 8 panels of given regions.

    Args:
        regions: ``[title, minx, miny, maxx, maxy]`` per region, lon/lat.
        basemaps: one composite GeoTIFF per region (``""`` or missing: no basemap).
        right: the catalogues drawn over the true-colour basemap (this product).
    """
    panels = []
    for i, (title, *box) in enumerate(regions):
        base = basemaps[i] if i < len(basemaps) and basemaps[i] else None
        kw = composite_basemap(base) if base else {}
        panels.append(MapPanel(title, tuple(box), catalogues, right=right, **kw))
    return panels


def world_tiles(tiles: pd.DataFrame) -> list[tuple[str, str]]:
    """Fig. 8's regions on the simulated world: (what it shows, tile) for each kind of landscape it has.

    The paper's regions are ponds, a salt flat, lakes by a river and seasonal lakes: the first
    ``ponds`` tile, the first ``arid`` tile, the northernmost ``river`` tile and the second ``arid``
    tile (``tiles``: the tile table of ``00_world/world.json``). Kinds the world lacks are left out.
    """
    picks = [
        ("ponds", tiles[tiles.biome == "ponds"].tile.iloc[:1]),
        ("a salt flat", tiles[tiles.biome == "arid"].tile.iloc[:1]),
        ("lakes by a river", tiles[tiles.biome == "river"].sort_values("lat").tile.iloc[-1:]),
        ("seasonal lakes", tiles[tiles.biome == "arid"].tile.iloc[1:2]),
    ]
    return [(title, str(tile.iloc[0])) for title, tile in picks if len(tile)]


def world_panels(
    tiles: pd.DataFrame,
    composite_dir: str | os.PathLike[str] | None,
    catalogues: Mapping[str, gpd.GeoDataFrame],
    *,
    right: Sequence[str] = ("GLAKESplus",),
) -> list[MapPanel]:
    """Fig. 8 panels on the simulated world: the tiles of :func:`world_tiles` over their composites.

    Args:
        tiles: ``tile``, ``biome``, ``lat`` per tile, and optionally ``path``: its composite GeoTIFF (stage
            01's ``tile_grid.gpkg``).
        composite_dir: where tiles without a ``path`` have their composite (``<tile>.tif``; stage 01's
            ``tiles/``); tiles without a composite are left out.
    """
    paths = dict(zip(tiles.tile, tiles.path, strict=True)) if "path" in tiles else {}
    panels = []
    for title, tile in world_tiles(tiles):
        path = (
            Path(paths[tile]) if paths.get(tile) else (Path(composite_dir) / f"{tile}.tif" if composite_dir else None)
        )
        if path is not None and path.exists():
            panels.append(composite_panel(f"{tile}, {title}", path, catalogues, right=right))
    return panels


def _outline(ax, gdf: gpd.GeoDataFrame, crs, colour: str, label: str, lw: float) -> None:
    if len(gdf):
        gdf.to_crs(crs).boundary.plot(ax=ax, color=colour, lw=lw)
    ax.plot([], [], color=colour, lw=1.5, label=f"{label} ({len(gdf)})")


def fig8(panels: Sequence[MapPanel]) -> Figure:
    """Fig. 8: per region, (left) NDWI basemap with the reference catalogues, (right) RGB with this product.

    Catalogues are cut to each panel's box (whole polygons that intersect it).
    """
    n = len(panels)
    fig, axes = plt.subplots(n, 2, figsize=(10, 4.8 * n), squeeze=False)
    for row, p in zip(axes, panels, strict=True):
        names = [*p.left, *p.right]
        colours = _colours(names)
        colours.update({k: {"GLAKESplus": "yellow", "this run": "yellow"}.get(k, colours[k]) for k in p.right})
        box_crs = gpd.GeoSeries([shapely.box(*p.box)], crs=4326).to_crs(p.crs).total_bounds
        for ax, base, layer_names, cmap in ((row[0], p.ndwi, p.left, "gray"), (row[1], p.rgb, p.right, None)):
            if base is not None and p.extent is not None:
                ax.imshow(
                    base,
                    extent=p.extent,
                    cmap=cmap,
                    vmin=-0.6 if cmap else None,
                    vmax=0.6 if cmap else None,
                    interpolation="nearest",
                )
            for name in layer_names:
                if name in p.catalogues:
                    _outline(ax, clip(p.catalogues[name], p.box), p.crs, colours[name], name, 0.7)
            ax.set_xlim(box_crs[0], box_crs[2]), ax.set_ylim(box_crs[1], box_crs[3])
            ax.set_xticks([]), ax.set_yticks([]), ax.set_xlabel(""), ax.set_ylabel("")
            ax.legend(fontsize=7, loc="lower left", framealpha=0.85)
        row[0].set_title(f"{p.title}: NDWI, " + ", ".join(p.left), fontsize=9)
        row[1].set_title(f"{p.title}: true colour, " + ", ".join(p.right), fontsize=9)
    fig.tight_layout()
    return fig


def _signed_sqrt(v):
    return np.sign(v) * np.sqrt(np.abs(v))


def _unsigned_sq(v):
    return np.sign(v) * v * v


def fig9(
    lon: pd.DataFrame,
    lat: pd.DataFrame,
    diff: dict,
    *,
    a: str = "GLAKESplus",
    b: str = "PLD",
    split_km2: float = 0.1,
    groups: Mapping[str, tuple[float, float]] | None = None,
    extent=(-180, 180, -60, 85),
    diff_label: str = "0.01-0.1 km²",
) -> Figure:
    """Fig. 9: ``a`` against ``b``: (a, d) count and area by longitude, (b, e) by latitude, (c, f) per-cell differences.

    In (a, b, d, e) size ranges whose lower bound is at least ``split_km2`` are drawn upwards and the
    others downwards (mirrored), on a square-root axis ("stretched" as in the paper); ``a`` as stacked
    bars, ``b`` as lines.

    Args:
        lon, lat: :func:`lakepaper.compare.profiles_by_group` tables holding catalogues ``a`` and ``b``.
        diff: :func:`lakepaper.compare.cell_difference` of ``a`` minus ``b``.
        groups: name -> (lo, hi) of the size ranges (default: those in the tables, in order).
    """
    names = list(dict.fromkeys(lon.group)) if groups is None else list(groups)
    lower = {g: float(groups[g][0]) if groups is not None else _lower_bound(g) for g in names}
    cmap = plt.get_cmap("tab10")
    colours = {g: cmap(i) for i, g in enumerate(names)}
    fig = plt.figure(figsize=(16, 9.5))
    grid = fig.add_gridspec(2, 3, width_ratios=[1.25, 1, 1.25], hspace=0.32, wspace=0.25, bottom=0.12)
    panels = {
        ("lon", "count"): (fig.add_subplot(grid[0, 0]), "(a) count by longitude"),
        ("lat", "count"): (fig.add_subplot(grid[0, 1]), "(b) count by latitude"),
        ("lon", "area_km2"): (fig.add_subplot(grid[1, 0]), "(d) area by longitude (km²)"),
        ("lat", "area_km2"): (fig.add_subplot(grid[1, 1]), "(e) area by latitude (km²)"),
    }
    for (axis, value), (ax, title) in panels.items():
        table = lon if axis == "lon" else lat
        up = np.zeros(table.centre.nunique())
        down = np.zeros_like(up)
        for g in names:
            ta = table[(table.catalogue == a) & (table.group == g)].sort_values("centre")
            tb = table[(table.catalogue == b) & (table.group == g)].sort_values("centre")
            sign = 1.0 if lower[g] >= split_km2 else -1.0
            if len(ta):
                v = ta[value].to_numpy(float)
                width = float(ta.hi.iloc[0] - ta.lo.iloc[0])
                base = up if sign > 0 else down
                ax.bar(ta.centre, sign * v, width, bottom=sign * base, color=colours[g], alpha=0.75, label=f"{a} {g}")
                base += v
            if len(tb):
                halo = [patheffects.withStroke(linewidth=2.2, foreground="w")]
                ax.plot(
                    tb.centre,
                    sign * tb[value].to_numpy(float),
                    color=colours[g],
                    lw=1.4 - 0.15 * names.index(g),
                    label=f"{b} {g}",
                    zorder=3,
                    path_effects=halo,
                )
        ax.axhline(0, color="k", lw=0.5)
        ax.set_yscale("function", functions=(_signed_sqrt, _unsigned_sq))
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("longitude (°)" if axis == "lon" else "latitude (°)")
        ax.set_xlim(*(extent[:2] if axis == "lon" else extent[2:]))
        ax.text(0.01, 0.98, f"≥ {split_km2:g} km² ↑", transform=ax.transAxes, va="top", fontsize=7)
        ax.text(0.01, 0.02, f"< {split_km2:g} km² ↓", transform=ax.transAxes, va="bottom", fontsize=7)
    handles, labels = panels[("lon", "count")][0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7.5, ncol=len(names), loc="lower center", bbox_to_anchor=(0.4, 0.0))

    from lakepaper.figures.distribution import grid_map

    g = diff["grid"]
    for r, (key, label) in enumerate((("count_diff", "lakes"), ("area_diff", "km²"))):
        ax = global_axes(fig, grid[r, 2], extent=extent)
        v = diff[key].astype(float)
        big = np.nanmax(np.abs(v)) if np.isfinite(v).any() and np.abs(v).max() > 0 else 1.0
        thresh = max(big / 100, 1e-4 if key == "area_diff" else 1)
        mesh = grid_map(
            ax, g, v, norm=SymLogNorm(linthresh=thresh, vmin=-big, vmax=big), cmap="RdBu_r", label=f"{a} − {b}, {label}"
        )
        decades = 10.0 ** np.arange(np.ceil(np.log10(thresh)), np.floor(np.log10(big)) + 1)
        mesh.colorbar.set_ticks([*(-decades[::-1]), 0.0, *decades])
        mesh.colorbar.ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda x, _: f"{x:g}"))
        add_coastlines(ax, scale="110m")
        letter, what = ("c", "count") if r == 0 else ("f", "area")
        ax.set_title(f"({letter}) {diff_label}: {what} difference per {g.deg:g}° cell", fontsize=10)
    return fig


def _lower_bound(name: str) -> float:
    """Lower bound (km2) of a size-range name like ``0.01-0.1``, ``>=100`` or ``<0.005`` (0)."""
    s = str(name).strip()
    if s.startswith("<"):
        return 0.0
    s = s.lstrip(">=")
    try:
        return float(s.split("-")[0])
    except ValueError:
        return 0.0
