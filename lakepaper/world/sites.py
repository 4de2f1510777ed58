"""Biomes and sites of the simulated world, and the world's configuration.

Each *site* is one tile of the world at a real place on Earth, so that the
1-degree grids and latitude/longitude profiles of the later figures have
structure. Each has a *biome*: the kind of landscape, the lakes it holds and
what makes lake mapping there hard (the paper's five region types NR, AR, BR,
IL, SL all occur).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, fields, replace
from typing import Any

from lakepaper import params
from lakepaper.errors import ParameterError
from lakepaper.params import S2_ERA
from lakepaper.truth import WATER_TYPES


@dataclass(frozen=True)
class Biome:
    """A kind of landscape and the knobs that make it.

    Attributes:
        region_type: the paper's region type (section 2.2) of sample regions drawn here.
        lake_fraction: share of the tile covered by lakes at their typical extent.
        lake_types: lake type -> relative frequency (natural, reservoir, oxbow, ice, salt, lagoon).
        background: surface name -> share of the dry land.
        seasonality: amplitude (0..1) of the seasonal wetness cycle; sets the seasonal ring of lakes.
        river_width_m: width of the main river (0: none). GRWL keeps rivers >= 90 m here.
        n_oxbows: crescent lakes cut off beside the river.
        coast: ocean along one side, with lagoons.
        glacier_fraction, urban_fraction, saltflat_fraction, paddy_fraction: shares of the tile.
        n_reservoirs: dammed valleys along the river.
        aridity: the Global Aridity Index (P/PET) of the site; < 0.2 is arid (paper 2.4).
        floodplain: the river's floodplain is mapped (SHIFT-like) and paddy fields lie in it.
        rect_ponds: share of lakes drawn as rectangular aquaculture ponds.
        anchor_km2: one large lake of this area placed first (0: none). The power law rarely
            draws a lake of tens of km2 into a 100 km2 tile; real landscapes of this kind hold one
            (Nam Co on the plateau, a salar lake, a shield lake). Kept out of the size-law fit.
        water_types: optical water type (:data:`lakepaper.truth.WATER_TYPES`) -> relative
            frequency among the lakes that are not glacial or salt lakes (those are always
            ``glacial`` and ``saline``). Boreal lakes are humic, floodplain and plain lakes turbid
            or eutrophic, plateau lakes clear (Spyrakos et al., 2018, on the optical water types
            of 250 lakes worldwide).
        river_water: the optical type of the river, paddies and sea of the tile.
        slope_deg: median slope of the terrain; slopes facing away from the sun lie in their own
            shadow, lit by the sky alone (0: flat; cast shadows are not simulated).
        asphalt_share: share of the built-up area that is asphalt and dark roofs.
        mud_rings: the seasonal ring of lakes, when dry, is wet mud (drawdown zones), not the
            land around.
    """

    region_type: str
    lake_fraction: float
    lake_types: dict[str, float]
    background: dict[str, float]
    seasonality: float = 0.15
    river_width_m: float = 0.0
    n_oxbows: int = 0
    coast: bool = False
    glacier_fraction: float = 0.0
    urban_fraction: float = 0.0
    saltflat_fraction: float = 0.0
    paddy_fraction: float = 0.0
    n_reservoirs: int = 0
    aridity: float = 0.8
    floodplain: bool = False
    rect_ponds: float = 0.0
    anchor_km2: float = 0.0
    water_types: dict[str, float] = field(default_factory=lambda: {"clear": 0.5, "turbid": 0.5})
    river_water: str = "turbid"
    slope_deg: float = 0.0
    asphalt_share: float = 0.35
    mud_rings: bool = False


BIOMES: dict[str, Biome] = {
    "shield": Biome(
        "NR",
        0.14,
        {"natural": 1.0},
        {"forest": 0.66, "rock": 0.14, "wetland": 0.15, "burn_scar": 0.05},
        seasonality=0.1,
        aridity=0.9,
        anchor_km2=14.0,
        water_types={"clear": 0.3, "humic": 0.4, "turbid": 0.1, "very_turbid": 0.05, "eutrophic": 0.1, "shallow": 0.05},
        slope_deg=2.0,
    ),
    "plateau": Biome(
        "IL",
        0.06,
        {"natural": 0.5, "ice": 0.5},
        {"rock": 0.55, "grass": 0.3, "bare_soil": 0.1, "dark_lava": 0.05},
        seasonality=0.2,
        glacier_fraction=0.18,
        aridity=0.3,
        anchor_km2=6.0,
        water_types={"clear": 0.4, "shallow": 0.2, "turbid": 0.15, "very_turbid": 0.1, "saline": 0.15},
        slope_deg=22.0,
    ),
    "ponds": Biome(
        "NR",
        0.16,
        {"natural": 1.0},
        {"cropland": 0.56, "grass": 0.2, "urban": 0.04, "asphalt": 0.01, "forest": 0.14, "wet_soil": 0.05},
        seasonality=0.2,
        river_width_m=120.0,
        paddy_fraction=0.15,
        floodplain=True,
        aridity=1.1,
        rect_ponds=0.6,
        water_types={"eutrophic": 0.35, "turbid": 0.25, "very_turbid": 0.3, "clear": 0.1},
        river_water="very_turbid",
        mud_rings=True,
    ),
    "river": Biome(
        "AR",
        0.07,
        {"natural": 0.6, "oxbow": 0.4},
        {"forest": 0.55, "wetland": 0.23, "grass": 0.13, "burn_scar": 0.04, "wet_soil": 0.05},
        seasonality=0.35,
        river_width_m=320.0,
        n_oxbows=5,
        floodplain=True,
        aridity=1.2,
        water_types={"very_turbid": 0.35, "turbid": 0.2, "humic": 0.25, "eutrophic": 0.15, "clear": 0.05},
        river_water="very_turbid",
        mud_rings=True,
    ),
    "arid": Biome(
        "SL",
        0.05,
        {"salt": 0.7, "natural": 0.3},
        {"sand": 0.42, "bare_soil": 0.4, "rock": 0.07, "dark_lava": 0.08, "wet_soil": 0.03},
        seasonality=0.5,
        saltflat_fraction=0.12,
        aridity=0.08,
        anchor_km2=5.0,
        water_types={"very_turbid": 0.5, "turbid": 0.3, "shallow": 0.2},
        slope_deg=4.0,
        mud_rings=True,
    ),
    "urban": Biome(
        "BR",
        0.04,
        {"natural": 1.0},
        {"cropland": 0.5, "grass": 0.3, "forest": 0.2},
        seasonality=0.1,
        urban_fraction=0.55,
        river_width_m=100.0,
        aridity=0.7,
        water_types={"eutrophic": 0.4, "turbid": 0.25, "very_turbid": 0.2, "clear": 0.15},
    ),
    "coast": Biome(
        "NR",
        0.08,
        {"natural": 0.7, "lagoon": 0.3},
        {"grass": 0.47, "cropland": 0.3, "wetland": 0.17, "wet_soil": 0.06},
        seasonality=0.15,
        coast=True,
        aridity=0.7,
        water_types={"turbid": 0.35, "eutrophic": 0.25, "very_turbid": 0.2, "clear": 0.2},
    ),
    "reservoir": Biome(
        "AR",
        0.04,
        {"natural": 0.6, "reservoir": 0.4},
        {"grass": 0.38, "forest": 0.28, "cropland": 0.3, "burn_scar": 0.04},
        seasonality=0.3,
        river_width_m=60.0,
        n_reservoirs=3,
        aridity=0.5,
        water_types={"turbid": 0.35, "very_turbid": 0.25, "clear": 0.25, "eutrophic": 0.15},
        slope_deg=8.0,
        mud_rings=True,
    ),
}


@dataclass(frozen=True)
class Site:
    """One tile of the world: a name, a biome and the place it stands for."""

    name: str
    biome: str
    lat: float
    lon: float
    place: str


SITES: tuple[Site, ...] = (
    Site("T01", "shield", 56.5, -100.5, "Canadian Shield, Manitoba"),
    Site("T02", "shield", 62.3, 27.8, "Finnish Lakeland"),
    Site("T03", "plateau", 33.5, 88.5, "Qinghai-Tibet Plateau"),
    Site("T04", "plateau", 27.9, 86.9, "Himalaya, Khumbu glacial lakes"),
    Site("T05", "ponds", 30.3, 114.6, "Middle Yangtze plain"),
    Site("T06", "ponds", 33.0, -90.9, "Mississippi alluvial plain"),
    Site("T07", "river", -3.3, -60.5, "Amazon floodplain"),
    Site("T08", "river", 61.5, 69.0, "Lower Ob, West Siberia"),
    Site("T09", "arid", -20.3, -67.5, "Altiplano salars, Bolivia"),
    Site("T10", "arid", -28.5, 137.3, "Lake Eyre basin, Australia"),
    Site("T11", "urban", 30.55, 114.3, "Wuhan"),
    Site("T12", "urban", 28.6, 77.2, "Delhi"),
    Site("T13", "coast", 16.5, 81.5, "Andhra coast, India"),
    Site("T14", "coast", 10.6, 103.5, "Cambodian coast"),
    Site("T15", "reservoir", -18.5, -47.5, "Cerrado reservoirs, Brazil"),
    Site("T16", "reservoir", 39.5, -5.5, "Meseta reservoirs, Spain"),
)
SITES_BY_NAME = {s.name: s for s in SITES}


@dataclass(frozen=True)
class WorldConfig:
    """Everything that decides the simulated world. Same config and seed: byte-identical files.

    Attributes:
        seed: the world's seed.
        tile_px: tile side in 10 m pixels (a multiple of ``cloud_factor``).
        scenes_per_tile: Sentinel-2 acquisitions simulated per tile.
        tiles: names of the sites to build (default: all 16).
        size_exponent: tau of the lake-area density p(A) ~ A^-tau. Cael & Seekell (2016) find
            tau = 2.14 above ~0.5 km2 (so the cumulative N(>A) ~ A^-(tau-1) = A^-1.14).
        min_lake_km2, max_lake_km2: range the lake areas are drawn from.
        start, end: the acquisition period (ISO dates), inside the Sentinel-2 era.
        cloud_factor: s2cloudless runs on blocks of this many 10 m pixels (8 -> 80 m).
        biome_overrides: biome name -> {field: value} to change a biome for an experiment.
    """

    seed: int = 20240501
    tile_px: int = 1024
    scenes_per_tile: int = 12
    tiles: tuple[str, ...] | None = None
    size_exponent: float = 2.14
    min_lake_km2: float = 0.001
    max_lake_km2: float = 30.0
    start: str = params.CONSTANTS["start_date"].value
    end: str = params.CONSTANTS["end_date"].value
    cloud_factor: int = 8
    biome_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_params(cls, p: dict[str, Any], **changes: Any) -> WorldConfig:
        """The world of a resolved parameter set (see :func:`lakepaper.params.resolve`)."""
        base = cls(
            seed=int(p["world_seed"]),
            tile_px=int(p["world_tile_px"]),
            scenes_per_tile=int(p["world_scenes_per_tile"]),
            tiles=tuple(p["world_tiles"]) if p.get("world_tiles") else None,
        )
        return replace(base, **changes).validated()

    def validated(self) -> WorldConfig:
        """Check every field; raise ParameterError naming the first bad one."""
        for name in ("tile_px", "scenes_per_tile", "cloud_factor"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ParameterError(name, f"must be a positive integer, got {v!r}")
        if self.tile_px % self.cloud_factor or self.tile_px < 4 * self.cloud_factor:
            raise ParameterError(
                "tile_px",
                f"must be a multiple of cloud_factor={self.cloud_factor} and at least "
                f"{4 * self.cloud_factor}, got {self.tile_px}",
            )
        if not 1.0 < self.size_exponent < 4.0:
            raise ParameterError("size_exponent", f"must lie in (1, 4), got {self.size_exponent}")
        if not 0 < self.min_lake_km2 < self.max_lake_km2:
            raise ParameterError(
                "min_lake_km2",
                f"sizes must satisfy 0 < min_lake_km2 < max_lake_km2, got {self.min_lake_km2} and {self.max_lake_km2}",
            )
        if self.tiles is not None:
            unknown = [t for t in self.tiles if t not in SITES_BY_NAME]
            if unknown or not self.tiles:
                raise ParameterError("tiles", f"unknown tile(s) {unknown}; known: {sorted(SITES_BY_NAME)}")
        for biome, changes in self.biome_overrides.items():
            if biome not in BIOMES:
                raise ParameterError("biome_overrides", f"unknown biome {biome!r}; known: {sorted(BIOMES)}")
            known = {f.name for f in fields(Biome)}
            bad = sorted(set(changes) - known)
            if bad:
                raise ParameterError("biome_overrides", f"biome {biome!r} has no field(s) {bad}")
        for name in BIOMES:
            b = self.biome(name)
            types = {**b.water_types, b.river_water: 1.0}
            if set(types) - set(WATER_TYPES) or min(types.values()) < 0 or sum(b.water_types.values()) <= 0:
                raise ParameterError(
                    "biome_overrides",
                    f"biome {name!r}: water types must be among {list(WATER_TYPES)} with weights >= 0 "
                    f"(some > 0), got {b.water_types} and river water {b.river_water!r}",
                )
        try:
            start, end = dt.date.fromisoformat(self.start), dt.date.fromisoformat(self.end)
        except (TypeError, ValueError) as exc:
            raise ParameterError("start", f"dates must be ISO YYYY-MM-DD: {exc}") from exc
        if not (S2_ERA[0] <= start < end <= S2_ERA[1]):
            raise ParameterError(
                "start",
                f"period {start}..{end} lies outside the Sentinel-2 L2A era {S2_ERA[0]}..{S2_ERA[1]} (or start >= end)",
            )
        return self

    def sites(self) -> list[Site]:
        """The sites this world builds, in a fixed order."""
        names = self.tiles or tuple(s.name for s in SITES)
        return [SITES_BY_NAME[n] for n in names]

    def biome(self, name: str) -> Biome:
        """A biome with this config's overrides applied."""
        if name not in BIOMES:
            raise ParameterError("biome", f"unknown biome {name!r}; known: {sorted(BIOMES)}")
        return replace(BIOMES[name], **self.biome_overrides.get(name, {}))
