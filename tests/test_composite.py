"""Stage 01, local backend: masks, kernel and per-tile composites against the simulated truth.

"Truly clear" follows :func:`lakepaper.world.checks.clear_means`: an observation is clear when
its truth flags show no thick cloud, thin cloud, cloud shadow, snow or no data. Haze is a
judgement call: it is *kept* (as in ``clear_means``) because the paper's recipe has no haze
mask and an aerosol veil is what L2A's atmospheric correction is meant to remove; its residual
bias therefore counts against the composite. The truth clear-sky mean of a pixel is the mean
of its truly clear observations among the scenes the paper's scene filter keeps.

Measured on this 4-tile, 8-scene world (256 px; T01 Canadian Shield-like with snow, T03, T11,
T13), pooled over tiles; issue 3 asks for more than the paper's recipe achieves here:

* |composite - truth clear-sky mean| <= 0.01 (B2, B3, B4) in 84.7 % of the pixels with >= 3
  clear observations (target 99 %); 96.1 % where no masked-through cloud/shadow/snow entered;
* residue (B2 pulled > 0.05 off) in 5.3 % of pixels (target 0.5 %): cloud shadows cast farther
  than the recipe's 1 km projection or not dark enough in NIR, snow that Sen2Cor's SCL misses
  (dirty ice; T01, T03) and thin cloud edges under the 50 % probability line. Residue *not*
  caused by such an observation: 0.011 %.
* thick cloud masked: 99.6 %; shadow pixels found by dark NIR x projection: 50.6 % (84.9 %
  excluded by some mask, mostly the cloud buffer); truth snow among the used observations: 1.7 %.

(The world's s2cloudless runs on 80 m blocks. On 160 m blocks the residue was 7.5 % and the
accuracy 82 %; on 40 m blocks 2.9 % and 84 %.)

The two issue targets are kept as strict ``xfail`` tests so that they show in every run and
fail loudly the day they pass; the asserted floors below are the measured values with margin.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import rasterio
from builders import composite_tile, kept_scenes
from rasterio.transform import Affine

from lakepaper import io, params
from lakepaper.composite import COUNT_BAND, NODATA, read_composite
from lakepaper.composite.kernel import Accumulator, composite_stack
from lakepaper.composite.masks import disk, project_cloud, scene_mask, upsample2
from lakepaper.errors import InputError, ParameterError
from lakepaper.world.files import WorldFiles
from lakepaper.world.generate import generate_world
from lakepaper.world.scenes import FLAG
from lakepaper.world.sites import WorldConfig

TILES = ("T01", "T03", "T11", "T13")
_NOT_CLEAR = FLAG["thick_cloud"] | FLAG["thin_cloud"] | FLAG["shadow"] | FLAG["snow"] | FLAG["no_data"]
_CONTAMINANTS = FLAG["thick_cloud"] | FLAG["thin_cloud"] | FLAG["shadow"] | FLAG["snow"]


@pytest.fixture(scope="module")
def p():
    return params.resolve("tiny")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    cfg = WorldConfig(tile_px=256, scenes_per_tile=8, tiles=TILES).validated()
    generate_world(cfg, out, workers=2, progress=False, parameters={"n_sample_regions": 10})
    return WorldFiles(out)


@pytest.fixture(scope="module")
def composites(world, p, tmp_path_factory):
    out = tmp_path_factory.mktemp("composites")
    return {t: composite_tile(world, t, out / f"{t}.tif", p=p) for t in TILES}


@pytest.fixture(scope="module")
def stats(world, p, composites):
    """Per tile: composite, truth clear-sky mean and counts, and pooled mask scores."""
    per_tile, score = (
        {},
        dict.fromkeys(
            ("thick", "thick_masked", "shadow", "shadow_found", "shadow_excluded", "snow", "snow_used", "used"), 0
        ),
    )
    for tile in TILES:
        comp, count, _ = read_composite(composites[tile]["path"])
        sums = np.zeros((3, *count.shape))
        n_true = np.zeros(count.shape, np.int32)
        contaminated = np.zeros(count.shape, bool)
        for s in kept_scenes(world, tile, p).itertuples():
            l2a, _ = world.read_scene(tile, s.system_index, "L2A_10m")
            b20, _ = world.read_scene(tile, s.system_index, "L2A_20m")
            prob, _ = world.read_scene(tile, s.system_index, "CLDPRB")
            flags = io.read_raster(world.flags_path(tile, s.system_index))[0][0]
            m = scene_mask(l2a, upsample2(b20[0]), b20[1], prob[0], azimuth_deg=s.MEAN_SOLAR_AZIMUTH_ANGLE, p=p)
            ok = (flags & _NOT_CLEAR) == 0
            sums += np.where(ok, l2a[:3], 0)
            n_true += ok
            contaminated |= m.clear & ((flags & _CONTAMINANTS) > 0)
            thick, shadow, snow = ((flags & FLAG[k]) > 0 for k in ("thick_cloud", "shadow", "snow"))
            score["thick"] += int(thick.sum())
            score["thick_masked"] += int((thick & ~m.clear).sum())
            score["shadow"] += int(shadow.sum())
            score["shadow_found"] += int((shadow & m.shadow).sum())
            score["shadow_excluded"] += int((shadow & ~m.clear).sum())
            score["snow"] += int(snow.sum())
            score["snow_used"] += int((snow & m.clear).sum())
            score["used"] += int(m.clear.sum())
            assert not (m.clear & (upsample2(b20[1]) == p["scl_snow_class"])).any()  # SCL snow never used
        truth = np.where(n_true > 0, sums / np.maximum(n_true, 1), np.nan) / 1e4
        per_tile[tile] = {"comp": comp, "count": count, "truth": truth, "n_true": n_true, "contam": contaminated}
    return per_tile, score


def _pooled(stats, fn):
    num = den = 0
    for d in stats[0].values():
        a, b = fn(d)
        num, den = num + a, den + b
    return num / den


def _within(d, *, clean_only=False):
    sel = (d["count"] >= 3) & (d["n_true"] >= 3)
    if clean_only:
        sel &= ~d["contam"]
    err = np.abs(d["comp"][:3] - d["truth"]).max(axis=0)
    return int((err[sel] <= 0.01).sum()), int(sel.sum())


def _residue(d, *, uncaused=False):
    both = (d["count"] > 0) & (d["n_true"] > 0)
    off = both & (np.abs(d["comp"][0] - d["truth"][0]) > 0.05)
    if uncaused:
        off &= ~d["contam"]
    return int(off.sum()), int(both.sum())


# --- kernel and masks -------------------------------------------------------------------


def test_kernel_matches_a_plain_masked_mean():
    rng = np.random.default_rng(1)
    bands = rng.integers(1, 12000, (9, 5, 17, 23), dtype=np.uint16)
    clear = rng.random((9, 17, 23)) < 0.5
    clear[:, 0, 0] = False  # never clear
    mean, count = composite_stack(bands, clear)
    b = bands.astype(np.float64)
    ndwi = (b[:, 1] - b[:, 3]) / (b[:, 1] + b[:, 3])
    planes = np.concatenate([b[:, [0, 1, 2, 4]], ndwi[:, None]], axis=1)
    with np.errstate(invalid="ignore"):
        want = (planes * clear[:, None]).sum(0) / clear.sum(0)
    np.testing.assert_array_equal(count, clear.sum(0))
    np.testing.assert_allclose(mean, want, rtol=1e-6, atol=1e-6, equal_nan=True)
    assert np.isnan(mean[:, 0, 0]).all()
    acc = Accumulator((17, 23))  # batching does not change the result
    for lo, hi in ((0, 2), (2, 3), (3, 7), (7, 9)):
        acc.add(bands[lo:hi], clear[lo:hi])
    np.testing.assert_allclose(acc.result()[0], mean, rtol=1e-6, atol=1e-6, equal_nan=True)


def test_shadow_projection_falls_away_from_the_sun():
    cloud = np.zeros((41, 41), bool)
    cloud[20, 20] = True
    proj = project_cloud(cloud, azimuth_deg=135.0, max_dist_px=10)  # sun in the south-east
    rows, cols = np.nonzero(proj)
    assert (rows <= 20).all() and (cols <= 20).all()  # shadow to the north-west (rows grow south)
    assert proj[20 - 7, 20 - 7] and not proj[20 - 8, 20 - 8]  # 10 px along the diagonal ~ 7 px each way
    south = project_cloud(cloud, azimuth_deg=0.0, max_dist_px=5)  # sun due north: shadow due south
    assert south[20:26, 20].all() and south.sum() == 6
    assert disk(5).sum() == 81


def test_mask_recipe_on_a_hand_made_scene(p):
    n = 64
    l2a = np.full((4, n, n), 3000, np.uint16)
    l2a[3, :, :] = 500  # dark NIR everywhere
    b11 = np.full((n, n), 2000, np.uint16)
    scl = np.full((n // 2, n // 2), 4, np.uint16)
    prob = np.zeros((n, n), np.uint8)
    prob[10:14, 30:34] = 90  # cloud; sun due north -> shadow southwards up to 1 km = 100 px
    scl[20:, :] = 6  # water south of row 40: dark but not a shadow candidate
    scl[0:2, 0:2] = 11  # snow
    l2a[:, 60:, 60:] = 0  # no data
    m = scene_mask(l2a, b11, scl, prob, azimuth_deg=0.0, p=p)
    assert m.cloud[10:14, 30:34].all() and m.cloud.sum() == 16
    assert m.shadow[14:40, 30:34].all() and not m.shadow[40:, :].any() and not m.shadow[:10].any()
    assert not m.clear[5:45, 30:34].any()  # cloud, shadow and the 100 m buffer
    assert m.clear[20, 19] and not m.clear[20, 20]  # 10 px buffer beside the shadow
    assert m.snow[0:4, 0:4].all() and not m.clear[0:4, 0:4].any()
    assert m.nodata[60:, 60:].all() and not m.clear[60:, 60:].any()


# --- the product ------------------------------------------------------------------------


def test_band_order_scale_and_nodata_round_trip(composites, p):
    path = composites["T13"]["path"]
    with rasterio.open(path) as src:
        raw = src.read()
        assert src.descriptions == (*p["composite_bands"], COUNT_BAND)
        assert src.tags()["SCALE"] == str(p["composite_scale"]) and src.nodata == NODATA
        assert src.dtypes[0] == "int16"
    data, count, meta = read_composite(path)
    assert meta["band_names"] == list(p["composite_bands"])
    np.testing.assert_array_equal(count, raw[-1])
    seen = count > 0
    assert (np.isnan(data[:, ~seen])).all() and np.isfinite(data[:, seen]).all()
    assert (raw[:5][:, ~seen] == NODATA).all() and not (raw[:5][:, seen] == NODATA).any()
    np.testing.assert_allclose(data[:, seen], raw[:5][:, seen] / 1000.0, rtol=0, atol=1e-6)
    ndwi = data[p["composite_bands"].index("NDWI")]
    assert np.nanmin(ndwi) >= -1 and np.nanmax(ndwi) <= 1 and np.nanmax(ndwi) > 0.2  # lakes are there
    assert 0 < np.nanmean(data[p["composite_bands"].index("B2")]) < 0.3  # reflectance, not DN


def test_same_inputs_give_identical_bytes(world, p, composites, tmp_path):
    again = composite_tile(world, "T11", tmp_path / "again.tif", p=p)
    assert io.sha256_file(again["path"]) == io.sha256_file(composites["T11"]["path"])
    # another batch size sums the float32 NDWI in another order: equal up to one stored unit (0.001)
    other = composite_tile(world, "T11", tmp_path / "other.tif", p=p, batch=3)
    a, b = io.read_raster(other["path"])[0].astype(int), io.read_raster(composites["T11"]["path"])[0].astype(int)
    assert np.abs(a - b).max() <= 1


def test_composite_counts_and_timing(composites):
    for s in composites.values():
        # lowest 0.42 (T01) on the tiny world's 4 scenes per tile since issue 21's world (0.53 before)
        assert s["n_scenes"] >= 3 and s["clear_share"] > 0.35
        assert s["seconds"] < 30  # the first tile includes numba's compile (cached on disk after)


# --- against the simulated truth --------------------------------------------------------


def test_clear_mask_catches_thick_clouds(stats):
    s = stats[1]
    assert s["thick_masked"] / s["thick"] >= 0.90  # measured 0.996


def test_shadow_recipe_finds_shadows(stats):
    s = stats[1]
    found, excluded = s["shadow_found"] / s["shadow"], s["shadow_excluded"] / s["shadow"]
    print(f"shadow pixels: dark-NIR x projection {found:.3f}, excluded by any mask {excluded:.3f}")
    assert found >= 0.3  # measured 0.506: shaded land brighter than NIR 0.15 escapes the recipe
    assert excluded >= found


def test_snow_share_in_used_observations(stats):
    s = stats[1]
    share, missed = s["snow_used"] / s["used"], s["snow_used"] / s["snow"]
    print(f"truth-snow share of used observations {share:.4f}; truth snow SCL misses {missed:.3f}")
    assert missed <= 0.15  # measured 0.086: Sen2Cor's SCL needs bright snow; dirty ice passes
    assert share <= 0.05


def test_accuracy_against_truth_measured_floor(stats):
    assert _pooled(stats, _within) >= 0.80  # measured 0.847
    # measured 0.958 (haze bias); 0.885 on issue 21's world, whose per-scene L2A offsets and sun-dependent
    # terrain shading make the scenes of one pixel differ more, so two subsets of them average further apart
    assert _pooled(stats, lambda d: _within(d, clean_only=True)) >= 0.86


def test_residue_is_caused_by_what_the_recipe_lets_through(stats):
    assert _pooled(stats, _residue) <= 0.10  # measured 0.053; 0.089 since stop 26 (the weather drawn anew)
    # measured 0.00016; 0.028 on issue 21's world (its weather draws differ): 0.12 on T01, where for some
    # forest pixels the recipe keeps one hazy scene (haze counts as clear, see the module docstring) and the
    # truth averages it with two clear ones; 0.04 on T03 (terrain shading changes with the sun); 0.040 since
    # stop 26 (the weather drawn anew; the per-scene L2A offsets and gains are errors no recipe removes)
    assert _pooled(stats, lambda d: _residue(d, uncaused=True)) < 0.05


@pytest.mark.xfail(strict=True, reason="issue 3 target; measured 0.847 on the tiny world (see module docstring)")
def test_issue_target_accuracy(stats):
    assert _pooled(stats, _within) >= 0.99


@pytest.mark.xfail(
    strict=True, reason="issue 3 target; measured 0.053 on the tiny world, 0.089 since stop 26 (see module docstring)"
)
def test_issue_target_residue(stats):
    assert _pooled(stats, _residue) < 0.005


# --- bad input --------------------------------------------------------------------------


def _copy_world(world, dst):
    """The world's tile table, scene table, flags and catalog (its imagery), to damage."""
    shutil.copytree(world.root, dst, ignore=shutil.ignore_patterns("references", "truth"))
    return WorldFiles(dst)


def _rewrite(path, fn):
    arr, meta = io.read_raster(path)
    arr, kw = fn(arr, {"crs": meta["crs"], "transform": meta["transform"], "nodata": meta["nodata"]})
    names = kw.pop("band_names", meta["band_names"][: len(arr)])
    io.write_raster(path, arr, band_names=names, **kw)


def _first(w, p, product, tile="T11", which=0):
    """The first asset file of ``product`` of a kept scene (the first scene by default)."""
    return w.asset_paths(tile, kept_scenes(w, tile, p).system_index.iloc[which], product)[0]


@pytest.mark.parametrize(
    ("case", "product", "fn"),
    [
        ("other CRS", "L2A_10m", lambda a, kw: (a, {**kw, "crs": "EPSG:3857"})),
        (
            "20 m band at 10 m",
            "L2A_20m",
            lambda a, kw: (a.repeat(2, 1).repeat(2, 2), {**kw, "transform": kw["transform"] * Affine.scale(0.5)}),
        ),
        (
            "shifted probability",
            "CLDPRB",
            lambda a, kw: (a, {**kw, "transform": kw["transform"] * Affine.translation(1, 0)}),
        ),
        (
            "probability at 20 m",
            "CLDPRB",
            lambda a, kw: (a[:, ::2, ::2], {**kw, "transform": kw["transform"] * Affine.scale(2)}),
        ),
    ],
)
def test_bad_scene_raises_before_writing(world, p, tmp_path, case, product, fn):
    w = _copy_world(world, tmp_path / "w")
    bad = _first(w, p, product)
    _rewrite(bad, fn)
    out = tmp_path / "out" / "T11.tif"
    with pytest.raises(InputError) as err:
        composite_tile(w, "T11", out, p=p)
    assert bad.name in str(err.value), case
    assert not out.exists() and not (out.parent.exists() and any(out.parent.iterdir()))


def test_missing_scene_file_raises(world, p, tmp_path):
    w = _copy_world(world, tmp_path / "w")
    gone = _first(w, p, "CLDPRB")
    gone.unlink()
    with pytest.raises(InputError, match=f"{gone.parent.name}/{gone.name}: asset s2cloudless of item .* is missing"):
        composite_tile(w, "T11", tmp_path / "T11.tif", p=p)
    assert not (tmp_path / "T11.tif").exists()


@pytest.mark.parametrize(
    ("override", "name"),
    [
        ({"end_date": "2016-01-01"}, "end_date"),
        ({"start_date": "yesterday"}, "start_date"),
        ({"composite_bands": ("B2", "B8")}, "composite_bands"),
    ],
)
def test_bad_parameters_raise_before_writing(world, p, tmp_path, override, name):
    with pytest.raises(ParameterError) as err:
        composite_tile(world, "T11", tmp_path / "T11.tif", p={**p, **override})
    assert err.value.name == name
    assert not (tmp_path / "T11.tif").exists()


@pytest.mark.parametrize(
    ("tile", "override"),
    [
        ("T99", {}),
        ("T11", {"start_date": "2023-01-01", "end_date": "2024-01-01"}),
        ("T11", {"max_scene_cloud_pct": 0.0}),
    ],
)
def test_a_tile_without_items_is_named(world, p, tmp_path, tile, override):
    """An unknown tile, an empty date range, a cloud limit nothing passes: the tile has no item, an error naming it."""
    with pytest.raises(
        InputError, match=f"no sentinel-2-l2a item of tile {tile} between the dates under the cloud limit"
    ):
        composite_tile(world, tile, tmp_path / "x.tif", p={**p, **override})
    assert not (tmp_path / "x.tif").exists()


def test_all_cloud_stack_gives_an_all_nodata_composite(world, p, tmp_path):
    w = _copy_world(world, tmp_path / "w")
    for sid in kept_scenes(w, "T11", p).system_index:
        _rewrite(w.asset_paths("T11", sid, "CLDPRB")[0], lambda a, kw: (np.full_like(a, 100), kw))
    summary = composite_tile(w, "T11", tmp_path / "T11.tif", p=p)
    data, count, _ = read_composite(summary["path"])
    assert summary["clear_share"] == 0 and (count == 0).all() and np.isnan(data).all()


def test_stage_01_writes_every_tile_and_the_grid_and_measures_them(world, p, tmp_path):
    import geopandas as gpd

    from lakepaper.stages import composite as stage
    from lakepaper.stages.context import Context

    (tmp_path / "00_world").symlink_to(world.root)
    result = stage.run(Context.create("01_composite", profile="tiny", root=tmp_path, quiet=True))
    out = tmp_path / "01_composite"
    summary = result.tables["summary"]
    assert list(summary.tile) == list(TILES)
    assert all((out / path).exists() for path in summary.path)
    grid = gpd.read_file(out / "tile_grid.gpkg")
    assert len(grid) == len(TILES) and grid.crs.to_epsg() == 4326
    assert set(grid.tile) == set(TILES)
    truth = result.tables["truth"]
    assert list(truth.tile) == list(TILES)
    assert all(0 <= r < 0.25 for r in truth.residue)  # per tile; hazy single scenes on T01 since issue 21's world
    assert all(0.5 < r <= 1 for r in truth.within_0_01 if r == r)
    assert set(result.figures) == {f"composite_{t}" for t in TILES[:2]}
    m = result.manifest
    assert set(m["parameters"]) == {"profile", "cloud_probability", *stage.CONSTANTS}
    assert "resolution_m" in m["parameters"]
    assert m["inputs"] == {"00_world": io.sha256_file(world.root / "manifest.json")}
    assert m["truth"] == truth.round(6).to_dict("records")


# --- speed and memory (issue 3): the same product, faster and in blocks -----------------


def _project_cloud_loop(cloud, azimuth_deg, max_dist_px):
    """The projection as the union of shifted views, written plainly (the reference of the dilation)."""
    import math

    out = cloud.copy()
    if max_dist_px <= 0:
        return out
    az = math.radians(azimuth_deg)
    dr, dc = math.cos(az), -math.sin(az)
    steps = max(1, int(math.ceil(max_dist_px * max(abs(dr), abs(dc)))))
    scale = max_dist_px / steps
    shifts = {(int(round(k * scale * dr)), int(round(k * scale * dc))) for k in range(1, steps + 1)}
    rows, cols = cloud.shape
    for r, c in zip(*np.nonzero(cloud), strict=True):  # every cloud pixel casts every shift that stays inside
        for sr, sc in shifts:
            if 0 <= r + sr < rows and 0 <= c + sc < cols:
                out[r + sr, c + sc] = True
    return out


@pytest.mark.parametrize("shape", [(61, 47), (5, 90), (1, 1), (30, 3)])
def test_shadow_projection_is_the_union_of_shifted_clouds(shape):
    rng = np.random.default_rng(shape[0])
    cloud = rng.random(shape) < 0.02
    cloud[0, -1] = cloud[-1, 0] = True  # clouds on the edges
    for az in (0.0, 12.5, 45.0, 90.0, 135.0, 158.3, 180.0, 231.0, 270.0, 333.3):
        for dist in (0, 0.4, 1, 7.5, 25, 100):
            got = project_cloud(cloud, az, dist)
            np.testing.assert_array_equal(got, _project_cloud_loop(cloud, az, dist), err_msg=f"{az} {dist}")
    assert not project_cloud(np.zeros(shape, bool), 45.0, 10).any()


@pytest.mark.parametrize("dtype", [bool, np.uint8, np.uint16, np.int16, np.float32, np.int32])
def test_upsample2_is_a_plain_repeat(dtype):
    a = (np.random.default_rng(3).random((7, 5)) * 100).astype(dtype)
    np.testing.assert_array_equal(upsample2(a), np.repeat(np.repeat(a, 2, axis=0), 2, axis=1))
    assert upsample2(a).dtype == a.dtype
    stacked = np.stack([a, a])  # more than two dimensions: the last two are upsampled
    np.testing.assert_array_equal(upsample2(stacked)[1], upsample2(a))


def test_integer_thresholds_equal_float_comparisons():
    from lakepaper.composite.masks import _greater, _less

    for dtype in (np.uint8, np.uint16, np.int16):
        info = np.iinfo(dtype)
        values = [info.min, info.min + 1, -1, 0, 1, 49, 50, 51, 254, 255, 1499, 1500, 1501, info.max - 1, info.max]
        a = np.array([v for v in values if info.min <= v <= info.max], dtype)
        for t in (50.0, 50.5, 49.999, 0.15 * 10000, 1500.0000001, -0.5, -1e9, 1e9, float(info.max), float(info.min)):
            np.testing.assert_array_equal(_greater(a, t), a.astype(float) > t, err_msg=f"{dtype} > {t}")
            np.testing.assert_array_equal(_less(a, t), a.astype(float) < t, err_msg=f"{dtype} < {t}")


def test_serial_kernel_and_row_offsets_give_the_same_bits():
    rng = np.random.default_rng(2)
    bands = rng.integers(1, 12000, (6, 5, 40, 19), dtype=np.uint16)
    clear = rng.random((6, 40, 19)) < 0.6
    whole = Accumulator((40, 19))
    whole.add(bands, clear)
    for r0, r1 in ((0, 8), (8, 40), (13, 14)):
        part = Accumulator((r1 - r0, 19), parallel=False)
        part.add(bands, clear, row0=r0)
        np.testing.assert_array_equal(part.sums, whole.sums[:, r0:r1])
        np.testing.assert_array_equal(part.count, whole.count[r0:r1])
    with pytest.raises(ValueError, match="do not fit"):
        Accumulator((10, 19)).add(bands, clear, row0=31)


def test_halo_and_default_block_rows(p):
    from lakepaper.composite.local import default_block_rows, halo_rows

    assert halo_rows(p) == 112  # 1 km / 10 m + 100 m / 10 m = 110 rows, up to a multiple of 8
    assert halo_rows({**p, "cloud_proj_dist_km": 0.3}) == 40 and halo_rows({**p, "cloud_proj_dist_km": 0}) == 16
    assert default_block_rows((768, 768), 8, 112) == 768  # a demo tile fits in one block
    rows = default_block_rows((10980, 10980), 8, 112)  # a Sentinel-2 tile does not
    assert rows == 224 and rows % 8 == 0  # the floor of 2 x halo: the halo read is at most the block's
    assert default_block_rows((10980, 10980), 2, 112) == 768  # 256 MiB >= 2 x 11 B x (768 + 2 x 112) x 10980
    assert 2 * 11 * (768 + 2 * 112) * 10980 <= 256 * 2**20 < 2 * 11 * (1024 + 2 * 112) * 10980


def _data(path):
    with rasterio.open(path) as src:
        return src.read(), src.tags(), src.descriptions


@pytest.mark.parametrize(("block_rows", "num_workers", "batch"), [(32, 2, 8), (48, 1, 8), (8, 3, 3), (256, 2, 3)])
def test_blocks_give_the_bits_of_the_whole_tile(world, p, composites, tmp_path, block_rows, num_workers, batch):
    if batch == 8:
        whole = composites["T03"]["path"]  # default: one block of 256 rows
    else:
        whole = composite_tile(world, "T03", tmp_path / "whole.tif", p=p, batch=batch, block_rows=256)["path"]
    got = composite_tile(
        world, "T03", tmp_path / "blocks.tif", p=p, batch=batch, block_rows=block_rows, num_workers=num_workers
    )
    a, b = _data(got["path"]), _data(whole)
    assert np.array_equal(a[0], b[0]) and a[1:] == b[1:]
    ref = composites["T03"] if batch == 8 else got
    assert got["clear_share"] == ref["clear_share"] and got["mean_count"] == ref["mean_count"]


def test_threads_do_not_change_the_bytes(world, p, composites, tmp_path):
    """One worker or three (GDAL then compresses the file's blocks on three threads too): the same file."""
    for workers in (1, 3):
        again = composite_tile(world, "T11", tmp_path / f"w{workers}.tif", p=p, num_workers=workers)
        assert io.sha256_file(again["path"]) == io.sha256_file(composites["T11"]["path"])


def test_blocks_need_their_halo(world, p, tmp_path, monkeypatch):
    """With a halo shorter than the block (0.3 km projection: 40 rows, blocks of 32), inner blocks read
    context on both sides; the bits are those of the whole tile, and without the halo they are not."""
    from lakepaper.composite import sources

    q = {**p, "cloud_proj_dist_km": 0.3}
    whole = _data(composite_tile(world, "T13", tmp_path / "whole.tif", p=q)["path"])[0]
    blocks = _data(composite_tile(world, "T13", tmp_path / "blocks.tif", p=q, block_rows=32)["path"])[0]
    np.testing.assert_array_equal(blocks, whole)
    monkeypatch.setattr(sources, "halo_rows", lambda *a: 0)
    blind = _data(composite_tile(world, "T13", tmp_path / "blind.tif", p=q, block_rows=32)["path"])[0]
    assert not np.array_equal(blind, whole)  # shadows and buffers cut at the block edges


@pytest.mark.bad_input
@pytest.mark.parametrize(
    ("override", "name"),
    [
        ({"batch": 0}, "batch"),
        ({"block_rows": 20}, "block_rows"),
        ({"block_rows": -8}, "block_rows"),
        ({"num_workers": 0}, "num_workers"),
        ({"batch": 2.5}, "batch"),
    ],
)
def test_bad_block_arguments_raise_before_writing(world, p, tmp_path, override, name):
    with pytest.raises(ParameterError) as err:
        composite_tile(world, "T11", tmp_path / "T11.tif", p=p, **override)
    assert err.value.name == name and not (tmp_path / "T11.tif").exists()


def _tiles_of_16_rows(path):
    """Rewrite a GeoTIFF in tiles of 16 rows (the same data), so that its rows can be damaged separately."""
    with rasterio.open(path) as src:
        arr, profile, names, tags = src.read(), dict(src.profile), src.descriptions, src.tags()
    profile.update(blockysize=16, blockxsize=256)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(arr)
        dst.descriptions = names
        dst.update_tags(**tags)


@pytest.mark.bad_input
def test_a_damaged_late_block_leaves_no_file(world, p, tmp_path):
    """The file passes every check (bands, CRS, grid) but its last 16 rows do not decode. With blocks of
    32 rows (halo 112), only the 5th block on needs them: the error names the file and the rows, and
    nothing is written, neither the tile nor a partial file."""
    w = _copy_world(world, tmp_path / "w")
    bad = _first(w, p, "L2A_10m", which=-1)
    _tiles_of_16_rows(bad)
    with rasterio.open(bad) as src:
        offset = int(src.get_tag_item("BLOCK_OFFSET_0_15", "TIFF", bidx=1))
        size = int(src.get_tag_item("BLOCK_SIZE_0_15", "TIFF", bidx=1))
    data = bytearray(bad.read_bytes())
    data[offset : offset + size] = bytes(size)
    bad.write_bytes(bytes(data))
    out = tmp_path / "out" / "T11.tif"
    for block_rows in (32, None):  # blocks; the whole tile in one block
        with pytest.raises(InputError, match=f"{bad.name}: rows .* are not readable") as err:
            composite_tile(w, "T11", out, p=p, block_rows=block_rows)
        assert "Y offset 15" in str(err.value)  # GDAL's own words: which tile of the file
        assert not out.exists() and not (out.parent.exists() and any(out.parent.iterdir()))


@pytest.mark.bad_input
@pytest.mark.parametrize(
    ("product", "fn"),
    [
        ("L2A_20m", lambda a, kw: (a[:, :-2], kw)),  # rows missing
        ("CLDPRB", lambda a, kw: (a, {**kw, "crs": "EPSG:3857"})),  # another CRS
        ("CLDPRB", lambda a, kw: (a[:, ::2, ::2], {**kw, "transform": kw["transform"] * Affine.scale(2)})),  # 20 m
    ],
)
def test_bad_last_scene_is_found_before_any_block_runs(world, p, tmp_path, monkeypatch, product, fn):
    from lakepaper.composite import sources

    w = _copy_world(world, tmp_path / "w")
    bad = _first(w, p, product, which=-1)
    _rewrite(bad, fn)
    reads = []
    monkeypatch.setattr(sources._StacRun, "_load", lambda *a, **k: reads.append(a) or pytest.fail("a block ran"))
    out = tmp_path / "out" / "T11.tif"
    with pytest.raises(InputError, match=bad.name):
        composite_tile(w, "T11", out, p=p, block_rows=32)
    assert reads == [] and not out.parent.exists()


@pytest.mark.bad_input
@pytest.mark.parametrize("block_rows", [32, None])
def test_nothing_seen_gives_all_nodata_in_blocks(world, p, tmp_path, block_rows):
    w = _copy_world(world, tmp_path / "w")
    for sid in kept_scenes(w, "T11", p).system_index:
        _rewrite(w.asset_paths("T11", sid, "CLDPRB")[0], lambda a, kw: (np.full_like(a, 100), kw))
    summary = composite_tile(w, "T11", tmp_path / "cloudy.tif", p=p, block_rows=block_rows)
    data, count, _ = read_composite(summary["path"])
    assert summary["clear_share"] == 0 and summary["mean_count"] == 0
    assert (count == 0).all() and np.isnan(data).all()
