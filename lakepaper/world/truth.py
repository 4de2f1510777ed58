"""The true state of one tile at 10 m: land cover, water bodies, lakes and masks.

Water is described by a *wetness threshold* per pixel: a water pixel is wet in
a scene when the tile's wetness at that date exceeds its threshold. Wetness
swings around 0.5 with the biome's seasonality, so thresholds below
0.5 - seasonality are permanent water, thresholds near 0.5 flood about half of
the time (the *typical* extent the paper's mean composite maps), and higher
ones only in the wet season. Land has threshold ``DRY`` (never wet).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from pyproj import CRS
from rasterio import features
from rasterio.transform import Affine, from_origin
from scipy import ndimage
from shapely import union_all
from shapely.geometry import LineString

from lakepaper.truth import WATER_TYPES
from lakepaper.world import lakes as lk
from lakepaper.world.fields import fractal_field, threshold_for_fraction
from lakepaper.world.sites import Biome, Site
from lakepaper.world.spectra import SURFACES, TYPE_SURFACE

DRY = np.float32(9.0)  # wetness threshold of land: never wet
PIXEL_M = 10.0

#: Lake types of the truth table and the water surface each shows.
LAKE_TYPES = ("natural", "reservoir", "oxbow", "ice", "salt", "lagoon")
TYPE_CODE = {t: i + 1 for i, t in enumerate(LAKE_TYPES)}


def utm_crs(lat: float, lon: float) -> CRS:
    """The UTM zone of a point (Sentinel-2 tiles are delivered in UTM)."""
    zone = int((lon + 180) // 6) + 1
    return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


@dataclass
class Lake:
    """One lake of the truth table (areas filled in after rasterising)."""

    lake_id: int
    type: str
    row: float
    col: float
    from_size_law: bool
    drawn_km2: float
    water: str  # optical water type, one of lakepaper.truth.WATER_TYPES
    mix: float  # base share of the type's companion surface (spectra.WATER_COMPANION)
    seasonal: float
    area_km2: float = 0.0
    area_perm_km2: float = 0.0
    area_max_km2: float = 0.0


@dataclass
class TileTruth:
    """Everything true about one tile; the scenes and references are derived from it."""

    site: Site
    biome: Biome
    crs: CRS
    transform: Affine
    cover: np.ndarray  # uint8 surface code of the dry land
    brightness: np.ndarray  # float32 texture multiplier of land reflectance
    threshold: np.ndarray  # float32 wetness threshold; DRY on land
    water: np.ndarray  # uint8 surface code shown when wet
    water_mix: np.ndarray  # float32 0..1: share of the companion surface mixed into water (sediment, brine, mud)
    lake_id: np.ndarray  # int32 lake id over the lake's maximum extent (0: not a lake)
    slope: np.ndarray  # float32 terrain slope, radians (0 where flat)
    aspect: np.ndarray  # float32 direction the slope faces, radians clockwise from north
    masks: dict[str, np.ndarray]  # river, ocean, urban, glacier, saltflat, paddy, floodplain, shadow_buildings
    lakes: list[Lake]
    river_line: LineString | None = None
    river_width_m: float = 0.0
    dams: list[tuple[float, float]] = field(default_factory=list)  # (row, col) of dams

    @property
    def shape(self) -> tuple[int, int]:
        return self.cover.shape

    def typical_lake_id(self) -> np.ndarray:
        """Lake ids at the typical extent (flooded at least half of the time): what labels map."""
        return np.where(self.threshold < 0.5, self.lake_id, 0).astype(np.int32)

    def occurrence(self) -> np.ndarray:
        """Percent of the time each pixel is water (0..100), from the wetness cycle."""
        return occurrence_from_threshold(self.threshold, self.biome.seasonality)

    def water_type(self) -> np.ndarray:
        """Optical water type code (1.. in :data:`lakepaper.truth.WATER_TYPES`) of every pixel ever wet; 0 else."""
        lut = np.zeros(max(SURFACES.values()) + 1, np.uint8)
        for code, name in enumerate(WATER_TYPES, start=1):
            lut[SURFACES[TYPE_SURFACE[name]]] = code
        return np.where(self.threshold < DRY, lut[self.water], 0).astype(np.uint8)


def occurrence_from_threshold(threshold: np.ndarray, seasonality: float) -> np.ndarray:
    """P(wetness > threshold) for wetness = 0.5 + A sin(phase), phase uniform: arccos(u) / pi."""
    a = max(seasonality, 1e-6)
    u = np.clip((threshold - 0.5) / a, -1.0, 1.0)
    occ = np.arccos(u) / np.pi * 100.0
    return np.where(threshold >= DRY, 0, np.rint(occ)).astype(np.uint8)


def size_cap_km2(tile_px: int, max_lake_km2: float) -> float:
    """Largest lake drawn from the size law into a tile: the configured maximum, or 1/20 of the tile.

    Larger draws would often find no room inside the tile, and dropping them would steepen the
    realised law (measured: tau 2.14 fitted back as 2.22 with a cap of 1/5 on 512 px tiles).
    """
    return min(max_lake_km2, 0.05 * tile_px * tile_px * lk.PIXEL_KM2)


def tile_grid(site: Site, tile_px: int) -> tuple[CRS, Affine]:
    """UTM grid of a tile centred on its site, origin snapped to 10 m."""
    from pyproj import Transformer

    crs = utm_crs(site.lat, site.lon)
    x, y = Transformer.from_crs(4326, crs, always_xy=True).transform(site.lon, site.lat)
    half = tile_px * PIXEL_M / 2
    left, top = round((x - half) / PIXEL_M) * PIXEL_M, round((y + half) / PIXEL_M) * PIXEL_M
    return crs, from_origin(left, top, PIXEL_M, PIXEL_M)


def _assign_background(rng: np.random.Generator, n: int, shares: dict[str, float]) -> np.ndarray:
    names = list(shares)
    w = np.array([shares[k] for k in names], dtype=float)
    w /= w.sum()
    f = fractal_field(rng, (n, n), beta=3.2, scale_px=n / 3)
    edges = np.quantile(f, np.cumsum(w)[:-1])
    idx = np.searchsorted(edges, f)
    codes = np.array([SURFACES[k] for k in names], dtype=np.uint8)
    return codes[idx]


def _river(rng: np.random.Generator, n: int, width_px: float) -> LineString:
    """A meandering river crossing the tile from west to east."""
    x = np.linspace(-0.1 * n, 1.1 * n, 400)
    y0 = rng.uniform(0.35, 0.65) * n
    wl = rng.uniform(0.35, 0.6) * n
    amp = rng.uniform(0.05, 0.12) * n
    y = y0 + amp * np.sin(2 * np.pi * x / wl + rng.uniform(0, 2 * np.pi))
    y += 0.03 * n * np.sin(2 * np.pi * x / (wl / 3.1) + rng.uniform(0, 2 * np.pi))
    return LineString(np.column_stack([x, y]))  # (col, row) pixel coordinates


def _burn(shape: tuple[int, int], geom, *, all_touched: bool = False) -> np.ndarray:
    return features.rasterize([(geom, 1)], out_shape=shape, fill=0, all_touched=all_touched, dtype=np.uint8).astype(
        bool
    )


class _Placer:
    """Places lakes without overlap into the allowed part of a tile."""

    def __init__(
        self, truth: TileTruth, forbidden: np.ndarray, rough: np.ndarray, plume: np.ndarray, rng: np.random.Generator
    ):
        self.t = truth
        self.busy = forbidden.copy()
        self.rough = rough
        self.plume = plume
        self.rng = rng

    def place(
        self, lake: Lake, shape: lk.Shape, *, ring: float, centre_pool: np.ndarray | None = None, tries: int = 40
    ) -> bool:
        n = self.t.shape[0]
        half = int(math.ceil(shape.extent_px(ring)))
        if 2 * half + 3 >= n:
            return False
        for _ in range(tries):
            if centre_pool is not None and len(centre_pool):
                r, c = centre_pool[self.rng.integers(len(centre_pool))]
                r, c = r + self.rng.uniform(-0.5, 0.5), c + self.rng.uniform(-0.5, 0.5)
            else:
                r, c = self.rng.uniform(half + 1, n - half - 1, 2)
            if self.busy[int(r), int(c)]:  # cheap rejection before shaping the lake
                continue
            r0, c0 = int(r) - half, int(c) - half
            if r0 < 1 or c0 < 1 or r0 + 2 * half + 1 >= n - 1 or c0 + 2 * half + 1 >= n - 1:
                continue
            win = np.s_[r0 : r0 + 2 * half + 1, c0 : c0 + 2 * half + 1]
            off = np.arange(2 * half + 1, dtype=np.float64)
            rho = lk.shore_coordinate(shape, (off + r0 - r)[:, None], (off + c0 - c)[None, :])
            if shape.radius_px > 3:  # a ragged shore: about 1.5 px of jitter whatever the lake's size
                rho = rho + min(0.06, 1.5 / shape.radius_px) * self.rough[win]
            inside = rho < 1.0 + ring
            if inside.sum() == 0 or not (rho < 1.0).any():
                continue
            halo = ndimage.binary_dilation(inside, iterations=2)
            if (halo & self.busy[win]).any():
                continue
            self._burn(lake, win, rho, inside, ring)
            self.busy[win] |= halo
            lake.row, lake.col = r, c
            return True
        return False

    def _burn(self, lake: Lake, win, rho: np.ndarray, inside: np.ndarray, ring: float) -> None:
        a = self.t.biome.seasonality * lake.seasonal
        # rho = 1 - ring -> permanent edge (0.5 - a); rho = 1 -> 0.5; rho = 1 + ring -> 0.5 + a
        u = np.clip((rho - 1.0) / max(ring, 1e-6), -1.0, 1.0)
        thr = np.where(rho < 1.0 - ring, 0.0, 0.5 + a * u).astype(np.float32)
        if ring <= 0:
            thr = np.where(rho < 1.0, 0.0, DRY).astype(np.float32)
        t = self.t
        t.threshold[win] = np.where(inside, np.minimum(t.threshold[win], thr), t.threshold[win])
        t.lake_id[win] = np.where(inside, lake.lake_id, t.lake_id[win])
        t.water[win] = np.where(inside, SURFACES[TYPE_SURFACE[lake.water]], t.water[win])
        margin = np.clip((rho - 0.7) / 0.3, 0.0, 1.0)  # 0 in the open water, 1 at the typical shore
        t.water_mix[win] = np.where(inside, lake_mix(lake, self.plume[win], margin), t.water_mix[win])


#: Per optical type: (range of a lake's base companion share, amplitude of its plumes and patches,
#: the plume field's level above which patches form, change toward the shore). Sediment plumes
#: spread over half a lake; scum gathers in patches over about a sixth of it (the field above one
#: sigma); a shallow lake is shallow at its margins (less of its deep, clear companion there);
#: turbid margins are muddier.
_MIXING: dict[str, tuple[tuple[float, float], float, float, float]] = {
    "clear": ((0.0, 0.3), 0.3, 0.0, 0.15),
    "turbid": ((0.0, 0.4), 0.4, 0.0, 0.15),
    "very_turbid": ((0.0, 0.3), 0.4, 0.0, 0.0),
    "eutrophic": ((0.0, 0.1), 0.8, 1.0, 0.0),
    "humic": ((0.0, 0.3), 0.2, 0.0, 0.1),
    "shallow": ((0.3, 0.7), 0.3, 0.0, -0.5),
    "glacial": ((0.0, 0.4), 0.2, 0.0, 0.1),
    "saline": ((0.0, 0.45), 0.3, 0.0, 0.15),
}


#: Reservoirs trap most of their river's sediment (trap efficiency > 90 % for large reservoirs:
#: Brune, 1953, Trans. AGU 34; Vorosmarty et al., 2003): their water is clearer than the river's,
#: turbid near the inflow (plumes), whatever the landscape's other lakes are like.
RESERVOIR_WATER = {"clear": 0.45, "eutrophic": 0.25, "turbid": 0.3}


def water_for(biome: Biome, lake_type: str, rng: np.random.Generator) -> tuple[str, float]:
    """A lake's optical water type and base companion share: glacial and salt lakes are what they
    are, reservoirs drawn from :data:`RESERVOIR_WATER`; others from the biome's
    :attr:`~lakepaper.world.sites.Biome.water_types`."""
    if lake_type == "ice":
        kind = "glacial"
    elif lake_type == "salt":  # brine over mud: NDWI from about +0.25 down to about 0
        kind = "saline"
    else:
        mix = RESERVOIR_WATER if lake_type == "reservoir" else biome.water_types
        names = list(mix)
        w = np.array([mix[k] for k in names], float)
        kind = str(names[int(rng.choice(len(names), p=w / w.sum()))])
    lo, hi = _MIXING[kind][0]
    return kind, float(rng.uniform(lo, hi))


def lake_mix(lake: Lake, plume: np.ndarray, margin: np.ndarray | float) -> np.ndarray:
    """Per-pixel companion share inside a lake: its base share, plumes (``plume``: a unit-variance
    field) and the change toward the shore (``margin``: 0 open water .. 1 shore)."""
    _, amp, level, toward_shore = _MIXING[lake.water]
    patches = np.clip(plume - level, 0.0, None)  # plumes and scum patches cover part of the lake, not all
    return np.clip(lake.mix + amp * 0.5 * patches + toward_shore * margin, 0.0, 1.0).astype(np.float32)


def terrain(rng: np.random.Generator, n: int, slope_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Slope and aspect (radians) of a fractal terrain whose median slope is ``slope_deg`` (flat if 0).

    Valleys of a few km with ridges of a few hundred metres (two smooth random fields), scaled so
    that half the land is steeper than ``slope_deg``: the statistic terrain is described by
    (e.g. ~20-25 degrees in high mountains, a few degrees in hill country).
    """
    if slope_deg <= 0:
        z = np.zeros((n, n), np.float32)
        return z, z.copy()
    elev = fractal_field(rng, (n, n), beta=3.6, scale_px=n / 3) + 0.5 * fractal_field(
        rng, (n, n), beta=3.6, scale_px=60
    )
    elev = ndimage.gaussian_filter(elev, 1.5)
    gy, gx = np.gradient(elev, PIXEL_M)  # rows run south, columns east
    grad = np.hypot(gx, gy)
    k = math.tan(math.radians(slope_deg)) / max(float(np.median(grad)), 1e-12)
    slope = np.arctan(k * grad).astype(np.float32)
    aspect = np.mod(np.arctan2(-gx, gy), 2 * np.pi).astype(np.float32)  # downslope direction, clockwise from north
    return slope, aspect


def build_tile(
    site: Site,
    biome: Biome,
    *,
    tile_px: int,
    tile_index: int,
    size_exponent: float,
    min_lake_km2: float,
    max_lake_km2: float,
    rng: np.random.Generator,
    optics_rng: np.random.Generator | None = None,
    streams_rng: np.random.Generator | None = None,
) -> TileTruth:
    """Simulate the truth of one tile.

    The order matters and follows the landscape: cover, glaciers, towns, salt
    flats, coast, river and floodplain, paddies, then the designed water bodies
    (reservoirs, oxbows, lagoons), then the power-law lakes in the space left.
    ``optics_rng`` draws what only changes how things look (water types, plumes, terrain,
    asphalt), so that the layout of a seed does not depend on it; ``streams_rng`` the outlet streams
    (:func:`outlet_streams`), drawn last.
    """
    n = tile_px
    shape = (n, n)
    optics = optics_rng if optics_rng is not None else np.random.default_rng(rng.integers(2**63))
    crs, transform = tile_grid(site, n)
    cover = _assign_background(rng, n, biome.background)
    slope, aspect = terrain(optics, n, biome.slope_deg)
    plume = fractal_field(optics, shape, beta=2.6, scale_px=40)
    brightness = (
        1.0
        + 0.10 * fractal_field(rng, shape, beta=3.0, scale_px=n / 4)
        + 0.04 * fractal_field(rng, shape, beta=1.5, scale_px=8)
    ).astype(np.float32)
    rough = fractal_field(rng, shape, beta=2.0, scale_px=6)
    truth = TileTruth(
        site=site,
        biome=biome,
        crs=crs,
        transform=transform,
        cover=cover,
        brightness=brightness,
        threshold=np.full(shape, DRY, np.float32),
        water=np.zeros(shape, np.uint8),
        water_mix=np.zeros(shape, np.float32),
        lake_id=np.zeros(shape, np.int32),
        slope=slope,
        aspect=aspect,
        masks={
            k: np.zeros(shape, bool)
            for k in ("river", "ocean", "urban", "glacier", "saltflat", "paddy", "floodplain", "building_shadow")
        },
        lakes=[],
    )
    m = truth.masks
    rows, cols = np.mgrid[0:n, 0:n]

    if biome.glacier_fraction > 0:  # glaciers on the high side of a tilted terrain
        slope = (rows + cols) / (2 * n) - 0.5
        elev = fractal_field(rng, shape, beta=3.4, scale_px=n / 3) + 7.0 * slope
        m["glacier"] = elev > threshold_for_fraction(elev, biome.glacier_fraction)
        cover[m["glacier"]] = SURFACES["glacier_ice"]
        summit = elev > threshold_for_fraction(elev, biome.glacier_fraction * 0.35)
        cover[summit] = SURFACES["snow"]  # firn: snow all year
    if biome.urban_fraction > 0:
        f = fractal_field(rng, shape, beta=3.5, scale_px=n / 2) - 1.5 * np.hypot(rows / n - 0.5, cols / n - 0.5)
        m["urban"] = f > threshold_for_fraction(f, biome.urban_fraction)
        cover[m["urban"]] = SURFACES["urban"]
        roads = fractal_field(optics, shape, beta=1.8, scale_px=6)  # asphalt and dark roofs in the fabric
        cover[m["urban"] & (roads > threshold_for_fraction(roads, biome.asphalt_share))] = SURFACES["asphalt"]
        # buildings cast 2-4 px shadows: dark, bluish, NDWI > 0 (the BR hard case)
        n_shadow = int(m["urban"].sum() * 0.12 / 8)
        ur, uc = np.nonzero(m["urban"])
        pick = rng.integers(0, len(ur), n_shadow)
        for r, c in zip(ur[pick], uc[pick], strict=True):
            h, w = rng.integers(1, 4), rng.integers(2, 6)
            m["building_shadow"][r : r + h, c : c + w] = True
        m["building_shadow"] &= m["urban"]
        cover[m["building_shadow"]] = SURFACES["building_shadow"]
    if biome.saltflat_fraction > 0:
        f = fractal_field(rng, shape, beta=3.0, scale_px=n / 3) - 2.5 * np.hypot(rows / n - 0.45, cols / n - 0.55)
        m["saltflat"] = f > threshold_for_fraction(f, biome.saltflat_fraction)
        cover[m["saltflat"]] = SURFACES["salt_crust"]
    if biome.coast:  # ocean on the west side, a generalisable ragged coastline
        line = 0.22 * n + 0.05 * n * fractal_field(rng, (n, 8), beta=3.0, scale_px=n)[:, 0]
        m["ocean"] = cols < line[:, None]
        truth.threshold[m["ocean"]] = 0.0
        truth.water[m["ocean"]] = SURFACES["turbid_water"]

    if biome.river_width_m > 0:
        width_px = biome.river_width_m / PIXEL_M
        river = _river(rng, n, width_px)
        truth.river_line, truth.river_width_m = river, biome.river_width_m
        core = _burn(shape, river.buffer(width_px / 2))
        bank = _burn(shape, river.buffer(width_px / 2 + max(2.0, 0.3 * width_px))) & ~core
        m["river"] = core | bank
        truth.threshold[core] = 0.0
        truth.threshold[bank] = np.float32(0.5 + 0.6 * biome.seasonality)  # flooded banks in the wet season
        truth.water[m["river"]] = SURFACES[TYPE_SURFACE[biome.river_water]]
        truth.water_mix[m["river"]] = np.clip(0.3 + 0.3 * plume[m["river"]], 0, 1)  # sediment-laden and clearer reaches
        if biome.floodplain:
            m["floodplain"] = _burn(shape, river.buffer(width_px * 4 + 0.18 * n))
    if biome.paddy_fraction > 0:  # rectangular paddies, flooded at transplanting, in the floodplain
        zone = m["floodplain"] if m["floodplain"].any() else np.ones(shape, bool)
        f = fractal_field(rng, shape, beta=3.0, scale_px=n / 4)
        fields_on = (f > threshold_for_fraction(f[zone], biome.paddy_fraction / max(zone.mean(), 1e-3))) & zone
        grid = ((rows // 24) % 2 == 0) | ((cols // 32) % 3 != 0)  # field parcels with bunds between them
        paddy = fields_on & grid & ~m["river"] & ~m["urban"]
        m["paddy"] = paddy
        cover[paddy] = SURFACES["paddy"]
        truth.threshold[paddy] = np.float32(0.5 + 0.5 * biome.seasonality)
        truth.water[paddy] = SURFACES["turbid_water"]

    forbidden = m["ocean"] | m["river"] | m["paddy"] | m["building_shadow"]
    forbidden |= ndimage.binary_dilation(m["ocean"] | m["river"], iterations=3)
    placer = _Placer(truth, forbidden | m["glacier"], rough, plume, rng)
    next_id = tile_index * 100_000 + 1

    def new_lake(kind: str, drawn: float, law: bool) -> Lake:
        nonlocal next_id
        water, base_mix = water_for(biome, kind, optics)
        lake = Lake(next_id, kind, 0, 0, law, drawn, water, base_mix, seasonal=rng.uniform(0.4, 1.0))
        next_id += 1
        return lake

    # Reservoirs: a dammed valley, a dendritic lake along the river.
    if biome.n_reservoirs and truth.river_line is not None:
        river = truth.river_line
        for k in range(biome.n_reservoirs):
            s = (k + 0.5 + rng.uniform(-0.2, 0.2)) / biome.n_reservoirs * river.length * 0.8 + 0.1 * river.length
            dam = river.interpolate(s)
            upstream = LineString([river.interpolate(d) for d in np.linspace(max(s - 0.12 * n, 0), s, 30)])
            arms = [upstream.buffer(rng.uniform(6, 14))]
            for _ in range(int(rng.integers(2, 5))):
                p = upstream.interpolate(rng.uniform(0.1, 0.9), normalized=True)
                ang, ln = rng.uniform(0, 2 * np.pi), rng.uniform(0.04, 0.1) * n
                arms.append(
                    LineString([p, (p.x + ln * math.cos(ang), p.y + ln * math.sin(ang))]).buffer(rng.uniform(3, 7))
                )
            geom = union_all(arms)
            mask = _burn(shape, geom) & ~m["ocean"]
            if mask.sum() < 50 or (mask & (truth.lake_id > 0)).any():
                continue
            lake = new_lake("reservoir", mask.sum() * lk.PIXEL_KM2, False)
            ring = _burn(shape, geom.buffer(3)) & ~mask & ~m["river"] & (truth.lake_id == 0)
            truth.threshold[mask] = 0.0
            truth.threshold[ring] = np.float32(0.5 + 0.5 * biome.seasonality)  # drawdown zone
            shore = ndimage.distance_transform_edt(mask) < 4  # the last 30 m of the reservoir and its drawdown ring
            for sel in (mask, ring):
                truth.lake_id[sel] = lake.lake_id
                truth.water[sel] = SURFACES[TYPE_SURFACE[lake.water]]
                truth.water_mix[sel] = lake_mix(lake, plume[sel], (shore | ring)[sel].astype(np.float32))
            m["river"] &= ~mask
            placer.busy |= ndimage.binary_dilation(mask | ring, iterations=2)
            lake.row, lake.col = float(dam.y), float(dam.x)
            truth.dams.append((float(dam.y), float(dam.x)))
            truth.lakes.append(lake)

    # Oxbows: crescents cut off beside the river, in the floodplain.
    if biome.n_oxbows and truth.river_line is not None:
        near = ndimage.distance_transform_edt(~m["river"]) * PIXEL_M
        pool = np.argwhere((near > 150) & (near < 900))
        for _ in range(biome.n_oxbows):
            area = float(rng.uniform(0.05, 0.4))
            lake = new_lake("oxbow", area, False)
            if placer.place(lake, lk.crescent_shape(rng, area, rng.uniform(5, 10)), ring=0.25, centre_pool=pool):
                truth.lakes.append(lake)

    # Lagoons: coastal lakes joined to the sea by a tidal inlet.
    if biome.coast:
        dist_sea = ndimage.distance_transform_edt(~m["ocean"]) * PIXEL_M
        pool = np.argwhere((dist_sea > 200) & (dist_sea < 700))
        for _ in range(3):
            area = float(rng.uniform(0.1, 0.8))
            lake = new_lake("lagoon", area, False)
            if placer.place(lake, lk.blob_shape(rng, area, elongation=0.6), ring=0.1, centre_pool=pool):
                # the inlet: a straight channel west to the sea
                r, c = int(lake.row), int(lake.col)
                sea_cols = np.nonzero(m["ocean"][r])[0]
                if len(sea_cols):
                    inlet = np.zeros(shape, bool)
                    inlet[max(r - 2, 0) : r + 2, sea_cols.max() : c] = True
                    inlet &= truth.lake_id != lake.lake_id
                    truth.threshold[inlet] = 0.0
                    truth.water[inlet] = SURFACES["turbid_water"]
                    m["ocean"] |= inlet  # the inlet is sea water, not lake
                truth.lakes.append(lake)

    tile_km2 = n * n * lk.PIXEL_KM2
    target = biome.lake_fraction * tile_km2
    if biome.anchor_km2 > 0:  # the landscape's one large lake, placed first
        kind = "salt" if "salt" in biome.lake_types else "natural"
        for area in min(biome.anchor_km2, 0.2 * tile_km2) * np.array([1.0, 0.7, 0.5]):  # smaller if no room
            lake = new_lake(kind, float(area), False)
            if placer.place(lake, lk.blob_shape(rng, float(area)), ring=0.05 + 0.1 * biome.seasonality, tries=80):
                truth.lakes.append(lake)
                break

    # Power-law lakes, large first, until the biome's lake share is reached.
    a_max = size_cap_km2(n, max_lake_km2)
    drawn = []
    while sum(drawn) < target:
        drawn.extend(lk.sample_areas(rng, 64, tau=size_exponent, a_min=min_lake_km2, a_max=a_max).tolist())
    drawn = np.array(drawn)
    drawn = drawn[: int(np.searchsorted(np.cumsum(drawn), target)) + 1]
    drawn.sort()
    kinds = list(biome.lake_types)
    weights = np.array([biome.lake_types[k] for k in kinds], float)
    weights /= weights.sum()
    glacier_pool = None
    if "ice" in kinds and m["glacier"].any():
        d = ndimage.distance_transform_edt(~m["glacier"]) * PIXEL_M
        glacier_pool = np.argwhere((d > 30) & (d < 1500))
    salt_pool = np.argwhere(m["saltflat"]) if m["saltflat"].any() else None
    for area in drawn[::-1]:
        kind = str(rng.choice(kinds, p=weights)) if len(kinds) > 1 else kinds[0]
        if kind in ("oxbow", "reservoir", "lagoon"):
            kind = "natural"
        lake = new_lake(kind, float(area), True)
        if site.biome == "ponds" and rng.random() < biome.rect_ponds and area < 0.05:
            shp = lk.rect_shape(rng, area)
        else:
            shp = lk.blob_shape(rng, area)
        ring = 0.25 * biome.seasonality / 0.5 * lake.seasonal if shp.radius_px > 2 else 0.0
        pool = glacier_pool if kind == "ice" else salt_pool if kind == "salt" else None
        if placer.place(lake, shp, ring=ring, centre_pool=pool):
            truth.lakes.append(lake)
    _measure(truth)
    if truth.river_line is not None:
        outlet_streams(truth, streams_rng if streams_rng is not None else np.random.default_rng(rng.integers(2**63)))
    if biome.mud_rings:  # the seasonal ring of a lake, when dry, is its exposed, wet bed
        ring = (truth.lake_id > 0) & (truth.threshold > 0.5 - biome.seasonality + 1e-6) & (truth.threshold < DRY)
        cover[ring] = SURFACES["wet_soil"]
    return truth


#: Share of the small lakes (:data:`OUTLET_KM2`) outside the floodplain of a tile with a river that drain by
#: a stream wide enough to be an OSM river area; the stream's length (px) and width (px).
OUTLET_SHARE, OUTLET_KM2, OUTLET_LENGTH_PX, OUTLET_WIDTH_PX = 0.25, (0.005, 0.03), (5.0, 12.0), 2.0


def outlet_streams(truth: TileTruth, rng: np.random.Generator) -> int:
    """Outlet streams of small lakes in a tile with a river: a straight channel OUTLET_WIDTH_PX wide from the
    shore outward for OUTLET_LENGTH_PX, river water in the river mask (so OSM maps it as a river area, as it
    maps the wider streams of the real world) that fades out before reaching anything else.

    The U-Net sees the stream with its lake, and the river mask cuts it off again: the lake keeps most of its
    area, and a lake of this size is below GLAKES' 0.03 km2 minimum, so this is the paper's Fig. 3 case b
    (no GLAKES, Area Ratio >= 0.8: the masked lake is kept). Lakes in the floodplain are left out (GLAKES'
    flood water glues them to its lakes). Returns the number of streams drawn.
    """
    m, n = truth.masks, truth.shape[0]
    others = m["ocean"] | m["river"] | m["paddy"] | m["building_shadow"] | m["glacier"] | m["floodplain"]
    drawn = 0
    for lake in truth.lakes:
        if not (OUTLET_KM2[0] <= lake.area_km2 <= OUTLET_KM2[1]) or lake.type != "natural":
            continue
        if rng.random() >= OUTLET_SHARE:
            continue
        own = truth.lake_id == lake.lake_id
        radius = math.sqrt(own.sum() / math.pi)
        angle, length = rng.uniform(0, 2 * np.pi), rng.uniform(*OUTLET_LENGTH_PX)
        end = (lake.col + (radius + length) * math.cos(angle), lake.row + (radius + length) * math.sin(angle))
        if not (2 <= end[0] < n - 2 and 2 <= end[1] < n - 2):
            continue
        line = LineString([(lake.col + 0.5, lake.row + 0.5), (end[0] + 0.5, end[1] + 0.5)])
        stream = _burn(truth.shape, line.buffer(OUTLET_WIDTH_PX / 2)) & ~own
        busy = others | ((truth.lake_id > 0) & ~own)
        if not stream.any() or (ndimage.binary_dilation(stream, iterations=2) & busy).any():
            continue
        m["river"] |= stream
        truth.threshold[stream] = 0.0
        truth.water[stream] = SURFACES[TYPE_SURFACE[lake.water]]
        truth.water_mix[stream] = 0.5
        drawn += 1
    return drawn


def _measure(truth: TileTruth) -> None:
    """Fill each lake's typical, permanent and maximum areas from the rasters."""
    ids = truth.lake_id.ravel()
    thr = truth.threshold.ravel()
    size = int(ids.max()) + 1 if ids.size else 1
    a_max = np.bincount(ids, minlength=size)
    a_typ = np.bincount(ids, weights=thr < 0.5, minlength=size)
    perm_limit = 0.5 - truth.biome.seasonality + 1e-6
    a_perm = np.bincount(ids, weights=thr <= perm_limit, minlength=size)
    keep = []
    for lake in truth.lakes:
        lake.area_km2 = float(a_typ[lake.lake_id]) * lk.PIXEL_KM2
        lake.area_perm_km2 = float(a_perm[lake.lake_id]) * lk.PIXEL_KM2
        lake.area_max_km2 = float(a_max[lake.lake_id]) * lk.PIXEL_KM2
        if lake.area_km2 > 0:
            keep.append(lake)
        else:  # too small to reach its typical extent at 10 m: not a lake
            sel = truth.lake_id == lake.lake_id
            truth.lake_id[sel] = 0
            truth.threshold[sel] = DRY
    truth.lakes = keep
