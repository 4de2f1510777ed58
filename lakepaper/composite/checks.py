"""How far a composite is from the simulated truth (the numbers stage 01 reports).

The truth clear-sky mean of a pixel is the mean of its *truly* clear observations (truth flags:
no thick or thin cloud, shadow, snow or no data; haze kept, as the recipe has no haze mask)
among the scenes the paper's scene filter keeps. A composite pixel is *residue* when its B2 is
pulled more than 0.05 off that mean.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lakepaper import io
from lakepaper.composite.local import read_composite, select_scenes
from lakepaper.world.checks import NOT_CLEAR_SKY
from lakepaper.world.files import WorldFiles


def truth_clear_mean(world: WorldFiles, tile: str, p: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(mean reflectance of B2 B3 B4 over truly clear observations, their count) on the tile grid."""
    sums = count = None
    for s in select_scenes(world, tile, p).itertuples():
        l2a, _ = io.read_raster(world.scene_path(tile, s.system_index, "L2A_10m"), bands=[1, 2, 3])
        flags = io.read_raster(world.scene_path(tile, s.system_index, "truth"))[0][0]
        ok = (flags & NOT_CLEAR_SKY) == 0
        if sums is None:
            sums, count = np.zeros(l2a.shape), np.zeros(ok.shape, np.int32)
        sums += np.where(ok, l2a, 0)
        count += ok
    if sums is None:
        raise ValueError(f"tile {tile}: no scene passes the scene filter")
    return np.where(count > 0, sums / np.maximum(count, 1), np.nan) / 1e4, count


def compare_to_truth(world: WorldFiles, tile: str, composite_path, p: dict[str, Any]) -> dict[str, float]:
    """Share of pixels within 0.01 of the truth (>= 3 clear observations) and residue share."""
    comp, count, meta = read_composite(composite_path)
    names = meta["band_names"]
    rgb = np.stack([comp[names.index(b)] for b in ("B2", "B3", "B4")])
    truth, n_true = truth_clear_mean(world, tile, p)
    sel = (count >= 3) & (n_true >= 3)
    err = np.abs(rgb - truth).max(axis=0)
    both = (count > 0) & (n_true > 0)
    return {
        "tile": tile,
        "within_0_01": float((err[sel] <= 0.01).mean()) if sel.any() else float("nan"),
        "residue": float((both & (np.abs(rgb[0] - truth[0]) > 0.05)).sum() / max(both.sum(), 1)),
        "no_observation": float((count == 0).mean()),
    }


def compare_world_to_truth(
    world: WorldFiles, composite_dir: str | os.PathLike[str], tiles: Iterable[str], p: dict[str, Any]
) -> pd.DataFrame:
    """:func:`compare_to_truth` of each tile's composite (``composite_dir/tiles/<tile>.tif``), one row per tile."""
    folder = Path(composite_dir) / "tiles"
    return pd.DataFrame([compare_to_truth(world, t, folder / f"{t}.tif", p) for t in tiles])
