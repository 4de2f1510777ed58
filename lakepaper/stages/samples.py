"""Stage 02: sample regions, their labels and the 60/20/20 split (paper section 2.2, Fig. 2).

Reads the sample regions, stage 01's composites and the labels:

* regions: ``regions`` "" takes stage 00's ``regions.gpkg`` (and, on the simulated world, its
  truth); a file (GeoPackage, Shapefile, ..., any CRS) takes your polygons, typed by the column
  ``type_column`` (NR/AR/BR/IL/SL), and stage 00 is not read (:mod:`lakepaper.samples.sources`);
* labels: ``labels`` (a folder of ``<region_id>.tif``, or one mosaic, on the composite's grid), or
  the analyst's threshold table and edit layer (``thresholds``, ``edits``); none given, on the
  simulated world: the simulated analyst writes both into the stage folder first
  (:mod:`lakepaper.samples.analyst`).

Writes the image and label chips, ``regions.gpkg`` with each region's split, ``thresholds.csv`` and
``edits.gpkg`` (simulated analyst), ``label_iou.csv`` (with a truth), the figures ``fig2_samples``
and ``labels_by_type`` and the manifest. The logic is :func:`lakepaper.samples.stage.build_samples`.

With a truth, the edited labels must reach IoU :data:`LABEL_IOU_TARGET` over all regions against it:
the stage stops before its manifest otherwise (:class:`~lakepaper.errors.InputError` naming the
threshold table and edit layer that made them). Without one, nothing is scored and the check is skipped.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from lakepaper import paths
from lakepaper.errors import InputError, ParameterError
from lakepaper.figures.samples import fig2, label_gallery
from lakepaper.samples.split import split_counts
from lakepaper.samples.stage import build_samples, iou_by_type, label_summary
from lakepaper.stages.context import Context, Result
from lakepaper.truth import Truth

#: The method constants this stage uses.
CONSTANTS = ("ndwi_threshold", "split_fractions", "sample_seed", "region_types", "region_size_bins")
#: IoU the edited labels must reach over all regions against the truth (the labels the model learns from).
LABEL_IOU_TARGET = 0.95


def run(ctx: Context) -> Result:
    """Label every region, split, write the training set; score the labels where there is a truth."""
    a, P = ctx.args, ctx.params
    truth = world_regions = None
    if not a["regions"]:  # the simulated world's regions (and truth)
        world_dir = ctx.upstream("00_world", required=False)
        if world_dir is None:
            raise ParameterError("regions", "no simulated world here (00_world has not run): give your regions file")
        truth, world_regions = Truth(world_dir), world_dir / "regions.gpkg"
    composite_dir = ctx.upstream("01_composite")
    for key in ("regions", "labels"):
        if a[key] and Path(a[key]).is_file():
            ctx.record_input(key, a[key])
    out = ctx.begin()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        built = build_samples(
            truth,
            composite_dir,
            out,
            P,
            regions_path=a["regions"] or None,
            world_regions=world_regions,
            type_column=a["type_column"],
            label_rasters=a["labels"] or None,
            thresholds=a["thresholds"] or None,
            edits=a["edits"] or None,
            previous_splits=a["previous_splits"] or None,
            progress=not ctx.quiet,
        )
    for w in caught:
        ctx.say(f"warning: {w.message}")
    regions, iou = built["regions"], built["iou"]
    ctx.say(f"{len(regions)} regions labelled, {len(built['skipped'])} left out")
    ctx.show("regions", regions.drop(columns="geometry").head())

    table = None
    if iou.empty:
        ctx.say("no truth here: the labels are not scored, and the demo's label check is skipped")
        ctx.show("label_iou", label_summary(regions))  # no truth columns
    else:
        table = ctx.show("label_iou", iou_by_type(iou))
        check_labels(ctx, table.loc["all", "edited_iou"])

    ctx.show("split", split_counts(regions, P["split_fractions"]))
    ctx.save(fig2(regions, bins=P["region_size_bins"]), "fig2_samples.png")
    shown = regions.fillna({"threshold": P["ndwi_threshold"]}) if a["labels"] else regions  # raster labels: vs NDWI
    ctx.save(label_gallery(out, shown, iou), "labels_by_type.png")
    if a["interactive"]:
        ctx.keep("chooser", threshold_chooser(ctx, regions.region_id.iloc[0]))

    return ctx.finish(
        constants=CONSTANTS,
        omit=("interactive",),
        extra={
            "regions": int(len(regions)),
            "skipped": built["skipped"].to_dict("records"),
            "label_iou": (
                table.round(6).reset_index(names="region_type").to_dict("records") if table is not None else []
            ),
        },
    )


def check_labels(ctx: Context, overall: float) -> None:
    """Say the edited labels' IoU over all regions; on the demo profile, stop the stage if it misses
    :data:`LABEL_IOU_TARGET` (as stage 03 stops below its IoU target there; smaller worlds are only told)."""
    ctx.say(f"edited labels, IoU over all regions: {overall:.3f} (target >= {LABEL_IOU_TARGET})")
    if not overall >= LABEL_IOU_TARGET and ctx.profile == "demo":
        given = [f for f in (ctx.args["thresholds"], ctx.args["edits"]) if f]
        made_by = given or [ctx.out / "thresholds.csv", ctx.out / "edits.gpkg"]  # the simulated analyst's
        raise InputError(
            " and ".join(map(str, made_by)),
            f"the edited labels reach IoU {overall:.3f} against the truth, below {LABEL_IOU_TARGET}: "
            "they are not close enough to train on (see the label_iou table per region type)",
        )


def threshold_chooser(ctx: Context, region_id: str):
    """The threshold slider of a region (JupyterLab); it saves to ``thresholds``, else
    ``labels/<profile>/thresholds.csv``."""
    from lakepaper.samples.chooser import threshold_chooser as chooser

    table = ctx.args["thresholds"] or str(paths.ROOT / "labels" / ctx.profile / "thresholds.csv")
    return chooser(ctx.out, region_id, table)
