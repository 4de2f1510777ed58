"""Absolute paths, so nothing depends on the working directory.

``LAKEPAPER_BUILD`` overrides where outputs go (default ``<repo>/build``).
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
FIGURES = ROOT / "figures"


def build_root() -> Path:
    """Folder that holds every profile's outputs."""
    return Path(os.environ.get("LAKEPAPER_BUILD", ROOT / "build")).resolve()


def stage_dir(profile: str, stage: str) -> Path:
    """Output folder of one stage, e.g. ``build/demo/00_world``."""
    return build_root() / profile / stage
