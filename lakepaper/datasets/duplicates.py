"""Overlapping views among images of unknown location: near-duplicate detection for leakage-free splits.

The QTP images were "randomly selected" over the plateau, and nothing published says where each one
lies: two images may show the same ground, shifted, with another contrast. Split by image, such a pair
can fall into training and test, and the test scores then measure memory, not generalisation.

:func:`overlapping_pairs` finds the pairs that share ground. Each image is reduced to a small grey
thumbnail (``size`` x ``size``, area-averaged, standardised), every pair is registered by phase
correlation (the peak of the normalised cross-power spectrum gives the shift), and the shift is
accepted when the two thumbnails, compared where they overlap, correlate by at least ``min_corr`` over
at least ``min_overlap`` of the image. Correlation is insensitive to each image's gain and offset, and
the thumbnail to JPEG noise; a monotone change of contrast (gamma) lowers it only a little.
:func:`view_groups` joins overlapping images into groups (connected components): a split by group
(:func:`lakepaper.datasets.split.split_samples`) puts every view of a place in one subset.

Cost: ``n (n - 1) / 2`` inverse FFTs of ``size``^2 points, done row by row in batches: a few seconds for
the replica's hundreds of images; hours for the 6,774 published images at ``size`` 64 (use 32, or
prefilter by colour).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import pandas as pd

from lakepaper.errors import ParameterError


def thumbnail(image: np.ndarray, size: int = 64) -> np.ndarray:
    """A grey ``size`` x ``size`` thumbnail of an image (rows, cols[, bands]), zero mean and unit variance."""
    a = np.asarray(image, np.float32)
    grey = a.mean(axis=-1) if a.ndim == 3 else a
    t = cv2.resize(grey, (size, size), interpolation=cv2.INTER_AREA).astype(np.float64)
    sd = t.std()
    return (t - t.mean()) / (sd if sd > 0 else 1.0)


def _corr_full(fa: np.ndarray, fb: np.ndarray) -> np.ndarray:
    """Linear (not circular) cross-correlations from zero-padded spectra, for every shift of b against a."""
    return np.fft.irfft2(fa * np.conj(fb), s=(fa.shape[-2], 2 * (fa.shape[-1] - 1)))


def overlapping_pairs(
    images: Sequence[np.ndarray],
    *,
    size: int = 48,
    min_overlap: float = 0.15,
    min_corr: float = 0.8,
) -> pd.DataFrame:
    """The pairs of images that show the same ground (see the module doc).

    Every shift of one thumbnail against the other is tried at once: the correlation of the two where they
    overlap (masked normalised cross-correlation, from zero-padded FFTs), among the shifts whose overlap is
    at least ``min_overlap`` of the image; a pair overlaps when the best of them reaches ``min_corr``.

    Args:
        images: arrays (rows, cols[, bands]), any size (each is reduced to a thumbnail).
        size: thumbnail side in pixels.
        min_overlap: the least share of an image the two must have in common.
        min_corr: the least correlation of the two thumbnails where they overlap.

    Returns:
        One row per overlapping pair: ``i``, ``j`` (positions, i < j), ``dy``, ``dx`` (where image j's
        content lies in image i, in thumbnail pixels), ``overlap`` (share of the image), ``corr``.
    """
    if not 0 < min_overlap <= 1:
        raise ParameterError("min_overlap", f"must be in (0, 1], got {min_overlap}")
    n = len(images)
    if n < 2:
        return pd.DataFrame(columns=["i", "j", "dy", "dx", "overlap", "corr"])
    t = np.stack([thumbnail(im, size) for im in images])
    pad = (2 * size, 2 * size)
    fa, fa2 = np.fft.rfft2(t, s=pad), np.fft.rfft2(t**2, s=pad)
    f1 = np.fft.rfft2(np.ones((size, size)), s=pad)
    count = _corr_full(f1, f1)  # pixels in common at each shift
    valid = count >= min_overlap * size**2 - 0.5
    n_px = np.where(valid, count, np.inf)
    s_a, s_aa = _corr_full(fa, f1), _corr_full(fa2, f1)  # sums of image i over the overlap (as the first)
    s_b, s_bb = _corr_full(f1, fa), _corr_full(f1, fa2)  # ... of image j (as the second)
    rows = []
    for i in range(n - 1):
        s_ab = _corr_full(fa[i][None], fa[i + 1 :])
        cov = s_ab - s_a[i] * s_b[i + 1 :] / n_px
        var = (s_aa[i] - s_a[i] ** 2 / n_px) * (s_bb[i + 1 :] - s_b[i + 1 :] ** 2 / n_px)
        ncc = np.where(valid & (var > 1e-9), cov / np.sqrt(np.maximum(var, 1e-18)), -np.inf)
        flat = ncc.reshape(len(ncc), -1)
        best = flat.argmax(axis=1)
        score = flat[np.arange(len(flat)), best]
        for k in np.flatnonzero(score >= min_corr):
            dy, dx = divmod(int(best[k]), pad[1])
            dy, dx = (dy - pad[0] if dy >= size else dy), (dx - pad[1] if dx >= size else dx)
            share = float(count.reshape(-1)[best[k]]) / size**2
            rows.append({"i": i, "j": i + 1 + int(k), "dy": dy, "dx": dx, "overlap": share, "corr": float(score[k])})
    return pd.DataFrame(rows, columns=["i", "j", "dy", "dx", "overlap", "corr"])


def view_groups(n: int, pairs: pd.DataFrame) -> np.ndarray:
    """Group number (0, 1, ...) of each of ``n`` images: the connected components of the overlapping pairs."""
    parent = np.arange(n)

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, j in zip(pairs["i"], pairs["j"], strict=True):
        a, b = root(int(i)), root(int(j))
        if a != b:
            parent[max(a, b)] = min(a, b)
    roots = np.array([root(x) for x in range(n)])
    _, labels = np.unique(roots, return_inverse=True)
    return labels


def footprint_pairs(chips: pd.DataFrame, chip_px: int, *, min_overlap: float = 0.1) -> set[tuple[int, int]]:
    """The truly overlapping pairs of a replica, from where each chip was cut (``tile``, ``row``, ``col``):
    the check of :func:`overlapping_pairs` on the simulated world."""
    out = set()
    t, r, c = chips["tile"].to_numpy(), chips["row"].to_numpy(int), chips["col"].to_numpy(int)
    for i in range(len(chips)):
        same = np.flatnonzero((t == t[i]) & (np.arange(len(chips)) > i))
        share = np.clip(chip_px - np.abs(r[same] - r[i]), 0, None) * np.clip(chip_px - np.abs(c[same] - c[i]), 0, None)
        out |= {(i, int(j)) for j in same[share / chip_px**2 >= min_overlap]}
    return out
