"""Comparing lake catalogues: this product, GLAKES, PLD, HydroLAKES or any other (section 3.3, Figs. 7-9).

Every function takes catalogues as GeoDataFrames (any CRS) or as the :class:`~lakepaper.stats.LakeCells`
of :func:`~lakepaper.stats.locate`, so the comparison runs on the real files as well as on the
simulated world's. :func:`read_catalogue` reads any vector file (Shapefile, GeoPackage, GeoParquet,
...) into one layout, ``lake_id``, ``area_km2``, geometry in EPSG:4326, taking the id and area columns
from the arguments or from the known layouts in :data:`PRESETS`.

What is compared
----------------
* Fig. 7: count and total area per size group (:func:`size_group_comparison`).
* Fig. 8: the lakes of each catalogue in a few boxes, over a basemap (:func:`clip`).
* Fig. 9: count and area per latitude and longitude band per size group (:func:`profiles_by_group`) and
  per 1-degree cell differences for one size range (0.01-0.1 km2 in the paper) between two
  catalogues (:func:`cell_difference`; cell by cell as a table, :func:`cell_table`). The paper leaves
  out the Caspian Sea (which holds the Garabogazkol lagoon); :func:`drop_in_box` removes the lakes
  whose point lies in a lon/lat box.
* Lakes of one catalogue that touch no lake of another (:func:`unmatched`; against several references
  at once, :func:`unmatched_table`): the paper's "3.9 million lakes < 0.01 km2 not in PLD" is the
  < 0.01 km2 row of that table for PLD.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from lakepaper import references as registry
from lakepaper.errors import InputError, ParameterError
from lakepaper.stats import (
    LakeCells,
    area_grid,
    count_grid,
    geodesic_area_km2,
    locate,
    profile,
    size_group_table,
    to_lonlat,
)

#: Id and area (km2) columns of the catalogues the paper uses (their published names, from the one
#: registry :mod:`lakepaper.references`: GLAKES, PLD, HydroLAKES), and of this pipeline's own files.
PRESETS: dict[str, dict[str, str]] = {
    "glakesplus": {"id": "id", "area": "area_km2"},  # stage 05 lakes.parquet / lakes.gpkg
    **{
        name: {"id": d.id_col, "area": d.area_col}
        for name, d in registry.DATASETS.items()
        if d.id_col is not None and d.area_col is not None
    },
    "truth": {"id": "lake_id", "area": "area_km2"},  # simulated world truth/lakes.parquet
}

#: Size ranges of Fig. 9's profiles (km2): lakes below 0.1 km2 drawn on one axis, above on the other.
FIG9_GROUPS: dict[str, tuple[float, float]] = {
    "0.005-0.01": (0.005, 0.01),
    "0.01-0.1": (0.01, 0.1),
    "0.1-1": (0.1, 1.0),
    "1-100": (1.0, 100.0),
    ">=100": (100.0, np.inf),
}


def _columns(path: Path, layer: str | None) -> list[str]:
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    import pyogrio

    return list(pyogrio.read_info(path, layer=layer)["fields"])


def _guess(
    columns: Sequence[str],
    id_col: str | None,
    area_col: str | None,
    preset: str | None,
    mapping: Mapping[str, str] | None = None,
):
    if preset is not None:
        if preset not in PRESETS:
            raise ParameterError("preset", f"unknown catalogue {preset!r}; known: {', '.join(PRESETS)}")
        ids, area = PRESETS[preset]["id"], PRESETS[preset]["area"]
        if preset in registry.DATASETS:  # published names, through the dataset's column mapping
            cols = registry.columns_for(preset, mapping)
            ids, area = cols.get(ids, ids), cols.get(area, area)
        elif mapping:
            raise ParameterError("columns", f"{preset!r} is not a registry dataset; give id_col and area_col")
        return id_col or ids, area_col or area
    if id_col is None and area_col is None:
        for p in PRESETS.values():
            if p["id"] in columns and p["area"] in columns:
                return p["id"], p["area"]
    return id_col, area_col


def standardise(
    gdf: gpd.GeoDataFrame, *, id_col: str | None = None, area_col: str | None = None, name: str = "catalogue"
) -> gpd.GeoDataFrame:
    """``lake_id``, ``area_km2`` and geometry in EPSG:4326 from any frame of lake polygons.

    Args:
        id_col: id column (None: 1..n).
        area_col: area column in km2 (None: ellipsoidal area of the geometry, :func:`stats.geodesic_area_km2`).

    Raises:
        InputError: a named column is missing, or the frame has no CRS.
    """
    for what, col in (("id_col", id_col), ("area_col", area_col)):
        if col is not None and col not in gdf.columns:
            raise InputError(name, f"{what} {col!r} not found; columns: {[c for c in gdf.columns if c != 'geometry']}")
    gdf = to_lonlat(gdf)
    geoms = gdf.geometry.to_numpy()
    empty = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    if empty.any():
        warnings.warn(f"{name}: {int(empty.sum())} lakes without geometry left out", stacklevel=2)
    ids = np.arange(1, len(gdf) + 1) if id_col is None else gdf[id_col].to_numpy()
    if area_col is None:
        area = geodesic_area_km2(geoms)
    else:
        area = pd.to_numeric(gdf[area_col], errors="coerce").to_numpy(float)
        if np.isnan(area[~empty]).any():
            raise InputError(name, f"{int(np.isnan(area[~empty]).sum())} lakes have no numeric {area_col!r}")
    out = gpd.GeoDataFrame({"lake_id": ids[~empty], "area_km2": area[~empty]}, geometry=geoms[~empty], crs=4326)
    out.attrs["name"] = name
    return out


def read_catalogue(
    path: str | os.PathLike[str],
    *,
    id_col: str | None = None,
    area_col: str | None = None,
    preset: str | None = None,
    bbox: tuple[float, float, float, float] | None = None,
    layer: str | None = None,
    name: str | None = None,
    columns: Mapping[str, str] | None = None,
) -> gpd.GeoDataFrame:
    """Read a lake catalogue into ``lake_id``, ``area_km2``, geometry (EPSG:4326).

    Args:
        path: any vector file GDAL reads, or a GeoParquet file.
        id_col, area_col: the id and area (km2) columns; when both are None, the first of
            :data:`PRESETS` whose columns the file has; with neither found: ids 1..n and
            ellipsoidal areas from the geometry.
        preset: a key of :data:`PRESETS` (glakes, pld, hydrolakes, glakesplus, truth).
        bbox: only lakes intersecting this box, in the file's CRS (lon/lat for the real catalogues).
        layer: layer of a multi-layer file.
        name: label used in messages (default: the file name).
        columns: with a registry ``preset`` (glakes, pld, hydrolakes), the column mapping ``{published
            name: the file's column}`` (:func:`lakepaper.references.columns_for`; also read from
            ``$LAKEPAPER_REF_<NAME>_COLUMNS``), e.g. ``{"Lake_id": "ID", "Area_bound": "AREA"}``.

    Raises:
        InputError: missing or unreadable file, or a named column not in it (naming the file and the column).
    """
    path = Path(path)
    name = name or path.name
    if not path.exists():
        raise InputError(path, "lake catalogue not found")
    try:
        fields = _columns(path, layer)
    except Exception as exc:  # noqa: BLE001 - any reader failure is an unreadable input
        raise InputError(path, f"not a readable vector file ({exc})") from exc
    id_col, area_col = _guess(fields, id_col, area_col, preset, columns)
    for what, col in (("id_col", id_col), ("area_col", area_col)):
        if col is not None and col not in fields:
            schema = f" ({preset}'s published schema; map it with columns=)" if preset in registry.DATASETS else ""
            raise InputError(path, f"{name}: {what} {col!r} not in the file{schema}; columns: {fields}")
    keep = [c for c in (id_col, area_col) if c is not None]
    try:
        if path.suffix.lower() == ".parquet":
            gdf = gpd.read_parquet(path, columns=[*keep, "geometry"], bbox=bbox)
        else:
            gdf = gpd.read_file(path, columns=keep, bbox=bbox, layer=layer, engine="pyogrio", use_arrow=True)
    except Exception as exc:  # noqa: BLE001
        raise InputError(path, f"could not read the lakes ({exc})") from exc
    return standardise(gdf, id_col=id_col, area_col=area_col, name=name)


def _cells(c: gpd.GeoDataFrame | LakeCells, grid_deg: float) -> LakeCells:
    if isinstance(c, LakeCells):
        return c
    area = "area_km2" if "area_km2" in c.columns else None
    ident = "lake_id" if "lake_id" in c.columns else None
    return locate(c, grid_deg=grid_deg, area_col=area, id_col=ident)


def locate_all(
    catalogues: Mapping[str, gpd.GeoDataFrame | LakeCells], *, grid_deg: float = 1.0
) -> dict[str, LakeCells]:
    """:func:`stats.locate` of every catalogue (frames from :func:`standardise` use their ``area_km2``)."""
    return {name: _cells(c, grid_deg) for name, c in catalogues.items()}


def size_group_comparison(
    catalogues: Mapping[str, gpd.GeoDataFrame | LakeCells | np.ndarray], edges: Sequence[float], *, below: bool = True
) -> pd.DataFrame:
    """Fig. 7: count and total area per size group of every catalogue.

    Args:
        catalogues: name -> standardised frame, LakeCells, or an array of areas (km2).
        edges: size-group edges in km2 (``params.size_groups_km2``).

    Returns:
        Long table: catalogue, size_group, count, area_km2, count_share, area_share.
    """
    parts = []
    for name, c in catalogues.items():
        if isinstance(c, LakeCells):
            a = c.area_km2
        elif isinstance(c, gpd.GeoDataFrame | pd.DataFrame):
            a = c["area_km2"].to_numpy(float)
        else:
            a = np.asarray(c, float)
        t = size_group_table(a, edges, below=below).reset_index()
        t.insert(0, "catalogue", name)
        parts.append(t)
    return pd.concat(parts, ignore_index=True)


def wide(table: pd.DataFrame, value: str = "count") -> pd.DataFrame:
    """A long comparison table as size_group x catalogue of one value (count, area_km2, ...)."""
    out = table.pivot(index="size_group", columns="catalogue", values=value)
    order = list(dict.fromkeys(table["catalogue"]))
    return out[order].reindex(list(dict.fromkeys(table["size_group"])))


def profiles_by_group(
    catalogues: Mapping[str, gpd.GeoDataFrame | LakeCells],
    *,
    groups: Mapping[str, tuple[float, float]] = FIG9_GROUPS,
    axis: str = "lat",
    grid_deg: float = 1.0,
) -> pd.DataFrame:
    """Fig. 9a,b,d,e: count and area per latitude or longitude band, per catalogue and size range.

    Returns:
        Long table: catalogue, group, lo, hi, centre, count, area_km2 (one row per band).
    """
    parts = []
    for name, lc in locate_all(catalogues, grid_deg=grid_deg).items():
        for g, (lo, hi) in groups.items():
            p = profile(lc.in_size_range(lo, hi), axis=axis)
            p.insert(0, "group", g)
            p.insert(0, "catalogue", name)
            parts.append(p)
    return pd.concat(parts, ignore_index=True)


def cell_difference(
    a: gpd.GeoDataFrame | LakeCells,
    b: gpd.GeoDataFrame | LakeCells,
    *,
    lo: float = 0.01,
    hi: float = 0.1,
    grid_deg: float = 1.0,
) -> dict[str, np.ndarray]:
    """Fig. 9c: per cell, count and area of ``a``'s lakes in [lo, hi) minus ``b``'s.

    Returns:
        ``count_a``, ``count_b``, ``count_diff``, ``area_a``, ``area_b``, ``area_diff`` as (nrows, ncols)
        arrays on the grid (rows from 90 S), and ``grid``.
    """
    la, lb = _cells(a, grid_deg).in_size_range(lo, hi), _cells(b, grid_deg).in_size_range(lo, hi)
    if la.grid != lb.grid:
        raise ParameterError("grid_deg", f"catalogues on different grids: {la.grid.deg} and {lb.grid.deg}")
    ca, cb, aa, ab = count_grid(la), count_grid(lb), area_grid(la), area_grid(lb)
    return {
        "grid": la.grid,
        "count_a": ca,
        "count_b": cb,
        "count_diff": ca - cb,
        "area_a": aa,
        "area_b": ab,
        "area_diff": aa - ab,
    }


def cell_table(diff: Mapping[str, np.ndarray], a: str = "a", b: str = "b") -> pd.DataFrame:
    """Fig. 9c as a table: one row per cell where either catalogue has lakes in the size range.

    Args:
        diff: :func:`cell_difference` of ``a`` minus ``b``.
        a, b: the catalogues' names, put in the column names (``count_<a>``, ``area_<b>``, ...).

    Returns:
        lon, lat (the cell's south-west corner), count_a, count_b, count_diff, area_a, area_b,
        area_diff (km2), rows in grid order (from 90 S, west to east).
    """
    g = diff["grid"]
    rows, cols = ((diff["count_a"] > 0) | (diff["count_b"] > 0)).nonzero()
    table = pd.DataFrame(
        {
            "lon": g.lon_edges[cols],
            "lat": g.lat_edges[rows],
            **{k: diff[k][rows, cols] for k in ("count_a", "count_b", "count_diff", "area_a", "area_b", "area_diff")},
        }
    )
    return table.rename(columns=lambda c: c.replace("_a", f"_{a}").replace("_b", f"_{b}"))


def drop_in_box(gdf: gpd.GeoDataFrame, box: tuple[float, float, float, float] | None) -> gpd.GeoDataFrame:
    """The lakes whose point inside them does not lie in the lon/lat ``box`` (minx, miny, maxx, maxy).

    E.g. the Caspian Sea, left out of the paper's Fig. 9: ``(46, 36, 55.5, 47.5)``.
    """
    if box is None:
        return gdf
    g = to_lonlat(gdf)
    p = shapely.point_on_surface(g.geometry.to_numpy())
    x, y = shapely.get_x(p), shapely.get_y(p)
    inside = (x >= box[0]) & (x <= box[2]) & (y >= box[1]) & (y <= box[3])
    return gdf[~inside]


def clip(gdf: gpd.GeoDataFrame, box: tuple[float, float, float, float]) -> gpd.GeoDataFrame:
    """The lakes that intersect a lon/lat box (whole polygons, not cut), for regional maps (Fig. 8)."""
    g = to_lonlat(gdf)
    idx = g.sindex.query(shapely.box(*box), predicate="intersects")
    return g.iloc[np.sort(idx)]


def unmatched(a: gpd.GeoDataFrame, b: gpd.GeoDataFrame, edges: Sequence[float], *, below: bool = True) -> pd.DataFrame:
    """Per size group of ``a``: its lakes and those that intersect no lake of ``b`` (count and area).

    Both frames standardised (``area_km2``); lakes are matched by polygon intersection.
    """
    ga, gb = to_lonlat(a), to_lonlat(b)
    hit = np.zeros(len(ga), dtype=bool)
    if len(ga) and len(gb):
        ia, _ = gb.sindex.query(ga.geometry.to_numpy(), predicate="intersects")
        hit[np.unique(ia)] = True
    area = ga["area_km2"].to_numpy(float)
    all_ = size_group_table(area, edges, below=below)[["count", "area_km2"]]
    miss = size_group_table(area[~hit], edges, below=below)[["count", "area_km2"]]
    out = all_.join(miss.add_suffix("_unmatched"))
    out["count_unmatched_share"] = 100 * out["count_unmatched"] / out["count"].where(out["count"] > 0)
    return out


def unmatched_table(
    a: gpd.GeoDataFrame, references: Mapping[str, gpd.GeoDataFrame], edges: Sequence[float], *, below: bool = True
) -> pd.DataFrame:
    """:func:`unmatched` of ``a`` against each reference, one long table (``reference`` first, then ``size_group``)."""
    parts = []
    for name, ref in references.items():
        u = unmatched(a, ref, edges, below=below).reset_index()
        u.insert(0, "reference", name)
        parts.append(u)
    return pd.concat(parts, ignore_index=True)


def summary(catalogues: Mapping[str, gpd.GeoDataFrame], files: Mapping[str, str] | None = None) -> pd.DataFrame:
    """One row per catalogue: its file (if given), lake count, total and smallest area (km2)."""
    rows = {
        name: {
            **({"file": files.get(name, "")} if files is not None else {}),
            "lakes": len(c),
            "total km2": c.area_km2.sum(),
            "smallest km2": c.area_km2.min() if len(c) else None,
        }
        for name, c in catalogues.items()
    }
    return pd.DataFrame(rows).T
