"""Accuracy of a lake map against labels: patch level (Table 1), lake level (Fig. 5), river mask (Table 2).

Paper section 3.1. Everything here works on plain arrays, so it scores any binary lake map against any
binary label, not only this pipeline's; :mod:`lakepaper.regions` reads the pipeline's files into
:class:`Region` objects.

Conventions
-----------
Pixels and scores
    Those of :mod:`lakepaper.scoring` (the one place they are computed): labels ``uint8`` 0/1,
    predictions 1 = lake, 0 = not lake, ``NODATA`` (255) = no prediction, left out of every count
    (reported as ``nodata``); recall, precision, F1 and IoU from pooled confusion counts, **NaN**
    where a denominator is 0 (scikit-learn's ``zero_division=np.nan``).

Patches (:func:`patch_windows`, :func:`patch_table`)
    "2424 patches of 576 x 576 taken sequentially from the test regions": each region is cut into
    ``size`` x ``size`` windows from its top-left corner, row by row. Where the region's height or width
    is not a multiple of ``size``, the partial edge strip is handled by ``partial``:

    ``"shift"`` (default)
        the last window of a row (column) is shifted back to end at the region's border, so every
        window is a full ``size`` x ``size`` patch the model could have seen; the pixels it shares with
        the window before it are counted only once, in the earlier window. Every pixel of the region is
        counted exactly once, so the pooled scores are those of the whole regions.
    ``"drop"``
        partial edge strips are left out (only whole windows are scored).

    A region smaller than ``size`` in a direction is taken whole in that direction (one window as
    tall or as wide as the region), in both modes. Table 1 pools the counts over the windows of every
    region of a type, and over every region (row ``all``).

River mask (:func:`river_mask_change`)
    Table 2: the counts of the test regions pooled before and after the pixels the river mask
    removed are set to "not lake" in the prediction, and the change of each score.

Lakes (:func:`lake_overlap`)
    Labelled lakes are the connected components of the label and predicted lakes those of the
    prediction (or, for a vector product, the polygons burnt into an id raster), with **4-connectivity**
    by default (pixels sharing an edge), as ``rasterio.features.shapes`` vectorises the masks in this
    project; ``connectivity=8`` is available. A labelled lake's *true predicted area* is the area of its
    pixels predicted lake; a predicted lake's is the area of its pixels labelled lake. Pixels without a
    prediction count in neither area. Lakes cut by a region's border keep only their part inside it.

Fits (:func:`fit_line`)
    Least squares of true predicted area (y) on lake area (x), with an intercept (OLS) or through the
    origin; R2 = 1 - SS_res / SS_tot with SS_tot about the mean of y in both cases (for OLS it equals
    Pearson's r squared). The paper reports R2 = 0.98 and slopes > 0.92 without saying which; the
    notebook shows both.

Size groups (:func:`size_group_labels`, :func:`by_size_group`)
    Intervals closed on the left, [lo, hi): with Fig. 7's edges (0.005, 0.01, 0.03, 0.1, 1, 100,
    10000) the groups are < 0.005, 0.005-0.01, ..., 100-10000 and >= 10000 km2. Fig. 5b has groups of
    its own (``params.lake_size_groups_km2``: < 0.001, 0.001-0.005, 0.005-0.01, 0.01-0.1, 0.1-1, 1-20 and
    >= 20 km2): the text names [0.1-1] and [1-20] km2 (mean recall 95.5 % and 93.1 %) and groups below
    0.005 km2, counted before the minimum-area filter, whose scores below 85 % set that filter. The paper's
    lake-level headline is the lowest mean recall or precision of the groups from 0.005 km2 up
    (:func:`lowest_lake_level_score`); :func:`group_score` reads one group's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage

from lakepaper import scoring
from lakepaper.errors import InputError, ParameterError
from lakepaper.scoring import COUNTS, NODATA, SCORES, confusion, scores

PARTIAL = ("shift", "drop")


@dataclass(frozen=True)
class Region:
    """One test region: its label and the prediction on the same pixels (and, from files, their grid)."""

    region_id: str
    region_type: str
    label: np.ndarray  # (rows, cols) uint8 0/1
    pred: np.ndarray  # (rows, cols) uint8 0/1, NODATA = no prediction
    pixel_km2: float = 1e-4  # 10 m pixels
    crs: object | None = None  # CRS of the pixel grid (needed only to burn polygons in, lakepaper.regions.burn)
    transform: object | None = None  # its affine transform


# --- pooling (Table 1) ------------------------------------------------------------------------------


def _sizes(g: pd.DataFrame) -> dict[str, int]:
    """How many regions (distinct ``region_id``) and patches (rows with a ``patch``) a group holds."""
    row = {}
    if "region_id" in g:
        row["regions"] = int(g["region_id"].nunique())
    if "patch" in g:
        row["patches"] = len(g)
    return row


def pooled(counts: pd.DataFrame, by: str | None = "region_type", *, order: Sequence[str] | None = None) -> pd.DataFrame:
    """Scores of counts pooled per ``by`` and over all rows (row ``all``): :func:`lakepaper.scoring.pooled`.

    Args:
        counts: rows with columns tp, fp, fn (and any of tn, nodata, region_id, patch ...).
        by: column to group by; None: only the ``all`` row.
        order: order of the groups in the result (default: sorted); groups absent from ``counts`` are
            listed with zero counts and NaN scores.

    Returns:
        One row per group plus ``all``: regions and patches (when the columns exist), the summed counts
        and recall, precision, f1, iou.
    """
    return scoring.pooled(counts, by, order=order, describe=_sizes)


# --- patches (Table 1) -------------------------------------------------------------------------------


def _starts(n: int, size: int, partial: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Window starts along one axis, and the [own_start, own_end) each window is counted on."""
    if n <= size:
        return np.array([0]), np.array([0]), np.array([n])
    full = n // size
    own0 = np.arange(full) * size
    own1 = own0 + size
    starts = own0.copy()
    if n % size and partial == "shift":
        starts = np.append(starts, n - size)
        own0, own1 = np.append(own0, full * size), np.append(own1, n)
    return starts, own0, own1


def patch_windows(height: int, width: int, size: int, *, partial: str = "shift") -> pd.DataFrame:
    """The sequential patches of a ``height`` x ``width`` region, row by row (see the module docstring).

    Returns:
        One row per patch: ``row, col, height, width`` of the window the model sees and
        ``own_row, own_col, own_height, own_width`` of the pixels it is counted on (equal to the window
        except for a window shifted back at the border).

    Example:
        >>> patch_windows(300, 128, 128)[["row", "height", "own_row", "own_height"]].to_numpy().tolist()
        [[0, 128, 0, 128], [128, 128, 128, 128], [172, 128, 256, 44]]
    """
    if size < 1:
        raise ParameterError("patch_size", f"must be >= 1, got {size}")
    if partial not in PARTIAL:
        raise ParameterError("partial", f"expected one of {PARTIAL}, got {partial!r}")
    if height < 1 or width < 1:
        return pd.DataFrame(columns=["row", "col", "height", "width", "own_row", "own_col", "own_height", "own_width"])
    rs, r0, r1 = _starts(height, size, partial)
    cs, c0, c1 = _starts(width, size, partial)
    ri, ci = np.repeat(np.arange(len(rs)), len(cs)), np.tile(np.arange(len(cs)), len(rs))
    return pd.DataFrame(
        {
            "row": rs[ri],
            "col": cs[ci],
            "height": np.full(len(ri), min(size, height)),
            "width": np.full(len(ri), min(size, width)),
            "own_row": r0[ri],
            "own_col": c0[ci],
            "own_height": (r1 - r0)[ri],
            "own_width": (c1 - c0)[ci],
        }
    )


def patch_counts(
    label: np.ndarray, pred: np.ndarray, size: int, *, partial: str = "shift", nodata: int | None = NODATA
) -> pd.DataFrame:
    """Confusion counts of every sequential patch of one region (the windows of :func:`patch_windows`).

    Each pixel is counted in the patch that owns it, so summing the rows gives :func:`confusion` of the
    whole region (``partial="shift"``) or of the part covered by whole windows (``"drop"``).
    """
    scoring.check_pair(label, pred, ndim=2)
    h, w = np.shape(label)
    win = patch_windows(h, w, size, partial=partial)
    code = scoring.codes(label, pred, nodata=nodata)
    # every pixel gets the index of the patch that owns it (-1: dropped strip), then one bincount
    row_of = np.full(h, -1)
    col_of = np.full(w, -1)
    rows = win.drop_duplicates("own_row")
    cols = win.drop_duplicates("own_col")
    for i, (a, n) in enumerate(zip(rows.own_row, rows.own_height, strict=True)):
        row_of[a : a + n] = i
    for j, (a, n) in enumerate(zip(cols.own_col, cols.own_width, strict=True)):
        col_of[a : a + n] = j
    ncol = len(cols)
    owner = row_of[:, None] * ncol + col_of[None, :]
    keep = (row_of[:, None] >= 0) & (col_of[None, :] >= 0)
    flat = np.bincount((owner[keep] * 5 + code[keep]).ravel(), minlength=len(win) * 5).reshape(len(win), 5)
    out = win.copy()
    out.insert(0, "patch", np.arange(len(win)))
    for k, c in enumerate(COUNTS):
        out[c] = flat[:, k]
    return out


def patch_table(
    regions: Iterable[Region],
    size: int,
    *,
    partial: str = "shift",
    nodata: int | None = NODATA,
    order: Sequence[str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Table 1: pooled patch-level scores per region type and overall.

    Args:
        regions: the test regions (label and prediction on the same pixels).
        size: patch side in pixels (the paper's 576; ``params.patch_size``).
        partial: how partial edge strips are handled, ``"shift"`` or ``"drop"`` (module docstring).
        order: order of the region types in the table (e.g. ``params.region_types``).

    Returns:
        (patches, table): one row per patch (region_id, region_type, window, counts and its own
        scores), and the pooled table (:func:`pooled`) indexed by region type plus ``all``.
    """
    parts = []
    for r in regions:
        pc = patch_counts(r.label, r.pred, size, partial=partial, nodata=nodata)
        pc.insert(0, "region_type", r.region_type)
        pc.insert(0, "region_id", r.region_id)
        parts.append(pc)
    if not parts:
        raise InputError("regions", "no test regions to score")
    patches = pd.concat(parts, ignore_index=True)
    for k, v in scores(patches.tp, patches.fp, patches.fn).items():
        patches[k] = v
    return patches, pooled(patches, "region_type", order=order)


#: Prefix of the stitched columns of :func:`table1_beside_stitched`.
STITCHED = "stitched "


def table1_beside_stitched(
    isolated: pd.DataFrame | None, stitched: pd.DataFrame, *, order: Sequence[str] | None = None
) -> pd.DataFrame:
    """Table 1 as the paper defines it, with the stitched scores beside it.

    Args:
        isolated: the paper's Table 1: the model on isolated patches of the test regions, pixels pooled per
            region type and over all (stage 03's ``test_metrics.csv``, indexed by region type plus ``all``);
            None where there is none (its columns are then NaN).
        stitched: the same regions cut from the stitched, seamless prediction (:func:`patch_table`).
        order: order of the rows (default: ``stitched``'s).

    Returns:
        Per region type and ``all``: ``regions``, ``patches``, recall, precision, f1, iou of the isolated
        patches; the stitched ones prefixed :data:`STITCHED`; and ``iou gain (pp)``, the stitched IoU minus the
        isolated one in percentage points (what seamless inference adds).
    """
    rows = list(order) + ["all"] if order is not None else list(stitched.index)
    cols = ["regions", "patches", *SCORES]
    iso = (isolated if isolated is not None else pd.DataFrame(columns=cols)).reindex(index=rows, columns=cols)
    if isolated is None:  # the sizes of the table are those of the stitched cut
        iso[["regions", "patches"]] = stitched.reindex(rows)[["regions", "patches"]].to_numpy()
    st = stitched.reindex(index=rows, columns=list(SCORES)).add_prefix(STITCHED)
    out = pd.concat([iso.astype({c: float for c in SCORES}), st.astype(float)], axis=1)
    out["iou gain (pp)"] = 100 * (out[STITCHED + "iou"] - out["iou"])
    return out


def mask_change(before: Mapping[str, int], after: Mapping[str, int]) -> pd.DataFrame:
    """Table 2: scores before and after a step that removes predicted pixels (the river mask).

    Args:
        before, after: pooled confusion counts (tp, fp, fn) over the same pixels.

    Returns:
        Rows ``before``, ``after`` and ``change`` (after - before, in the scores' units) with columns
        recall, precision, f1, iou.
    """
    b = scoring.scores_of(before)
    a = scoring.scores_of(after)
    return pd.DataFrame({"before": b, "after": a, "change": {k: a[k] - b[k] for k in SCORES}}).T


def river_mask_change(
    regions: Iterable[Region], removed: Mapping[str, np.ndarray], *, nodata: int | None = NODATA
) -> tuple[pd.DataFrame, int]:
    """Table 2: the regions' pooled scores before and after the river mask removed predicted lake pixels.

    Args:
        regions: the test regions (label and prediction, as stage 04 predicted them).
        removed: region_id -> boolean mask of the pixels the river mask removed (stage 05's residue,
            :func:`lakepaper.regions.read_residue`); predicted lake there counts as not lake after.

    Returns:
        (:func:`mask_change` of the pooled counts: rows before, after, change; the number of predicted
        lake pixels removed in the regions).
    """
    before: dict[str, int] = {}
    after: dict[str, int] = {}
    n_removed = 0
    for r in regions:
        gone = removed[r.region_id] & (r.pred == 1)
        masked = np.where(gone, 0, r.pred).astype(np.uint8)
        before = scoring.add(before, confusion(r.label, r.pred, nodata=nodata))
        after = scoring.add(after, confusion(r.label, masked, nodata=nodata))
        n_removed += int(gone.sum())
    if not before:
        raise InputError("regions", "no test regions to score")
    return mask_change(before, after), n_removed


# --- lakes (Fig. 5) ----------------------------------------------------------------------------------


def components(mask: np.ndarray, *, connectivity: int = 4) -> tuple[np.ndarray, int]:
    """Connected components of a boolean mask: (int32 ids, 0 = background, 1..n; n)."""
    if connectivity not in (4, 8):
        raise ParameterError("connectivity", f"must be 4 or 8, got {connectivity}")
    structure = ndimage.generate_binary_structure(2, 1 if connectivity == 4 else 2)
    ids, n = ndimage.label(np.asarray(mask, dtype=bool), structure=structure)
    return ids.astype(np.int32), int(n)


def lake_overlap(
    label: np.ndarray,
    pred: np.ndarray,
    *,
    pixel_km2: float = 1e-4,
    nodata: int | None = NODATA,
    connectivity: int = 4,
    pred_ids: np.ndarray | None = None,
    residue: np.ndarray | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per labelled lake and per predicted lake: area and true predicted area (Fig. 5a).

    Args:
        label: 0/1 label.
        pred: 1 lake, 0 not, ``nodata`` no prediction.
        pixel_km2: area of one pixel (1e-4 for 10 m pixels).
        connectivity: 4 or 8, for the components of label and prediction.
        pred_ids: optional integer raster of predicted lakes (e.g. product polygons burnt in, 0 = none);
            default: the components of ``pred == 1``.
        residue: optional boolean raster of pixels removed as river residue; a predicted lake of which
            at least half the pixels are residue is flagged ``river_residue``.

    Returns:
        (labelled, predicted): ``lake`` (component id), ``pixels``, ``area_km2``, ``overlap_km2`` (true
        predicted area) and ``recall`` (labelled) or ``precision`` (predicted, plus ``river_residue``).
        Lakes without a single predicted pixel (all no data) are left out.
    """
    scoring.check_pair(label, pred, ndim=2)
    lab = np.asarray(label).astype(bool)
    pred = np.asarray(pred)
    seen = pred != nodata if nodata is not None else np.ones(lab.shape, bool)
    pos = (pred == 1) & seen
    lab_ids, n_lab = components(lab, connectivity=connectivity)
    if pred_ids is None:
        pred_ids, n_pred = components(pos, connectivity=connectivity)
    else:
        pred_ids = np.asarray(pred_ids)
        if pred_ids.shape != lab.shape:
            raise InputError("pred_ids", f"shape {pred_ids.shape} differs from the label's {lab.shape}")
        pred_ids = np.where(seen, pred_ids, 0)
        n_pred = int(pred_ids.max(initial=0))

    def table(ids: np.ndarray, n: int, hit: np.ndarray, score: str) -> pd.DataFrame:
        s = seen.ravel()
        flat = ids.ravel()[s]
        pixels = np.bincount(flat, minlength=n + 1)[1:]
        overlap = np.bincount(flat, weights=hit.ravel()[s].astype(float), minlength=n + 1)[1:]
        out = pd.DataFrame({"lake": np.arange(1, n + 1), "pixels": pixels})
        out["area_km2"] = pixels * pixel_km2
        out["overlap_km2"] = overlap * pixel_km2
        with np.errstate(invalid="ignore", divide="ignore"):
            out[score] = overlap / pixels
        return out[out.pixels > 0].reset_index(drop=True)

    labelled = table(lab_ids, n_lab, pos, "recall")
    predicted = table(pred_ids, n_pred, lab, "precision")
    if residue is not None:
        residue = np.asarray(residue, dtype=bool)
        if residue.shape != lab.shape:
            raise InputError("residue", f"shape {residue.shape} differs from the label's {lab.shape}")
        s = seen.ravel()
        rpix = np.bincount(pred_ids.ravel()[s], weights=residue.ravel()[s].astype(float), minlength=n_pred + 1)
        predicted["river_residue"] = rpix[predicted.lake.to_numpy()] >= 0.5 * predicted.pixels.to_numpy()
    else:
        predicted["river_residue"] = False
    return labelled, predicted


def lake_tables(
    regions: Iterable[Region],
    *,
    connectivity: int = 4,
    nodata: int | None = NODATA,
    residues: Mapping[str, np.ndarray] | None = None,
    pred_ids: Mapping[str, np.ndarray] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`lake_overlap` over many regions, with ``region_id`` and ``region_type`` columns.

    Args:
        residues: region_id -> river-residue mask (optional, per region).
        pred_ids: region_id -> id raster of predicted lakes (optional, per region).
    """
    labs, preds = [], []
    for r in regions:
        lab, pre = lake_overlap(
            r.label,
            r.pred,
            pixel_km2=r.pixel_km2,
            nodata=nodata,
            connectivity=connectivity,
            residue=(residues or {}).get(r.region_id),
            pred_ids=(pred_ids or {}).get(r.region_id),
        )
        for t in (lab, pre):
            t.insert(0, "region_type", r.region_type)
            t.insert(0, "region_id", r.region_id)
        labs.append(lab)
        preds.append(pre)
    if not labs:
        raise InputError("regions", "no regions to score")
    return pd.concat(labs, ignore_index=True), pd.concat(preds, ignore_index=True)


def fit_line(x, y, *, through_origin: bool = False) -> dict[str, float]:
    """Least-squares line of y on x: slope, intercept (0 through the origin), R2 and n.

    R2 = 1 - SS_res / SS_tot, SS_tot about the mean of y (NaN with fewer than 2 points or constant y).

    Example:
        >>> fit_line([1, 2, 3], [2, 4, 6])["slope"], fit_line([1, 2, 3], [2, 4, 6], through_origin=True)["r2"]
        (2.0, 1.0)
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    n = len(x)
    nan = {"slope": np.nan, "intercept": np.nan, "r2": np.nan, "n": n}
    if n < 2:
        return nan
    if through_origin:
        sxx = float(x @ x)
        if sxx == 0:
            return nan
        slope, intercept = float(x @ y) / sxx, 0.0
    else:
        dx = x - x.mean()
        sxx = float(dx @ dx)
        if sxx == 0:
            return nan
        slope = float(dx @ (y - y.mean())) / sxx
        intercept = float(y.mean() - slope * x.mean())
    res = y - (slope * x + intercept)
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float(res @ res) / ss_tot if ss_tot > 0 else np.nan
    return {"slope": slope, "intercept": intercept, "r2": r2, "n": n}


def size_group_labels(edges: Sequence[float], *, below: bool = True) -> list[str]:
    """Names of the size groups of ``edges`` (km2): ``<0.005``, ``0.005-0.01``, ..., ``>=10000``."""
    edges = list(edges)
    if any(b <= a for a, b in zip(edges, edges[1:], strict=False)) or not edges:
        raise ParameterError("size_groups_km2", f"edges must be increasing, got {edges}")
    names = [f"{_fmt(a)}-{_fmt(b)}" for a, b in zip(edges, edges[1:], strict=False)] + [f">={_fmt(edges[-1])}"]
    return ([f"<{_fmt(edges[0])}"] if below else []) + names


def _fmt(v: float) -> str:
    return f"{v:g}"


def size_group(area_km2, edges: Sequence[float], *, below: bool = True) -> pd.Categorical:
    """The size group of each area, [lo, hi) intervals; areas below the first edge are ``<edge`` (or NaN)."""
    a = np.asarray(area_km2, float)
    labels = size_group_labels(edges, below=below)
    k = np.searchsorted(np.asarray(edges, float), a, side="right")  # 0: below the first edge
    if not below:
        k = k - 1
    codes = np.where(np.isfinite(a) & (k >= 0), k, -1)
    return pd.Categorical.from_codes(codes, categories=labels)


def by_size_group(area_km2, values, edges: Sequence[float], *, below: bool = True) -> pd.DataFrame:
    """Count and mean of ``values`` per size group of ``area_km2`` (groups without lakes: n 0, mean NaN)."""
    df = pd.DataFrame({"group": size_group(area_km2, edges, below=below), "v": np.asarray(values, float)})
    out = df.groupby("group", observed=False)["v"].agg(["size", "mean"])
    return out.rename(columns={"size": "n"})


def lake_level_summary(
    labelled: pd.DataFrame, predicted: pd.DataFrame, edges: Sequence[float], *, include_residue: bool = False
) -> pd.DataFrame:
    """Fig. 5b: mean recall of labelled lakes and mean precision of predicted lakes per size group.

    Args:
        labelled, predicted: the tables of :func:`lake_overlap` / :func:`lake_tables`.
        include_residue: keep predicted lakes flagged as river residue (default: left out, as the
            product removes them).
    """
    if not include_residue and "river_residue" in predicted:
        predicted = predicted[~predicted.river_residue.astype(bool)]
    rec = by_size_group(labelled.area_km2, labelled.recall, edges)
    pre = by_size_group(predicted.area_km2, predicted.precision, edges)
    e = [float(x) for x in edges]
    out = pd.DataFrame(
        {
            "lo_km2": [0.0, *e],
            "hi_km2": [*e, np.inf],
            "labelled": rec.n,
            "mean_recall": rec["mean"],
            "predicted": pre.n,
            "mean_precision": pre["mean"],
        },
        index=rec.index,
    )
    out.index.name = "size_group"
    return out


def lake_level_fits(labelled: pd.DataFrame, predicted: pd.DataFrame, *, include_residue: bool = False) -> pd.DataFrame:
    """Fig. 5a fits: true predicted area on labelled area and on predicted area, OLS and through the origin."""
    if not include_residue and "river_residue" in predicted:
        predicted = predicted[~predicted.river_residue.astype(bool)]
    rows = {}
    for name, t in (("labelled", labelled), ("predicted", predicted)):
        for how, origin in (("ols", False), ("origin", True)):
            rows[(name, how)] = fit_line(t.area_km2, t.overlap_km2, through_origin=origin)
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.names = ["lakes", "fit"]
    return out


def lowest_lake_level_score(summary: pd.DataFrame, min_km2: float | None = None) -> float:
    """The lowest mean recall or mean precision of the size groups from ``min_km2`` up (Fig. 5b).

    The paper: "the mean recall and precision of lakes larger than 0.005 km2 exceed 86 %". Groups
    without a labelled and without a predicted lake are left out; NaN when no group is left.

    Args:
        summary: :func:`lake_level_summary`.
        min_km2: the groups whose lower edge is at least this (the paper: 0.005); None: the groups from
            the first edge up (the first row is the group below it).

    Returns:
        A fraction (x 100 for %).
    """
    if min_km2 is None or "lo_km2" not in summary:
        above = summary.iloc[1:]  # groups from the first edge up
    else:
        above = summary[summary.lo_km2 >= min_km2 * (1 - 1e-9)]
    above = above[(above.labelled > 0) | (above.predicted > 0)]
    return float(np.nanmin(above[["mean_recall", "mean_precision"]].to_numpy())) if len(above) else float("nan")


def group_score(summary: pd.DataFrame, lo: float, hi: float, column: str = "mean_recall") -> float:
    """One Fig. 5b group's score (a fraction): the group [lo, hi) km2 of :func:`lake_level_summary`.

    NaN when the group has no lake. Raises ParameterError when the summary has no such group (other edges).
    """
    hit = summary[np.isclose(summary.lo_km2, lo) & np.isclose(summary.hi_km2, hi)]
    if not len(hit):
        raise ParameterError("lake_size_groups_km2", f"no size group {lo:g}-{hi:g} km2 in {list(summary.index)}")
    return float(hit[column].iloc[0])
