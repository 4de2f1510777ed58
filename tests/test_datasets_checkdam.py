"""lakepaper.datasets.checkdam / labelme / augment: the published pipeline on a drawn replica and broken files."""

from __future__ import annotations

import base64
import json
import shutil

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from PIL import Image
from rasterio import features
from rasterio.transform import Affine, from_origin

from lakepaper import io, params
from lakepaper.datasets import checkdam, labelme
from lakepaper.datasets.augment import GEOMETRIC, Augmentation, apply_geometric, pixel_map, recipe
from lakepaper.datasets.replicas import CHECKDAM_IMAGE, LABELME_DIR, write_checkdam_replica
from lakepaper.datasets.split import leaks
from lakepaper.errors import InputError, ParameterError

SIZE = 768  # 3 x 3 cells
P = params.resolve("tiny")


@pytest.fixture(scope="module")
def replica(tmp_path_factory):
    out = tmp_path_factory.mktemp("checkdam")
    table = write_checkdam_replica(out, size_px=SIZE, seed=1)
    return out, table


@pytest.fixture(scope="module")
def built(replica, tmp_path_factory):
    out = tmp_path_factory.mktemp("built")
    return out, checkdam.build(replica[0], out, P)


@pytest.fixture
def copy(replica, tmp_path):
    dst = tmp_path / "checkdam"
    shutil.copytree(replica[0], dst)
    return dst


def _json(path):
    return json.loads(path.read_text())


# --- the replica ----------------------------------------------------------------------------------------


def test_replica_has_the_published_layout(replica):
    root, table = replica
    with rasterio.open(root / CHECKDAM_IMAGE) as src:
        assert src.crs.to_epsg() == 32606 and src.res == (0.75, 0.75)
        assert (src.width, src.height, src.count, src.dtypes[0]) == (SIZE, SIZE, 3, "uint8")
    names = sorted(p.stem for p in (root / LABELME_DIR).glob("*.json"))
    assert names == sorted(table.name) and len(names) >= 4
    assert sorted(p.stem for p in (root / LABELME_DIR).glob("*.jpg")) == names
    versions = {_json(p)["version"][0] for p in (root / LABELME_DIR).glob("*.json")}
    assert versions == {"3", "4", "5"}


# --- the pipeline ---------------------------------------------------------------------------------------------


def test_pipeline_counts_and_leakage_free_split(built, replica):
    _, r = built
    kept = len(replica[1])
    assert r["counts"]["cells"] == 9 and r["counts"]["kept"] == kept
    assert r["counts"]["samples"] == 5 * kept == len(r["samples"])
    s = r["samples"]
    assert leaks(s, group="source") == []
    assert all(sorted(c) == [0, 1, 2, 3, 4] for c in s.groupby("source")["copy_no"].apply(list))
    groups = s.groupby("split").source.nunique()
    assert groups.sum() == kept and groups["train"] >= groups["val"] >= 1 and groups["test"] >= 1
    assert set(r["matches"].how) == {"name"}  # the replica's names agree with the pixels


def test_masks_match_the_drawn_truth_and_the_ground(built, replica):
    out, r = built
    truth = gpd.read_file(replica[0] / "truth_dam_land.gpkg")
    for chip in r["chips"].itertuples():
        image, meta = io.read_raster(out / chip.image)
        mask, mmeta = io.read_raster(out / chip.mask)
        assert mmeta["transform"] == meta["transform"] and mmeta["crs"] == meta["crs"]
        cell = r["grid"].set_index("name").loc[chip.name]
        assert meta["transform"] == from_origin(
            455_000 + cell.col_off * 0.75, 7_050_000 - cell.row_off * 0.75, 0.75, 0.75
        )
        expect = features.rasterize(truth.geometry, out_shape=(256, 256), transform=meta["transform"], dtype=np.uint8)
        agree = (mask[0] == expect).mean()
        assert agree > 0.998, (chip.name, agree)  # the JSON polygons are the truth's, clipped and rounded
    with rasterio.open(replica[0] / CHECKDAM_IMAGE) as src:  # chips are the large image's pixels, not the JPEG's
        first = r["chips"].iloc[0]
        cell = r["grid"].set_index("name").loc[first["name"]]
        window = src.read(window=((cell.row_off, cell.row_off + 256), (cell.col_off, cell.col_off + 256)))
        assert (io.read_raster(out / first.image)[0] == window).all()


def test_augmented_copies_keep_the_ground(built):
    out, r = built
    s = r["samples"]
    original = s[s.copy_no == 0].iloc[0]
    img0, m0 = io.read_raster(out / original.image)
    mask0 = io.read_raster(out / original["mask"])[0][0]
    for row in s[s.source == original.source].itertuples():
        img, meta = io.read_raster(out / row.image)
        mask = io.read_raster(out / row.mask)[0][0]
        assert mask.sum() == mask0.sum()
        # every lit mask pixel's centre lies, on the ground, on a lit pixel of the original
        rows, cols = np.nonzero(mask)
        x, y = meta["transform"] * (cols + 0.5, rows + 0.5)
        c0, r0 = ~m0["transform"] * (np.asarray(x), np.asarray(y))
        assert mask0[np.floor(r0).astype(int), np.floor(c0).astype(int)].all()
        if row.brightness == 1.0:
            same = img0[:, np.floor(r0).astype(int), np.floor(c0).astype(int)]
            assert (img[:, rows, cols] == same).all()


def test_split_counts_and_the_chip_shown(built):
    from lakepaper.figures.datasets import gulliest_source

    _, r = built
    s = r["samples"]
    t = checkdam.split_counts(s)
    assert t.index.tolist() == ["train", "val", "test"] and t.samples.sum() == len(s)
    assert (t.samples == 5 * t.source_cells).all()  # five copies of each source cell, all in one subset
    first = gulliest_source(s)
    originals = s[s.copy_no == 0]
    assert originals.set_index("source").gully_share[first] == originals.gully_share.max()


def test_samples_load_as_unet_chips(built):
    out, r = built
    chips = checkdam.load_chips(out, r["samples"], "train")
    assert len(chips) == (r["samples"].split == "train").sum()
    c = chips[0]
    assert c.image.shape == (3, 256, 256) and c.image.dtype == np.float32 and c.bands == ("R", "G", "B")
    assert c.label.shape == (256, 256) and set(np.unique(c.label)) <= {0, 1}


# --- matching annotations to cells --------------------------------------------------------------------------------


def _rename(root, old, new, *, image_path=None):
    d = root / LABELME_DIR
    (d / f"{old}.jpg").rename(d / f"{new}.jpg")
    doc = _json(d / f"{old}.json")
    doc["imagePath"] = image_path or f"{new}.jpg"
    (d / f"{old}.json").unlink()
    (d / f"{new}.json").write_text(json.dumps(doc))


def test_unknown_or_wrong_names_are_matched_by_content(copy, tmp_path, replica):
    names = sorted(replica[1].name)
    _rename(copy, names[0], "IMG_0042")  # a name that says nothing
    _rename(copy, names[1], "tmp_swap")
    _rename(copy, names[2], names[1])  # a cell's name on another cell's pixels
    _rename(copy, "tmp_swap", names[2])
    r = checkdam.build(copy, tmp_path / "out", P)
    m = r["matches"].assign(file=r["matches"].json.map(lambda p: p.name))
    got = dict(zip(m.file, m.cell, strict=True))
    assert got["IMG_0042.json"] == names[0]
    assert got[f"{names[1]}.json"] == names[2] and got[f"{names[2]}.json"] == names[1]
    assert set(m.how) == {"name", "content"}


@pytest.mark.bad_input
def test_chip_from_elsewhere_matches_no_cell(copy, replica):
    name = sorted(replica[1].name)[0]
    noise = np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8)
    Image.fromarray(noise).save(copy / LABELME_DIR / f"{name}.jpg", quality=95)
    with pytest.raises(InputError, match="matches no 256 x 256 grid cell") as err:
        checkdam.build(copy, copy / "out", P)
    assert err.value.path.endswith(f"{name}.json")
    assert not (copy / "out").exists()  # nothing written


@pytest.mark.bad_input
def test_two_annotations_of_one_cell(copy, replica):
    name = sorted(replica[1].name)[0]
    d = copy / LABELME_DIR
    shutil.copy(d / f"{name}.json", d / "again.json")
    with pytest.raises(InputError, match=f"several JSON files annotate cell {name}"):
        checkdam.build(copy, copy / "out", P)


@pytest.mark.bad_input
def test_json_with_a_wrong_image_path(copy, replica):
    name = sorted(replica[1].name)[1]  # a Labelme 4.x file: no embedded image
    doc = _json(copy / LABELME_DIR / f"{name}.json")
    assert doc["imageData"] is None
    doc["imagePath"] = "..\\images\\does_not_exist.jpg"
    (copy / LABELME_DIR / f"{name}.json").write_text(json.dumps(doc))
    with pytest.raises(InputError, match="does_not_exist.jpg.*names no existing image") as err:
        checkdam.build(copy, copy / "out", P)
    assert err.value.path.endswith(f"{name}.json")


@pytest.mark.bad_input
def test_json_without_the_class(copy, replica):
    name = sorted(replica[1].name)[0]
    doc = _json(copy / LABELME_DIR / f"{name}.json")
    for s in doc["shapes"]:
        s["label"] = "road"
    (copy / LABELME_DIR / f"{name}.json").write_text(json.dumps(doc))
    with pytest.raises(InputError, match="no polygon of class 'gully'.*road"):
        checkdam.build(copy, copy / "out", P)


def test_other_json_files_are_named_not_read(copy, tmp_path):
    (copy / "metadata.json").write_text(json.dumps({"sensor": "PMS02"}))
    r = checkdam.build(copy, tmp_path / "out", P)
    assert r["notes"].note.tolist() == ["not a Labelme file, skipped"]


# --- Labelme files -------------------------------------------------------------------------------------------------


def _chip(tmp_path, name="chip.jpg", size=(64, 48)):
    Image.new("RGB", size, (90, 80, 70)).save(tmp_path / name)
    return tmp_path / name


def _write(tmp_path, doc, name="a.json"):
    (tmp_path / name).write_text(json.dumps(doc))
    return tmp_path / name


def test_labelme_versions_and_shapes(tmp_path):
    _chip(tmp_path)
    v3 = {
        "version": "3.6.1",
        "flags": {},
        "lineColor": [0, 255, 0, 128],
        "fillColor": [255, 0, 0, 128],
        "imagePath": "chip.jpg",
        "imageData": None,
        "shapes": [
            {
                "label": "gully",
                "line_color": None,
                "fill_color": None,
                "points": [[10, 10], [30, 10], [30, 20], [10, 20]],
            }
        ],
    }
    v5 = {
        "version": "5.4.1",
        "flags": {},
        "imagePath": "chip.jpg",
        "imageData": None,
        "imageHeight": 48,
        "imageWidth": 64,
        "shapes": [
            {
                "label": " Gully ",
                "points": [[40, 30], [20, 25]],
                "shape_type": "rectangle",
                "group_id": None,
                "description": "",
                "flags": {},
                "mask": None,
            },
            {
                "label": "gully",
                "points": [[50, 10], [50, 14]],
                "shape_type": "circle",
                "group_id": 1,
                "description": "",
                "flags": {},
            },
            {"label": "gully", "points": [[0, 0], [5, 5]], "shape_type": "line", "group_id": None, "flags": {}},
        ],
    }
    a3 = labelme.read_labelme(_write(tmp_path, v3, "v3.json"))
    assert (a3.height, a3.width, a3.shapes[0].shape_type) == (48, 64, "polygon")  # size from the image
    mask, geom = labelme.rasterize(a3, "gully")
    assert mask.sum() == 20 * 10 and mask[10:20, 10:30].all()  # pixel centres inside: GDAL's rule
    a5 = labelme.read_labelme(_write(tmp_path, v5, "v5.json"))
    assert len(a5.skipped) == 1 and a5.skipped[0].shape_type == "line"
    mask5, _ = labelme.rasterize(a5, "gully")
    assert mask5[25:30, 20:40].all() and mask5[:25].sum() + mask5[30:, :40].sum() > 0  # rectangle + circle
    assert mask5[12, 50] == 1 and abs(mask5[:, 45:].sum() - np.pi * 16) < 8  # circle of radius 4


def test_mask_shape_of_labelme_5_3(tmp_path):
    _chip(tmp_path)
    patch = np.zeros((6, 8), np.uint8)
    patch[1:5, 2:7] = 255
    buf = __import__("io").BytesIO()
    Image.fromarray(patch).save(buf, format="PNG")
    doc = {
        "version": "5.3.1",
        "imagePath": "chip.jpg",
        "imageData": None,
        "shapes": [
            {
                "label": "gully",
                "points": [[10, 20], [17, 25]],
                "shape_type": "mask",
                "mask": base64.b64encode(buf.getvalue()).decode(),
            }
        ],
    }
    mask, _ = labelme.rasterize(labelme.read_labelme(_write(tmp_path, doc)), "gully")
    assert mask.sum() == 4 * 5 and mask[21:25, 12:17].all()


def test_image_paths_relative_absolute_and_embedded(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "json").mkdir()
    img = _chip(tmp_path / "images")
    shape = [{"label": "gully", "points": [[1, 1], [9, 1], [9, 9]], "shape_type": "polygon"}]
    rel = _write(tmp_path / "json", {"imagePath": "..\\images\\chip.jpg", "imageData": None, "shapes": shape}, "r.json")
    assert labelme.read_labelme(rel).image_path == tmp_path / "json" / ".." / "images" / "chip.jpg"
    absolute = _write(tmp_path / "json", {"imagePath": str(img), "imageData": None, "shapes": shape}, "p.json")
    assert labelme.read_labelme(absolute).image_path == img
    win = _write(
        tmp_path / "json", {"imagePath": "C:\\Users\\x\\chip.jpg", "imageData": None, "shapes": shape}, "w.json"
    )
    assert labelme.read_labelme(win, search=[tmp_path / "images"]).image_path == tmp_path / "images" / "chip.jpg"
    data = base64.b64encode(img.read_bytes()).decode()
    emb = _write(tmp_path / "json", {"imagePath": "gone.jpg", "imageData": data, "shapes": shape}, "e.json")
    a = labelme.read_labelme(emb)
    assert a.image_path is None and a.read_image().shape == (48, 64, 3)


@pytest.mark.bad_input
@pytest.mark.parametrize(
    ("doc", "match"),
    [
        ({"imagePath": "missing.jpg", "imageData": None, "shapes": []}, "names no existing image"),
        ({"imagePath": "chip.jpg", "imageData": None, "imageHeight": 50, "shapes": []}, "imageHeight is 50"),
        ({"imagePath": "chip.jpg", "shapes": [{"label": "gully", "points": [[1, 1], [2, 2]]}]}, "needs 3"),
        ({"imagePath": "chip.jpg", "shapes": [{"label": "gully", "points": "x"}]}, "not a list of"),
        ({"imagePath": "chip.jpg", "shapes": [{"label": "g", "points": [[1, 1]], "shape_type": "blob"}]}, "blob"),
        ({"shapes": []}, "not a Labelme file"),
    ],
    ids=["missing-image", "wrong-height", "two-point-polygon", "bad-points", "unknown-type", "not-labelme"],
)
def test_bad_labelme_files(tmp_path, doc, match):
    _chip(tmp_path)
    with pytest.raises(InputError, match=match) as err:
        labelme.read_labelme(_write(tmp_path, doc))
    assert err.value.path.endswith("a.json")


@pytest.mark.bad_input
def test_truncated_json_and_truncated_chip(tmp_path):
    (tmp_path / "a.json").write_text('{"imagePath": "chip.jpg", "shapes": [')
    with pytest.raises(InputError, match="not valid JSON"):
        labelme.read_labelme(tmp_path / "a.json")
    chip = _chip(tmp_path, size=(256, 256))
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(chip)
    chip.write_bytes(chip.read_bytes()[:5000])  # the header survives, the pixels do not
    ann = labelme.read_labelme(_write(tmp_path, {"imagePath": "chip.jpg", "shapes": []}))
    with pytest.raises(InputError, match="truncated"):
        ann.read_image()


def test_rasterize_with_exact_georeferencing(tmp_path):
    _chip(tmp_path, size=(256, 256))
    doc = {"imagePath": "chip.jpg", "shapes": [{"label": "gully", "points": [[10, 20], [50, 20], [50, 60], [10, 60]]}]}
    ann = labelme.read_labelme(_write(tmp_path, doc))
    t = from_origin(455_000 + 256 * 0.75, 7_050_000, 0.75, 0.75)  # cell r000_c001 of the replica's grid
    mask, geom = labelme.rasterize(ann, "gully", transform=t)
    assert geom.bounds == pytest.approx(
        (455_000 + (256 + 10) * 0.75, 7_050_000 - 60 * 0.75, 455_000 + (256 + 50) * 0.75, 7_050_000 - 20 * 0.75)
    )
    expect = np.zeros((256, 256), np.uint8)
    expect[20:60, 10:50] = 1
    assert (mask == expect).all()


# --- augmentation: masks stay on their images, geotransforms on the ground ---------------------------------------


def _asymmetric(rows=32, cols=32):
    """An 'F' on a gradient: no flip or rotation maps it onto itself."""
    mask = np.zeros((rows, cols), np.uint8)
    mask[4:28, 6:10] = 1
    mask[4:8, 6:24] = 1
    mask[14:18, 6:18] = 1
    grad = ((np.arange(rows)[:, None] * 3 + np.arange(cols)[None] * 5) % 200).astype(np.uint8)
    image = np.stack([np.where(mask, 250, grad), grad, np.where(mask, 0, 100)]).astype(np.uint8)
    return image, mask


@pytest.mark.parametrize("op", GEOMETRIC)
def test_every_transform_keeps_mask_on_image_and_ground(op, tmp_path):
    image, mask = _asymmetric(32, 40)
    t = from_origin(455_000, 7_050_000, 0.75, 0.75)
    im, mk, t2 = Augmentation(op).apply(image, mask, t)
    assert (mk == (im[0] == 250)).all() and (mk == (im[2] == 0)).all()  # the mask is the image's F
    if op != "identity":
        assert not np.array_equal(mk, mask) or mk.shape != mask.shape  # the pattern is asymmetric
    rows, cols = np.mgrid[0 : mk.shape[0], 0 : mk.shape[1]]
    x, y = t2 * (cols + 0.5, rows + 0.5)  # each new pixel's centre on the ground ...
    c0, r0 = ~t * (np.asarray(x), np.asarray(y))
    src = image[:, np.floor(r0).astype(int), np.floor(c0).astype(int)]
    assert (im == src).all() and (mk == mask[np.floor(r0).astype(int), np.floor(c0).astype(int)]).all()
    io.write_raster(tmp_path / "a.tif", im, crs="EPSG:32606", transform=t2)  # rotated/flipped geotransforms survive
    back, meta = io.read_raster(tmp_path / "a.tif")
    assert meta["transform"] == t2 and (back == im).all()


def test_pixel_map_inverts_numpy():
    for op in GEOMETRIC:
        a = np.arange(12).reshape(3, 4)
        b = apply_geometric(a, op)
        m = pixel_map(op, 3, 4)
        for i in range(b.shape[0]):
            for j in range(b.shape[1]):
                x, y = m * (j + 0.5, i + 0.5)
                assert b[i, j] == a[int(y), int(x)], op


def test_brightness_changes_the_image_only():
    image, mask = _asymmetric()
    im, mk, _ = Augmentation("identity", 1.2).apply(image, mask)
    assert (mk == mask).all()
    assert (im == np.clip(np.rint(image * 1.2), 0, 255)).all() and im.max() == 255


def test_recipe():
    rng = np.random.default_rng(0)
    r = recipe(5, ("hflip", "vflip", "rot", "brightness"), rng, brightness_range=(0.8, 1.2))
    assert [a.op for a in r[:3]] == ["identity", "hflip", "vflip"] and r[0].factor == 1.0
    assert r[3].op in ("rot90", "rot180", "rot270") and r[4].op == "identity" and 0.8 <= r[4].factor <= 1.2
    again = recipe(5, ("hflip", "vflip", "rot", "brightness"), np.random.default_rng(0), brightness_range=(0.8, 1.2))
    assert again == r
    with pytest.raises(ParameterError):
        recipe(3, ("shear",), rng, brightness_range=(0.8, 1.2))


def test_affine_of_a_quarter_turn_is_a_rotation():
    t = Affine(1, 0, 0, 0, -1, 0) * pixel_map("rot90", 4, 4)
    assert (t.a, t.b, t.d, t.e) == (0, -1, -1, 0)
