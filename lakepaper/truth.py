"""Ground truth, where a run has one: the folder layout the stages read it from.

Truth is a data source like imagery and samples, and optional: only the simulated world has it
(stage 00 writes it beside its STAC catalog), and a researcher with a field-checked lake map can
lay one out the same way. The stages read it through :class:`Truth`, given by a path (their
``truth`` parameters; :func:`lakepaper.stages.provenance.default_truth` picks the world's when the
imagery came from it), never by importing the simulator. Layout::

    world.json                     {"tiles": [{tile, epsg, bounds [left, bottom, right, top],
                                    size_px, region_type, biome, ...}, ...]}
    truth/<tile>/lake_id.tif       int32 lake id at the typical extent (0: no lake), on the tile's grid
    truth/<tile>/masks.tif         uint8 bands river, ocean, urban, glacier, saltflat, paddy,
                                   floodplain, building_shadow (what the post-processing rules act on)
    truth/<tile>/water_type.tif    uint8 optical water type of every pixel that is ever water
                                   (codes 1.. in the order of :data:`WATER_TYPES`, 0: never water;
                                   optional: what the per-type scores of :mod:`lakepaper.water_types` read)
    truth/<tile>/<other>.tif       lake_id_max, occurrence, cover (optional)
    truth/lakes.parquet            GeoParquet, one row per lake: lake_id, tile, type, area_km2, geometry
                                   (and ``water``, the lake's optical type, one of :data:`WATER_TYPES`)
    scenes/<tile>/<system_index>_truth.tif
                                   uint8 per-scene flags (cloud, shadow, snow, ...; optional), joined
                                   to STAC items by their ``lakepaper:system_index``

The flag bits are :data:`FLAG`; the simulator makes them (the world's ``scenes.py``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from lakepaper.errors import InputError

#: Bits of a per-scene truth flag raster.
FLAG = {"thick_cloud": 1, "thin_cloud": 2, "haze": 4, "shadow": 8, "snow": 16, "water": 32, "no_data": 64}
#: Optical water types, in the order of their codes (1, 2, ...) in ``water_type.tif``. What the
#: names mean optically (reflectance, NDWI and MNDWI of each) is documented where a truth is made:
#: for the simulated world, :mod:`lakepaper.world.spectra`.
WATER_TYPES: tuple[str, ...] = (
    "clear",
    "turbid",
    "very_turbid",
    "eutrophic",
    "humic",
    "shallow",
    "glacial",
    "saline",
)
#: A pixel of a scene is not clear sky where any of these bits is set (haze is kept: the recipe has no haze mask).
NOT_CLEAR_SKY = FLAG["thick_cloud"] | FLAG["thin_cloud"] | FLAG["shadow"] | FLAG["snow"] | FLAG["no_data"]


@dataclass(frozen=True)
class Truth:
    """A truth folder (see the module docstring).

    Example:
        >>> t = Truth("build/demo/00_world")  # doctest: +SKIP
        >>> t.tiles().tile.tolist()[:2]  # doctest: +SKIP
        ['T01', 'T02']
    """

    root: Path

    def __init__(self, root: str | os.PathLike[str]) -> None:
        object.__setattr__(self, "root", Path(root))
        if not (self.root / "world.json").exists():
            raise InputError(self.root / "world.json", "no truth folder here (its tile table world.json is missing)")

    def info(self) -> dict:
        """world.json: the tile table (and, for the simulated world, its configuration and counts)."""
        return json.loads((self.root / "world.json").read_text())

    def tiles(self) -> pd.DataFrame:
        """One row per tile: name, EPSG, bounds, size, region type, biome."""
        return pd.DataFrame(self.info()["tiles"])

    def truth_path(self, tile: str, name: str) -> Path:
        """Path of a truth raster of a tile (``lake_id``, ``lake_id_max``, ``occurrence``, ``cover``, ``masks``)."""
        return self.root / "truth" / tile / f"{name}.tif"

    def has(self, tile: str, name: str = "lake_id") -> bool:
        return self.truth_path(tile, name).exists()

    def flags_path(self, tile: str, system_index: str) -> Path:
        """The truth flags of one scene (bits :data:`FLAG`)."""
        return self.root / "scenes" / tile / f"{system_index}_truth.tif"

    @property
    def lakes_path(self) -> Path:
        return self.root / "truth" / "lakes.parquet"
