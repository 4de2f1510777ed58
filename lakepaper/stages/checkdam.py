"""Stage 10: the Jilin-1 check-dam dataset, its six published steps as code, and a U-Net on it.

Reads the dataset folder given as ``dataset`` or, with ``dataset = ""``, draws a replica in the
published layout into ``replica/`` (:func:`lakepaper.datasets.replicas.write_checkdam_replica`); no
earlier stage. Builds the dataset (:func:`lakepaper.datasets.checkdam.build`: grid, screening,
Labelme rasterisation, augmentation, split by source cell) into ``dataset/``, trains the U-Net of
stage 03 on RGB into ``model/`` and scores it with the dataset's measures (mIoU, OA) beside the
paper's, as trained and with batch-norm statistics recomputed (``model/best_bn.pt``). Writes the
figures; the manifest records the counts of each step and the test scores.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd

from lakepaper import params
from lakepaper.datasets import checkdam, training
from lakepaper.datasets.replicas import write_checkdam_replica
from lakepaper.datasets.split import leaks
from lakepaper.figures.datasets import augmentation_copies, checkdam_overview, predictions
from lakepaper.figures.train import training_curves
from lakepaper.stages.context import Context, Result
from lakepaper.train.checkpoint import load_model

#: The method constants this stage records.
CONSTANTS = (
    "checkdam_chip_px",
    "checkdam_class",
    "checkdam_augment_factor",
    "checkdam_augmentations",
    "checkdam_brightness_range",
    "checkdam_split_fractions",
    "checkdam_split_seed",
    "checkdam_replica_px",
    "dataset_max_epochs",
    "dataset_patches_per_epoch",
    "dataset_val_patches",
    "train_seed",
)

#: The score columns shown, the scores in %.
SHOWN = ["samples", "miou", "oa", "recall", "precision", "f1", "iou", "iou_background"]


def _root(ctx: Context) -> Path:
    """The dataset folder: the given one, or a replica drawn in the published layout."""
    if ctx.args["dataset"]:
        return Path(ctx.args["dataset"])
    P = ctx.params
    root = ctx.out / "replica"
    write_checkdam_replica(
        root,
        size_px=P["checkdam_replica_px"],
        seed=P["checkdam_split_seed"],
        chip_px=P["checkdam_chip_px"],
        resolution_m=P["checkdam_resolution_m"],
        epsg=P["checkdam_epsg"],
    )
    return root


def _build(ctx: Context, root: Path) -> dict:
    """Steps 1-6 into ``dataset/``, with the counts beside the published ones."""
    built = checkdam.build(root, ctx.out / "dataset", ctx.params, progress=False)
    counts = built["counts"]
    published = {k: params.PUBLISHED[f"checkdam_{k}"][0] for k in ("cells", "kept", "samples")}
    ctx.say(f"large image: {built['source'].image.relative_to(root)}; {len(built['source'].annotations)} JSON files")
    ctx.say(
        f"(1) grid cells {counts['cells']} (published {published['cells']:.0f}); "
        f"(2) kept {counts['kept']} ({published['kept']:.0f}); "
        f"(5) samples {counts['samples']} ({published['samples']:.0f})"
    )
    ctx.show("placed_by", built["matches"].how.value_counts().rename("annotations placed by").to_frame())
    # JSON files that are not Labelme files, and line/point shapes without area (empty: none)
    ctx.show("notes", built["notes"])
    return built


def run(ctx: Context) -> Result:
    """Build the check-dam dataset from its published files, train and score the U-Net on it."""
    P = ctx.params
    out = ctx.begin()
    dataset = out / "dataset"

    # steps 1-6 from the published files
    root = _root(ctx)
    built = _build(ctx, root)
    annotations = gpd.read_file(dataset / "annotations.gpkg")
    ctx.save(checkdam_overview(built["source"].image, built["grid"], annotations), "checkdam_grid.png")
    samples = built["samples"]
    ctx.save(augmentation_copies(dataset, samples), "checkdam_augmentation.png")
    ctx.say(f"source cells in more than one subset: {leaks(samples, group='source') or 'none'}")
    ctx.show("split", checkdam.split_counts(samples))

    # the U-Net, without the loop's own flips: the dataset is augmented by its published recipe
    chips = {
        s: checkdam.load_chips(dataset, samples, s, resolution_m=P["checkdam_resolution_m"])
        for s in ("train", "val", "test")
    }
    q = training.dataset_params(P, checkdam.RGB_BANDS, chip_px=P["checkdam_chip_px"], flip_probability=0.0)
    run = training.train_model(chips["train"], chips["val"], out / "model", q)
    ctx.say(f"stopped ({run['stopped']}); kept epoch {run['best_epoch']}, validation loss {run['best_val_loss']:.4f}")
    ctx.save(training_curves(run["history"], title="check dams, RGB"), "checkdam_training.png")

    # test scores: all test samples, the originals and their copies; both readings of the statistics
    kind = {s.name: "originals" if s.copy_no == 0 else "copies" for s in samples.itertuples()}
    scores = training.score_kept_model(run, chips["train"], chips["test"], q, groups=kind)
    shown = scores[SHOWN].astype(float)
    shown[SHOWN[1:]] *= 100
    ctx.say(
        f"published: mIoU > {params.PUBLISHED['checkdam_miou_min'][0]:.0f} %, "
        f"OA > {params.PUBLISHED['checkdam_oa_min'][0]:.0f} %"
    )
    ctx.show("scores", shown)
    model, _ = load_model(Path(run["best"]).with_name("best_bn.pt"), bands=checkdam.RGB_BANDS)
    ctx.save(predictions(model, chips["test"][:6], title="check-dam test samples"), "checkdam_predictions.png")

    return ctx.finish(
        constants=CONSTANTS,
        extra={
            "counts": built["counts"],
            "annotations_placed_by": built["matches"].how.value_counts().to_dict(),
            "best_epoch": int(run["best_epoch"]),
            "test": scores.astype(float).round(6).reset_index().to_dict("records"),
        },
    )
