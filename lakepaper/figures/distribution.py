"""Figures of stage 07: the global distribution of the paper's Fig. 6."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from lakepaper.figures.maps import global_axes
from lakepaper.stats import LakeCells, count_grid, density_grid, profile

#: With fewer non-empty cells than this, cells are also drawn as markers (1-degree cells of a sparse
#: catalogue, e.g. the simulated world's 16 tiles, are otherwise invisible on a global map).
SPARSE_CELLS = 2000


def grid_map(ax, grid, values: np.ndarray, *, norm=None, cmap: str = "viridis", label: str = ""):
    """Draw a (nrows, ncols) grid (rows from 90 S) on a GeoAxes; zero and NaN cells left blank."""
    import cartopy.crs as ccrs
    from matplotlib.ticker import LogFormatterSciNotation, LogLocator, NullFormatter

    blank = ~np.isfinite(values) | (values == 0)
    v = np.ma.masked_where(blank, values)
    mesh = ax.pcolormesh(
        grid.lon_edges,
        grid.lat_edges,
        v,
        transform=ccrs.PlateCarree(),
        cmap=cmap,
        norm=norm,
        shading="flat",
        rasterized=True,
    )
    rows, cols = np.nonzero(~blank)
    if 0 < len(rows) < SPARSE_CELLS:
        ax.scatter(
            grid.lon_centres[cols],
            grid.lat_centres[rows],
            c=values[rows, cols],
            cmap=cmap,
            norm=mesh.norm,
            s=14,
            marker="s",
            edgecolor="k",
            linewidth=0.3,
            transform=ccrs.PlateCarree(),
            zorder=5,
        )
    cb = plt.colorbar(mesh, ax=ax, orientation="horizontal", pad=0.04, fraction=0.05, shrink=0.8)
    if isinstance(norm, LogNorm):
        decades = np.log10(norm.vmax / norm.vmin) if norm.vmin > 0 else 10
        cb.ax.xaxis.set_major_locator(LogLocator(subs=(1.0,) if decades > 2 else (1.0, 2.0, 5.0), numticks=8))
        cb.ax.xaxis.set_major_formatter(LogFormatterSciNotation(labelOnlyBase=False))
        cb.ax.xaxis.set_minor_formatter(NullFormatter())
    cb.set_label(label)
    return mesh


def _lognorm(values: np.ndarray) -> LogNorm | None:
    pos = values[np.isfinite(values) & (values > 0)]
    if not len(pos):
        return None
    lo, hi = float(pos.min()), float(pos.max())
    return LogNorm(vmin=lo, vmax=hi if hi > lo else lo * 10)


def fig6(lc: LakeCells, *, title: str = "", extent=(-180, 180, -60, 85)) -> Figure:
    """Fig. 6: (a) lake area density and (b) lake count per cell; (c) latitude and (d) longitude profiles.

    Args:
        lc: a located catalogue (:func:`lakepaper.stats.locate`); its grid is the map's cells.
        title: figure title (e.g. the catalogue's name).
        extent: lon/lat extent of the maps.
    """
    fig = plt.figure(figsize=(13, 13))
    grid = fig.add_gridspec(3, 2, width_ratios=[1, 0.3], height_ratios=[1, 1, 0.5], hspace=0.32, wspace=0.06)
    dens, cnt = density_grid(lc), count_grid(lc).astype(float)
    ax_a = global_axes(fig, grid[0, 0], extent=extent)
    grid_map(ax_a, lc.grid, dens, norm=_lognorm(dens), cmap="YlGnBu", label="lake area / cell area")
    ax_a.set_title(f"(a) lake area density per {lc.grid.deg:g}° cell")
    ax_b = global_axes(fig, grid[1, 0], extent=extent)
    grid_map(ax_b, lc.grid, cnt, norm=_lognorm(cnt), cmap="magma_r", label="lakes per cell")
    ax_b.set_title(f"(b) lake count per {lc.grid.deg:g}° cell")

    lat = profile(lc, "lat")
    ax_c = fig.add_subplot(grid[0:2, 1])
    ax_c.barh(lat.centre, lat["count"], height=lc.grid.deg, color="tab:purple", alpha=0.6, label="count")
    ax_c.set_xlabel("lakes", color="tab:purple"), ax_c.set_ylabel("latitude (°)")
    ax_c.yaxis.set_label_position("right"), ax_c.yaxis.tick_right()
    ax_c.set_ylim(extent[2], extent[3])
    ax_c2 = ax_c.twiny()
    ax_c2.plot(lat.area_km2, lat.centre, color="tab:blue", lw=1.0, label="area")
    ax_c2.set_xlabel("lake area (km²)", color="tab:blue")
    ax_c.set_title("(c) by latitude", pad=34)

    lon = profile(lc, "lon")
    ax_d = fig.add_subplot(grid[2, 0])
    ax_d.bar(lon.centre, lon["count"], width=lc.grid.deg, color="tab:purple", alpha=0.6, label="count")
    ax_d.set_ylabel("lakes", color="tab:purple"), ax_d.set_xlabel("longitude (°)")
    ax_d.set_xlim(extent[0], extent[1])
    ax_d2 = ax_d.twinx()
    ax_d2.plot(lon.centre, lon.area_km2, color="tab:blue", lw=1.0)
    ax_d2.set_ylabel("lake area (km²)", color="tab:blue")
    ax_d.set_title("(d) by longitude")
    if title:
        fig.suptitle(title)
    return fig
