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
from lakepaper.train.loop import autocast, pick_device
from lakepaper.train.loss import COUNTS, add_counts, confusion
from lakepaper.train.sampler import sequential_patches


def region_counts(
    model: torch.nn.Module,
    chips: Sequence[Chip],
    *,
    patch_size: int,
    batch: int = 8,
    threshold: float = 0.5,
    pad_value: float = 0.0,
    device: str | torch.device | None = None,
    precision: str = "fp32",
) -> pd.DataFrame:
    """Per region: region_id, region_type, patches, tp, fp, fn, tn."""
    device = pick_device(device)
    model = model.to(device).eval()
    per = [{} for _ in chips]
    patches = [0] * len(chips)
    with torch.no_grad():
        for b in sequential_patches(chips, patch_size, batch=batch, pad_value=pad_value):
            x = torch.from_numpy(b.image).to(device)
            with autocast(device, precision):
                prob = model(x).float()
            for i, r in enumerate(b.region):
                y = torch.from_numpy(b.label[i]).to(device)
                v = torch.from_numpy(b.valid[i]).to(device)
                per[r] = add_counts(per[r], confusion(prob[i, 0], y, v, threshold))
                patches[r] += 1
    rows = [
        {
            "region_id": c.region_id,
            "region_type": c.region_type,
            "patches": patches[i],
            **{k: per[i].get(k, 0) for k in COUNTS},
        }
        for i, c in enumerate(chips)
    ]
    return pd.DataFrame(rows)


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
