"""Stage 02 on real samples (issue 17, item 3): your polygons in any CRS, label rasters, no world, no truth.

A one-tile composite (stage 01 on :func:`builders.scene_world`) is copied into a build folder that has no
``00_world``; the sample regions are written as a Shapefile in EPSG:4326 (the composite is in UTM), with
label rasters on the composite's grid.
"""

from __future__ import annotations

import shutil
import warnings

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from builders import scene_world
from rasterio.transform import Affine
from shapely.geometry import Polygon, box

from lakepaper import io, params
from lakepaper.errors import InputError, ParameterError
from lakepaper.samples.chips import LABEL_NODATA, read_training_set
from lakepaper.samples.split import target_counts
from lakepaper.stages import composite, samples
from lakepaper.stages.context import Context

TILE = "T07"
#: (row, col, height, width) of the regions' pixel boxes on the tile, and their types
BOXES = [(4 + 24 * (k // 2), 56 + 32 * (k % 2), 14 + k % 3, 16 + k % 4) for k in range(10)]  # where both scenes saw
TYPES = ["NR", "AR"] * 5


@pytest.fixture(scope="module")
def composite_root(tmp_path_factory):
    """A build folder holding only a finished ``01_composite`` (the world it came from is elsewhere)."""
    made = tmp_path_factory.mktemp("made")
    world = scene_world(made / "world", tiles=(TILE,), tile_px=128, scenes=2, regions=3)
    shutil.copytree(world.root, made / "root" / "00_world")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        composite.run(Context.create("01_composite", profile="tiny", root=made / "root", quiet=True))
    root = tmp_path_factory.mktemp("real")
    shutil.copytree(made / "root" / "01_composite", root / "01_composite")
    return root


@pytest.fixture(scope="module")
def grid(composite_root):
    with rasterio.open(composite_root / "01_composite" / "tiles" / f"{TILE}.tif") as src:
        return src.crs, src.transform, src.shape


def _pixel_polygon(t: Affine, row, col, h, w):
    x0, y0 = t @ (col, row)
    x1, y1 = t @ (col + w, row + h)
    return box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def write_regions(path, grid, boxes=BOXES, types=TYPES, *, column="region_type", crs=4326, extra=()):
    """The boxes (pixel-aligned on the tile) as polygons in ``crs``, plus ``extra`` (id, type, polygon in UTM)."""
    tcrs, t, _ = grid
    geoms = [_pixel_polygon(t, *b) for b in boxes] + [g for _, _, g in extra]
    ids = [f"S{k:02d}" for k in range(len(boxes))] + [i for i, _, _ in extra]
    frame = gpd.GeoDataFrame(
        {"region_id": ids, column: list(types) + [k for _, k, _ in extra]}, geometry=geoms, crs=tcrs
    ).to_crs(crs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a Shapefile cuts region_type to region_typ, as it does for users
        frame.to_file(path)
    return path


def label_of(k: int, h: int, w: int) -> np.ndarray:
    """A region's label raster values: a lake blob, 255 (nodata) in a corner."""
    yy, xx = np.mgrid[:h, :w]
    lab = (((yy - h / 2) ** 2 + (xx - w / 3) ** 2) < (3 + k % 4) ** 2).astype(np.uint8)
    lab[:2, :3] = 255
    return lab


def write_labels(folder, grid, boxes=BOXES, *, margin=2, shift=(0.0, 0.0), crs=None):
    """One ``S<k>.tif`` per region on the composite grid, ``margin`` pixels of 0 around it."""
    tcrs, t, _ = grid
    folder.mkdir(parents=True, exist_ok=True)
    for k, (row, col, h, w) in enumerate(boxes):
        full = np.zeros((h + 2 * margin, w + 2 * margin), np.uint8)
        full[margin : margin + h, margin : margin + w] = label_of(k, h, w)
        origin = t @ Affine.translation(col - margin + shift[0], row - margin + shift[1])
        io.write_raster(folder / f"S{k:02d}.tif", full[None], crs=crs or tcrs, transform=origin, nodata=255)
    return folder


def run_stage(root, **given):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return samples.run(Context.create("02_samples", profile="tiny", root=root, quiet=True, **given))


@pytest.fixture(scope="module")
def built(composite_root, grid, tmp_path_factory):
    inputs = tmp_path_factory.mktemp("inputs")
    shp = write_regions(inputs / "regions.shp", grid)
    labels = write_labels(inputs / "labels", grid)
    return run_stage(composite_root, regions=str(shp), labels=str(labels)), shp, labels


def test_real_format_samples_without_a_world(built, composite_root, grid):
    result, shp, _ = built
    assert not (composite_root / "00_world").exists()
    out = composite_root / "02_samples"
    regions = gpd.read_file(out / "regions.gpkg")
    # today's contract: the world's columns, EPSG:4326 outlines, the chips
    for c in ("region_id", "tile", "region_type", "row_off", "col_off", "height", "width", "area_km2", "split"):
        assert c in regions.columns
    assert regions.crs.to_epsg() == 4326 and len(regions) == len(BOXES)
    assert set(regions.tile) == {TILE}
    for r in regions.itertuples():
        k = int(r.region_id[1:])
        assert (r.row_off, r.col_off, r.height, r.width) == BOXES[k]
        assert r.region_type == TYPES[k]
        assert r.area_km2 == pytest.approx(BOXES[k][2] * BOXES[k][3] * 100 / 1e6, rel=1e-3)
    # the chips hold the label rasters as given, their nodata as LABEL_NODATA
    chips = {c.region_id: c for c in read_training_set(out)}
    for rid, c in chips.items():
        k = int(rid[1:])
        raw = io.read_raster(out / "chips" / f"{rid}_label.tif")[0][0]
        want = label_of(k, *BOXES[k][2:])
        labelled = raw != LABEL_NODATA  # also where the composite never saw the ground
        assert (raw[want == 255] == LABEL_NODATA).all() and (raw[labelled] == want[labelled]).all()
        assert labelled.mean() > 0.5
        assert c.label.shape == BOXES[k][2:] and c.observed is not None
    # split by type, 60/20/20 within each
    for _, g in regions.groupby("region_type"):
        counts = [int((g.split == s).sum()) for s in ("train", "val", "test")]
        assert counts == target_counts(len(g), params.resolve("tiny")["split_fractions"])
    # no truth: nothing scored, no label_iou table, a note; stage 00 not read
    assert not (out / "label_iou.csv").exists()
    shown = result.table("label_iou")  # the notebook's cell: regions per type, no truth columns
    assert not any(c.endswith(("_iou", "_precision", "_recall")) for c in shown.columns)
    assert shown.loc["all", "regions"] == len(BOXES) and shown.loc["NR", "regions"] == TYPES.count("NR")
    assert any("no truth" in n and "skipped" in n for n in result.notes)
    manifest = io.read_manifest(out)
    assert "00_world" not in manifest["inputs"] and "regions" in manifest["inputs"]
    assert manifest["label_iou"] == [] and manifest["parameters"]["regions"] == str(shp)


def test_a_triangle_region_labels_only_its_polygon(composite_root, grid, tmp_path):
    tcrs, t, _ = grid
    x0, y0 = t @ (40, 90)
    x1, y1 = t @ (60, 110)  # 20 x 20 px, the triangle below the diagonal
    tri = Polygon([(x0, y0), (x0, y1), (x1, y1)])
    shp = write_regions(tmp_path / "r.shp", grid, extra=[("TRI", "BR", tri)])
    root = tmp_path / "root"
    shutil.copytree(composite_root / "01_composite", root / "01_composite")
    thresholds = tmp_path / "t.csv"
    thresholds.write_text("region_id,threshold\nTRI,0.05\n")
    run_stage(root, regions=str(shp), thresholds=str(thresholds))  # threshold table, no edits, no truth
    regions = gpd.read_file(root / "02_samples" / "regions.gpkg").set_index("region_id")
    assert regions.loc["TRI", "threshold"] == pytest.approx(0.05) and regions.loc["S00", "threshold"] == 0.0
    r = regions.loc["TRI"]
    assert (r.row_off, r.col_off, r.height, r.width) == (90, 40, 20, 20)
    raw = io.read_raster(root / "02_samples" / r.label)[0][0]
    ndwi = io.read_raster(root / "02_samples" / r.image)[0][-1]
    yy, xx = np.mgrid[:20, :20]
    inside = xx < yy  # pixel centres strictly below the diagonal
    assert (raw[~inside & (xx > yy)] == LABEL_NODATA).all()
    ok = inside & (raw != LABEL_NODATA)
    assert ok.sum() > 0.5 * inside.sum() and (raw[ok] == (ndwi[ok] > 0.05)).all()


@pytest.mark.bad_input
def test_a_region_off_the_composite_is_named(composite_root, grid, tmp_path):
    far = box(0, 0, 100, 100)  # UTM easting 0: off every tile
    shp = write_regions(tmp_path / "r.shp", grid, extra=[("FAR1", "NR", far)])
    with pytest.raises(InputError, match=r"r\.shp.*FAR1.*overlaps no composite tile"):
        run_stage(composite_root, regions=str(shp), labels=str(tmp_path))


@pytest.mark.bad_input
def test_an_unknown_region_type_is_named(composite_root, grid, tmp_path):
    types = [*TYPES[:-1], "XX"]
    gpkg = write_regions(tmp_path / "r.gpkg", grid, types=types, column="kind", crs=3857)
    with pytest.raises(InputError, match=r"r\.gpkg.*S09.*'XX'"):
        run_stage(composite_root, regions=str(gpkg), type_column="kind", labels=str(tmp_path))
    with pytest.raises(InputError, match=r"r\.gpkg.*no region-type column 'region_type'"):
        run_stage(composite_root, regions=str(gpkg), labels=str(tmp_path))


@pytest.mark.bad_input
@pytest.mark.parametrize("how", ["shifted", "crs", "pixel"])
def test_a_label_raster_on_another_grid_is_named(composite_root, grid, tmp_path, how):
    shp = write_regions(tmp_path / "r.shp", grid)
    folder = tmp_path / "labels"
    if how == "shifted":
        write_labels(folder, grid, shift=(0.5, 0.0))
    elif how == "crs":
        write_labels(folder, grid, crs="EPSG:32632")
    else:  # 20 m pixels
        tcrs, t, _ = grid
        write_labels(folder, (tcrs, t @ Affine.scale(2), None))
    with pytest.raises(InputError, match=r"S00\.tif.*another grid than composite tile T07"):
        run_stage(composite_root, regions=str(shp), labels=str(folder))


@pytest.mark.bad_input
def test_label_values_and_missing_rasters_are_named(composite_root, grid, tmp_path):
    shp = write_regions(tmp_path / "r.shp", grid)
    folder = write_labels(tmp_path / "labels", grid)
    (folder / "S03.tif").unlink()
    with pytest.raises(InputError, match=r"labels.*S03.*no label raster"):
        run_stage(composite_root, regions=str(shp), labels=str(folder))
    write_labels(folder, grid)
    tcrs, t, _ = grid
    row, col, h, w = BOXES[0]
    io.write_raster(
        folder / "S00.tif", np.full((1, h, w), 7, np.uint8), crs=tcrs, transform=t @ Affine.translation(col, row)
    )
    with pytest.raises(InputError, match=r"S00\.tif.*label values \[7"):
        run_stage(composite_root, regions=str(shp), labels=str(folder))


def test_a_label_mosaic_with_nodata(composite_root, grid, tmp_path):
    tcrs, t, (th, tw) = grid
    mosaic = np.full((th, tw), 255, np.uint8)
    for k, (row, col, h, w) in enumerate(BOXES):
        mosaic[row : row + h, col : col + w] = label_of(k, h, w)
    io.write_raster(tmp_path / "mosaic.tif", mosaic[None], crs=tcrs, transform=t, nodata=255)
    shp = write_regions(tmp_path / "r.shp", grid)
    root = tmp_path / "root"
    shutil.copytree(composite_root / "01_composite", root / "01_composite")
    run_stage(root, regions=str(shp), labels=str(tmp_path / "mosaic.tif"))
    regions = gpd.read_file(root / "02_samples" / "regions.gpkg")
    assert len(regions) == len(BOXES) and regions.threshold.isna().all()
    for r in regions.itertuples():
        raw = io.read_raster(root / "02_samples" / r.label)[0][0]
        want = mosaic[r.row_off : r.row_off + r.height, r.col_off : r.col_off + r.width]
        labelled = raw != LABEL_NODATA
        assert (raw[want == 255] == LABEL_NODATA).all() and (raw[labelled] == want[labelled]).all()
        assert labelled.mean() > 0.5


@pytest.mark.bad_input
def test_without_a_world_regions_and_labels_are_asked_for(composite_root, grid, tmp_path):
    with pytest.raises(ParameterError, match="regions"):
        run_stage(composite_root)
    shp = write_regions(tmp_path / "r.shp", grid)
    with pytest.raises(ParameterError, match="labels"):
        run_stage(composite_root, regions=str(shp))
