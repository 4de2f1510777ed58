"""Every figure of the compendium: one function per figure, each returning a matplotlib Figure.

Figures are written with :func:`save` into their stage's ``figures/`` folder (PNG, 150 dpi); the map
from the paper's figure numbers to these functions is ``figures/README.md`` at the top level.
"""

from __future__ import annotations

import os

from matplotlib.figure import Figure

from lakepaper import io


def save(fig: Figure, path: str | os.PathLike[str], *, dpi: int = 150) -> None:
    """Write a figure atomically as PNG (no timestamp metadata, so equal figures give equal bytes).

    Returns nothing, so that a notebook cell ending in ``save(...)`` shows the figure, not a path.
    """
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png", bbox_inches="tight", metadata={"Software": None})
