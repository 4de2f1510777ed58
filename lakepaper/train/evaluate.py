"""Patch-level accuracy of a trained model on a split (paper section 3.1, Table 1).

The regions are cut into patches sequentially (:func:`lakepaper.train.sampler.sequential_patches`:
every pixel exactly once, padding left out), the model predicts each patch on its own (no context
beyond the patch, as the paper's patch-level assessment), and the confusion counts are pooled over
every patch of a region type and over all (row ``all``): the scores are those of the pooled pixels,
never an average of per-patch or per-batch scores.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import torch

from lakepaper import scoring
from lakepaper.samples.chips import Chip
from lakepaper.train.loss import COUNTS


def region_counts(model: torch.nn.Module, chips: Sequence[Chip], **kwargs) -> pd.DataFrame:
    """Per region: region_id, region_type, patches, tp, fp, fn, tn: the per-patch counts of
    :func:`lakepaper.train.examples.patch_counts` (its keyword arguments: ``patch_size``, ``batch``,
    ``threshold``, ``pad_value``, ``device``, ``precision``) summed per region."""
    from lakepaper.train.examples import patch_counts, region_totals

    return region_totals(patch_counts(model, chips, **kwargs), chips)


def pooled(counts: pd.DataFrame, by: str | None = "region_type") -> pd.DataFrame:
    """Regions, patches, pooled counts and recall, precision, F1, IoU per ``by`` and for ``all``.

    The counts are summed before scoring (:func:`lakepaper.scoring.pooled`).
    """
    return scoring.pooled(
        counts, by, keys=COUNTS, describe=lambda g: {"regions": len(g), "patches": int(g["patches"].sum())}
    )


def evaluate(model: torch.nn.Module, chips: Sequence[Chip], p: dict, **kwargs) -> pd.DataFrame:
    """Table 1 of a split: :func:`pooled` of :func:`region_counts` with the profile's patch size and threshold."""
    kwargs.setdefault("batch", p["batch_size"])
    counts = region_counts(
        model, chips, patch_size=p["patch_size"], threshold=p["prob_threshold"], pad_value=p["pad_value"], **kwargs
    )
    return pooled(counts)
