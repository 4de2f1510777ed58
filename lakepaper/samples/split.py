"""Stratified random split of the sample regions into training, validation and test sets.

The paper splits its 799 regions 60/20/20 "by stratified random sampling" on region type
(section 2.2). Here the split is also *stable*: given the split of an earlier run, every region
that was already assigned keeps its set, and only new regions are drawn, into the sets that are
short of their share. So adding regions to a study never moves a test region into training.

Within a type of ``n`` regions the target counts are the largest-remainder rounding of
``n x fractions`` (e.g. 7 regions: 4/2/1 -> 60/20/20 within rounding); ties in the remainder
go to the earlier set (train, then val, then test).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from lakepaper.errors import ParameterError

SPLITS = ("train", "val", "test")


def target_counts(n: int, fractions: Sequence[float]) -> list[int]:
    """Largest-remainder rounding of ``n * fractions`` (sums to ``n``)."""
    f = np.asarray(fractions, float)
    if len(f) != len(SPLITS) or (f < 0).any() or not np.isclose(f.sum(), 1.0):
        raise ParameterError("split_fractions", f"expected three shares summing to 1, got {list(fractions)}")
    raw = n * f
    counts = np.floor(raw).astype(int)
    order = np.argsort(-(raw - counts), kind="stable")
    counts[order[: n - counts.sum()]] += 1
    return counts.tolist()


def stratified_split(
    regions: pd.DataFrame,
    fractions: Sequence[float],
    seed: int,
    *,
    by: str = "region_type",
    previous: Mapping[str, str] | None = None,
) -> pd.Series:
    """Assign each region to ``train``, ``val`` or ``test``, stratified by ``by``.

    Args:
        regions: a table with ``region_id`` and the ``by`` column.
        fractions: shares of train, validation and test (the paper's 0.6, 0.2, 0.2).
        seed: the random draw of the new regions; the same seed and regions give the same split.
        previous: region_id -> split of an earlier run; these regions keep their split.

    Returns:
        The split per region, indexed like ``regions``.

    Raises:
        ParameterError: bad fractions, duplicate region ids, or an unknown split in ``previous``.
    """
    if regions.region_id.duplicated().any():
        dup = regions.region_id[regions.region_id.duplicated()].iloc[0]
        raise ParameterError("regions", f"region_id {dup!r} appears twice")
    previous = dict(previous or {})
    bad = {k: v for k, v in previous.items() if v not in SPLITS}
    if bad:
        k, v = next(iter(bad.items()))
        raise ParameterError("previous", f"region {k!r} has split {v!r}; expected one of {SPLITS}")
    out = pd.Series(index=regions.index, dtype=object)
    for group, rows in regions.groupby(by):
        targets = target_counts(len(rows), fractions)
        kept = rows.region_id.map(previous)
        out[kept.dropna().index] = kept.dropna()
        have = [int((kept == s).sum()) for s in SPLITS]
        new = rows[kept.isna()].sort_values("region_id")
        rng = np.random.default_rng([seed, 22, *str(group).encode()])  # per type, whatever other types exist
        order = new.index[rng.permutation(len(new))]
        deficit = [max(t - h, 0) for t, h in zip(targets, have, strict=True)]
        labels = [s for s, d in zip(SPLITS, deficit, strict=True) for _ in range(d)]
        if len(labels) < len(order):  # kept regions overshoot a set: deal the rest by the fractions
            extra = target_counts(len(order) - len(labels), fractions)
            labels += [s for s, d in zip(SPLITS, extra, strict=True) for _ in range(d)]
        out[order] = labels[: len(order)]
    return out


def split_counts(regions: pd.DataFrame, fractions: Sequence[float], *, by: str = "region_type") -> pd.DataFrame:
    """Regions per ``by`` and split (columns train, val, test) beside the target counts of
    :func:`target_counts` (column ``expected``: a (train, val, test) tuple per row)."""
    counts = regions.groupby([by, "split"]).size().unstack(fill_value=0).reindex(columns=list(SPLITS), fill_value=0)
    counts.columns.name = "split"
    counts["expected"] = [tuple(target_counts(int(n), fractions)) for n in counts.sum(axis=1)]
    return counts
