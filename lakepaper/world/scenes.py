"""Sentinel-2 acquisitions of a simulated tile: L1C, L2A, SCL and the s2cloudless probability.

One scene is made in the order light travels: the surface at the date (water
level, snow, vegetation phenology, the optical type of each lake with its plumes and
scum), terrain and cloud shadows darkening it, the sensor's point spread mixing
shoreline pixels, the atmosphere with the adjacency of bright shores, haze and clouds
on top (top of atmosphere, L1C), and an L2A processor that inverts the atmosphere for
the bands the compendium uses, leaving a per-scene residual offset and a per-band
gain error of the sizes reported for Sentinel-2 over inland water. The
cloud probability comes from the real s2cloudless classifier run on the L1C
bands, as Earth Engine's ``COPERNICUS/S2_CLOUD_PROBABILITY`` does.

s2cloudless classifies ~37,000 pixels/s here (2 threads); run at 10 m on every
scene it would take 16 s per 768 px scene. It runs instead on ``cloud_factor`` x
``cloud_factor`` blocks (8 x 8 -> 80 m) and the probability is upsampled
bilinearly to 10 m, as Earth Engine publishes it. Sentinel Hub computes its
precomputed s2cloudless layers at 160 m for speed. Measured on the compositing
stage (tiny world), coarser blocks let small clouds and cloud edges through:
composite residue 7.5 % of pixels at 160 m, 5.3 % at 80 m, 2.9 % at 40 m; the
demo world took 91 s to generate at 160 m and 378 s at 40 m. 80 m is the
compromise.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from lakepaper import truth as truth_contract
from lakepaper.world import spectra as sp
from lakepaper.world.fields import fractal_field, threshold_for_fraction
from lakepaper.world.truth import TileTruth

#: SCL classes of Sen2Cor that the simulator emits.
SCL = {
    "no_data": 0,
    "dark": 2,
    "cloud_shadow": 3,
    "vegetation": 4,
    "not_vegetated": 5,
    "water": 6,
    "cloud_medium": 8,
    "cloud_high": 9,
    "cirrus": 10,
    "snow": 11,
}
#: Bits of the per-scene truth raster (the truth contract's, :data:`lakepaper.truth.FLAG`).
FLAG = truth_contract.FLAG
THICK_ALPHA = 0.6  # cloud opacity from which a cloud counts as thick
REFLECTANCE_SCALE = 10000  # L1C and L2A digital numbers: reflectance x 10000 (harmonized, no offset)
PSF_SIGMA_PX = 0.5  # the MSI's point spread at 10 m (MTF ~0.2 at Nyquist): shoreline pixels are mixed
ADJACENCY_BLOCK = 16  # the surroundings that scatter into a pixel's view: ~160 m blocks, smoothed to ~0.5 km
RESIDUAL_SD = 0.012  # per-scene amplitude of the L2A processor's residual path error (spectra.RESIDUAL_SHAPE)
SENSOR_GAIN_SD = 0.01  # per-scene, per-band radiometric gain error (S2A/S2B cross-calibration ~1 %)


@dataclass
class Scene:
    """One acquisition: arrays ready to write, and its metadata."""

    scene_id: str
    date: dt.date
    l2a_10m: np.ndarray  # (4, n, n) uint16 B2 B3 B4 B8
    l2a_20m: np.ndarray  # (2, n/2, n/2) uint16 B11, SCL
    l1c: np.ndarray  # (13, nb, nb) uint16 at cloud_factor x 10 m
    cloud_prob: np.ndarray  # (n, n) uint8 0..100, 255 no data
    flags: np.ndarray  # (n, n) uint8 truth bits (FLAG)
    meta: dict


MAX_SUN_ZENITH = 70.0  # lower suns give dark, long-shadowed scenes that an archive search would not keep


def scene_dates(rng: np.random.Generator, n: int, start: str, end: str, *, lat: float = 0.0) -> list[dt.date]:
    """``n`` acquisition dates spread over the period: one per equal slice, jittered, sorted.

    Dates whose sun at 10:30 stands lower than ``MAX_SUN_ZENITH`` (high-latitude winters) are
    redrawn within their slice; a slice with no such day keeps its last draw.
    """
    d0, d1 = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    span = (d1 - d0).days
    edges = np.linspace(0, span, n + 1)
    days = []
    for i in range(n):
        for _ in range(24):
            day = int(rng.uniform(edges[i], max(edges[i + 1] - 1, edges[i])))
            if solar_angles(d0 + dt.timedelta(days=day), lat)[0] <= MAX_SUN_ZENITH:
                break
        days.append(day)
    return [d0 + dt.timedelta(days=d) for d in sorted(days)]


def solar_angles(date: dt.date, lat: float) -> tuple[float, float]:
    """Solar zenith and azimuth (degrees, azimuth clockwise from north) at 10:30 local solar time.

    Sentinel-2's descending node crosses at 10:30; declination from Cooper (1969).
    """
    doy = date.timetuple().tm_yday
    decl = math.radians(23.44) * math.sin(2 * math.pi * (284 + doy) / 365)
    phi = math.radians(lat)
    hour = math.radians(-22.5)
    cos_z = math.sin(phi) * math.sin(decl) + math.cos(phi) * math.cos(decl) * math.cos(hour)
    zenith = math.degrees(math.acos(max(min(cos_z, 1.0), -1.0)))
    az_south = math.atan2(math.sin(hour), math.cos(hour) * math.sin(phi) - math.tan(decl) * math.cos(phi))
    azimuth = (math.degrees(az_south) + 180.0) % 360.0
    return zenith, azimuth


def _winter(date: dt.date, lat: float) -> float:
    """0 in midsummer .. 1 in midwinter."""
    doy = date.timetuple().tm_yday
    coldest = 15 if lat >= 0 else 196
    return 0.5 * (1 + math.cos(2 * math.pi * (doy - coldest) / 365.25))


def wetness(date: dt.date, truth: TileTruth, year_offset: float) -> float:
    """Tile wetness at a date: 0.5 + seasonality x sin(season), wettest in local spring/summer."""
    doy = date.timetuple().tm_yday
    peak = 130 if truth.site.lat >= 0 else 310
    a = truth.biome.seasonality
    return float(0.5 + a * math.cos(2 * math.pi * (doy - peak) / 365.25) + a * year_offset)


def snow_level(date: dt.date, truth: TileTruth) -> float:
    """Share of land under seasonal snow at a date (high latitudes and the plateau in winter)."""
    cold = np.clip((abs(truth.site.lat) - 45.0) / 15.0, 0.0, 1.0)
    if truth.biome.glacier_fraction > 0:
        cold = max(cold, 0.5)
    return float(cold * _winter(date, truth.site.lat) ** 1.5)


def _block_mean(a: np.ndarray, f: int) -> np.ndarray:
    r, c = a.shape[-2] // f, a.shape[-1] // f
    return a.reshape(*a.shape[:-2], r, f, c, f).mean(axis=(-3, -1))


def _upsample(a: np.ndarray, f: int) -> np.ndarray:
    return ndimage.zoom(a, f, order=1, mode="nearest", grid_mode=True)


class SceneMaker:
    """Makes the scenes of one tile; holds what is shared between them."""

    def __init__(self, truth: TileTruth, *, cloud_factor: int, detector, processor_rng: np.random.Generator) -> None:
        self.t = truth
        # the processor's errors draw from their own stream, so the weather does not depend on them
        self.processor_rng = processor_rng
        self.f = cloud_factor
        self.detector = detector
        n = truth.shape[0]
        self.pad = n // 4
        self.block_index = (
            (np.arange(n)[:, None] // cloud_factor) * (n // cloud_factor) + np.arange(n)[None, :] // cloud_factor
        ).ravel()
        self.n_blocks = (n // cloud_factor) ** 2
        codes = {v: k for k, v in sp.SURFACES.items()}
        pairs = [sp.WATER_COMPANION.get(codes[c], (codes[c], 0.0)) for c in range(len(codes))]
        self.companion = np.array([sp.SURFACES[name] for name, _ in pairs], np.uint8)
        self.mix_scale = np.array([scale for _, scale in pairs], np.float32)
        self.relief = bool(truth.slope.any())

    def make(self, date: dt.date, rng: np.random.Generator, *, year_offset: float, index: int) -> Scene:
        t, f = self.t, self.f
        n = t.shape[0]
        zen, az = solar_angles(date, t.site.lat)
        airmass = (1 / math.cos(math.radians(zen)) + 1) / (1 / math.cos(math.radians(30)) + 1)

        # --- the surface at this date ----------------------------------------------
        w = wetness(date, t, year_offset)
        wet = t.threshold < w
        cls = np.where(wet, t.water, t.cover)
        snow_share = snow_level(date, t)
        snow = np.zeros((n, n), bool)
        if snow_share > 0.02:
            field = fractal_field(rng, (n, n), beta=3.0, scale_px=n / 6)
            land = ~wet & (t.cover != sp.SURFACES["building_shadow"])
            snow = land & (field < np.quantile(field, snow_share))
            if snow_share > 0.45:  # lakes and rivers freeze and are snow-covered
                snow |= wet & ~t.masks["ocean"]
        snow |= t.cover == sp.SURFACES["snow"]  # firn
        cls = np.where(snow, sp.SURFACES["snow"], cls).astype(np.uint8)
        table = sp.SURFACE_TABLE.copy()
        green = 1.0 - (0.45 * _winter(date, t.site.lat) if abs(t.site.lat) > 23 else 0.15 * rng.random())
        dry = table[sp.SURFACES["bare_soil"]]
        for name in sp.VEGETATED:
            c = sp.SURFACES[name]
            table[c] = green * table[c] + (1 - green) * dry
        water_px = wet & ~snow
        mix = np.where(
            water_px, np.clip(t.water_mix + 0.15 * np.clip(t.threshold, 0, 1), 0, 1) * self.mix_scale[cls], 0.0
        ).astype(np.float32)
        gain = np.where(water_px, 1.0, t.brightness).astype(np.float32)
        # terrain: slopes facing away from the sun are lit by the sky alone (water is flat)
        lit = None
        if self.relief:
            zr, ar = math.radians(zen), math.radians(az)
            cos_i = math.cos(zr) * np.cos(t.slope) + math.sin(zr) * np.sin(t.slope) * np.cos(ar - t.aspect)
            lit = np.where(water_px, 1.0, np.clip(cos_i / math.cos(zr), 0.0, 2.5)).astype(np.float32)

        # --- clouds, haze and their shadows ------------------------------------------
        p = self.pad
        big = (n + 2 * p, n + 2 * p)
        u = rng.random()
        cover = 0.0 if u < 0.25 else rng.uniform(0.01, 0.15) if u < 0.5 else float(rng.beta(1.3, 1.5))
        cf = fractal_field(rng, big, beta=3.2, scale_px=rng.uniform(60, 200))
        thr = threshold_for_fraction(cf, cover)
        alpha_big = np.clip((cf - thr) / 0.7, 0.0, 1.0) ** 0.6
        height_km = rng.uniform(0.5, 3.0)
        shift = min(height_km * 1000 * math.tan(math.radians(zen)) / 10.0, p - 1)
        dc = -shift * math.sin(math.radians(az))  # shadows fall away from the sun
        dr = shift * math.cos(math.radians(az))
        r0, c0 = int(round(p - dr)), int(round(p - dc))
        shade = alpha_big[r0 : r0 + n, c0 : c0 + n]
        alpha = alpha_big[p : p + n, p : p + n]
        haze_level = rng.uniform(-1.8, 0.6)
        haze = (0.12 * np.clip(fractal_field(rng, (n, n), beta=3.0, scale_px=n / 3) + haze_level, 0, 3)).astype(
            np.float32
        )
        direct = (1.0 - 0.75 * shade).astype(np.float32)  # diffuse skylight remains in a shadow

        # --- L2A bands at 10 m (B2 B3 B4 B8 B11) -------------------------------------
        idx = sp.L2A_INDEX
        tab = table[:, idx]
        surf = tab[cls] * (1 - mix)[..., None] + tab[self.companion[cls]] * mix[..., None]
        surf *= (gain * direct)[..., None]
        if lit is not None:
            diffuse = sp.DIFFUSE_FRACTION[idx]
            surf *= diffuse + (1 - diffuse) * lit[..., None]
        surf = ndimage.gaussian_filter(surf, sigma=(PSF_SIGMA_PX, PSF_SIGMA_PX, 0), mode="nearest")
        surf += rng.normal(0.0, 0.002, surf.shape).astype(np.float32)
        env = _block_mean(np.moveaxis(surf, -1, 0), ADJACENCY_BLOCK)
        env = np.stack([_upsample(ndimage.gaussian_filter(b, 1.0, mode="nearest"), ADJACENCY_BLOCK) for b in env], -1)
        toa = sp.PATH_REFLECTANCE[idx] * airmass + (sp.TRANSMITTANCE[idx] ** airmass) * surf
        toa += sp.ADJACENCY[idx] * (env - surf)  # bright shores scatter into dark water's view
        toa = (1 - haze)[..., None] * toa + haze[..., None] * sp.HAZE_TOA[idx]
        toa = (1 - alpha)[..., None] * toa + alpha[..., None] * sp.CLOUD_TOA[idx]
        # the L2A processor: an aerosol misestimate leaves a per-scene offset, the sensor a per-band gain
        residual_amp = float(self.processor_rng.normal(0.0, RESIDUAL_SD))
        residual = residual_amp * sp.RESIDUAL_SHAPE[idx]
        sensor = self.processor_rng.normal(1.0, SENSOR_GAIN_SD, len(idx)).astype(np.float32)
        l2a = (sp.surface_from_toa(toa, idx, airmass=airmass) - residual) * sensor

        # --- L1C, all 13 bands, on cloud_factor blocks ------------------------------------
        k = len(sp.SURFACES)
        wgt = (gain * direct if lit is None else gain * direct * (0.15 + 0.85 * lit)).ravel()
        key = self.block_index * k
        own = np.bincount(key + cls.ravel(), weights=wgt * (1 - mix).ravel(), minlength=self.n_blocks * k)
        comp = np.bincount(key + self.companion[cls].ravel(), weights=wgt * mix.ravel(), minlength=self.n_blocks * k)
        surf_c = ((own + comp).reshape(self.n_blocks, k) @ table) / (f * f)
        nb = n // f
        toa_c = sp.toa_from_surface(surf_c.astype(np.float32), airmass=airmass).reshape(nb, nb, 13)
        h_c, a_c = _block_mean(haze, f)[..., None], _block_mean(alpha, f)[..., None]
        cloud_toa = sp.CLOUD_TOA.copy()
        cloud_toa[10] += sp.CIRRUS_PER_KM * max(height_km - 2.0, 0.0)
        toa_c = (1 - h_c) * toa_c + h_c * sp.HAZE_TOA
        toa_c = (1 - a_c) * toa_c + a_c * cloud_toa
        toa_c = np.clip(toa_c + rng.normal(0.0, 0.001, toa_c.shape), 0.0001, 1.5).astype(np.float32)

        # --- swath edge: some scenes see only part of the tile ------------------------------
        valid = np.ones((n, n), bool)
        if rng.random() < 0.2:
            cut = rng.uniform(0.15, 0.5) * 2 * n
            rr, cc = np.mgrid[0:n, 0:n]
            valid = (rr + cc) > cut if rng.random() < 0.5 else (rr + cc) < 2 * n - cut
        valid_c = _block_mean(valid.astype(np.float32), f) > 0.999

        # --- cloud probability: the real s2cloudless on the L1C blocks -------------------
        prob_c = self.detector.get_cloud_probability_maps(toa_c[None])[0]
        prob = np.clip(np.rint(_upsample(prob_c, f) * 100), 0, 100).astype(np.uint8)
        prob_valid = _upsample(valid_c.astype(np.float32), f) > 0.5
        prob[~(valid & prob_valid)] = 255

        # --- SCL (Sen2Cor-like rules at 20 m) -------------------------------------------
        b2, b3, b4, b8, b11 = (_block_mean(l2a[..., i], 2) for i in range(5))
        prob20 = _block_mean(np.where(prob == 255, 0, prob).astype(np.float32), 2) / 100
        cirrus20 = _upsample(toa_c[..., 10], f // 2)
        shade20 = _block_mean(shade, 2)
        ndwi = (b3 - b8) / np.maximum(b3 + b8, 1e-4)
        ndvi = (b8 - b4) / np.maximum(b8 + b4, 1e-4)
        ndsi = (b3 - b11) / np.maximum(b3 + b11, 1e-4)
        scl = np.full(b2.shape, SCL["not_vegetated"], np.uint8)
        scl[ndvi > 0.4] = SCL["vegetation"]
        scl[(b8 < 0.06) & (b2 < 0.06)] = SCL["dark"]
        scl[(ndwi > 0.1) & (b8 < 0.12)] = SCL["water"]
        scl[(shade20 > 0.3) & (b8 < 0.12) & (ndwi <= 0.1)] = SCL["cloud_shadow"]
        scl[(ndsi > 0.42) & (b3 > 0.45)] = SCL["snow"]  # Sen2Cor needs bright snow: dirty ice passes
        scl[(cirrus20 > 0.012) & (prob20 < 0.35)] = SCL["cirrus"]
        scl[prob20 >= 0.35] = SCL["cloud_medium"]
        scl[prob20 >= 0.65] = SCL["cloud_high"]
        valid20 = _block_mean(valid.astype(np.float32), 2) > 0.5
        scl[~valid20] = SCL["no_data"]

        # --- truth flags -------------------------------------------------------------
        flags = np.zeros((n, n), np.uint8)
        flags[alpha >= THICK_ALPHA] |= FLAG["thick_cloud"]
        flags[(alpha >= 0.05) & (alpha < THICK_ALPHA)] |= FLAG["thin_cloud"]
        flags[haze >= 0.05] |= FLAG["haze"]  # clear means (almost) no aerosol veil
        flags[(shade >= 0.3) & (alpha < 0.05)] |= FLAG["shadow"]
        flags[snow] |= FLAG["snow"]
        flags[water_px] |= FLAG["water"]
        flags[~valid] |= FLAG["no_data"]

        def dn(x: np.ndarray) -> np.ndarray:
            return np.clip(np.rint(x * REFLECTANCE_SCALE), 1, 65535).astype(np.uint16)

        l2a_10 = dn(np.moveaxis(l2a[..., :4], -1, 0))
        l2a_10[:, ~valid] = 0
        b11_20 = dn(_block_mean(l2a[..., 4], 2))
        b11_20[~valid20] = 0
        l1c = dn(np.moveaxis(toa_c, -1, 0))
        l1c[:, ~valid_c] = 0
        n_valid20 = max(int(valid20.sum()), 1)
        cloudy = np.isin(scl, (SCL["cloud_medium"], SCL["cloud_high"], SCL["cirrus"])) & valid20
        stamp = f"{date:%Y%m%d}T{103000 + index % 60:06d}"
        meta = {
            "system_index": f"{stamp}_{stamp}_{t.site.name}",
            "tile": t.site.name,
            "date": date.isoformat(),
            "SPACECRAFT_NAME": "Sentinel-2A" if index % 2 == 0 else "Sentinel-2B",
            "CLOUDY_PIXEL_PERCENTAGE": round(100.0 * cloudy.sum() / n_valid20, 4),
            "MEAN_SOLAR_ZENITH_ANGLE": round(zen, 4),
            "MEAN_SOLAR_AZIMUTH_ANGLE": round(az, 4),
            "truth_cloud_cover": round(float((alpha >= THICK_ALPHA).mean()), 4),
            "truth_any_cloud": round(float((alpha >= 0.05).mean()), 4),
            "truth_haze": round(float((haze >= 0.05).mean()), 4),
            "truth_shadow": round(float(((shade >= 0.3) & (alpha < 0.05)).mean()), 4),
            "truth_snow": round(float(snow.mean()), 4),
            "truth_valid": round(float(valid.mean()), 4),
            "wetness": round(w, 4),
            "cloud_height_km": round(height_km, 3),
            "truth_l2a_offset_b3": round(-residual_amp * float(sp.RESIDUAL_SHAPE[2]), 4),  # processor error in B3
        }
        return Scene(
            meta["system_index"], date, l2a_10, np.stack([b11_20, scl.astype(np.uint16)]), l1c, prob, flags, meta
        )
