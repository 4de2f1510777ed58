"""Stage 06: accuracy on the test regions (paper section 3.1: Table 1, Table 2, Fig. 5).

Reads stage 02's test regions and label chips (or any ``samples_dir`` in that layout), stage 03's
Table 1 on isolated test patches (``test_metrics.csv``), stage 04's per-tile masks (or any
``mask_dir``: 1 lake, 0 not, 255 no data) and, when stage 05 has finished, its river-mask residue
(``tiles/<tile>_residue.tif``) and post-processed product (``tiles/<tile>_mask.tif``); ``residue``
may also be a vector file of removed polygons.

Table 1 has the paper's definition: the model on isolated patches of the test regions (each patch
predicted on its own, no context beyond it), taken sequentially, pixels pooled per region type and over
all (stage 03 computes it). Beside it, the same regions cut from the stitched prediction of stage 04
(every pixel predicted with at least ``edge_px`` of context): what seamless inference adds.

Writes ``table1_patch_accuracy.csv`` (Table 1, both definitions: :func:`lakepaper.metrics.table1_beside_stitched`),
``table1_stitched.csv`` and ``patches.csv`` (the stitched cut in full, fractions),
``table2_river_mask.csv`` (Table 2 in %, when there is a residue: only this stage computes Table 2),
``product_patch_accuracy.csv`` (the product scored like Table 1), ``lakes_labelled.csv``,
``lakes_predicted.csv``, ``fig5a_fits.csv``, ``fig5b_size_groups.csv``, and the figures
``table1_patch_accuracy.png`` and Fig. 5. The manifest carries the tables (``table1``: the paper's
definition; ``table1_stitched``: the stitched cut) and
``lake_level_recall_precision_min_pct``: the lowest mean recall or precision of the size groups
above 0.005 km2, in % (the paper's "> 86 %"), and ``lake_level_recall_pct``: the mean recall of the groups
the paper quotes ([0.1-1] and [1-20] km2: 95.5 % and 93.1 %), for the paper page to read.

Fig. 5b has the paper's own size groups (``lake_size_groups_km2``: < 0.001, 0.001-0.005, 0.005-0.01,
0.01-0.1, 0.1-1, 1-20, >= 20 km2), not Fig. 7's; its lakes are stage 04's prediction, before stage 05's
minimum-area filter, so the groups below 0.005 km2 that justify the filter are scored too.

Per optical water type (where a truth has them, e.g. the simulated world's
``truth/<tile>/water_type.tif``): ``NDWI > 0`` and ``MNDWI > 0`` of stage 01's composites and the
model (stage 04's masks) against the truth's lakes, on every pixel outside stage 02's training and
validation regions (:func:`lakepaper.regions.water_type_counts`): ``water_types.csv`` (counts and
scores per scope, method and type), table ``water_types`` (IoU, %) and manifest key ``water_types``.
The table scores each method twice (:data:`lakepaper.water_types.SCOPES`): on every water body of a
type, where rivers count false (columns ``NDWI > 0``, ``MNDWI > 0``, ``model``), and on the type's
lakes alone (``..., lakes``): highly turbid water is mostly river, so the first mixes "sees the
water" with "tells lakes from rivers" (stage 05's river mask), the second is the first question
alone. A model that only learned "NDWI > 0" fails on highly turbid water, as the index does. ``truth``: a truth
folder (:mod:`lakepaper.truth`), "" the simulated world's when stage 01's imagery came from it,
"none" to skip; ``composite_dir``: "" stage 01's folder. Without a truth or its water types the table
is skipped with a note.

The science is :mod:`lakepaper.metrics` (patches, lakes, Table 2) on :mod:`lakepaper.scoring`'s
counts and scores; :mod:`lakepaper.regions` reads the files; :mod:`lakepaper.water_types` scores the
water types.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from lakepaper import metrics, params, regions
from lakepaper import water_types as wt
from lakepaper.errors import ParameterError
from lakepaper.figures.accuracy import fig5, table1_bars
from lakepaper.scoring import SCORES, as_percent
from lakepaper.stages import provenance
from lakepaper.stages.context import Context, Result, require_file
from lakepaper.truth import Truth

#: The method constants this stage uses.
CONSTANTS = ("patch_size", "region_types", "lake_size_groups_km2", "min_lake_area_km2")

#: Fig. 5b's groups whose mean recall the paper states (lo, hi km2, key of params.PUBLISHED).
PUBLISHED_GROUPS = ((0.1, 1.0, "lake_level_recall_0_1_1km2"), (1.0, 20.0, "lake_level_recall_1_20km2"))

_PUB = {k: v[0] for k, v in params.PUBLISHED.items()}


def _inputs(ctx: Context) -> tuple[Path, Path, str, str]:
    """samples_dir, mask_dir, residue, product_masks: given, or the earlier stages' outputs."""
    a = ctx.args
    samples_dir = Path(a["samples_dir"]) if a["samples_dir"] else ctx.upstream("02_samples")
    mask_dir = Path(a["mask_dir"]) if a["mask_dir"] else ctx.upstream("04_predict") / "tiles"
    require_file(samples_dir, "samples_dir")
    require_file(mask_dir, "mask_dir")
    residue, product_masks = a["residue"], a["product_masks"]
    if not (residue and product_masks):  # a default: stage 05's tiles, if it has finished
        post = ctx.upstream("05_postprocess", required=False)
        tiles = post / "tiles" if post is not None else None
        has = {k: tiles is not None and any(tiles.glob(f"*_{k}.tif")) for k in ("residue", "mask")}
        residue = residue or (str(tiles) if has["residue"] else "none")
        product_masks = product_masks or (str(tiles) if has["mask"] else "none")
    return samples_dir, mask_dir, residue, product_masks


def _beside_paper(table1: pd.DataFrame) -> pd.DataFrame:
    """Table 1 (%, both definitions) beside the numbers the paper gives (its full Table 1 is not in the text)."""
    paper = pd.DataFrame(np.nan, index=table1.index, columns=list(SCORES))
    paper.loc["all", "iou"] = _PUB["patch_iou"]
    paper.loc["AR", ["precision", "iou"]] = _PUB["ar_precision"], _PUB["ar_iou"]
    paper.loc["SL", ["recall", "iou"]] = _PUB["sl_recall"], _PUB["sl_iou"]
    stitched = table1[[metrics.STITCHED + k for k in SCORES]].set_axis(list(SCORES), axis=1)
    return pd.concat(
        {
            "isolated patches": as_percent(table1)[list(SCORES)],
            "stitched": as_percent(stitched),
            "paper": paper,
        },
        axis=1,
    )


def _isolated(ctx: Context, samples_dir: Path) -> pd.DataFrame | None:
    """Stage 03's Table 1 on isolated test patches, or None (stage 03 not run, or other samples given)."""
    if ctx.args["samples_dir"] and Path(samples_dir).resolve() != ctx.stage_dir("02_samples").resolve():
        ctx.say(f"samples_dir {samples_dir} is not stage 02's: stage 03's isolated-patch scores are left out")
        return None
    train = ctx.upstream("03_train", required=False)
    if train is None:
        ctx.say("stage 03 has not run: Table 1's isolated-patch columns are empty")
        return None
    return pd.read_csv(require_file(train / "test_metrics.csv", "03_train"), index_col="region_type")


def _type_inputs(ctx: Context) -> tuple[Truth | None, Path | None, str]:
    """(the truth, stage 01's folder, a note): the truth is None, and the note says why, when there is
    no truth with water types to score against (real imagery, ``truth`` "none", a truth made before
    water types) or no composite to compute the indices from."""
    a = ctx.args
    if a["truth"] == "none":
        return None, None, "truth 'none': the per-type table is skipped"
    composite = Path(a["composite_dir"]) if a["composite_dir"] else ctx.upstream("01_composite", required=False)
    if composite is None or not (composite / "tiles").is_dir():
        return None, None, "no composite (stage 01 not run, or composite_dir has no tiles/): per-type table skipped"
    root = Path(a["truth"]) if a["truth"] else ctx.upstream("00_world", required=False)
    source = provenance.imagery_source(composite)
    if not a["truth"] and not provenance.has_truth(source, root, ctx.profile):
        note = f"imagery source {provenance.kind(source) or 'not recorded'!r} has no truth: no per-type table"
        return None, None, note + " (set truth to a truth folder with water_type.tif)"
    truth = Truth(require_file(root, "truth"))
    if not wt.has_water_types(truth):
        note = f"the truth {root} has no optical water types (truth/<tile>/water_type.tif): per-type table skipped"
        return None, None, note
    return truth, composite, ""


def _water_types(ctx: Context, samples_dir: Path, mask_dir: Path) -> tuple[pd.DataFrame | None, dict[str, str]]:
    """The per-type table (IoU %, with lake pixels) of the two indices and the model on held-out pixels,
    written as ``water_types.csv`` (counts and scores); None when there is nothing to score against."""
    truth, composite, note = _type_inputs(ctx)
    if truth is None:
        ctx.say(note)
        return None, {"truth": ctx.args["truth"] or "none"}
    counts = regions.water_type_counts(truth, composite, samples_dir, mask_dir)
    scores = wt.type_scores(counts)
    ctx.write_csv("water_types.csv", scores, index=False)
    tables = {scope: wt.type_table(counts, scope=scope) for scope in wt.SCOPES}
    methods = [m for m in wt.METHODS if m in tables["water"]]
    for scope, t in tables.items():
        if t.empty:
            continue
        t[methods] = t[methods] * 100
        best = t[["NDWI > 0", "MNDWI > 0"]].max(axis=1)
        types = t.index[t.index != "all"]
        beaten = (t.loc[types, "model"] > best[types]).sum()
        where = "every water body of a type" if scope == "water" else "the lakes of a type alone (rivers left out)"
        ctx.say(
            f"per optical water type, {counts.tile.nunique()} tiles, pixels outside the training and validation "
            f"regions, {where}: the model beats the better of NDWI > 0 and MNDWI > 0 on {beaten} of {len(types)} types"
        )
        if "very_turbid" in t.index:
            v = t.loc["very_turbid"]
            ctx.say(
                f"  very turbid water ({int(v.lake_px)} lake px): IoU NDWI > 0 {v['NDWI > 0']:.1f} %, "
                f"MNDWI > 0 {v['MNDWI > 0']:.1f} %, model {v['model']:.1f} %"
            )
    # one table: every water body's columns, then the lakes-alone columns (same lake pixels, other water left out)
    lakes = tables["lakes"].reindex(columns=methods).rename(columns=lambda m: f"{m}, lakes")
    table = tables["water"].join(lakes)
    ctx.show("water_types", table)
    return table, {"truth": str(truth.root), "composite_dir": str(composite)}


def _records(table: pd.DataFrame | None, index: str) -> list[dict] | None:
    return None if table is None else table.round(6).reset_index(names=index).to_dict("records")


def run(ctx: Context) -> Result:
    """Table 1, Table 2, the product's Table 1 and Fig. 5 on the test regions."""
    a = ctx.args
    samples_dir, mask_dir, residue, product_masks = _inputs(ctx)
    size = a["patch_size"] or params.resolve(ctx.profile)["patch_size"]  # 0 = the profile's
    P = ctx.override(patch_size=size)
    ctx.begin()
    types = P["region_types"]

    test = regions.read_test_regions(samples_dir, mask_dir)
    pixels = sum(r.label.size for r in test)
    ctx.say(
        f"{len(test)} test regions ({pixels / 1e6:.2f} Mpixel) from {samples_dir}; "
        f"the paper: {_PUB['n_test_regions']:.0f} regions"
    )
    per_type = pd.Series([r.region_type for r in test]).value_counts().reindex(types, fill_value=0)
    ctx.show("regions", per_type.to_frame("regions").T)

    # Table 1: patch level, the paper's isolated patches (stage 03) beside the stitched prediction cut alike
    patches, stitched = metrics.patch_table(test, size, partial=a["partial"], order=types)
    isolated = _isolated(ctx, samples_dir)
    table1 = metrics.table1_beside_stitched(isolated, stitched, order=types)
    ctx.write_csv("table1_patch_accuracy.csv", table1, index_label="region_type")
    ctx.write_csv("table1_stitched.csv", stitched, index_label="region_type")
    ctx.write_csv("patches.csv", patches, index=False)
    ctx.say(
        f"{len(patches)} patches of {size} x {size} (partial strips: {a['partial']}); "
        f"the paper: {_PUB['n_test_patches']:.0f} of 576 x 576"
    )
    ctx.say(
        f"IoU over all test patches: isolated {100 * table1.loc['all', 'iou']:.2f} % (the paper's definition), "
        f"stitched {100 * table1.loc['all', metrics.STITCHED + 'iou']:.2f} %"
    )
    ctx.show("table1", as_percent(table1))
    ctx.show("table1_stitched", as_percent(stitched)[["regions", "patches", "tp", "fp", "fn", "nodata", *SCORES]])
    ctx.show("table1_vs_paper", _beside_paper(table1))
    ctx.say(
        f"paper: overall IoU {_PUB['patch_iou']}, the other overall scores above "
        f"{_PUB['patch_recall_precision_f1_min']} %"
    )
    ctx.save(table1_bars(table1, {"IoU": _PUB["patch_iou"]}), "table1_patch_accuracy.png")

    # Table 2: the river mask
    residues, table2 = {}, None
    if residue != "none":
        residues = regions.read_residue(residue, samples_dir, test)
        change, removed_px = metrics.river_mask_change(test, residues)
        table2 = as_percent(change)
        ctx.write_csv("table2_river_mask.csv", table2, index_label="row")
        ctx.say(
            f"river mask ({residue}): {removed_px} predicted lake pixels removed in the test regions; the paper: "
            f"precision {_PUB['river_mask_precision_gain']:+} points, recall {_PUB['river_mask_recall_change']:+}"
        )
        ctx.show("table2", table2)
    else:
        ctx.say("no river-mask residue (stage 05 not run, or residue = 'none'): Table 2 skipped")

    # the post-processed product, scored like Table 1
    product = None
    if product_masks != "none":
        # read as the prediction is: pixels the label never observed are no data, left out of every score
        final = regions.read_test_regions(samples_dir, product_masks)
        _, product = metrics.patch_table(final, size, partial=a["partial"], order=types)
        ctx.write_csv("product_patch_accuracy.csv", product, index_label="region_type")
        ctx.show(
            "product",
            pd.concat(
                {
                    "prediction (stage 04)": as_percent(stitched)[list(SCORES)],
                    "product (stage 05)": as_percent(product)[list(SCORES)],
                },
                axis=1,
            ),
        )
    else:
        ctx.say("no product masks (stage 05 not run, or product_masks = 'none')")

    # Fig. 5: lake level
    labelled, predicted = metrics.lake_tables(test, connectivity=a["connectivity"], residues=residues or None)
    summary = metrics.lake_level_summary(labelled, predicted, P["lake_size_groups_km2"])
    fits = metrics.lake_level_fits(labelled, predicted)
    ctx.write_csv("lakes_labelled.csv", labelled, index=False)
    ctx.write_csv("lakes_predicted.csv", predicted, index=False)
    ctx.write_csv("fig5a_fits.csv", fits)
    ctx.write_csv("fig5b_size_groups.csv", summary)
    ctx.say(
        f"{len(labelled)} labelled lakes, {len(predicted)} predicted lakes "
        f"({int(predicted.river_residue.sum())} river residue)"
    )
    ctx.say(f"paper: R2 {_PUB['lake_level_r2']}, slopes > {_PUB['lake_level_slope_min']}")
    ctx.show("fits", fits)
    min_km2 = P["min_lake_area_km2"]
    low = metrics.lowest_lake_level_score(summary, min_km2) * 100
    ctx.say(
        f"lowest mean recall or precision from {min_km2:g} km2 up: {low:.1f} % "
        f"(paper: > {_PUB['lake_level_recall_precision_min']:g} %)"
    )
    quoted = {}
    for lo, hi, key in PUBLISHED_GROUPS:
        try:
            v = 100 * metrics.group_score(summary, lo, hi)
        except ParameterError:  # other edges given: no such group
            v = float("nan")
        quoted[f"{lo:g}-{hi:g}"] = None if np.isnan(v) else round(v, 4)
        shown = "no labelled lake of that size" if np.isnan(v) else f"{v:.1f} %"
        ctx.say(f"mean recall of labelled lakes of {lo:g}-{hi:g} km2: {shown} (paper: {_PUB[key]:g} %)")
    ctx.keep("lake_level_recall_precision_min_pct", low)
    ctx.keep("lake_level_recall_pct", quoted)
    ctx.show(
        "size_groups", as_percent(summary.rename(columns={"mean_recall": "recall", "mean_precision": "precision"}))
    )
    ctx.save(
        fig5(
            labelled,
            predicted,
            summary,
            published_min=_PUB["lake_level_recall_precision_min"],
            pixel_km2=test[0].pixel_km2,
            published_recall={f"{lo:g}-{hi:g}": _PUB[key] for lo, hi, key in PUBLISHED_GROUPS},
            min_km2=min_km2,
        ),
        "fig5_lake_level.png",
        formats=("png", "pdf"),
    )

    # per optical water type: where the water indices fail, and whether the model does
    water_types, type_inputs = _water_types(ctx, samples_dir, mask_dir)

    return ctx.finish(
        constants=CONSTANTS,
        resolved={
            "samples_dir": str(samples_dir),
            "mask_dir": str(mask_dir),
            "residue": residue,
            "product_masks": product_masks,
            **type_inputs,
        },
        extra={
            "table1": _records(
                table1[["regions", "patches", *SCORES]] if isolated is not None else None, "region_type"
            ),
            "table1_stitched": _records(stitched, "region_type"),
            "table1_both": _records(table1, "region_type"),
            "table2": _records(table2, "row"),
            "product": _records(product, "region_type"),
            "fits": fits.round(6).reset_index().to_dict("records"),
            "size_groups": summary.round(6).reset_index().to_dict("records"),
            "lake_level_recall_precision_min_pct": None if np.isnan(low) else round(low, 4),
            "lake_level_recall_pct": quoted,
            "water_types": wt.table_records(water_types),
        },
    )
