"""Seeded train/validation/test splits of samples that come in groups.

A *group* is what must never be divided between subsets: one image for the QTP dataset (every
image its own group), one source chip and its augmented copies for the check-dam dataset. The
groups are sorted by name, shuffled with ``numpy.random.default_rng([seed, 9])`` and dealt
into the subsets by the largest-remainder counts of :func:`lakepaper.samples.split.target_counts`,
so the same names and seed give the same split on any machine and in any file-system order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from lakepaper.errors import ParameterError
from lakepaper.samples.split import SPLITS, target_counts


def split_groups(groups: Sequence[str], fractions: Sequence[float], seed: int) -> dict[str, str]:
    """Group name -> ``train`` | ``val`` | ``test``.

    Raises:
        ParameterError: bad fractions or a group name given twice.
    """
    names = sorted(str(g) for g in groups)
    if len(set(names)) != len(names):
        dup = next(n for i, n in enumerate(names[1:]) if n == names[i])
        raise ParameterError("groups", f"group {dup!r} given twice")
    counts = target_counts(len(names), fractions)
    rng = np.random.default_rng([int(seed), 9])
    order = [names[i] for i in rng.permutation(len(names))]
    labels = [s for s, c in zip(SPLITS, counts, strict=True) for _ in range(c)]
    return dict(zip(order, labels, strict=True))


def split_samples(samples: pd.DataFrame, fractions: Sequence[float], seed: int, *, group: str) -> pd.Series:
    """The subset of each sample (row), every member of a group in the same subset.

    Args:
        samples: one row per sample with a ``group`` column.
        fractions: shares of train, validation and test, counted in groups (not samples).
        seed: the shuffle.
        group: the column naming each sample's group.
    """
    if group not in samples:
        raise ParameterError("group", f"no column {group!r} in the samples table")
    assigned = split_groups(samples[group].astype(str).unique(), fractions, seed)
    return samples[group].astype(str).map(assigned).rename("split")


def leaks(samples: pd.DataFrame, *, group: str, split: str = "split") -> list[str]:
    """Groups found in more than one subset (empty when the split is leakage-free)."""
    per = samples.groupby(group)[split].nunique()
    return sorted(per[per > 1].index.astype(str))
