"""The whole post-processing pass: prediction masks and reference datasets in, the lake product out.

Order (paper section 2.4), each step partition by partition (one partition per prediction tile),
each a function of this module that :func:`postprocess` calls in turn:

1. :func:`prediction_polygons`: every tile's core to polygons (:func:`~lakepaper.postprocess.vectorize.vectorize_tile`),
   the lakes cut by tile edges joined (:func:`~lakepaper.postprocess.seams.merge_seams`);
2. - 4. :func:`apply_rules`: **ocean**, **river** (cases a-d, then the river review layer, the paper's first
   manual review) and **minimum area** (:mod:`~lakepaper.postprocess.rules`), with the reference datasets
   read for the partition's bounding box only (:func:`rule_pass`);
5. **completion**: :func:`completion_layers` rasterises GLAKES on each tile's grid, flood-masks it there,
   vectorises it per GLAKES lake and joins it across tiles, and clips PLD lakes to the cores where arid
   (:func:`completion_tile`); :func:`candidate_lakes` keeps what completion adds; :func:`unite`
   unites the candidates (and the ``add`` features of the edit layer) with the lakes they overlap, tile
   by tile after cutting every lake to the tile cores, and joins the seams again;
6. :func:`apply_manual`: the final review's ``remove`` / ``erase`` edits, last (the paper's second manual review).

A partition's working set is its own polygons and the references within its bounds, so memory follows
the largest tile, not the product; only the polygons along tile borders are handled across partitions.
:func:`postprocess` keeps each step's partitions (``keep_steps``) for the evaluation and the figures; an
:class:`Observer` given to it sees what the pass does not keep (the figures' examples are chosen that
way, :mod:`lakepaper.figures.postprocess_examples`); :func:`write_outputs` writes the product and the
review files.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping, Sequence
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
from lakepaper.postprocess.crs import reproject
from lakepaper.postprocess.partitions import NODATA, MaskTile, Partition, mask_tiles
from lakepaper.postprocess.product import SOURCES, product_frame, write_product
from lakepaper.postprocess.references import REFERENCES, ReferenceSet, river_polygons
from lakepaper.postprocess.seams import dissolve, merge_seams, split_to_cores
from lakepaper.postprocess.vectorize import CONNECTIVITY, burn, check_connectivity, vectorize, vectorize_tile

#: The steps whose partitions :func:`postprocess` keeps, in order.
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
    "reservoir_rule",
)
#: Reference vectors are read this far beyond a partition's bounds (GRWL lines whose buffer reaches in).
READ_MARGIN_M = 2000.0
#: Attribute columns every lake carries through the pass.
ATTRS = ("source", "sources", "reservoir", "river_case")


@dataclass
class Postprocessed:
    """What :func:`postprocess` returns (see the module docstring)."""

    product: gpd.GeoDataFrame
    tiles: list[MaskTile]
    counts: pd.DataFrame  # one row per rule and tile: the rule's counters (``rules.csv``)
    steps: dict[str, list[Partition]] = field(default_factory=dict)  # step -> partitions after it
    removed: dict[str, list[Partition]] = field(default_factory=dict)  # rule -> polygons it deleted whole
    cases: list[Partition] = field(default_factory=list)  # every polygon the river mask cut, per partition
    glakes: dict[str, list[Partition]] = field(default_factory=dict)  # "masked": GLAKES after the flood mask
    repaired: dict[str, int] = field(default_factory=dict)  # input -> geometries repaired
    skipped: list[str] = field(default_factory=list)  # reference datasets switched off
    seams: dict[str, dict] = field(default_factory=dict)  # layer -> counts of pieces joined across tiles
    seconds: dict[str, float] = field(default_factory=dict)  # phase -> wall seconds


@dataclass(frozen=True)
class FloodMasked:
    """GLAKES on one tile's core grid before and after the floodplain mask (what Fig. 4 draws)."""

    tile: MaskTile
    ids: np.ndarray  # per pixel: the GLAKES row + 1 of the lake there before the mask, 0 none
    after: np.ndarray  # the same after the mask
    fmask: np.ndarray | None  # pixels the mask removes (None: no mask on this tile)
    n_before: np.ndarray  # per GLAKES row: pixels before the mask
    n_removed: np.ndarray  # pixels the mask removed
    n_pieces: np.ndarray  # pieces left after it


class Observer:
    """Sees, while the pass runs, what it does not keep; subclass it and give it to :func:`postprocess`.

    The methods do nothing here. :class:`lakepaper.figures.postprocess_examples.FigureExamples` is one:
    it picks the examples of Figs. 3 and 4.
    """

    def river_cut(self, part: Partition, river: rules.RuleResult, context: Mapping[str, Any]) -> None:
        """After the river rule on a partition: its cases (``river.extra``: ``cases``, ``after``) and the
        river mask, GLAKES and ocean around it (``context``: ``rivers``, ``glakes``, ``ocean``)."""

    def glakes_masked(self, masked: FloodMasked) -> None:
        """After the floodplain mask on one tile's GLAKES lakes."""


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


@dataclass
class _Log:
    """What the pass records as it goes: counters per rule and tile, seconds per phase; and its progress bars."""

    n_tiles: int
    progress: bool = False
    rows: list[dict] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    clock: float = field(default_factory=time.perf_counter)

    def bar(self, items: Iterable, desc: str) -> Iterable:
        from tqdm.auto import tqdm

        return tqdm(items, desc=desc, unit="tile", disable=not self.progress, total=self.n_tiles)

    def lap(self, name: str) -> None:
        """The seconds since the last lap, as phase ``name``."""
        now = time.perf_counter()
        self.seconds[name] = round(now - self.clock, 3)
        self.clock = now


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


# --- one partition, one tile ----------------------------------------------------------------------------


def _bounds(part: Partition, margin: float) -> tuple[float, float, float, float]:
    b = np.array(part.core.bounds, float)
    if len(part.frame):
        fb = part.frame.total_bounds
        b = np.array([min(b[0], fb[0]), min(b[1], fb[1]), max(b[2], fb[2]), max(b[3], fb[3])])
    return (b[0] - margin, b[1] - margin, b[2] + margin, b[3] + margin)


def _arr(frame: gpd.GeoDataFrame) -> np.ndarray:
    return np.asarray(frame.geometry.values, dtype=object)


def rule_pass(
    part: Partition, refs: ReferenceSet, s: Mapping[str, Any], river_edits: gpd.GeoDataFrame | None = None
) -> dict[str, Any]:
    """Ocean, river and minimum-area rules on one partition; returns each step's frame, removals, counts.

    ``river_edits``: the review layer of the river mask (:func:`~lakepaper.postprocess.rules.apply_river_review`),
    applied right after it (:func:`reviewed_river`): the ``river`` step is the reviewed result, its counts the
    rule's and the review's (``review_*``); ``river_rule`` is the rule's alone (for the figures)."""
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
    paper = rules.reservoir_rule(s["reservoir_rule"]) == "paper"
    reservoirs = np.concatenate(
        [
            _arr(refs.vector("osm_reservoirs", bounds=bounds, crs=crs, columns=())),
            _arr(refs.vector("geodar_reservoirs", bounds=bounds, crs=crs, columns=())),
            _arr(glakes[glakes["Lake_type"].to_numpy() == 2])
            if len(glakes) and not paper
            else np.empty(0, dtype=object),
        ]
    )
    dams = np.empty(0, dtype=object) if paper else _arr(refs.vector("geodar_dams", bounds=bounds, crs=crs, columns=()))
    r_river = rules.river_rule(
        r_ocean.frame,
        rivers,
        glakes=_arr(glakes),
        reservoirs=reservoirs,
        dams=dams,
        threshold=s["area_ratio_threshold"],
        reservoir_distance_m=s["reservoir_distance_m"],
        whole=paper,
    )
    reviewed = reviewed_river(r_river, river_edits, s)
    r_min = rules.min_area_rule(reviewed.frame, min_km2=s["min_lake_area_km2"])
    return {
        "ocean": r_ocean,
        "river": reviewed,
        "river_rule": r_river,
        "min_area": r_min,
        "context": {"rivers": rivers, "glakes": _arr(glakes), "ocean": ocean},
    }


def reviewed_river(r_river: rules.RuleResult, edits: gpd.GeoDataFrame | None, s: Mapping[str, Any]) -> rules.RuleResult:
    """The river rule's result after its review layer: the reviewed lakes; removed, what the rule deleted and
    the review did not restore plus what the review removed; counts, the rule's and the review's
    (``review_*``); extra, the rule's cases."""
    if edits is None or not len(edits):
        return r_river
    rv = rules.apply_river_review(r_river.frame, r_river.extra["cases"], edits, min_km2=s["min_lake_area_km2"])
    back = {g.wkb for g in rv.extra["restored"].geometry.values}
    deleted = r_river.removed.iloc[np.flatnonzero([g.wkb not in back for g in r_river.removed.geometry.values])]
    removed = gpd.GeoDataFrame(
        pd.concat([deleted, rv.removed], ignore_index=True), geometry="geometry", crs=r_river.removed.crs
    )
    counts = {**r_river.counts, **{f"review_{k}": v for k, v in rv.counts.items()}, "polygons_out": len(rv.frame)}
    return rules.RuleResult(rv.frame, removed, counts, r_river.extra)


def completion_tile(
    tile: MaskTile, refs: ReferenceSet, s: Mapping[str, Any], *, connectivity: int, observer: Observer | None = None
) -> tuple[Partition, Partition, dict]:
    """GLAKES flood-masked on the tile's core grid and vectorised per lake; PLD lakes of arid zones clipped to the core.

    Returns:
        (GLAKES pieces with Lake_id/Lake_type, arid PLD lakes with lake_id, counts). ``observer`` sees the
        GLAKES rasters before and after the mask.
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
        if observer is not None:
            observer.glakes_masked(FloodMasked(tile, ids, after, fmask, n_before, n_removed, n_pieces))
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
    )


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


# --- the steps ------------------------------------------------------------------------------------------


def prediction_polygons(tiles: Sequence[MaskTile], log: _Log, *, connectivity: int) -> tuple[list[Partition], dict]:
    """Step 1: every tile's core to polygons, one partition per tile, and the lakes cut by tile edges joined.

    Returns:
        (the partitions, the counts of :func:`~lakepaper.postprocess.seams.merge_seams`).
    """
    parts = []
    for t in log.bar(tiles, "vectorise"):
        part, info = vectorize_tile(t, connectivity=connectivity)
        parts.append(part)
        log.rows.append({"rule": "vectorise", **info})
    log.lap("vectorise")
    parts, seams = merge_seams(parts, connectivity=connectivity)
    log.lap("seams")
    return parts, seams


def apply_rules(
    parts: Sequence[Partition],
    references: ReferenceSet,
    s: Mapping[str, Any],
    log: _Log,
    *,
    keep_steps: bool,
    observer: Observer | None = None,
    river_edits: gpd.GeoDataFrame | None = None,
) -> tuple[dict[str, list[Partition]], dict[str, list[Partition]], list[Partition]]:
    """Steps 2-4: ocean, river (and its review layer ``river_edits``) and minimum area, partition by partition
    (:func:`rule_pass`).

    Returns:
        (each rule's partitions after it, the polygons each deleted whole, the polygons the river mask cut).
        Without ``keep_steps`` only what the next step needs is held: the partitions after the minimum area.
    """
    after: dict[str, list[Partition]] = {k: [] for k in ("ocean", "river", "min_area")}
    removed: dict[str, list[Partition]] = {k: [] for k in ("ocean", "river", "min_area")}
    cases = []
    for part in log.bar(parts, "rules"):
        out = rule_pass(part, references, s, river_edits)
        for k in ("ocean", "river", "min_area"):
            r = out[k]
            if keep_steps or k == "min_area":
                after[k].append(part.with_frame(r.frame))
            if keep_steps:
                removed[k].append(part.with_frame(r.removed))
            log.rows.append({"rule": k, "tile": part.name, **r.counts})
        cases.append(part.with_frame(out["river"].extra["cases"]))
        if observer is not None:
            observer.river_cut(part, out["river_rule"], out["context"])
    log.lap("rules")
    return after, removed, cases


def completion_layers(
    tiles: Sequence[MaskTile],
    references: ReferenceSet,
    s: Mapping[str, Any],
    log: _Log,
    *,
    connectivity: int,
    observer: Observer | None = None,
) -> tuple[list[Partition], list[Partition], dict[str, dict]]:
    """Step 5a: GLAKES flood-masked and the arid PLD lakes, tile by tile (:func:`completion_tile`), each layer
    joined across tiles (a GLAKES or PLD lake only with pieces of itself).

    Returns:
        (GLAKES pieces, PLD lakes, the seam counts of each).
    """
    gparts, pparts = [], []
    for t in log.bar(tiles, "completion"):
        g, pl, c = completion_tile(t, references, s, connectivity=connectivity, observer=observer)
        gparts.append(g)
        pparts.append(pl)
        log.rows.append({"rule": "completion_tile", **c})
    gparts, glakes_seams = merge_seams(gparts, key="Lake_id", connectivity=connectivity)
    pparts, pld_seams = merge_seams(pparts, key="lake_id", connectivity=connectivity)
    return gparts, pparts, {"glakes": glakes_seams, "pld": pld_seams}


def candidate_lakes(
    gparts: Sequence[Partition], pparts: Sequence[Partition], references: ReferenceSet, s: Mapping[str, Any], log: _Log
) -> list[Partition]:
    """Step 5b: per partition, the lakes completion adds (:func:`~lakepaper.postprocess.rules.completion_candidates`),
    those within the coast distance of the ocean dropped (the ocean rule, as for the prediction)."""
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
        log.rows.append({"rule": "completion", "tile": g.name, **c, "candidates": len(cand)})
        cand_parts.append(g.with_frame(_attrs(cand, "glakes")))
    return cand_parts


def unite(
    predicted: Sequence[Partition],
    candidates: Sequence[Partition],
    added: Sequence[Partition],
    log: _Log,
    *,
    connectivity: int,
) -> tuple[list[Partition], dict]:
    """Step 5c: the predicted lakes, the completion candidates and the lakes the edit layer adds, united where
    they overlap (:func:`unite_attributes`), tile by tile after every lake is cut to the tile cores; then the
    seams joined again. The prediction's own polygons are not joined to each other (the river mask may have
    cut a lake in two on purpose).

    Returns:
        (the partitions after completion, the seam counts).
    """
    pred = split_to_cores([q.with_frame(_attrs(q.frame, "prediction")) for q in predicted])
    cand_parts = split_to_cores(candidates)
    combined = []
    for a, b, e in zip(pred, cand_parts, added, strict=True):
        frame = gpd.GeoDataFrame(
            pd.concat([a.frame, b.frame, _attrs(e.frame, "manual")], ignore_index=True), geometry="geometry", crs=a.crs
        )
        joinable = frame["source"].to_numpy() != "prediction"
        frame, _ = dissolve(frame, res=a.res, connectivity=connectivity, agg=unite_attributes, joinable=joinable)
        combined.append(a.with_frame(frame))
    combined, seams = merge_seams(combined, connectivity=connectivity, agg=unite_attributes)
    for q in combined:
        src = q.frame["sources"].astype(str) if len(q.frame) else pd.Series([], dtype=str)
        log.rows.append(
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
    log.lap("completion")
    return combined, seams


def apply_manual(
    parts: Sequence[Partition],
    edits: gpd.GeoDataFrame | None,
    s: Mapping[str, Any],
    log: _Log,
    *,
    keep_steps: bool,
) -> tuple[list[Partition], list[Partition]]:
    """Step 6: the ``remove`` and ``erase`` features of the edit layer, applied last
    (:func:`~lakepaper.postprocess.rules.apply_edits`).

    Returns:
        (the final partitions, the polygons removed whole (with ``keep_steps``)).
    """
    final, removed = [], []
    for q in parts:
        if edits is not None and len(edits):
            r = rules.apply_edits(q.frame, edits, min_km2=s["min_lake_area_km2"])
            final.append(q.with_frame(r.frame))
            if keep_steps:
                removed.append(q.with_frame(r.removed))
            log.rows.append({"rule": "manual", "tile": q.name, **r.counts})
        else:
            final.append(q)
    return final, removed


# --- the whole pass --------------------------------------------------------------------------------------


def postprocess(
    prediction_dir: str | os.PathLike[str],
    p: Mapping[str, Any],
    *,
    references: ReferenceSet,
    tile_grid: gpd.GeoDataFrame | None = None,
    edits: gpd.GeoDataFrame | None = None,
    river_edits: gpd.GeoDataFrame | None = None,
    tiles: Sequence[str] | None = None,
    connectivity: int = CONNECTIVITY,
    keep_steps: bool = True,
    progress: bool = False,
    observer: Observer | None = None,
) -> Postprocessed:
    """Post-process a prediction into the lake product: the steps of the module docstring, in order.

    Args:
        prediction_dir: folder of ``<tile>_mask.tif`` (uint8 1 lake, 0 not, 255 no data).
        p: resolved parameters (``params.resolve(profile)``).
        references: the reference datasets (:class:`~lakepaper.postprocess.references.ReferenceSet`).
        tile_grid: tile footprints (``tile`` column): each tile's core; None: the whole rasters.
        edits: the final review's edit layer (:func:`~lakepaper.postprocess.rules.read_edits`), or None.
        river_edits: the river mask's review layer (``read_edits(..., actions=rules.RIVER_ACTIONS)``), or None.
        tiles: only these tiles.
        connectivity: 4 or 8 (see :mod:`~lakepaper.postprocess.vectorize`).
        keep_steps: keep every step's partitions (evaluation, figures); False keeps only the product.
        progress: show a progress bar per step.
        observer: sees what the pass does not keep (:class:`Observer`), e.g. to choose figure examples.
    """
    s = settings(p)
    check_connectivity(connectivity)
    mts = mask_tiles(prediction_dir, tile_grid=tile_grid, tiles=tiles)
    skipped = [name for name in REFERENCES if not references.on(name)]
    log = _Log(len(mts), progress)

    parts, prediction_seams = prediction_polygons(mts, log, connectivity=connectivity)
    after, removed, cases = apply_rules(
        parts, references, s, log, keep_steps=keep_steps, observer=observer, river_edits=river_edits
    )
    steps: dict[str, list[Partition]] = {"prediction": parts, **after} if keep_steps else {}
    del parts
    gparts, pparts, reference_seams = completion_layers(
        mts, references, s, log, connectivity=connectivity, observer=observer
    )
    candidates = candidate_lakes(gparts, pparts, references, s, log)
    predicted = after.pop("min_area")
    combined, completion_seams = unite(
        predicted, candidates, _edit_partitions(edits, mts), log, connectivity=connectivity
    )
    del predicted, candidates
    final, removed["manual"] = apply_manual(combined, edits, s, log, keep_steps=keep_steps)
    product = product_frame(final, explode=connectivity == 4)
    log.lap("manual_and_product")

    counts = pd.DataFrame(log.rows)
    repaired = dict(references.repaired)
    repaired["prediction"] = int(counts.loc[counts.rule == "vectorise", "repaired"].sum())
    return Postprocessed(
        product=product,
        tiles=mts,
        counts=counts,
        steps={**steps, "completion": combined, "final": final} if keep_steps else {"final": final},
        removed=removed if keep_steps else {},
        cases=cases,
        glakes={"masked": gparts} if keep_steps else {},
        repaired=repaired,
        skipped=skipped,
        seams={"prediction": prediction_seams, **reference_seams, "completion": completion_seams},
        seconds=log.seconds,
    )


# --- outputs ------------------------------------------------------------------------------------------


def rule_summary(result: Postprocessed) -> pd.DataFrame:
    """Counters summed over tiles: one row per rule and counter."""
    c = result.counts.drop(columns=["tile"], errors="ignore")
    rows = []
    for rule, g in c.groupby("rule", sort=False):
        for col in g.columns.drop("rule"):
            v = pd.to_numeric(g[col], errors="coerce")
            if v.notna().any():
                rows.append({"rule": rule, "counter": col, "value": float(v.sum())})
    return pd.DataFrame(rows)


def write_outputs(result: Postprocessed, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
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
        win = t.core_slices
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


def reproject_cases(result: Postprocessed) -> gpd.GeoDataFrame:
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
