"""The real-format run (issue 17, item 8): stages 01-08 and the page on inputs in the formats real data comes in,
with no ``00_world`` in the build.

The inputs are made in a temporary folder the stages never see as a world:

* imagery: a one-tile simulated world (four scenes from 2021-09, so that processing baseline 04.00 and its
  ``BOA_ADD_OFFSET`` of -1000 from 2022-01-25 on are in the catalog) written as a static STAC catalog of COGs in
  Earth Search's layout (the world's own, :mod:`lakepaper.world.stac`, copied away); stage 01 reads it with
  ``source = "stac"`` and a lon/lat box, as a user's catalog;
* samples: ten polygons in a Shapefile in EPSG:4326 (the tile is in UTM) with a region-type column, and one
  label raster per region (the world's typical lake extent) on the tile's grid;
* references: GLAKES, PLD, GRWL, GeoDAR dams, OSM land, Global-AI v3 and a GSW occurrence tile in their
  published schemas over the tile (``tests/published.py``); the others ``"none"``.

``pytest -k real_format`` selects these tests.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pystac
import pytest
import rasterio
import torch
from published import write_published
from rasterio.transform import Affine
from shapely.geometry import box

from lakepaper import io
from lakepaper.postprocess import references as pp
from lakepaper.stages import (
    accuracy,
    comparison,
    composite,
    distribution,
    postprocess,
    predict,
    samples,
    train,
)
from lakepaper.stages.context import Context

TILE = "T07"  # Amazon floodplain: lakes, a river
TILE_PX = 256
BOX_PX = 40
MAX_EPOCHS = 40  # the tiny profile's 3 epochs (patience 2) learn nothing from ten regions
N_REGIONS = 10
TYPES = ["NR", "AR"] * (N_REGIONS // 2)  # five of each: 3/1/1 train/val/test per type
OFFSET_FROM = "2022-01-25"  # processing baseline 04.00: BOA_ADD_OFFSET = -1000
#: The published-schema reference files given to stage 05 (the others "none").
GIVEN = {
    "glakes": "glakes.gpkg",
    "pld": "pld.gpkg",
    "grwl": "grwl.shp",
    "geodar_dams": "GeoDAR_v11_dams.shp",
    "osm_land": "land_polygons.shp",
    "aridity": "ai_v3_yr.tif",
    "occurrence": "gsw",
}


def _world(folder: Path):
    from lakepaper.world.files import WorldFiles
    from lakepaper.world.generate import generate_world
    from lakepaper.world.sites import WorldConfig

    cfg = WorldConfig(
        tile_px=TILE_PX, scenes_per_tile=4, tiles=(TILE,), start="2021-09-01", end="2022-04-10"
    ).validated()
    generate_world(cfg, folder, workers=1, progress=False, parameters={"n_sample_regions": 2})
    return WorldFiles(folder)


def _boxes(lakes: np.ndarray, n: int, size: int) -> list[tuple[int, int, int, int]]:
    """``n`` non-overlapping ``size`` px boxes with the most lake (not all water) on a grid of positions."""
    step = size // 2
    cands = []
    for r in range(0, lakes.shape[0] - size + 1, step):
        for c in range(0, lakes.shape[1] - size + 1, step):
            f = lakes[r : r + size, c : c + size].mean()
            cands.append((-min(f, 1 - f), r, c))
    chosen: list[tuple[int, int, int, int]] = []
    for _, r, c in sorted(cands):
        if all(abs(r - r2) >= size or abs(c - c2) >= size for r2, c2, _, _ in chosen):
            chosen.append((r, c, size, size))
        if len(chosen) == n:
            break
    assert len(chosen) == n
    return chosen


def _pixel_polygon(t: Affine, row, col, h, w):
    x0, y0 = t @ (col, row)
    x1, y1 = t @ (col + w, row + h)
    return box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def make_inputs(folder: Path) -> dict:
    """The real-format input set under ``folder`` (the world it is made from in ``folder/made``, then deleted)."""
    world = _world(folder / "made" / "world")
    catalog = folder / "catalog"
    shutil.copytree(world.catalog, catalog)  # the world's imagery, as a user's own static catalog

    lake_id, meta = io.read_raster(world.truth_path(TILE, "lake_id"))
    lakes = lake_id[0] > 0
    crs, t = meta["crs"], meta["transform"]
    boxes = _boxes(lakes, N_REGIONS, BOX_PX)
    ids = [f"R{k:02d}" for k in range(N_REGIONS)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a Shapefile cuts region_type to region_typ, as it does for users
        gpd.GeoDataFrame(
            {"region_id": ids, "region_type": TYPES}, geometry=[_pixel_polygon(t, *b) for b in boxes], crs=crs
        ).to_crs(4326).to_file(folder / "regions.shp")
    (folder / "labels").mkdir()
    for rid, (r, c, h, w) in zip(ids, boxes, strict=True):
        lab = lakes[r : r + h, c : c + w].astype(np.uint8)[None]
        io.write_raster(folder / "labels" / f"{rid}.tif", lab, crs=crs, transform=t @ Affine.translation(c, r))

    x0, y1 = t @ (0, 0)
    size = TILE_PX * t.a
    refs = write_published(folder / "references", crs=str(crs), origin=(x0, y1 - size), size=size, ai_value=6500,
                           ai_origin=None, ai_cells=6, gsw_cells=120)  # fmt: skip
    shutil.rmtree(folder / "made")  # the world is gone: the catalog holds its own COGs
    footprint = gpd.GeoSeries([_pixel_polygon(t, 0, 0, TILE_PX, TILE_PX)], crs=crs).to_crs(4326).iloc[0]
    return {
        "catalog": catalog,
        "regions": folder / "regions.shp",
        "labels": folder / "labels",
        "references": refs,
        "boxes": dict(zip(ids, boxes, strict=True)),
        "area": list(footprint.buffer(-0.003).bounds),  # inside the tile: its MGRS square only
        "footprint": footprint,
    }


def _run(module, stage: str, build: Path, **given):
    return module.run(Context.create(stage, profile="tiny", root=build, quiet=True, **given))


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    """Stages 01-08 on the real-format inputs, in a build folder with no ``00_world``; then the page."""
    from lakepaper.report.build import build_paper

    inputs = make_inputs(tmp_path_factory.mktemp("inputs"))
    build = tmp_path_factory.mktemp("build")
    refs = inputs["references"]
    given_refs = {n: str(refs / GIVEN[n]) if n in GIVEN else "none" for n in pp.REFERENCES}
    minx, miny, maxx, maxy = inputs["footprint"].bounds
    results = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            results["01"] = _run(composite, "01_composite", build, source="stac", stac=str(inputs["catalog"]),
                                 area=inputs["area"])  # fmt: skip
            results["02"] = _run(samples, "02_samples", build, regions=str(inputs["regions"]),
                                 labels=str(inputs["labels"]))  # fmt: skip
            results["03"] = _run(train, "03_train", build, device="cpu", max_epochs=MAX_EPOCHS,
                                 patience=MAX_EPOCHS)  # fmt: skip
            results["04"] = _run(predict, "04_predict", build, scheduler="sync")
            results["05"] = _run(postprocess, "05_postprocess", build, **given_refs)
            results["06"] = _run(accuracy, "06_accuracy", build)
            results["07"] = _run(distribution, "07_distribution", build)
            results["08"] = _run(comparison, "08_comparison", build, glakes=given_refs["glakes"],
                                 pld=given_refs["pld"], hydrolakes=str(refs / "HydroLAKES_polys_v10.shp"),
                                 fig8_regions=[["the tile", minx, miny, maxx, maxy]])  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    page = build_paper("tiny", root=build, out=build / "paper.html")
    return {"build": build, "inputs": inputs, "results": results, "page": page}


# --- the inputs -------------------------------------------------------------------------------------------


def test_real_format_inputs_are_in_the_public_layouts(real_run):
    inputs = real_run["inputs"]
    cat = pystac.read_file(str(inputs["catalog"] / "catalog.json"))
    items = list(cat.get_child("sentinel-2-l2a").get_items())
    assert len(items) == 4
    late = [i for i in items if i.datetime.strftime("%Y-%m-%d") >= OFFSET_FROM]
    early = [i for i in items if i.datetime.strftime("%Y-%m-%d") < OFFSET_FROM]
    assert late and early  # both sides of the offset
    for item in items:
        offsets = {b.get("offset") for b in item.assets["blue"].extra_fields["raster:bands"]}
        assert offsets == ({-0.1} if item in late else {0.0}), (item.id, offsets)
        assert item.properties["s2:processing_baseline"] >= ("04.00" if item in late else "00")
        assert {"eo:cloud_cover", "view:sun_azimuth", "view:sun_elevation", "s2:mgrs_tile"} <= set(item.properties)
    regions = gpd.read_file(inputs["regions"])
    assert regions.crs.to_epsg() == 4326 and len(regions) == N_REGIONS
    assert "region_typ" in regions.columns  # the Shapefile's 10-character names


# --- stages 01-08 -----------------------------------------------------------------------------------------


def test_real_format_run_has_no_world(real_run):
    build = real_run["build"]
    assert not (build / "00_world").exists()
    for stage in ("01_composite", "02_samples", "03_train", "04_predict", "05_postprocess", "06_accuracy",
                  "07_distribution", "08_comparison"):  # fmt: skip
        m = io.read_manifest(build / stage)
        assert "00_world" not in m["inputs"], stage


def test_real_format_composite_tiles_and_grid(real_run):
    build, inputs = real_run["build"], real_run["inputs"]
    out = build / "01_composite"
    m = io.read_manifest(out)
    assert m["source"]["source"] == "stac" and m["source"]["stac"] == str(inputs["catalog"])
    assert m["source"]["cloud_mask"] == {"s2cloudless": list(m["source"]["tiles"])}  # the catalog carries it
    grid = gpd.read_file(out / "tile_grid.gpkg")
    assert len(grid) == 1 and grid.crs.to_epsg() == 4326
    arr, meta = io.read_raster(out / grid.path.iloc[0])
    assert meta["band_names"] == ["B2", "B3", "B4", "B11", "NDWI", "clear_count"]
    assert meta["tags"]["SOURCE"] == "stac" and meta["tags"]["SCALE"] == "1000"
    assert arr.shape[1:] == (TILE_PX, TILE_PX)
    seen = arr[0] != meta["nodata"]
    assert seen.mean() > 0.5
    # the -1000 offset undone: the scene after 2022-01-25, read as its raster:bands say, is the composite's level;
    # read without its offset it would be 0.1 above
    comp = arr[0] / 1000
    cat = pystac.read_file(str(inputs["catalog"] / "catalog.json"))
    late = [i for i in cat.get_child("sentinel-2-l2a").get_items() if i.datetime.strftime("%Y-%m-%d") >= OFFSET_FROM]
    for item in late:
        band = item.assets["blue"].extra_fields["raster:bands"][0]
        with rasterio.open(item.assets["blue"].get_absolute_href()) as src:
            dn = src.read(1)
        ok = seen & (dn != band["nodata"])
        assert ok.mean() > 0.5 and band["offset"] == pytest.approx(-0.1)
        bias = np.median(dn[ok] * band["scale"] + band["offset"] - comp[ok])
        assert abs(bias) < 0.02, (item.id, bias)


def test_real_format_samples_chips_and_regions(real_run):
    build, inputs = real_run["build"], real_run["inputs"]
    out = build / "02_samples"
    regions = gpd.read_file(out / "regions.gpkg")
    assert len(regions) == N_REGIONS and regions.crs.to_epsg() == 4326
    assert sorted(regions.split.value_counts().items()) == [("test", 2), ("train", 6), ("val", 2)]
    for r in regions.itertuples():
        assert (r.row_off, r.col_off, r.height, r.width) == inputs["boxes"][r.region_id]
        assert (out / r.image).exists() and (out / r.label).exists()
    assert not (out / "label_iou.csv").exists()  # no truth
    m = io.read_manifest(out)
    assert m["parameters"]["regions"] == str(inputs["regions"]) and m["label_iou"] == []


def test_real_format_trained_model_and_predictions(real_run):
    build = real_run["build"]
    assert (build / "03_train" / "best.pt").stat().st_size > 0
    grid = gpd.read_file(build / "01_composite" / "tile_grid.gpkg")
    masks = sorted((build / "04_predict" / "tiles").glob("*_mask.tif"))
    assert [p.name for p in masks] == [f"{t}_mask.tif" for t in grid.tile]
    mask, _ = io.read_raster(masks[0])
    assert set(np.unique(mask)) <= {0, 1, 255} and (mask == 1).any()


def test_real_format_product_and_references(real_run):
    build, inputs = real_run["build"], real_run["inputs"]
    out = build / "05_postprocess"
    lakes = gpd.read_parquet(out / "lakes.parquet")
    assert len(lakes) > 0 and (lakes.area_km2 >= 0.005).all()
    m = io.read_manifest(out)
    assert m["imagery_source"]["source"] == "stac" and m["lakes"] == len(lakes)
    refs = m["parameters"]["references"]
    assert set(refs) == set(pp.REFERENCES)
    for name, rec in refs.items():
        if name in GIVEN:
            assert rec["origin"] == "given" and rec["path"] == str(inputs["references"] / GIVEN[name]), name
            assert len(rec["sha256"]) == 64
        else:
            assert rec is None and name in m["switched_off"], name
    assert not (out / "rule_pixels.csv").exists() and m["lake_level"] is None  # no truth
    assert (out / "test_region_scores.csv").exists()


def test_real_format_tables(real_run):
    build = real_run["build"]
    out = build / "06_accuracy"
    t1 = pd.read_csv(out / "table1_patch_accuracy.csv").set_index("region_type")
    scored = t1.dropna(subset=["iou"])
    assert set(scored.index) == {"NR", "AR", "all"} and (scored.patches >= 1).all()  # the test regions' types
    assert ((scored.iou > 0.3) & (scored.iou <= 1)).all()  # a trained model, not an empty mask
    t2 = pd.read_csv(out / "table2_river_mask.csv").set_index("row")
    assert list(t2.index) == ["before", "after", "change"]
    assert t2.loc["change", "iou"] == pytest.approx(t2.loc["after", "iou"] - t2.loc["before", "iou"])
    d7 = build / "07_distribution"
    headline = pd.read_csv(d7 / "headline.csv").set_index("number")
    n_lakes = len(gpd.read_parquet(build / "05_postprocess" / "lakes.parquet"))
    assert headline.loc["n_lakes", "run"] == n_lakes and (d7 / "size_groups.csv").exists()
    assert io.read_manifest(d7)["parameters"]["truth"] == "none"  # no world: no truth
    d8 = build / "08_comparison"
    m8 = io.read_manifest(d8)
    assert m8["parameters"]["truth"] == "none"
    assert m8["lakes"] == {"GLAKESplus": n_lakes, "GLAKES": 2, "PLD": 2, "HydroLAKES": 2}
    pngs = {p.stem for p in (d8 / "figures").glob("*.png")}
    assert {"fig7_size_groups", "fig8_regions", "fig9_vs_pld"} <= pngs


def test_real_format_page_names_the_catalog_without_the_simulated_banner(real_run):
    html = real_run["page"].read_text()
    assert "simulated world, not the real Sentinel-2 archive" not in html
    assert "class='banner'" not in html
    inputs = real_run["inputs"]
    assert f"Imagery: STAC catalog {inputs['catalog']}" in html
    assert f"given regions {inputs['regions']}" in html and f"given labels {inputs['labels']}" in html
    assert "simulated" not in html.split("Data.</b>", 1)[1].split("</p>", 1)[0]
