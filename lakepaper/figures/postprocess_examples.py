"""Which lakes Figs. 3 and 4 show: chosen while the post-processing pass runs, from what it does not keep.

Fig. 3 shows, for each river-mask case a-d, one polygon the mask cut; Fig. 4 one GLAKES lake the
floodplain mask split and one it cut down. :class:`FigureExamples` is an
:class:`~lakepaper.postprocess.pipeline.Observer`: given to
:func:`~lakepaper.postprocess.pipeline.postprocess`, it sees every partition's river cases and every
tile's GLAKES rasters once and keeps only the best candidate of each panel, so the choice costs no
memory beyond the views it keeps.

Fig. 3
    Per case the largest polygon of 0.02-1 km2 (it shows both the lake and the river at figure scale);
    without one, the polygon closest to that range. The view is the polygon with a quarter of its size
    around it, or 2 km around a point inside a river-long polygon (over 2 km across).
Fig. 4
    ``split``: the lake split into most pieces (glued lakes separated). ``removed``: among lakes of at
    least 400 pixels that lost 20-90 % of them, the one that lost most pixels (flood water and paddies
    cut off while the lake stays); without such a lake, the one that lost most pixels. The two come
    from two tiles where two tiles have candidates, and are two different lakes always (paper: two
    places).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import shapely

from lakepaper.postprocess.partitions import MaskTile, Partition
from lakepaper.postprocess.pipeline import FloodMasked, Observer
from lakepaper.postprocess.rules import RuleResult


class FigureExamples(Observer):
    """The examples of Fig. 3 (:attr:`fig3`, by case) and Fig. 4 (:attr:`fig4`, ``split`` and ``removed``),
    as :func:`lakepaper.figures.postprocess.fig3` and :func:`~lakepaper.figures.postprocess.fig4` take them."""

    def __init__(self) -> None:
        self.fig3: dict[str, dict] = {}
        self._fig4: dict[str, dict[str, dict]] = {}  # tile -> its candidates

    def river_cut(self, part: Partition, river: RuleResult, context: Mapping[str, Any]) -> None:
        pick_fig3(self.fig3, part, river, context)

    def glakes_masked(self, masked: FloodMasked) -> None:
        found = fig4_candidates(masked)
        if found:
            self._fig4[masked.tile.name] = found

    @property
    def fig4(self) -> dict[str, dict]:
        """``split`` and ``removed``, at two different places: ``removed`` comes from another tile than
        ``split`` where one has a candidate (on one tile, :func:`fig4_candidates` already picks two lakes)."""
        return pick_fig4(self._fig4)


def pick_fig4(by_tile: Mapping[str, Mapping[str, dict]]) -> dict[str, dict]:
    """The best ``split`` of all tiles, and the best ``removed`` of the other tiles (of its own if no other has one)."""
    out: dict[str, dict] = {}
    splits = [(v["split"]["rank"], t) for t, v in by_tile.items() if "split" in v]
    if splits:
        out["split"] = by_tile[max(splits)[1]]["split"]
    removed = [(v["removed"]["rank"], t) for t, v in by_tile.items() if "removed" in v]
    elsewhere = [r for r in removed if "split" not in out or r[1] != out["split"]["tile"]]
    if elsewhere or removed:
        out["removed"] = by_tile[max(elsewhere or removed)[1]]["removed"]
    return out


def pick_fig3(best: dict, part: Partition, rr: RuleResult, context: Mapping[str, Any]) -> None:
    """Keep in ``best``, per case, the largest polygon the river mask cut on this partition if it beats the one
    kept, with what Fig. 3 draws around it (the river mask, GLAKES, the view)."""
    cases = rr.extra["cases"]
    if not len(cases):
        return
    after = rr.extra["after"]
    area = shapely.area(np.asarray(cases.geometry.values, dtype=object))
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


def fig4_candidates(m: FloodMasked) -> dict[str, dict]:
    """The Fig. 4 candidates of one tile: the GLAKES lake the floodplain mask split into most pieces
    (``split``) and the one it removed most pixels of while keeping part of it (``removed``)."""
    ids, after, fmask, tile = m.ids, m.after, m.fmask, m.tile
    n_before, n_removed, n_pieces = m.n_before, m.n_removed, m.n_pieces
    t = tile.core_transform
    out: dict[str, dict] = {}
    if fmask is None or not (n_before > 0).any():
        return out
    split = int(np.argmax(n_pieces))
    share = np.where(n_before > 0, n_removed / np.maximum(n_before, 1), 0)
    # the lake that lost most pixels while keeping part of itself (false flood water or paddies cut off),
    # another lake than the split one where there is one, so that the two panels show two places
    partial = (n_before >= 400) & (share >= 0.2) & (share <= 0.9)
    lost = np.asarray(n_removed, float).copy()
    if n_pieces[split] > 1 and (lost > 0).sum() > 1:
        lost[split] = -1
        partial[split] = False
    cut = int(np.argmax(np.where(partial, lost, -1))) if partial.any() else int(np.argmax(lost))
    if n_pieces[split] > 1:
        out["split"] = _fig4_view(ids, after, fmask, split, t, tile, score=float(n_pieces[split]))
    if np.max(n_removed) > 0:
        out["removed"] = _fig4_view(
            ids,
            after,
            fmask,
            cut,
            t,
            tile,
            score=float(share[cut]),
            rank=float(n_removed[cut]) + (1e9 if partial.any() else 0),
        )
    return out


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
