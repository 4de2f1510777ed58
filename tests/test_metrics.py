"""Accuracy metrics (lakepaper.metrics) and the region reader (lakepaper.regions): hand-computed cases, scipy.

The pixel scores themselves (confusion, empty cases, scikit-learn) are tested in tests/test_scoring.py.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rasterio.transform import from_origin
from scipy import ndimage, stats

from lakepaper import io, metrics, regions, scoring
from lakepaper.errors import InputError, ParameterError
from lakepaper.metrics import NODATA, Region

EDGES = (0.005, 0.01, 0.03, 0.1, 1.0, 100.0, 10000.0)


# --- pooling ------------------------------------------------------------------------------------------


def test_pooled_sums_counts_before_scoring():
    counts = pd.DataFrame(
        {
            "region_id": ["a", "b", "c"],
            "region_type": ["NR", "NR", "SL"],
            "tp": [10, 0, 5],
            "fp": [0, 10, 5],
            "fn": [0, 0, 5],
        }
    )
    t = metrics.pooled(counts, order=("NR", "AR", "SL"))
    assert list(t.index) == ["NR", "AR", "SL", "all"]
    assert t.loc["NR", "precision"] == 0.5  # pooled 10/20, not the mean of 1.0 and 0.0
    assert t.loc["NR", "regions"] == 2 and t.loc["AR", "regions"] == 0
    assert np.isnan(t.loc["AR", "iou"])
    assert t.loc["all", "iou"] == pytest.approx(15 / 35)


# --- patches -----------------------------------------------------------------------------------------


def test_patch_windows_shift_and_drop():
    w = metrics.patch_windows(300, 250, 128)
    assert len(w) == 3 * 2
    assert sorted(set(w.row)) == [0, 128, 172] and sorted(set(w.col)) == [0, 122]
    assert (w.height == 128).all() and (w.width == 128).all()  # every window is a full patch
    assert sorted(set(zip(w.own_row, w.own_height, strict=True))) == [(0, 128), (128, 128), (256, 44)]
    d = metrics.patch_windows(300, 250, 128, partial="drop")
    assert len(d) == 2 and (d.own_height == 128).all() and (d.own_width == 128).all()
    small = metrics.patch_windows(50, 300, 128)  # smaller than a patch: taken whole in that direction
    assert list(small.height.unique()) == [50] and len(small) == 3
    exact = metrics.patch_windows(256, 256, 128)
    assert len(exact) == 4 and (exact.row == exact.own_row).all()
    with pytest.raises(ParameterError):
        metrics.patch_windows(10, 10, 4, partial="pad")
    with pytest.raises(ParameterError):
        metrics.patch_windows(10, 10, 0)


def test_patch_ownership_covers_every_pixel_once():
    h, w, s = 301, 77, 32
    cover = np.zeros((h, w), int)
    for r in metrics.patch_windows(h, w, s).itertuples():
        cover[r.own_row : r.own_row + r.own_height, r.own_col : r.own_col + r.own_width] += 1
        # the owned pixels lie inside the window the model sees
        assert r.row <= r.own_row and r.own_row + r.own_height <= r.row + r.height
    assert (cover == 1).all()


@settings(max_examples=40, deadline=None)
@given(
    h=st.integers(1, 70),
    w=st.integers(1, 70),
    size=st.integers(1, 40),
    seed=st.integers(0, 2**16),
    partial=st.sampled_from(metrics.PARTIAL),
)
def test_patch_counts_add_up_to_the_region(h, w, size, seed, partial):
    rng = np.random.default_rng(seed)
    label = (rng.random((h, w)) < 0.4).astype(np.uint8)
    pred = rng.choice(np.array([0, 1, NODATA], np.uint8), (h, w), p=[0.5, 0.4, 0.1])
    pc = metrics.patch_counts(label, pred, size, partial=partial)
    if partial == "shift":
        ref = scoring.confusion(label, pred)
    else:  # only whole windows, or the whole extent where the region is smaller than a patch
        hh = h if h <= size else (h // size) * size
        ww = w if w <= size else (w // size) * size
        ref = scoring.confusion(label[:hh, :ww], pred[:hh, :ww])
    assert {k: int(pc[k].sum()) for k in scoring.COUNTS} == ref
    for r in pc.itertuples():  # each patch's counts are those of its owned pixels
        sl = np.s_[r.own_row : r.own_row + r.own_height, r.own_col : r.own_col + r.own_width]
        assert scoring.confusion(label[sl], pred[sl]) == {k: getattr(r, k) for k in scoring.COUNTS}


def test_patch_table_table1():
    lab = np.zeros((200, 100), np.uint8)
    lab[10:60, 10:60] = 1
    pred = lab.copy()
    pred[10:60, 10:35] = 0  # half the lake missed
    pred[150:160, 0:10] = 1  # 100 px false positive
    pred[0, 0] = NODATA
    sl = np.ones((30, 30), np.uint8)  # a salt lake, all missed
    regions = [
        Region("r1", "NR", lab, pred),
        Region("r2", "SL", sl, np.zeros_like(sl)),
        Region("r3", "NR", np.zeros((20, 20), np.uint8), np.zeros((20, 20), np.uint8)),
    ]
    patches, table = metrics.patch_table(regions, 64, order=("NR", "AR", "BR", "IL", "SL"))
    assert list(table.index) == ["NR", "AR", "BR", "IL", "SL", "all"]
    assert table.loc["NR", "patches"] == 4 * 2 + 1 and table.loc["SL", "patches"] == 1
    assert table.loc["NR", "tp"] == 1250 and table.loc["NR", "fn"] == 1250 and table.loc["NR", "fp"] == 100
    assert table.loc["NR", "nodata"] == 1
    assert table.loc["NR", "recall"] == pytest.approx(0.5)
    assert table.loc["NR", "precision"] == pytest.approx(1250 / 1350)
    assert table.loc["SL", "recall"] == 0 and np.isnan(table.loc["SL", "precision"])
    assert np.isnan(table.loc["AR", "iou"])
    assert table.loc["all", "iou"] == pytest.approx(1250 / (1250 + 100 + 1250 + 900))
    # patch rows carry their own scores: the empty region's patch has none defined
    r3 = patches[patches.region_id == "r3"].iloc[0]
    assert np.isnan(r3.iou) and np.isnan(r3.recall)
    with pytest.raises(InputError):
        metrics.patch_table([], 64)


def test_table1_beside_stitched_keeps_the_papers_definition_first():
    types = ("NR", "AR", "SL")
    lab = np.zeros((100, 100), np.uint8)
    lab[20:70, 20:70] = 1
    stitched_pred = lab.copy()
    stitched_pred[20:70, 20:30] = 0  # the stitched map misses a strip
    isolated_pred = lab.copy()
    isolated_pred[20:70, 20:45] = 0  # isolated patches miss more (no context at their borders)
    ar = np.zeros((40, 40), np.uint8)
    ar[5:15, 5:15] = 1

    def table(pred):
        regions = [Region("r1", "NR", lab, pred), Region("r2", "AR", ar, ar)]
        return metrics.patch_table(regions, 64, order=types)[1]

    isolated, stitched = table(isolated_pred), table(stitched_pred)
    both = metrics.table1_beside_stitched(isolated, stitched, order=types)
    assert list(both.index) == [*types, "all"]
    assert both.loc["NR", "iou"] == pytest.approx(isolated.loc["NR", "iou"]) == pytest.approx(0.5)
    assert both.loc["NR", metrics.STITCHED + "iou"] == pytest.approx(stitched.loc["NR", "iou"]) == pytest.approx(0.8)
    assert both.loc["NR", "iou gain (pp)"] == pytest.approx(30.0)
    assert both.loc["AR", "iou gain (pp)"] == pytest.approx(0.0)
    assert np.isnan(both.loc["SL", "iou"]) and both.loc["SL", "patches"] == 0  # a type without regions
    assert both.loc["all", "regions"] == 2 and both.loc["all", "patches"] == isolated.loc["all", "patches"]
    assert "tp" not in both and "nodata" not in both  # the counts stay in the stitched table of their own
    # without the isolated scores the sizes come from the stitched cut and the paper's columns stay empty
    alone = metrics.table1_beside_stitched(None, stitched, order=types)
    assert alone["iou"].isna().all() and alone.loc["all", "patches"] == stitched.loc["all", "patches"]
    assert alone.loc["NR", metrics.STITCHED + "iou"] == pytest.approx(0.8)


def test_mask_change_table2():
    t = metrics.mask_change({"tp": 90, "fp": 30, "fn": 10}, {"tp": 89, "fp": 10, "fn": 11})
    assert t.loc["before", "precision"] == pytest.approx(0.75)
    assert t.loc["change", "precision"] == pytest.approx(89 / 99 - 0.75)
    assert t.loc["change", "recall"] == pytest.approx(0.89 - 0.9)


# --- lakes -------------------------------------------------------------------------------------------


def test_lake_overlap_by_hand():
    label = np.zeros((10, 10), np.uint8)
    label[1:3, 1:5] = 1  # lake A: 8 px
    label[6:9, 6:9] = 1  # lake B: 9 px
    pred = np.zeros((10, 10), np.uint8)
    pred[1:3, 1:3] = 1  # covers half of A
    pred[6:9, 7:10] = 1  # covers 6 px of B, 3 px outside
    pred[0, 9] = 1  # a false lake of 1 px
    pred[8, 8] = NODATA  # one pixel of B without prediction
    lab, pre = metrics.lake_overlap(label, pred, pixel_km2=0.01)
    assert lab.pixels.tolist() == [8, 8]  # B: 9 px minus the unseen one
    assert lab.overlap_km2.tolist() == pytest.approx([0.04, 0.05])
    assert lab.recall.tolist() == pytest.approx([0.5, 5 / 8])
    # predicted lakes, in raster order: the 1-px false lake, the half of A, the one over B
    assert pre.pixels.tolist() == [1, 4, 8]
    assert pre.precision.tolist() == pytest.approx([0.0, 1.0, 5 / 8])
    assert not pre.river_residue.any()


def test_lake_overlap_connectivity():
    diag = np.eye(4, dtype=np.uint8)
    lab4, _ = metrics.lake_overlap(diag, diag)
    lab8, _ = metrics.lake_overlap(diag, diag, connectivity=8)
    assert len(lab4) == 4 and len(lab8) == 1
    with pytest.raises(ParameterError):
        metrics.lake_overlap(diag, diag, connectivity=6)


def test_lake_overlap_empty_cases():
    label = np.zeros((5, 5), np.uint8)
    label[1:3, 1:3] = 1
    empty = np.zeros_like(label)
    lab, pre = metrics.lake_overlap(label, empty)
    assert lab.recall.tolist() == [0.0] and len(pre) == 0
    lab, pre = metrics.lake_overlap(empty, label)
    assert len(lab) == 0 and pre.precision.tolist() == [0.0]
    lab, pre = metrics.lake_overlap(empty, empty)
    assert len(lab) == 0 and len(pre) == 0
    s = metrics.lake_level_summary(lab, pre, EDGES)
    assert (s.labelled == 0).all() and s.mean_recall.isna().all()


def test_lake_overlap_residue_and_ids():
    label = np.zeros((6, 12), np.uint8)
    label[1:4, 1:4] = 1
    pred = np.zeros_like(label)
    pred[1:4, 1:4] = 1
    pred[1:4, 6:12] = 1  # a river piece
    residue = np.zeros(label.shape, bool)
    residue[1:4, 7:12] = True  # 15 of its 18 pixels removed by the river mask
    _, pre = metrics.lake_overlap(label, pred, residue=residue)
    assert pre.river_residue.tolist() == [False, True]
    s = metrics.lake_level_summary(*metrics.lake_overlap(label, pred, residue=residue), EDGES)
    assert s.predicted.sum() == 1  # the residue is left out by default
    # a product's polygons burnt into ids: both pieces one lake
    ids = np.where(pred == 1, 7, 0)
    _, pre = metrics.lake_overlap(label, pred, pred_ids=ids)
    assert pre.lake.tolist() == [7] and pre.precision.iloc[0] == pytest.approx(9 / 27)


@pytest.mark.parametrize("seed", range(3))
def test_lake_overlap_matches_a_loop(seed):
    rng = np.random.default_rng(seed)
    label = ndimage.binary_opening(rng.random((80, 90)) < 0.45).astype(np.uint8)
    pred = ndimage.binary_opening(rng.random((80, 90)) < 0.45).astype(np.uint8)
    pred[rng.random(pred.shape) < 0.02] = NODATA
    lab, pre = metrics.lake_overlap(label, pred, pixel_km2=1.0)
    seen = pred != NODATA
    ids, n = ndimage.label(label)
    rows = []
    for i in range(1, n + 1):
        m = (ids == i) & seen
        if m.sum():
            rows.append((m.sum(), ((pred == 1) & m).sum()))
    assert lab[["pixels", "overlap_km2"]].to_numpy().tolist() == [list(map(float, r)) for r in rows]
    ids, n = ndimage.label(pred == 1)
    ref = [(ids == i).sum() for i in range(1, n + 1)]
    assert pre.pixels.tolist() == ref
    assert pre.overlap_km2.tolist() == [float(((ids == i) & (label == 1)).sum()) for i in range(1, n + 1)]


def test_lake_tables_carry_region_columns():
    label = np.zeros((8, 8), np.uint8)
    label[2:5, 2:5] = 1
    regions = [Region("a", "NR", label, label), Region("b", "IL", label, np.zeros_like(label))]
    lab, pre = metrics.lake_tables(regions)
    assert lab.region_id.tolist() == ["a", "b"] and lab.recall.tolist() == [1.0, 0.0]
    assert pre.region_type.tolist() == ["NR"]


def test_fit_line_against_scipy_and_sklearn():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(1)
    x = rng.lognormal(size=200)
    y = 0.93 * x + rng.normal(0, 0.05, 200) + 0.01
    f = metrics.fit_line(x, y)
    ref = stats.linregress(x, y)
    assert f["slope"] == pytest.approx(ref.slope) and f["intercept"] == pytest.approx(ref.intercept)
    assert f["r2"] == pytest.approx(ref.rvalue**2)
    assert f["r2"] == pytest.approx(sk.r2_score(y, f["slope"] * x + f["intercept"]))
    o = metrics.fit_line(x, y, through_origin=True)
    slope = np.linalg.lstsq(x[:, None], y, rcond=None)[0][0]
    assert o["slope"] == pytest.approx(slope) and o["intercept"] == 0
    assert o["r2"] == pytest.approx(sk.r2_score(y, slope * x))
    assert np.isnan(metrics.fit_line([1.0], [1.0])["r2"])
    assert np.isnan(metrics.fit_line([1.0, 1.0], [1.0, 2.0])["slope"])  # x constant


def test_size_groups_are_closed_on_the_left():
    labels = metrics.size_group_labels(EDGES)
    assert labels[0] == "<0.005" and labels[1] == "0.005-0.01" and labels[-1] == ">=10000"
    g = metrics.size_group([0.001, 0.005, 0.0099, 0.01, 5, 10000, 2e6, np.nan], EDGES)
    assert list(g[:7]) == ["<0.005", "0.005-0.01", "0.005-0.01", "0.01-0.03", "1-100", ">=10000", ">=10000"]
    assert pd.isna(g[7])
    assert pd.isna(metrics.size_group([0.001], EDGES, below=False)[0])
    with pytest.raises(ParameterError):
        metrics.size_group_labels([1, 0.5])


def test_lake_level_summary_by_hand():
    lab = pd.DataFrame({"area_km2": [0.002, 0.004, 0.02, 2.0], "recall": [0.2, 0.4, 0.9, 1.0]})
    pre = pd.DataFrame(
        {"area_km2": [0.003, 0.02, 0.05], "precision": [0.5, 1.0, 0.0], "river_residue": [False, False, True]}
    )
    s = metrics.lake_level_summary(lab, pre, EDGES)
    assert s.loc["<0.005", "labelled"] == 2 and s.loc["<0.005", "mean_recall"] == pytest.approx(0.3)
    assert s.loc["0.01-0.03", "mean_precision"] == 1.0
    assert s.loc["0.03-0.1", "predicted"] == 0  # the residue lake is left out
    s = metrics.lake_level_summary(lab, pre, EDGES, include_residue=True)
    assert s.loc["0.03-0.1", "mean_precision"] == 0.0
    fits = metrics.lake_level_fits(
        lab.assign(overlap_km2=lab.area_km2 * lab.recall), pre.assign(overlap_km2=pre.area_km2 * pre.precision)
    )
    assert set(fits.index) == {
        ("labelled", "ols"),
        ("labelled", "origin"),
        ("predicted", "ols"),
        ("predicted", "origin"),
    }


def test_river_mask_change_table2():
    label = np.zeros((10, 10), np.uint8)
    label[:5] = 1  # 50 px lake
    pred = label.copy()
    pred[5:7] = 1  # 20 px false lake (a river), of which the river mask removes 15 ...
    pred[0, 0] = NODATA
    removed = np.zeros((10, 10), bool)
    removed[5:7, :5] = removed[5, 5:] = True
    removed[1, :2] = True  # ... and 2 px of true lake (recall drops)
    t, n = metrics.river_mask_change([Region("a", "NR", label, pred)], {"a": removed})
    assert n == 17
    assert t.loc["before", "precision"] == pytest.approx(49 / 69)  # [0, 0] has no prediction: left out
    assert t.loc["after", "precision"] == pytest.approx(47 / 52)
    assert t.loc["change", "recall"] == pytest.approx(47 / 49 - 1)
    with pytest.raises(InputError):
        metrics.river_mask_change([], {})


def test_lowest_lake_level_score_skips_empty_groups_and_the_smallest():
    s = pd.DataFrame(
        {
            "labelled": [5, 2, 0, 1],
            "mean_recall": [0.1, 0.9, np.nan, 0.95],
            "predicted": [4, 0, 0, 3],
            "mean_precision": [0.2, np.nan, np.nan, 0.88],
        },
        index=["<0.005", "0.005-0.01", "0.01-0.03", "0.03-0.1"],
    )
    assert metrics.lowest_lake_level_score(s) == pytest.approx(0.88)  # not 0.1 (below 0.005 km2)
    assert np.isnan(metrics.lowest_lake_level_score(s.iloc[:1]))
    assert np.isnan(metrics.lowest_lake_level_score(s.iloc[[0, 2]]))


def test_fig5b_has_the_papers_groups_not_fig7s():
    """Fig. 5b's groups: the ones the paper quotes ([0.1-1], [1-20] km2) and two below 0.005 km2."""
    from lakepaper import params

    edges = params.resolve("demo")["lake_size_groups_km2"]
    assert metrics.size_group_labels(edges) == [
        "<0.001", "0.001-0.005", "0.005-0.01", "0.01-0.1", "0.1-1", "1-20", ">=20",
    ]  # fmt: skip
    assert edges != params.resolve("demo")["size_groups_km2"]
    lab = pd.DataFrame(
        {"area_km2": [0.0005, 0.003, 0.5, 0.7, 5.0, 19.9, 20.0], "recall": [0.1, 0.3, 0.9, 1.0, 0.93, 0.95, 0.99]}
    )
    pre = pd.DataFrame({"area_km2": [0.002, 0.5], "precision": [0.4, 0.97]})
    s = metrics.lake_level_summary(lab, pre, edges)
    assert s.loc["0.001-0.005", ["lo_km2", "hi_km2"]].tolist() == [0.001, 0.005]
    assert metrics.group_score(s, 0.1, 1.0) == pytest.approx(0.95)
    assert metrics.group_score(s, 1.0, 20.0) == pytest.approx(0.94)  # 20.0 itself is in ">=20"
    assert metrics.group_score(s, 0.1, 1.0, "mean_precision") == pytest.approx(0.97)
    # from 0.005 km2 up: the two groups below are left out, although there are two of them
    assert metrics.lowest_lake_level_score(s, 0.005) == pytest.approx(0.94)
    assert metrics.lowest_lake_level_score(s) == pytest.approx(0.3)  # from the first edge (0.001) up
    with pytest.raises(ParameterError):
        metrics.group_score(s, 1.0, 100.0)


# --- the region reader (lakepaper.regions) -----------------------------------------------------------


def test_read_test_regions_cuts_the_tile_mask(tmp_path):
    import geopandas as gpd
    import shapely

    samples, masks = tmp_path / "02_samples", tmp_path / "04_predict" / "tiles"
    tile = np.zeros((40, 50), np.uint8)
    tile[10:20, 5:15] = 1
    tile[0, :] = NODATA
    transform = from_origin(500000, 6000000, 10, 10)
    io.write_raster(masks / "T01_mask.tif", tile, crs="EPSG:32633", transform=transform, nodata=NODATA)
    label = np.zeros((15, 20), np.uint8)
    label[5:15, 0:10] = 1
    io.write_raster(samples / "chips/R1_label.tif", label, crs="EPSG:32633", transform=transform)
    table = gpd.GeoDataFrame(
        {
            "region_id": ["R1", "R2"],
            "tile": ["T01", "T01"],
            "region_type": ["NR", "SL"],
            "split": ["test", "train"],
            "row_off": [5, 0],
            "col_off": [5, 0],
            "height": [15, 5],
            "width": [20, 5],
            "area_km2": [0.03, 0.0025],
            "image": ["chips/R1_image.tif"] * 2,
            "label": ["chips/R1_label.tif"] * 2,
        },
        geometry=[shapely.box(0, 0, 1, 1)] * 2,
        crs=4326,
    )
    io.write_vector(table, samples / "regions.gpkg", "Polygon")
    (r,) = regions.read_test_regions(samples, masks)
    assert r.region_id == "R1" and r.region_type == "NR" and r.pixel_km2 == pytest.approx(1e-4)
    assert scoring.confusion(r.label, r.pred) == {"tp": 100, "fp": 0, "fn": 0, "tn": 200, "nodata": 0}
    assert r.transform.c == 500050 and r.transform.f == 6000000 - 50
    # polygons burnt into the region's grid: 2 x 3 pixels from the region's corner, given in lon/lat
    x0, y0 = r.transform.c, r.transform.f
    square = gpd.GeoDataFrame({"id": [5]}, geometry=[shapely.box(x0, y0 - 20, x0 + 30, y0)], crs=32633).to_crs(4326)
    mask = regions.burn(square, r)
    assert mask.dtype == bool and mask.sum() == 6 and mask[:2, :3].all()
    assert regions.burn(square, r, values="id").max() == 5
    assert not regions.burn(square.iloc[:0], r).any()
    with pytest.raises(InputError, match="no grid"):
        regions.burn(square, Region("x", "NR", r.label, r.pred))
    cut = regions.cut_regions(samples, masks, name="{tile}_mask.tif")
    assert list(cut) == ["R1"] and (cut["R1"] == r.pred).all()
    with pytest.raises(InputError, match="not found"):
        regions.cut_regions(samples, masks)  # no T01_residue.tif
    table.loc[0, "row_off"] = 30  # runs off the tile
    io.write_vector(table, samples / "regions.gpkg", "Polygon")
    with pytest.raises(InputError, match="not inside the tile"):
        regions.read_test_regions(samples, masks)
    with pytest.raises(InputError, match="not inside the tile"):
        regions.cut_regions(samples, masks, name="{tile}_mask.tif")
