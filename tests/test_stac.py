"""The STAC seam: the world written as a static catalog in the public layout, and read back as reflectance."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
from builders import kept_scenes
from pystac.validation import validate_dict

from lakepaper.composite import stac as reader
from lakepaper.errors import InputError, ParameterError
from lakepaper.world import stac as ws
from lakepaper.world.files import WorldFiles
from lakepaper.world.spectra import S2_BANDS

TILE = "T07"
L2A_KEYS = {"blue": "B02", "green": "B03", "red": "B04", "nir": "B08", "swir16": "B11", "scl": "SCL"}
HOLE = 32  # rows of no data punched into the first scene (10 m), so no data is covered too


#: The scenes as the world made them (before they were written), by system index.
MADE: dict = {}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> WorldFiles:
    """One 128 px tile, three scenes around 2022-01-25 (one before, two from it on), a no-data band in the first.

    The scenes are caught as the generator hands them to the catalog writer (:data:`MADE`), so the
    tests compare the catalog with what the world made, not with what was written."""
    from lakepaper.world import generate
    from lakepaper.world.sites import WorldConfig

    def spy(folder, scene, **kw):
        if not MADE:  # the first scene: punch a no-data band into every product
            scene.l2a_10m[:, :HOLE] = 0
            scene.l2a_20m[:, : HOLE // 2] = 0
            scene.l1c[:, : HOLE // 8] = 0
            scene.cloud_prob[:HOLE] = 255
        MADE[scene.scene_id] = scene
        return ws.write_scene_assets(folder, scene, **kw)

    root = tmp_path_factory.mktemp("stac") / "world"
    cfg = WorldConfig(tile_px=128, scenes_per_tile=3, tiles=(TILE,), start="2021-09-01", end="2022-06-30").validated()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(generate, "write_scene_assets", spy)
        generate.generate_world(cfg, root, workers=1, progress=False, parameters={"n_sample_regions": 2})
    return WorldFiles(root)


@pytest.fixture(scope="module")
def catalog(world) -> Path:
    return world.catalog


def _items(catalog: Path, collection: str) -> list[pystac.Item]:
    root = pystac.Catalog.from_file(str(catalog / "catalog.json"))
    return sorted(root.get_child(collection).get_items(), key=lambda it: it.datetime)


def _world(world: WorldFiles, sid: str, product: str) -> np.ndarray:
    """A product of a scene as the world made it: reflectance x 10000, 0 no data."""
    scene = MADE[sid]
    made = {"L2A_10m": scene.l2a_10m, "L2A_20m": scene.l2a_20m, "L1C": scene.l1c, "CLDPRB": scene.cloud_prob[None]}
    return made[product]


def test_dates_straddle_the_baseline_change(world):
    dates = list(world.scenes().date.dt.date)
    assert dates[0] < ws.OFFSET_FROM <= dates[-1], dates


def test_catalog_validates_and_has_the_public_layout(world, catalog):
    files = [catalog / "catalog.json", *sorted(catalog.rglob("*.json"))]
    for f in files:  # core STAC 1.1 schemas ship with pystac; extension schemas are online only
        validate_dict(json.loads(f.read_text()), extensions=[])
    scenes = world.scenes().set_index("system_index")
    rec = world.tiles().set_index("tile").loc[TILE]
    left, _, _, top = rec["bounds"]
    l2a, l1c = _items(catalog, "sentinel-2-l2a"), _items(catalog, "sentinel-2-l1c")
    assert len({it.id for it in l2a + l1c}) == 6
    for item, item1 in zip(l2a, l1c, strict=True):
        p = json.loads(Path(item.get_self_href()).read_text())["properties"]  # as on disk (pystac migrates proj:epsg)
        s = scenes.loc[p["lakepaper:system_index"]]
        assert re.fullmatch(r"S2[AB]_\d{2}[C-X][A-Z]{2}_\d{8}_\d+_L2A", item.id)
        assert item1.id == item.id.replace("_L2A", "_L1C")
        assert set(item.assets) == {*L2A_KEYS, "s2cloudless"}
        assert set(item1.assets) == {ws.BANDS[b][0] for b in S2_BANDS}
        assert p["eo:cloud_cover"] == pytest.approx(s.CLOUDY_PIXEL_PERCENTAGE)
        assert p["view:sun_azimuth"] == pytest.approx(s.MEAN_SOLAR_AZIMUTH_ANGLE)
        assert p["view:sun_elevation"] == pytest.approx(90 - s.MEAN_SOLAR_ZENITH_ANGLE, abs=1e-4)
        assert p["proj:epsg"] == rec["epsg"] and p["proj:code"] == f"EPSG:{rec['epsg']}"
        assert p["grid:code"] == f"MGRS-{p['s2:mgrs_tile']}"
        assert p["s2:mgrs_tile"] == f"{p['mgrs:utm_zone']:02d}{p['mgrs:latitude_band']}{p['mgrs:grid_square']}"
        assert p["s2:mgrs_tile"].startswith(f"{rec['epsg'] % 100:02d}")
        assert p["s2:processing_baseline"] == ws.processing_baseline(item.datetime.date())
        assert item.datetime.date() == s.date.date()
        for key, band in L2A_KEYS.items():
            a = item.assets[key].to_dict()
            res = 10.0 if key in ("blue", "green", "red", "nir") else 20.0
            assert a["href"].endswith(f"{band}.tif") and "cloud-optimized" in a["type"]
            assert a["proj:transform"] == [res, 0.0, left, 0.0, -res, top]
            assert a["proj:shape"] == [int(rec["size_px"] * 10 / res)] * 2
            rb = a["raster:bands"][0]
            assert rb["nodata"] == 0 and rb["spatial_resolution"] == res
            if key == "scl":
                assert rb["data_type"] == "uint8" and "scale" not in rb
            else:
                assert rb["data_type"] == "uint16" and rb["scale"] == 1e-4
                assert a["eo:bands"][0]["name"] == key
        # COGs that GDAL itself reads as such
        with rasterio.open(item.assets["red"].get_absolute_href()) as src:
            assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"


def test_post_baseline_scene_carries_the_offset_in_dns_and_item(world, catalog):
    for item in _items(catalog, "sentinel-2-l2a") + _items(catalog, "sentinel-2-l1c"):
        sid = item.properties["lakepaper:system_index"]
        after = item.datetime.date() >= dt.date(2022, 1, 25)
        assert (item.properties["s2:processing_baseline"] >= "04.00") == after
        level2 = item.id.endswith("L2A")
        key = "red" if level2 else "nir09"
        assert item.assets[key].extra_fields["raster:bands"][0]["offset"] == (-0.1 if after else 0.0)
        world_dn = _world(world, sid, "L2A_10m")[2] if level2 else _world(world, sid, "L1C")[S2_BANDS.index("B09")]
        with rasterio.open(item.assets[key].get_absolute_href()) as src:
            dn = src.read(1)
        want = np.where(world_dn == 0, 0, world_dn.astype(np.int64) + (1000 if after else 0))
        np.testing.assert_array_equal(dn, want)
        assert (world_dn == 0).any() == (sid == world.scenes().system_index.iloc[0])  # the hole, only there


def test_reader_gives_back_the_worlds_reflectance(world, catalog):
    ds = reader.read(
        catalog, reader.Area(tile=TILE), ["B2", "green", "B04", "nir", "B11", "scl", "s2cloudless"],
        start_date="2017-01-01", end_date="2023-12-31", max_scene_cloud_pct=100,
    ).compute()  # fmt: skip
    sids = list(world.scenes().sort_values("date").system_index)
    assert ds.sizes == {"time": 3, "y": 128, "x": 128}
    assert list(ds.processing_baseline.values) == [ws.processing_baseline(d.date()) for d in world.scenes().date]
    for i, sid in enumerate(sids):
        a10, a20 = _world(world, sid, "L2A_10m"), _world(world, sid, "L2A_20m")
        up = np.repeat(np.repeat(a20, 2, axis=1), 2, axis=2)  # nearest 20 m -> 10 m
        for name, dn in (("B2", a10[0]), ("green", a10[1]), ("B04", a10[2]), ("nir", a10[3]), ("B11", up[0])):
            got = ds[name].isel(time=i).values
            assert got.dtype == np.float32
            np.testing.assert_array_equal(np.isnan(got), dn == 0)
            np.testing.assert_allclose(got[dn > 0], dn[dn > 0] / 10000.0, atol=1e-6, rtol=0)
        np.testing.assert_array_equal(ds.scl.isel(time=i).values, up[1])
        np.testing.assert_array_equal(ds.s2cloudless.isel(time=i).values, _world(world, sid, "CLDPRB")[0])
    scenes = world.scenes().sort_values("date")
    np.testing.assert_allclose(ds.sun_azimuth.values, scenes.MEAN_SOLAR_AZIMUTH_ANGLE.to_numpy())
    np.testing.assert_allclose(ds.cloud_cover.values, scenes.CLOUDY_PIXEL_PERCENTAGE.to_numpy())
    assert np.isnan(ds.B2.isel(time=0).values[:HOLE]).all() and not np.isnan(ds.B2.isel(time=0).values[HOLE:]).any()


def test_reader_l1c_at_its_own_grid(world, catalog):
    ds = reader.read(
        catalog, reader.Area(tile=TILE), list(S2_BANDS), start_date="2017-01-01", end_date="2023-12-31",
        max_scene_cloud_pct=100, collection="sentinel-2-l1c", resolution=80.0,
    ).compute()  # fmt: skip
    for i, sid in enumerate(world.scenes().sort_values("date").system_index):
        toa = _world(world, sid, "L1C")
        for b, band in enumerate(S2_BANDS):
            got = ds[band].isel(time=i).values
            np.testing.assert_array_equal(np.isnan(got), toa[b] == 0)
            np.testing.assert_allclose(got[toa[b] > 0], toa[b][toa[b] > 0] / 10000.0, atol=1e-6, rtol=0)


def test_reader_selects_as_the_recipe_does(world, catalog):
    rec = world.tiles().set_index("tile").loc[TILE]
    scenes = world.scenes().sort_values("date")
    limit = float(np.median(scenes.CLOUDY_PIXEL_PERCENTAGE)) + 1e-9  # keeps some, drops some
    start, end = str(scenes.date.iloc[0].date()), str(scenes.date.iloc[-1].date() - dt.timedelta(days=1))
    p = {"start_date": start, "end_date": end, "max_scene_cloud_pct": limit}
    want = list(kept_scenes(world, TILE, p).system_index)
    kw = {"start_date": start, "end_date": end, "max_scene_cloud_pct": limit}
    by_tile = reader.find_items(catalog, reader.Area(tile=TILE), **kw)
    assert [it.properties["lakepaper:system_index"] for it in by_tile] == want
    mgrs = by_tile[0].properties["s2:mgrs_tile"]
    for area in (
        reader.Area(tile=mgrs),
        reader.Area(tile=f"T{mgrs}"),
        reader.Area(bbox=tuple(rec["bounds"]), crs=rec["epsg"]),
    ):
        assert [it.id for it in reader.find_items(catalog, area, **kw)] == [it.id for it in by_tile]
    far = reader.Area(bbox=(0.0, 0.0, 0.1, 0.1))
    assert reader.find_items(catalog, far, **kw) == []
    # the tile's grid from its items equals the grid of its bounds
    g_tile = reader.tile_geobox(by_tile, reader.Area(tile=TILE))
    g_box = reader.tile_geobox(by_tile, reader.Area(bbox=tuple(rec["bounds"]), crs=f"EPSG:{rec['epsg']}"))
    assert g_tile == g_box and g_tile.shape == (128, 128)


def test_reader_errors_name_the_problem(catalog, tmp_path):
    kw = {"start_date": "2017-01-01", "end_date": "2023-12-31", "max_scene_cloud_pct": 100}
    with pytest.raises(InputError, match="no collection 'landsat'"):
        reader.find_items(catalog, reader.Area(tile=TILE), collection="landsat", **kw)
    with pytest.raises(InputError, match="not a readable STAC catalog"):
        reader.find_items(tmp_path, reader.Area(tile=TILE), **kw)
    with pytest.raises(ParameterError, match="area"):
        reader.Area()
    with pytest.raises(ParameterError, match="end_date"):
        reader.find_items(catalog, reader.Area(tile=TILE), **{**kw, "end_date": "2016-01-01"})
    with pytest.raises(InputError, match="no sentinel-2-l2a item"):
        reader.read(catalog, reader.Area(tile="99ZZZ"), ["red"], **kw)
    item = _items(catalog, "sentinel-2-l2a")[0]
    with pytest.raises(InputError, match="no asset for band 'B12'"):
        reader.asset_key(item, "B12")


def test_api_search_asks_what_the_recipe_needs(catalog, monkeypatch):
    """A STAC API (pystac-client, faked here: no network in tests) is asked for the collection, dates and
    cloud limit; a tile by ``s2:mgrs_tile`` (Planetary Computer), then by ``grid:code`` (Earth Search)."""
    import pystac_client

    items = _items(catalog, "sentinel-2-l2a")
    mgrs = items[0].properties["s2:mgrs_tile"]
    asked = []

    class Search:
        def __init__(self, kw):
            self.kw = kw

        def items(self):
            q = self.kw["query"]
            if "s2:mgrs_tile" in q:  # an Earth Search-like API: no s2:mgrs_tile property
                return iter([])
            return iter(items)

    class Client:
        def search(self, **kw):
            asked.append(kw)
            return Search(kw)

    monkeypatch.setattr(pystac_client.Client, "open", staticmethod(lambda url: Client()))
    kw = {"start_date": "2017-01-01", "end_date": "2023-12-31", "max_scene_cloud_pct": 50}
    found = reader.find_items("https://example.test/v1", reader.Area(tile=mgrs), **kw)
    assert [it.id for it in found] == [it.id for it in items if it.properties["eo:cloud_cover"] < 50]
    assert [a["query"] for a in asked] == [
        {"eo:cloud_cover": {"lt": 50.0}, "s2:mgrs_tile": {"eq": mgrs}},
        {"eo:cloud_cover": {"lt": 50.0}, "grid:code": {"eq": f"MGRS-{mgrs}"}},
    ]
    assert asked[0]["collections"] == ["sentinel-2-l2a"]
    assert asked[0]["datetime"] == "2017-01-01T00:00:00Z/2023-12-31T23:59:59Z"
    asked.clear()
    reader.find_items("https://example.test/v1", reader.Area(bbox=(-61, -4, -60, -3)), **kw)
    assert asked[0]["bbox"] == pytest.approx((-61, -4, -60, -3))


def _bare_item(props: dict, assets: dict) -> pystac.Item:
    item = pystac.Item("x", None, None, dt.datetime(2022, 6, 1, tzinfo=dt.UTC), props)
    for k, extra in assets.items():
        item.add_asset(k, pystac.Asset(f"{k}.tif", extra_fields=extra))
    return item


def test_scaling_rules_of_the_providers():
    declared = {"raster:bands": [{"nodata": 0, "scale": 0.0001, "offset": -0.1}]}
    # Earth Search: raster:bands as declared, unless its COGs were already shifted back
    assert reader.band_scaling(_bare_item({}, {"red": declared}), "red") == (1e-4, -0.1, 0)
    shifted = _bare_item({"earthsearch:boa_offset_applied": True}, {"red": declared})
    assert reader.band_scaling(shifted, "red")[1] == 0.0
    # Planetary Computer: no raster:bands, band-id keys; the offset follows the baseline
    pc_new = _bare_item({"s2:processing_baseline": "04.00"}, {"B04": {}, "SCL": {}})
    pc_old = _bare_item({"s2:processing_baseline": "02.14"}, {"B04": {}})
    assert reader.asset_key(pc_new, "red") == "B04" and reader.asset_key(pc_new, "scl") == "SCL"
    assert reader.band_scaling(pc_new, "B04") == (1e-4, -0.1, 0)
    assert reader.band_scaling(pc_old, "B04") == (1e-4, 0.0, 0)
    assert reader.band_scaling(pc_new, "SCL") == (1.0, 0.0, 0)
    # every Earth Search key has its Planetary Computer key
    assert ws.PC_KEYS["swir16"] == "B11" and ws.PC_KEYS["scl"] == "SCL" and len(ws.PC_KEYS) == 14


def test_mgrs_square_of_known_points():
    # Earth Search / Planetary Computer tiles: 10TFK holds (650000, 4450000) in zone 10 at ~40.2 N;
    # 33TWM holds (550000, 5150000) in zone 33 at ~46.5 N; 55HBU: zone 55 south (northing with false northing).
    assert ws.mgrs_square(32610, 650000, 4450000, 40.2) == (10, "T", "FK")
    assert ws.mgrs_square(32633, 550000, 5150000, 46.5) == (33, "T", "WM")
    assert ws.mgrs_square(32755, 250000, 5850000, -37.5) == (55, "H", "BU")


def test_the_worlds_own_reader_gives_back_what_it_made(world):
    """World-internal code (checks, figures, replicas) reads the catalog as the world made it, offset undone."""
    for sid in world.scenes().system_index:
        for product in ("L2A_10m", "L2A_20m", "L1C", "CLDPRB"):
            got, meta = world.read_scene(TILE, sid, product)
            np.testing.assert_array_equal(got, _world(world, sid, product))
        assert meta["crs"].to_epsg() == world.tiles().epsg.iloc[0]
