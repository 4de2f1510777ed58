"""What each rule did, against the truth of the simulated world; Table 2; lake-level accuracy per size group.

Everything is scored on the prediction's pixels: the polygons of a step are burnt back onto each
tile's core grid (pixel centres, :func:`~lakepaper.postprocess.vectorize.burn`), and pixels where the
prediction had no data are left out.

Truth classes (:func:`truth_classes`)
    Each pixel of a tile is one of :data:`CLASSES`: ``lake`` (a truth lake at its typical extent, not
    a lagoon), ``lagoon`` (the paper leaves lagoons out, so they count against precision), ``ocean``,
    ``river``, ``paddy`` and ``land`` (everything else), in that priority.
Detected lakes
    A truth lake is *detected* by a step when at least half of its pixels are lake in that step
    (:data:`DETECTED`). A rule *kept* a lake detected before and after it, *lost* one detected only
    before, and *gained* one detected only after. Lakes below the product's minimum area are counted
    apart (``small``): the product drops them on purpose.
Removed polygons (:func:`removed_classes`)
    Every polygon a rule deleted whole is given the truth class of most of its pixels, so "the river
    rule deleted 40 polygons, 38 of them river" is a count, not a picture.
Lake level (:func:`lake_level`)
    Per truth lake (lagoons excluded): recall = share of its pixels inside the product; per product lake:
    precision = share of its pixels on truth lakes. Means per size group (``params.size_groups_km2``, as
    :func:`lakepaper.metrics.by_size_group`), grouped by truth area and product area respectively, like
    the paper's Fig. 5b.
Table 2 (:func:`table2`)
    Pixel recall, precision, F1 and IoU over the test regions of stage 02 against their labels, pooled,
    before and after the river rule (before = after the ocean rule), with the change; the same for
    every step in :func:`step_scores_regions`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from lakepaper import io, metrics, regions, scoring
from lakepaper.errors import InputError
from lakepaper.postprocess.partitions import NODATA, MaskTile, Partition, read_core
from lakepaper.postprocess.vectorize import burn
from lakepaper.truth import Truth

CLASSES = ("land", "lake", "lagoon", "ocean", "river", "paddy")
DETECTED = 0.5


def truth_classes(world: Truth, tile: MaskTile, lakes: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(class codes index into :data:`CLASSES`, truth lake ids with lagoons set to 0) on the tile's core grid."""
    ids, meta = io.read_raster(world.truth_path(tile.name, "lake_id"))
    masks, mmeta = io.read_raster(world.truth_path(tile.name, "masks"))
    if meta["transform"] != tile.transform or ids.shape[1:] != tile.shape:
        raise InputError(world.truth_path(tile.name, "lake_id"), "truth grid differs from the prediction's grid")
    win = (
        slice(tile.core.row_off, tile.core.row_off + tile.core.height),
        slice(tile.core.col_off, tile.core.col_off + tile.core.width),
    )
    ids = ids[0][win]
    band = {n: masks[i][win].astype(bool) for i, n in enumerate(mmeta["band_names"])}
    lagoon_ids = lakes.loc[lakes["type"] == "lagoon", "lake_id"].to_numpy()
    lagoon = np.isin(ids, lagoon_ids) & (ids > 0)
    cls = np.zeros(ids.shape, np.uint8)
    for code, sel in (
        (5, band["paddy"]),
        (4, band["river"]),
        (3, band["ocean"]),
        (2, lagoon),
        (1, (ids > 0) & ~lagoon),
    ):
        cls[sel & (cls == 0)] = code
    return cls, np.where(lagoon, 0, ids).astype(np.int64)


def _world_lakes(world: Truth) -> pd.DataFrame:
    return pd.read_parquet(world.lakes_path, columns=["lake_id", "tile", "type", "area_km2"])


def step_effects(
    steps: Mapping[str, Sequence[Partition]],
    tiles: Sequence[MaskTile],
    world: Truth,
    *,
    min_km2: float,
    arid_tiles: Sequence[str] = (),
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per step: lake pixels by truth class, and truth lakes detected; per step change: lakes kept/lost/gained.

    Returns:
        (pixels: one row per step, columns the classes (lake pixels of the step on each truth class), tp, fp, fn,
        recall, precision; lakes: one row per step with detected counts, and per transition kept / lost /
        gained, over all tiles and over ``arid_tiles``).
    """
    lakes = _world_lakes(world)
    names = list(steps)
    px = {s: np.zeros(len(CLASSES), np.int64) for s in names}
    fn = dict.fromkeys(names, 0)
    detected: dict[str, list[np.ndarray]] = {s: [] for s in names}
    big_all, arid_all = [], []
    for t in tiles:
        cls, ids = truth_classes(world, t, lakes)
        seen = read_core(t) != NODATA
        n_lake = int(ids.max(initial=0)) + 1
        size = np.bincount(ids[seen].ravel(), minlength=n_lake)
        present = np.flatnonzero(size[1:] > 0) + 1
        area = lakes.set_index("lake_id").reindex(present)["area_km2"].to_numpy()
        big_all.append(area >= min_km2)
        arid_all.append(np.full(len(present), t.name in set(arid_tiles)))
        for s in names:
            pred, _ = burn(steps[s], t)
            on = (pred == 1) & seen
            px[s] += np.bincount(cls[on].ravel(), minlength=len(CLASSES))
            fn[s] += int(((cls == 1) & ~on & seen).sum())
            hit = np.bincount(ids[on].ravel(), minlength=n_lake)
            detected[s].append(hit[present] >= DETECTED * size[present])
    big = np.concatenate(big_all) if big_all else np.zeros(0, bool)
    arid = np.concatenate(arid_all) if arid_all else np.zeros(0, bool)
    rows = []
    for s in names:
        tp, fp = int(px[s][1]), int(px[s].sum() - px[s][1])
        row = {"step": s, **{c: int(v) for c, v in zip(CLASSES, px[s], strict=True)}, "tp": tp, "fp": fp, "fn": fn[s]}
        row.update(scoring.scores(tp, fp, fn[s]))
        rows.append(row)
    pixels = pd.DataFrame(rows).set_index("step")
    lrows = []
    prev = None
    for s in names:
        d = np.concatenate(detected[s]) if detected[s] else np.zeros(0, bool)
        row = {
            "step": s,
            "truth_lakes": int(big.sum()),
            "detected": int((d & big).sum()),
            "detected_small": int((d & ~big).sum()),
            "arid_truth_lakes": int((big & arid).sum()),
            "arid_detected": int((d & big & arid).sum()),
        }
        if prev is not None:
            row.update(
                kept=int((prev & d & big).sum()),
                lost=int((prev & ~d & big).sum()),
                gained=int((~prev & d & big).sum()),
                arid_gained=int((~prev & d & big & arid).sum()),
                lost_small=int((prev & ~d & ~big).sum()),
            )
        prev = d
        lrows.append(row)
    return pixels, pd.DataFrame(lrows).set_index("step")


def removed_classes(
    removed: Mapping[str, Sequence[Partition]], tiles: Sequence[MaskTile], world: Truth
) -> pd.DataFrame:
    """Polygons each rule deleted whole, by the truth class of most of their pixels (rows: rule and reason)."""
    lakes = _world_lakes(world)
    counts: dict[tuple[str, str], np.ndarray] = {}
    for t in tiles:
        cls, _ = truth_classes(world, t, lakes)
        for rule, parts in removed.items():
            if not parts:
                continue
            ids, owners = burn(parts, t, index=True)
            if not owners:
                continue
            n = len(owners) + 1
            table = np.bincount(ids.ravel() * len(CLASSES) + cls.ravel(), minlength=n * len(CLASSES))
            table = table.reshape(n, len(CLASSES))[1:]
            has = table.sum(axis=1) > 0
            major = np.argmax(table, axis=1)
            for (k, r), ok, m in zip(owners, has, major, strict=True):
                if not ok:
                    continue
                reason = str(parts[k].frame["reason"].iloc[r])
                counts.setdefault((rule, reason), np.zeros(len(CLASSES), np.int64))[m] += 1
    rows = [
        {"rule": r, "reason": why, **dict(zip(CLASSES, v.tolist(), strict=True)), "polygons": int(v.sum())}
        for (r, why), v in counts.items()
    ]
    if not rows:
        return pd.DataFrame(columns=["rule", "reason", *CLASSES, "polygons"])
    return pd.DataFrame(rows).set_index(["rule", "reason"])


def effects_on_truth(
    steps: Mapping[str, Sequence[Partition]],
    removed: Mapping[str, Sequence[Partition]],
    tiles: Sequence[MaskTile],
    world: Truth,
    *,
    min_km2: float,
    aridity_threshold: float,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """What each rule did on the simulated world: the (pixels, lakes) tables of :func:`step_effects`, the lakes
    of the world's arid tiles (aridity index below ``aridity_threshold``) counted apart, and the polygons each
    rule deleted whole by truth class (:func:`removed_classes`)."""
    table = world.tiles()
    arid_tiles = table.loc[table["aridity"] < aridity_threshold, "tile"].tolist()
    pixels, lakes = step_effects(steps, tiles, world, min_km2=min_km2, arid_tiles=arid_tiles)
    return pixels, lakes, removed_classes(removed, tiles, world)


def lake_level(
    final: Sequence[Partition],
    tiles: Sequence[MaskTile],
    world: Truth,
    edges: Sequence[float],
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Recall of truth lakes and precision of product lakes, per lake and per size group (see the module docstring).

    Args:
        final: the product's partitions (:attr:`~lakepaper.postprocess.pipeline.Postprocessed.steps` ``["final"]``).

    Returns:
        (truth table: tile, lake_id, area_km2, recall; product table: partition, row, area_km2 (its pixels),
        precision; summary per size group: truth lakes, mean recall, product lakes, mean precision).
    """
    lakes = _world_lakes(world)
    trows, prows = [], []
    for t in tiles:
        _, ids = truth_classes(world, t, lakes)
        seen = read_core(t) != NODATA
        pix_km2 = t.res * t.res / 1e6
        pid, owners = burn(final, t, index=True)
        on = (pid > 0) & seen
        n_lake = int(ids.max(initial=0)) + 1
        size = np.bincount(ids[seen].ravel(), minlength=n_lake)
        hit = np.bincount(ids[on].ravel(), minlength=n_lake)
        present = np.flatnonzero(size[1:] > 0) + 1
        area = lakes.set_index("lake_id").reindex(present)["area_km2"].to_numpy()
        trows.append(
            pd.DataFrame({"tile": t.name, "lake_id": present, "area_km2": area, "recall": hit[present] / size[present]})
        )
        if owners:
            n = len(owners) + 1
            psize = np.bincount(pid[seen].ravel(), minlength=n)[1:]
            ptp = np.bincount(pid[seen & (ids > 0)].ravel(), minlength=n)[1:]
            # a lake reaching into another tile is scored on each tile's pixels; its rows are summed below
            prows.append(
                pd.DataFrame({"tile": t.name, "owner": owners, "pixels": psize, "tp": ptp, "pix_km2": pix_km2})
            )
    truth = (
        pd.concat(trows, ignore_index=True)
        if trows
        else pd.DataFrame(columns=["tile", "lake_id", "area_km2", "recall"])
    )
    if prows:
        pr = pd.concat(prows, ignore_index=True)
        pr = pr.groupby("owner", sort=True).agg(
            pixels=("pixels", "sum"), tp=("tp", "sum"), pix_km2=("pix_km2", "first")
        )
        pr = pr[pr.pixels > 0]
        pred = pd.DataFrame(
            {
                "partition": [o[0] for o in pr.index],
                "row": [o[1] for o in pr.index],
                "area_km2": pr.pixels * pr.pix_km2,
                "precision": pr.tp / pr.pixels,
            }
        )
    else:
        pred = pd.DataFrame(columns=["partition", "row", "area_km2", "precision"])
    r = metrics.by_size_group(truth["area_km2"], truth["recall"], edges)
    p = metrics.by_size_group(pred["area_km2"], pred["precision"], edges)
    summary = pd.DataFrame(
        {"truth_lakes": r["n"], "mean_recall": r["mean"], "product_lakes": p["n"], "mean_precision": p["mean"]}
    )
    return truth, pred, summary


def step_scores_regions(
    steps: Mapping[str, Sequence[Partition]],
    tiles: Sequence[MaskTile],
    samples_dir: str | os.PathLike[str],
    *,
    split: str = "test",
    world: Truth | None = None,
) -> pd.DataFrame:
    """Pixel scores of every step over the regions of ``split`` against their labels (or, with ``world``, the
    truth lakes without lagoons), pooled; rows: steps."""
    by_tile = {t.name: t for t in tiles}
    lakes = _world_lakes(world) if world is not None else None
    totals = {s: {"tp": 0, "fp": 0, "fn": 0} for s in steps}
    n = 0
    for name, group in regions.by_tile(samples_dir, split):
        t = by_tile.get(name)
        if t is None:
            continue
        full = np.full(t.shape, NODATA, np.uint8)
        win = (
            slice(t.core.row_off, t.core.row_off + t.core.height),
            slice(t.core.col_off, t.core.col_off + t.core.width),
        )
        seen = read_core(t) != NODATA
        truth = None
        if lakes is not None:
            _, ids = truth_classes(world, t, lakes)
            truth = np.zeros(t.shape, np.uint8)
            truth[win] = ids > 0
        burnt = {}
        for s in steps:
            b, _ = burn(steps[s], t)
            f = full.copy()
            f[win] = np.where(seen, b, NODATA)
            burnt[s] = f
        for r in group.itertuples():
            if truth is None:  # a label chip: pixels never observed (LABEL_NODATA) are left out
                label, observed = regions.read_label(samples_dir, r)
            else:
                label, observed = regions.cut(truth, r, name), None
            n += 1
            for s in steps:
                c = scoring.confusion(label, regions.cut(burnt[s], r, name), nodata=NODATA, valid=observed)
                totals[s] = scoring.add(totals[s], c, keys=("tp", "fp", "fn"))
    rows = []
    for s, c in totals.items():
        rows.append({"step": s, "regions": n, **c, **scoring.scores_of(c)})
    return pd.DataFrame(rows).set_index("step")


def table2(scores: pd.DataFrame, before: str = "ocean", after: str = "river") -> pd.DataFrame:
    """Table 2 from :func:`step_scores_regions`: scores before and after the river rule and the change (x 100, %)."""
    t = metrics.mask_change(
        scores.loc[before, ["tp", "fp", "fn"]].to_dict(), scores.loc[after, ["tp", "fp", "fn"]].to_dict()
    )
    return (t.astype(float) * 100).round(2)
