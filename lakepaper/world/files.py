"""Finding things in a generated world folder (see :mod:`lakepaper.world.generate` for the layout)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from lakepaper.errors import InputError

SCENE_PRODUCTS = ("L2A_10m", "L2A_20m", "L1C", "CLDPRB", "truth")


@dataclass(frozen=True)
class WorldFiles:
    """A generated world on disk.

    Example:
        >>> w = WorldFiles("build/demo/00_world")  # doctest: +SKIP
        >>> w.scenes().query("tile == 'T01'").system_index.iloc[0]  # doctest: +SKIP
    """

    root: Path

    def __init__(self, root: str | os.PathLike[str]) -> None:
        object.__setattr__(self, "root", Path(root))
        if not (self.root / "world.json").exists():
            raise InputError(self.root / "world.json", "no world here: run the 00_world stage first")

    def info(self) -> dict:
        """world.json: configuration, tiles and counts."""
        return json.loads((self.root / "world.json").read_text())

    def tiles(self) -> pd.DataFrame:
        """One row per tile: name, biome, region type, EPSG, bounds, size."""
        return pd.DataFrame(self.info()["tiles"])

    def scenes(self) -> pd.DataFrame:
        """Per-scene metadata (Earth Engine-like properties and truth statistics)."""
        return pd.read_csv(self.root / "scenes.csv", parse_dates=["date"])

    def scene_path(self, tile: str, system_index: str, product: str) -> Path:
        """Path of one product of a scene (``L2A_10m``, ``L2A_20m``, ``L1C``, ``CLDPRB``, ``truth``)."""
        if product not in SCENE_PRODUCTS:
            raise InputError(product, f"unknown scene product; choose one of {SCENE_PRODUCTS}")
        return self.root / "scenes" / tile / f"{system_index}_{product}.tif"

    def truth_path(self, tile: str, name: str) -> Path:
        """Path of a truth raster of a tile (``lake_id``, ``lake_id_max``, ``occurrence``, ``cover``, ``masks``)."""
        return self.root / "truth" / tile / f"{name}.tif"

    @property
    def lakes_path(self) -> Path:
        return self.root / "truth" / "lakes.parquet"

    @property
    def regions_path(self) -> Path:
        return self.root / "regions.gpkg"

    @property
    def references(self) -> Path:
        return self.root / "references"
