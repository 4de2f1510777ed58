"""The departures table (lakepaper.report.departures): one list, every entry labelled, rendered once."""

from __future__ import annotations

import json

import geopandas as gpd
import pandas as pd
import shapely

from lakepaper import params
from lakepaper.report import departures
from lakepaper.report.outputs import Run
from lakepaper.report.registry import PAGE_TABLES
from lakepaper.report.sections import SECTIONS

ISSUE_20_ITEM_9 = ("s2_collection", "unet_upsample", "dice_smooth", "padding", "grwl")


def test_every_departure_is_labelled_and_names_real_constants():
    keys = [d.key for d in departures.DEPARTURES]
    assert len(keys) == len(set(keys)) and set(ISSUE_20_ITEM_9) <= set(keys)
    for d in departures.DEPARTURES:
        assert d.status in departures.STATUS, d.key
        assert d.paper and d.compendium and d.why, d.key
        assert set(d.params) <= set(params.CONSTANTS), d.key
        # a choice of this compendium is labelled so in params.py too
        for name in d.params:
            if d.status == "choice" and name not in ("train_precision_cuda",):
                assert params.CONSTANTS[name].origin in ("own", "paper"), (d.key, name)
    s2 = next(d for d in departures.DEPARTURES if d.key == "s2_collection")
    assert "2022-01-25" in s2.why and "+1000" in s2.why  # what the harmonised collection changes


def test_the_table_is_rendered_once_through_the_registry_and_a_section():
    placed = [label for s in SECTIONS for label in s.items if label in PAGE_TABLES]
    assert placed == ["Table D1"]
    frame = PAGE_TABLES["Table D1"].frame(None)
    assert list(frame.columns) == list(departures.COLUMNS) and len(frame) == len(departures.DEPARTURES)
    assert (frame["effect on the simulated world"] != "").all()
    html = PAGE_TABLES["Table D1"].render(None)
    assert html.count("<tr>") == len(departures.DEPARTURES) + 1 and "id='table-d1'" in html
    assert "&lt; 0.001" in html and "< 0.001" not in html  # the text is escaped


def _build(tmp_path) -> Run:
    """A build with the three stages the measured effects read."""
    b = tmp_path / "build"
    for stage in ("00_world", "02_samples", "03_train"):
        (b / stage).mkdir(parents=True)
    pd.DataFrame({"date": ["2021-06-01", "2022-02-01", "2020-01-01", "2022-01-25"]}).to_csv(
        b / "00_world" / "scenes.csv", index=False
    )
    gpd.GeoDataFrame(
        {
            "split": ["train", "train", "test"],
            "height": [32, 128, 10],
            "width": [64, 128, 10],
            "area_km2": [1.0, 3.0, 5.0],
            "lake_share": [0.5, 0.1, 0.9],
        },
        geometry=[shapely.box(0, 0, 1, 1)] * 3,
        crs=3857,
    ).to_file(b / "02_samples" / "regions.gpkg")
    manifests = {
        "00_world": {"outputs": {"scenes.csv": "x"}},
        "02_samples": {"outputs": {"regions.gpkg": "x"}},
        "03_train": {
            "parameters": {"patch_size": 64, "batch_size": 4, "dice_smooth": 1.0},
            "training": {"precision": "bf16", "device": "cpu"},
        },
    }
    for stage, m in manifests.items():
        (b / stage / "manifest.json").write_text(json.dumps({"stage": stage, "inputs": {}, **m}))
    pd.DataFrame(
        {
            "condition": ["offset +0.02", "Landsat-like (30 m, OLI bands)"],
            "iou": [0.84, 0.81],
            "drop": [0.014, 0.051],
            "limit": [0.03, 0.05],
            "result": ["pass", "fail"],
            "pixel_drop": [0.0, 0.038],
            "drop_min_area": [0.012, 0.021],
            "most_lost": ["R1 (AR)", "R2 (NR)"],
            "most_lost_share": [0.2, 0.6],
        }
    ).to_csv(b / "03_train" / "robustness.csv", index=False)
    return Run.load("tiny", root=b)


def test_effects_are_measured_from_the_run_where_they_can_be(tmp_path):
    run = _build(tmp_path)
    frame = departures.departures_frame(run)
    effect = dict(zip(frame.departure, frame["effect on the simulated world"], strict=True))
    assert effect["Sentinel-2 collection"].startswith("50.0 % of this world's 4 scenes")  # two on/after 2022-01-25
    # padding: the 32 x 64 region (weight 1/4) is half padding, the 128 x 128 one none: 12.5 %
    assert effect["Padding of small regions"].startswith("12.5 % of the pixels")
    # lake pixels per batch: (0.5 * 1 + 0.1 * 3) / 4 = 20 % of 4 x 64^2 = 3,277
    assert "~3,277 lake pixels" in effect["Dice loss smoothing"]
    assert effect["Training arithmetic"].startswith("this run trained in bf16 on cpu")
    assert effect["Augmentation"] == (  # robustness.csv, in percentage points
        "test IoU change with perturbed inputs, offset +0.02: -1.4 pp; Landsat-like (30 m, OLI bands): -5.1 pp "
        "(-3.8 pp of it the coarser pixels alone; -2.1 pp on lakes of the product's minimum area and up) "
        "(60 % of the lost lake pixels in R2 (NR))"
    )
    assert effect["U-Net decoder upsampling"].startswith("on the demo (stop 26")  # measured once, static text
    # no run: the static text, never an error
    static = departures.departures_frame(None)
    assert static.iloc[0, -1] == "not measured"
