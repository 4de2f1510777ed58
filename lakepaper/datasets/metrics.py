"""Scores of the two datasets: the paper's four, plus the check-dam dataset's mIoU and OA.

The positive-class scores (recall, precision, F1, IoU) are those of :func:`lakepaper.scoring.scores`
(NaN where a denominator is 0, as every ratio here). The check-dam dataset reports two more, over both classes
(target and background), from the same pooled pixel counts:

* IoU of the background = TN / (TN + FP + FN) (the background's own TP is our TN);
* mIoU = the mean of the two IoUs (the dataset reports mIoU > 80 %);
* overall accuracy OA = (TP + TN) / (TP + FP + FN + TN) (the dataset reports OA > 89 %).

Both are dominated by the background where the target is rare, which is why the GLAKESplus paper
leaves them out; they are given here because the dataset is compared on them.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from lakepaper import scoring

#: Score names in the order tables show them.
SCORES = ("recall", "precision", "f1", "iou", "iou_background", "miou", "oa")


def two_class_scores(counts: Mapping[str, int]) -> dict[str, float]:
    """Recall, precision, F1, IoU of the target; IoU of the background, mIoU and OA.

    Example:
        >>> s = two_class_scores({"tp": 8, "fp": 2, "fn": 0, "tn": 90})
        >>> round(s["iou"], 3), round(s["iou_background"], 3), round(s["miou"], 3), s["oa"]
        (0.8, 0.978, 0.889, 0.98)
    """
    tp, fp, fn, tn = (int(counts[k]) for k in ("tp", "fp", "fn", "tn"))
    out = {k: float(v) for k, v in scoring.scores(tp, fp, fn).items()}
    out["iou_background"] = scoring.scores(tn, fn, fp)["iou"]  # background: its hits are our TN, misses our FP/FN
    ious = [out["iou"], out["iou_background"]]
    out["miou"] = float(np.mean(ious)) if not np.isnan(ious).any() else float("nan")
    out["oa"] = scoring.ratio(tp + tn, tp + fp + fn + tn)
    return out


def score_table(counts: pd.DataFrame, by: str | None = None) -> pd.DataFrame:
    """Pooled counts and :data:`SCORES` per ``by`` and for ``all`` (rows of tp, fp, fn, tn; summed, then scored)."""
    return scoring.pooled(
        counts, by, keys=("tp", "fp", "fn", "tn"), describe=lambda g: {"samples": len(g)}, score=two_class_scores
    )
