"""Perturbed inputs for robustness checks: radiometric offsets and gains, and a Landsat-like view.

Issue 21 asks how far the model's test IoU falls when the composites it sees are not quite the
ones it was trained on: a per-band offset of +-0.02 (reflectance units) or a gain of +-10 %
(calibration or atmospheric-correction error), and a Landsat-8/9 OLI view of the same ground
(30 m pixels, OLI band responses). The functions here take an image with its bands first
(``(bands, rows, cols)``, float reflectance 0..1 as the image chips of stage 02 hold them) and the
band names, and return a new array of the same shape and dtype; they never change their input.

Reflectance bands and index bands
    Offsets, gains and band adjustments act on surface reflectance. The composite's ``NDWI`` is
    not a reflectance but (the mean of) (B3 - B8) / (B3 + B8), and its B8 is not among the
    bands. So an index band is carried through as the reflectance pair behind it: the partner
    band is recovered from the index and B3 (``B8 = B3 (1 - NDWI) / (1 + NDWI)``), both bands are
    perturbed, and the index is recomputed from them. A gain thus leaves NDWI unchanged (as it
    would on a real sensor), an offset moves it toward 0 (+) or away from it (-), and a
    perturbation of zero returns the index as it was (up to float rounding). The composite's NDWI
    is the mean of per-scene ratios, not the ratio of mean reflectances, so the recovered B8 is
    the one that gives the composite's NDWI with its mean B3: exact for a single scene, an
    approximation for a mean. Where B3 is not positive the partner cannot be recovered and the
    index is left as it was. A recomputed index is kept in [-1, 1]; where both perturbed bands
    sum to zero or less (a dark pixel pushed below zero by a negative offset) it takes the sign
    of their difference.

No data
    NaN, and ``nodata`` when given, mark pixels without data, band by band; they stay as they
    were (an index also where its partner's source band has no data), and the 30 m block mean of
    :func:`landsat_like` averages only pixels with data.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from lakepaper.errors import ParameterError

#: Sentinel-2 MSI reflectance bands these functions accept.
REFLECTANCE_BANDS = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B11", "B12")
#: Index bands: name -> (first, second) reflectance band of (first - second) / (first + second).
INDEX_BANDS = {"NDWI": ("B3", "B8")}

#: MSI -> OLI bandpass adjustment of HLS: OLI = slope * MSI + intercept, surface reflectance 0..1,
#: per satellite and MSI band. Claverie, M., Ju, J., Masek, J. G., et al. (2018), "The Harmonized
#: Landsat and Sentinel-2 surface reflectance data set", Remote Sensing of Environment 219, 145-161,
#: the table of MSI -> OLI bandpass coefficients (HLS v1.4; fitted on 500 Hyperion spectra of 160
#: scenes). Found with this project's ``search`` tool: the HLS page
#: https://hls.gsfc.nasa.gov/algorithms/bandpass-adjustment/ (the same table, Sentinel-2A and -2B
#: columns) and brazil-data-cube/sensor-harm ``sensor_harm/harmonization_model.py``
#: (``bandpassHLS_1_4``, citing Claverie et al. 2018), which agree to the last digit.
#: HLS pairs OLI band 5 (NIR, 865 nm) with MSI B8A, not B8: see :data:`NIR_STAND_IN`.
MSI_TO_OLI = {
    "S2A": {
        "B1": (0.9959, -0.0002),
        "B2": (0.9778, -0.0040),
        "B3": (1.0053, -0.0009),
        "B4": (0.9765, 0.0009),
        "B8A": (0.9983, -0.0001),
        "B11": (0.9987, -0.0011),
        "B12": (1.0030, -0.0012),
    },
    "S2B": {
        "B1": (0.9959, -0.0002),
        "B2": (0.9778, -0.0040),
        "B3": (1.0075, -0.0008),
        "B4": (0.9761, 0.0010),
        "B8A": (0.9966, 0.0000),
        "B11": (1.0000, -0.0003),
        "B12": (0.9867, 0.0004),
    },
}
#: Bands without an HLS coefficient that take another band's (our choice): the broad NIR band B8,
#: from which the composite's NDWI is computed, takes B8A's (the band HLS maps to OLI's NIR), as
#: sensor-harm does for both NIR bands. B8 is wider (785-900 nm) than B8A and OLI band 5
#: (851-879 nm), so its true adjustment may differ more than B8A's.
NIR_STAND_IN = {"B8": "B8A"}
#: Landsat OLI's reflective pixel (30 m) over Sentinel-2's 10 m pixel.
LANDSAT_FACTOR = 3


def reflectance_planes(bands: Sequence[str]) -> tuple[str, ...]:
    """The reflectance bands a perturbation of an image with these bands acts on: its own and the
    partner behind each index band (``("B2", "B3", "NDWI")`` -> ``("B2", "B3", "B8")``)."""
    bands = tuple(bands)
    out = [b for b in bands if b not in INDEX_BANDS]
    out += [INDEX_BANDS[b][1] for b in bands if b in INDEX_BANDS and INDEX_BANDS[b][1] not in out]
    return tuple(out)


def offset(x: np.ndarray, bands: Sequence[str], delta: float | Mapping[str, float], *, nodata: float | None = None):
    """``x`` with ``delta`` (reflectance units, e.g. 0.02) added to its reflectance bands.

    Args:
        x: (bands, rows, cols) reflectance (index bands: see the module docstring).
        bands: the band names of ``x``, in order.
        delta: one number for every reflectance band (the partner behind an index band too), or
            band -> number for some bands (others get 0; ``B8`` reaches NDWI's partner).
        nodata: a value that marks pixels without data (NaN always does); they are left as they are.

    Raises:
        ParameterError: a band of ``bands`` this module does not know, ``delta`` naming an index
            band or a band that is neither in ``bands`` nor behind one of its indices, or a shape
            that does not match ``bands``.
    """
    return _apply(x, bands, delta, nodata, name="delta", neutral=0.0, op=lambda v, d: v + d)


def gain(x: np.ndarray, bands: Sequence[str], factor: float | Mapping[str, float], *, nodata: float | None = None):
    """``x`` with its reflectance bands multiplied by ``factor`` (e.g. 0.9 or 1.1: -10 %, +10 %).

    Arguments and errors as :func:`offset` (``factor`` in place of ``delta``; bands not named get 1).
    A gain common to both bands of an index leaves the index unchanged.
    """
    return _apply(x, bands, factor, nodata, name="factor", neutral=1.0, op=lambda v, f: v * f)


def landsat_like(
    x: np.ndarray,
    bands: Sequence[str],
    *,
    sensor: str = "S2A",
    nodata: float | None = None,
    factor: int = LANDSAT_FACTOR,
) -> np.ndarray:
    """What Landsat-8/9 OLI would have seen of a 10 m Sentinel-2 image, back on the 10 m grid.

    Each reflectance band (and the partner behind each index band) is

    1. aggregated to 30 m: the mean of each 3 x 3 block of pixels with data, blocks aligned to the
       image's top-left corner (a partial block at the bottom or right edge averages what it has);
    2. brought back to 10 m by bilinear interpolation between block centres (edges clamped to the
       outer blocks), weighted by which blocks have data, so no-data never leaks into data;
    3. adjusted from the MSI to the OLI band response: ``slope * value + intercept`` with the HLS
       coefficients of :data:`MSI_TO_OLI` (Claverie et al. 2018; ``sensor`` S2A or S2B);

    then each index band is recomputed from its adjusted pair. A spatially uniform image keeps its
    values up to the band adjustment, and so does the inside of a linear ramp (bilinear
    interpolation reproduces it); sharper detail than 30 m is smoothed away, which is the point.

    Args:
        x: (bands, rows, cols) reflectance.
        bands: the band names of ``x``, in order.
        sensor: which MSI's coefficients: ``S2A`` or ``S2B``.
        nodata: a value that marks pixels without data (NaN always does); they stay as they are.
        factor: the coarse pixel over the fine one (3: 30 m over 10 m).

    Raises:
        ParameterError: ``sensor`` unknown, ``factor`` < 1, or a band (or an index's partner) without
            an MSI -> OLI coefficient, named.
    """
    if sensor not in MSI_TO_OLI:
        raise ParameterError("sensor", f"expected one of {tuple(MSI_TO_OLI)}, got {sensor!r}")
    factor = _factor(factor)
    coefficients = MSI_TO_OLI[sensor]
    planes, valid, pairs = _planes(x, bands, nodata)
    for band in planes:
        if NIR_STAND_IN.get(band, band) not in coefficients:
            raise ParameterError(
                "bands",
                f"landsat_like has no MSI->OLI coefficient for band {band!r} (HLS, Claverie et al. 2018, "
                f"adjusts {', '.join(coefficients)}; B8 takes B8A's)",
            )
    out = {}
    for band, v in planes.items():
        slope, intercept = coefficients[NIR_STAND_IN.get(band, band)]
        out[band] = slope * _resample(v, valid[band], factor) + intercept
    return _assemble(x, bands, out, valid, pairs)


def coarse_mask(
    mask: np.ndarray, *, observed: np.ndarray | None = None, factor: int = LANDSAT_FACTOR, threshold: float = 0.5
) -> np.ndarray:
    """A perfect water map as pixels ``factor`` times coarser carry it: what is left of ``mask`` to find.

    The share of water in each coarse pixel (``mask`` read as 0/1, blocks aligned as :func:`landsat_like`
    aligns them, pixels outside ``observed`` left out), brought back to the fine grid bilinearly as
    :func:`landsat_like` brings the bands back, and ``> threshold``. Scored against ``mask`` it is what a
    map made from the coarse view reaches when it knows every coarse pixel's exact water share and
    nothing finer: water bodies of a few coarse pixels shrink or vanish, shores round off. (A map that
    guesses shapes from context may do a little better; none can see what the pixels averaged away.)

    Args:
        mask: (rows, cols), water where non-zero.
        observed: (rows, cols) bool, pixels with data (default: all).
        factor: the coarse pixel over the fine one (3: 30 m over 10 m).
        threshold: the water share above which a fine pixel is water (0.5: the likelier class).

    Raises:
        ParameterError: ``factor`` < 1, ``threshold`` outside (0, 1), or ``observed`` of another shape.
    """
    factor = _factor(factor)
    if not 0.0 < threshold < 1.0:
        raise ParameterError("threshold", f"must lie strictly between 0 and 1, got {threshold!r}")
    mask = np.asarray(mask)
    ok = np.ones(mask.shape, bool) if observed is None else np.asarray(observed, bool)
    if ok.shape != mask.shape:
        raise ParameterError("observed", f"has shape {ok.shape}; the mask has {mask.shape}")
    return _resample((mask != 0).astype(np.float64), ok, factor) > threshold


class PerturbedChips(Sequence):
    """The chips of a split with their images perturbed on the fly: ``fn(image, bands)`` per chip.

    A read-only sequence of the same chips (:class:`lakepaper.samples.chips.Chip` or any dataclass
    with ``image`` and ``bands``) with ``image`` replaced, so any function that scores chips
    (:func:`lakepaper.train.examples.patch_counts`) scores the perturbed ones with no second
    evaluation loop. The last few perturbed chips are kept, as the patch iterator asks for the same
    chip once per patch; the rest are made again when asked for.

    Example:
        >>> chips = PerturbedChips(test_chips, lambda im, b: offset(im, b, 0.02))  # doctest: +SKIP
    """

    def __init__(self, chips: Sequence[Any], fn: Callable[[np.ndarray, Sequence[str]], np.ndarray], keep: int = 4):
        self.chips, self.fn, self.keep = list(chips), fn, max(1, int(keep))
        self._kept: OrderedDict[int, Any] = OrderedDict()

    def __len__(self) -> int:
        return len(self.chips)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        i = range(len(self))[i]  # negative indices, IndexError
        if i in self._kept:
            self._kept.move_to_end(i)
            return self._kept[i]
        chip = self.chips[i]
        made = replace(chip, image=self.fn(chip.image, chip.bands))
        self._kept[i] = made
        if len(self._kept) > self.keep:
            self._kept.popitem(last=False)
        return made


# --- the pieces --------------------------------------------------------------------------------------


def _check(x: np.ndarray, bands: Sequence[str]) -> tuple[str, ...]:
    bands = tuple(bands)
    if np.ndim(x) != 3 or np.shape(x)[0] != len(bands):
        raise ParameterError(
            "x", f"expected an image of shape ({len(bands)}, rows, cols) for bands {bands}, got {np.shape(x)}"
        )
    if not np.issubdtype(np.asarray(x).dtype, np.floating):
        raise ParameterError("x", f"expected float reflectance (0..1), got {np.asarray(x).dtype}: scale it first")
    for b in bands:
        if b in INDEX_BANDS:
            first = INDEX_BANDS[b][0]
            if first not in bands:
                raise ParameterError("bands", f"index band {b!r} needs its band {first!r} among the bands {bands}")
        elif b not in REFLECTANCE_BANDS:
            raise ParameterError(
                "bands",
                f"band {b!r} is neither a Sentinel-2 reflectance band nor an index this module knows "
                f"({', '.join(INDEX_BANDS)})",
            )
    if len(set(bands)) != len(bands):
        raise ParameterError("bands", f"a band is given twice: {bands}")
    return bands


def _planes(x: np.ndarray, bands: Sequence[str], nodata: float | None):
    """Reflectance planes (float64) of the image's reflectance bands and of each index's partner,
    their no-data masks (True = has data), and index -> (first, partner)."""
    bands = _check(x, bands)
    x = np.asarray(x)
    planes: dict[str, np.ndarray] = {}
    valid: dict[str, np.ndarray] = {}
    for b, v in zip(bands, x, strict=True):
        ok = np.isfinite(v) if nodata is None else np.isfinite(v) & (v != nodata)
        valid[b] = ok
        if b not in INDEX_BANDS:
            planes[b] = np.where(ok, v, 0.0).astype(np.float64)
    pairs = {}
    for b in bands:
        if b not in INDEX_BANDS:
            continue
        first, second = INDEX_BANDS[b]
        if second in planes:  # the partner is itself a band of the image: use it
            pairs[b] = (first, second)
            continue
        a = planes[first]
        n = np.clip(np.where(valid[b], x[bands.index(b)], 0.0).astype(np.float64), -1 + 1e-6, 1.0)
        planes[second] = a * (1 - n) / (1 + n)
        valid[second] = valid[b] & valid[first]
        pairs[b] = (first, second)
    return planes, valid, pairs


def _normalized_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    s = a + b
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.where(s > 0, (a - b) / np.where(s > 0, s, 1.0), np.sign(a - b))
    return np.clip(d, -1.0, 1.0)


def _assemble(x, bands, out: dict[str, np.ndarray], valid: dict[str, np.ndarray], pairs) -> np.ndarray:
    """The image in its band order: perturbed where it has data, as given elsewhere."""
    x = np.asarray(x)
    result = x.copy()
    for i, b in enumerate(bands):
        if b in INDEX_BANDS:
            first, second = pairs[b]
            positive = np.where(valid[first], x[bands.index(first)], 0) > 0
            recoverable = valid[b] & valid[first] & valid[second] & positive
            new = _normalized_difference(out[first], out[second])
            result[i] = np.where(recoverable, new, x[i]).astype(x.dtype)
        else:
            result[i] = np.where(valid[b], out[b], x[i]).astype(x.dtype)
    return result


def _apply(x, bands, amount, nodata, *, name: str, neutral: float, op) -> np.ndarray:
    planes, valid, pairs = _planes(x, bands, nodata)
    if isinstance(amount, Mapping):
        for b in amount:
            if b in INDEX_BANDS:
                raise ParameterError(
                    name, f"{b!r} is an index, not a reflectance: perturb its bands {INDEX_BANDS[b]} instead"
                )
            if b not in planes:
                raise ParameterError(
                    name, f"band {b!r} is not among the bands {tuple(bands)} (nor behind one of their indices)"
                )
        per_band = {b: float(amount.get(b, neutral)) for b in planes}
    else:
        per_band = dict.fromkeys(planes, float(amount))
    dtype = np.asarray(x).dtype
    # the image's bands in its own precision, so that offset(x, bands, d)[i] == x[i] + dtype(d) exactly;
    # an index's recovered partner in float64, so that a zero perturbation gives the index back
    out = {
        b: op(v.astype(dtype), dtype.type(per_band[b])) if b in bands else op(v, per_band[b]) for b, v in planes.items()
    }
    return _assemble(x, bands, out, valid, pairs)


def _factor(factor) -> int:
    """``factor`` as the int it must be: a coarse pixel over a fine one, a positive integer."""
    if int(factor) != factor or factor < 1:
        raise ParameterError("factor", f"must be a positive integer, got {factor!r}")
    return int(factor)


def _block_mean(v: np.ndarray, ok: np.ndarray, f: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean of each f x f block over its pixels with data, and whether the block has any."""
    rows, cols = v.shape
    R, C = -(-rows // f), -(-cols // f)
    pv = np.zeros((R * f, C * f))
    pw = np.zeros((R * f, C * f))
    pv[:rows, :cols] = np.where(ok, v, 0.0)
    pw[:rows, :cols] = ok
    s = pv.reshape(R, f, C, f).sum(axis=(1, 3))
    w = pw.reshape(R, f, C, f).sum(axis=(1, 3))
    return np.where(w > 0, s / np.maximum(w, 1), 0.0), w > 0


def _interp_axis(a: np.ndarray, n_fine: int, f: int, axis: int) -> np.ndarray:
    """Linear interpolation along ``axis`` from coarse-pixel centres to the fine pixels' (edges clamped)."""
    n = a.shape[axis]
    pos = (np.arange(n_fine) + 0.5) / f - 0.5  # fine pixel centre in coarse pixel units
    pos = np.clip(pos, 0, n - 1)
    i0 = np.floor(pos).astype(int)
    i1 = np.minimum(i0 + 1, n - 1)
    t = pos - i0
    shape = [1, 1]
    shape[axis] = n_fine
    t = t.reshape(shape)
    return np.take(a, i0, axis=axis) * (1 - t) + np.take(a, i1, axis=axis) * t


def _resample(v: np.ndarray, ok: np.ndarray, f: int) -> np.ndarray:
    """Block mean to f-times coarser pixels, then bilinear back to the original grid (no-data weighted out)."""
    if f == 1:
        return v
    mean, has = _block_mean(v, ok, f)
    rows, cols = v.shape
    num = _interp_axis(_interp_axis(mean * has, rows, f, 0), cols, f, 1)
    den = _interp_axis(_interp_axis(has.astype(np.float64), rows, f, 0), cols, f, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
