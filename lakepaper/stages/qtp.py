"""Stage 09: the Qinghai-Tibet Plateau lake dataset, a U-Net on RGB, and RGB pre-training.

Reads the dataset folder given as ``dataset`` or, with ``dataset = ""``, writes a replica of it from
the simulated world (stage 00's plateau tiles, :func:`lakepaper.datasets.replicas.write_qtp_replica`)
into ``replica/``; and stage 02's samples, on which the 5-band Sentinel-2 model is trained from
scratch and from the RGB model (:func:`lakepaper.datasets.training.pretraining_comparison`).

The images were "randomly selected" and may show the same ground, so a split by image can put two views
of one lake into training and test. The split is by groups of overlapping views (``qtp_split_by``:
near-duplicate detection, :func:`lakepaper.datasets.qtp.view_groups`); where the groups are too few to
fill training, validation and test (the replica: its chips come from two 7.7 km tiles and all overlap),
it falls back to one image per group and says so. Either way the test scores are given apart for the test
images that share ground with a training image and for those that do not: the effect of the leakage on
test IoU. On the replica the detection is checked against where each chip was cut (``replica.json``).

Writes ``replica/`` (without ``dataset``), ``view_pairs.csv`` (the overlapping pairs found),
``rgb/`` (the RGB training folder, ``best_bn.pt`` beside ``best.pt``), ``pretraining/{scratch,pretrained}/``
and the figures; the manifest records the dataset's summary and problems, the split and its leakage
(``leakage``), the test scores and the pre-training verdict
(:func:`lakepaper.datasets.training.pretraining_verdict`).

The world is read only by :func:`lakepaper.datasets.replicas.write_qtp_replica`, given stage 00's folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from lakepaper import params
from lakepaper.datasets import duplicates, qtp, training
from lakepaper.datasets.replicas import write_qtp_replica
from lakepaper.errors import ParameterError
from lakepaper.figures.datasets import predictions, pretraining_curves, qtp_pairs
from lakepaper.figures.train import training_curves
from lakepaper.samples.chips import BANDS
from lakepaper.stages.context import Context, Result
from lakepaper.train.checkpoint import load_model
from lakepaper.train.loop import load_splits

#: The method constants this stage uses.
CONSTANTS = (
    "qtp_image_px",
    "qtp_resolution_m",
    "qtp_split_fractions",
    "qtp_split_by",
    "qtp_overlap_min",
    "qtp_overlap_corr",
    "qtp_split_seed",
    "qtp_replica_chips",
    "dataset_max_epochs",
    "dataset_patches_per_epoch",
    "dataset_val_patches",
    "train_seed",
)

SCORES = ["recall", "precision", "f1", "iou"]


def _dataset(ctx: Context, world: Path | None) -> qtp.QTPIndex:
    """The dataset, indexed: the given folder, or a replica written from the simulated world."""
    P = ctx.params
    if world is None:
        root = Path(ctx.args["dataset"])
    else:
        root = ctx.out / "replica"
        write_qtp_replica(
            world,
            root,
            n_chips=P["qtp_replica_chips"],
            seed=P["qtp_split_seed"],
            chip_px=P["qtp_image_px"],
            resolution_m=P["qtp_resolution_m"],
        )
    ix = qtp.index(root, size=P["qtp_image_px"])
    ctx.say(f"{ix.image_dir.relative_to(root)}/ and {ix.truth_dir.relative_to(root)}/: {ix.summary()}")
    ctx.say(f"published: {params.PUBLISHED['qtp_images'][0]:.0f} images and as many ground truths")
    share = ix.pairs.lake_share
    ctx.say(f"lake share of the pairs: mean {share.mean():.1%}, {(share == 0).sum()} without lake")
    ctx.show("problems", ix.problems)  # every file left out, and why (empty: none)
    return ix


def _detection_check(ix: qtp.QTPIndex, pairs: pd.DataFrame, P: dict) -> dict | None:
    """On a replica: the detected overlapping pairs against those of the chips' footprints (``replica.json``)."""
    path = ix.root / "replica.json"
    if not path.exists():
        return None
    chips = pd.DataFrame(json.loads(path.read_text())["chips"])
    chips = chips.set_index("name").reindex(ix.pairs.name).reset_index()
    if chips["tile"].isna().any():
        return None
    truth = duplicates.footprint_pairs(chips, P["qtp_image_px"], min_overlap=P["qtp_overlap_min"])
    found = set(zip(pairs["i"].astype(int), pairs["j"].astype(int), strict=True))
    hit = len(found & truth)
    return {
        "true_pairs": len(truth),
        "found_pairs": len(found),
        "recall": hit / len(truth) if truth else None,
        "precision": hit / len(found) if found else None,
    }


def _split(ctx: Context, ix: qtp.QTPIndex) -> tuple[pd.Series, pd.Series, dict]:
    """The split (by groups of overlapping views, else by image), the groups, and what the manifest records."""
    P = ctx.params
    by = P["qtp_split_by"]
    if by not in ("overlap", "image"):
        raise ParameterError("qtp_split_by", f"choose 'overlap' or 'image', got {by!r}")
    groups, pairs = qtp.view_groups(ix, min_overlap=P["qtp_overlap_min"], min_corr=P["qtp_overlap_corr"])
    ctx.write_csv("view_pairs.csv", pairs[["a", "b", "dy", "dx", "overlap", "corr"]].round(4), index=False)
    n_groups = int(groups.nunique())
    ctx.say(
        f"{len(pairs)} pairs of images share at least {P['qtp_overlap_min']:.0%} of their ground (correlation >= "
        f"{P['qtp_overlap_corr']:g}): {n_groups} groups of views among {len(groups)} images"
    )
    record: dict = {"pairs": len(pairs), "groups": n_groups, "images": len(groups)}
    check = _detection_check(ix, pairs, P)
    if check is not None:
        record["detection"] = check
        ctx.say(
            f"replica: {check['found_pairs']} pairs found, {check['true_pairs']} overlapping by where the chips were "
            f"cut (recall {check['recall'] if check['recall'] is None else round(check['recall'], 3)}, precision "
            f"{check['precision'] if check['precision'] is None else round(check['precision'], 3)})"
        )
    fractions, seed = P["qtp_split_fractions"], P["qtp_split_seed"]
    splits = None
    if by == "overlap":
        grouped = qtp.split(ix, fractions, seed, groups=groups)
        if {"train", "val", "test"} <= set(grouped):
            splits = grouped
        else:
            by = "image (too few groups of views)"
            ctx.say(
                f"only {n_groups} groups of views: too few to fill training, validation and test; split by image, "
                "so held-out images may share ground with training images (scored apart below)"
            )
    if splits is None:
        splits = qtp.split(ix, fractions, seed)
    over = qtp.overlapping_train(splits, groups)
    test_over = over[splits.reindex(over.index) == "test"]
    record.update(split=by, test_images=len(test_over), test_overlapping_train=int(test_over.sum()))
    ctx.say(f"split by {by}: {int(test_over.sum())} of {len(test_over)} test images share ground with a training image")
    return splits, groups, record


def _leakage_scores(ctx: Context, rgb: dict, test_chips: list, q: dict, splits, groups) -> pd.DataFrame:
    """Test scores of the kept RGB model apart for test images that share ground with training and those that do
    not: the effect of leakage on test IoU."""
    over = qtp.overlapping_train(splits, groups)
    label = {n: ("shares ground with training" if v else "no ground shared") for n, v in over.items()}
    table = training.score_split(rgb["best"], test_chips, q, groups=label)
    table = table[["samples", *SCORES]].astype(float) * [1, 100, 100, 100, 100]
    ctx.show("leakage", table)
    rows = table.index.tolist()
    if len(rows) > 2:  # both kinds present: the difference is the leakage's effect
        gain = table.loc["shares ground with training", "iou"] - table.loc["no ground shared", "iou"]
        ctx.say(f"test IoU, images sharing ground with training minus the others: {gain:+.2f} points")
    else:
        kind = [r for r in rows if r != "all"]
        ctx.say(f"every test image: {kind[0] if kind else 'none'} (no comparison of the two kinds on this split)")
    return table


def _say_verdict(ctx: Context, v: dict) -> None:
    ctx.say(f"validation loss lower with pre-training in {v['epochs_lower']} of {v['epochs']} epochs")
    ctx.say(f"lowest kept validation loss: {v['winners']['kept validation loss']}")
    for reading, gain in v["iou_gain"].items():
        ctx.say(f"test IoU, {reading}: {v['winners'][f'test IoU, {reading}']} ({gain:+.2f} points for pre-training)")
    if v["verdict"] is None:
        ctx.say("the criteria disagree: no clear winner here")
    else:
        ctx.say("a tie on every criterion" if v["verdict"] == "tie" else f"{v['verdict']} wins on every criterion")


def run(ctx: Context) -> Result:
    """Read (or replicate) the QTP dataset, train on RGB, compare pre-training with scratch."""
    P = ctx.params
    samples_dir = ctx.upstream("02_samples")  # the pre-training comparison trains on stage 02's samples
    world = None if ctx.args["dataset"] else ctx.upstream("00_world")
    out = ctx.begin()

    # the dataset, read as published
    ix = _dataset(ctx, world)
    ctx.save(qtp_pairs(ix, list(ix.pairs.name[:6])), "qtp_pairs.png")

    # the U-Net on RGB, on a seeded split that keeps overlapping views together
    splits, groups, leakage = _split(ctx, ix)
    chips = {s: qtp.load_chips(ix, splits, s, resolution_m=P["qtp_resolution_m"]) for s in ("train", "val", "test")}
    ctx.say(str({s: len(c) for s, c in chips.items()}))
    q_rgb = training.dataset_params(P, qtp.RGB_BANDS, chip_px=P["qtp_image_px"])
    rgb = training.train_model(chips["train"], chips["val"], out / "rgb", q_rgb)
    ctx.say(f"stopped ({rgb['stopped']}); kept epoch {rgb['best_epoch']}, validation loss {rgb['best_val_loss']:.4f}")
    ctx.save(training_curves(rgb["history"], title="QTP, RGB"), "qtp_rgb_training.png")
    rgb_test = training.score_kept_model(rgb, chips["train"], chips["test"], q_rgb)
    ctx.show("rgb_test", rgb_test[["samples", *SCORES]].astype(float) * [1, 100, 100, 100, 100])
    leak_table = _leakage_scores(ctx, rgb, chips["test"], q_rgb, splits, groups)
    leakage["test_scores"] = _records(leak_table, "samples of")
    model, _ = load_model(out / "rgb" / "best_bn.pt", bands=qtp.RGB_BANDS)
    ctx.save(predictions(model, chips["test"][:6], title="QTP test images"), "qtp_rgb_predictions.png")

    # pre-training the Sentinel-2 model on RGB, against training it from scratch
    s2 = load_splits(samples_dir, BANDS, ("train", "val", "test"))
    q_s2 = training.dataset_params(P, BANDS, chip_px=P["patch_size"])
    cmp = training.pretraining_comparison(
        s2["train"], s2["val"], s2["test"], rgb["best"], chips["train"], out / "pretraining", q_s2
    )
    ctx.show("mapping", cmp["mapping"])
    ctx.save(pretraining_curves(cmp["history"], cmp["test"]), "qtp_pretraining.png")
    ctx.show("pretraining", training.pretraining_scores(cmp["test"]))
    verdict = ctx.keep("verdict", training.pretraining_verdict(cmp["history"], cmp["test"]))
    _say_verdict(ctx, verdict)

    return ctx.finish(
        constants=CONSTANTS,
        extra={
            "dataset": ix.summary(),
            "leakage": leakage,
            "problems": ix.problems.to_dict("records"),
            "rgb_test": _records(rgb_test, "statistics"),
            "rgb_best_epoch": int(rgb["best_epoch"]),
            "pretraining": _records(cmp["test"]),
            "pretraining_winners": verdict["winners"],
            "pretraining_mapping": cmp["mapping"].to_dict("records"),
        },
    )


def _records(table: pd.DataFrame, index_name: str | None = None) -> list[dict]:
    """A score table as manifest records (floats rounded to 6 digits, the index as columns)."""
    t = table.astype(float).round(6)
    return t.reset_index(names=index_name).to_dict("records") if index_name else t.reset_index().to_dict("records")
