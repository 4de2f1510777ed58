"""Figures of the simulated world (stage 00): what a reader checks before trusting the demo."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from lakepaper.figures import true_colour
from lakepaper.io import read_raster
from lakepaper.world.files import WorldFiles


def ndwi(l2a_10m: np.ndarray) -> np.ndarray:
    """NDWI = (B3 - B8) / (B3 + B8) of an L2A 10 m array; NaN where no data."""
    b3, b8 = l2a_10m[1].astype(np.float32), l2a_10m[3].astype(np.float32)
    out = (b3 - b8) / np.maximum(b3 + b8, 1)
    return np.where((b3 == 0) & (b8 == 0), np.nan, out)


def scene_quicklooks(world: WorldFiles, tile: str, *, n: int = 4) -> Figure:
    """True colour, NDWI and s2cloudless probability of ``n`` scenes of a tile, with their metadata."""
    scenes = world.scenes().query("tile == @tile").reset_index(drop=True)
    pick = np.linspace(0, len(scenes) - 1, min(n, len(scenes))).round().astype(int)
    fig, axes = plt.subplots(3, len(pick), figsize=(3.2 * len(pick), 9.6), squeeze=False)
    for j, k in enumerate(pick):
        s = scenes.iloc[k]
        l2a, _ = world.read_scene(tile, s.system_index, "L2A_10m")
        prob, _ = world.read_scene(tile, s.system_index, "CLDPRB")
        axes[0, j].imshow(true_colour(l2a))
        axes[0, j].set_title(f"{s.date:%Y-%m-%d}\ncloudy {s.CLOUDY_PIXEL_PERCENTAGE:.0f} %", fontsize=9)
        axes[1, j].imshow(ndwi(l2a), cmap="RdBu", vmin=-0.8, vmax=0.8)
        p = np.where(prob[0] == 255, np.nan, prob[0])
        axes[2, j].imshow(p, cmap="magma", vmin=0, vmax=100)
    for i, label in enumerate(["true colour", "NDWI", "s2cloudless %"]):
        axes[i, 0].set_ylabel(label)
    for ax in axes.ravel():
        ax.set_xticks([]), ax.set_yticks([])
    fig.suptitle(f"Tile {tile}: simulated Sentinel-2 acquisitions")
    fig.tight_layout()
    return fig


def biome_gallery(world: WorldFiles, *, columns: int = 4) -> Figure:
    """Each tile's mean clear-sky true colour and NDWI (truth flags pick the clear views), lakes outlined."""
    from lakepaper.world.checks import clear_means

    tiles = world.tiles()
    rows = -(-len(tiles) // columns)
    fig, axes = plt.subplots(rows, 2 * columns, figsize=(2.1 * 2 * columns, 2.4 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.set_xticks([]), ax.set_yticks([]), ax.set_frame_on(False)
    for k, t in enumerate(tiles.itertuples()):
        refl, mean_ndwi = clear_means(world, t.tile)
        lake, _ = read_raster(world.truth_path(t.tile, "lake_id"))
        a_rgb, a_ndwi = axes[k // columns, 2 * (k % columns)], axes[k // columns, 2 * (k % columns) + 1]
        a_rgb.imshow(true_colour(np.nan_to_num(refl)))
        a_rgb.contour(lake[0] > 0, levels=[0.5], colors="yellow", linewidths=0.3)
        a_ndwi.imshow(mean_ndwi, cmap="RdBu", vmin=-0.8, vmax=0.8)
        a_rgb.set_title(f"{t.tile} {t.biome} ({t.region_type})", fontsize=8, loc="left")
        a_ndwi.set_title(t.place, fontsize=6, loc="right")
    fig.suptitle("Clear-sky means of every tile: true colour with the true lakes (yellow), and NDWI")
    fig.tight_layout()
    return fig


def size_distribution(world: WorldFiles, fit: dict) -> Figure:
    """Exceedance N(A > a) of the true lakes on log-log axes against the configured power law."""
    import geopandas as gpd

    lakes = gpd.read_parquet(world.lakes_path)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for label, sel, style in [("all lakes", lakes, "k."), ("drawn from the law", lakes[lakes.from_size_law], "b.")]:
        a = np.sort(sel["area_km2"].to_numpy())[::-1]
        ax.loglog(a, np.arange(1, a.size + 1), style, ms=2, label=f"{label} (n={a.size})")
    a_min = fit["a_min"]
    n_above = fit["n"]
    a_max = fit["a_max"]
    grid = np.logspace(np.log10(a_min), np.log10(a_max), 50)
    for tau, style, label in [(fit["configured"], "r-", "configured"), (fit["fitted"], "g--", "fitted")]:
        alpha = tau - 1
        lo, hi = a_min**-alpha, a_max**-alpha
        ax.loglog(grid, n_above * (grid**-alpha - hi) / (lo - hi), style, label=f"{label} tau = {tau:.3f}")
    ax.axvline(a_min, color="grey", lw=0.8, ls=":")
    ax.set_ylim(bottom=0.8)
    ax.set_xlabel("lake area a (km$^2$)")
    ax.set_ylabel("number of lakes larger than a")
    ax.set_title("Simulated lake sizes: p(A) ~ A$^{-\\tau}$")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def cloud_cover(world: WorldFiles, *, max_cloud_pct: float = 60.0) -> Figure:
    """Per scene: CLOUDY_PIXEL_PERCENTAGE (the metadata the paper filters on) and true cloud cover."""
    s = world.scenes().sort_values(["tile", "date"]).reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(10, 3.6))
    x = np.arange(len(s))
    keep = max_cloud_pct > s.CLOUDY_PIXEL_PERCENTAGE
    ax.bar(x[keep], s.CLOUDY_PIXEL_PERCENTAGE[keep], color="tab:blue", label="CLOUDY_PIXEL_PERCENTAGE (kept)")
    ax.bar(x[~keep], s.CLOUDY_PIXEL_PERCENTAGE[~keep], color="tab:grey", label="(dropped: >= 60 %)")
    ax.plot(x, 100 * s.truth_cloud_cover, "r.", ms=4, label="true thick-cloud cover")
    ax.plot(x, 100 * s.truth_any_cloud, "rx", ms=3, label="true cloud cover incl. thin")
    ax.axhline(max_cloud_pct, color="k", lw=0.8, ls="--")
    starts = s.groupby("tile").head(1).index
    ax.set_xticks(starts, s.tile[starts], fontsize=7)
    ax.set_ylabel("% of tile")
    ax.set_title(f"Cloud cover per scene ({keep.sum()} of {len(s)} scenes pass the paper's < 60 % filter)")
    ax.legend(fontsize=7, ncol=3, loc="upper right")
    fig.tight_layout()
    return fig


def tile_map(world: WorldFiles) -> Figure:
    """Where the tiles stand on the globe (plain lon/lat: no basemap is downloaded)."""
    t = world.tiles()
    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.set_xlim(-180, 180), ax.set_ylim(-60, 80)
    ax.grid(True, lw=0.4, alpha=0.6)
    biomes = sorted(t.biome.unique())
    colours = dict(zip(biomes, plt.cm.tab10(np.arange(len(biomes))), strict=True))
    for k, row in enumerate(t.itertuples()):
        ax.plot(row.lon, row.lat, "o", color=colours[row.biome], ms=7)
        offset = (4, 3) if k % 2 == 0 else (4, -9)  # neighbours (Wuhan beside the Yangtze plain) stay legible
        ax.annotate(row.tile, (row.lon, row.lat), xytext=offset, textcoords="offset points", fontsize=7)
    for b in biomes:
        ax.plot([], [], "o", color=colours[b], label=b)
    ax.legend(fontsize=7, ncol=4, loc="lower left")
    ax.set_xlabel("longitude"), ax.set_ylabel("latitude")
    ax.set_title("Tiles of the simulated world")
    fig.tight_layout()
    return fig


def false_positives_by_surface(fp: pd.Series) -> Figure:
    """s2cloudless false-positive rate on clear land, per surface class."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.barh(fp.index, 100 * fp.to_numpy(), color="tab:orange")
    ax.set_xlabel("% of clear pixels with probability > 50 %")
    ax.set_title("s2cloudless on clear land, by surface")
    fig.tight_layout()
    return fig


#: Land surfaces whose NDWI lies near zero or above: what a water index mistakes for water.
CONFOUNDERS = (
    "building_shadow",
    "asphalt",
    "burn_scar",
    "wet_soil",
    "dark_lava",
    "salt_crust",
    "glacier_ice",
    "snow",
    "algal_scum",
)


def water_spectra() -> Figure:
    """The world's water types and land confounders: reflectance spectra, and where they fall in NDWI-MNDWI.

    Left: surface reflectance of each optical water type at the Sentinel-2 band centres. Right:
    NDWI (B3, B8) against MNDWI (B3, B11) of every water type (blue) and of the land surfaces
    that water indices confuse with water (orange); terrain shadow is shown for rock. The
    indices' zero lines split the plane: water right of MNDWI = 0 and above NDWI = 0 is easy;
    highly turbid water lies below NDWI = 0, where only MNDWI (and the model) can find it.
    """
    from lakepaper.truth import WATER_TYPES
    from lakepaper.world import spectra as sp

    table = sp.SURFACE_TABLE
    keep = [i for i, b in enumerate(sp.S2_BANDS) if b != "B10"]
    wl = np.array(sp.WAVELENGTH_NM)[keep]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.2))
    colours = plt.get_cmap("tab10")

    def indices(r: np.ndarray) -> tuple[float, float]:
        b3, b8, b11 = r[2], r[7], r[11]
        return (b3 - b8) / (b3 + b8), (b3 - b11) / (b3 + b11)

    for k, name in enumerate(WATER_TYPES):
        r = table[sp.SURFACES[sp.TYPE_SURFACE[name]]]
        a1.plot(wl, r[keep], marker="o", ms=3, color=colours(k), label=name.replace("_", " "))
        nd, mnd = indices(r)
        a2.scatter(mnd, nd, color="tab:blue", s=28)
        a2.annotate(name.replace("_", " "), (mnd, nd), fontsize=7, xytext=(3, 2), textcoords="offset points")
    shade = sp.DIFFUSE_FRACTION
    land = {n: table[sp.SURFACES[n]] for n in CONFOUNDERS} | {
        "rock in terrain shadow": table[sp.SURFACES["rock"]] * shade
    }
    for name, r in land.items():
        nd, mnd = indices(r)
        a2.scatter(mnd, nd, color="tab:orange", marker="s", s=22)
        a2.annotate(name.replace("_", " "), (mnd, nd), fontsize=7, xytext=(3, -8), textcoords="offset points")
    a1.set_xlabel("wavelength (nm)"), a1.set_ylabel("surface reflectance")
    a1.set_title("Optical water types of the simulated world", fontsize=10)
    a1.legend(fontsize=7, ncol=2)
    a2.axhline(0, color="grey", lw=0.8), a2.axvline(0, color="grey", lw=0.8)
    a2.set_xlabel("MNDWI (B3, B11)"), a2.set_ylabel("NDWI (B3, B8)")
    a2.set_title("Water (blue) and land that looks like water (orange)", fontsize=10)
    fig.tight_layout()
    return fig
