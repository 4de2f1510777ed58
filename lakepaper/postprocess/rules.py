"""The post-processing rules of paper section 2.4, one function each, on polygons in a metric CRS.

Every rule takes the lakes of one partition (a GeoDataFrame in the tile's CRS, metres) and the
reference geometries already read into that CRS, and returns a :class:`RuleResult`: the lakes it
keeps, the whole polygons it deleted (with the reason) and counts. Rules are vectorised over the
polygons with STR-trees (``shapely.STRtree.query``), so a partition of n polygons costs O(n log n)
plus the geometry work of the polygons that actually touch a reference.

1. :func:`ocean_rule` - predicted area outside the OSM land polygons is cut away, then every
   polygon within ``coast_distance_m`` (10 m) of an OSM ocean polygon is deleted. This also removes
   lagoons joined to the sea, whose inlet the ocean polygons include.
2. :func:`river_rule` - the river mask is OSM river areas plus GRWL centre lines buffered by half
   their width. Polygons that intersect a reservoir (OSM reservoirs, GeoDAR reservoir polygons) are
   flagged reservoirs. The paper keeps them whole (``reservoir_rule = "paper"``); the default
   ``"extended"`` rule also counts GLAKES ``Lake_type`` 2 and GeoDAR dams, spares only the reservoir's
   own area and cuts a river joined to it (case r; see :func:`river_rule`). For every other
   polygon the mask cuts, Area Ratio = area after / area before and
   (Fig. 3) a: intersects GLAKES, ratio >= 0.8 -> kept whole (a lake joined to a river); b: does not,
   ratio >= 0.8 -> masked result; c: intersects, ratio < 0.8 -> masked result; d: does not, ratio
   < 0.8 -> deleted (a river residue). A masked result that falls apart is one lake per piece.
3. :func:`min_area_rule` - polygons smaller than ``min_lake_area_km2`` (0.005 km2) are deleted;
   areas on the WGS84 ellipsoid (:func:`areas_km2`), never in degrees.
4. :func:`flood_mask` and :func:`completion_candidates` - GLAKES pixels inside the SHIFT
   floodplain whose water occurrence is below 30 % are removed outside arid zones (aridity index
   < 0.2); the masked GLAKES natural lakes > 1 km2 and all its reservoirs, and every PLD lake in an
   arid zone, are merged into the prediction (by the stage: union with the lakes they overlap).
5. The two manual reviews of the paper, each a vector file of edits that every run re-applies
   (:func:`read_edits`): :func:`apply_river_review` right after the river mask ("extensive manual
   checks and modifications ... to finish the river mask"): ``remove`` (delete every lake the feature
   touches), ``erase`` (cut the feature's area out of the lakes) and ``restore`` (put back whole a
   polygon the river mask cut or deleted); and :func:`apply_edits` at the end, after completion
   ("extensive manual checks and modifications gave the final GLAKESplus"): ``remove``, ``erase`` and
   ``add`` (a lake, merged like a completion).

Where the paper is silent
    Completion candidates also pass the ocean test (a GLAKES or PLD coastal lagoon is not put back);
    completion pieces smaller than the minimum lake area are dropped, so that every lake of the
    product is at least ``min_lake_area_km2``. Where the aridity index has no data a place is not
    arid; where occurrence has no data no GLAKES pixel is removed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from lakepaper.errors import InputError, ParameterError
from lakepaper.postprocess.crs import reproject
from lakepaper.stats import geodesic_area_km2

#: The river-mask cases of Fig. 3.
CASES = ("a", "b", "c", "d")
#: Manual edit actions of the final review (:func:`apply_edits`).
ACTIONS = ("remove", "erase", "add")
#: Manual edit actions of the review after the river mask (:func:`apply_river_review`).
RIVER_ACTIONS = ("remove", "erase", "restore")


@dataclass
class RuleResult:
    """What a rule kept, what it deleted (whole polygons, before the rule, with ``reason``) and counts."""

    frame: gpd.GeoDataFrame
    removed: gpd.GeoDataFrame
    counts: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)


def areas_km2(geoms, crs) -> np.ndarray:
    """Areas on the WGS84 ellipsoid (km2) of polygons in any CRS."""
    geoms = np.asarray(geoms, dtype=object)
    if not len(geoms):
        return np.zeros(0)
    return geodesic_area_km2(reproject(geoms, crs, 4326))


#: Reference polygons larger than this (m) are cut into cells this size before they meet the lakes (a GRWL
#: river buffer or a coastline can run for hundreds of km; a lake should only meet the few km of it near it).
CHUNK_M = 2000.0


def chunk(geoms, size: float = CHUNK_M) -> np.ndarray:
    """Polygons cut into ``size`` x ``size`` cells where their bounding box is larger (their union is unchanged)."""
    geoms = np.asarray(geoms, dtype=object)
    if not len(geoms):
        return geoms
    b = shapely.bounds(geoms)
    big = (b[:, 2] - b[:, 0] > size) | (b[:, 3] - b[:, 1] > size)
    out = [geoms[~big]]
    for g, (x0, y0, x1, y1) in zip(geoms[big], b[big], strict=True):
        xs = np.arange(x0, x1, size)
        ys = np.arange(y0, y1, size)
        cells = [shapely.clip_by_rect(g, x, y, x + size, y + size) for x in xs for y in ys]
        cells = np.asarray(cells, dtype=object)
        out.append(cells[~shapely.is_empty(cells)])
    return np.concatenate(out)


def _geoms(frame: gpd.GeoDataFrame) -> np.ndarray:
    return np.asarray(frame.geometry.values, dtype=object)


def _removed(frame: gpd.GeoDataFrame, sel: np.ndarray, reason: str) -> gpd.GeoDataFrame:
    out = frame[sel].copy()
    out["reason"] = reason
    return out


def _empty_like(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    out = frame.iloc[:0].copy()
    out["reason"] = pd.Series(dtype=object)
    return out


def _explode_polygons(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """One row per polygon of each (multi)geometry; non-polygonal and empty parts dropped."""
    if not len(frame):
        return frame
    parts, idx = shapely.get_parts(_geoms(frame), return_index=True)
    ok = (shapely.get_type_id(parts) == 3) & (shapely.area(parts) > 0)
    out = frame.iloc[idx[ok]].copy()
    out = out.set_geometry(gpd.GeoSeries(parts[ok], index=out.index, crs=frame.crs))
    return out.reset_index(drop=True)


def _concat(frames: list[gpd.GeoDataFrame], like: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    frames = [f for f in frames if len(f)]
    if not frames:
        return like.iloc[:0].copy()
    return gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry", crs=like.crs)


# --- 1. ocean ------------------------------------------------------------------------------------------


def ocean_rule(
    lakes: gpd.GeoDataFrame,
    land: np.ndarray | None,
    ocean: np.ndarray | None,
    *,
    coast_distance_m: float,
) -> RuleResult:
    """Cut away what lies outside the land polygons; delete polygons within ``coast_distance_m`` of the ocean.

    Args:
        lakes: polygons in a metric CRS.
        land: OSM land polygons in the same CRS (None: step skipped). An empty array means no land here.
        ocean: OSM ocean polygons in the same CRS (None: step skipped).
    """
    counts = {"polygons_in": len(lakes), "cut_at_coast": 0, "outside_land": 0, "near_ocean": 0}
    removed = [_empty_like(lakes)]
    frame = lakes.reset_index(drop=True)
    if land is not None and len(frame):
        g = _geoms(frame)
        x0, y0, x1, y1 = frame.total_bounds
        pad = 1.0
        land_here = shapely.union_all(
            shapely.clip_by_rect(np.asarray(land, dtype=object), x0 - pad, y0 - pad, x1 + pad, y1 + pad)
        )
        shapely.prepare(land_here)
        inside = shapely.contains_properly(land_here, g)
        touches = ~inside & shapely.intersects(land_here, g)
        outside = ~inside & ~touches
        counts["outside_land"] = int(outside.sum())
        counts["cut_at_coast"] = int(touches.sum())
        removed.append(_removed(frame, outside, "outside land"))
        cut = frame[touches].copy()
        cut = cut.set_geometry(
            gpd.GeoSeries(shapely.intersection(g[touches], land_here), index=cut.index, crs=frame.crs)
        )
        frame = _concat([frame[inside], _explode_polygons(cut)], frame)
    if ocean is not None and len(ocean) and len(frame):
        tree = shapely.STRtree(chunk(ocean))
        near = np.zeros(len(frame), bool)
        near[tree.query(_geoms(frame), predicate="dwithin", distance=coast_distance_m)[0]] = True
        counts["near_ocean"] = int(near.sum())
        removed.append(_removed(frame, near, "within coast distance of the ocean"))
        frame = frame[~near].reset_index(drop=True)
    counts["polygons_out"] = len(frame)
    return RuleResult(frame, _concat(removed, _empty_like(lakes)), counts)


# --- 2. rivers -----------------------------------------------------------------------------------------


def river_case(intersects_glakes, ratio, threshold: float) -> np.ndarray:
    """The Fig. 3 case of cut polygons: a (GLAKES, ratio >= t), b (no, >= t), c (GLAKES, < t), d (no, < t)."""
    g = np.asarray(intersects_glakes, bool)
    high = np.asarray(ratio, float) >= threshold
    return np.where(high, np.where(g, "a", "b"), np.where(g, "c", "d"))


def _hits(tree_geoms: np.ndarray, geoms: np.ndarray, **query) -> np.ndarray:
    flag = np.zeros(len(geoms), bool)
    if len(geoms) and len(tree_geoms):
        flag[shapely.STRtree(np.asarray(tree_geoms, dtype=object)).query(geoms, **query)[0]] = True
    return flag


def _grouped_union(li: np.ndarray, ri: np.ndarray, geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For query pairs (li, ri): the distinct li and, for each, the union of geoms[ri] it pairs with."""
    order = np.argsort(li, kind="stable")
    li, ri = li[order], ri[order]
    keys = np.unique(li)
    starts, ends = np.searchsorted(li, keys), np.searchsorted(li, keys, side="right")
    unions = [
        geoms[ri[a]] if b - a == 1 else shapely.union_all(geoms[ri[a:b]]) for a, b in zip(starts, ends, strict=True)
    ]
    return keys, np.asarray(unions + [None], dtype=object)[:-1]


def river_rule(
    lakes: gpd.GeoDataFrame,
    river_mask: np.ndarray,
    *,
    glakes: np.ndarray,
    reservoirs: np.ndarray,
    dams: np.ndarray,
    threshold: float,
    reservoir_distance_m: float,
    whole: bool = False,
) -> RuleResult:
    """The river mask with the Area Ratio cases of Fig. 3 (see the module docstring).

    ``whole`` (the paper's rule, ``reservoir_rule = "paper"``): a polygon that intersects a reservoir polygon is
    not masked at all, so a river the prediction joined to it stays too. Otherwise (``"extended"``):

    Reservoirs: a polygon that intersects a reservoir polygon (OSM, GeoDAR, GLAKES type 2) or lies within
    ``reservoir_distance_m`` of a GeoDAR dam is a reservoir. The river mask spares the reservoir polygons grown
    by ``reservoir_distance_m`` (GRWL and OSM rivers often run through reservoirs), so the reservoir itself is
    kept whole; a river the prediction joined to it is still cut off when what remains is below the ratio
    threshold (``river_case`` "r"), never deleted. A reservoir known only by its dam is kept whole.

    Args:
        lakes: polygons in a metric CRS.
        river_mask: river polygons (OSM rivers, GRWL buffered) in the same CRS.
        glakes: GLAKES polygons in the same CRS.
        reservoirs: reservoir polygons; dams: GeoDAR dam points (same CRS).

    Returns:
        A result whose frame has ``reservoir`` (bool), ``river_case`` ("" where the mask does not cut the
        polygon, or a reservoir kept whole; a/b/c; "r") and ``area_ratio`` (1 when not cut);
        ``extra["cases"]`` is every polygon the mask cut, before the mask, with ``case`` (a-d, "r" for a masked
        reservoir, "R" for a reservoir kept whole), ``area_ratio`` and ``glakes``; ``extra["after"]`` the
        masked geometry of each.
    """
    frame = lakes.reset_index(drop=True).copy()
    g = _geoms(frame)
    n = len(frame)
    reservoirs = np.asarray(reservoirs, dtype=object)
    by_polygon = _hits(reservoirs, g, predicate="intersects")
    by_dam = _hits(dams, g, predicate="dwithin", distance=reservoir_distance_m) & ~by_polygon
    frame["reservoir"] = by_polygon | by_dam
    frame["river_case"] = ""
    frame["area_ratio"] = 1.0
    counts = {"polygons_in": n, "reservoirs": int(frame["reservoir"].sum())}
    counts.update({f"case_{c}": 0 for c in (*CASES, "r", "R")})
    cases = frame.iloc[:0].copy()
    cases["case"] = pd.Series(dtype=object)
    cases["glakes"] = pd.Series(dtype=bool)
    if not n or not len(river_mask):
        counts["polygons_out"] = n
        return RuleResult(frame, _empty_like(lakes), counts, {"cases": cases, "after": np.empty(0, dtype=object)})
    rivers = chunk(river_mask)
    li, ri = shapely.STRtree(rivers).query(g, predicate="intersects")
    never = by_dam | by_polygon if whole else by_dam  # a reservoir known only by its dam is never masked
    keep_pairs = ~never[li]
    li, ri = li[keep_pairs], ri[keep_pairs]
    after = g.copy()
    if len(li):
        hit, masks = _grouped_union(li, ri, rivers)
        spare = by_polygon[hit]
        if spare.any() and len(reservoirs):
            grown = shapely.buffer(reservoirs, reservoir_distance_m)
            pi, gi = shapely.STRtree(grown).query(g[hit[spare]], predicate="intersects")
            rows, zones = _grouped_union(pi, gi, grown)
            idx = np.flatnonzero(spare)[rows]
            masks[idx] = shapely.difference(masks[idx], zones)
        after[hit] = shapely.difference(g[hit], masks)
    before_area = shapely.area(g)
    ratio = np.where(before_area > 0, shapely.area(after) / np.where(before_area > 0, before_area, 1), 1.0)
    cut = ratio < 1.0 - 1e-9
    res = frame["reservoir"].to_numpy()
    gl = _hits(glakes, g, predicate="intersects")
    case = np.full(n, "", dtype=object)
    ordinary = cut & ~res
    case[ordinary] = river_case(gl[ordinary], ratio[ordinary], threshold)
    case[cut & res] = np.where(ratio[cut & res] >= threshold, "R", "r")
    for c in (*CASES, "r", "R"):
        counts[f"case_{c}"] = int((case == c).sum())
    frame["area_ratio"] = np.where(cut, ratio, 1.0)
    cases = frame[cut].copy()
    cases["case"] = case[cut]
    cases["glakes"] = gl[cut]
    after_geoms = after[cut]
    masked = np.isin(case, ["b", "c", "r"])
    delete = case == "d"
    frame["river_case"] = np.where(case == "R", "", case)
    counts["masked_vanished"] = int((masked & (shapely.area(after) <= 0)).sum())
    removed = _removed(frame, delete, "river residue (case d)")
    piece = frame[masked].copy()
    piece = piece.set_geometry(gpd.GeoSeries(after[masked], index=piece.index, crs=frame.crs))
    out = _concat([frame[~delete & ~masked], _explode_polygons(piece)], frame)
    counts["polygons_out"] = len(out)
    return RuleResult(out, removed, counts, {"cases": cases, "after": after_geoms})


# --- 3. minimum area ------------------------------------------------------------------------------------


RESERVOIR_RULES = ("paper", "extended")


def reservoir_rule(name: str) -> str:
    """``reservoir_rule`` checked: ``paper`` or ``extended`` (see :func:`river_rule`)."""
    if name not in RESERVOIR_RULES:
        raise ParameterError("reservoir_rule", f"{name!r}: choose {' or '.join(RESERVOIR_RULES)}")
    return name


def min_area_rule(lakes: gpd.GeoDataFrame, *, min_km2: float) -> RuleResult:
    """Delete polygons smaller than ``min_km2`` (ellipsoidal area); the frame gains ``area_km2``."""
    frame = lakes.reset_index(drop=True).copy()
    frame["area_km2"] = areas_km2(_geoms(frame), frame.crs) if len(frame) else []
    small = frame["area_km2"].to_numpy() < min_km2
    counts = {"polygons_in": len(frame), "too_small": int(small.sum()), "polygons_out": int((~small).sum())}
    return RuleResult(frame[~small].reset_index(drop=True), _removed(frame, small, "below minimum area"), counts)


# --- 4. completion ----------------------------------------------------------------------------------------


def arid(aridity: np.ma.MaskedArray | np.ndarray | None, *, threshold: float, scale: float) -> np.ndarray | None:
    """True where the aridity index (stored x ``scale``) is below ``threshold``; False where it has no data."""
    if aridity is None:
        return None
    return (np.ma.getdata(aridity) < threshold * scale) & ~np.ma.getmaskarray(aridity)


def flood_mask(
    floodplain: np.ma.MaskedArray | None,
    occurrence: np.ma.MaskedArray | None,
    arid_zone: np.ndarray | None,
    *,
    occurrence_pct: float,
) -> np.ndarray | None:
    """Pixels where GLAKES is removed: SHIFT floodplain and occurrence < ``occurrence_pct`` and not arid.

    Returns None when the floodplain or the occurrence layer is switched off (nothing is removed).
    """
    if floodplain is None or occurrence is None:
        return None
    fp = (np.ma.getdata(floodplain) == 1) & ~np.ma.getmaskarray(floodplain)
    low = (np.ma.getdata(occurrence) < occurrence_pct) & ~np.ma.getmaskarray(occurrence)
    out = fp & low
    if arid_zone is not None:
        out &= ~arid_zone
    return out


def completion_candidates(
    glakes: gpd.GeoDataFrame,
    pld: gpd.GeoDataFrame,
    *,
    glakes_min_km2: float,
    min_km2: float,
) -> tuple[gpd.GeoDataFrame, dict]:
    """The lakes to merge into the prediction: masked GLAKES natural lakes > ``glakes_min_km2``, all masked GLAKES
    reservoirs, and the (already arid-selected) PLD lakes; each at least ``min_km2``.

    Args:
        glakes: masked GLAKES pieces with ``Lake_id``, ``Lake_type`` (1 natural, 2 reservoir), in a metric CRS.
        pld: PLD lakes in arid zones with ``lake_id``, same CRS.

    Returns:
        (candidates with ``source`` "glakes"/"pld", ``reservoir`` and ``ref_id``, counts).
    """
    crs = glakes.crs if glakes.crs is not None else pld.crs
    ga = areas_km2(_geoms(glakes), crs)
    gtype = glakes["Lake_type"].to_numpy() if len(glakes) else np.zeros(0)
    take = ((gtype == 1) & (ga > glakes_min_km2)) | ((gtype == 2) & (ga >= min_km2))
    pa = areas_km2(_geoms(pld), crs)
    ptake = pa >= min_km2
    g = gpd.GeoDataFrame(
        {
            "source": "glakes",
            "reservoir": gtype[take] == 2,
            "ref_id": glakes["Lake_id"].to_numpy()[take] if len(glakes) else [],
        },
        geometry=_geoms(glakes)[take],
        crs=crs,
    )
    p = gpd.GeoDataFrame(
        {"source": "pld", "reservoir": False, "ref_id": pld["lake_id"].to_numpy()[ptake] if len(pld) else []},
        geometry=_geoms(pld)[ptake],
        crs=crs,
    )
    counts = {
        "glakes_pieces": len(glakes),
        "glakes_natural_large": int(((gtype == 1) & (ga > glakes_min_km2)).sum()),
        "glakes_reservoirs": int(((gtype == 2) & (ga >= min_km2)).sum()),
        "pld_arid": int(ptake.sum()),
    }
    return _concat([g, p], g), counts


# --- 5. manual edits -------------------------------------------------------------------------------------


def read_edits(path: str | os.PathLike[str], *, actions: tuple[str, ...] = ACTIONS) -> gpd.GeoDataFrame:
    """A manual edit layer: polygons with ``action`` in ``actions`` (optional ``note``), any CRS.

    Args:
        path: the layer (any vector format GDAL reads).
        actions: the actions this review takes: :data:`ACTIONS` (final review) or :data:`RIVER_ACTIONS`.

    Raises:
        InputError: missing file, no CRS, no ``action`` column, an unknown action, or a non-polygon feature.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "edit layer not found")
    try:
        edits = gpd.read_file(path)
    except Exception as exc:
        raise InputError(path, f"not a readable vector file ({exc})") from exc
    if edits.crs is None:
        raise InputError(path, "edit layer has no CRS")
    if "action" not in edits.columns:
        raise InputError(path, f"edit layer needs an 'action' column ({' | '.join(actions)})")
    bad = sorted(set(edits["action"]) - set(actions))
    if bad:
        raise InputError(path, f"unknown action(s) {bad}; use {' | '.join(actions)}")
    types = set(edits.geometry.geom_type.dropna())
    if types - {"Polygon", "MultiPolygon"}:
        raise InputError(path, f"edit features must be polygons, found {sorted(types)}")
    if "note" not in edits.columns:
        edits["note"] = ""
    from lakepaper.postprocess.references import repair

    geoms, _ = repair(edits.geometry.values)
    edits = edits.set_geometry(gpd.GeoSeries(geoms, index=edits.index, crs=edits.crs))
    return edits[["action", "note", "geometry"]].reset_index(drop=True)


def apply_edits(lakes: gpd.GeoDataFrame, edits: gpd.GeoDataFrame, *, min_km2: float) -> RuleResult:
    """Apply the ``remove`` and ``erase`` features of an edit layer (``add`` is merged like a completion).

    ``remove`` deletes every lake that intersects the feature; ``erase`` cuts the feature's area out of the
    lakes (pieces smaller than ``min_km2`` are dropped). Edits are reprojected into the lakes' CRS.
    """
    frame = lakes.reset_index(drop=True)
    counts = {"removed": 0, "erased": 0}
    if not len(edits) or not len(frame):
        return RuleResult(frame, _empty_like(lakes), counts)
    frame, removed = _remove_and_erase(frame, edits.to_crs(frame.crs), counts, min_km2=min_km2, review="manual")
    return RuleResult(frame, _concat(removed, _empty_like(lakes)), counts)


def apply_river_review(
    lakes: gpd.GeoDataFrame, cases: gpd.GeoDataFrame, edits: gpd.GeoDataFrame, *, min_km2: float
) -> RuleResult:
    """The review after the river mask: ``restore``, then ``remove`` and ``erase`` (as :func:`apply_edits`).

    ``restore`` puts back whole, as it was before the mask, every polygon the river mask cut or deleted
    (``cases``: :func:`river_rule`'s ``extra["cases"]``) that the feature touches: the pieces the mask left of
    it are replaced by it. Its ``river_case`` keeps the case's letter, its ``area_ratio`` becomes 1.

    Args:
        lakes: the lakes after the river rule (:func:`river_rule`'s frame), metric CRS.
        cases: the polygons the river mask cut, before the mask, with ``case``.
        edits: the layer (:func:`read_edits` with :data:`RIVER_ACTIONS`), any CRS.
        min_km2: pieces an ``erase`` leaves below this are dropped.

    Returns:
        The reviewed lakes; ``removed`` what ``remove`` deleted; ``extra["restored"]`` the polygons put back.
    """
    frame = lakes.reset_index(drop=True)
    counts = {"restored": 0, "removed": 0, "erased": 0}
    restored = cases.iloc[:0]
    if not len(edits):
        return RuleResult(frame, _empty_like(lakes), counts, {"restored": restored})
    edits = edits.to_crs(frame.crs)
    feats = np.asarray(edits.geometry.values[edits["action"].to_numpy() == "restore"], dtype=object)
    if len(feats) and len(cases):
        before = _geoms(cases)
        back = np.zeros(len(cases), bool)
        back[shapely.STRtree(feats).query(before, predicate="intersects")[0]] = True
        if back.any():
            counts["restored"] = int(back.sum())
            whole = cases[back].drop(columns=["case", "glakes"], errors="ignore").copy()
            whole["river_case"] = cases["case"].to_numpy()[back]
            whole["area_ratio"] = 1.0
            if len(frame):  # the pieces the mask left of a restored polygon lie inside it
                inside = np.zeros(len(frame), bool)
                pts = shapely.point_on_surface(_geoms(frame))
                inside[shapely.STRtree(pts).query(before[back], predicate="contains")[1]] = True
                frame = frame[~inside]
            frame = _concat([frame, whole[[c for c in frame.columns if c in whole.columns]]], lakes)
            restored = whole
    frame, removed = _remove_and_erase(frame, edits, counts, min_km2=min_km2, review="river review")
    return RuleResult(frame, _concat(removed, _empty_like(lakes)), counts, {"restored": restored})


def _remove_and_erase(
    frame: gpd.GeoDataFrame, edits: gpd.GeoDataFrame, counts: dict, *, min_km2: float, review: str
) -> tuple[gpd.GeoDataFrame, list[gpd.GeoDataFrame]]:
    """The ``remove`` and ``erase`` features of a layer already in ``frame``'s CRS; ``counts`` updated."""
    removed = [_empty_like(frame)]
    for action, reason in (("remove", f"{review} remove"), ("erase", f"{review} erase")):
        feats = np.asarray(edits.geometry.values[edits["action"].to_numpy() == action], dtype=object)
        if not len(feats) or not len(frame):
            continue
        g = _geoms(frame)
        hit = np.zeros(len(frame), bool)
        hit[shapely.STRtree(feats).query(g, predicate="intersects")[0]] = True
        if action == "remove":
            counts["removed"] += int(hit.sum())
            removed.append(_removed(frame, hit, reason))
            frame = frame[~hit].reset_index(drop=True)
        else:
            counts["erased"] += int(hit.sum())
            cut = frame[hit].copy()
            cut = cut.set_geometry(
                gpd.GeoSeries(shapely.difference(g[hit], shapely.union_all(feats)), index=cut.index, crs=frame.crs)
            )
            pieces = _explode_polygons(cut)
            if len(pieces):
                pieces = pieces[areas_km2(_geoms(pieces), frame.crs) >= min_km2]
            frame = _concat([frame[~hit], pieces], frame)
    return frame, removed
