"""How far a composite is from the truth (the numbers stage 01 reports when its source has one).

The truth clear-sky mean of a pixel is the mean of its *truly* clear observations (per-scene truth
flags, :data:`lakepaper.truth.NOT_CLEAR_SKY`: no thick or thin cloud, shadow, snow or no data;
haze kept, as the recipe has no haze mask) among the items the recipe kept. The reflectances are
read through the same STAC reader as the composite (the flags are joined to the items by their
``lakepaper:system_index``). A composite pixel is *residue* when its B2 is pulled more than 0.05
off that mean.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lakepaper import io
from lakepaper.composite import stac as reader
from lakepaper.composite.local import read_composite
from lakepaper.truth import NOT_CLEAR_SKY, Truth

_RGB = ("B2", "B3", "B4")


def truth_clear_mean(truth: Truth, tile: str, items: Sequence, p: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(mean reflectance of B2 B3 B4 over truly clear observations, their count) on the tile's grid."""
    from lakepaper.composite.sources import to_dn

    if not items:
        raise ValueError(f"tile {tile}: no scene passes the scene filter")
    geobox = reader.tile_geobox(items, reader.Area(tile=tile), float(p.get("resolution_m", 10.0)))
    ds = reader.load(items, list(_RGB), geobox)
    sums = count = None
    for i, it in enumerate(items):
        dn = np.stack([to_dn(ds[b].isel(time=i).values) for b in _RGB]).astype(np.float64)
        flags = io.read_raster(truth.flags_path(tile, it.properties["lakepaper:system_index"]))[0][0]
        ok = (flags & NOT_CLEAR_SKY) == 0
        if sums is None:
            sums, count = np.zeros(dn.shape), np.zeros(ok.shape, np.int32)
        sums += np.where(ok, dn, 0)
        count += ok
    return np.where(count > 0, sums / np.maximum(count, 1), np.nan) / 1e4, count


def compare_to_truth(truth: Truth, tile: str, items: Sequence, composite_path, p: dict[str, Any]) -> dict[str, float]:
    """Share of pixels within 0.01 of the truth (>= 3 clear observations) and residue share."""
    comp, count, meta = read_composite(composite_path)
    names = meta["band_names"]
    rgb = np.stack([comp[names.index(b)] for b in _RGB])
    mean, n_true = truth_clear_mean(truth, tile, items, p)
    sel = (count >= 3) & (n_true >= 3)
    err = np.abs(rgb - mean).max(axis=0)
    both = (count > 0) & (n_true > 0)
    return {
        "tile": tile,
        "within_0_01": float((err[sel] <= 0.01).mean()) if sel.any() else float("nan"),
        "residue": float((both & (np.abs(rgb[0] - mean[0]) > 0.05)).sum() / max(both.sum(), 1)),
        "no_observation": float((count == 0).mean()),
    }


def compare_tiles_to_truth(
    truth: Truth, composite_dir: str | os.PathLike[str], items: Mapping[str, Sequence], p: dict[str, Any]
) -> pd.DataFrame:
    """:func:`compare_to_truth` of each tile's composite (``composite_dir/tiles/<tile>.tif``), one row per tile.

    ``items``: tile -> the L2A items its composite was made of (:func:`lakepaper.composite.sources.find_tiles`).
    """
    folder = Path(composite_dir) / "tiles"
    return pd.DataFrame([compare_to_truth(truth, t, its, folder / f"{t}.tif", p) for t, its in items.items()])
