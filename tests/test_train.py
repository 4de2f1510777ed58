"""Stage 03: Dice loss, the area-proportional sampler, the loop (determinism, resume), checkpoints, bad inputs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from builders import CRS, synthetic_chip, synthetic_set, write_set
from rasterio.transform import Affine

from lakepaper import io, params, perturb
from lakepaper.errors import InputError, ParameterError
from lakepaper.samples.chips import BANDS, Chip, chip_paths
from lakepaper.train.checkpoint import load_model, read_checkpoint
from lakepaper.train.evaluate import evaluate, pooled, region_counts
from lakepaper.train.loop import load_splits, train
from lakepaper.train.loss import confusion, dice_loss, scores
from lakepaper.train.sampler import CoarseView, PatchSampler, Radiometric, sequential_patches
from lakepaper.train.table import supplementary_table1, write_table


def tiny(**over):
    base = {
        "patch_size": 32,
        "batch_size": 4,
        "patches_per_epoch": 8,
        "val_patches_per_epoch": 4,
        "max_epochs": 3,
        "patience": 10,
    }
    return params.resolve("tiny", **{**base, **over})


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models: one torch thread is faster, and immune to OpenMP spin-waits on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data():
    return synthetic_set()


def _weights(path):
    return read_checkpoint(path)["state"]


def _same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _history(result):
    return result["history"].drop(columns="seconds", errors="ignore")


# --- loss and metrics ----------------------------------------------------------------------------


def test_dice_loss_on_hand_made_cases():
    y = torch.tensor([1.0, 1, 0, 0])
    assert float(dice_loss(y.clone(), y)) == pytest.approx(0.0)  # perfect
    assert float(dice_loss(torch.zeros(4), y)) == pytest.approx(1 - 1 / 3)  # (0 + 1) / (0 + 2 + 1)
    assert float(dice_loss(torch.full((4,), 0.5), y)) == pytest.approx(1 - 3 / 5)  # (2*1 + 1) / (2 + 2 + 1)
    assert float(dice_loss(torch.zeros(4), torch.zeros(4))) == pytest.approx(0.0)  # nothing to find, nothing found
    assert float(dice_loss(torch.full((4,), 0.5), y, smooth=0.0)) == pytest.approx(0.5)


def test_dice_is_over_the_whole_batch_not_averaged_per_patch():
    p = torch.tensor([[1.0, 1, 1, 1], [0.0, 0, 0, 0]])
    y = torch.tensor([[1.0, 1, 1, 1], [1.0, 0, 0, 0]])
    pooled_loss = float(dice_loss(p, y, smooth=0.0))
    assert pooled_loss == pytest.approx(1 - 8 / 9)  # 2*4 / (4 + 5)
    per_patch = (float(dice_loss(p[0], y[0], smooth=0.0)) + float(dice_loss(p[1], y[1], smooth=0.0))) / 2
    assert per_patch == pytest.approx(0.5) and per_patch != pytest.approx(pooled_loss)


def test_padding_is_left_out_of_loss_and_counts():
    p = torch.tensor([0.9, 0.9, 0.9, 0.9])
    y = torch.tensor([1.0, 1, 0, 0])
    valid = torch.tensor([1.0, 1, 0, 0])  # the last two pixels are padding
    assert float(dice_loss(p, y, valid, smooth=0.0)) == pytest.approx(1 - 2 * 1.8 / (1.8 + 2))
    assert confusion(p, y, valid) == {"tp": 2, "fp": 0, "fn": 0, "tn": 0}
    assert confusion(p, y) == {"tp": 2, "fp": 2, "fn": 0, "tn": 0}


def test_scores_from_pooled_counts():
    s = scores({"tp": 8, "fp": 2, "fn": 2, "tn": 100})
    assert s == pytest.approx({"recall": 0.8, "precision": 0.8, "f1": 0.8, "iou": 8 / 12})
    s = scores({"tp": 0, "fp": 0, "fn": 5, "tn": 1})
    assert s["recall"] == 0 and math.isnan(s["precision"]) and s["iou"] == 0


# --- sampler -------------------------------------------------------------------------------------


def _plain_chip(rid, h, w, area, value=1.0):
    image = np.full((5, h, w), value, np.float32)
    return Chip(rid, "NR", "train", area, image, np.ones((h, w), np.uint8))


def test_regions_are_drawn_in_proportion_to_their_area():
    areas = np.array([1.0, 2.0, 7.0])
    chips = [_plain_chip(f"R{i}", 8, 8, a) for i, a in enumerate(areas)]
    draws = PatchSampler(chips, 8).draw(np.random.default_rng(1), 20000, augment=False).region
    observed = np.bincount(draws, minlength=3)
    expected = 20000 * areas / areas.sum()
    chi2 = (((observed - expected) ** 2) / expected).sum()
    assert chi2 < 13.8  # chi-square, 2 degrees of freedom, p = 0.001


def test_positions_are_uniform_inside_large_regions():
    h, w, s = 40, 12, 8
    chip = Chip(
        "R",
        "NR",
        "train",
        1.0,
        np.arange(h * w, dtype=np.float32).reshape(1, h, w).repeat(5, 0),
        np.zeros((h, w), np.uint8),
    )
    patches = PatchSampler([chip], s).draw(np.random.default_rng(2), 4000, augment=False)
    top = (patches.image[:, 0, 0, 0] // w).astype(int)
    left = (patches.image[:, 0, 0, 0] % w).astype(int)
    assert set(top) == set(range(h - s + 1)) and set(left) == set(range(w - s + 1))
    counts = np.bincount(top)
    assert counts.min() > 0.6 * counts.mean() and counts.max() < 1.4 * counts.mean()
    assert patches.valid.all()


def test_small_regions_are_padded_and_the_padding_is_marked_invalid():
    chip = _plain_chip("S", 10, 12, 1.0, value=0.7)
    patches = PatchSampler([chip], 16, pad_value=0.0).draw(np.random.default_rng(3), 300, augment=True)
    assert (patches.valid.sum(axis=(1, 2)) == 120).all()
    assert (patches.label[~patches.valid] == 0).all() and (patches.label[patches.valid] == 1).all()
    inside = patches.image.transpose(1, 0, 2, 3)[:, patches.valid]
    outside = patches.image.transpose(1, 0, 2, 3)[:, ~patches.valid]
    assert (inside == 0.7).all() and (outside == 0.0).all()
    rows = {int(np.argmax(v.any(axis=1))) for v in patches.valid}  # the region's offset in the patch varies
    assert rows == set(range(16 - 10 + 1))


def test_flips_only_when_training():
    rng = np.random.default_rng(4)
    image = rng.random((5, 8, 8)).astype(np.float32)
    chip = Chip("F", "NR", "train", 1.0, image, (image[4] > 0.5).astype(np.uint8))
    sampler = PatchSampler([chip], 8, flip_probability=0.5)
    val = sampler.draw(np.random.default_rng(5), 200, augment=False)
    assert (val.image == image).all()
    tr = sampler.draw(np.random.default_rng(5), 2000, augment=True)
    variants = {
        "none": image,
        "h": image[:, :, ::-1],
        "v": image[:, ::-1, :],
        "hv": image[:, ::-1, ::-1],
    }
    seen = {k: int(sum((p == v).all() for p in tr.image)) for k, v in variants.items()}
    assert sum(seen.values()) == 2000
    assert all(400 < n < 600 for n in seen.values()), seen  # each about 1/4
    for p, lab in zip(tr.image, tr.label, strict=True):  # label flipped with its image
        assert (lab == (p[4] > 0.5)).all()
    assert (
        sampler.draw(np.random.default_rng(9), 50, augment=True).image
        == sampler.draw(np.random.default_rng(9), 50, augment=True).image
    ).all()


def test_radiometric_jitter_moves_reflectance_and_ndwi_together_and_only_in_training():
    bands = ("B2", "B3", "B4", "B11", "NDWI")
    h = w = 8
    image = np.empty((5, h, w), np.float32)
    image[:4] = np.array([0.05, 0.08, 0.06, 0.02], np.float32)[:, None, None]
    image[4] = 0.6  # B8 behind it: 0.08 * 0.4 / 1.6 = 0.02
    chip = Chip("J", "NR", "train", 1.0, image, np.ones((h, w), np.uint8))
    jitter = Radiometric(bands, offset=0.02, gain=0.1)
    sampler = PatchSampler([chip], 12, flip_probability=0.0, jitter=[jitter])
    val = sampler.draw(np.random.default_rng(1), 20, augment=False)
    for k in range(5):  # validation patches are not jittered
        assert (val.image[:, k][val.valid] == image[k, 0, 0]).all()
    tr = sampler.draw(np.random.default_rng(1), 400, augment=True)
    inside = tr.valid[:, None].repeat(5, 1)
    assert (tr.image[~inside] == 0.0).all()  # padding stays padding
    first = np.array([p[:, v][:, 0] for p, v in zip(tr.image, tr.valid, strict=True)])  # one pixel per patch
    d = first[:, :4] - image[:4, 0, 0]
    # offset within +-0.025 (common +-0.02, per band +-0.005), then gain within 1 +- 0.122 (common +-10 %,
    # per band +-2 %): |change| <= 0.025 * 1.122 + 0.122 * value
    assert (np.abs(d) <= 0.025 * 1.122 + 0.122 * image[:4, 0, 0] + 1e-6).all()
    spread = d - d.mean(axis=1, keepdims=True)  # the bands move mostly together
    assert np.abs(spread).max() < 0.02 and d.mean(axis=1).std() > 0.005
    assert d.std(axis=0).min() > 0.005  # every band moves, by different amounts
    # NDWI follows its bands: recompute it from the jittered B3 and the jittered B8 it implies
    assert np.abs(first[:, 4] - 0.6).max() > 0.05 and (np.abs(first[:, 4]) <= 1).all()
    same = sampler.draw(np.random.default_rng(7), 5, augment=True).image
    assert (same == sampler.draw(np.random.default_rng(7), 5, augment=True).image).all()
    assert Radiometric(bands).active is False


@pytest.mark.bad_input
def test_augmentation_on_bands_it_does_not_know_is_refused_up_front():
    from lakepaper.train.loop import train_params

    p = {**params.resolve("tiny"), "composite_bands": ("R", "G", "B"), "in_channels": 3}
    with pytest.raises(ParameterError, match=r"radiometric_offset.*\['R', 'G', 'B'\]"):
        train_params(p)
    train_params({**p, "radiometric_offset": 0.0, "radiometric_gain": 0.0, "coarse_view_probability": 0.0})


def test_coarse_view_blurs_a_share_of_training_patches_and_keeps_their_labels():
    bands = ("B2", "B3", "B4", "B11", "NDWI")
    rng = np.random.default_rng(3)
    image = rng.uniform(0.02, 0.2, (5, 12, 12)).astype(np.float32)
    image[4] = (image[1] - 0.05) / (image[1] + 0.05)
    label = (image[1] > 0.1).astype(np.uint8)
    chip = Chip("C", "NR", "train", 1.0, image, label)
    sampler = PatchSampler([chip], 12, flip_probability=0.0, jitter=[CoarseView(bands, 0.25)])
    tr = sampler.draw(np.random.default_rng(4), 400, augment=True)
    coarse = np.array([not np.array_equal(p, image) for p in tr.image])
    assert 0.15 < coarse.mean() < 0.35  # about a quarter
    assert (tr.label == label).all()
    blurred = tr.image[coarse][0]
    assert blurred[1].std() < image[1].std()  # 30 m pixels: less contrast between neighbours
    assert (sampler.draw(np.random.default_rng(4), 20, augment=False).image == image).all()
    assert CoarseView(bands).active is False


def test_sequential_patches_score_every_pixel_once():
    rng = np.random.default_rng(6)
    chips = [synthetic_chip(f"Q{i}", h, w, rng) for i, (h, w) in enumerate([(20, 70), (33, 33), (16, 16), (50, 9)])]
    size = 16
    batches = list(sequential_patches(chips, size, batch=3))
    assert all(len(b) <= 3 and b.image.shape[1:] == (5, size, size) for b in batches)
    valid = np.concatenate([b.valid for b in batches])
    label = np.concatenate([b.label for b in batches])
    region = np.concatenate([b.region for b in batches])

    def starts(n):  # from the top-left corner; the last patch shifted back to end at the border
        return [0] if n <= size else [*range(0, n - size, size), n - size]

    k = 0
    for r, c in enumerate(chips):
        h, w = c.label.shape
        seen = np.zeros((h, w), int)
        for r0 in starts(h):
            for c0 in starts(w):
                hh, ww = min(size, h - r0), min(size, w - c0)
                assert region[k] == r
                assert (label[k][:hh, :ww] == c.label[r0 : r0 + hh, c0 : c0 + ww]).all()
                assert not valid[k][hh:].any() and not valid[k][:, ww:].any()  # padding is never scored
                seen[r0 : r0 + hh, c0 : c0 + ww] += valid[k][:hh, :ww]
                k += 1
        assert (seen == 1).all(), c.region_id
    assert k == len(valid)


# --- the loop ------------------------------------------------------------------------------------


def test_same_seed_gives_identical_history_and_weights(data, tmp_path):
    p = tiny()
    a = train(data["train"], data["val"], tmp_path / "a", p, progress=False)
    b = train(data["train"], data["val"], tmp_path / "b", p, progress=False)
    pd.testing.assert_frame_equal(_history(a), _history(b))
    assert _same_weights(_weights(a["best"]), _weights(b["best"]))
    assert _same_weights(_weights(a["last"]), _weights(b["last"]))
    c = train(data["train"], data["val"], tmp_path / "c", tiny(train_seed=1), progress=False)
    assert not _same_weights(_weights(a["last"]), _weights(c["last"]))
    for f in ("best.pt", "last.pt", "history.csv", "train.log"):
        assert (tmp_path / "a" / f).exists()
    assert pd.read_csv(tmp_path / "a" / "history.csv").shape[0] == 3


class Interrupt(Exception):
    pass


def test_an_interrupted_run_resumes_to_the_same_end(data, tmp_path):
    p = tiny(max_epochs=4)
    whole = train(data["train"], data["val"], tmp_path / "whole", p, progress=False)

    def stop_after_2(epoch, row):
        if epoch == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        train(data["train"], data["val"], tmp_path / "cut", p, progress=False, on_epoch_end=stop_after_2)
    assert read_checkpoint(tmp_path / "cut" / "last.pt")["epoch"] == 2
    again = train(data["train"], data["val"], tmp_path / "cut", p, progress=False)
    assert again["resumed_from"] == 2 and whole["resumed_from"] == 0
    pd.testing.assert_frame_equal(_history(whole), _history(again))
    assert _same_weights(_weights(whole["last"]), _weights(again["last"]))
    assert _same_weights(_weights(whole["best"]), _weights(again["best"]))
    assert read_checkpoint(whole["best"])["epoch"] == read_checkpoint(again["best"])["epoch"] == whole["best_epoch"]
    assert "resuming after epoch 2" in (tmp_path / "cut" / "train.log").read_text()
    # the same bytes, not only the same content (regression: a resumed run's history, pickled as objects
    # partly loaded from the file, gave last.pt other bytes; stage 04 hashes checkpoints)
    for name in ("last.pt", "best.pt", "history.csv"):
        assert (tmp_path / "whole" / name).read_bytes() == (tmp_path / "cut" / name).read_bytes(), name
    # a finished run is not trained again; raising max_epochs extends it
    done = train(data["train"], data["val"], tmp_path / "cut", p, progress=False)
    assert done["resumed_from"] == 4 and len(done["history"]) == 4
    more = train(data["train"], data["val"], tmp_path / "cut", tiny(max_epochs=5), progress=False)
    assert more["resumed_from"] == 4 and len(more["history"]) == 5


@pytest.mark.parametrize("stop_after", ["best.pt", "history.csv", "last.pt"])
def test_a_run_stopped_after_any_write_of_its_final_epoch_ends_complete(data, tmp_path, monkeypatch, stop_after):
    """Issue 11: a run that dies right after one of its final epoch's files is written (as a kill there would
    leave it) and is rerun ends with every file of an uninterrupted run. Regression: last.pt was written
    before history.csv, so a run killed between the two in its final epoch left a history.csv one epoch
    short, and the rerun, finding nothing left to train, never rewrote it."""
    from lakepaper.train import loop

    p = tiny(max_epochs=3)
    whole = train(data["train"], data["val"], tmp_path / "whole", p, progress=False)
    assert whole["history"].best.iloc[-1]  # the final epoch writes best.pt too

    real_save, real_history = loop.save_checkpoint, loop.write_history

    def save(path, model, **kw):
        done = real_save(path, model, **kw)
        if path.name == stop_after and kw["epoch"] == 3:
            raise Interrupt
        return done

    def history(rows, path):
        done = real_history(rows, path)
        if path.name == stop_after and len(rows) == 3:
            raise Interrupt
        return done

    monkeypatch.setattr(loop, "save_checkpoint", save)
    monkeypatch.setattr(loop, "write_history", history)
    with pytest.raises(Interrupt):
        train(data["train"], data["val"], tmp_path / "cut", p, progress=False)
    monkeypatch.undo()
    train(data["train"], data["val"], tmp_path / "cut", p, progress=False)
    whole_dir, cut_dir = tmp_path / "whole", tmp_path / "cut"
    assert {f.name for f in cut_dir.iterdir()} == {f.name for f in whole_dir.iterdir()}
    on_disk = [pd.read_csv(d / "history.csv").drop(columns="seconds", errors="ignore") for d in (whole_dir, cut_dir)]
    pd.testing.assert_frame_equal(*on_disk)
    for f in ("best.pt", "last.pt"):
        assert _same_weights(_weights(whole_dir / f), _weights(cut_dir / f)), f
    assert io.sha256_file(whole_dir / "best.pt") == io.sha256_file(cut_dir / "best.pt")  # no wall time inside


def test_other_parameters_or_data_start_over(data, tmp_path):
    train(data["train"], data["val"], tmp_path, tiny(max_epochs=2), progress=False)
    r = train(data["train"], data["val"], tmp_path, tiny(max_epochs=2, learning_rate=0.5), progress=False)
    assert r["resumed_from"] == 0
    r = train(data["train"][:-1], data["val"], tmp_path, tiny(max_epochs=2, learning_rate=0.5), progress=False)
    assert r["resumed_from"] == 0
    assert "other parameters or data: starting over" in (tmp_path / "train.log").read_text()
    r = train(
        data["train"][:-1], data["val"], tmp_path, tiny(max_epochs=2, learning_rate=0.5), progress=False, resume=False
    )
    assert r["resumed_from"] == 0
    (tmp_path / "last.pt").write_bytes(b"damaged")
    r = train(data["train"][:-1], data["val"], tmp_path, tiny(max_epochs=2, learning_rate=0.5), progress=False)
    assert r["resumed_from"] == 0 and "cannot resume" in (tmp_path / "train.log").read_text()


def test_training_can_start_from_given_weights(data, tmp_path):
    a = train(data["train"], data["val"], tmp_path / "a", tiny(max_epochs=1), progress=False)
    start = _weights(a["last"])
    b = train(data["train"], data["val"], tmp_path / "b", tiny(max_epochs=1), progress=False, init_state=start)
    assert not _same_weights(_weights(b["last"]), start)  # trained on from there
    c = train(data["train"], data["val"], tmp_path / "a", tiny(max_epochs=1), progress=False, init_state=start)
    assert c["resumed_from"] == 0  # other initial weights: a new run, not a-resumed
    pd.testing.assert_frame_equal(_history(b), _history(c))


def test_early_stopping_and_best_checkpoint(data, tmp_path):
    r = train(data["train"], data["val"], tmp_path, tiny(max_epochs=30, patience=2), progress=False)
    h = r["history"]
    best = h.best.tolist()
    assert best[0] and best == [v < h.val_loss[:i].min() if i else True for i, v in enumerate(h.val_loss)]
    # stopped at the first run of `patience` epochs without a lower validation loss
    runs = [i for i in range(1, len(best)) if not best[i] and not best[i - 1]]
    if r["stopped"] == "early stopping":
        assert runs == [len(best) - 1]
    else:
        assert not runs and len(h) == 30
    assert r["best_epoch"] == int(h.loc[h.val_loss.idxmin(), "epoch"])
    assert read_checkpoint(r["best"])["epoch"] == r["best_epoch"]
    assert read_checkpoint(r["best"])["val_loss"] == pytest.approx(h.val_loss.min())


@pytest.mark.parametrize(("precision", "channels_last"), [("fp32", False), ("bf16", True)])
def test_other_arithmetic_paths_train_and_are_recorded(data, tmp_path, precision, channels_last):
    p = tiny(max_epochs=1, train_precision_cpu=precision, train_channels_last=channels_last)
    r = train(data["train"], data["val"], tmp_path, p, device="cpu", progress=False)
    assert r["precision"] == precision and r["channels_last"] is channels_last
    assert np.isfinite(r["history"][["loss", "val_loss"]].to_numpy()).all()
    assert read_checkpoint(r["best"])["params"]["train_precision_cpu"] == precision


def test_the_loop_learns_lakes(data, tmp_path):
    """Synthetic lakes (high NDWI, dark SWIR): a tiny U-Net finds them within a few seconds of training."""
    # fp32: this checks the loop; bf16 (the 'auto' choice on CPUs that compute it) is compared on the demo
    # by benchmarks/train.py --iou
    p = tiny(
        patch_size=64,
        patches_per_epoch=32,
        val_patches_per_epoch=8,
        max_epochs=12,
        batch_size=8,
        train_precision_cpu="fp32",
    )
    r = train(data["train"], data["val"], tmp_path, p, progress=False)
    model, _ = load_model(r["best"])
    table = evaluate(model, data["test"], p)
    assert table.loc["all", "iou"] > 0.8, table
    assert r["history"].loss.iloc[-1] < r["history"].loss.iloc[0]


# --- checkpoints ---------------------------------------------------------------------------------


def test_checkpoint_carries_parameters_and_band_order(data, tmp_path):
    r = train(data["train"], data["val"], tmp_path, tiny(max_epochs=1), progress=False)
    model, meta = load_model(r["best"], bands=BANDS)
    assert meta["bands"] == list(BANDS) and meta["patch_size"] == 32
    assert meta["params"]["unet_widths"] == [4, 8, 16, 32, 64] and meta["params"]["train_seed"] == tiny()["train_seed"]
    assert meta["model"] == model.config() and not model.training
    assert "resume" not in meta and "state" not in meta


@pytest.mark.bad_input
def test_a_model_refuses_other_band_orders(data, tmp_path):
    r = train(data["train"], data["val"], tmp_path, tiny(max_epochs=1), progress=False)
    swapped = ("B3", "B2", "B4", "B11", "NDWI")
    with pytest.raises(InputError, match="trained on bands") as err:
        load_model(r["best"], bands=swapped)
    assert "best.pt" in str(err.value) and "'B3', 'B2'" in str(err.value)
    with pytest.raises(InputError, match="trained on bands"):
        load_model(r["best"], bands=BANDS[:4])


@pytest.mark.bad_input
def test_unreadable_checkpoints_are_named(tmp_path):
    with pytest.raises(InputError, match="no checkpoint"):
        load_model(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="junk.pt"):
        load_model(tmp_path / "junk.pt")


# --- bad inputs: clear errors before training -------------------------------------------------------


def _replace(chips, i, **kw):
    c = chips[i]
    new = Chip(**{**{f: getattr(c, f) for f in Chip.__dataclass_fields__}, **kw})
    return [*chips[:i], new, *chips[i + 1 :]]


@pytest.mark.bad_input
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("nan", "NaN"),
        ("label", "not binary"),
        ("bands4", "takes 5 bands"),
        ("order", "in that order"),
        ("area", "area_km2"),
    ],
)
def test_bad_chips_are_refused_before_training(data, tmp_path, change, message):
    c = data["train"][2]
    if change == "nan":
        image = c.image.copy()
        image[1, 3, 3] = np.nan
        bad = _replace(data["train"], 2, image=image)
    elif change == "label":
        label = c.label.copy()
        label[0, 0] = 255
        bad = _replace(data["train"], 2, label=label)
    elif change == "bands4":
        bad = _replace(data["train"], 2, image=c.image[:4], bands=BANDS[:4])
    elif change == "order":
        bad = _replace(data["train"], 2, bands=("B3", "B2", "B4", "B11", "NDWI"))
    else:
        bad = _replace(data["train"], 2, area_km2=0.0)
    with pytest.raises(InputError, match=message) as err:
        train(bad, data["val"], tmp_path / "out", tiny(), progress=False)
    assert c.region_id in str(err.value)
    assert not (tmp_path / "out").exists()  # nothing trained, nothing written


@pytest.mark.bad_input
def test_bad_chip_files_are_named(data, tmp_path):
    chips = data["train"] + data["val"]
    write_set(tmp_path, chips)
    victim = data["train"][1]
    image = victim.image.copy()
    image[0, 2, 2] = np.nan
    io.write_raster(
        tmp_path / chip_paths(victim.region_id)[0],
        image,
        crs=CRS,
        transform=Affine(10, 0, 0, 0, -10, 0),
        band_names=list(BANDS),
    )
    with pytest.raises(InputError, match=f"{victim.region_id}_image.tif.*NaN"):
        load_splits(tmp_path, BANDS)


@pytest.mark.bad_input
def test_band_count_of_the_files_must_match_the_model(data, tmp_path):
    write_set(tmp_path, data["train"] + data["val"])
    p = tiny()
    with pytest.raises(InputError, match="takes 6 bands"):
        load_splits(tmp_path, (*BANDS, "B8"))
    splits = load_splits(tmp_path, p["composite_bands"])
    assert [c.region_id for c in splits["train"]] == [c.region_id for c in data["train"]]
    with pytest.raises(InputError, match="'test' split has no regions"):
        load_splits(tmp_path, BANDS, splits=("test",))


@pytest.mark.bad_input
@pytest.mark.parametrize(
    ("name", "value"),
    [("optimizer", "adam"), ("loss", "bce"), ("patch_size", 40), ("train_precision_cpu", "fp16"), ("batch_size", 0)],
)
def test_unsupported_training_parameters_are_named(data, tmp_path, name, value):
    p = {**tiny(), name: value}
    with pytest.raises(ParameterError) as err:
        train(data["train"], data["val"], tmp_path, p, progress=False)
    assert err.value.name == name


# --- evaluation, table, figure --------------------------------------------------------------------


class NdwiModel(torch.nn.Module):
    """A 'model' that calls lake where NDWI > 0: perfect on the synthetic lakes."""

    def forward(self, x):
        return torch.sigmoid(50 * x[:, 4:5])


def test_evaluation_pools_every_test_pixel_once(data):
    counts = region_counts(NdwiModel(), data["test"], patch_size=32, batch=5)
    assert (counts[["tp", "fp", "fn", "tn"]].sum(axis=1).to_numpy() == [c.label.size for c in data["test"]]).all()
    table = pooled(counts)
    assert table.loc["all", "iou"] == 1.0 and table.loc["all", "tp"] == sum(int(c.label.sum()) for c in data["test"])
    assert table.loc["all", "regions"] == len(data["test"])


def test_supplementary_table_comes_from_the_parameters(tmp_path):
    t = supplementary_table1(params.resolve("paper"))
    v = dict(zip(t.hyperparameter, t.value, strict=True))
    assert v["Input size"] == "576 x 576 x 5" and v["Batch size"] == "16"
    assert v["Trainable parameters"] == "31,385,857"
    assert "AdaDelta (learning rate 1.0, rho 0.95" in v["Optimizer"] and "L2 0.0001" in v["Output layer"]
    assert "50 epochs" in v["Early stopping"] and "p = 0.5" in v["Augmentation"]
    assert t.source.str.len().min() > 0
    # every row names the provenance of its constants, in the words of params.ORIGINS
    labels = set(params.ORIGINS.values())
    assert all(p and set(p.split("; ")) <= labels for p in t.provenance)
    row = dict(zip(t.hyperparameter, t.provenance, strict=True))
    assert row["Seed"] == params.ORIGINS["own"] and row["Optimizer"] == params.ORIGINS["code"]
    assert row["Early stopping"] == "; ".join(params.ORIGINS[k] for k in ("paper", "code"))  # patience, max_epochs
    assert v["Patches per epoch"].startswith(
        f"{params.CONSTANTS['patches_per_epoch'].value} training, {params.CONSTANTS['val_patches_per_epoch'].value}"
    )
    demo = dict(
        zip(*supplementary_table1(params.resolve("demo"), device="cpu", precision="fp32").T.values[:2], strict=True)
    )
    assert demo["Input size"] == "128 x 128 x 5" and demo["Arithmetic"] == "fp32 on cpu"
    csv, md = write_table(t, tmp_path / "supplementary_table1")
    assert pd.read_csv(csv).shape == t.shape and md.read_text().count("\n|") == len(t) + 2


def test_training_curves_figure(data, tmp_path):
    from lakepaper.figures import save
    from lakepaper.figures.train import training_curves

    r = train(data["train"], data["val"], tmp_path, tiny(max_epochs=2), progress=False)
    fig = training_curves(r["history"], title="tiny")
    assert [ax.get_title() for ax in fig.axes][:5] == ["loss (1 - Dice + L2)", "recall", "precision", "F1", "IoU"]
    save(fig, tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 1000


def test_pixels_never_observed_are_left_out_of_patches_and_scores(tmp_path):
    from types import SimpleNamespace

    from lakepaper.samples.chips import LABEL_NODATA, read_chip, write_chip

    rng = np.random.default_rng(0)
    image = rng.random((5, 40, 40)).astype(np.float32)
    label = np.zeros((40, 40), np.uint8)
    label[10:20, 10:20] = 1
    label[:, :8] = LABEL_NODATA  # a strip the composite never saw
    image_rel, label_rel = write_chip(tmp_path, "R1", image, label, crs=CRS, transform=Affine(10, 0, 0, 0, -10, 0))
    row = SimpleNamespace(
        region_id="R1", region_type="NR", split="train", area_km2=0.16, image=image_rel, label=label_rel
    )
    chip = read_chip(tmp_path, row)
    assert set(np.unique(chip.label).tolist()) == {0, 1}  # in memory: binary label + observed mask
    assert not chip.observed[:, :8].any() and chip.observed[:, 8:].all()
    patches = PatchSampler([chip], 64).draw(np.random.default_rng(1), 3, augment=True)
    assert patches.valid.sum(axis=(1, 2)).tolist() == [32 * 40] * 3  # padding and the unseen strip left out
    seq = next(sequential_patches([chip], 32))
    assert seq.valid.sum() == 32 * 40


def test_stage_03_trains_scores_and_resumes_to_the_same_bytes(data, tmp_path):
    import time

    from lakepaper.stages import train as stage
    from lakepaper.stages.context import Context

    samples = tmp_path / "02_samples"
    write_set(samples, [c for split in ("train", "val", "test") for c in data[split]])
    io.write_manifest(samples, stage="02_samples", parameters={}, started=time.time())

    def run(**given):
        return stage.run(Context.create("03_train", profile="tiny", root=tmp_path, quiet=True, device="cpu", **given))

    first = run(max_epochs=2)
    out = tmp_path / "03_train"
    assert first.manifest["parameters"] == json_safe(
        {"profile": "tiny", "resume": True, "device": "cpu", **params.resolve("tiny", max_epochs=2)}, stage.CONSTANTS
    )
    assert first.manifest["inputs"] == {"02_samples": io.sha256_file(samples / "manifest.json")}
    table = pd.read_csv(out / "test_metrics.csv", index_col="region_type")
    assert table.loc["all", "regions"] == len(data["test"])
    assert first.manifest["test"]["iou"] == pytest.approx(table.loc["all", "iou"], nan_ok=True)
    assert first.manifest["training"]["epochs"] == 2 and (out / "supplementary_table1.md").exists()
    assert set(first.figures) == {"training_curves", "supplementary_fig1"}
    assert set(first.tables) >= {"model", "test_metrics", "supplementary_fig1_examples"}
    per_patch = pd.read_csv(out / "test_patches.csv")  # Table 1 is these patches' counts, pooled
    assert per_patch[["tp", "fp", "fn", "tn"]].sum().to_dict() == table.loc["all", ["tp", "fp", "fn", "tn"]].to_dict()
    examples = pd.read_csv(out / "supplementary_fig1_examples.csv")
    assert set(examples.region_type) <= set(table.index) and len(examples) == len(first.manifest["examples"])
    assert (out / "figures" / "supplementary_fig1.png").stat().st_size > 5000
    robust = pd.read_csv(out / "robustness.csv", keep_default_na=False)
    from lakepaper.train.examples import predicted_maps

    model, meta = load_model(out / "best.pt")
    p = params.resolve("tiny", max_epochs=2)
    scored = {"patch_size": meta["patch_size"], "threshold": p["prob_threshold"], "pad_value": p["pad_value"]}
    maps = predicted_maps(model, data["test"], batch=p["batch_size"], device="cpu", **scored)
    counts = {"tp": 0, "fp": 0, "fn": 0}
    for c, m in zip(data["test"], maps, strict=True):
        ok, y = (np.ones(m.shape, bool) if c.observed is None else c.observed), c.label == 1
        counts = {"tp": counts["tp"] + int((m & y & ok).sum()), "fp": counts["fp"] + int((m & ~y & ok).sum()),
                  "fn": counts["fn"] + int((~m & y & ok).sum())}  # fmt: skip
    assert counts == table.loc["all", ["tp", "fp", "fn"]].to_dict()  # the maps are the pixels Table 1 counts
    assert robust.pixel_drop.tolist()[:4] == [0.0] * 4  # views that keep every pixel
    assert robust.pixel_drop.iloc[4] == pytest.approx(  # the model's own map seen at 30 m, recomputed
        first.manifest["test"]["iou"] - stage.coarse_iou(data["test"], maps, 3), abs=1e-6
    )
    kept = [stage.without_small_lakes(c, stage.MIN_LAKE_PX) for c in data["test"]]
    view = perturb.PerturbedChips(data["test"], stage.ROBUSTNESS["gain 0.9"].perturb)
    gained = predicted_maps(model, view, batch=p["batch_size"], device="cpu", **scored)
    assert robust.drop_min_area.iloc[2] == pytest.approx(  # lakes under 0.005 km2 left out of both scores
        stage.pooled_iou(data["test"], maps, kept) - stage.pooled_iou(data["test"], gained, kept), abs=1e-6
    )
    ids = {c.region_id for c in data["test"]}
    for row in robust.itertuples():  # the region that lost most lake pixels, named with its type, or none lost
        assert (row.most_lost == "" and row.most_lost_share == 0) or (
            row.most_lost.split(" ")[0] in ids and 0 < float(row.most_lost_share) <= 1
        )
    best, last = (out / "best.pt").read_bytes(), (out / "last.pt").read_bytes()

    again = run(max_epochs=2)  # last.pt survives the stage's start: nothing left to train
    assert any("resumed after epoch 2" in line for line in again.notes)
    assert (out / "best.pt").read_bytes() == best and (out / "last.pt").read_bytes() == last


def json_safe(given: dict, constants) -> dict:
    """The manifest's reading of recorded parameters (tuples become lists)."""
    import json

    keep = {"profile", "resume", "device", *constants}
    return json.loads(json.dumps({k: (list(v) if isinstance(v, tuple) else v) for k, v in given.items() if k in keep}))


@pytest.mark.bad_input
def test_the_demo_model_below_its_iou_stops_the_stage(tmp_path):
    from lakepaper.errors import LakepaperError
    from lakepaper.stages import train as stage
    from lakepaper.stages.context import Context

    demo = Context.create("03_train", profile="demo", root=tmp_path, quiet=True)
    demo.begin()
    stage.check_demo_iou(demo, stage.DEMO_IOU_TARGET)
    with pytest.raises(LakepaperError, match=r"best.pt.*IoU 0.5500"):
        stage.check_demo_iou(demo, 0.55)
    stage.check_demo_iou(Context.create("03_train", profile="tiny", root=tmp_path, quiet=True), 0.1)  # demo only


def _benchmark(name: str):
    import importlib.util

    from lakepaper import paths

    spec = importlib.util.spec_from_file_location(f"bench_{name}", paths.ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_seeds_benchmark_trains_the_recipe_per_seed_and_scores_it_as_stage_03(data, tmp_path):
    import time

    from lakepaper.stages import train as stage
    from lakepaper.stages.context import Context

    seeds = _benchmark("seeds")
    samples = tmp_path / "02_samples"
    write_set(samples, [c for split in ("train", "val", "test") for c in data[split]])
    io.write_manifest(samples, stage="02_samples", parameters={}, started=time.time())
    stage.run(Context.create("03_train", profile="tiny", root=tmp_path, quiet=True, device="cpu", max_epochs=2))
    own = params.resolve("tiny")["train_seed"]
    stage_iou = pd.read_csv(tmp_path / "03_train" / "test_metrics.csv", index_col="region_type").loc["all", "iou"]

    table = seeds.run(tmp_path, seeds=[own, 5], device="cpu", progress=False)
    assert table.seed.tolist() == [own, 5] and table.epochs.tolist() == [2, 2]
    assert table.iou[0] == pytest.approx(stage_iou, nan_ok=True)  # the profile's own seed: stage 03's model
    runs = tmp_path / "benchmarks" / "seeds" / "recipe"
    assert not (runs / f"seed_{own}").exists()
    assert read_checkpoint(runs / "seed_5" / "best.pt")["params"]["train_seed"] == 5
    assert not _same_weights(_weights(runs / "seed_5" / "best.pt"), _weights(tmp_path / "03_train" / "best.pt"))
    assert {"iou NR", "worst drop", "failed"} <= set(table.columns)
    assert seeds.summary(table).startswith("2 seeds: test IoU median")

    changed = seeds.run(tmp_path, seeds=[own], sets=seeds.parse_sets(["max_epochs=1"]), device="cpu", progress=False)
    assert changed.epochs.tolist() == [1]  # a changed recipe trains the profile's seed too
    assert (tmp_path / "benchmarks" / "seeds" / "max_epochs-1" / f"seed_{own}" / "best.pt").exists()


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "item, message",
    [
        ("no_such=1", "'no_such' is not a training parameter"),
        ("batch_size", "NAME=VALUE"),
        ("train_seed=3", "--seeds"),
        ("unet_widths=10,20,40,80,160", "unet_widths.*expected tuple"),
        ("batch_size=eight", "batch_size.*expected int"),
    ],
)
def test_seeds_benchmark_refuses_what_it_cannot_change(item, message):
    with pytest.raises(ParameterError, match=message):
        _benchmark("seeds").parse_sets([item])
