"""Every figure of the compendium: one function per figure, each returning a matplotlib Figure.

Figures are written with :func:`save` into ``build/<profile>/figures/`` (PNG, 150 dpi); the map
from the paper's figure numbers to these functions is ``figures/README.md`` at the top level.
"""

from __future__ import annotations

import os
from pathlib import Path

from matplotlib.figure import Figure

from lakepaper import io


def save(fig: Figure, path: str | os.PathLike[str], *, dpi: int = 150) -> Path:
    """Write a figure atomically as PNG (no timestamp metadata, so equal figures give equal bytes)."""
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png", bbox_inches="tight", metadata={"Software": None})
    return Path(path)
