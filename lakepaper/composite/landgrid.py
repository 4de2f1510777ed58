"""The global land tile grid of the Earth Engine exports (issue 18, item 1): ``tile_grid.gpkg``.

**Zones.** Each tile lies on a square grid of one projection: the UTM zone (WGS 84, EPSG 326zz
north / 327zz south, plain 6-degree zones without the Norway and Svalbard exceptions) between
80 S and 84 N, the polar stereographic UPS north (EPSG:32661) above 84 N and UPS south
(EPSG:32761) below 80 S, the extents of the UTM and UPS systems. Every zone's grid starts at its
projection's origin, so a tile's bounds are multiples of its side.

**Ownership.** A zone *owns* the part of the world in its strip (longitudes of the zone, latitudes
of the hemisphere band); a tile owns the part of its square (the *core*) inside its zone's strip.
The owned parts partition the world: stage 05 keeps a lake in the one tile that owns it. Near a
zone's edge the square reaches into the next zone (the next zone's own tiles own that part), so a
zone-edge tile is exported whole but owns a clipped part: its centre, and most of its square, lie
in its zone.

**Size.** A tile's core is ``GRID_WINDOWS`` x the model's window core (``patch_size - 2 x
edge_px`` = 376 px for the paper's 576 px windows and 100 px edges), so inference windows tile it
exactly: 24 x 376 = 9024 px, 90.24 km at 10 m. Exported with the edge on every side
(``gee.export_bounds``): 9224 x 9224 = 85.1 Mpx, under Earth Engine's default ``maxPixels`` of
1e8, in a single GeoTIFF of about 1 GB (6 int16 bands) when ``fileDimensions`` is set to the next
multiple of the 256 px ``shardSize`` (:func:`export_parameters`), so no export needs splitting.

**Land.** A tile is kept when its square comes within ``COASTAL_MARGIN_M`` of land: Natural
Earth's 1:50m land polygons shipped in ``lakepaper/data/landmask`` (see its README), or any
polygon file given by path. The margin covers the generalisation of the 1:50m coast (a few km),
lagoons and coastal lakes on the shore, and small islands next to mapped land.

**Extent.** By default the grid covers Sentinel-2's systematic land acquisitions, 56 S to 84 N
(ESA's mission requirement; Antarctica and the high Arctic are not acquired systematically).
Names are unique worldwide: ``33N_0064_04`` (UTM zone 33 north, row 64 = northing // side,
column 4 = easting // side), ``PN_0021_0023`` / ``PS_...`` for the polar grids.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely
from shapely.geometry import box

from lakepaper import io
from lakepaper.errors import InputError, ParameterError

#: The land mask shipped with the package (Natural Earth 1:50m land; lakepaper/data/landmask/README.md).
LAND_MASK = Path(__file__).resolve().parents[1] / "data" / "landmask" / "land_50m.parquet"
#: Window cores per tile side (own choice: 85.1 Mpx per export with the paper's windows, under maxPixels 1e8).
GRID_WINDOWS = 24
#: Tiles within this distance of land are kept, metres (own choice; module docstring).
COASTAL_MARGIN_M = 10_000.0
#: Latitudes of Sentinel-2's systematic land acquisitions (ESA: 56 S to 84 N).
S2_LATITUDES = (-56.0, 84.0)
#: Latitudes of the UTM system; beyond them the polar (UPS) grids.
UTM_LATITUDES = (-80.0, 84.0)
#: UPS north and south.
UPS_NORTH, UPS_SOUTH = 32661, 32761
#: Earth Engine's default export limit (``maxPixels``) and tile size of a file export (``shardSize``).
EE_MAX_PIXELS, EE_SHARD_PX = 100_000_000, 256
#: Bytes per pixel of one export: the composite bands and clear_count, int16 each (before compression).
INT16_BYTES = 2
#: Deflate-compressed size / raw size of composite GeoTIFFs, measured on the tiny simulated world's 16 stage-01
#: tiles (0.34-0.49, mean 0.45); real imagery and Earth Engine's own COG encoder will differ: an estimate only.
DEFLATE_RATIO = 0.45
#: Spacing of the vertices added along straight edges before reprojecting, metres or degrees.
_DENSIFY_M, _DENSIFY_DEG = 5_000.0, 0.25


@dataclass(frozen=True)
class Zone:
    """One projection of the grid and the part of the world it owns (a lon/lat polygon)."""

    code: str  # "33N", "PN", ...
    epsg: int
    strip: shapely.Geometry


def tile_side_px(p: dict[str, Any], windows: int = GRID_WINDOWS) -> int:
    """The tile core in pixels: ``windows`` x (``patch_size`` - 2 ``edge_px``).

    Raises:
        ParameterError: a window without a core, or fewer than one window.
    """
    core = int(p["patch_size"]) - 2 * int(p["edge_px"])
    if core < 1:
        raise ParameterError("edge_px", f"{p['edge_px']} px edges leave no core in {p['patch_size']} px windows")
    if not isinstance(windows, int) or windows < 1:
        raise ParameterError("windows", f"expected a positive int, got {windows!r}")
    return windows * core


def export_parameters(p: dict[str, Any], windows: int = GRID_WINDOWS) -> dict[str, int]:
    """Core and export size of a tile and the Earth Engine parameters that keep its export one file.

    Raises:
        ParameterError: the export would exceed Earth Engine's default ``maxPixels`` (a smaller
            ``windows``), or a bad window geometry.
    """
    core = tile_side_px(p, windows)
    side = core + 2 * int(p["edge_px"])
    if side * side > EE_MAX_PIXELS:
        raise ParameterError(
            "windows",
            f"{windows} windows give {side} x {side} px exports, over Earth Engine's maxPixels {EE_MAX_PIXELS}",
        )
    return {
        "core_px": core,
        "export_px": side,
        "max_pixels": side * side,
        "shard_px": EE_SHARD_PX,
        "file_dimensions": EE_SHARD_PX * math.ceil(side / EE_SHARD_PX),
        "bands": len(p["composite_bands"]) + 1,
    }


# --- zones -------------------------------------------------------------------------------------


def zones(lat_range: Sequence[float] = S2_LATITUDES) -> list[Zone]:
    """Every UTM and polar zone that owns part of the latitudes ``lat_range``."""
    lo, hi = float(lat_range[0]), float(lat_range[1])
    if not -90.0 <= lo < hi <= 90.0:
        raise ParameterError("lat_range", f"expected -90 <= south < north <= 90, got {tuple(lat_range)}")
    out = []
    for south, north, hemi, base in ((0.0, UTM_LATITUDES[1], "N", 32600), (UTM_LATITUDES[0], 0.0, "S", 32700)):
        s, n = max(south, lo), min(north, hi)
        if s >= n:
            continue
        for z in range(1, 61):
            west = -180.0 + 6.0 * (z - 1)
            out.append(Zone(f"{z:02d}{hemi}", base + z, box(west, s, west + 6.0, n)))
    if hi > UTM_LATITUDES[1]:
        out.append(Zone("PN", UPS_NORTH, box(-180.0, max(lo, UTM_LATITUDES[1]), 180.0, hi)))
    if lo < UTM_LATITUDES[0]:
        out.append(Zone("PS", UPS_SOUTH, box(-180.0, lo, 180.0, min(hi, UTM_LATITUDES[0]))))
    return out


def _to(epsg_from: int, epsg_to: int):
    t = pyproj.Transformer.from_crs(epsg_from, epsg_to, always_xy=True)
    return lambda xy: np.column_stack(t.transform(xy[:, 0], xy[:, 1]))


def _project(geoms, epsg_from: int, epsg_to: int, densify: float, *, central_lon: float | None = None):
    """Reproject shapely geometries (vectorised), adding vertices every ``densify`` units first.

    With ``central_lon`` (to lon/lat), longitudes are unwrapped to within 180 degrees of it, so that
    a square across the antimeridian stays one valid polygon (reaching beyond 180) instead of wrapping.
    """
    to = _to(epsg_from, epsg_to)
    if central_lon is not None:
        plain = to

        def to(xy):
            out = plain(xy)
            out[:, 0] = central_lon + (out[:, 0] - central_lon + 180.0) % 360.0 - 180.0
            return out

    return shapely.transform(shapely.segmentize(geoms, densify), to)


def _polar_strip(zone: Zone) -> shapely.Geometry:
    """A polar cap in its UPS projection: a disk about the pole (a ring when the cap has a hole)."""
    lo, hi = zone.strip.bounds[1], zone.strip.bounds[3]
    to = _to(4326, zone.epsg)
    rim = [lo, hi] if zone.code == "PN" else [hi, lo]
    radius = [float(np.hypot(*(to(np.array([[0.0, lat]]))[0] - 2_000_000.0))) for lat in rim]
    centre = shapely.Point(2_000_000.0, 2_000_000.0)
    grow = 1.0 / math.cos(math.pi / (4 * 256))  # the polygon's chords outside the circle: it covers the cap
    return centre.buffer(radius[0] * grow, 256).difference(centre.buffer(radius[1] / grow, 256))


def _polygonal(geom: shapely.Geometry) -> shapely.Geometry:
    """The polygons of a geometry (an intersection may add touching lines or points), one (Multi)Polygon."""
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    polys = [g for g in shapely.get_parts(geom) if g.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(polys) if polys else shapely.Polygon()


def _polar_lonlat(owned: np.ndarray, zone: Zone) -> np.ndarray:
    """UPS polygons in lon/lat: cut into 45-degree sectors (none across the antimeridian, the pole left
    out by a hair), each projected about its own meridian and trimmed to its sector and the cap."""
    w, s, e, n = zone.strip.bounds
    hair = 1e-6
    s, n = (max(s, -90 + hair), n) if zone.code == "PS" else (s, min(n, 90 - hair))
    pieces = []
    for lon0 in range(-180, 180, 45):
        sector = box(lon0, s, lon0 + 45, n)
        wider = box(lon0, s - 1.0, lon0 + 45, n) if zone.code == "PN" else box(lon0, s, lon0 + 45, n + 1.0)
        in_ups = _project(wider, 4326, zone.epsg, 0.05)  # its chords beyond the cap's rim: nothing lost there
        part = shapely.intersection(owned, in_ups)
        part_ll = _project(part, zone.epsg, 4326, _DENSIFY_M, central_lon=lon0 + 22.5)
        pieces.append(shapely.intersection(shapely.make_valid(part_ll), sector))
    return np.array([shapely.union_all([p[i] for p in pieces]) for i in range(len(owned))], dtype=object)


# --- land --------------------------------------------------------------------------------------


def read_land(path: str | os.PathLike[str] | None = None) -> gpd.GeoSeries:
    """Land polygons in EPSG:4326: the shipped mask, or any polygon file (GeoParquet, GeoPackage, ...).

    Raises:
        InputError: the file is missing, unreadable, without a CRS or without polygons.
    """
    path = Path(LAND_MASK if path is None else path)
    if not path.is_file():
        raise InputError(path, "land mask not found")
    try:
        land = gpd.read_parquet(path) if path.suffix == ".parquet" else gpd.read_file(path)
    except Exception as exc:  # pyogrio's and pyarrow's errors vary by format
        raise InputError(path, f"not a readable land mask ({exc})") from exc
    if land.crs is None:
        raise InputError(path, "the land mask has no CRS")
    geoms = land.to_crs(4326).geometry
    geoms = geoms[geoms.notna() & geoms.geom_type.isin(["Polygon", "MultiPolygon"])]
    if geoms.empty:
        raise InputError(path, "no polygon in the land mask")
    return geoms.reset_index(drop=True)


# --- the grid ----------------------------------------------------------------------------------


def _zone_tiles(zone: Zone, land: np.ndarray, land_tree: shapely.STRtree, side: float, margin: float, region) -> dict:
    """The kept tiles of one zone (near ``region`` if given): names, rows, columns, bounds, owned part (lon/lat)."""
    polar = zone.code in ("PN", "PS")
    strip = _polar_strip(zone) if polar else _project(zone.strip, 4326, zone.epsg, _DENSIFY_DEG)
    # land near the zone (a margin and a degree around the strip), clipped, in the zone's metres
    wanted = zone.strip if region is None else zone.strip.intersection(region)
    if wanted.is_empty:
        return {}
    w, s, e, n = wanted.bounds
    pad = margin / 111_000.0 + 1.0
    pad_lon = min(pad / max(math.cos(math.radians(max(abs(s), abs(n)))), 0.05), 180.0)
    clip = (max(w - pad_lon, -180.0), max(s - pad, -90.0), min(e + pad_lon, 180.0), min(n + pad, 90.0))
    near = land_tree.query(shapely.box(*clip), predicate="intersects")
    if len(near) == 0:
        return {}
    local = shapely.clip_by_rect(land[near], *clip)
    local = local[~shapely.is_empty(local)]
    if len(local) == 0:
        return {}
    local = _project(local, 4326, zone.epsg, _DENSIFY_DEG)
    local = shapely.make_valid(shapely.simplify(local, side / 400.0))
    reach = shapely.STRtree(local)
    x0, y0, x1, y1 = (strip if region is None else _project(wanted, 4326, zone.epsg, _DENSIFY_DEG / 10)).bounds
    cols = np.arange(math.floor(x0 / side), math.ceil(x1 / side))
    rows = np.arange(math.floor(y0 / side), math.ceil(y1 / side))
    cc, rr = (a.ravel() for a in np.meshgrid(cols, rows))
    squares = shapely.box(cc * side, rr * side, (cc + 1) * side, (rr + 1) * side)
    in_zone = shapely.intersects(squares, strip)
    squares, rr, cc = squares[in_zone], rr[in_zone], cc[in_zone]
    owned = shapely.intersection(squares, strip)
    ok = ~shapely.is_empty(owned) & (shapely.area(owned) > 0)
    squares, rr, cc, owned = squares[ok], rr[ok], cc[ok], owned[ok]
    hit = reach.query(owned, predicate="dwithin", distance=margin)  # land near the part the tile owns
    keep = np.unique(hit[0])
    if len(keep) == 0:
        return {}
    squares, rr, cc, owned = squares[keep], rr[keep], cc[keep], owned[keep]
    if polar:  # lon/lat breaks at the pole and the antimeridian: projected by sectors
        owned_ll = _polar_lonlat(owned, zone)
    else:  # clip in lon/lat, so that neighbouring zones meet exactly on their meridian
        central = (zone.strip.bounds[0] + zone.strip.bounds[2]) / 2.0
        owned_ll = shapely.intersection(_project(squares, zone.epsg, 4326, _DENSIFY_M, central_lon=central), zone.strip)
    owned_ll = np.array([_polygonal(g) for g in owned_ll], dtype=object)
    ok = ~shapely.is_empty(owned_ll) & (shapely.area(owned_ll) > 0)
    squares, rr, cc, owned, owned_ll = squares[ok], rr[ok], cc[ok], owned[ok], owned_ll[ok]
    width = 4 if zone.code in ("PN", "PS") else 2
    return {
        "tile": [f"{zone.code}_{r:04d}_{c:0{width}d}" for r, c in zip(rr, cc, strict=True)],
        "zone": [zone.code] * len(rr),
        "epsg": np.full(len(rr), zone.epsg),
        "row": rr,
        "col": cc,
        "left": cc * side,
        "bottom": rr * side,
        "right": (cc + 1) * side,
        "top": (rr + 1) * side,
        "owned_fraction": shapely.area(owned) / (side * side),
        "geometry": owned_ll,
    }


def build_grid(
    p: dict[str, Any],
    *,
    area: Any = None,
    land: str | os.PathLike[str] | None = None,
    margin_m: float = COASTAL_MARGIN_M,
    lat_range: Sequence[float] = S2_LATITUDES,
    windows: int = GRID_WINDOWS,
) -> gpd.GeoDataFrame:
    """The land tiles of the world (or of ``area``), one row per tile, geometry = the owned core (EPSG:4326).

    Columns: ``tile``, ``path`` (``tiles/<tile>.tif``), ``zone``, ``epsg``, ``row``, ``col``, the
    core's ``left bottom right top`` in the tile's CRS, ``owned_fraction`` (of the core's square),
    ``core_px``, ``export_px``, the export's ``crs_transform`` and ``buffered_wkt`` (the exported
    square with its edge, lon/lat), ``max_pixels`` and ``file_dimensions``.

    Args:
        p: parameters (``patch_size``, ``edge_px``, ``resolution_m``, ``composite_bands``).
        area: None (all land), a lon/lat box ``[minx, miny, maxx, maxy]``, a shapely geometry in
            lon/lat, or a polygon file (:func:`read_area`); only tiles whose owned part touches it.
        land: land polygon file (default: the shipped Natural Earth 1:50m land).
        margin_m: keep tiles within this distance of land.
        lat_range: latitudes covered (default Sentinel-2's, 56 S to 84 N).
        windows: window cores per tile side.

    Raises:
        ParameterError: an area outside ``lat_range`` (Sentinel-2's extent) or a bad parameter.
        InputError: an unreadable land mask or area file.
    """
    params = export_parameters(p, windows)
    res = float(p["resolution_m"])
    side = params["core_px"] * res
    if not margin_m >= 0:
        raise ParameterError("margin_m", f"expected a distance >= 0 m, got {margin_m!r}")
    region = None if area is None else read_area(area, lat_range)
    land_geoms = read_land(land).to_numpy()
    tree = shapely.STRtree(land_geoms)
    parts = []
    for zone in zones(lat_range):
        if region is not None and not zone.strip.intersects(region):
            continue
        found = _zone_tiles(zone, land_geoms, tree, side, margin_m, region)
        if found:
            parts.append(pd.DataFrame(found))
    columns = ["tile", "zone", "epsg", "row", "col", "left", "bottom", "right", "top", "owned_fraction", "geometry"]
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({c: [] for c in columns})
    grid = gpd.GeoDataFrame(frame, geometry="geometry", crs=4326)
    if region is not None and len(grid):
        grid = grid[grid.intersects(region)].reset_index(drop=True)
    return _with_export_columns(grid, p, params, res)


def _with_export_columns(grid: gpd.GeoDataFrame, p: dict[str, Any], params: dict[str, int], res: float):
    edge = int(p["edge_px"]) * res
    grid = grid.copy()
    grid.insert(1, "path", [f"tiles/{t}.tif" for t in grid["tile"]])
    grid["core_px"] = params["core_px"]
    grid["export_px"] = params["export_px"]
    grid["max_pixels"] = params["max_pixels"]
    grid["file_dimensions"] = params["file_dimensions"]
    grid["crs_transform"] = [
        f"[{res}, 0.0, {left - edge}, 0.0, {-res}, {top + edge}]"
        for left, top in zip(grid["left"], grid["top"], strict=True)
    ]
    buffered = []
    for epsg, group in grid.groupby("epsg", sort=False):
        sq = shapely.box(group["left"] - edge, group["bottom"] - edge, group["right"] + edge, group["top"] + edge)
        buffered.append(pd.Series(shapely.to_wkt(_project(sq, int(epsg), 4326, _DENSIFY_M), 7), index=group.index))
    grid["buffered_wkt"] = pd.concat(buffered).sort_index() if buffered else pd.Series([], dtype=str)
    grid["epsg"] = grid["epsg"].astype(int)
    for c in ("row", "col"):
        grid[c] = grid[c].astype(int)
    return grid.reset_index(drop=True)


def read_area(area: Any, lat_range: Sequence[float] = S2_LATITUDES) -> shapely.Geometry:
    """An area as one lon/lat geometry: a box ``[minx, miny, maxx, maxy]``, a geometry, or a polygon file.

    Raises:
        ParameterError: a box that is not one, or an area outside ``lat_range`` (Sentinel-2's extent).
        InputError: an unreadable file, or one without a CRS or polygons.
    """
    if isinstance(area, shapely.Geometry):
        geom = area
    elif isinstance(area, list | tuple) and len(area) == 4 and all(isinstance(v, int | float) for v in area):
        minx, miny, maxx, maxy = (float(v) for v in area)
        if not (-180 <= minx < maxx <= 180 and -90 <= miny < maxy <= 90):
            raise ParameterError("area", f"expected [minx, miny, maxx, maxy] in lon/lat degrees, got {list(area)}")
        geom = box(minx, miny, maxx, maxy)
    elif isinstance(area, str | os.PathLike) and str(area):
        path = Path(area)
        if not path.is_file():
            raise ParameterError("area", f"no such file {path} (a polygon file or [minx, miny, maxx, maxy])")
        try:
            shapes = gpd.read_parquet(path) if path.suffix == ".parquet" else gpd.read_file(path)
        except Exception as exc:  # pyogrio's errors vary by driver
            raise InputError(path, f"not a readable vector file ({exc})") from exc
        if shapes.crs is None or shapes.empty:
            raise InputError(path, "no CRS or no polygon: the area is unknown")
        geom = shapely.union_all(shapes.to_crs(4326).geometry.dropna().to_numpy())
    else:
        raise ParameterError("area", f"expected [minx, miny, maxx, maxy] in lon/lat or a polygon file, got {area!r}")
    lo, hi = lat_range
    if geom.is_empty or not geom.intersects(box(-180.0, lo, 180.0, hi)):
        raise ParameterError(
            "area",
            f"{area!r} (latitudes {geom.bounds[1]:.2f}..{geom.bounds[3]:.2f}) lies outside Sentinel-2's systematic "
            f"land acquisitions, latitudes {lo:g}..{hi:g}",
        )
    return geom


def summary(grid: gpd.GeoDataFrame, p: dict[str, Any]) -> dict[str, Any]:
    """Tile count, pixels (cores, exports), land area owned, and the export volume (uncompressed int16)."""
    n = len(grid)
    core = int(grid["core_px"].iloc[0]) if n else tile_side_px(p)
    side = int(grid["export_px"].iloc[0]) if n else core + 2 * int(p["edge_px"])
    bands = len(p["composite_bands"]) + 1
    res = float(p["resolution_m"])
    owned = float(grid["owned_fraction"].sum()) if n else 0.0
    return {
        "tiles": n,
        "zones": int(grid["zone"].nunique()) if n else 0,
        "core_px": n * core * core,
        "owned_px": round(owned * core * core),
        "export_px": n * side * side,
        "owned_km2": round(owned * (core * res / 1000.0) ** 2),
        "export_bytes": n * side * side * bands * INT16_BYTES,
        "export_bytes_deflate": round(n * side * side * bands * INT16_BYTES * DEFLATE_RATIO),
        "tile_core_px": core,
        "tile_export_px": side,
    }


def format_summary(s: dict[str, Any]) -> str:
    """The summary as a few lines for people."""
    return (
        f"tiles: {s['tiles']} in {s['zones']} zones, {s['tile_core_px']} px cores exported as "
        f"{s['tile_export_px']} x {s['tile_export_px']} px\n"
        f"pixels: {s['core_px']:.4g} in tile cores ({s['owned_px']:.4g} owned, {s['owned_km2']:.4g} km2), "
        f"{s['export_px']:.4g} exported\n"
        f"export volume: {s['export_bytes'] / 1e12:.3f} TB as uncompressed int16 "
        f"({s['export_bytes'] / max(s['tiles'], 1) / 1e9:.2f} GB per tile), about "
        f"{s['export_bytes_deflate'] / 1e12:.3f} TB as deflate COGs (ratio {DEFLATE_RATIO} of the simulated world)"
    )


def write_grid(grid: gpd.GeoDataFrame, path: str | os.PathLike[str]) -> Path:
    """Write the grid as a GeoPackage (atomically, byte-reproducibly; ``io.write_vector``)."""
    return io.write_vector(grid, path, "MultiPolygon")


def timed_global_grid(p: dict[str, Any], **kwargs: Any) -> tuple[gpd.GeoDataFrame, float]:
    """:func:`build_grid` of all land and its wall time, seconds."""
    started = time.perf_counter()
    grid = build_grid(p, **kwargs)
    return grid, time.perf_counter() - started


def demo_area(sites, tile_px: int = 768, resolution_m: float = 10.0) -> shapely.Geometry:
    """The demo's areas: a square of ``tile_px`` pixels about each site (objects with ``lon``, ``lat``), lon/lat.

    The simulated world's sites (the world's ``SITES``, which the command line passes) stand for real
    places; this is the real land grid's cover of them, the Earth Engine export the demo would be on real data.
    """
    half = tile_px * resolution_m / 2.0
    squares = []
    for s in sites:
        dlat = half / 111_320.0
        dlon = dlat / max(math.cos(math.radians(s.lat)), 0.01)
        squares.append(box(s.lon - dlon, s.lat - dlat, s.lon + dlon, s.lat + dlat))
    return shapely.MultiPolygon(squares)
