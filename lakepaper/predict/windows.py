"""Where the sliding windows go: stride = size - 2 x edge, only the centre of each window kept.

The paper predicts its global grid with windows of the model's input size and throws away the
outer ``edge`` (100) pixels of each window's prediction, where the network lacks context; the
authors' stride is 576 - 2 x 100 = 376. Along one axis of ``n`` pixels:

* the tile is (conceptually) padded by ``edge`` pixels on both sides;
* window ``i`` starts at tile position ``i * keep - edge`` (``keep = size - 2 x edge``), covers
  ``size`` pixels, and keeps tile pixels ``[i * keep, (i + 1) * keep)``, cut at ``n``;
* so every tile pixel is predicted exactly once, from a window in which it lies at least
  ``edge`` pixels from the border. ``ceil(n / keep)`` windows per axis.

The padding is where a tile has no neighbour: pixels within ``edge`` of the tile's border see
reflected data there (``numpy.pad(mode="reflect")``), not real context. Export tiles with a
buffer of at least ``edge`` pixels (the Earth Engine backend does) and crop it after prediction
to give every pixel real context.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from lakepaper.errors import ParameterError


def check_geometry(size: int, edge: int, *, multiple: int = 16) -> int:
    """Validate the window geometry; return ``keep = size - 2 x edge``.

    Raises:
        ParameterError: ``patch_size`` not a positive multiple of ``multiple`` (a 4-level U-Net
            halves the size four times), or ``edge_px`` leaving nothing to keep.
    """
    if size <= 0 or size % multiple:
        raise ParameterError("patch_size", f"{size} must be a positive multiple of {multiple} (4 poolings)")
    keep = size - 2 * edge
    if edge < 0 or keep <= 0:
        raise ParameterError("edge_px", f"{edge} leaves no centre to keep in a {size} px window")
    return keep


def starts(n: int, size: int, edge: int) -> list[int]:
    """Window starts along an axis of ``n`` pixels, in tile coordinates (the first is ``-edge``)."""
    keep = check_geometry(size, edge)
    if n <= 0:
        raise ParameterError("tile", f"an axis of {n} pixels has nothing to predict")
    return [i * keep - edge for i in range(math.ceil(n / keep))]


def count(shape: tuple[int, int], size: int, edge: int) -> int:
    """Number of windows for a tile of ``shape``."""
    return len(starts(shape[0], size, edge)) * len(starts(shape[1], size, edge))


def valid_fraction(size: int, edge: int) -> float:
    """Share of a window's pixels kept (the paper's 376^2 / 576^2 = 0.43)."""
    return (size - 2 * edge) ** 2 / size**2


def training_edge(meta: Mapping[str, Any]) -> int:
    """The edge (``edge_px``) of the profile a checkpoint was trained with: the default of ``lakepaper predict``.

    A checkpoint stores its patch size and training parameters, not the edge (an inference setting), so
    the edge is the one of the profile whose ``patch_size`` (and, where the checkpoint has them,
    ``unet_widths``) it matches: 576 px (paper) -> 100, 128 (demo) -> 24, 64 (tiny) -> 8. An
    ``edge_px`` stored in the checkpoint (its ``params``) wins.

    Args:
        meta: the checkpoint's dict (:func:`lakepaper.train.checkpoint.read_checkpoint`) or its metadata.

    Raises:
        ParameterError: no profile (or profiles with different edges) match: pass the edge (``--edge``).
    """
    from lakepaper import params

    stored = dict(meta.get("params") or {})
    if "edge_px" in stored:
        return int(stored["edge_px"])
    size = int(meta["patch_size"])
    profiles = {name: params.resolve(name) for name in params.PROFILES}
    same = [name for name, p in profiles.items() if p["patch_size"] == size]
    if "unet_widths" in stored:
        same = [name for name in same if list(profiles[name]["unet_widths"]) == list(stored["unet_widths"])] or same
    edges = sorted({profiles[name]["edge_px"] for name in same})
    if len(edges) != 1:
        sizes = ", ".join(f"{name} {p['patch_size']} px" for name, p in profiles.items())
        raise ParameterError(
            "edge_px",
            f"the checkpoint's patch size {size} px names no single profile ({sizes}), so the edge it was "
            "trained for is unknown: pass the edge (--edge)",
        )
    return edges[0]
