"""The training loss (1 - Dice over the whole batch) and pooled confusion counts.

Dice is computed over every valid pixel of the batch at once, not per patch and then averaged
(the authors' Keras loss flattens the batch)::

    dice = (2 * sum(p * y) + s) / (sum(p) + sum(y) + s),    loss = 1 - dice

with ``p`` the sigmoid probabilities, ``y`` the 0/1 label and ``s`` the smoothing term
(``params.dice_smooth``, 1.0). Pixels outside ``valid`` (the padding around regions smaller than a
patch) enter neither sum.

Two departures from the authors' code, both this compendium's choices (listed with their reasons and
measured sizes in :mod:`lakepaper.report.departures`): their loss smooths with Keras' epsilon (1e-7),
not 1.0, which matters only for a batch without lake pixels; and it counts the zero padding as
non-lake pixels, where this loss leaves the padding out.

Metrics come from confusion counts (threshold ``params.prob_threshold``) counted here on the
tensors, summed over every patch of an epoch or a split (the way the paper pools pixels), and
scored by :mod:`lakepaper.scoring`: recall = TP/(TP+FN), precision = TP/(TP+FP),
F1 = 2TP/(2TP+FP+FN), IoU = TP/(TP+FP+FN); a score with a zero denominator is NaN.
"""

from __future__ import annotations

import torch

from lakepaper import scoring

COUNTS = ("tp", "fp", "fn", "tn")
METRICS = scoring.SCORES


def dice_loss(prob: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None, smooth: float = 1.0):
    """1 - Dice of the whole batch; ``prob`` and ``target`` of equal shape, ``valid`` a 0/1 mask or None.

    Computed in float32 whatever the autocast dtype of ``prob``.
    """
    p = prob.float().reshape(-1)
    y = target.float().reshape(-1)
    if valid is not None:
        v = valid.float().reshape(-1)
        p, y = p * v, y * v
    inter = (p * y).sum()
    return 1.0 - (2.0 * inter + smooth) / (p.sum() + y.sum() + smooth)


def confusion(prob: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None, threshold: float = 0.5):
    """Pixel counts tp, fp, fn, tn (Python ints) of ``prob > threshold`` against ``target``."""
    pred = prob.detach().reshape(-1) > threshold
    y = target.detach().reshape(-1) > 0.5
    v = torch.ones_like(y) if valid is None else valid.detach().reshape(-1) > 0.5
    return {
        "tp": int((pred & y & v).sum()),
        "fp": int((pred & ~y & v).sum()),
        "fn": int((~pred & y & v).sum()),
        "tn": int((~pred & ~y & v).sum()),
    }


def add_counts(a: dict, b: dict) -> dict:
    """Element-wise sum of two count dicts (:func:`lakepaper.scoring.add`)."""
    return scoring.add(a, b, keys=COUNTS)


def scores(counts: dict) -> dict:
    """Recall, precision, F1 and IoU of pooled counts, NaN where undefined (:func:`lakepaper.scoring.scores_of`)."""
    return scoring.scores_of(counts)
