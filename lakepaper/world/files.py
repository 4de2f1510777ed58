"""Finding things in a generated world folder (see :mod:`lakepaper.world.generate` for the layout)."""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio

from lakepaper.errors import InputError
from lakepaper.truth import Truth

#: The world's scene products as its own code reads them -> (collection level, asset files).
SCENE_PRODUCTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "L2A_10m": ("l2a", ("B02", "B03", "B04", "B08")),
    "L2A_20m": ("l2a", ("B11", "SCL")),
    "L1C": ("l1c", ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")),
    "CLDPRB": ("l2a", ("s2cloudless",)),
}
#: Band names the world's products had as single files (kept for its checks and figures).
_NAMES = {"L2A_10m": ["B2", "B3", "B4", "B8"], "L2A_20m": ["B11", "SCL"], "CLDPRB": ["probability"]}
_UNSCALED = {"SCL", "s2cloudless"}


class WorldFiles(Truth):
    """A generated world on disk: its truth (:class:`lakepaper.truth.Truth`), scene table and catalog.

    Only the world's own code (checks, figures, dataset replicas) uses this; the stages read the
    imagery through the STAC catalog and the truth through :class:`~lakepaper.truth.Truth`.

    Example:
        >>> w = WorldFiles("build/demo/00_world")  # doctest: +SKIP
        >>> w.scenes().query("tile == 'T01'").system_index.iloc[0]  # doctest: +SKIP
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        object.__setattr__(self, "root", Path(root))
        if not (self.root / "world.json").exists():
            raise InputError(self.root / "world.json", "no world here: run the 00_world stage first")

    def scenes(self) -> pd.DataFrame:
        """Per-scene metadata (Earth Engine-like properties and truth statistics)."""
        return pd.read_csv(self.root / "scenes.csv", parse_dates=["date"])

    @property
    def catalog(self) -> Path:
        """The world's imagery: a static STAC catalog (:mod:`lakepaper.world.stac`)."""
        return self.root / "stac"

    def asset_paths(self, tile: str, system_index: str, product: str) -> list[Path]:
        """The catalog's COGs of one product of a scene (``L2A_10m``, ``L2A_20m``, ``L1C``, ``CLDPRB``)."""
        if product not in SCENE_PRODUCTS:
            raise InputError(product, f"unknown scene product; choose one of {list(SCENE_PRODUCTS)}")
        level, files = SCENE_PRODUCTS[product]
        items = _items(self.root / "scenes.csv")
        if (tile, system_index) not in items:
            raise InputError(self.root / "scenes.csv", f"no scene {system_index} of tile {tile}")
        item = items[(tile, system_index)][level]
        return [self.catalog / f"sentinel-2-{level}" / item / f"{f}.tif" for f in files]

    def read_scene(self, tile: str, system_index: str, product: str) -> tuple[np.ndarray, dict]:
        """One product of a scene from the catalog, as the world made it: reflectance x 10000 (0 no data)
        whatever the processing baseline's offset, SCL and probability as stored; and its metadata."""
        arrays, meta = [], {}
        paths = self.asset_paths(tile, system_index, product)
        for path in paths:
            with rasterio.open(path) as src:
                a = src.read(1)
                meta = {**src.profile, "tags": src.tags(), "bounds": src.bounds}
            if path.stem not in _UNSCALED:
                a = _undo_offset(a, path)
            arrays.append(a)
        meta["band_names"] = _NAMES.get(product, [p.stem for p in paths])
        return np.stack(arrays), meta

    @property
    def regions_path(self) -> Path:
        return self.root / "regions.gpkg"

    @property
    def references(self) -> Path:
        return self.root / "references"


def _undo_offset(dn: np.ndarray, path: Path) -> np.ndarray:
    """The world's DN (reflectance x 10000) from a stored DN: the -1000 offset removed where its item declares it."""
    item = json.loads((path.parent / f"{path.parent.name}.json").read_text())
    band = item["assets"][next(k for k, a in item["assets"].items() if a["href"].endswith(path.name))]
    offset = band["raster:bands"][0].get("offset", 0.0)
    if not offset:
        return dn
    shift = int(round(-offset * 10000))
    return np.where(dn == 0, 0, dn.astype(np.int32) - shift).astype(dn.dtype)


def _items(scenes_csv: Path) -> dict[tuple[str, str], dict[str, str]]:
    stat = scenes_csv.stat()
    return _items_cached(str(scenes_csv), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _items_cached(path: str, _mtime: int, _size: int) -> dict[tuple[str, str], dict[str, str]]:
    t = pd.read_csv(path, usecols=["tile", "system_index", "l2a_item", "l1c_item"])
    return {(r.tile, r.system_index): {"l2a": r.l2a_item, "l1c": r.l1c_item} for r in t.itertuples()}
