"""Augmentation of image chips and their masks: mirror flips, rotations, brightness.

Geometric operations act on the last two axes of the image ``(bands, rows, cols)`` and of the mask
``(rows, cols)`` together, so a mask stays on its image. Each is also an affine map of pixel
coordinates, so an augmented chip keeps an exact geotransform: every pixel still carries the map
coordinates of the ground it shows (a flipped chip has a negative pixel size, a rotated one
rotation terms; GDAL and rasterio read both). Brightness scales the image only.

Pixel coordinates are GDAL's: ``(col, row)`` of a pixel's top-left corner, centres at ``+0.5``.
For a chip of ``rows x cols`` pixels the operations map a new pixel ``(x', y')`` back to the old
``(x, y)`` as follows (``W`` = cols, ``H`` = rows)::

    hflip      x = W - x'   y = y'           (mirror left-right)
    vflip      x = x'       y = H - y'       (mirror top-bottom)
    rot90      x = W - y'   y = x'           (numpy.rot90 k=1: a quarter turn anticlockwise)
    rot180     x = W - x'   y = H - y'
    rot270     x = y'       y = H - x'
    transpose  x = y'       y = x'

The check-dam recipe (:func:`recipe`) makes ``factor`` copies of each chip: the original, then
copies cycling through ``params.checkdam_augmentations`` (horizontal mirror, vertical mirror, a
rotation by a multiple of 90 degrees drawn per chip, a brightness factor drawn per chip), which
with factor 5 gives the published 584 -> 2,920 chips. The published text names these kinds of
transform but not the recipe; this one is ours.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from rasterio.transform import Affine

from lakepaper.errors import ParameterError

#: Geometric operations: numpy function and the pixel map new -> old (a function of rows, cols).
GEOMETRIC = ("identity", "hflip", "vflip", "rot90", "rot180", "rot270", "transpose")
#: Kinds a recipe may name: the geometric ones, ``rot`` (a random quarter turn) and ``brightness``.
KINDS = (*GEOMETRIC, "rot", "brightness")


def apply_geometric(array: np.ndarray, op: str) -> np.ndarray:
    """``array`` (..., rows, cols) transformed by ``op``; a copy, C-contiguous."""
    if op == "identity":
        out = array
    elif op == "hflip":
        out = array[..., :, ::-1]
    elif op == "vflip":
        out = array[..., ::-1, :]
    elif op in ("rot90", "rot180", "rot270"):
        out = np.rot90(array, {"rot90": 1, "rot180": 2, "rot270": 3}[op], axes=(-2, -1))
    elif op == "transpose":
        out = np.swapaxes(array, -1, -2)
    else:
        raise ParameterError("augmentation", f"unknown geometric operation {op!r}; known: {GEOMETRIC}")
    return np.ascontiguousarray(out)


def pixel_map(op: str, rows: int, cols: int) -> Affine:
    """The affine map from pixel coordinates of the transformed chip to those of the original."""
    w, h = float(cols), float(rows)
    maps = {
        "identity": Affine.identity(),
        "hflip": Affine(-1, 0, w, 0, 1, 0),
        "vflip": Affine(1, 0, 0, 0, -1, h),
        "rot90": Affine(0, -1, w, 1, 0, 0),
        "rot180": Affine(-1, 0, w, 0, -1, h),
        "rot270": Affine(0, 1, 0, -1, 0, h),
        "transpose": Affine(0, 1, 0, 1, 0, 0),
    }
    if op not in maps:
        raise ParameterError("augmentation", f"unknown geometric operation {op!r}; known: {GEOMETRIC}")
    return maps[op]


def brightness(image: np.ndarray, factor: float) -> np.ndarray:
    """An 8-bit image times ``factor``, rounded and clipped to 0..255 (other dtypes: clipped at 0)."""
    scaled = image.astype(np.float32) * np.float32(factor)
    if image.dtype == np.uint8:
        return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return np.maximum(scaled, 0).astype(image.dtype)


@dataclass(frozen=True)
class Augmentation:
    """One copy of a chip: a geometric operation and a brightness factor (1.0: unchanged)."""

    op: str = "identity"
    factor: float = 1.0

    @property
    def name(self) -> str:
        return self.op if self.factor == 1.0 else f"{self.op}+brightness{self.factor:.3f}"

    def apply(
        self, image: np.ndarray, mask: np.ndarray, transform: Affine | None = None
    ) -> tuple[np.ndarray, np.ndarray, Affine | None]:
        """(image, mask, geotransform) of the copy; the mask of the image, the transform of both."""
        if image.shape[-2:] != mask.shape[-2:]:
            raise ParameterError("mask", f"mask {mask.shape} and image {image.shape} differ in size")
        rows, cols = image.shape[-2:]
        out_image = apply_geometric(image, self.op)
        out_mask = apply_geometric(mask, self.op)
        if self.factor != 1.0:
            out_image = brightness(out_image, self.factor)
        out_transform = None if transform is None else transform * pixel_map(self.op, rows, cols)
        return out_image, out_mask, out_transform


def recipe(
    factor: int, kinds: Sequence[str], rng: np.random.Generator, *, brightness_range: tuple[float, float]
) -> list[Augmentation]:
    """The ``factor`` copies of one chip: the original first, then ``kinds`` in turn (cycling).

    ``rot`` draws a quarter turn (90, 180 or 270 degrees) and ``brightness`` a factor uniform in
    ``brightness_range``, both from ``rng`` (one generator per chip, so chips do not depend on each
    other's draws).
    """
    if factor < 1:
        raise ParameterError("checkdam_augment_factor", f"must be at least 1, got {factor}")
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or (factor > 1 and not kinds):
        raise ParameterError("checkdam_augmentations", f"unknown kinds {unknown}; known: {KINDS}")
    lo, hi = brightness_range
    if not 0 < lo <= hi:
        raise ParameterError("checkdam_brightness_range", f"expected 0 < low <= high, got {brightness_range}")
    out = [Augmentation()]
    for i in range(factor - 1):
        kind = kinds[i % len(kinds)]
        if kind == "rot":
            out.append(Augmentation(("rot90", "rot180", "rot270")[int(rng.integers(0, 3))]))
        elif kind == "brightness":
            out.append(Augmentation("identity", round(float(rng.uniform(lo, hi)), 3)))
        else:
            out.append(Augmentation(kind))
    return out
