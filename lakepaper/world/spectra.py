"""Reflectance of the simulated world's surfaces, atmosphere and clouds, per Sentinel-2 band.

Surface reflectances are typical values at the Sentinel-2 MSI band centres,
read off published spectra and rounded:

* water (clear, turbid, saline, glacial): Mobley, *Light and Water* (1994);
  Pahlevan et al. (2017, RSE 201) for inland-water Sentinel-2 reflectances;
  glacial flour lakes: Giardino et al. (2010); saline and brine lakes: Bryant &
  Rainey (2002, RSE 82).
* vegetation, soils, sand, rock, urban materials: USGS Spectral Library v7
  (Kokaly et al., 2017) and the ECOSTRESS library (Meerdink et al., 2019).
* salt crust: the Salar de Uyuni calibration site, 0.5-0.8 in the VNIR
  (Lamparelli et al., 2003); wet crust slightly brighter in green than NIR.
* snow and glacier ice: Painter et al. (2009) and Hall & Riggs (2007, NDSI):
  very bright VNIR, dark SWIR; bare/dirty glacier ice about half as bright.
* building shadows: diffuse skylight only, dark and bluish (Zhou et al., 2009),
  which is why NDWI takes them for water.
* clouds (top of atmosphere): Zhu & Woodcock (2012, Fmask) and Zhu et al.
  (2015): thick cloud >= 0.4 in the visible, flat spectrum, bright SWIR;
  cirrus band B10 > 0.01 only for clouds high enough.
* atmosphere: Rayleigh plus continental aerosol path reflectance and two-way
  transmittance of a mid-latitude summer atmosphere (6S, Vermote et al.,
  1997), rounded; B09 and B10 lie in water-vapour absorption bands.
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
}
WATER_SURFACES = ("clear_water", "turbid_water", "saline_water", "glacial_water")

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


#: What each water type is mixed with (per lake and toward shallow shores): sediment, mud, brine flats.
WATER_COMPANION: dict[str, str] = {
    "clear_water": "turbid_water",
    "turbid_water": "bare_soil",
    "saline_water": "bare_soil",
    "glacial_water": "turbid_water",
}
#: Surfaces that green up and brown down with the seasons.
VEGETATED = ("forest", "grass", "cropland", "paddy", "wetland")
