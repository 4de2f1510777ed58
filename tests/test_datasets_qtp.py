"""lakepaper.datasets.qtp: the QTP lake dataset reader, on a replica from a small world and on broken files."""

from __future__ import annotations

import io as _io
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from lakepaper import params
from lakepaper.datasets import qtp, training
from lakepaper.datasets.metrics import score_table, two_class_scores
from lakepaper.datasets.replicas import write_qtp_replica
from lakepaper.datasets.split import leaks, split_groups, split_samples
from lakepaper.errors import InputError, ParameterError
from lakepaper.samples.chips import BANDS, Chip
from lakepaper.train.checkpoint import read_checkpoint
from lakepaper.unet import UNet
from lakepaper.world.files import WorldFiles
from lakepaper.world.generate import generate_world
from lakepaper.world.sites import WorldConfig

N_CHIPS = 12


@pytest.fixture(scope="module")
def replica(tmp_path_factory):
    world_dir = tmp_path_factory.mktemp("world")
    cfg = WorldConfig(tile_px=256, scenes_per_tile=2, tiles=("T03",)).validated()
    generate_world(cfg, world_dir, workers=1, progress=False, parameters={"n_sample_regions": 4})
    out = tmp_path_factory.mktemp("qtp")
    table = write_qtp_replica(WorldFiles(world_dir), out, n_chips=N_CHIPS, seed=5)
    return out, table


@pytest.fixture
def copy(replica, tmp_path):
    """A fresh copy of the replica to break."""
    dst = tmp_path / "qtp"
    shutil.copytree(replica[0], dst)
    return dst


def _jpeg(pixels: np.ndarray, **kw) -> np.ndarray:
    buf = _io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", **kw)
    return np.asarray(Image.open(_io.BytesIO(buf.getvalue())).convert("RGB"))


def _blobs(seed: int = 0, size: int = 256) -> np.ndarray:
    """An asymmetric lake pattern: blobs of many sizes and a thin channel."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    mask = np.zeros((size, size), bool)
    for _ in range(25):
        r, c, rad = rng.integers(0, size, 2).tolist() + [int(rng.integers(1, 30))]
        mask |= (yy - r) ** 2 + (xx - c) ** 2 <= rad**2
    mask[100:103, 20:200] = True
    return mask


# --- the replica, read as published ------------------------------------------------------------------


def test_replica_has_the_published_layout(replica):
    root, table = replica
    images = sorted(p.name for p in (root / "images").iterdir())
    truths = sorted(p.name for p in (root / "ground_truth").iterdir())
    assert images == truths == [f"{i:04d}.jpg" for i in range(1, N_CHIPS + 1)]
    with Image.open(root / "images" / "0001.jpg") as im:
        assert (im.format, im.mode, im.size) == ("JPEG", "RGB", (256, 256))
    # the tiny world's tile is 2.56 km: chips fall back to the resolution that fits, and say so
    assert json.loads((root / "replica.json").read_text())["chips"][0]["resolution_m"] == pytest.approx(10.0)
    assert len(table) == N_CHIPS and (table.lake_share > 0).all()


def test_reader_pairs_every_replica_chip_and_recovers_the_lakes(replica):
    root, table = replica
    ix = qtp.index(root)
    assert (ix.image_dir.name, ix.truth_dir.name) == ("images", "ground_truth")
    assert len(ix.pairs) == N_CHIPS and ix.problems.empty
    assert ix.summary() == {"images": N_CHIPS, "ground_truths": N_CHIPS, "pairs": N_CHIPS}
    # the JPEG ground truths decode to the true lake shares
    np.testing.assert_allclose(ix.pairs.lake_share.to_numpy(), table.lake_share.to_numpy(), atol=0.01)


def test_split_is_seeded_complete_and_order_free(replica):
    ix = qtp.index(replica[0])
    s = qtp.split(ix, (0.6, 0.2, 0.2), 7)
    assert s.value_counts().to_dict() == {"train": 7, "val": 3, "test": 2}  # largest remainder of 12 x 0.6/0.2/0.2
    assert s.equals(qtp.split(ix, (0.6, 0.2, 0.2), 7))
    assert not s.equals(qtp.split(ix, (0.6, 0.2, 0.2), 8))
    shuffled = split_groups(list(reversed(ix.pairs.name)), (0.6, 0.2, 0.2), 7)
    assert shuffled == s.to_dict()


def test_chips_for_the_unet(replica):
    ix = qtp.index(replica[0])
    s = qtp.split(ix, (0.6, 0.2, 0.2), 7)
    chips = qtp.load_chips(ix, s, "val")
    assert len(chips) == 3
    c = chips[0]
    assert c.image.shape == (3, 256, 256) and c.image.dtype == np.float32 and 0 <= c.image.min() <= c.image.max() <= 1
    assert c.label.dtype == np.uint8 and set(np.unique(c.label)) <= {0, 1}
    assert c.bands == ("R", "G", "B") and c.area_km2 == pytest.approx(256 * 256 * 17**2 / 1e6)


# --- ground truth -> mask ----------------------------------------------------------------------------------


@pytest.mark.parametrize("red", [(255, 0, 0), (128, 0, 0), (230, 20, 10)])
@pytest.mark.parametrize("jpeg", [None, {"quality": 75}, {"quality": 50}, {"quality": 90, "subsampling": 0}])
def test_red_black_ground_truth_survives_jpeg(red, jpeg):
    truth = _blobs(1)
    gt = np.zeros((256, 256, 3), np.uint8)
    gt[truth] = red
    pixels = _jpeg(gt, **jpeg) if jpeg else gt
    mask = qtp.truth_to_mask(pixels)
    iou = (mask.astype(bool) & truth).sum() / (mask.astype(bool) | truth).sum()
    assert iou >= (1.0 if jpeg is None else 0.97)


def test_palette_and_single_band_ground_truths():
    truth = _blobs(2)
    pal = Image.fromarray(truth.astype(np.uint8), mode="L").convert("P")
    pal.putpalette([0, 0, 0, 128, 0, 0] + [0] * 762)  # Labelme's label.png colours
    buf = _io.BytesIO()
    pal.save(buf, format="PNG")
    rgb = np.asarray(Image.open(_io.BytesIO(buf.getvalue())).convert("RGB"))
    assert (qtp.truth_to_mask(rgb) == truth).all()
    assert (qtp.truth_to_mask(truth.astype(np.uint8)) == truth).all()  # 0/1
    assert (qtp.truth_to_mask(truth.astype(np.uint8) * 255) == truth).all()  # 0/255
    assert qtp.truth_to_mask(np.zeros((8, 8, 3), np.uint8)).sum() == 0  # no lake at all


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "colour", [(255, 255, 255), (0, 200, 0), (0, 0, 255), (180, 180, 180)], ids=["white", "green", "blue", "grey"]
)
def test_other_colours_are_not_a_ground_truth(colour):
    gt = np.zeros((64, 64, 3), np.uint8)
    gt[:10, :10] = colour
    with pytest.raises(InputError, match="neither red nor black"):
        qtp.truth_to_mask(gt, "gt.png")


@pytest.mark.bad_input
def test_a_photo_is_not_a_ground_truth(replica):
    pixels = np.asarray(Image.open(replica[0] / "images" / "0001.jpg"))
    with pytest.raises(InputError, match="neither red nor black"):
        qtp.truth_to_mask(pixels, "0001.jpg")


# --- broken files are reported, not skipped -------------------------------------------------------------


@pytest.mark.bad_input
def test_broken_files_are_reported(copy):
    gt, img = copy / "ground_truth", copy / "images"
    Image.open(gt / "0002.jpg").resize((300, 256)).save(gt / "0002.jpg")  # ground truth of another size
    data = (img / "0003.jpg").read_bytes()
    (img / "0003.jpg").write_bytes(data[: len(data) // 2])  # truncated image
    (gt / "0004.jpg").unlink()  # image without ground truth
    (img / "0005.jpg").unlink()  # ground truth without image
    Image.open(img / "0006.jpg").convert("L").save(img / "0006.jpg")  # not RGB
    Image.open(img / "0007.jpg").save(img / "0007.png")  # two images named 0007
    (img / "notes.txt").write_text("not an image")
    ix = qtp.index(copy)
    kinds = ix.problems.set_index("file").kind.to_dict()
    assert kinds == {
        "ground_truth/0002.jpg": "wrong size",
        "images/0003.jpg": "unreadable",
        "images/0004.jpg": "unpaired image",
        "ground_truth/0005.jpg": "unpaired ground truth",
        "images/0006.jpg": "not RGB",
        "images/0007.jpg": "duplicate name",
        "images/0007.png": "duplicate name",
        "ground_truth/0007.jpg": "unpaired ground truth",
        "images/notes.txt": "not an image",
    }
    problem = ix.problems.set_index("file").problem
    assert (
        "300 x 256" in problem["ground_truth/0002.jpg"] and "0002.jpg is 256 x 256" in problem["ground_truth/0002.jpg"]
    )
    assert "truncated" in problem["images/0003.jpg"]
    assert "several images have this name" in problem["ground_truth/0007.jpg"]
    assert sorted(ix.pairs.name) == ["0001", "0008", "0009", "0010", "0011", "0012"]
    with pytest.raises(InputError, match="0002.jpg|0003.jpg|0004|0005|0006|0007|notes"):
        qtp.index(copy, strict=True)


@pytest.mark.bad_input
def test_image_of_another_size_is_reported(copy):
    Image.open(copy / "images" / "0001.jpg").resize((128, 128)).save(copy / "images" / "0001.jpg")
    Image.open(copy / "ground_truth" / "0001.jpg").resize((128, 128)).save(copy / "ground_truth" / "0001.jpg")
    ix = qtp.index(copy)
    assert ix.problems.kind.tolist() == ["wrong size"] and "256 x 256" in ix.problems.problem[0]
    assert len(qtp.index(copy, size=None).pairs) == N_CHIPS  # any size, as long as pairs agree


@pytest.mark.bad_input
def test_no_pair_at_all_is_an_error(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    Image.new("RGB", (256, 256)).save(tmp_path / "images" / "a.jpg")
    Image.new("RGB", (256, 256)).save(tmp_path / "labels" / "b.png")
    with pytest.raises(InputError, match="no usable image/ground-truth pair"):
        qtp.index(tmp_path)


# --- other layouts ------------------------------------------------------------------------------------------


def test_folders_found_by_content_and_names_paired_by_suffix(copy, tmp_path):
    (copy / "images").rename(copy / "A")
    (copy / "ground_truth").rename(copy / "B")
    for f in (copy / "B").iterdir():  # 0001.jpg -> 0001_gt.png, lossless
        Image.open(f).save(f.with_name(f"{f.stem}_gt.png"))
        f.unlink()
    nested = tmp_path / "download"
    nested.mkdir()
    copy.rename(nested / "QTP lakes")  # a zip unpacks into one more folder
    ix = qtp.index(nested)
    assert (ix.image_dir.name, ix.truth_dir.name) == ("A", "B")
    assert len(ix.pairs) == N_CHIPS and ix.problems.empty
    assert ix.pairs.truth.iloc[0].endswith("0001_gt.png")


@pytest.mark.bad_input
def test_ambiguous_folders_are_an_error(copy):
    shutil.copytree(copy / "images", copy / "more_images")
    (copy / "images").rename(copy / "x")
    with pytest.raises(InputError, match="cannot tell the image folder"):
        qtp.index(copy)
    ix = qtp.index(copy, image_dir="x", truth_dir="ground_truth")  # named explicitly: fine
    assert len(ix.pairs) == N_CHIPS


def test_pair_key():
    assert qtp.pair_key("a/0001_GT.png") == qtp.pair_key("0001.jpg") == "0001"
    assert qtp.pair_key("lake-12-label.tif") == "lake-12"
    assert qtp.pair_key("mask_3.png") == "mask_3"  # only a trailing suffix is removed


# --- split and metrics -----------------------------------------------------------------------------------


def test_group_split_keeps_groups_together():
    samples = pd.DataFrame({"name": [f"s{i}_{k}" for i in range(20) for k in range(5)]})
    samples["source"] = samples.name.str.split("_").str[0]
    samples["split"] = split_samples(samples, (0.6, 0.2, 0.2), 3, group="source")
    assert leaks(samples, group="source") == []
    assert samples.groupby("split").source.nunique().to_dict() == {"train": 12, "val": 4, "test": 4}
    rng = np.random.default_rng(0)
    samples["naive"] = rng.choice(["train", "val", "test"], len(samples), p=[0.6, 0.2, 0.2])
    assert len(leaks(samples, group="source", split="naive")) > 10  # a sample-wise split leaks copies


@pytest.mark.bad_input
def test_split_refuses_bad_input():
    with pytest.raises(ParameterError, match="split_fractions"):
        split_groups(["a", "b"], (0.5, 0.2, 0.2), 1)
    with pytest.raises(ParameterError, match="twice"):
        split_groups(["a", "a"], (0.6, 0.2, 0.2), 1)


def test_two_class_scores():
    s = two_class_scores({"tp": 30, "fp": 10, "fn": 20, "tn": 940})
    assert (
        s["iou"] == pytest.approx(0.5) and s["recall"] == pytest.approx(0.6) and s["precision"] == pytest.approx(0.75)
    )
    assert s["iou_background"] == pytest.approx(940 / 970)
    assert s["miou"] == pytest.approx((0.5 + 940 / 970) / 2) and s["oa"] == pytest.approx(0.97)
    empty = two_class_scores({"tp": 0, "fp": 0, "fn": 0, "tn": 100})  # no target anywhere: target IoU undefined
    assert np.isnan(empty["iou"]) and np.isnan(empty["miou"]) and empty["oa"] == 1.0
    table = score_table(
        pd.DataFrame({"g": ["a", "b"], "tp": [30, 0], "fp": [10, 0], "fn": [20, 0], "tn": [940, 100]}), "g"
    )
    assert table.loc["all", "tn"] == 1040 and table.loc["all", "samples"] == 2


# --- RGB -> Sentinel-2 pre-training ----------------------------------------------------------------------


def _tiny_p():
    p = params.resolve("tiny")
    return training.dataset_params(
        p,
        BANDS,
        chip_px=32,
        patches_per_epoch=4,
        dataset_max_epochs=1,
        max_epochs=1,
        val_patches_per_epoch=4,
        batch_size=2,
    )


def test_transfer_maps_rgb_filters_onto_b4_b3_b2():
    q = _tiny_p()
    torch.manual_seed(99)
    rgb = UNet(3, q["unet_widths"], q["unet_upsample"]).state_dict()
    state, mapping = training.transfer_rgb(rgb, ("R", "G", "B"), BANDS, q, gains={"B4": 2.0, "B3": 3.0, "B2": 4.0})
    first = training.FIRST_CONV
    assert mapping.source.tolist() == ["B", "G", "R", "fresh", "fresh"]
    for band, src, gain in (("B2", 2, 4.0), ("B3", 1, 3.0), ("B4", 0, 2.0)):
        assert torch.equal(state[first][:, BANDS.index(band)], rgb[first][:, src] * gain)
    torch.manual_seed(int(q["train_seed"]))
    fresh = UNet(5, q["unet_widths"], q["unet_upsample"]).state_dict()
    assert torch.equal(state[first][:, 3:], fresh[first][:, 3:])  # B11, NDWI: the scratch run's start
    assert all(torch.equal(state[k], rgb[k]) for k in rgb if k != first)
    with pytest.raises(ParameterError, match="unet_widths"):
        training.transfer_rgb(rgb, ("R", "G", "B"), BANDS, {**q, "unet_widths": (8, 8, 16, 32, 64)})


@pytest.fixture
def one_thread():
    """One torch thread: on a busy 2-core machine two spinning threads make a tiny epoch 100x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_training_starts_from_the_given_weights(tmp_path, one_thread):
    q = _tiny_p()
    rng = np.random.default_rng(0)
    images = [rng.random((5, 32, 32), dtype=np.float32) for _ in range(3)]
    chips = [Chip(f"c{i}", "IL", "train", 0.1, im, (im[4] > 0.5).astype(np.uint8)) for i, im in enumerate(images)]
    torch.manual_seed(5)
    state = UNet(5, q["unet_widths"], q["unet_upsample"]).state_dict()
    with training._initial_state(state) as extra:
        built = training.loop.UNet(5, q["unet_widths"], q["unet_upsample"]) if not extra else None
    if built is not None:  # the loop has no init_state argument: its constructor is wrapped for the call
        assert all(torch.equal(built.state_dict()[k], v) for k, v in state.items())
    assert training.loop.UNet is UNet  # restored
    a = training.train_model(chips, chips, tmp_path / "a", q, init_state=state)
    b = training.train_model(chips, chips, tmp_path / "b", q)
    assert a["history"].val_loss.iloc[0] != b["history"].val_loss.iloc[0]
    # batch-norm statistics recomputed: the same weights, other running averages, scored both ways
    table = training.score_kept_model(a, chips, chips, q)
    assert table.index.tolist() == ["as trained", "statistics recomputed"] and (table["samples"] == 3).all()
    before, after = read_checkpoint(a["best"])["state"], read_checkpoint(tmp_path / "a" / "best_bn.pt")["state"]
    assert all(torch.equal(before[k], after[k]) for k in before if "running" not in k and "num_batches" not in k)
    assert not torch.equal(before["down_bn.0.running_mean"], after["down_bn.0.running_mean"])
    # scored by group too: the same pooled "all" rows, and one row per group and reading
    grouped = training.score_kept_model(a, chips, chips, q, groups={"c0": "one", "c1": "two", "c2": "two"})
    assert grouped.index.names == ["statistics", "samples of"]
    assert grouped.xs("all", level="samples of").astype(float).equals(table.astype(float))
    assert grouped.xs("two", level="samples of")["samples"].tolist() == [2, 2]


def test_pretraining_verdict():
    history = pd.DataFrame(
        {"epoch": [1, 2, 1, 2], "val_loss": [0.9, 0.8, 0.95, 0.7], "run": ["scratch"] * 2 + ["pretrained"] * 2}
    )
    index = pd.MultiIndex.from_product([["scratch", "pretrained"], ["as trained", "statistics recomputed"]])
    test = pd.DataFrame(
        {
            "best_epoch": [2, 2, 2, 2],
            "best_val_loss": [0.8, 0.8, 0.7, 0.7],
            "recall": 0.5,
            "precision": 0.5,
            "f1": 0.5,
            "iou": [0.40, 0.50, 0.45, 0.50],
        },
        index=index.set_names(["run", "statistics"]),
    )
    assert training.pretraining_scores(test).loc[("scratch", "as trained"), "iou"] == pytest.approx(40)
    v = training.pretraining_verdict(history, test)
    assert v["winners"] == {
        "kept validation loss": "pretrained",
        "test IoU, as trained": "pretrained",
        "test IoU, statistics recomputed": "tie",
    }
    assert v["iou_gain"] == pytest.approx({"as trained": 5.0, "statistics recomputed": 0.0})
    assert (v["epochs_lower"], v["epochs"], v["verdict"]) == (1, 2, None)
    test.loc[("pretrained", "statistics recomputed"), "iou"] = 0.6
    assert training.pretraining_verdict(history, test)["verdict"] == "pretrained"


# --- overlapping views (near-duplicate detection) and the split that keeps them together ---------------


def _views(positions, seed=0, size=256):
    """Crops of one large smooth texture at ``positions`` (row, col), each with its own gain, gamma and tint,
    saved as JPEG: views of the same ground that overlap where their crops do."""
    import cv2

    rng = np.random.default_rng(seed)
    ground = cv2.GaussianBlur(rng.random((1400, 1400)).astype(np.float32), (0, 0), 6)
    ground = (ground - ground.min()) / (ground.max() - ground.min())
    out = []
    for r, c in positions:
        v = np.clip(ground[r : r + size, c : c + size] * rng.uniform(0.8, 1.2), 0, 1) ** rng.uniform(0.9, 1.1)
        rgb = np.stack([v * rng.uniform(0.9, 1.1) for _ in range(3)], -1)
        out.append(_jpeg((np.clip(rgb, 0, 1) * 255).astype(np.uint8), quality=85))
    return out


def test_overlapping_views_are_found_as_where_they_were_cut():
    from lakepaper.datasets import duplicates

    positions = [(0, 0), (100, 60), (500, 500), (520, 700), (900, 100), (0, 900), (180, 180), (1100, 1100)]
    images = _views(positions)
    pairs = duplicates.overlapping_pairs(images, min_overlap=0.15, min_corr=0.8)
    cut = pd.DataFrame({"tile": "A", "row": [p[0] for p in positions], "col": [p[1] for p in positions]})
    assert set(zip(pairs.i, pairs.j, strict=True)) == duplicates.footprint_pairs(cut, 256, min_overlap=0.15)
    assert len(pairs) == 3 and (pairs["corr"] > 0.9).all()
    first = pairs[(pairs.i == 0) & (pairs.j == 1)].iloc[0]  # image 1 lies 100, 60 px down-right: 18.75, 11.25
    assert (abs(first.dy), abs(first.dx)) in {(19, 11), (18, 11), (19, 12), (18, 12)}
    groups = duplicates.view_groups(len(images), pairs)
    assert groups[0] == groups[1] == groups[6] and groups[2] == groups[3] and len(set(groups)) == 5
    # unrelated images of the same kind of ground are not taken for views of one place
    assert duplicates.overlapping_pairs(_views([(0, 0), (600, 600), (0, 700)], seed=1)).empty


def test_split_by_views_leaves_no_test_image_sharing_ground_with_training():
    names = [f"{i:04d}" for i in range(30)]
    groups = pd.Series([f"v{i // 3:04d}" for i in range(30)], index=pd.Index(names, name="name"), name="group")

    class Ix:  # the part of a QTPIndex that split reads
        pairs = pd.DataFrame({"name": names})

    by_view = qtp.split(Ix, (0.6, 0.2, 0.2), 4, groups=groups)
    assert by_view.groupby(groups).nunique().max() == 1  # every group in one subset
    assert not qtp.overlapping_train(by_view, groups).any()
    by_image = qtp.split(Ix, (0.6, 0.2, 0.2), 4)
    assert qtp.overlapping_train(by_image, groups).sum() > 3  # a split by image leaks views of training places


def test_replica_views_overlap_as_cut(replica):
    """The tiny world's replica: every chip shows its whole tile, so all of them are views of one place."""
    from lakepaper.datasets import duplicates

    root, table = replica
    ix = qtp.index(root)
    groups, pairs = qtp.view_groups(ix)
    assert groups.nunique() == 1 and len(pairs) == N_CHIPS * (N_CHIPS - 1) // 2
    assert set(zip(pairs.i, pairs.j, strict=True)) == duplicates.footprint_pairs(table, 256)
    assert set(pairs.a) | set(pairs.b) == set(ix.pairs.name)


def test_the_replica_takes_the_world_folder_and_no_stage_imports_the_world(tmp_path):
    import ast

    from lakepaper import paths
    from lakepaper.datasets.replicas import _world

    with pytest.raises(InputError, match="world.json"):  # a folder is opened as the world's
        _world(tmp_path)
    marker = object()
    assert _world(marker) is marker  # a WorldFiles (or a look-alike) is used as given
    for path in sorted((paths.ROOT / "lakepaper" / "stages").glob("*.py")):
        if path.name == "world.py":  # stage 00 makes the world
            continue
        tree = ast.parse(path.read_text())
        names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        assert not [m for m in names if m.startswith("lakepaper.world")], path.name
