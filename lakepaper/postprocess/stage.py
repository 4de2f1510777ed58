"""The whole post-processing pass: prediction masks and reference datasets in, the lake product out.

Order (paper section 2.4), each step partition by partition (one partition per prediction tile):

1. **vectorise** every tile's core (:func:`~lakepaper.postprocess.vectorize.vectorize_tile`) and join the
   lakes cut by tile edges (:func:`~lakepaper.postprocess.vectorize.merge_seams`);
2. **ocean**, 3. **river** (cases a-d), 4. **minimum area** (:mod:`~lakepaper.postprocess.rules`), with the
   reference datasets read for the partition's bounding box only;
5. **completion**: GLAKES rasterised on each tile's grid and flood-masked there, vectorised per GLAKES lake and
   joined across tiles; PLD lakes clipped to the cores and kept where arid; the candidates (and the ``add``
   features of the edit layer) are united with the lakes they overlap, tile by tile after cutting every
   lake to the tile cores, and the seams joined again;
6. **manual** ``remove`` / ``erase`` edits, last.

A partition's working set is its own polygons and the references within its bounds, so memory follows
the largest tile, not the product; only the polygons along tile borders are handled across partitions.
:func:`run` keeps each step's partitions (``keep_steps``) for the evaluation and the figures;
:func:`write_outputs` writes the product and the review files.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import shapely
from rasterio import features

from lakepaper import io
from lakepaper.errors import InputError, ParameterError
from lakepaper.postprocess import rules
from lakepaper.postprocess.product import SOURCES, product_frame, write_product
from lakepaper.postprocess.references import REFERENCES, ReferenceSet, river_polygons
from lakepaper.postprocess.vectorize import (
    CONNECTIVITY,
    NODATA,
    MaskTile,
    Partition,
    burn,
    check_connectivity,
    dissolve,
    mask_tiles,
    merge_seams,
    reproject,
    split_to_cores,
    vectorize,
    vectorize_tile,
)

#: The steps whose partitions :func:`run` keeps, in order.
STEPS = ("prediction", "ocean", "river", "min_area", "completion", "final")
#: Parameters of the method read from ``params`` (paper section 2.4).
PARAMS = (
    "coast_distance_m",
    "area_ratio_threshold",
    "min_lake_area_km2",
    "glakes_completion_min_km2",
    "aridity_threshold",
    "aridity_scale",
    "floodplain_occurrence_pct",
    "reservoir_distance_m",
)
#: Reference vectors are read this far beyond a partition's bounds (GRWL lines whose buffer reaches in).
READ_MARGIN_M = 2000.0
#: Attribute columns every lake carries through the pass.
ATTRS = ("source", "sources", "reservoir", "river_case")


@dataclass
class Result:
    """What :func:`run` returns (see the module docstring)."""

    product: gpd.GeoDataFrame
    tiles: list[MaskTile]
    counts: pd.DataFrame
    steps: dict[str, list[Partition]] = field(default_factory=dict)
    removed: dict[str, list[Partition]] = field(default_factory=dict)
    cases: list[Partition] = field(default_factory=list)
    glakes: dict[str, list[Partition]] = field(default_factory=dict)
    fig3: dict[str, dict] = field(default_factory=dict)
    fig4: dict[str, dict] = field(default_factory=dict)
    repaired: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    seams: dict[str, dict] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def settings(p: Mapping[str, Any]) -> dict[str, Any]:
    """The method parameters of a resolved profile (``params.resolve``), checked."""
    missing = [k for k in PARAMS if k not in p]
    if missing:
        raise ParameterError(missing[0], "missing from the parameters (use params.resolve)")
    s = {k: p[k] for k in PARAMS}
    if not 0 < s["area_ratio_threshold"] <= 1:
        raise ParameterError("area_ratio_threshold", f"must be in (0, 1], got {s['area_ratio_threshold']}")
    return s


def read_tile_grid(path: str | os.PathLike[str] | None) -> gpd.GeoDataFrame | None:
    """The tile footprints (any CRS, ``tile`` column), or None."""
    if not path:
        return None
    path = Path(path)
    if not path.exists():
        raise ParameterError("tile_grid", f"file not found: {path}")
    grid = gpd.read_file(path)
    if "tile" not in grid.columns or grid.crs is None:
        raise InputError(path, "a tile grid needs a 'tile' column and a CRS")
    return grid


# --- attributes of united lakes -------------------------------------------------------------------------


def unite_attributes(rows: pd.DataFrame, areas: np.ndarray) -> dict:
    """Attributes of a lake united from pieces: the first source by priority, all sources, any reservoir."""
    out: dict[str, Any] = {}
    present = set()
    for s in rows.get("sources", rows.get("source", pd.Series(["prediction"] * len(rows)))):
        present.update(str(s).split("+"))
    order = [s for s in SOURCES if s in present]
    out["source"] = order[0] if order else "prediction"
    out["sources"] = "+".join(order) if order else "prediction"
    out["reservoir"] = bool(rows["reservoir"].astype(bool).any()) if "reservoir" in rows else False
    cases = sorted(c for c in rows.get("river_case", pd.Series([], dtype=object)) if c)
    out["river_case"] = cases[0] if cases else ""
    for c in rows.columns:
        if c not in out and c != "geometry":
            out[c] = rows[c].iloc[int(np.argmax(areas))]
    return out


def _attrs(frame: gpd.GeoDataFrame, source: str) -> gpd.GeoDataFrame:
    out = frame.copy()
    if "source" not in out:
        out["source"] = source
    if "sources" not in out:
        out["sources"] = out["source"]
    if "reservoir" not in out:
        out["reservoir"] = False
    if "river_case" not in out:
        out["river_case"] = ""
    return gpd.GeoDataFrame(out[[*ATTRS, "geometry"]], geometry="geometry", crs=frame.crs)


# --- one partition --------------------------------------------------------------------------------------


def _bounds(part: Partition, margin: float) -> tuple[float, float, float, float]:
    b = np.array(part.core.bounds, float)
    if len(part.frame):
        fb = part.frame.total_bounds
        b = np.array([min(b[0], fb[0]), min(b[1], fb[1]), max(b[2], fb[2]), max(b[3], fb[3])])
    return (b[0] - margin, b[1] - margin, b[2] + margin, b[3] + margin)


def _arr(frame: gpd.GeoDataFrame) -> np.ndarray:
    return np.asarray(frame.geometry.values, dtype=object)


def rule_pass(part: Partition, refs: ReferenceSet, s: Mapping[str, Any]) -> dict[str, Any]:
    """Ocean, river and minimum-area rules on one partition; returns each step's frame, removals, counts."""
    crs = part.crs
    bounds = _bounds(part, READ_MARGIN_M)
    frame = _attrs(part.frame, "prediction")
    land = _arr(refs.vector("osm_land", bounds=bounds, crs=crs)) if refs.on("osm_land") else None
    ocean = _arr(refs.vector("osm_ocean", bounds=bounds, crs=crs)) if refs.on("osm_ocean") else None
    r_ocean = rules.ocean_rule(frame, land, ocean, coast_distance_m=s["coast_distance_m"])
    rivers = river_polygons(
        refs.vector("osm_rivers", bounds=bounds, crs=crs), refs.vector("grwl", bounds=bounds, crs=crs)
    )
    glakes = refs.vector("glakes", bounds=bounds, crs=crs)
    reservoirs = np.concatenate(
        [
            _arr(refs.vector("osm_reservoirs", bounds=bounds, crs=crs, columns=())),
            _arr(refs.vector("geodar_reservoirs", bounds=bounds, crs=crs, columns=())),
            _arr(glakes[glakes["Lake_type"].to_numpy() == 2]) if len(glakes) else np.empty(0, dtype=object),
        ]
    )
    dams = _arr(refs.vector("geodar_dams", bounds=bounds, crs=crs, columns=()))
    r_river = rules.river_rule(
        r_ocean.frame,
        rivers,
        glakes=_arr(glakes),
        reservoirs=reservoirs,
        dams=dams,
        threshold=s["area_ratio_threshold"],
        reservoir_distance_m=s["reservoir_distance_m"],
    )
    r_min = rules.min_area_rule(r_river.frame, min_km2=s["min_lake_area_km2"])
    return {
        "ocean": r_ocean,
        "river": r_river,
        "min_area": r_min,
        "context": {"rivers": rivers, "glakes": _arr(glakes), "ocean": ocean},
    }


def _pick_fig3(best: dict, part: Partition, rr: rules.RuleResult, context: dict) -> None:
    """Keep, per case, the largest polygon the river mask cut, with what the figure draws around it."""
    cases = rr.extra["cases"]
    if not len(cases):
        return
    after = rr.extra["after"]
    area = shapely.area(_arr(cases))
    # a polygon of 0.02-1 km2 shows both the lake and the river at figure scale: prefer the largest such one
    score = np.where((area >= 2e4) & (area <= 1e6), area, np.where(area > 1e6, 1e6 / area, area / 2e4) * 1e-3)
    for case in ("a", "b", "c", "d", "r"):
        sel = np.flatnonzero(cases["case"].to_numpy() == case)
        if not len(sel):
            continue
        k = sel[np.argmax(score[sel])]
        if case in best and best[case]["score"] >= score[k]:
            continue
        before = cases.geometry.values[k]
        x0, y0, x1, y1 = shapely.bounds(before)
        pad = 0.25 * max(x1 - x0, y1 - y0) + 50.0
        view = shapely.box(x0 - pad, y0 - pad, x1 + pad, y1 + pad)
        if max(x1 - x0, y1 - y0) > 2000:  # a river-long polygon: 2 km around a point inside it
            pt = shapely.point_on_surface(before)
            view = shapely.box(pt.x - 1000, pt.y - 1000, pt.x + 1000, pt.y + 1000)

        def near(geoms, view=view):
            geoms = np.asarray(geoms if geoms is not None else [], dtype=object)
            if not len(geoms):
                return geoms
            return shapely.clip_by_rect(geoms[shapely.intersects(geoms, view)], *view.bounds)

        best[case] = {
            "case": case,
            "tile": part.name,
            "crs": part.crs,
            "area_m2": float(area[k]),
            "score": float(score[k]),
            "ratio": float(cases["area_ratio"].iloc[k]),
            "glakes_hit": bool(cases["glakes"].iloc[k]),
            "before": before,
            "after": after[k],
            "rivers": near(context["rivers"]),
            "glakes": near(context["glakes"]),
            "bounds": view.bounds,
        }


# --- completion, tile by tile ---------------------------------------------------------------------------


def completion_tile(
    tile: MaskTile, refs: ReferenceSet, s: Mapping[str, Any], *, connectivity: int
) -> tuple[Partition, Partition, dict, dict]:
    """GLAKES flood-masked on the tile's core grid and vectorised per lake; PLD lakes of arid zones clipped to the core.

    Returns:
        (GLAKES pieces with Lake_id/Lake_type, arid PLD lakes with lake_id, counts, a Fig. 4 candidate).
    """
    h, w = tile.core_shape
    t = tile.core_transform
    core = tile.core_polygon()
    bounds = core.bounds
    counts: dict[str, Any] = {"tile": tile.name}
    aridity = refs.raster("aridity", (h, w), t, tile.crs)
    arid_zone = rules.arid(aridity, threshold=s["aridity_threshold"], scale=s["aridity_scale"])
    counts["arid_pixels"] = int(arid_zone.sum()) if arid_zone is not None else 0
    gl = refs.vector("glakes", bounds=bounds, crs=tile.crs)
    empty_g = gpd.GeoDataFrame({"Lake_id": [], "Lake_type": []}, geometry=gpd.GeoSeries([], crs=tile.crs))
    fig4: dict = {}
    if len(gl) and h and w:
        ids = features.rasterize(
            zip(_arr(gl), range(1, len(gl) + 1), strict=True), out_shape=(h, w), transform=t, fill=0, dtype=np.int32
        )
        fmask = rules.flood_mask(
            refs.raster("floodplain", (h, w), t, tile.crs),
            refs.raster("occurrence", (h, w), t, tile.crs),
            arid_zone,
            occurrence_pct=s["floodplain_occurrence_pct"],
        )
        after = ids if fmask is None else np.where(fmask, 0, ids)
        geoms, vals, _ = vectorize(after, t, mask=after > 0, connectivity=connectivity)
        rows = vals.astype(int) - 1
        pieces = gpd.GeoDataFrame(
            {"Lake_id": gl["Lake_id"].to_numpy()[rows], "Lake_type": gl["Lake_type"].to_numpy()[rows]},
            geometry=geoms,
            crs=tile.crs,
        )
        n_before = np.bincount(ids.ravel(), minlength=len(gl) + 1)[1:]
        n_removed = np.bincount(ids[fmask].ravel(), minlength=len(gl) + 1)[1:] if fmask is not None else 0 * n_before
        n_pieces = np.bincount(rows, minlength=len(gl))
        counts.update(
            glakes_lakes=int((n_before > 0).sum()),
            glakes_pieces=len(pieces),
            glakes_px=int(n_before.sum()),
            glakes_removed_px=int(np.sum(n_removed)),
        )
        if fmask is not None and (n_before > 0).any():
            split = int(np.argmax(n_pieces))
            share = np.where(n_before > 0, n_removed / np.maximum(n_before, 1), 0)
            # the lake that lost most pixels while keeping part of itself (false flood water or paddies cut off)
            partial = (n_before >= 400) & (share >= 0.2) & (share <= 0.9)
            cut = int(np.argmax(np.where(partial, n_removed, -1))) if partial.any() else int(np.argmax(n_removed))
            if n_pieces[split] > 1:
                fig4["split"] = _fig4_view(ids, after, fmask, split, t, tile, score=float(n_pieces[split]))
            if np.max(n_removed) > 0:
                fig4["removed"] = _fig4_view(
                    ids,
                    after,
                    fmask,
                    cut,
                    t,
                    tile,
                    score=float(share[cut]),
                    rank=float(n_removed[cut]) + (1e9 if partial.any() else 0),
                )
    else:
        pieces = empty_g
        counts.update(glakes_lakes=0, glakes_pieces=0, glakes_px=0, glakes_removed_px=0)
    pld = refs.vector("pld", bounds=bounds, crs=tile.crs)
    arid_pld = gpd.GeoDataFrame({"lake_id": []}, geometry=gpd.GeoSeries([], crs=tile.crs))
    counts["pld_lakes"] = len(pld)
    if len(pld) and arid_zone is not None and arid_zone.any():
        clipped = shapely.intersection(_arr(pld), core)
        parts, idx = shapely.get_parts(clipped, return_index=True)
        ok = (shapely.get_type_id(parts) == 3) & (shapely.area(parts) > 0)
        parts, idx = parts[ok], idx[ok]
        pts = shapely.point_on_surface(parts)
        cols, rows_ = (~t) * (shapely.get_x(pts), shapely.get_y(pts))
        r = np.clip(np.floor(rows_).astype(int), 0, h - 1)
        c = np.clip(np.floor(cols).astype(int), 0, w - 1)
        keep = arid_zone[r, c]
        arid_pld = gpd.GeoDataFrame(
            {"lake_id": pld["lake_id"].to_numpy()[idx[keep]]}, geometry=parts[keep], crs=tile.crs
        )
    counts["pld_arid_pieces"] = len(arid_pld)
    return (
        Partition(tile.name, tile.crs, core, pieces, tile.res),
        Partition(tile.name, tile.crs, core, arid_pld, tile.res),
        counts,
        fig4,
    )


def _fig4_view(ids, after, fmask, row: int, t, tile: MaskTile, *, score: float, rank: float | None = None) -> dict:
    sel = np.argwhere(ids == row + 1)
    r0, c0 = sel.min(axis=0)
    r1, c1 = sel.max(axis=0) + 1
    pad = max(10, (max(r1 - r0, c1 - c0)) // 3)
    r0, c0 = max(0, r0 - pad), max(0, c0 - pad)
    r1, c1 = min(ids.shape[0], r1 + pad), min(ids.shape[1], c1 + pad)
    win = (slice(r0, r1), slice(c0, c1))
    x0, y0 = t * (c0, r0)
    x1, y1 = t * (c1, r1)
    return {
        "tile": tile.name,
        "score": score,
        "rank": score if rank is None else rank,
        "before": ids[win] > 0,
        "after": after[win] > 0,
        "floodplain_removed": fmask[win],
        "extent": (min(x0, x1), max(x0, x1), min(y0, y1), max(y0, y1)),
    }


def _edit_partitions(edits: gpd.GeoDataFrame | None, tiles: Sequence[MaskTile]) -> list[Partition]:
    out = []
    for t in tiles:
        core = t.core_polygon()
        frame = gpd.GeoDataFrame({"source": []}, geometry=gpd.GeoSeries([], crs=t.crs))
        if edits is not None and len(edits):
            adds = edits[edits["action"] == "add"].to_crs(t.crs)
            pieces = shapely.intersection(_arr(adds), core) if len(adds) else np.empty(0, dtype=object)
            parts = shapely.get_parts(pieces) if len(pieces) else np.empty(0, dtype=object)
            parts = parts[(shapely.get_type_id(parts) == 3) & (shapely.area(parts) > 0)] if len(parts) else parts
            frame = gpd.GeoDataFrame({"source": ["manual"] * len(parts)}, geometry=parts, crs=t.crs)
        out.append(Partition(t.name, t.crs, core, frame, t.res))
    return out


# --- the whole pass --------------------------------------------------------------------------------------


def run(
    prediction_dir: str | os.PathLike[str],
    p: Mapping[str, Any],
    *,
    references: ReferenceSet,
    tile_grid: gpd.GeoDataFrame | None = None,
    edits: gpd.GeoDataFrame | None = None,
    tiles: Sequence[str] | None = None,
    connectivity: int = CONNECTIVITY,
    keep_steps: bool = True,
    progress: bool = False,
) -> Result:
    """Post-process a prediction into the lake product (see the module docstring).

    Args:
        prediction_dir: folder of ``<tile>_mask.tif`` (uint8 1 lake, 0 not, 255 no data).
        p: resolved parameters (``params.resolve(profile)``).
        references: the reference datasets (:class:`~lakepaper.postprocess.references.ReferenceSet`).
        tile_grid: tile footprints (``tile`` column): each tile's core; None: the whole rasters.
        edits: a manual edit layer (:func:`~lakepaper.postprocess.rules.read_edits`), or None.
        tiles: only these tiles.
        connectivity: 4 or 8 (see :mod:`~lakepaper.postprocess.vectorize`).
        keep_steps: keep every step's partitions (evaluation, figures); False keeps only the product.
    """
    from tqdm.auto import tqdm

    s = settings(p)
    check_connectivity(connectivity)
    mts = mask_tiles(prediction_dir, tile_grid=tile_grid, tiles=tiles)
    counts: list[dict] = []
    result = Result(product=None, tiles=mts, counts=None)  # type: ignore[arg-type]
    for name in REFERENCES:
        if not references.on(name):
            result.skipped.append(name)

    def bar(it, desc):
        return tqdm(it, desc=desc, unit="tile", disable=not progress, total=len(mts))

    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        result.seconds[name] = round(now - clock, 3)
        clock = now

    # 1. vectorise and join the seams
    parts = []
    for t in bar(mts, "vectorise"):
        part, info = vectorize_tile(t, connectivity=connectivity)
        parts.append(part)
        counts.append({"rule": "vectorise", **info})
    lap("vectorise")
    parts, result.seams["prediction"] = merge_seams(parts, connectivity=connectivity)
    lap("seams")
    steps: dict[str, list[Partition]] = {"prediction": parts}

    # 2-4. ocean, river, minimum area, partition by partition
    after: dict[str, list[Partition]] = {k: [] for k in ("ocean", "river", "min_area")}
    removed: dict[str, list[Partition]] = {k: [] for k in ("ocean", "river", "min_area", "manual")}
    for part in bar(parts, "rules"):
        out = rule_pass(part, references, s)
        for k in ("ocean", "river", "min_area"):
            r = out[k]
            if keep_steps or k == "min_area":  # without keep_steps only what the next step needs is held
                after[k].append(part.with_frame(r.frame))
            if keep_steps:
                removed[k].append(part.with_frame(r.removed))
            counts.append({"rule": k, "tile": part.name, **r.counts})
        cases = out["river"].extra["cases"]
        result.cases.append(part.with_frame(cases))
        _pick_fig3(result.fig3, part, out["river"], out["context"])
    steps.update(after)
    if not keep_steps:
        del parts
        steps.pop("prediction")
    lap("rules")

    # 5. completion
    gparts, pparts = [], []
    for t in bar(mts, "completion"):
        g, pl, c, fig4 = completion_tile(t, references, s, connectivity=connectivity)
        gparts.append(g)
        pparts.append(pl)
        counts.append({"rule": "completion_tile", **c})
        for k, v in fig4.items():
            if k not in result.fig4 or v["rank"] > result.fig4[k]["rank"]:
                result.fig4[k] = v
    gparts, result.seams["glakes"] = merge_seams(gparts, key="Lake_id", connectivity=connectivity)
    pparts, result.seams["pld"] = merge_seams(pparts, key="lake_id", connectivity=connectivity)
    if keep_steps:
        result.glakes["masked"] = gparts
    cand_parts = []
    for g, pl in zip(gparts, pparts, strict=True):
        cand, c = rules.completion_candidates(
            g.frame, pl.frame, glakes_min_km2=s["glakes_completion_min_km2"], min_km2=s["min_lake_area_km2"]
        )
        if len(cand) and references.on("osm_ocean"):
            ocean = _arr(references.vector("osm_ocean", bounds=_bounds(g.with_frame(cand), 100.0), crs=g.crs))
            oc = rules.ocean_rule(cand, None, ocean, coast_distance_m=s["coast_distance_m"])
            c["coastal_dropped"] = oc.counts["near_ocean"]
            cand = oc.frame
        counts.append({"rule": "completion", "tile": g.name, **c, "candidates": len(cand)})
        cand_parts.append(g.with_frame(_attrs(cand, "glakes")))
    edit_parts = _edit_partitions(edits, mts)
    pred = split_to_cores([q.with_frame(_attrs(q.frame, "prediction")) for q in steps["min_area"]])
    if not keep_steps:
        steps.pop("min_area")
    cand_parts = split_to_cores(cand_parts)
    combined = []
    for a, b, e in zip(pred, cand_parts, edit_parts, strict=True):
        frame = gpd.GeoDataFrame(
            pd.concat([a.frame, b.frame, _attrs(e.frame, "manual")], ignore_index=True), geometry="geometry", crs=a.crs
        )
        joinable = frame["source"].to_numpy() != "prediction"
        frame, n = dissolve(frame, res=a.res, connectivity=connectivity, agg=unite_attributes, joinable=joinable)
        combined.append(a.with_frame(frame))
    combined, result.seams["completion"] = merge_seams(combined, connectivity=connectivity, agg=unite_attributes)
    for q in combined:
        src = q.frame["sources"].astype(str) if len(q.frame) else pd.Series([], dtype=str)
        counts.append(
            {
                "rule": "merge",
                "tile": q.name,
                "lakes": len(q.frame),
                "new_glakes": int((q.frame["source"] == "glakes").sum()) if len(q.frame) else 0,
                "new_pld": int((q.frame["source"] == "pld").sum()) if len(q.frame) else 0,
                "new_manual": int((q.frame["source"] == "manual").sum()) if len(q.frame) else 0,
                "enlarged": int((src.str.startswith("prediction+")).sum()),
            }
        )
    steps["completion"] = combined
    lap("completion")

    # 6. manual remove / erase
    final = []
    for q in combined:
        if edits is not None and len(edits):
            r = rules.apply_edits(q.frame, edits, min_km2=s["min_lake_area_km2"])
            final.append(q.with_frame(r.frame))
            if keep_steps:
                removed["manual"].append(q.with_frame(r.removed))
            counts.append({"rule": "manual", "tile": q.name, **r.counts})
        else:
            final.append(q)
    steps["final"] = final
    result.product = product_frame(final, explode=connectivity == 4)
    lap("manual_and_product")
    result.counts = pd.DataFrame(counts)
    result.repaired = dict(references.repaired)
    result.repaired["prediction"] = int(result.counts.loc[result.counts.rule == "vectorise", "repaired"].sum())
    result.steps = steps if keep_steps else {"final": final}
    if keep_steps:
        result.removed = removed
    return result


def rule_summary(result: Result) -> pd.DataFrame:
    """Counters summed over tiles: one row per rule and counter."""
    c = result.counts.drop(columns=["tile"], errors="ignore")
    rows = []
    for rule, g in c.groupby("rule", sort=False):
        for col in g.columns.drop("rule"):
            v = pd.to_numeric(g[col], errors="coerce")
            if v.notna().any():
                rows.append({"rule": rule, "counter": col, "value": float(v.sum())})
    return pd.DataFrame(rows)


def write_outputs(result: Result, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """The product (``lakes.gpkg``, ``lakes.parquet``), ``river_cases.gpkg``, ``rules.csv`` and per tile
    ``tiles/<tile>_mask.tif`` (the product on the prediction's grid: 1 lake, 0 not, 255 no data where the
    prediction had none and no lake was added) and ``tiles/<tile>_residue.tif`` (1 where the river rule removed
    predicted lake).
    """
    out_dir = Path(out_dir)
    paths = dict(write_product(result.product, out_dir))
    cases = reproject_cases(result)[["case", "area_ratio", "glakes", "reservoir", "tile", "geometry"]]
    paths["river_cases"] = io.write_vector(cases, out_dir / "river_cases.gpkg", "Polygon")
    with io.atomic_path(out_dir / "rules.csv") as tmp:
        result.counts.to_csv(tmp, index=False)
    paths["rules"] = out_dir / "rules.csv"
    final = result.steps["final"]
    for t in result.tiles:
        with rasterio.open(t.path) as ds:
            full = ds.read(1)
        mask = np.where(full == NODATA, NODATA, 0).astype(np.uint8)
        win = (
            slice(t.core.row_off, t.core.row_off + t.core.height),
            slice(t.core.col_off, t.core.col_off + t.core.width),
        )
        lake, _ = burn(final, t)
        mask[win] = np.where(lake == 1, 1, mask[win])
        if "ocean" in result.steps and "river" in result.steps:
            ocean_step, _ = burn(result.steps["ocean"], t)
            river_step, _ = burn(result.steps["river"], t)
            residue = np.zeros_like(mask)
            residue[win] = (ocean_step == 1) & (river_step == 0)
            io.write_raster(
                out_dir / "tiles" / f"{t.name}_residue.tif",
                residue,
                crs=t.crs.to_wkt(),
                transform=t.transform,
                nodata=None,
                band_names=["river_residue"],
            )
        io.write_raster(
            out_dir / "tiles" / f"{t.name}_mask.tif",
            mask,
            crs=t.crs.to_wkt(),
            transform=t.transform,
            nodata=NODATA,
            band_names=["lake"],
        )
    return paths


def reproject_cases(result: Result) -> gpd.GeoDataFrame:
    """Every polygon the river mask cut, before the mask, in EPSG:4326 (``case``, ``area_ratio``, ``glakes``)."""
    frames = []
    for q in result.cases:
        if len(q.frame):
            g = reproject(_arr(q.frame), q.crs, 4326)
            frames.append(gpd.GeoDataFrame(q.frame.drop(columns="geometry").assign(tile=q.name), geometry=g, crs=4326))
    if not frames:
        empty = {"case": [], "area_ratio": [], "glakes": [], "reservoir": [], "tile": []}
        return gpd.GeoDataFrame(empty, geometry=gpd.GeoSeries([], crs=4326), crs=4326)
    return gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry", crs=4326)
