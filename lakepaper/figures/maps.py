"""Cartopy maps without the network: the Natural Earth files ship with the package.

Cartopy downloads Natural Earth shapefiles the first time a map asks for coastlines, which fails
offline (here, and on many clusters). The few files the figures need are shipped in
``lakepaper/data/natural_earth/`` (public domain; provenance in the README there) in the layout
cartopy expects (``shapefiles/natural_earth/physical/ne_110m_coastline.shp`` ...).
:func:`use_offline_natural_earth` points cartopy at them: ``cartopy.config["pre_existing_data_dir"]``,
which is what the ``CARTOPY_DATA_DIR`` environment variable sets when cartopy is imported (set too,
for subprocesses). Cartopy looks there before its download folder.

Only the scales shipped are ever requested (:func:`add_coastlines`, :func:`add_land` pick one with
``scale="auto"``), so a map never falls back to a download: cartopy's own
``ax.coastlines()`` picks 10 m for small extents, which is not shipped.
"""

from __future__ import annotations

import os
from pathlib import Path

from lakepaper.errors import ParameterError

#: Folder holding ``shapefiles/natural_earth/<category>/ne_<scale>_<name>.shp``.
NATURAL_EARTH_DIR = Path(__file__).resolve().parent.parent / "data" / "natural_earth"

#: (category, name) -> scales shipped.
SHIPPED: dict[tuple[str, str], tuple[str, ...]] = {
    ("physical", "coastline"): ("110m", "50m"),
    ("physical", "land"): ("110m",),
    ("physical", "ocean"): ("110m",),
}


def natural_earth_path(name: str, scale: str = "110m", category: str = "physical") -> Path:
    """Path of a shipped Natural Earth shapefile (whether or not it exists)."""
    return NATURAL_EARTH_DIR / "shapefiles" / "natural_earth" / category / f"ne_{scale}_{name}.shp"


def use_offline_natural_earth() -> Path:
    """Point cartopy (and ``CARTOPY_DATA_DIR`` for child processes) at the shipped Natural Earth files.

    Idempotent; called by every map function of :mod:`lakepaper.figures`.

    Returns:
        The data folder.
    """
    import cartopy

    cartopy.config["pre_existing_data_dir"] = NATURAL_EARTH_DIR
    os.environ["CARTOPY_DATA_DIR"] = str(NATURAL_EARTH_DIR)
    return NATURAL_EARTH_DIR


def _scale(name: str, category: str, scale: str, extent_deg: float | None) -> str:
    shipped = SHIPPED.get((category, name), ())
    if not shipped:
        raise ParameterError("name", f"Natural Earth {category}/{name} is not shipped; shipped: {sorted(SHIPPED)}")
    if scale == "auto":
        # the finer scale for regional maps (an extent under 60 degrees), the coarser for the globe
        scale = "50m" if "50m" in shipped and extent_deg is not None and extent_deg < 60 else shipped[0]
    if scale not in shipped:
        raise ParameterError("scale", f"Natural Earth {category}/{name} ships at {shipped}, not {scale!r}")
    return scale


def feature(name: str, *, scale: str = "110m", category: str = "physical", **kwargs):
    """A cartopy Natural Earth feature read from the shipped files."""
    import cartopy.feature as cfeature

    use_offline_natural_earth()
    return cfeature.NaturalEarthFeature(category, name, _scale(name, category, scale, None), **kwargs)


def _extent_deg(ax) -> float | None:
    try:
        import cartopy.crs as ccrs

        x0, x1, y0, y1 = ax.get_extent(ccrs.PlateCarree())
        return max(x1 - x0, y1 - y0)
    except Exception:  # noqa: BLE001 - an axes without a usable extent: use the global scale
        return None


def add_coastlines(ax, *, scale: str = "auto", linewidth: float = 0.4, color: str = "0.3", **kwargs):
    """Draw coastlines from the shipped files on a cartopy GeoAxes (never downloads)."""
    import cartopy.feature as cfeature

    use_offline_natural_earth()
    s = _scale("coastline", "physical", scale, _extent_deg(ax))
    f = cfeature.NaturalEarthFeature("physical", "coastline", s, edgecolor=color, facecolor="none")
    return ax.add_feature(f, linewidth=linewidth, **kwargs)


def add_land(ax, *, color: str = "0.93", **kwargs):
    """Fill land from the shipped 1:110m land polygons."""
    import cartopy.feature as cfeature

    use_offline_natural_earth()
    f = cfeature.NaturalEarthFeature("physical", "land", "110m", edgecolor="none", facecolor=color)
    return ax.add_feature(f, zorder=kwargs.pop("zorder", 0), **kwargs)


def global_axes(fig, position=111, *, projection=None, extent=(-180, 180, -60, 85)):
    """A GeoAxes for a global lon/lat map (Robinson by default) with land and coastlines drawn offline."""
    import cartopy.crs as ccrs

    use_offline_natural_earth()
    ax = fig.add_subplot(position, projection=projection or ccrs.Robinson())
    ax.set_extent(extent, crs=ccrs.PlateCarree())
    add_land(ax)
    add_coastlines(ax, scale="110m")
    return ax
