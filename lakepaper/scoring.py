"""Pixel scores of a binary map against a binary label: confusion counts, scores, pooling. The one place.

Every recall, precision, F1 and IoU the compendium reports comes from here: stage 00's NDWI check,
stage 02's label check, stage 03's training history and test table, stage 04's stitching check,
stage 05's rule effects, stage 06's Tables 1 and 2, and the scores of the two extra datasets. The
torch training loop counts on its tensors (:func:`lakepaper.train.loss.confusion`) and scores the
counts here.

* :func:`confusion`: counts of a label against a prediction, with a no-data value and a valid mask;
* :func:`scores` (:func:`scores_of` for a dict of counts): recall, precision, F1, IoU;
* :func:`pooled`: a table of counts (one row per region, patch or sample) summed per group and over
  all rows (row ``all``), then scored.

Conventions
-----------
Pixels
    A label pixel is lake where it is non-zero (1 or True). A prediction pixel is lake where it is
    1 (or True). Prediction pixels equal to ``nodata`` (:data:`NODATA`, 255: no prediction) and
    pixels outside ``valid`` (e.g. a label never observed) are left out of every count; they are
    counted as ``nodata`` instead.

Scores (:func:`scores`)
    recall = TP / (TP + FN), precision = TP / (TP + FP), F1 = 2 TP / (2 TP + FP + FN) (the harmonic
    mean of the two), IoU = TP / (TP + FP + FN). True negatives enter none of them (the paper leaves
    out overall accuracy and mIoU because non-lake pixels dominate; :mod:`lakepaper.datasets.metrics`
    adds them for the check-dam dataset, which reports them).

Empty cases: NaN (:func:`ratio`)
    A score whose denominator is 0 is **NaN** ("undefined"), never 0 or 1: recall with no labelled
    lake, precision with no predicted lake, F1 and IoU with neither. An empty prediction over
    labelled lake scores recall 0, precision NaN, F1 0, IoU 0; a prediction where nothing is
    labelled scores recall NaN, precision 0, F1 0, IoU 0; both empty: all four NaN. For recall,
    precision and F1 this is scikit-learn's ``zero_division=np.nan`` (``precision_score``,
    ``recall_score``, ``f1_score``, ``precision_recall_fscore_support``, since version 1.3; its
    ``jaccard_score`` offers only 0 or 1, so IoU follows the same rule here, not scikit-learn's). An
    empty reference leaves overlap scores undefined, one of the pitfalls Reinke et al. list
    ("Understanding metric-related pitfalls in image analysis validation", Nature Methods 21,
    182-194, 2024): reporting it as undefined beats a silent 0 or 1.
    A NaN shows in a table, where a 0 (the ``max(den, 1)`` idiom) reads as a real, terrible score
    and a 1 as a perfect one.

Pooling (:func:`pooled`)
    The scores of a group are those of its counts summed, never the mean of per-patch or per-region
    scores (the paper pools pixels: "2424 patches ... pixels pooled").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from lakepaper.errors import InputError

#: Value of a prediction pixel without prediction.
NODATA = 255
#: Confusion counts, in the order of the codes of :func:`codes`.
COUNTS = ("tp", "fp", "fn", "tn", "nodata")
#: The four scores, in the order tables show them.
SCORES = ("recall", "precision", "f1", "iou")


# --- counts ------------------------------------------------------------------------------------------


def check_pair(label, pred, *, name: str = "label/pred", ndim: int | None = None) -> None:
    """InputError unless label and prediction have one shape (and ``ndim`` dimensions, if given)."""
    label, pred = np.asarray(label), np.asarray(pred)
    if label.shape != pred.shape:
        raise InputError(name, f"label {label.shape} and prediction {pred.shape} differ in shape")
    if ndim is not None and label.ndim != ndim:
        raise InputError(name, f"expected {ndim}-D arrays, got {label.ndim}-D")


def codes(label, pred, *, nodata: int | None = NODATA, valid=None) -> np.ndarray:
    """Per pixel the index into :data:`COUNTS`: 0 tp, 1 fp, 2 fn, 3 tn, 4 left out (uint8)."""
    lab = np.asarray(label).astype(bool)
    pred = np.asarray(pred)
    pos = pred == 1
    code = np.where(lab, np.where(pos, 0, 2), np.where(pos, 1, 3)).astype(np.uint8)
    if nodata is not None:
        code[pred == nodata] = 4
    if valid is not None:
        code[~np.asarray(valid, dtype=bool)] = 4
    return code


def confusion(label, pred, *, nodata: int | None = NODATA, valid=None) -> dict[str, int]:
    """Pixel counts of a label and a prediction: tp, fp, fn, tn and nodata (pixels left out).

    Args:
        label: non-zero = lake, any shape.
        pred: 1 = lake, ``nodata`` = no prediction (left out), anything else = not lake; the label's shape.
        nodata: the prediction's no-data value (None: none).
        valid: optional boolean mask of the pixels to count (False: left out, e.g. a label never observed).

    Example:
        >>> confusion(np.array([[1, 1, 0, 0]]), np.array([[1, 0, 1, 255]]))
        {'tp': 1, 'fp': 1, 'fn': 1, 'tn': 0, 'nodata': 1}
    """
    check_pair(label, pred)
    if valid is not None:
        check_pair(label, valid, name="label/valid")
    counts = np.bincount(codes(label, pred, nodata=nodata, valid=valid).ravel(), minlength=len(COUNTS))
    return dict(zip(COUNTS, (int(c) for c in counts), strict=True))


def add(*counts: Mapping[str, int], keys: Iterable[str] | None = None) -> dict[str, int]:
    """Counts summed key by key (``keys``: only these, missing ones 0; default: every key given)."""
    if keys is None:
        keys = dict.fromkeys(k for c in counts for k in c)
    return {k: sum(c.get(k, 0) for c in counts) for k in keys}


def sums(frame: pd.DataFrame, *, prefix: str = "", keys: Sequence[str] = COUNTS) -> dict[str, int]:
    """The columns ``prefix + k`` of a count table, summed, for the ``keys`` it has (named ``k``)."""
    return {k: int(frame[prefix + k].sum()) for k in keys if prefix + k in frame}


# --- scores ------------------------------------------------------------------------------------------


def ratio(num, den) -> float | np.ndarray:
    """num / den, NaN where den is 0 (the empty-case rule of the module docstring); scalars or arrays."""
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)
    return float(out) if out.ndim == 0 else out


def scores(tp, fp, fn) -> dict[str, float | np.ndarray]:
    """Recall, precision, F1 and IoU from confusion counts (scalars or arrays); NaN where undefined.

    Example:
        >>> scores(8, 2, 0)["precision"], scores(0, 0, 5)["recall"], bool(np.isnan(scores(0, 0, 5)["precision"]))
        (0.8, 0.0, True)
    """
    tp, fp, fn = (np.asarray(v, dtype=float) for v in (tp, fp, fn))
    return {
        "recall": ratio(tp, tp + fn),
        "precision": ratio(tp, tp + fp),
        "f1": ratio(2 * tp, 2 * tp + fp + fn),
        "iou": ratio(tp, tp + fp + fn),
    }


def scores_of(counts: Mapping[str, Any]) -> dict[str, float | np.ndarray]:
    """:func:`scores` of a mapping with tp, fp and fn (a count dict, a row, a torch loop's totals)."""
    return scores(counts["tp"], counts["fp"], counts["fn"])


# --- pooling -----------------------------------------------------------------------------------------


def groups(
    frame: pd.DataFrame, by: str | None, *, order: Sequence[Any] | None = None, total: bool = True
) -> list[tuple[Any, pd.DataFrame]]:
    """The rows of each group of ``by`` and, with ``total``, all rows as group ``all``.

    Groups come in ``order`` (those it lists but ``frame`` lacks: empty), then the others sorted.
    """
    out: list[tuple[Any, pd.DataFrame]] = []
    if by is not None:
        present = dict(list(frame.groupby(by, sort=True)))
        names = list(order) if order is not None else []
        names += [n for n in present if n not in names]
        out = [(n, present.get(n, frame.iloc[0:0])) for n in names]
    if total:
        out.append(("all", frame))
    return out


def pooled(
    counts: pd.DataFrame,
    by: str | None = None,
    *,
    order: Sequence[Any] | None = None,
    total: bool = True,
    prefix: str = "",
    keys: Sequence[str] = COUNTS,
    describe: Callable[[pd.DataFrame], Mapping[str, Any]] | None = None,
    score: Callable[[Mapping[str, int]], Mapping[str, Any]] = scores_of,
) -> pd.DataFrame:
    """Counts summed per group of ``by`` and over all rows (row ``all``), and their scores.

    Args:
        counts: one row per region, patch or sample, with count columns ``prefix + k`` for the
            ``keys`` (tp, fp and fn at least; tn and nodata where there).
        by: the column to group by; None: only the ``all`` row.
        order: the order of the groups (:func:`groups`); groups it lists that ``counts`` lacks get
            zero counts and NaN scores.
        total: add the row ``all``.
        prefix: the count columns' prefix (e.g. ``"lake_"`` for ``lake_tp``); the result's are bare.
        keys: the counts to sum.
        describe: per group, the leading columns of its row (e.g. ``{"regions": len(g)}``).
        score: counts -> scores (default :func:`scores_of`).

    Returns:
        One row per group (and ``all``): ``describe``'s columns, the summed counts, the scores.

    Example:
        >>> t = pd.DataFrame({"kind": ["a", "a", "b"], "tp": [1, 0, 0], "fp": [0, 1, 0], "fn": [1, 0, 0]})
        >>> p = pooled(t, "kind")
        >>> float(p.loc["a", "precision"]), int(p.loc["all", "tp"]), bool(np.isnan(p.loc["b", "iou"]))
        (0.5, 1, True)
    """
    rows = {}
    for name, g in groups(counts, by, order=order, total=total):
        c = sums(g, prefix=prefix, keys=keys)
        rows[name] = {**(describe(g) if describe else {}), **c, **score(c)}
    return pd.DataFrame.from_dict(rows, orient="index")


def as_percent(table: pd.DataFrame) -> pd.DataFrame:
    """A copy of a table with its score columns (:data:`SCORES`) times 100."""
    out = table.copy()
    cols = [c for c in SCORES if c in out]
    out[cols] = out[cols] * 100
    return out
