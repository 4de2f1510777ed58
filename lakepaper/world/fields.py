"""Random fields: the texture of the simulated world (terrain, cover, clouds)."""

from __future__ import annotations

import numpy as np


def fractal_field(
    rng: np.random.Generator, shape: tuple[int, int], *, beta: float = 3.0, scale_px: float = 64.0
) -> np.ndarray:
    """Gaussian random field with a power-law spectrum, zero mean and unit variance.

    Args:
        rng: the stage's generator (one seed per stage).
        shape: (rows, cols).
        beta: spectral exponent; ~3 gives cloud- and terrain-like fields (Peitgen & Saupe, 1988).
        scale_px: wavelengths longer than this are damped, setting the feature size.
    """
    rows, cols = shape
    fy = np.fft.fftfreq(rows)[:, None]
    fx = np.fft.rfftfreq(cols)[None, :]
    f = np.sqrt(fx * fx + fy * fy)
    f0 = 1.0 / max(scale_px, 1.0)
    amplitude = (f * f + f0 * f0) ** (-beta / 4.0)
    amplitude[0, 0] = 0.0
    noise = rng.standard_normal((rows, fx.shape[1])) + 1j * rng.standard_normal((rows, fx.shape[1]))
    field = np.fft.irfft2(noise * amplitude, s=shape)
    field -= field.mean()
    std = field.std()
    return (field / std if std > 0 else field).astype(np.float32)


def threshold_for_fraction(field: np.ndarray, fraction: float) -> float:
    """Threshold above which ``fraction`` of the field lies."""
    fraction = float(np.clip(fraction, 0.0, 1.0))
    if fraction <= 0.0:
        return float(field.max()) + 1.0
    return float(np.quantile(field, 1.0 - fraction))
