"""Stage 09: the Qinghai-Tibet Plateau lake dataset, a U-Net on RGB, and RGB pre-training.

Reads the dataset folder given as ``dataset`` or, with ``dataset = ""``, writes a replica of it from
the simulated world (stage 00's plateau tiles, :func:`lakepaper.datasets.replicas.write_qtp_replica`)
into ``replica/``; and stage 02's samples, on which the 5-band Sentinel-2 model is trained from
scratch and from the RGB model (:func:`lakepaper.datasets.training.pretraining_comparison`).

Writes ``replica/`` (without ``dataset``), ``rgb/`` (the RGB training folder, ``best_bn.pt`` beside
``best.pt``), ``pretraining/{scratch,pretrained}/`` and the figures; the manifest records the
dataset's summary and problems, the test scores and the pre-training verdict
(:func:`lakepaper.datasets.training.pretraining_verdict`).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lakepaper import params
from lakepaper.datasets import qtp, training
from lakepaper.datasets.replicas import write_qtp_replica
from lakepaper.figures.datasets import predictions, pretraining_curves, qtp_pairs
from lakepaper.figures.train import training_curves
from lakepaper.samples.chips import BANDS
from lakepaper.stages.context import Context, Result
from lakepaper.train.checkpoint import load_model
from lakepaper.train.loop import load_splits
from lakepaper.world.files import WorldFiles

#: The method constants this stage uses.
CONSTANTS = (
    "qtp_image_px",
    "qtp_resolution_m",
    "qtp_split_fractions",
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
            WorldFiles(world),
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

    # the U-Net on RGB, on a seeded split
    splits = qtp.split(ix, P["qtp_split_fractions"], P["qtp_split_seed"])
    chips = {s: qtp.load_chips(ix, splits, s, resolution_m=P["qtp_resolution_m"]) for s in ("train", "val", "test")}
    ctx.say(str({s: len(c) for s, c in chips.items()}))
    q_rgb = training.dataset_params(P, qtp.RGB_BANDS, chip_px=P["qtp_image_px"])
    rgb = training.train_model(chips["train"], chips["val"], out / "rgb", q_rgb)
    ctx.say(f"stopped ({rgb['stopped']}); kept epoch {rgb['best_epoch']}, validation loss {rgb['best_val_loss']:.4f}")
    ctx.save(training_curves(rgb["history"], title="QTP, RGB"), "qtp_rgb_training.png")
    rgb_test = training.score_kept_model(rgb, chips["train"], chips["test"], q_rgb)
    ctx.show("rgb_test", rgb_test[["samples", *SCORES]].astype(float) * [1, 100, 100, 100, 100])
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
