"""Scores per optical water type (issue 21, item 2): zones, counts, tables, index maps, a whole run.

Synthetic arrays first (each expectation worked out by hand), then a run on small files laid out as
stages 00-04 write them, stage 06's skip rules, and one check on a small simulated world: on very
turbid water MNDWI > 0 finds the lakes and NDWI > 0 does not.
"""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from rasterio.transform import Affine
from shapely.geometry import box

from lakepaper import io, params, regions
from lakepaper import water_types as wt
from lakepaper.errors import InputError, ParameterError
from lakepaper.truth import WATER_TYPES, Truth

CODE = {name: i for i, name in enumerate(WATER_TYPES, start=1)}
CRS = "EPSG:32633"
TRANSFORM = Affine(10, 0, 500000, 0, -10, 4000000)


# --- zones ---------------------------------------------------------------------------------------------


def test_zones_give_each_pixel_the_type_of_the_nearest_water_within_the_margin():
    w = np.zeros((1, 12), np.uint8)
    w[0, 2] = CODE["very_turbid"]
    w[0, 7] = CODE["clear"]
    z = wt.zones(w, margin_px=2)
    # col 4 is 2 px from the turbid water and 3 from the clear: turbid; col 5 is 2 px from the clear
    assert z.tolist() == [[3, 3, 3, 3, 3, 1, 1, 1, 1, 1, 0, 0]]
    assert wt.zones(w, margin_px=0).tolist() == [[0, 0, 3, 0, 0, 0, 0, 1, 0, 0, 0, 0]]


def test_zones_margin_is_euclidean_and_empty_without_water():
    w = np.zeros((7, 7), np.uint8)
    w[3, 3] = CODE["humic"]
    z = wt.zones(w, margin_px=2)
    assert z[3, 1] == z[1, 3] == CODE["humic"]  # 2 px straight
    assert z[2, 2] == CODE["humic"] and z[1, 1] == 0  # sqrt(2) in, sqrt(8) out
    assert not wt.zones(np.zeros((4, 4), np.uint8)).any()


# --- counts and tables ---------------------------------------------------------------------------------


def _two_lakes():
    """A clear lake (cols 1-3) and a very turbid lake (cols 8-10) on one row, 12 px; zones with margin 1."""
    water = np.zeros((1, 12), np.uint8)
    water[0, 1:4] = CODE["clear"]
    water[0, 8:11] = CODE["very_turbid"]
    lake = water > 0
    return wt.zones(water, margin_px=1), lake


def test_type_counts_count_each_method_in_each_zone():
    zone, lake = _two_lakes()
    pred = np.zeros((1, 12), bool)
    pred[0, 2:5] = True  # clear: 2 tp, 1 fn (col 1), 1 fp on the shore (col 4)
    pred[0, 8] = True  # very turbid: 1 tp, 2 fn
    pred[0, 6] = True  # outside every zone: not counted
    c = wt.type_counts(zone, lake, {"m": pred}).set_index("water_type")
    assert c.loc["clear", ["lake_px", "tp", "fp", "fn"]].tolist() == [3, 2, 1, 1]
    assert c.loc["very_turbid", ["lake_px", "tp", "fp", "fn"]].tolist() == [3, 1, 0, 2]
    assert set(c.index) == {"clear", "very_turbid"}  # types without pixels are left out
    # valid: the left-out pixels count for nothing
    valid = np.ones((1, 12), bool)
    valid[0, 4] = False
    c2 = wt.type_counts(zone, lake, {"m": pred}, valid=valid).set_index("water_type")
    assert c2.loc["clear", "fp"] == 0


def test_a_map_perfect_on_one_type_and_wrong_on_another():
    zone, lake = _two_lakes()
    ndwi_like = zone == CODE["clear"]  # the clear lake and its shore ...
    ndwi_like &= lake  # ... exactly: the clear lake only, the turbid one missed
    perfect = lake.copy()
    table = wt.type_table(wt.type_counts(zone, lake, {"index": ndwi_like, "model": perfect}))
    assert list(table.index) == ["clear", "very_turbid", "all"]
    assert list(table.columns) == ["lake_px", "index", "model"]
    assert table.loc["clear", "index"] == 1.0
    assert table.loc["very_turbid", "index"] == 0.0
    assert table.loc["all", "index"] == pytest.approx(3 / 6)  # pooled pixels, not the mean of types
    assert (table["model"] == 1.0).all()
    assert table["lake_px"].tolist() == [3, 3, 6]


def test_type_table_rows_follow_water_types_and_scores_are_pooled():
    zone, lake = _two_lakes()
    only_fp = np.zeros((1, 12), bool)
    only_fp[0, 11] = True  # a false positive on the turbid shore, nothing found
    counts = wt.type_counts(zone, lake, {"a": lake, "b": only_fp})
    assert wt.type_table(counts).index.tolist() == ["clear", "very_turbid", "all"]
    recall = wt.type_table(counts, score="recall")
    assert recall.loc["all", "b"] == 0.0 and recall.loc["all", "a"] == 1.0
    long = wt.type_scores(counts).set_index(["method", "water_type"])
    assert long.loc[("b", "very_turbid"), ["tp", "fp", "fn"]].tolist() == [0, 1, 3]
    assert long.loc[("a", "all"), "lake_px"] == 6
    assert wt.type_table(counts.iloc[0:0]).empty
    records = wt.table_records(wt.type_table(counts, score="precision"))
    assert records[0] == {"water_type": "clear", "lake_px": 3, "a": 1.0, "b": None}  # NaN: nothing predicted


# --- index maps ----------------------------------------------------------------------------------------


def test_index_maps_nan_is_not_water_and_integers_do_not_wrap():
    b3 = np.array([1000, 1000, 1000, np.nan, 0])
    b8 = np.array([500, 1200, 1200, 100, 0])
    b11 = np.array([200, 300, 2000, 100, 0])
    m = wt.index_maps(b3, b8, b11)
    assert m["NDWI > 0"].tolist() == [True, False, False, False, False]  # 0/0 and NaN: not water
    assert m["MNDWI > 0"].tolist() == [True, True, False, False, False]
    u = wt.index_maps(*(np.asarray(b[[0, 1, 2]], np.uint16) for b in (b3, b8, b11)))
    assert u["NDWI > 0"].tolist() == [True, False, False]  # 1000 - 1200 does not wrap to 65336


def test_composite_index_maps_use_the_ndwi_band_and_name_missing_bands():
    bands = np.array([[0.05, 0.05], [0.10, 0.10], [0.08, 0.08], [0.02, 0.30], [-0.1, 0.2]], np.float32)
    m = wt.composite_index_maps(bands[:, None, :], ["B2", "B3", "B4", "B11", "NDWI"])
    assert m["NDWI > 0"].tolist() == [[False, True]]
    assert m["MNDWI > 0"].tolist() == [[True, False]]
    with pytest.raises(InputError, match="B11"):
        wt.composite_index_maps(bands[:4, None, :], ["B2", "B3", "B4", "NDWI"], source="x.tif")


def test_held_out_clears_training_and_validation_windows():
    table = pd.DataFrame(
        {
            "row_off": [0, 5, 8],
            "col_off": [0, 5, 0],
            "height": [2, 10, 2],
            "width": [2, 10, 2],
            "split": ["train", "val", "test"],
        }
    )
    h = regions.held_out((10, 10), table)
    assert not h[:2, :2].any() and not h[5:, 5:].any()
    assert h[8:, :2].all()  # a test region is held out
    assert h.sum() == 100 - 4 - 25


# --- a whole run on files -------------------------------------------------------------------------------

N = 40


def _write_run(root, *, splits=("train", "test"), river=False):
    """A one-tile run: truth (a clear lake top left, a very turbid one bottom right), composite, regions, mask.

    The clear lake is water to both indices, the very turbid one only to MNDWI; the model finds both;
    the first region covers the clear lake, the second the turbid one. ``river``: a very turbid river
    (water, not lake) in rows 37-38 too, which the model calls lake.
    """
    water = np.zeros((N, N), np.uint8)
    water[5:15, 5:15] = CODE["clear"]
    water[25:35, 25:35] = CODE["very_turbid"]
    lake = (water > 0).astype(np.int32)
    if river:
        water[37:39, :] = CODE["very_turbid"]
    (root / "truth" / "T01").mkdir(parents=True)
    (root / "world.json").write_text(json.dumps({"tiles": [{"tile": "T01"}]}))
    for name, arr in (("water_type", water), ("lake_id", lake)):
        io.write_raster(root / "truth" / "T01" / f"{name}.tif", arr, crs=CRS, transform=TRANSFORM)

    # B2 B3 B4 B11 NDWI (reflectance, NDWI) x 1000, then the clear count
    land, clear, turbid = (50, 80, 90, 250, -300), (40, 50, 30, 10, 500), (100, 120, 130, 30, -50)
    comp = np.empty((6, N, N), np.int16)
    comp[:5] = np.array(land, np.int16)[:, None, None]
    comp[:5, water == CODE["clear"]] = np.array(clear, np.int16)[:, None]
    comp[:5, water == CODE["very_turbid"]] = np.array(turbid, np.int16)[:, None]
    comp[5] = 4
    comp[:5, 30:35, 25:35] = -32768  # half the turbid lake never observed
    comp[5, 30:35, 25:35] = 0
    (root / "01" / "tiles").mkdir(parents=True)
    io.write_raster(
        root / "01" / "tiles" / "T01.tif",
        comp,
        crs=CRS,
        transform=TRANSFORM,
        nodata=-32768,
        band_names=["B2", "B3", "B4", "B11", "NDWI", "clear_count"],
        tags={"SCALE": 1000},
    )
    rows = [
        {"region_id": "R1", "tile": "T01", "row_off": 0, "col_off": 0, "height": 20, "width": 20, "split": splits[0]},
        {"region_id": "R2", "tile": "T01", "row_off": 20, "col_off": 20, "height": 20, "width": 20, "split": splits[1]},
    ]
    (root / "02").mkdir()
    geoms = [box(0, 0, 1, 1)] * 2
    io.write_vector(gpd.GeoDataFrame(rows, geometry=geoms, crs=CRS), root / "02" / "regions.gpkg", "Polygon")
    mask = (water > 0).astype(np.uint8)
    mask[25:27, :] = 255  # no prediction on two rows of the turbid lake
    (root / "04").mkdir()
    io.write_raster(root / "04" / "T01_mask.tif", mask, crs=CRS, transform=TRANSFORM, nodata=255)
    return Truth(root)


def test_run_counts_scores_held_out_observed_pixels_only(tmp_path):
    truth = _write_run(tmp_path)
    counts = regions.water_type_counts(truth, tmp_path / "01", tmp_path / "02", tmp_path / "04")
    assert set(counts.tile) == {"T01"} and set(counts.scope) == set(wt.SCOPES)
    assert set(counts.water_type) == {"very_turbid"}  # the clear lake lies in a training region
    lakes = counts[counts.scope == "lakes"].drop(columns="scope").reset_index(drop=True)
    counts = counts[counts.scope == "water"].drop(columns="scope").reset_index(drop=True)
    assert lakes.equals(counts)  # no water but lakes: both scopes alike
    c = counts.set_index("method")
    # observed (rows 25-29) and predicted (not rows 25-26): 3 rows of 10, every method on the same pixels
    assert c.loc["NDWI > 0", ["lake_px", "tp", "fp", "fn"]].tolist() == [30, 0, 0, 30]
    assert c.loc["MNDWI > 0", ["lake_px", "tp", "fp", "fn"]].tolist() == [30, 30, 0, 0]
    assert c.loc["model", ["lake_px", "tp", "fp", "fn"]].tolist() == [30, 30, 0, 0]
    table = wt.type_table(counts)
    assert table.loc["very_turbid", "NDWI > 0"] == 0.0 and table.loc["very_turbid", "MNDWI > 0"] == 1.0


def test_run_counts_without_training_regions_scores_every_type(tmp_path):
    truth = _write_run(tmp_path, splits=("test", "test"))
    table = wt.type_table(regions.water_type_counts(truth, tmp_path / "01", tmp_path / "02"))  # no mask: indices only
    assert list(table.columns) == ["lake_px", "NDWI > 0", "MNDWI > 0"]
    assert table.loc["clear", "NDWI > 0"] == table.loc["clear", "MNDWI > 0"] == 1.0
    assert table.loc["clear", "lake_px"] == 100 and table.loc["very_turbid", "lake_px"] == 50  # half observed


def test_a_river_of_the_type_counts_against_it_in_the_water_scope_only(tmp_path):
    truth = _write_run(tmp_path, river=True)
    counts = regions.water_type_counts(truth, tmp_path / "01", tmp_path / "02", tmp_path / "04")
    c = counts[counts.method == "model"].set_index("scope")
    # the river's two rows lie outside the training region (rows and columns 0-19): 2 x 40 px, all called lake
    assert c.loc["water", ["lake_px", "tp", "fp", "fn"]].tolist() == [30, 30, 80, 0]
    assert c.loc["lakes", ["lake_px", "tp", "fp", "fn"]].tolist() == [30, 30, 0, 0]  # the river left out
    water, lakes = (wt.type_table(counts, scope=s) for s in wt.SCOPES)
    assert water.loc["very_turbid", "model"] == pytest.approx(30 / 110) and lakes.loc["very_turbid", "model"] == 1.0
    long = wt.type_scores(counts)
    assert list(long.columns[:3]) == ["scope", "method", "water_type"] and set(long.scope) == set(wt.SCOPES)
    with pytest.raises(ParameterError, match="scope"):
        wt.type_table(counts, scope="rivers")


def test_scope_zones_give_a_shore_to_the_nearer_water():
    w = np.zeros((1, 12), np.uint8)
    w[0, :3] = CODE["clear"]  # a lake
    w[0, 7:] = CODE["very_turbid"]  # a river, 4 px of land away
    zone, counted = wt.scope_zones(w, w == CODE["clear"], "lakes", margin_px=3)
    assert zone.tolist() == [[1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0]]  # two shore pixels nearer the lake than the river
    assert counted.tolist() == [[True] * 5 + [False] * 7]  # the river and its nearer shore are out
    zone, counted = wt.scope_zones(w, w == CODE["clear"], "water", margin_px=3)
    assert zone.tolist() == [[1, 1, 1, 1, 1, 3, 3, 3, 3, 3, 3, 3]] and counted.all()


def test_run_counts_refuses_a_truth_without_water_types(tmp_path):
    truth = _write_run(tmp_path)
    truth.truth_path("T01", "water_type").unlink()
    assert not wt.has_water_types(truth)
    with pytest.raises(InputError, match="water types"):
        regions.water_type_counts(truth, tmp_path / "01", tmp_path / "02", tmp_path / "04")


# --- stage 06 skips the table, with a note, where there is nothing to score against -------------------------


def test_stage06_skips_without_a_truth_or_its_water_types(tmp_path):
    from lakepaper.stages import accuracy
    from lakepaper.stages.context import Context

    truth = _write_run(tmp_path)

    def inputs(**given):
        return accuracy._type_inputs(Context.create("06_accuracy", profile="tiny", root=tmp_path, quiet=True, **given))

    found, composite, note = inputs(truth=str(tmp_path), composite_dir=str(tmp_path / "01"))
    assert found is not None and found.root == tmp_path and composite == tmp_path / "01" and not note
    assert inputs(truth="none")[0] is None
    assert inputs()[0] is None  # no stage 01 in this build: nothing to read the indices from
    (tmp_path / "01" / "manifest.json").write_text(json.dumps({"source": {"source": "stac"}}))
    found, _, note = inputs(composite_dir=str(tmp_path / "01"))
    assert found is None and "'stac' has no truth" in note  # real imagery: no truth
    truth.truth_path("T01", "water_type").unlink()
    found, _, note = inputs(truth=str(tmp_path), composite_dir=str(tmp_path / "01"))
    assert found is None and "no optical water types" in note


# --- a small simulated world ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_world(tmp_path_factory):
    """Three tiles of the tiny world (ponds, river, arid: turbid water in each), 256 px, 4 scenes."""
    from lakepaper.world.files import WorldFiles
    from lakepaper.world.generate import generate_world
    from lakepaper.world.sites import WorldConfig

    cfg = WorldConfig.from_params(params.resolve("tiny"), tiles=("T05", "T07", "T09"), tile_px=256, scenes_per_tile=4)
    out = tmp_path_factory.mktemp("typed_world")
    generate_world(cfg, out, progress=False, parameters={"n_sample_regions": 6})
    world = WorldFiles(out)
    if not wt.has_water_types(world):
        pytest.skip("this world writes no truth/<tile>/water_type.tif (optical water types not simulated)")
    return world


def test_world_very_turbid_lakes_are_found_by_mndwi_not_ndwi(small_world):
    from lakepaper.world import checks

    iou = checks.index_iou_by_type(small_world)
    assert "very_turbid" in iou.index and iou.loc["very_turbid", "lake_px"] > 0
    ndwi, mndwi = iou.loc["very_turbid", ["NDWI > 0", "MNDWI > 0"]]
    # rivers of the same water count against both indices (they are not lakes), so IoU stays modest
    assert mndwi >= 2 * ndwi and mndwi - ndwi >= 0.1, iou
    recall = wt.type_table(checks.index_type_counts(small_world), score="recall")
    assert recall.loc["very_turbid", "MNDWI > 0"] - recall.loc["very_turbid", "NDWI > 0"] >= 0.5, recall
    assert (iou.loc["clear", ["NDWI > 0", "MNDWI > 0"]] > 0.5).all(), iou  # clear water: both indices work
