"""Every figure of the compendium: one function per figure, each returning a matplotlib Figure.

Figures are written with :func:`save` into their stage's ``figures/`` folder (PNG, 150 dpi; with
``formats=("png", "pdf", "svg")`` also as vector files for the paper); the map from the paper's
figure numbers to these functions is ``figures/README.md`` at the top level. Maps draw coastlines
from Natural Earth files shipped with the package (:mod:`lakepaper.figures.maps`), never downloaded.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from lakepaper import io
from lakepaper.errors import ParameterError

#: Metadata that would otherwise stamp the date or software version into a file, per format.
_NO_STAMP = {
    "png": {"Software": None},
    "pdf": {"Creator": None, "Producer": None, "CreationDate": None},
    "svg": {"Creator": None, "Date": None},
}


def save(fig: Figure, path: str | os.PathLike[str], *, dpi: int = 150, formats: Sequence[str] | None = None) -> None:
    """Write a figure atomically as PNG (no timestamp metadata, so equal figures give equal bytes).

    Args:
        fig: the figure.
        path: target, e.g. ``figures/fig6_distribution.png``.
        dpi: resolution of raster output.
        formats: None (default): PNG at ``path``. Otherwise each format (``png``, ``pdf``, ``svg``) is
            written beside ``path`` with that suffix, e.g. ``formats=("png", "pdf")`` for the paper.

    Returns nothing, so that a notebook cell ending in ``save(...)`` shows the figure, not a path.
    """
    import matplotlib

    path = Path(path)
    targets = [(path, "png")] if formats is None else [(path.with_suffix(f".{f}"), f) for f in formats]
    for target, fmt in targets:
        if fmt not in _NO_STAMP:
            raise ParameterError("formats", f"unsupported figure format {fmt!r}; choose from {sorted(_NO_STAMP)}")
        with io.atomic_path(target) as tmp, matplotlib.rc_context({"svg.hashsalt": "lakepaper"}):
            fig.savefig(tmp, dpi=dpi, format=fmt, bbox_inches="tight", metadata=_NO_STAMP[fmt])


def true_colour(l2a_10m: np.ndarray, *, gain: float = 3.5) -> np.ndarray:
    """RGB (rows, cols, 3) in 0..1 from an L2A 10 m array (B2 B3 B4 B8, x 10000), brightened."""
    rgb = np.stack([l2a_10m[2], l2a_10m[1], l2a_10m[0]], axis=-1).astype(np.float32) / 10000.0
    return np.clip(rgb * gain, 0, 1) ** (1 / 1.3)
