"""Global lake abundance and distribution from any lake catalogue (paper section 3.2, Fig. 6).

Input is any GeoDataFrame of lake polygons, in any CRS, with or without an area column: this
product's ``lakes.parquet``, GLAKES, PLD, HydroLAKES, or the truth of the simulated world.

Conventions
-----------
Areas
    When a catalogue has no area column, areas are computed on the WGS84 ellipsoid
    (:func:`geodesic_area_km2`): polygons are mapped to *authalic* coordinates (longitude in radians,
    ``q(latitude)``, the equal-area cylindrical projection of the ellipsoid, as EPSG:6933 up to a
    constant) where planar area times a^2/2 is area on the ellipsoid. Edges are straight in that
    projection rather than geodesics; for lake outlines (vertices metres to a few km apart) the two
    agree to better than 1e-6 (tested against ``pyproj.Geod``). When the catalogue has an area column
    (``area_col``), its values are used as they are (GLAKES' ``Area_bound`` and PLD's ``ref_area``
    were measured in UTM by their authors).
Cells
    A regular grid of ``grid_deg`` x ``grid_deg`` cells (1 degree in the paper), rows from 90 S
    northwards, columns from 180 W eastwards. A cell's area is the exact area of the lat/lon
    rectangle on the ellipsoid (:meth:`Grid.cell_area_km2`): 1-degree cells shrink from ~12,360 km2
    at the equator to ~108 km2 next to the poles, so area *density* divides by it.
Counting and area
    As the authors did, a lake is **counted** in the cell that holds a point inside it
    (``shapely.point_on_surface``, always inside the polygon, unlike the centroid), while its
    **area is split** across the cells it overlaps in proportion to the (ellipsoidal) area of each
    piece. Most lakes lie inside one cell: their bounding box says so and they need no geometry work;
    only lakes whose bounding box crosses a cell edge are intersected with the cells it overlaps
    (vectorised, in authalic coordinates where cell edges are straight lines). Piece areas are
    scaled so that a lake's pieces add up to its area (its own column's value when there is one).
Profiles
    Latitude (longitude) profiles are the sums of the grid's rows (columns): count by point, area split.
High latitudes
    A lake counts as north of ``high_latitude_deg`` (57 N) when its point does, for both count and
    area share.
Antimeridian
    Lakes are taken as stored: a catalogue that splits lakes at 180 degrees (as the real ones do)
    gives one piece on each side; longitudes are clamped to [-180, 180].
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from lakepaper.errors import InputError, ParameterError
from lakepaper.metrics import size_group, size_group_labels

#: WGS84 ellipsoid.
A_M = 6378137.0
F = 1 / 298.257223563
E2 = F * (2 - F)
E = np.sqrt(E2)
#: planar area in authalic coordinates (radians, q) times this = area on the ellipsoid in km2
_AUTHALIC_KM2 = A_M * A_M / 2 / 1e6
#: lakes measured at once by :func:`geodesic_area_km2`
_CHUNK = 100_000


def authalic_q(lat_deg) -> np.ndarray:
    """q(latitude) of the ellipsoid: area between the equator and a parallel is a^2/2 * dlon * q."""
    s = np.sin(np.radians(np.asarray(lat_deg, dtype=float)))
    es = E * s
    return (1 - E2) * (s / (1 - es * es) + np.arctanh(es) / E)


def _authalic(coords: np.ndarray) -> np.ndarray:
    return np.column_stack([np.radians(coords[:, 0]), authalic_q(coords[:, 1])])


def geodesic_area_km2(geoms) -> np.ndarray:
    """Area on the WGS84 ellipsoid (km2) of lon/lat geometries (0 for points, lines, empty or None).

    Simple polygons (no holes, one part; nearly every lake) are measured straight from their
    coordinates in one vectorised pass; the rest through ``shapely.transform``.

    Example:
        >>> round(float(geodesic_area_km2([shapely.box(0, 0, 1, 1)])[0]), 1)  # 1 degree at the equator
        12308.5
    """
    geoms = np.asarray(geoms, dtype=object)
    out = np.zeros(len(geoms))
    if not len(geoms):
        return out
    simple = (shapely.get_type_id(geoms) == 3) & (shapely.get_num_interior_rings(geoms) == 0)
    idx_simple = np.flatnonzero(simple)
    for start in range(0, len(idx_simple), _CHUNK):  # in chunks: memory stays bounded for 10^7 lakes
        idx = idx_simple[start : start + _CHUNK]
        coords, which = shapely.get_coordinates(geoms[idx], return_index=True)
        x, y = np.radians(coords[:, 0]), authalic_q(coords[:, 1])
        # relative to each ring's first vertex: small rings far from (0, 0) keep their precision
        first = np.searchsorted(which, which)
        x, y = x - x[first], y - y[first]
        cross = x[:-1] * y[1:] - x[1:] * y[:-1]
        same = which[:-1] == which[1:]
        ring = np.bincount(which[:-1][same], weights=cross[same], minlength=len(idx))
        out[idx] = np.abs(ring) / 2 * _AUTHALIC_KM2
    rest = np.flatnonzero(~simple & ~shapely.is_missing(geoms))
    if len(rest):
        out[rest] = shapely.area(shapely.transform(geoms[rest], _authalic)) * _AUTHALIC_KM2
    return out


@dataclass(frozen=True)
class Grid:
    """A global lon/lat grid of ``deg`` x ``deg`` cells; cell index = row * ncols + col."""

    deg: float = 1.0

    def __post_init__(self) -> None:
        if not (self.deg > 0) or abs(180 / self.deg - round(180 / self.deg)) > 1e-9:
            raise ParameterError("grid_deg", f"must divide 180 degrees, got {self.deg}")

    @property
    def nrows(self) -> int:
        return round(180 / self.deg)

    @property
    def ncols(self) -> int:
        return round(360 / self.deg)

    @property
    def lat_edges(self) -> np.ndarray:
        """nrows + 1 edges, south to north."""
        return np.linspace(-90, 90, self.nrows + 1)

    @property
    def lon_edges(self) -> np.ndarray:
        """ncols + 1 edges, west to east."""
        return np.linspace(-180, 180, self.ncols + 1)

    @property
    def lat_centres(self) -> np.ndarray:
        e = self.lat_edges
        return (e[:-1] + e[1:]) / 2

    @property
    def lon_centres(self) -> np.ndarray:
        e = self.lon_edges
        return (e[:-1] + e[1:]) / 2

    def row(self, lat) -> np.ndarray:
        return np.clip(np.floor((np.asarray(lat, float) + 90) / self.deg), 0, self.nrows - 1).astype(np.int64)

    def col(self, lon) -> np.ndarray:
        return np.clip(np.floor((np.asarray(lon, float) + 180) / self.deg), 0, self.ncols - 1).astype(np.int64)

    def cell_area_km2(self) -> np.ndarray:
        """(nrows, ncols) exact ellipsoidal area of each cell; rows sum to the area of the ellipsoid."""
        q = authalic_q(self.lat_edges)
        band = np.diff(q) * np.radians(self.deg) * _AUTHALIC_KM2
        return np.repeat(band[:, None], self.ncols, axis=1)


@dataclass
class LakeCells:
    """Where the lakes of one catalogue lie on a grid (the result of :func:`locate`).

    Per lake (aligned with ``lakes``, the catalogue after dropping empty geometries): ``area_km2``,
    the point inside it (``lon``, ``lat``) and its ``cell``. Per piece of lake in a cell:
    ``piece_lake`` (position of the lake), ``piece_cell`` and ``piece_km2``; a lake inside one cell is
    one piece.
    """

    grid: Grid
    area_km2: np.ndarray
    lon: np.ndarray
    lat: np.ndarray
    cell: np.ndarray
    piece_lake: np.ndarray
    piece_cell: np.ndarray
    piece_km2: np.ndarray
    ids: np.ndarray | None = None
    n_crossing: int = 0
    dropped: int = 0

    def __len__(self) -> int:
        return len(self.area_km2)

    def select(self, keep) -> LakeCells:
        """The lakes where ``keep`` (boolean, one per lake) holds, with their pieces."""
        keep = np.asarray(keep, dtype=bool)
        if keep.shape != self.area_km2.shape:
            raise ParameterError("keep", f"expected {len(self)} booleans, got shape {keep.shape}")
        new = np.cumsum(keep) - 1
        pk = keep[self.piece_lake]
        piece_lake = new[self.piece_lake[pk]]
        return LakeCells(
            self.grid,
            self.area_km2[keep],
            self.lon[keep],
            self.lat[keep],
            self.cell[keep],
            piece_lake,
            self.piece_cell[pk],
            self.piece_km2[pk],
            None if self.ids is None else self.ids[keep],
            int((np.bincount(piece_lake, minlength=int(keep.sum())) > 1).sum()),
            self.dropped,
        )

    def in_size_range(self, lo: float = 0.0, hi: float = np.inf) -> LakeCells:
        """Lakes with lo <= area < hi (km2)."""
        return self.select((self.area_km2 >= lo) & (self.area_km2 < hi))


def to_lonlat(lakes: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The catalogue in EPSG:4326 (unchanged when it already is)."""
    if lakes.crs is None:
        raise InputError("lakes", "the lake catalogue has no CRS; set one (e.g. gdf.set_crs(4326))")
    if lakes.crs.equals("EPSG:4326") or lakes.crs.to_epsg() == 4326:
        return lakes
    return lakes.to_crs(4326)


def locate(
    lakes: gpd.GeoDataFrame,
    *,
    grid_deg: float = 1.0,
    area_col: str | None = None,
    id_col: str | None = None,
) -> LakeCells:
    """Assign every lake of a catalogue to the grid: its count cell and its area pieces.

    Args:
        lakes: lake polygons, any CRS (reprojected to EPSG:4326 when needed).
        grid_deg: cell size in degrees (``params.grid_deg``).
        area_col: column of lake areas in km2; None: ellipsoidal area from the geometry.
        id_col: optional id column, kept in ``LakeCells.ids``.

    Raises:
        InputError: no CRS, or ``area_col`` / ``id_col`` not in the catalogue.
    """
    grid = Grid(float(grid_deg))
    for name, col in (("area_col", area_col), ("id_col", id_col)):
        if col is not None and col not in lakes.columns:
            raise InputError(name, f"column {col!r} not in the catalogue; it has {list(lakes.columns)}")
    lakes = to_lonlat(lakes)
    geoms = lakes.geometry.to_numpy()
    bad = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    dropped = int(bad.sum())
    if dropped:
        warnings.warn(f"{dropped} lakes without geometry left out", stacklevel=2)
        geoms = geoms[~bad]
    if area_col is not None:
        area = pd.to_numeric(lakes[area_col], errors="coerce").to_numpy(float)[~bad]
        if np.isnan(area).any():
            raise InputError(area_col, f"{int(np.isnan(area).sum())} lakes have no numeric area")
    else:
        area = geodesic_area_km2(geoms)
    ids = None if id_col is None else lakes[id_col].to_numpy()[~bad]

    pts = shapely.point_on_surface(geoms)
    lon, lat = shapely.get_x(pts), shapely.get_y(pts)
    cell = grid.row(lat) * grid.ncols + grid.col(lon)
    b = shapely.bounds(geoms)
    c0, c1, r0, r1 = grid.col(b[:, 0]), grid.col(b[:, 2]), grid.row(b[:, 1]), grid.row(b[:, 3])
    crossing = (c0 != c1) | (r0 != r1)
    inside = np.flatnonzero(~crossing)
    k = np.flatnonzero(crossing)

    if len(k):
        nc, nr = c1[k] - c0[k] + 1, r1[k] - r0[k] + 1
        m = nc * nr
        rep = np.repeat(np.arange(len(k)), m)
        local = np.arange(m.sum()) - np.repeat(np.cumsum(m) - m, m)
        col = c0[k][rep] + local % nc[rep]
        row = r0[k][rep] + local // nc[rep]
        lam = np.radians(grid.lon_edges)
        q = authalic_q(grid.lat_edges)
        boxes = shapely.box(lam[col], q[row], lam[col + 1], q[row + 1])
        gq = shapely.transform(geoms[k], _authalic)
        invalid = ~shapely.is_valid(gq)
        if invalid.any():
            gq[invalid] = shapely.make_valid(gq[invalid])
        piece = shapely.area(shapely.intersection(gq[rep], boxes)) * _AUTHALIC_KM2
        total = np.bincount(rep, weights=piece, minlength=len(k))
        # pieces add up to the lake's area (its own column's value when given)
        scale = np.divide(area[k], total, out=np.zeros(len(k)), where=total > 0)
        piece = piece * scale[rep]
        nonzero = piece > 0
        p_lake = np.concatenate([inside, k[rep[nonzero]], k[total <= 0]])
        p_cell = np.concatenate([cell[inside], (row * grid.ncols + col)[nonzero], cell[k[total <= 0]]])
        p_km2 = np.concatenate([area[inside], piece[nonzero], area[k[total <= 0]]])
    else:
        p_lake, p_cell, p_km2 = inside, cell[inside], area[inside]
    return LakeCells(grid, area, lon, lat, cell, p_lake, p_cell, p_km2, ids, int(len(k)), dropped)


# --- grids and profiles ---------------------------------------------------------------------------


def count_grid(lc: LakeCells) -> np.ndarray:
    """(nrows, ncols) lakes per cell, by the point inside each lake."""
    g = lc.grid
    return np.bincount(lc.cell, minlength=g.nrows * g.ncols).reshape(g.nrows, g.ncols)


def area_grid(lc: LakeCells) -> np.ndarray:
    """(nrows, ncols) lake area per cell in km2, each lake's area split across the cells it overlaps."""
    g = lc.grid
    return np.bincount(lc.piece_cell, weights=lc.piece_km2, minlength=g.nrows * g.ncols).reshape(g.nrows, g.ncols)


def density_grid(lc: LakeCells) -> np.ndarray:
    """(nrows, ncols) lake area density: lake area / cell area (0..1)."""
    return area_grid(lc) / lc.grid.cell_area_km2()


def profile(lc: LakeCells, axis: str = "lat") -> pd.DataFrame:
    """Count and area per latitude (``axis="lat"``) or longitude band of one cell.

    Returns:
        One row per band: ``lo``, ``hi``, ``centre`` (degrees), ``count``, ``area_km2``.
    """
    if axis not in ("lat", "lon"):
        raise ParameterError("axis", f"expected 'lat' or 'lon', got {axis!r}")
    a = 1 if axis == "lat" else 0
    edges = lc.grid.lat_edges if axis == "lat" else lc.grid.lon_edges
    return pd.DataFrame(
        {
            "lo": edges[:-1],
            "hi": edges[1:],
            "centre": (edges[:-1] + edges[1:]) / 2,
            "count": count_grid(lc).sum(axis=a),
            "area_km2": area_grid(lc).sum(axis=a),
        }
    )


def grid_frame(lc: LakeCells) -> pd.DataFrame:
    """The non-empty cells as a table: row, col, lon/lat of the south-west corner, count, area, density."""
    g = lc.grid
    cnt, area = count_grid(lc).ravel(), area_grid(lc).ravel()
    idx = np.flatnonzero((cnt > 0) | (area > 0))
    row, col = idx // g.ncols, idx % g.ncols
    return pd.DataFrame(
        {
            "row": row,
            "col": col,
            "lon": g.lon_edges[col],
            "lat": g.lat_edges[row],
            "count": cnt[idx],
            "area_km2": area[idx],
            "cell_km2": g.cell_area_km2().ravel()[idx],
            "density": area[idx] / g.cell_area_km2().ravel()[idx],
        }
    )


# --- headline numbers and size groups -----------------------------------------------------------


def headline(
    lc: LakeCells,
    *,
    high_latitude_deg: float = 57.0,
    small_km2: float = 1.0,
    large_km2: float = 100.0,
    tiny_km2: float = 0.01,
    huge_km2: float = 10000.0,
    west_lon: Sequence[float] = (-20.0, 160.0),
) -> dict[str, float]:
    """The numbers of sections 3.2 and 3.3, named as in ``params.PUBLISHED`` (shares in %), by the paper's
    definitions.

    n_lakes, total_area_km2, share_count_below_1km2, share_area_above_100km2, share_count_below_0_01km2,
    share_count_north_57, share_area_north_57 (section 3.2); share_count_west, share_area_west: the
    western hemisphere as the paper draws it, "-20 W - 160 E", i.e. west of ``west_lon[0]`` or east of
    ``west_lon[1]`` (a lake counted by its point inside, its area by its pieces per grid cell, as in the
    longitude profile, each piece by its cell's centre); n_lakes_above_10000km2 (section 3.3: "all three
    datasets have 16 lakes larger than 10,000 km2"); n_lakes_below_0_01km2 and area_below_0_01km2
    (section 3.3: "3.9 million lakes below 0.01 km2 that PLD does not cover, 27,643 km2": PLD's minimum
    is 0.01 km2, so these are all the lakes below 0.01 km2, 32.6 % of 12 million). Names keep the
    paper's thresholds; the values use the arguments.
    """
    a = lc.area_km2
    n, total = len(a), float(a.sum())

    def pct(x: float, of: float) -> float:
        return 100.0 * x / of if of > 0 else np.nan

    def west(lon) -> np.ndarray:
        lon = np.asarray(lon, float)
        return (lon < west_lon[0]) | (lon >= west_lon[1])

    north = lc.lat >= high_latitude_deg
    tiny = a < tiny_km2
    piece_lon = lc.grid.lon_centres[lc.piece_cell % lc.grid.ncols] if len(lc.piece_cell) else np.zeros(0)
    return {
        "n_lakes": n,
        "total_area_km2": total,
        "share_count_below_1km2": pct(float((a < small_km2).sum()), n),
        "share_area_above_100km2": pct(float(a[a > large_km2].sum()), total),
        "share_count_below_0_01km2": pct(float(tiny.sum()), n),
        "share_count_north_57": pct(float(north.sum()), n),
        "share_area_north_57": pct(float(a[north].sum()), total),
        "share_count_west": pct(float(west(lc.lon).sum()), n),
        "share_area_west": pct(float(lc.piece_km2[west(piece_lon)].sum()), float(lc.piece_km2.sum())),
        "n_lakes_above_10000km2": float((a > huge_km2).sum()),
        "n_lakes_below_0_01km2": float(tiny.sum()),
        "area_below_0_01km2": float(a[tiny].sum()),
    }


def beside(run: dict[str, float], *others: tuple[str, dict[str, float]], published: bool = True) -> pd.DataFrame:
    """A table of numbers side by side: this run, any others (e.g. ("truth", {...})) and the paper's."""
    from lakepaper.params import PUBLISHED

    cols = {"run": run, **dict(others)}
    out = pd.DataFrame(cols)
    if published:
        out["published"] = [PUBLISHED[k][0] if k in PUBLISHED else np.nan for k in out.index]
        out["source"] = [PUBLISHED[k][1] if k in PUBLISHED else "" for k in out.index]
    return out


def size_group_table(area_km2, edges: Sequence[float], *, below: bool = True) -> pd.DataFrame:
    """Count and total area per size group, with their shares (%) (groups [lo, hi), see :mod:`metrics`)."""
    a = np.asarray(area_km2, float)
    grp = size_group(a, edges, below=below)
    df = pd.DataFrame({"group": grp, "a": a}).groupby("group", observed=False)["a"].agg(["size", "sum"])
    df.columns = ["count", "area_km2"]
    df["count_share"] = 100 * df["count"] / max(len(a), 1)
    df["area_share"] = 100 * df["area_km2"] / (a.sum() if a.sum() > 0 else 1)
    df.index.name = "size_group"
    return df


def size_group_bounds(edges: Sequence[float], *, below: bool = True) -> pd.DataFrame:
    """lo, hi (km2) of each size group name."""
    e = list(edges)
    lo = ([0.0] if below else []) + e
    hi = ([e[0]] if below else []) + e[1:] + [np.inf]
    return pd.DataFrame({"lo": lo, "hi": hi}, index=pd.Index(size_group_labels(e, below=below), name="size_group"))


# --- synthetic catalogues (benchmarks, tests) ----------------------------------------------------


def synthetic_lakes(
    n: int,
    *,
    seed: int = 0,
    vertices: int = 24,
    a_min: float = 0.005,
    a_max: float = 3e4,
    exponent: float = 0.9,
    lat_range: tuple[float, float] = (-55.0, 80.0),
) -> gpd.GeoDataFrame:
    """``n`` lake-like polygons in EPSG:4326 with power-law areas (N(>A) ~ A^-exponent), for benchmarks.

    Each lake is a jittered ``vertices``-gon with its ``area_km2`` (of the drawn polygon, ellipsoidal)
    and an ``id``. Latitudes are drawn with more lakes at high latitudes, longitudes uniformly.
    """
    rng = np.random.default_rng(seed)
    u = rng.random(n)
    # truncated Pareto
    c = 1 - (a_min / a_max) ** exponent
    area = a_min * (1 - u * c) ** (-1 / exponent)
    lo, hi = lat_range
    lat = np.where(rng.random(n) < 0.45, rng.uniform(max(lo, 45), hi, n), rng.uniform(lo, hi, n))
    lon = rng.uniform(-179, 179, n)
    ang = np.linspace(0, 2 * np.pi, vertices, endpoint=False)
    jitter = 1 + 0.25 * (rng.random((n, vertices)) - 0.5)
    r_km = np.sqrt(area / np.pi)[:, None] * jitter
    dlat = r_km / 111.2 * np.sin(ang)
    dlon = r_km / (111.32 * np.cos(np.radians(lat)))[:, None] * np.cos(ang)
    x = lon[:, None] + dlon
    y = np.clip(lat[:, None] + dlat, -89.9, 89.9)
    ring = np.stack([np.concatenate([x, x[:, :1]], 1), np.concatenate([y, y[:, :1]], 1)], axis=-1)
    geoms = shapely.polygons(ring)
    return gpd.GeoDataFrame({"id": np.arange(1, n + 1), "area_km2": geodesic_area_km2(geoms)}, geometry=geoms, crs=4326)
