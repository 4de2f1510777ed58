"""lakepaper.world.references: the look-alike reference datasets carry the errors of the real ones."""

from __future__ import annotations

import sqlite3

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from rasterio import features
from rasterio.warp import transform_bounds
from scipy import ndimage

from lakepaper import io
from lakepaper.world import references as ref
from lakepaper.world.generate import build_truth
from lakepaper.world.sites import SITES_BY_NAME, WorldConfig

TILE_PX = 256
SEED = 5
#: river (floodplain, wide river), coast (ocean, lagoons), arid, ponds (paddies in a floodplain), reservoirs (dams).
TILES = ("T07", "T13", "T09", "T05", "T15")
VECTORS = (
    "osm_land_polygons",
    "osm_water_polygons",
    "osm_rivers",
    "osm_reservoirs",
    "grwl_centerlines",
    "geodar_dams",
    "geodar_reservoirs",
    "glakes",
    "pld",
)
RASTERS = ("aridity_index", "floodplain", "occurrence")


def _tile(name: str, index: int, cfg: WorldConfig):
    return build_truth(cfg, index, SITES_BY_NAME[name])


@pytest.fixture(scope="module")
def truths():
    cfg = WorldConfig(tile_px=TILE_PX)
    return {name: _tile(name, i, cfg) for i, name in enumerate(TILES)}


@pytest.fixture(scope="module")
def built(truths, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("refs") / "references"
    paths = ref.build_references(list(truths.values()), out_dir, seed=SEED)
    return out_dir, paths


def _read(paths, name, truth=None):
    """A vector product, or its features on one tile, in that tile's UTM CRS."""
    df = pyogrio.read_dataframe(paths[name])
    if truth is None:
        return df
    foot = ref._footprint(truth)
    foot_ll = gpd.GeoSeries([foot], crs=truth.crs).to_crs(4326).iloc[0]
    return df[df.intersects(foot_ll)].to_crs(truth.crs)


def _burn(df, truth):
    """Rasterise polygons onto the tile's 10 m grid."""
    if not len(df):
        return np.zeros(truth.shape, bool)
    return features.rasterize(df.geometry, out_shape=truth.shape, transform=truth.transform).astype(bool)


def _centres_in(df, truth):
    """Which 10 m pixel centres of the tile lie inside the polygons of ``df`` (EPSG:4326)."""
    r, c = np.mgrid[0 : truth.shape[0], 0 : truth.shape[1]]
    xs, ys = truth.transform @ (c.ravel() + 0.5, r.ravel() + 0.5)
    pts = gpd.GeoSeries(gpd.points_from_xy(xs, ys), crs=truth.crs).to_crs(4326)
    if not len(df):
        return np.zeros(truth.shape, bool)
    geom = shapely.union_all(df.geometry.values)
    return shapely.contains_xy(geom, pts.x.values, pts.y.values).reshape(truth.shape)


# --- layout -------------------------------------------------------------------------------


def test_every_product_is_written_and_opens(built, truths):
    out_dir, paths = built
    for name in VECTORS:
        info = pyogrio.read_info(paths[name])
        assert info["crs"] == "EPSG:4326", name
        assert paths[name].parent == out_dir
    assert paths["glakes"].suffix == ".shp" and paths["pld"].suffix == ".shp"
    for product in RASTERS:
        index = pyogrio.read_dataframe(paths[product])
        assert sorted(index["tile"]) == sorted(TILES)
        for tile in TILES:
            path = paths[f"{product}/{tile}"]
            assert path == out_dir / product / f"{tile}.tif"
            with rasterio.open(path) as src:
                assert src.count == 1 and src.crs is not None
    assert not [p for p in out_dir.rglob(".*")], "temporary files left behind"


def test_written_twice_gives_identical_bytes(built, truths, tmp_path):
    out_dir, _ = built
    again = tmp_path / "again"
    ref.build_references(list(truths.values()), again, seed=SEED)
    first, second = io.hash_tree(out_dir), io.hash_tree(again)
    assert first.keys() == second.keys()
    assert first == second


def test_timestamps_are_fixed(built):
    _, paths = built
    with sqlite3.connect(paths["glakes"].with_name("osm_rivers.gpkg")) as db:
        (stamp,) = db.execute("select last_change from gpkg_contents").fetchone()
    assert stamp.startswith(io.FIXED_DATE)
    dbf = paths["glakes"].with_suffix(".dbf").read_bytes()
    year, month, day = io.FIXED_DATE.split("-")
    assert tuple(dbf[1:4]) == (int(year) - 1900, int(month), int(day))


def test_seed_changes_the_random_errors(truths, tmp_path):
    a = ref.build_references(list(truths.values()), tmp_path / "a", seed=1)
    b = ref.build_references(list(truths.values()), tmp_path / "b", seed=2)
    wa = pyogrio.read_dataframe(a["grwl_centerlines"])["width_m"].to_numpy()
    wb = pyogrio.read_dataframe(b["grwl_centerlines"])["width_m"].to_numpy()
    assert len(wa) == len(wb) and not np.array_equal(wa, wb)


# --- OSM ----------------------------------------------------------------------------------


def test_land_polygons_leave_out_the_ocean_up_to_generalisation(built, truths):
    _, paths = built
    land, sea = _read(paths, "osm_land_polygons"), _read(paths, "osm_water_polygons")
    coast = truths["T13"]
    ocean = coast.masks["ocean"]
    in_land, in_sea = _centres_in(land, coast), _centres_in(sea, coast)
    assert (in_land & ocean).sum() < 0.05 * ocean.sum()  # the land polygons do not cover the ocean ...
    assert (in_land & ocean).sum() > 0 or (~in_land & ~ocean).sum() > 0  # ... but the coastline is generalised
    assert (in_sea & ocean).sum() > 0.95 * ocean.sum()
    assert not (in_land & in_sea).any()  # land and water polygons are complementary
    inland = truths["T09"]  # no ocean: the whole tile is land
    assert _centres_in(land, inland).all()
    assert not _centres_in(sea, inland).any()


def test_lagoon_inlets_survive_generalisation(built, truths):
    _, paths = built
    coast = truths["T13"]
    sea = _read(paths, "osm_water_polygons", coast)
    lagoon_ids = [lake.lake_id for lake in coast.lakes if lake.type == "lagoon"]
    assert lagoon_ids
    near_sea = ndimage.binary_dilation(_burn(sea, coast), iterations=2)
    assert any((near_sea & (coast.lake_id == i)).any() for i in lagoon_ids)


def test_rivers_and_reservoirs(built, truths):
    _, paths = built
    river = truths["T07"]
    rivers = _read(paths, "osm_rivers", river)
    burnt = _burn(rivers, river)
    overlap = (burnt & river.masks["river"]).sum()
    assert overlap > 0.9 * river.masks["river"].sum() and overlap > 0.9 * burnt.sum()
    res_tile = truths["T15"]
    res = _read(paths, "osm_reservoirs", res_tile)
    truth_res = [lake for lake in res_tile.lakes if lake.type == "reservoir"]
    assert len(res) == len(truth_res) > 0
    assert res["name"].str.contains("reservoir").all()
    burnt = _burn(res, res_tile)
    max_extent = np.isin(res_tile.lake_id, [lake.lake_id for lake in truth_res])
    assert (burnt & max_extent).sum() > 0.9 * max_extent.sum()  # OSM maps reservoirs at full supply level


def test_grwl_keeps_wide_rivers_in_segments(built, truths):
    _, paths = built
    for name, truth in truths.items():
        segs = _read(paths, "grwl_centerlines", truth)
        if truth.river_width_m >= ref.GRWL_MIN_WIDTH_M:
            assert len(segs) >= 3, name
            w = segs["width_m"].to_numpy()
            assert np.all(np.abs(w / truth.river_width_m - 1) <= 0.1 + 1e-6)
            assert np.ptp(w) > 0  # each segment has its own width
            lengths = segs.length.to_numpy()
            assert np.all((lengths > 250) & (lengths < 750))
            centre = ref._pixel_to_map(truth.river_line, truth.transform)  # the true centre line
            vertices = shapely.points(shapely.get_coordinates(segs.geometry.values))
            assert shapely.distance(centre, vertices).max() < 1.0
        else:
            assert len(segs) == 0, name  # T15's 60 m river is too narrow for GRWL


def test_geodar_dams_and_incomplete_reservoirs(built, truths):
    _, paths = built
    truth = truths["T15"]
    dams, res = _read(paths, "geodar_dams"), _read(paths, "geodar_reservoirs")
    assert len(dams) == len(truth.dams) >= 2
    assert len(res) == len(dams) - 1  # one reservoir of the world has no polygon
    assert set(res["id_v11"]) < set(dams["id_v11"])
    ids = {lake.lake_id for lake in truth.lakes if lake.type == "reservoir"}
    assert set(dams["reservoir_id"]) == ids
    # each polygon holds its reservoir at the typical extent
    res_utm = res.to_crs(truth.crs)
    for _, row in res_utm.iterrows():
        burnt = features.rasterize([row.geometry], out_shape=truth.shape, transform=truth.transform).astype(bool)
        typical = (truth.lake_id == row["reservoir_id"]) & (truth.threshold < 0.5)
        assert (burnt & typical).sum() == typical.sum() == burnt.sum()


# --- GLAKES and PLD -----------------------------------------------------------------------


def test_minimum_areas_and_area_attributes(built, truths):
    _, paths = built
    glakes, pld = _read(paths, "glakes"), _read(paths, "pld")
    assert list(glakes.columns[:3]) == ["Lake_id", "Area_bound", "Lake_type"]
    assert list(pld.columns[:2]) == ["lake_id", "ref_area"]
    assert len(glakes) and len(pld)
    assert glakes["Area_bound"].min() >= ref.GLAKES_MIN_KM2
    assert pld["ref_area"].min() >= ref.PLD_MIN_KM2
    assert glakes["Lake_id"].is_unique and pld["lake_id"].is_unique
    assert set(glakes["Lake_type"]) <= {1, 2}
    for truth in truths.values():  # attributes are the UTM areas of the polygons
        g = _read(paths, "glakes", truth)
        np.testing.assert_allclose(g["Area_bound"], g.area / 1e6, rtol=1e-3)
        p = _read(paths, "pld", truth)
        np.testing.assert_allclose(p["ref_area"], p.area / 1e6, rtol=1e-3)


def test_glakes_flags_reservoirs(built, truths):
    _, paths = built
    g = _read(paths, "glakes", truths["T15"])
    assert (g["Lake_type"] == 2).sum() >= 2
    assert (_read(paths, "glakes", truths["T09"])["Lake_type"] == 1).all()


def test_glakes_floodplain_false_positives(built, truths):
    _, paths = built
    for name in ("T07", "T05"):
        truth = truths[name]
        g, p = _read(paths, "glakes", truth), _read(paths, "pld", truth)
        assert g.area.sum() >= p.area.sum(), name  # maximum extent plus false positives
        burnt = _burn(g, truth)
        labels, n = ndimage.label(burnt)
        lakes_per_polygon = [
            len(np.unique(truth.lake_id[(labels == k) & (truth.lake_id > 0)])) for k in range(1, n + 1)
        ]
        assert max(lakes_per_polygon) >= 3, name  # neighbouring lakes glued together (paper Fig. 4)
    ponds = truths["T05"]
    paddy = ponds.masks["paddy"]
    assert paddy.any()
    assert (_burn(_read(paths, "glakes", ponds), ponds) & paddy).sum() > 0.5 * paddy.sum()
    assert not (_burn(_read(paths, "pld", ponds), ponds) & paddy).any()


def test_glakes_maximum_and_pld_typical_extent(built, truths):
    _, paths = built
    truth = truths["T13"]  # no floodplain: GLAKES is the lakes' maximum extent only
    g, p = _burn(_read(paths, "glakes", truth), truth), _burn(_read(paths, "pld", truth), truth)
    lake = truth.lake_id > 0
    assert (g & lake).sum() > 0.9 * g.sum()
    assert (p & lake).sum() > 0.9 * p.sum()
    assert (p & (truth.threshold < 0.5)).sum() > 0.85 * p.sum()
    seasonal = lake & (truth.threshold >= 0.5)  # flooded less than half of the time
    assert (g & seasonal).sum() > 2 * (p & seasonal).sum()


def test_pld_catches_ephemeral_lakes_in_arid_land(built, truths):
    _, paths = built
    arid = truths["T09"]
    assert arid.biome.aridity < ref.ARID_AI
    p = _burn(_read(paths, "pld", arid), arid)
    ephemeral = (arid.lake_id > 0) & (arid.occurrence() >= 25) & (arid.occurrence() < 50)
    assert ephemeral.any()
    assert (p & ephemeral).sum() > 0.3 * ephemeral.sum()


# --- rasters ------------------------------------------------------------------------------


def test_aridity_index_rasters(built, truths):
    _, paths = built
    for name, truth in truths.items():
        with rasterio.open(paths[f"aridity_index/{name}"]) as src:
            ai = src.read(1)
            assert src.dtypes[0] == "int32" and src.crs.to_epsg() == 4326
            np.testing.assert_allclose(src.res, (1 / 120, 1 / 120))
            assert src.nodata == ref.AI_NODATA and (ai != src.nodata).all()
            lonlat = transform_bounds(truth.crs, 4326, *ref._footprint(truth).bounds)
            b = src.bounds
            assert b.left <= lonlat[0] - 0.05 and b.right >= lonlat[2] + 0.05
            assert b.bottom <= lonlat[1] - 0.05 and b.top >= lonlat[3] + 0.05
        values = ai / ref.AI_SCALE
        assert np.all(np.abs(values / truth.biome.aridity - 1) <= 0.1 + 1e-3), name
        assert abs(values.mean() / truth.biome.aridity - 1) < 0.1


def test_floodplain_rasters(built, truths):
    _, paths = built
    for name, truth in truths.items():
        with rasterio.open(paths[f"floodplain/{name}"]) as src:
            fp = src.read(1)
            assert src.dtypes[0] == "uint8" and src.crs.to_epsg() == 4326 and src.nodata == 255
            np.testing.assert_allclose(src.res, (1 / 1200, 1 / 1200))
        assert set(np.unique(fp)) <= {0, 1, 255}
        share = (fp == 1).sum() / max((fp != 255).sum(), 1)
        assert abs(share - truth.masks["floodplain"].mean()) < 0.1, name


def test_occurrence_makes_the_30_percent_floodplain_threshold_work(built, truths):
    _, paths = built
    for name in ("T05", "T07"):
        truth = truths[name]
        with rasterio.open(paths[f"occurrence/{name}"]) as src:
            occ = src.read(1)
            assert src.crs == truth.crs and src.res == (30.0, 30.0) and src.nodata == 255
            assert (src.transform.c, src.transform.f) == (truth.transform.c, truth.transform.f)
        occ10 = np.kron(occ, np.ones((3, 3), np.uint8))[: truth.shape[0], : truth.shape[1]]
        assert occ10.max() <= 100
        core = (truth.lake_id > 0) & (truth.threshold <= 0.0)
        core = ndimage.binary_erosion(core, iterations=3)  # whole 30 m cells inside lakes
        assert np.median(occ10[core]) >= 90
        glakes = _burn(_read(paths, "glakes", truth), truth)
        false_pos = glakes & (truth.lake_id == 0)
        assert false_pos.any()
        assert (occ10[false_pos] < 30).mean() > 0.8, name  # the 30 % occurrence mask removes them
        assert (occ10[core] >= 30).mean() > 0.99


def test_world_files_are_where_the_registry_says_in_the_published_schema(built):
    """Every simulated file is at the registry's ``simulated`` path, with the published columns the
    stages read (and GLAKES'/PLD's id and area) under their published names and types."""
    from lakepaper import references as registry

    out_dir, _ = built
    kinds = {"int": "i", "float": "f", "str": "O"}
    for name, d in registry.DATASETS.items():
        path = registry.simulated_path(d, out_dir)
        if path is None:
            continue
        assert path.exists(), f"{name}: {path}"
        if d.kind == "raster":
            assert (path / "index.gpkg").exists()
            with rasterio.open(next(path.glob("*.tif"))) as src:
                assert src.dtypes[0] == d.raster.dtype, name
            continue
        frame = pyogrio.read_dataframe(path)
        published = {c.name: c for c in (*d.columns, *d.keys)}
        wanted = [*d.required, *(c for c in (d.id_col, d.area_col) if c)]
        for col in wanted:
            assert col in frame.columns, f"{name}: published column {col!r} missing from {path.name}"
            assert frame[col].dtype.kind == kinds[published[col].dtype], f"{name}.{col}: {frame[col].dtype}"
