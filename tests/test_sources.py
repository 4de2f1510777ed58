"""Stage 01's sources (issue 17, item 2): world, stac and cogs write the same tiles + grid contract."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pystac
import pytest
import rasterio

from lakepaper import io, params
from lakepaper.composite import stac as stac_reader
from lakepaper.errors import InputError, ParameterError
from lakepaper.stages import composite as stage
from lakepaper.stages.context import Context

TILE = "T07"


@pytest.fixture(scope="module")
def world_run(tmp_path_factory) -> Path:
    """A one-tile world (four 128 px scenes around 2022-01-25) and stage 01 on it, source world."""
    from lakepaper.world.generate import generate_world
    from lakepaper.world.sites import WorldConfig

    root = tmp_path_factory.mktemp("sources")
    cfg = WorldConfig(tile_px=128, scenes_per_tile=4, tiles=(TILE,), start="2021-09-01", end="2022-04-10").validated()
    generate_world(cfg, root / "00_world", workers=1, progress=False, parameters={"n_sample_regions": 2})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stage.run(Context.create("01_composite", profile="tiny", root=root, quiet=True))
    return root


@pytest.fixture(scope="module")
def catalog(world_run, tmp_path_factory) -> Path:
    """The world's catalog, copied away from the world (as a user's own catalog would be)."""
    out = tmp_path_factory.mktemp("sources") / "catalog"
    shutil.copytree(world_run / "00_world" / "stac", out)
    return out


def meta_source(out: Path) -> str:
    return io.read_raster(out / "tiles" / f"{TILE}.tif")[1]["tags"]["SOURCE"]


def _tile(path: Path) -> tuple[np.ndarray, dict]:
    arr, meta = io.read_raster(path)
    return arr, meta


def _run(root: Path, **args):
    return stage.run(Context.create("01_composite", profile="tiny", root=root, quiet=True, **args))


def test_world_source_is_the_default_and_records_itself(world_run):
    out = world_run / "01_composite"
    m = io.read_manifest(out)
    assert m["source"] == {"source": "world", "stac": "00_world/stac"}
    assert meta_source(out) == "world"
    assert set(m["parameters"]) == {"profile", "cloud_probability", *stage.CONSTANTS}  # no other source's
    arr, meta = _tile(out / "tiles" / f"{TILE}.tif")
    assert meta["band_names"] == ["B2", "B3", "B4", "B11", "NDWI", "clear_count"]
    assert meta["tags"]["SCALE"] == "1000" and meta["nodata"] == -32768
    grid = gpd.read_file(out / "tile_grid.gpkg")
    assert list(grid.tile) == [TILE] and list(grid.path) == [f"tiles/{TILE}.tif"] and grid.crs.to_epsg() == 4326


def test_gee_and_unknown_sources_are_refused(tmp_path):
    with pytest.raises(ParameterError) as err:  # Earth Engine: outside Sentinel-2's extent, before any credential
        _run(tmp_path, source="gee", area=[10.0, 85.0, 11.0, 86.0])
    assert err.value.name == "area" and not (tmp_path / "01_composite" / "gee_exports.sqlite").exists()
    with pytest.raises(ParameterError, match="unknown source"):
        _run(tmp_path, source="landsat")
    with pytest.raises(ParameterError, match="'stac'"):
        _run(tmp_path, source="stac", area=[0, 0, 1, 1])
    with pytest.raises(ParameterError, match="'area'"):
        _run(tmp_path, source="stac", stac="somewhere")


def test_stac_source_on_the_worlds_catalog_equals_the_world_source(world_run, catalog, tmp_path):
    """One code path: the world's catalog given as any catalog gives the same composite, only the source differs."""
    want, want_meta = _tile(world_run / "01_composite" / "tiles" / f"{TILE}.tif")
    res = _run(tmp_path / "a", source="stac", stac=str(catalog), area=[TILE])
    got, meta = _tile(tmp_path / "a" / "01_composite" / "tiles" / f"{TILE}.tif")
    np.testing.assert_array_equal(got, want)
    assert meta["band_names"] == want_meta["band_names"] and meta["nodata"] == want_meta["nodata"]
    assert meta["crs"] == want_meta["crs"] and meta["transform"] == want_meta["transform"]
    assert meta["tags"]["SCALE"] == "1000" and meta["tags"]["SOURCE"] == "stac"
    m = res.manifest
    assert m["source"]["source"] == "stac" and m["source"]["area"] == [TILE]
    assert m["source"]["cloud_mask"] == {"s2cloudless": [TILE]}
    assert m["parameters"]["source"] == "stac" and "cogs" not in m["parameters"]
    assert "00_world" not in m["inputs"]
    # a lon/lat box around the tile: its MGRS square, the same pixels
    grid = gpd.read_file(world_run / "01_composite" / "tile_grid.gpkg")
    x0, y0, x1, y1 = grid.geometry.iloc[0].bounds
    dx, dy = (x1 - x0) / 4, (y1 - y0) / 4
    minx, miny, maxx, maxy = x0 + dx, y0 + dy, x1 - dx, y1 - dy
    _run(tmp_path / "b", source="stac", stac=str(catalog), area=[minx, miny, maxx, maxy])
    tiles = list((tmp_path / "b" / "01_composite" / "tiles").glob("*.tif"))
    mgrs = pystac.read_file(str(catalog / "catalog.json")).get_child("sentinel-2-l2a")
    code = next(iter(mgrs.get_items())).properties["s2:mgrs_tile"]
    assert [t.stem for t in tiles] == [code]
    np.testing.assert_array_equal(_tile(tiles[0])[0], want)
    assert list(gpd.read_file(tmp_path / "b" / "01_composite" / "tile_grid.gpkg").tile) == [code]


def _bare(catalog: Path, dst: Path, *, l1c: bool = True) -> Path:
    """The catalog as the public collections are: no s2cloudless asset (and, ``l1c`` False, no L1C either)."""
    shutil.copytree(catalog, dst)
    for item_json in (dst / "sentinel-2-l2a").glob("*/*.json"):
        item = pystac.Item.from_file(str(item_json))
        del item.assets["s2cloudless"]
        if not l1c:
            item.links = [lk for lk in item.links if lk.rel != "derived_from"]
        item.save_object(include_self_link=True, dest_href=str(item_json))
    if not l1c:
        root = pystac.Catalog.from_file(str(dst / "catalog.json"))
        root.remove_child("sentinel-2-l1c")
        root.save_object(include_self_link=False, dest_href=str(dst / "catalog.json"))
        shutil.rmtree(dst / "sentinel-2-l1c")
    return dst


def test_stac_without_s2cloudless_computes_it_from_l1c(world_run, catalog, tmp_path):
    """Earth Search's layout (no probability layer, L1C beside L2A): s2cloudless from the L1C assets, as the
    world computed its own layer; the composite matches the one made with that layer but for rounding."""
    res = _run(tmp_path / "r", source="stac", stac=str(_bare(catalog, tmp_path / "catalog")), area=[TILE])
    assert res.manifest["source"]["cloud_mask"] == {"s2cloudless from L1C": [TILE]}
    got, meta = _tile(tmp_path / "r" / "01_composite" / "tiles" / f"{TILE}.tif")
    want, _ = _tile(world_run / "01_composite" / "tiles" / f"{TILE}.tif")
    assert "from L1C at 80 m" in meta["tags"]["CLOUD_MASK"]
    same_count = (got[-1] == want[-1]).mean()
    print(f"clear counts equal on {same_count:.4%} of pixels")
    assert same_count > 0.99  # the L1C DNs round the world's TOA to 1e-4: a probability can cross 50 %
    both = (got[0] != -32768) & (want[0] != -32768)
    assert np.median(np.abs(got[0][both].astype(int) - want[0][both])) == 0


def test_probability_from_l1c_is_the_worlds_layer(catalog):
    from scipy import ndimage

    from lakepaper.composite import cloudless
    from lakepaper.composite.sources import find_tiles

    p = params.resolve("tiny")
    items = find_tiles(str(catalog), [TILE], p)[TILE]
    l1c = cloudless.l1c_items(str(catalog), items)
    assert [it.id for it in l1c] == [it.id.replace("_L2A", "_L1C") for it in items]
    geobox = stac_reader.tile_geobox(items, stac_reader.Area(tile=TILE))
    layer = stac_reader.load(items, ["s2cloudless"], geobox).compute()
    rows = cloudless.FromL1C(l1c, geobox, 80.0)
    n = geobox.shape[0]
    for i in range(len(items)):
        want = layer.s2cloudless.isel(time=i).values
        got = np.concatenate([rows.rows(i, 0, n // 2), rows.rows(i, n // 2, n)])  # in two blocks
        ok = (want != 255) & (got != 255)
        diff = np.abs(got[ok].astype(int) - want[ok])  # percent: the L1C DNs round the TOA to 1e-4
        assert ok.mean() > 0.5 and (diff <= 2).mean() >= 0.999 and diff.max() <= 3  # max 3 measured (stop 26)
        assert ((want == 255) == (got == 255))[8:-8, 8:-8].mean() > 0.99
    coarse = np.random.default_rng(0).random((7, 5))
    np.testing.assert_allclose(
        cloudless.upsample_rows(coarse, 8, 13, 40, 40),
        ndimage.zoom(coarse, 8, order=1, grid_mode=True, mode="nearest")[13:40],
    )


def test_stac_without_s2cloudless_or_l1c_masks_clouds_from_scl_and_says_so(world_run, catalog, tmp_path):
    bare = _bare(catalog, tmp_path / "catalog", l1c=False)
    with pytest.raises(InputError, match="no sentinel-2-l1c item"):
        _run(tmp_path / "x", source="stac", stac=str(bare), area=[TILE], cloud_probability="l1c")
    res = _run(tmp_path / "r", source="stac", stac=str(bare), area=[TILE])
    assert res.manifest["source"]["cloud_mask"]["SCL only"] == [TILE]
    got, meta = _tile(tmp_path / "r" / "01_composite" / "tiles" / f"{TILE}.tif")
    want, _ = _tile(world_run / "01_composite" / "tiles" / f"{TILE}.tif")
    assert "SCL only" in meta["tags"]["CLOUD_MASK"]
    assert got.shape == want.shape and (got[-1] >= 0).all()
    # another mask, so other counts; where both saw the ground, close reflectance
    both = (got[0] != -32768) & (want[0] != -32768)
    assert both.mean() > 0.5
    assert np.median(np.abs(got[0][both].astype(int) - want[0][both])) <= 5


def _grid_and_files(world_run, dst: Path) -> tuple[Path, Path]:
    src = world_run / "01_composite"
    shutil.copytree(src / "tiles", dst / "cogs")
    shutil.copy(src / "tile_grid.gpkg", dst / "grid.gpkg")
    return dst / "cogs", dst / "grid.gpkg"


def _rewrite(path: Path, *, names=None, tags=None, crs=None) -> None:
    arr, meta = io.read_raster(path)
    io.write_raster(
        path, arr, crs=crs or meta["crs"], transform=meta["transform"], nodata=meta["nodata"],
        band_names=names or meta["band_names"], tags=meta["tags"] if tags is None else tags,
    )  # fmt: skip


def test_cogs_source_accepts_valid_composites(world_run, tmp_path):
    cogs, grid = _grid_and_files(world_run, tmp_path)
    res = _run(tmp_path / "r", source="cogs", cogs=str(cogs), tile_grid=str(grid))
    got, meta = _tile(tmp_path / "r" / "01_composite" / "tiles" / f"{TILE}.tif")
    np.testing.assert_array_equal(got, _tile(cogs / f"{TILE}.tif")[0])
    assert meta["tags"]["SOURCE"] == "cogs" and meta["tags"]["COUNT_KNOWN"] == "1"
    assert res.manifest["source"] == {"source": "cogs", "cogs": str(cogs), "tile_grid": str(grid)}
    # float reflectance, no count band: accepted, rescaled, count 1 where observed
    arr, m = io.read_raster(cogs / f"{TILE}.tif")
    refl = np.where(arr[:5] == -32768, np.nan, arr[:5] / 1000.0).astype(np.float32)
    io.write_raster(
        cogs / f"{TILE}.tif", refl, crs=m["crs"], transform=m["transform"], nodata=None,
        band_names=["B2", "B3", "B4", "B11", "NDWI"], tags={},
    )  # fmt: skip
    _run(tmp_path / "f", source="cogs", cogs=str(cogs), tile_grid=str(grid))
    got2, meta2 = _tile(tmp_path / "f" / "01_composite" / "tiles" / f"{TILE}.tif")
    np.testing.assert_array_equal(got2[:5], got[:5])
    np.testing.assert_array_equal(got2[5], (got[0] != -32768).astype(np.int16))
    assert meta2["tags"]["COUNT_KNOWN"] == "0"


@pytest.mark.parametrize("fault", ["band order", "no SCALE", "other CRS"])
def test_cogs_source_refuses_a_wrong_file_by_name(world_run, tmp_path, fault):
    cogs, grid = _grid_and_files(world_run, tmp_path)
    path = cogs / f"{TILE}.tif"
    _, meta = io.read_raster(path)
    if fault == "band order":
        _rewrite(path, names=["B4", "B3", "B2", "B11", "NDWI", "clear_count"])
        match = r"bands are described \['B4', 'B3', 'B2'"
    elif fault == "no SCALE":
        _rewrite(path, tags={k: v for k, v in meta["tags"].items() if k != "SCALE"})
        match = "without a SCALE tag"
    else:  # a projected grid in the tile's UTM zone, the file labelled with the next zone
        utm = grid.with_name("grid_utm.gpkg")
        gpd.read_file(grid).to_crs(meta["crs"]).to_file(utm, driver="GPKG")
        grid = utm
        _rewrite(path, crs=rasterio.crs.CRS.from_epsg(meta["crs"].to_epsg() + 1))
        match = "differs from the tile grid's"
    with pytest.raises(InputError, match=match) as err:
        _run(tmp_path / "r", source="cogs", cogs=str(cogs), tile_grid=str(grid))
    assert err.value.path == str(path)
