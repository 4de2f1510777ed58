"""Issue 11 across the stages, fast: a whole tiny pipeline is deterministic, and no data stays no data.

The world (:func:`builders.scene_world`): one 128-px tile with two scenes and four sample regions, in which
one pixel inside a lake of a sample region, seen clearly in both scenes, is made a non-observation in every
scene (cloud probability 255, that product's no data). :func:`builders.run_pipeline` runs stages 01 to 05
on it, calling the stage functions as the notebooks do, with the ``tiny`` profile: twice, once in a fresh
interpreter, with other hash seeds (so set and dict-of-string orders differ between the two runs).
"""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely
from builders import composite_tile, run_pipeline, scene_world
from killpoints import run_job, stage_digest
from pyproj import Transformer
from scipy import ndimage

from lakepaper import io, params
from lakepaper.composite.local import NODATA as COMPOSITE_NODATA
from lakepaper.composite.local import read_composite
from lakepaper.predict.tiled import NODATA as PREDICT_NODATA
from lakepaper.samples.chips import LABEL_NODATA, read_training_set

TILE = "T11"  # no GLAKES or PLD lake on it: completion cannot put a reference lake on the pixel
STAGES = ("00_world", "01_composite", "02_samples", "03_train", "04_predict", "05_postprocess")

#: The pipeline in a fresh interpreter (``tests/`` put on its path for :mod:`builders`).
JOB = """
import os, sys
sys.path.insert(0, {tests!r})
from builders import run_pipeline
run_pipeline({world!r}, os.environ["OUT"])
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The world, and the (row, col) of the pixel made a non-observation."""
    out = tmp_path_factory.mktemp("world")
    w = scene_world(out / "world", tiles=(TILE,), regions=4)
    _, count, _ = read_composite(composite_tile(w, TILE, out / "clean.tif", p=params.resolve("tiny"))["path"])
    lake = io.read_raster(w.truth_path(TILE, "lake_id"))[0][0] > 0
    inside = np.zeros_like(lake)
    for r in gpd.read_file(w.regions_path).itertuples():
        inside[r.row_off + 1 : r.row_off + r.height - 1, r.col_off + 1 : r.col_off + r.width - 1] = True
    # a lake pixel inside a region whose 3 x 3 neighbourhood is lake and was seen clearly
    good = ndimage.binary_erosion(lake & (count > 0), np.ones((3, 3), bool)) & inside
    candidates = np.argwhere(good)
    assert len(candidates), "no clear lake pixel inside a region: change the world"
    r, c = (int(v) for v in candidates[len(candidates) // 2])
    probs = sorted(w.catalog.glob("sentinel-2-l2a/*/s2cloudless.tif"))
    assert probs
    for path in probs:
        with rasterio.open(path, "r+", IGNORE_COG_LAYOUT_BREAK="YES") as ds:
            prob = ds.read(1)
            prob[r, c] = 255
            ds.write(prob, 1)
    return w, (r, c)


@pytest.fixture(scope="module")
def runs(world, tmp_path_factory):
    """Two runs of the pipeline side by side: one in this process, one in a fresh interpreter with another hash
    seed than this one's (random unless PYTHONHASHSEED is set)."""
    base = tmp_path_factory.mktemp("runs")
    code = JOB.format(tests=str(Path(__file__).parent), world=str(world[0].root))
    seed = "2" if os.environ.get("PYTHONHASHSEED") == "1" else "1"
    with ThreadPoolExecutor(1) as pool:
        other = pool.submit(run_job, code, base / "fresh", env={"PYTHONHASHSEED": seed})
        run_pipeline(world[0].root, base / "here")
        other.result()
    return base / "here", base / "fresh"


def test_two_runs_with_the_same_seed_give_identical_outputs(runs):
    a, b = (stage_digest(r) for r in runs)
    assert {k.split("/")[0] for k in a} == set(STAGES)
    for must in (
        "03_train/best.pt",
        "03_train/last.pt",
        "03_train/history.csv",
        f"04_predict/tiles/{TILE}_prob.tif",
        f"04_predict/tiles/{TILE}_mask.tif",
        "05_postprocess/lakes.gpkg",
        "05_postprocess/lakes.parquet",
    ):
        assert must in a, must
    differs = sorted(f for f in set(a) | set(b) if a.get(f) != b.get(f))
    assert not differs, f"the two runs differ in {differs}"
    # best.pt holds no wall time: its bytes are equal too (stage 04 tags its tiles with a hash of them)
    assert len({io.sha256_file(r / "03_train" / "best.pt") for r in runs}) == 1
    assert len(a) >= 20


def test_a_pixel_without_observation_stays_no_data_to_the_product(world, runs):
    w, (r, c) = world
    run = runs[0]

    # stage 01: no clear observation -> no data in every composite band, count 0; its neighbours still seen
    comp = run / "01_composite" / "tiles" / f"{TILE}.tif"
    raw, meta = io.read_raster(comp)
    data, count, _ = read_composite(comp)
    assert count[r, c] == 0 and (raw[:-1, r, c] == COMPOSITE_NODATA).all() and np.isnan(data[:, r, c]).all()
    assert (count[r - 1 : r + 2, c - 1 : c + 2] > 0).sum() == 8  # no data is not a cloud: it is not buffered

    # stage 02: the image chip fills it with the region's median (documented in samples/stage.py: the model
    # sees no NaN); the label says LABEL_NODATA there, whatever the NDWI threshold or the analyst's edits
    # said, and the chip read for training marks it unobserved, so the loss and the scores leave it out.
    regions = gpd.read_file(run / "02_samples" / "regions.gpkg")
    hit = regions[
        (regions.row_off <= r)
        & (r < regions.row_off + regions.height)
        & (regions.col_off <= c)
        & (c < regions.col_off + regions.width)
    ]
    assert len(hit) == 1
    reg = hit.iloc[0]
    rr, cc = r - reg.row_off, c - reg.col_off
    image = io.read_raster(run / "02_samples" / reg.image)[0]
    label = io.read_raster(run / "02_samples" / reg.label)[0][0]
    window = data[:, reg.row_off : reg.row_off + reg.height, reg.col_off : reg.col_off + reg.width]
    seen = np.isfinite(window).all(axis=0)
    assert not seen[rr, cc] and np.isfinite(image).all()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        median = np.nanmedian(window[:, seen], axis=1)
    assert np.array_equal(image[:, rr, cc], median.astype(np.float32))
    assert np.array_equal(image[:, seen], window[:, seen])  # observed pixels are left as they are
    assert label[rr, cc] == LABEL_NODATA
    centre = shapely.Point(meta["transform"] * (c + 0.5, r + 0.5))
    assert set(np.unique(label[seen]).tolist()) <= {0, 1}  # observed pixels keep their 0/1 label
    chip = next(ch for ch in read_training_set(run / "02_samples", reg.split) if ch.region_id == reg.region_id)
    assert chip.observed is not None and not chip.observed[rr, cc] and chip.label[rr, cc] == 0
    assert np.array_equal(chip.observed, seen)
    assert reg.split in ("train", "val", "test")

    # stage 04: 255 in probability and mask, exactly where the composite has no clear observation
    prob = io.read_raster(run / "04_predict" / "tiles" / f"{TILE}_prob.tif")[0][0]
    mask = io.read_raster(run / "04_predict" / "tiles" / f"{TILE}_mask.tif")[0][0]
    assert prob[r, c] == PREDICT_NODATA and mask[r, c] == PREDICT_NODATA
    assert np.array_equal(mask == PREDICT_NODATA, count == 0) and np.array_equal(prob == PREDICT_NODATA, count == 0)

    # stage 05: counted as no data, not a lake, and 255 in the product's mask
    rules = pd.read_csv(run / "05_postprocess" / "rules.csv")
    vec = rules[rules.rule == "vectorise"].iloc[0]
    assert vec.nodata_pixels == int((count == 0).sum()) and vec.pixels == count.size
    product = gpd.read_file(run / "05_postprocess" / "lakes.gpkg")
    lon, lat = Transformer.from_crs(meta["crs"], 4326, always_xy=True).transform(centre.x, centre.y)
    assert not product.geometry.contains(shapely.Point(lon, lat)).any()
    out_mask = io.read_raster(run / "05_postprocess" / "tiles" / f"{TILE}_mask.tif")[0][0]
    assert out_mask[r, c] == 255
    assert ((out_mask == 255) <= (mask == PREDICT_NODATA)).all()  # no data never appears where there was data
