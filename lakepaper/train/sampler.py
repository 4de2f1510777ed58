"""Patches for training, validation and test, cut from the sample regions (paper section 2.3).

Training and validation (:class:`PatchSampler`)
    Each patch comes from a region drawn with probability proportional to its area (``area_km2``
    of the regions table; "to avoid undersampling large and oversampling small regions"), at a
    uniformly random position: where the region is larger than the patch, the patch's offset in
    the region is uniform; where it is smaller, the region's offset in the patch is uniform and the
    rest of the patch is padding. Training patches are then flipped horizontally and vertically,
    each with probability ``flip_probability`` (0.5), the authors' only augmentation; validation
    patches are not flipped. This compendium adds two, its own choice, so that a model trained on
    one set of composites maps lakes on another: :class:`Radiometric` gives each training patch's
    reflectance bands a random offset and gain, as another atmospheric correction, calibration or
    sensor would (NDWI recomputed to match, :mod:`lakepaper.perturb`), and :class:`CoarseView`
    shows a share of the patches as a 30 m sensor would see them (Landsat-like), labels unchanged.
    Every random number comes from the ``numpy.random.Generator`` passed in, so a seed fixes every
    patch.

Padding
    Padded pixels hold ``pad_value`` (0.0) in every band; the authors pad with zeros too. They are
    marked invalid in the ``valid`` mask that comes with every patch, and the loss and every
    metric ignore them (:mod:`lakepaper.train.loss`), so padding is never scored as "not lake".
    The network still sees the zeros (as the authors' did), and batch normalisation statistics
    include them.

Test (:func:`sequential_patches`)
    "2424 patches of 576 x 576 taken sequentially from the test regions": each region is cut into
    patches from its top-left corner, row by row; the last patch of a row (column) is shifted back
    to end at the region's border, and the pixels it shares with the patch before it are marked
    invalid there, so every pixel of a region is scored exactly once (the ``shift`` convention of
    :mod:`lakepaper.metrics`). A region smaller than the patch is placed at the top-left corner
    and padded.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lakepaper.errors import InputError, ParameterError
from lakepaper.samples.chips import Chip, chip_paths


@dataclass
class Patches:
    """A stack of patches: image (n, bands, s, s) float32, label (n, s, s) uint8, valid (n, s, s) bool."""

    image: np.ndarray
    label: np.ndarray
    valid: np.ndarray
    region: np.ndarray  # (n,) index of the source chip

    def __len__(self) -> int:
        return len(self.image)

    def batches(self, size: int) -> Iterator[Patches]:
        """Consecutive slices of at most ``size`` patches, in order."""
        for i in range(0, len(self), size):
            s = slice(i, i + size)
            yield Patches(self.image[s], self.label[s], self.valid[s], self.region[s])


def _where(chip: Chip, folder: str | os.PathLike[str] | None) -> str:
    return str(Path(folder) / chip_paths(chip.region_id)[0]) if folder else f"chip of region {chip.region_id}"


def check_chips(
    chips: Sequence[Chip],
    bands: Sequence[str],
    *,
    split: str,
    folder: str | os.PathLike[str] | None = None,
) -> None:
    """Refuse, before any training, a split without chips, or a chip the model cannot learn from.

    Raises:
        InputError: naming the chip (its file when ``folder`` is given) and the problem: a band
            count or band order other than ``bands``, NaN or infinite values, a label that is not
            0/1 or not of the image's shape, an area that is not positive.
    """
    bands = tuple(bands)
    if not chips:
        raise InputError(folder or split, f"the {split!r} split has no regions")
    for c in chips:
        where = _where(c, folder)
        image, label = np.asarray(c.image), np.asarray(c.label)
        if image.ndim != 3 or image.shape[0] != len(bands):
            raise InputError(
                where,
                f"region {c.region_id}: image has shape {image.shape}; the model takes {len(bands)} bands {bands}",
            )
        if tuple(c.bands) != bands:
            raise InputError(
                where, f"region {c.region_id}: bands {tuple(c.bands)}, the model takes {bands} in that order"
            )
        if label.shape != image.shape[1:]:
            raise InputError(where, f"region {c.region_id}: label shape {label.shape} differs from the image's")
        if c.observed is not None and np.shape(c.observed) != label.shape:
            raise InputError(where, f"region {c.region_id}: observed mask shape differs from the label's")
        bad = ~np.isfinite(image)
        if bad.any():
            raise InputError(where, f"region {c.region_id}: image holds {int(bad.sum())} NaN/inf values")
        values = np.unique(label)
        if not set(values.tolist()) <= {0, 1}:
            raise InputError(where, f"region {c.region_id}: label is not binary (values {values[:10].tolist()})")
        if not (np.isfinite(c.area_km2) and c.area_km2 > 0):
            raise InputError(where, f"region {c.region_id}: area_km2 must be positive, got {c.area_km2}")


def _place(length: int, size: int, rng: np.random.Generator) -> tuple[slice, slice]:
    """Source slice in the region and target slice in the patch along one axis, at a uniform position."""
    if length >= size:
        start = int(rng.integers(0, length - size + 1))
        return slice(start, start + size), slice(0, size)
    off = int(rng.integers(0, size - length + 1))
    return slice(0, length), slice(off, off + length)


@dataclass(frozen=True)
class Radiometric:
    """Radiometric jitter of training patches, drawn per patch: an offset from [-offset, offset]
    (reflectance) and then a gain from [1 - gain, 1 + gain], common to all bands (an atmospheric
    correction's or a calibration's error moves the bands together), plus a per-band part of a
    quarter of ``offset`` and a fifth of ``gain`` (band to band, sensor to sensor). Index bands
    (NDWI) follow their reflectance bands (:mod:`lakepaper.perturb`). Zero for both: no jitter."""

    bands: tuple[str, ...]
    offset: float = 0.0
    gain: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "bands", tuple(self.bands))

    @property
    def active(self) -> bool:
        return self.offset > 0 or self.gain > 0

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A jittered copy of ``image`` (bands, rows, cols)."""
        from lakepaper import perturb

        names = perturb.reflectance_planes(self.bands)
        n = len(names)
        common_off, common_gain = rng.uniform(-self.offset, self.offset), rng.uniform(1 - self.gain, 1 + self.gain)
        off_b = common_off + rng.uniform(-self.offset / 4, self.offset / 4, n)
        gain_b = common_gain * rng.uniform(1 - self.gain / 5, 1 + self.gain / 5, n)
        off = dict(zip(names, off_b.tolist(), strict=True))
        gain = dict(zip(names, gain_b.tolist(), strict=True))
        return perturb.gain(perturb.offset(image, self.bands, off), self.bands, gain)


@dataclass(frozen=True)
class CoarseView:
    """With probability ``probability``, a training patch as a Landsat-like 30 m sensor would see it
    (:func:`lakepaper.perturb.landsat_like`: 3 x 3 block means brought back to 10 m bilinearly, OLI
    band responses); the label stays the 10 m one."""

    bands: tuple[str, ...]
    probability: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "bands", tuple(self.bands))

    @property
    def active(self) -> bool:
        return self.probability > 0

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        from lakepaper import perturb

        return perturb.landsat_like(image, self.bands) if rng.random() < self.probability else image


class PatchSampler:
    """Draws patches of ``size`` from regions chosen with probability proportional to their area.

    Args:
        chips: the regions (already checked with :func:`check_chips`).
        size: patch side in pixels.
        flip_probability: chance of each of the horizontal and vertical flips when ``augment``.
        pad_value: value of padded pixels in every band.
        jitter: what is done to each training patch's image after it is cut (only when ``augment``),
            in order: :class:`Radiometric`, :class:`CoarseView` or any callable (image, rng) -> image.
    """

    def __init__(
        self,
        chips: Sequence[Chip],
        size: int,
        *,
        flip_probability: float = 0.5,
        pad_value: float = 0.0,
        jitter: Sequence[Callable[[np.ndarray, np.random.Generator], np.ndarray]] = (),
    ):
        if size < 1:
            raise ParameterError("patch_size", f"must be positive, got {size}")
        if not 0.0 <= flip_probability <= 1.0:
            raise ParameterError("flip_probability", f"must be in [0, 1], got {flip_probability}")
        self.chips = list(chips)
        self.size = int(size)
        self.flip_probability = float(flip_probability)
        self.pad_value = float(pad_value)
        self.jitter = [j for j in jitter if getattr(j, "active", True)]
        area = np.array([c.area_km2 for c in self.chips], dtype=np.float64)
        self.probability = area / area.sum()
        self.bands = int(self.chips[0].image.shape[0])

    def draw(self, rng: np.random.Generator, n: int, *, augment: bool) -> Patches:
        """``n`` patches; flipped (training) when ``augment``, never otherwise (validation)."""
        s = self.size
        image = np.full((n, self.bands, s, s), self.pad_value, dtype=np.float32)
        label = np.zeros((n, s, s), dtype=np.uint8)
        valid = np.zeros((n, s, s), dtype=bool)
        region = rng.choice(len(self.chips), size=n, p=self.probability)
        for i, r in enumerate(region):
            chip = self.chips[r]
            (sr, tr), (sc, tc) = _place(chip.label.shape[0], s, rng), _place(chip.label.shape[1], s, rng)
            image[i, :, tr, tc] = chip.image[:, sr, sc]
            if augment:
                for j in self.jitter:
                    image[i, :, tr, tc] = j(image[i, :, tr, tc], rng)
            label[i, tr, tc] = chip.label[sr, sc]
            valid[i, tr, tc] = True if chip.observed is None else chip.observed[sr, sc]
            if augment:
                flips = rng.random(2) < self.flip_probability
                axes = tuple(ax for ax, f in zip((-1, -2), flips, strict=True) if f)  # horizontal, vertical
                if axes:
                    image[i] = np.flip(image[i], axes)
                    label[i] = np.flip(label[i], axes)
                    valid[i] = np.flip(valid[i], axes)
        return Patches(image, label, valid, region)


def _starts(length: int, size: int) -> list[int]:
    if length <= size:
        return [0]
    starts = list(range(0, length - size, size))
    return [*starts, length - size]


def sequential_patches(
    chips: Sequence[Chip], size: int, *, batch: int = 16, pad_value: float = 0.0
) -> Iterator[Patches]:
    """Every pixel of every region exactly once, in ``size`` patches taken row by row (see module doc).

    Yields stacks of at most ``batch`` patches, so that a large test set never sits in memory at once.
    """
    todo = []
    for r, chip in enumerate(chips):
        h, w = chip.label.shape
        rows, cols = _starts(h, size), _starts(w, size)
        for i, r0 in enumerate(rows):
            for j, c0 in enumerate(cols):
                # pixels already scored by the previous patch in the row / column are left out here
                top = rows[i - 1] + size - r0 if i else 0
                left = cols[j - 1] + size - c0 if j else 0
                todo.append((r, r0, c0, top, left))
    for k in range(0, len(todo), batch):
        part = todo[k : k + batch]
        n, bands = len(part), chips[0].image.shape[0]
        image = np.full((n, bands, size, size), pad_value, dtype=np.float32)
        label = np.zeros((n, size, size), dtype=np.uint8)
        valid = np.zeros((n, size, size), dtype=bool)
        for i, (r, r0, c0, top, left) in enumerate(part):
            chip = chips[r]
            hh, ww = min(size, chip.label.shape[0] - r0), min(size, chip.label.shape[1] - c0)
            image[i, :, :hh, :ww] = chip.image[:, r0 : r0 + hh, c0 : c0 + ww]
            label[i, :hh, :ww] = chip.label[r0 : r0 + hh, c0 : c0 + ww]
            seen = True if chip.observed is None else chip.observed[r0 + top : r0 + hh, c0 + left : c0 + ww]
            valid[i, top:hh, left:ww] = seen
        yield Patches(image, label, valid, np.array([p[0] for p in part], dtype=np.int64))
