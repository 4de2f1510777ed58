"""Reflectance of the simulated world's surfaces, atmosphere and clouds, per Sentinel-2 band.

Surface reflectances are typical values at the Sentinel-2 MSI band centres (rho = pi x Rrs for
water), read off published spectra and rounded. The water types are the optical water types of
inland waters (Spyrakos et al., 2018, Limnol. Oceanogr. 63; Pahlevan et al., 2017, RSE 201 and
2020, RSE 240 for their Sentinel-2 reflectances), chosen so that the world has the cases real
lake mapping meets, not only water that NDWI finds:

* clear (oligotrophic) water: Mobley, *Light and Water* (1994): dark beyond 600 nm, NDWI ~0.7.
* moderately turbid water (suspended sediment ~10-50 g/m3): green peak ~0.09, NDWI ~0.5.
* highly turbid water (sediment of 100+ g/m3; the Gironde and Scheldt: Doxaran et al., 2002,
  RSE 81, Knaeps et al., 2015, ISPRS J. 103; the Yangtze and Yellow River plumes; Amazon
  white-water varzea lakes): red and NIR as bright as green, **NDWI about 0 or below**, while
  SWIR (B11) stays low (~0.02), so MNDWI (B3 vs B11) still separates it from land.
* eutrophic water (chlorophyll-a ~50 mg/m3): green peak and a red-edge (B05) peak, NDWI ~0.3
  (Gitelson, 1992; Matthews et al., 2012, RSE 124); with **cyanobacteria scum** or floating
  vegetation the NIR rises well above green, like vegetation (Kutser, 2004, Limnol. Oceanogr.
  49), NDWI -0.6 where the scum is thick.
* humic (black-water, CDOM-rich) water: dark in every band, < 0.02 (Kutser et al., 2005,
  boreal lakes; the Rio Negro): the same darkness as shadows and lava.
* shallow clear water over a bright bottom (0.5-2 m over sand or carbonate; Lee et al., 1999,
  Appl. Opt. 38): bright in blue and green, dark in NIR.
* glacial flour lakes: Giardino et al. (2010); saline and brine lakes: Bryant & Rainey (2002, RSE 82).
* vegetation, soils, sand, rock, urban materials, asphalt, basalt (dark lava): USGS Spectral
  Library v7 (Kokaly et al., 2017), the ECOSTRESS library (Meerdink et al., 2019) and the Santa
  Barbara urban library (Herold et al., 2004, RSE 91): asphalt is dark and flat (NDWI ~-0.1).
* burn scars (fresh char and ash): dark VNIR, SWIR above NIR (Key & Benson, 2006, FIREMON NBR;
  Roy et al., 2006): NDWI ~-0.25 at low NIR.
* wet soil and exposed lake-bed mud: darker than dry soil by about half (Lobell & Asner, 2002,
  SSSA J. 66), NDWI ~-0.2: the drawdown zones of seasonal lakes and reservoirs.
* salt crust: the Salar de Uyuni calibration site, 0.5-0.8 in the VNIR
  (Lamparelli et al., 2003); wet crust slightly brighter in green than NIR.
* snow and glacier ice: Painter et al. (2009) and Hall & Riggs (2007, NDSI):
  very bright VNIR, dark SWIR; bare/dirty glacier ice about half as bright.
* building shadows: diffuse skylight only, dark and bluish (Zhou et al., 2009),
  which is why NDWI takes them for water. Terrain shadow: the surface lit by the sky alone, a
  share of the irradiance that falls with wavelength (:data:`DIFFUSE_FRACTION`).
* clouds (top of atmosphere): Zhu & Woodcock (2012, Fmask) and Zhu et al.
  (2015): thick cloud >= 0.4 in the visible, flat spectrum, bright SWIR;
  cirrus band B10 > 0.01 only for clouds high enough.
* atmosphere: Rayleigh plus continental aerosol path reflectance and two-way
  transmittance of a mid-latitude summer atmosphere (6S, Vermote et al.,
  1997), rounded; B09 and B10 lie in water-vapour absorption bands. What an L2A processor leaves
  behind (residual path radiance, adjacency of bright shores; Sterckx et al., 2015, and Pahlevan
  et al., 2021, RSE 258, on Sentinel-2 L2 over inland waters: errors of 0.005-0.02 in the
  visible): :data:`RESIDUAL_SHAPE` and :data:`ADJACENCY`.
"""

from __future__ import annotations

import numpy as np

#: All 13 Sentinel-2 MSI bands, in product order (s2cloudless expects this order).
S2_BANDS: tuple[str, ...] = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
#: Centre wavelengths, nm.
WAVELENGTH_NM: tuple[int, ...] = (443, 490, 560, 665, 705, 740, 783, 842, 865, 945, 1375, 1610, 2190)

#: Surface classes of the simulated world. The code is the value in ``cover.tif``.
SURFACES: dict[str, int] = {
    "clear_water": 0,
    "turbid_water": 1,
    "saline_water": 2,
    "glacial_water": 3,
    "forest": 4,
    "grass": 5,
    "cropland": 6,
    "paddy": 7,
    "bare_soil": 8,
    "sand": 9,
    "salt_crust": 10,
    "rock": 11,
    "urban": 12,
    "building_shadow": 13,
    "snow": 14,
    "glacier_ice": 15,
    "wetland": 16,
    "very_turbid_water": 17,
    "eutrophic_water": 18,
    "algal_scum": 19,
    "humic_water": 20,
    "shallow_water": 21,
    "asphalt": 22,
    "burn_scar": 23,
    "wet_soil": 24,
    "dark_lava": 25,
}
#: Surface shown by each optical water type (:data:`lakepaper.truth.WATER_TYPES`).
TYPE_SURFACE: dict[str, str] = {
    "clear": "clear_water",
    "turbid": "turbid_water",
    "very_turbid": "very_turbid_water",
    "eutrophic": "eutrophic_water",
    "humic": "humic_water",
    "shallow": "shallow_water",
    "glacial": "glacial_water",
    "saline": "saline_water",
}
WATER_SURFACES = tuple(TYPE_SURFACE.values())

# Surface reflectance (0..1) at the 13 band centres; B10 is never seen from the ground.
# fmt: off
_SURFACE = {
    #                 B01    B02    B03    B04    B05    B06    B07    B08    B8A    B09    B10   B11    B12
    "clear_water":   (0.045, 0.042, 0.038, 0.020, 0.014, 0.009, 0.008, 0.007, 0.006, 0.004, 0.0, 0.003, 0.002),
    "turbid_water":  (0.060, 0.068, 0.088, 0.072, 0.062, 0.040, 0.033, 0.029, 0.025, 0.013, 0.0, 0.008, 0.005),
    "saline_water":  (0.170, 0.195, 0.225, 0.215, 0.200, 0.170, 0.155, 0.145, 0.138, 0.090, 0.0, 0.055, 0.040),
    "glacial_water": (0.070, 0.092, 0.120, 0.072, 0.052, 0.036, 0.031, 0.026, 0.022, 0.011, 0.0, 0.006, 0.004),
    "forest":        (0.028, 0.030, 0.055, 0.032, 0.085, 0.220, 0.280, 0.300, 0.310, 0.260, 0.0, 0.160, 0.075),
    "grass":         (0.035, 0.040, 0.080, 0.050, 0.120, 0.290, 0.360, 0.390, 0.400, 0.330, 0.0, 0.230, 0.120),
    "cropland":      (0.050, 0.060, 0.095, 0.090, 0.140, 0.230, 0.270, 0.290, 0.300, 0.260, 0.0, 0.270, 0.170),
    "paddy":         (0.040, 0.045, 0.070, 0.050, 0.080, 0.160, 0.200, 0.220, 0.225, 0.180, 0.0, 0.120, 0.070),
    "bare_soil":     (0.080, 0.100, 0.140, 0.190, 0.210, 0.230, 0.240, 0.260, 0.270, 0.250, 0.0, 0.330, 0.270),
    "sand":          (0.140, 0.170, 0.240, 0.320, 0.350, 0.370, 0.380, 0.400, 0.410, 0.380, 0.0, 0.500, 0.440),
    "salt_crust":    (0.500, 0.550, 0.585, 0.585, 0.575, 0.565, 0.555, 0.545, 0.540, 0.460, 0.0, 0.400, 0.300),
    "rock":          (0.070, 0.080, 0.100, 0.120, 0.140, 0.170, 0.190, 0.210, 0.220, 0.200, 0.0, 0.260, 0.210),
    "urban":         (0.090, 0.100, 0.120, 0.130, 0.140, 0.150, 0.160, 0.170, 0.170, 0.150, 0.0, 0.210, 0.190),
    "building_shadow": (0.036, 0.034, 0.033, 0.027, 0.026, 0.025, 0.024, 0.023, 0.023, 0.019, 0.0, 0.021, 0.017),
    "snow":          (0.900, 0.900, 0.880, 0.850, 0.830, 0.800, 0.780, 0.750, 0.730, 0.600, 0.0, 0.080, 0.050),
    "glacier_ice":   (0.420, 0.420, 0.400, 0.360, 0.330, 0.300, 0.280, 0.260, 0.250, 0.180, 0.0, 0.040, 0.030),
    "wetland":       (0.040, 0.045, 0.065, 0.045, 0.070, 0.130, 0.160, 0.170, 0.175, 0.140, 0.0, 0.090, 0.050),
    "very_turbid_water": (0.070, 0.085, 0.125, 0.140, 0.146, 0.134, 0.131, 0.132, 0.124, 0.050, 0.0, 0.022, 0.010),
    "eutrophic_water": (0.020, 0.022, 0.045, 0.030, 0.042, 0.030, 0.026, 0.024, 0.022, 0.010, 0.0, 0.006, 0.004),
    "algal_scum":    (0.030, 0.032, 0.060, 0.045, 0.090, 0.170, 0.210, 0.230, 0.230, 0.150, 0.0, 0.080, 0.040),
    "humic_water":   (0.008, 0.010, 0.016, 0.014, 0.012, 0.008, 0.007, 0.006, 0.005, 0.003, 0.0, 0.002, 0.001),
    "shallow_water": (0.075, 0.090, 0.105, 0.065, 0.040, 0.022, 0.018, 0.016, 0.013, 0.006, 0.0, 0.004, 0.003),
    "asphalt":       (0.055, 0.058, 0.064, 0.068, 0.071, 0.074, 0.077, 0.080, 0.082, 0.078, 0.0, 0.095, 0.090),
    "burn_scar":     (0.030, 0.032, 0.040, 0.048, 0.056, 0.062, 0.066, 0.070, 0.073, 0.066, 0.0, 0.110, 0.100),
    "wet_soil":      (0.045, 0.052, 0.066, 0.080, 0.088, 0.094, 0.098, 0.104, 0.108, 0.096, 0.0, 0.115, 0.090),
    "dark_lava":     (0.040, 0.041, 0.043, 0.045, 0.047, 0.049, 0.050, 0.052, 0.053, 0.050, 0.0, 0.058, 0.055),
}
# fmt: on

#: (n_surfaces, 13) surface reflectance table, rows in the order of SURFACES codes.
SURFACE_TABLE = np.array([_SURFACE[name] for name in sorted(SURFACES, key=SURFACES.get)], dtype=np.float32)

#: Atmospheric path reflectance (nadir, sun at 30 deg) and two-way transmittance per band.
PATH_REFLECTANCE = np.array(
    [0.095, 0.072, 0.046, 0.028, 0.024, 0.020, 0.017, 0.014, 0.013, 0.008, 0.0005, 0.004, 0.002], dtype=np.float32
)
TRANSMITTANCE = np.array(
    [0.74, 0.80, 0.86, 0.90, 0.91, 0.92, 0.93, 0.93, 0.94, 0.58, 0.015, 0.93, 0.90], dtype=np.float32
)

#: Share of the irradiance that comes from the sky, not the sun (clear mid-latitude sky, 6S; falls
#: with wavelength): what a surface in terrain or building shadow is lit by.
DIFFUSE_FRACTION = np.array(
    [0.45, 0.38, 0.28, 0.22, 0.20, 0.18, 0.16, 0.15, 0.14, 0.13, 0.10, 0.08, 0.06], dtype=np.float32
)
#: Spectral shape of an L2A processor's residual path-radiance error (an aerosol misestimate:
#: largest in the blue, small in NIR and SWIR); a scene's error is this times a random amplitude.
RESIDUAL_SHAPE = np.array([1.2, 1.0, 0.8, 0.6, 0.5, 0.45, 0.4, 0.35, 0.33, 0.3, 0.0, 0.15, 0.1], dtype=np.float32)
#: Adjacency: share of the surroundings' (~0.5 km) reflectance scattered into a pixel's view, per
#: band (Rayleigh-dominated, so largest in the blue; Sterckx et al., 2015). Bright shores brighten
#: dark water, above all in NIR where the contrast is largest.
ADJACENCY = np.array(
    [0.10, 0.09, 0.07, 0.05, 0.045, 0.04, 0.035, 0.035, 0.03, 0.03, 0.0, 0.02, 0.015], dtype=np.float32
)

#: Top-of-atmosphere reflectance of an optically thick water cloud (low/mid level).
CLOUD_TOA = np.array([0.62, 0.60, 0.58, 0.56, 0.56, 0.56, 0.56, 0.55, 0.55, 0.46, 0.03, 0.38, 0.24], dtype=np.float32)
#: Extra B10 (cirrus) signal per km of cloud-top height above 2 km.
CIRRUS_PER_KM = 0.012
#: Haze (thin aerosol/cirrus veil) adds a spectrum that falls with wavelength (Angstrom ~1.3).
HAZE_TOA = np.array(
    [0.30, 0.27, 0.22, 0.17, 0.155, 0.145, 0.135, 0.125, 0.12, 0.11, 0.02, 0.07, 0.045], dtype=np.float32
)

#: Indices of the L2A bands the compendium uses (B2, B3, B4, B8, B11).
L2A_BANDS: tuple[str, ...] = ("B02", "B03", "B04", "B08", "B11")
L2A_INDEX = np.array([S2_BANDS.index(b) for b in L2A_BANDS])


def surface_code(name: str) -> int:
    """Code of a surface class by name."""
    return SURFACES[name]


def toa_from_surface(surface: np.ndarray, *, airmass: float = 1.0) -> np.ndarray:
    """Top-of-atmosphere reflectance from surface reflectance, band on the last axis.

    A linear single-scattering approximation: rho_toa = path * m + T^m * rho_s,
    with m the relative air mass (1 / cos(sun zenith) + 1, normalised to the
    30-degree reference). Good to a few per cent, enough for a cloud detector
    that was trained on real L1C data.
    """
    bands = surface.shape[-1]
    path = PATH_REFLECTANCE[:bands] * airmass
    trans = TRANSMITTANCE[:bands] ** airmass
    return path + trans * surface


def surface_from_toa(toa: np.ndarray, band_index: np.ndarray, *, airmass: float = 1.0) -> np.ndarray:
    """Invert :func:`toa_from_surface` for chosen bands (what an L2A processor does)."""
    path = PATH_REFLECTANCE[band_index] * airmass
    trans = TRANSMITTANCE[band_index] ** airmass
    return (toa - path) / trans


#: What each water surface is mixed with inside a lake (plumes, patches, shallow margins), and at
#: most how much: sediment plumes in clear water, clearer inflows in highly turbid water, scum on
#: eutrophic lakes, the deep (clear) middle of a shallow lake, brine over mud.
WATER_COMPANION: dict[str, tuple[str, float]] = {
    "clear_water": ("turbid_water", 1.0),
    "turbid_water": ("very_turbid_water", 0.6),
    "very_turbid_water": ("turbid_water", 0.6),
    "eutrophic_water": ("algal_scum", 0.7),
    "humic_water": ("clear_water", 0.5),
    "shallow_water": ("clear_water", 1.0),
    "saline_water": ("bare_soil", 1.0),
    "glacial_water": ("turbid_water", 0.6),
}
#: Surfaces that green up and brown down with the seasons.
VEGETATED = ("forest", "grass", "cropland", "paddy", "wetland")
