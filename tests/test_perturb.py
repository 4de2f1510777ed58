"""Perturbed inputs for the robustness checks (lakepaper.perturb): offsets, gains, a Landsat-like view."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from lakepaper import perturb
from lakepaper.errors import ParameterError

BANDS = ("B2", "B3", "B4", "B11", "NDWI")


def image(rows: int = 6, cols: int = 9, seed: int = 0) -> np.ndarray:
    """A small 5-band chip: reflectance 0.02..0.4, NDWI -0.6..0.6."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.02, 0.4, (len(BANDS), rows, cols)).astype(np.float32)
    x[4] = rng.uniform(-0.6, 0.6, (rows, cols)).astype(np.float32)
    return x


def ndwi_after(x: np.ndarray, dg: float, dn: float, gg: float = 1.0, gn: float = 1.0) -> np.ndarray:
    """NDWI by hand after perturbing B3 and the B8 behind the index: (g B3 + d) vs (g B8 + d)."""
    b3, n = x[1].astype(np.float64), x[4].astype(np.float64)
    b8 = b3 * (1 - n) / (1 + n)
    g, m = gg * b3 + dg, gn * b8 + dn
    return (g - m) / (g + m)


def test_offset_is_exact_on_reflectance_and_moves_ndwi_as_its_bands():
    x = image()
    y = perturb.offset(x, BANDS, 0.02)
    for i in range(4):
        assert np.array_equal(y[i], x[i] + np.float32(0.02))
    np.testing.assert_allclose(y[4], ndwi_after(x, 0.02, 0.02), atol=1e-6)
    assert np.abs(y[4]).max() < np.abs(x[4]).max()  # a positive offset pulls NDWI toward 0
    assert y.dtype == x.dtype and y.shape == x.shape
    assert not np.array_equal(y, x)
    np.testing.assert_array_equal(perturb.offset(x, BANDS, 0.0), x)  # zero changes nothing


def test_offset_per_band():
    x = image()
    y = perturb.offset(x, BANDS, {"B4": -0.02, "B8": 0.01})
    np.testing.assert_array_equal(y[[0, 1, 3]], x[[0, 1, 3]])
    assert np.array_equal(y[2], x[2] - np.float32(0.02))
    np.testing.assert_allclose(y[4], ndwi_after(x, 0.0, 0.01), atol=1e-6)  # only NDWI's NIR moved


def test_gain_is_exact_and_leaves_ndwi():
    x = image()
    y = perturb.gain(x, BANDS, 1.1)
    for i in range(4):
        assert np.array_equal(y[i], x[i] * np.float32(1.1))
    np.testing.assert_allclose(y[4], x[4], atol=1e-6)  # a common gain cancels in the ratio
    z = perturb.gain(x, BANDS, {"B3": 0.9})
    assert np.array_equal(z[1], x[1] * np.float32(0.9))
    np.testing.assert_array_equal(z[[0, 2, 3]], x[[0, 2, 3]])
    np.testing.assert_allclose(z[4], ndwi_after(x, 0.0, 0.0, gg=0.9), atol=1e-6)


def test_dark_pixel_below_zero_keeps_ndwi_in_range():
    x = image()
    x[1, 0, 0], x[4, 0, 0] = 0.01, 0.5  # dark water: B3 0.01, B8 0.0033
    y = perturb.offset(x, BANDS, -0.02)
    assert y[4].min() >= -1.0 and y[4].max() <= 1.0
    assert np.isfinite(y).all()
    assert y[4, 0, 0] == 1.0  # both bands below zero: the sign of B3 - B8 (still water-like)


def test_no_data_stays_no_data():
    x = image()
    x[0, 1, 2] = np.nan
    x[4, 3, 3] = np.nan
    x[2, 0, 0] = -9999.0
    for y in (
        perturb.offset(x, BANDS, 0.02, nodata=-9999.0),
        perturb.gain(x, BANDS, 0.9, nodata=-9999.0),
        perturb.landsat_like(x, BANDS, nodata=-9999.0),
    ):
        assert np.isnan(y[0, 1, 2]) and np.isnan(y[4, 3, 3])
        assert y[2, 0, 0] == -9999.0
        assert np.isnan(y).sum() == 2  # no-data does not spread into data
        assert (y == -9999.0).sum() == 1


def test_landsat_like_keeps_shape_and_dtype():
    for rows, cols in ((6, 9), (7, 11), (1, 2)):
        x = image(rows, cols)
        y = perturb.landsat_like(x, BANDS)
        assert y.shape == x.shape and y.dtype == x.dtype
        assert np.isfinite(y).all()


def test_uniform_image_changes_only_by_the_band_adjustment():
    x = np.empty((5, 9, 12), np.float32)
    values = (0.05, 0.08, 0.06, 0.2, 0.3)
    for i, v in enumerate(values):
        x[i] = v
    y = perturb.landsat_like(x, BANDS)
    for i, band in enumerate(BANDS[:4]):
        slope, intercept = perturb.MSI_TO_OLI["S2A"][band]
        np.testing.assert_allclose(y[i], slope * values[i] + intercept, rtol=1e-6)
    b8 = 0.08 * 0.7 / 1.3
    (sg, ig), (sn, i_n) = perturb.MSI_TO_OLI["S2A"]["B3"], perturb.MSI_TO_OLI["S2A"]["B8A"]
    g, n = sg * 0.08 + ig, sn * b8 + i_n
    np.testing.assert_allclose(y[4], (g - n) / (g + n), rtol=1e-5)
    s2b = perturb.landsat_like(x, BANDS, sensor="S2B")
    assert not np.allclose(s2b[1], y[1])  # the other satellite's coefficients


def test_resampling_is_aligned_to_30m_blocks():
    """A ramp along rows is kept inside (bilinear between block centres); 10 m detail is averaged away."""
    x = np.zeros((5, 12, 6), np.float32)
    x[:4] = (0.01 * np.arange(12, dtype=np.float32))[:, None] + 0.1
    x[4] = 0.2
    y = perturb.landsat_like(x, BANDS)
    slope, intercept = perturb.MSI_TO_OLI["S2A"]["B2"]
    np.testing.assert_allclose(y[0, 1:-1], slope * x[0, 1:-1] + intercept, rtol=1e-6)  # the inside rows
    assert not np.allclose(y[0, 0], slope * x[0, 0] + intercept)  # the edge is clamped to the first block
    # a single bright 10 m pixel in the middle of a 3 x 3 block spreads over its block's mean
    z = np.full((5, 9, 9), 0.1, np.float32)
    z[4] = 0.0
    z[:4, 4, 4] = 1.0
    w = perturb.landsat_like(z, BANDS)
    s, i = perturb.MSI_TO_OLI["S2A"]["B2"]
    np.testing.assert_allclose(w[0, 4, 4], s * (0.1 + 0.9 / 9) + i, rtol=1e-6)


def test_unknown_bands_are_named():
    x = image()
    with pytest.raises(ParameterError, match="'B5'"):
        perturb.landsat_like(np.zeros((2, 3, 3), np.float32), ("B3", "B5"))
    with pytest.raises(ParameterError, match="'SCL'"):
        perturb.offset(np.zeros((2, 3, 3), np.float32), ("B3", "SCL"), 0.02)
    with pytest.raises(ParameterError, match="'NDWI' is an index"):
        perturb.offset(x, BANDS, {"NDWI": 0.02})
    with pytest.raises(ParameterError, match="'B12'"):
        perturb.gain(x, BANDS, {"B12": 1.1})
    with pytest.raises(ParameterError, match="'B3'"):
        perturb.gain(np.zeros((1, 3, 3), np.float32), ("NDWI",), 1.1)
    with pytest.raises(ParameterError, match="shape"):
        perturb.offset(x[:4], BANDS, 0.02)
    with pytest.raises(ParameterError, match="sensor"):
        perturb.landsat_like(x, BANDS, sensor="L9")
    with pytest.raises(ParameterError, match="float"):
        perturb.offset((x * 1000).astype(np.int16), BANDS, 0.02)


def test_perturbed_chips_replace_images_lazily():
    @dataclass(frozen=True)
    class C:
        region_id: str
        image: np.ndarray
        bands: tuple = BANDS

    chips = [C(f"r{i}", image(seed=i)) for i in range(6)]
    calls = []

    def fn(im, bands):
        calls.append(1)
        return perturb.offset(im, bands, 0.02)

    p = perturb.PerturbedChips(chips, fn, keep=2)
    assert len(p) == 6 and p[-1].region_id == "r5"
    assert np.array_equal(p[2].image[0], chips[2].image[0] + np.float32(0.02))
    n = len(calls)
    p[2], p[2]
    assert len(calls) == n  # kept
    assert chips[2].image is not p[2].image and np.array_equal(chips[2].image, image(seed=2))  # input untouched
    with pytest.raises(IndexError):
        p[6]


def test_coarse_mask_keeps_what_30m_pixels_carry_and_loses_the_rest():
    m = np.zeros((18, 18), np.uint8)
    m[3:12, 3:12] = 1  # a 90 m square on the 30 m blocks
    m[15, 15] = 1  # one 10 m pixel: a ninth of its block
    got = perturb.coarse_mask(m)
    assert got.shape == m.shape and got.dtype == bool
    assert got[4:11, 4:11].all()  # the square's inside stays water
    assert not got[14:17, 14:17].any()  # the lone pixel is gone
    assert not got[0, 0] and not got[17, 0]
    assert perturb.coarse_mask(np.ones((7, 8))).all()  # all water stays all water, partial blocks too
    assert np.array_equal(perturb.coarse_mask(m, factor=1), m == 1)
    hidden = np.ones_like(m, bool)
    hidden[3:12, 3:12] = False  # the square unobserved: its blocks have no data, the rest no water
    assert not perturb.coarse_mask(m, observed=hidden)[:12, :12].any()


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "kwargs, name",
    [({"factor": 0}, "factor"), ({"threshold": 1.0}, "threshold"), ({"observed": np.ones((2, 2), bool)}, "observed")],
)
def test_coarse_mask_names_a_bad_argument(kwargs, name):
    with pytest.raises(ParameterError, match=name):
        perturb.coarse_mask(np.zeros((6, 6)), **kwargs)


@dataclass
class Labelled:
    """What the scoring of maps reads of a chip: its label and observed pixels."""

    label: np.ndarray
    observed: np.ndarray | None = None


def test_coarse_iou_pools_maps_seen_at_30m_against_the_labels():
    from lakepaper.stages.train import ROBUSTNESS, coarse_iou

    big = np.zeros((30, 30), np.uint8)
    big[3:27, 3:27] = 1
    small = np.zeros((30, 30), np.uint8)
    small[1:29:4, 1:29:4] = 1  # 49 lone pixels
    chips = [Labelled(big), Labelled(small)]
    assert coarse_iou(chips, [big, small], 1) == 1.0
    # block-aligned edges survive; each corner pixel keeps (2/3)^2 < 1/2 of water: corners round off
    assert coarse_iou(chips[:1], [big], 3) == pytest.approx((24 * 24 - 4) / (24 * 24))
    assert coarse_iou(chips[1:], [small], 3) == 0.0
    assert coarse_iou(chips, [big, small], 3) == pytest.approx((24 * 24 - 4) / (24 * 24 + 49))
    hidden = np.ones_like(big, bool)
    hidden[:15] = False  # the upper half unobserved: not counted
    assert coarse_iou([Labelled(big, hidden)], [big], 3) == pytest.approx((12 * 24 - 2) / (12 * 24))
    assert [c.factor for c in ROBUSTNESS.values()] == [1, 1, 1, 1, 3]


def test_without_small_lakes_leaves_lakes_under_the_minimum_area_out_of_the_score():
    from lakepaper.stages.train import MIN_LAKE_PX, min_area_px, pooled_iou, without_small_lakes

    label = np.zeros((20, 20), np.uint8)
    label[1:11, 1:11] = 1  # 100 px: kept
    label[15:18, 15:18] = 1  # 9 px: under 10
    label[12, 1:11] = 1  # 10 px in a row: exactly 10, kept
    label[11, 11] = 1  # touches both lakes above only diagonally: a lake of its own (1 px)
    keep = without_small_lakes(Labelled(label), 10)
    assert (~keep).sum() == 9 + 1 and not keep[15:18, 15:18].any() and not keep[11, 11]
    assert keep[label == 0].all()  # land always scored
    hidden = np.ones(label.shape, bool)
    hidden[0:5] = False
    assert (without_small_lakes(Labelled(label, hidden), 10) == keep & hidden).all()
    # a map that finds the big lakes and misses the small ones scores 1 there, lower over every lake
    found = label.copy()
    found[15:18, 15:18] = found[11, 11] = 0
    chip = Labelled(label)
    assert pooled_iou([chip], [found], [keep]) == 1.0
    assert pooled_iou([chip], [found]) == pytest.approx(110 / 120)
    assert MIN_LAKE_PX == 50 == min_area_px({"min_lake_area_km2": 0.005, "resolution_m": 10.0})
    assert min_area_px({"min_lake_area_km2": 0.005, "resolution_m": 30.0}) == 6  # 5.6 px of 900 m2
