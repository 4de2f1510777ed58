"""Stage 05: the U-Net's lake masks post-processed into the lake product (paper section 2.4, Figs. 3 and 4).

Reads stage 04's masks (or any folder of ``<tile>_mask.tif`` given as ``prediction``), stage 01's tile
grid (each tile's core), the reference datasets, and for scoring stage 02's test regions and, on the
simulated world, stage 00's truth. "The simulated world" is the imagery source stage 01 recorded
(:mod:`lakepaper.stages.provenance`; a build that recorded none: stage 00 built a world and the profile is
not ``paper``); this stage copies that record into its manifest as ``imagery_source`` for the stages after
it. A reference given as ``""`` is the simulated world's file on the simulated world, else the real file
laid out under ``references/`` (both from the one registry, :mod:`lakepaper.references`; ``make prereqs
PROFILE=paper``); ``"none"`` switches it off. The manifest records each dataset's path, origin (given,
simulated, real), size, sha256 and column mapping where it differs from the published names.

The paper's two manual reviews are edit layers applied at its places (:mod:`lakepaper.postprocess.review`):
``river_edits`` right after the river mask, ``edits`` at the end; ``""`` takes ``labels/<profile>/river_review.gpkg``
and ``final_review.gpkg`` when the review views have saved them, ``"none"`` none. The manifest records the
files (with their sha256) and their feature counts; the page says which were applied.

Runs :func:`lakepaper.postprocess.pipeline.postprocess` and writes its outputs
(:func:`~lakepaper.postprocess.pipeline.write_outputs`: ``lakes.gpkg``, ``lakes.parquet``,
``river_cases.gpkg``, ``rules.csv``, ``tiles/<tile>_mask.tif``, ``tiles/<tile>_residue.tif``);
``test_region_scores.csv``, every step scored in stage 02's test regions; on the simulated world each
rule against the truth (``rule_pixels.csv``, ``rule_lakes.csv``, ``rule_removed.csv``, Fig.
``rule_effects``) and the product's lake-level recall and precision per size group
(``lake_level.csv``); Figs. 3 and 4. Table 2 (the river mask's change in the test regions) is stage 06's.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from lakepaper import references as registry
from lakepaper.figures.postprocess import fig3, fig4, rule_effects
from lakepaper.figures.postprocess_examples import FigureExamples
from lakepaper.postprocess import evaluate, pipeline, review
from lakepaper.postprocess.product import by_source
from lakepaper.postprocess.references import REFERENCES, ReferenceSet
from lakepaper.stages import provenance
from lakepaper.stages.context import Context, Result
from lakepaper.truth import Truth

#: The method constants this stage uses.
CONSTANTS = (
    "coast_distance_m",
    "area_ratio_threshold",
    "min_lake_area_km2",
    "reservoir_distance_m",
    "reservoir_rule",
    "glakes_completion_min_km2",
    "aridity_threshold",
    "aridity_scale",
    "floodplain_occurrence_pct",
    "size_groups_km2",
)


def run(ctx: Context) -> Result:
    """The rules, the product, each rule against the truth, Figs. 3 and 4."""
    a, P = ctx.args, ctx.params
    world = ctx.upstream("00_world", required=False)
    composite = ctx.upstream("01_composite", required=False) or ctx.stage_dir("01_composite")
    samples = ctx.upstream("02_samples", required=False) or ctx.stage_dir("02_samples")
    predicted = ctx.upstream("04_predict", required=not a["prediction"])
    prediction_dir = Path(a["prediction"]) if a["prediction"] else predicted / "tiles"
    source = provenance.imagery_source(composite)  # stage 01's record; None: not recorded (an older build)
    simulated = provenance.has_truth(source, world, ctx.profile)
    resolved = resolve_references(ctx, world if simulated else None)
    refs = ReferenceSet({n: r.path for n, r in resolved.items()}, columns={n: r.columns for n, r in resolved.items()})
    grid = a["tile_grid"] or (composite / "tile_grid.gpkg" if (composite / "tile_grid.gpkg").exists() else "")
    layers = {name: review.resolve(name, a[r.param], ctx.profile) for name, r in review.REVIEWS.items()}
    edits = {name: review.read(name, path) for name, path in layers.items()}
    ctx.begin()
    ctx.keep("simulated", simulated)
    ctx.say(f"imagery source: {provenance.kind(source) or 'not recorded'}; truth {'used' if simulated else 'none'}")
    ctx.show(
        "references",
        pd.DataFrame(
            {
                "path": {k: str(r.path) if r.path else "(off)" for k, r in resolved.items()},
                "origin": {k: r.origin for k, r in resolved.items()},
                "columns": {k: registry.overridden(r.columns) or "" for k, r in resolved.items()},
            }
        ),
    )

    ctx.show("reviews", review_table(layers, edits))
    r, examples = make_product(ctx, prediction_dir, refs, grid, edits)
    if simulated:
        write_effects_on_truth(ctx, r, Truth(world))
    if (samples / "regions.gpkg").exists():
        scores = evaluate.step_scores_regions(r.steps, r.tiles, samples, split="test")
        ctx.write_csv("test_region_scores.csv", scores)
        ctx.show("test_region_scores", scores)
    level = write_lake_level(ctx, r, Truth(world)) if simulated else None
    ctx.save(fig3(examples.fig3, threshold=P["area_ratio_threshold"], composite_dir=composite), "fig3_river_cases.png")
    ctx.save(fig4(examples.fig4), "fig4_floodplain_mask.png")

    for t in r.tiles:
        ctx.record_input(f"prediction/{t.path.name}", t.path)
    for name, path in layers.items():
        if path is not None:
            ctx.record_input(review.REVIEWS[name].param, path)
    return ctx.finish(
        constants=CONSTANTS,
        resolved={
            "prediction": str(prediction_dir),
            "tile_grid": str(grid),
            "references": {k: provenance.reference_record(r) for k, r in resolved.items()},
            **{review.REVIEWS[k].param: str(v) if v is not None else "" for k, v in layers.items()},
        },
        omit=REFERENCES,  # recorded as resolved, under "references"
        extra={
            provenance.IMAGERY_KEY: source,
            "lakes": int(len(r.product)),
            "area_km2": round(float(r.product.area_km2.sum()), 4),
            "sources": r.product.source.value_counts().to_dict(),
            "repaired": r.repaired,
            "reviews": {k: 0 if e is None else len(e) for k, e in edits.items()},
            "switched_off": r.skipped,
            "rules": pipeline.rule_summary(r).to_dict("records"),
            "lake_level": None if level is None else records(level.reset_index(names="group")),
        },
    )


def review_table(layers: dict, edits: dict) -> pd.DataFrame:
    """One row per manual review: where the pass applies it, its layer, and its features per action."""
    rows = []
    for name, r in review.REVIEWS.items():
        e = edits[name]
        counts = e["action"].value_counts() if e is not None else pd.Series(dtype=int)
        rows.append(
            {
                "review": name,
                "applied": r.title,
                "layer": str(layers[name]) if layers[name] is not None else "(none)",
                **{a: int(counts.get(a, 0)) for a in r.actions},
            }
        )
    table = pd.DataFrame(rows).set_index("review")
    actions = [c for c in table.columns if c not in ("applied", "layer")]
    return table.fillna({a: 0 for a in actions}).astype({a: int for a in actions})


def resolve_references(ctx: Context, world: Path | None) -> dict[str, registry.Resolved]:
    """Each reference dataset of the one registry (:mod:`lakepaper.references`) as this run uses it: as
    given, ``""`` the simulated world's file (``world``: its folder) or, without a world, the real file
    under ``references/`` (``make prereqs PROFILE=paper``); with its column mapping."""
    folder = world / "references" if world is not None else None
    columns = registry.column_overrides(ctx.args["reference_columns"], REFERENCES)
    return {
        name: registry.resolve(name, ctx.args[name], folder, real=True, columns=columns.get(name))
        for name in REFERENCES
    }


def references(ctx: Context, world: Path | None) -> ReferenceSet:
    """The :class:`ReferenceSet` of :func:`resolve_references`."""
    resolved = resolve_references(ctx, world)
    return ReferenceSet({n: r.path for n, r in resolved.items()}, columns={n: r.columns for n, r in resolved.items()})


def make_product(
    ctx: Context, prediction_dir: Path, refs: ReferenceSet, grid, edits: dict
) -> tuple[pipeline.Postprocessed, FigureExamples]:
    """The whole pass and its files; the figures' examples chosen on the way. ``edits``: the review layers
    by review (``river``, ``final``; None: none)."""
    examples = FigureExamples()
    t0 = time.perf_counter()
    r = pipeline.postprocess(
        prediction_dir,
        ctx.params,
        references=refs,
        tile_grid=pipeline.read_tile_grid(grid),
        edits=edits["final"],
        river_edits=edits["river"],
        connectivity=ctx.args["connectivity"],
        progress=not ctx.quiet,
        observer=examples,
    )
    pipeline.write_outputs(r, ctx.out)
    wall = time.perf_counter() - t0
    n_in = int(r.counts.loc[r.counts.rule == "vectorise", "polygons"].sum())
    ctx.say(
        f"{len(r.tiles)} tiles, {n_in} predicted polygons -> {len(r.product)} lakes "
        f"({r.product.area_km2.sum():.2f} km2) in {wall:.1f} s"
    )
    ctx.say(f"switched off: {', '.join(r.skipped) or 'nothing'} | geometries repaired: {r.repaired}")
    ctx.say(f"tile seams joined: { {k: v['unions'] for k, v in r.seams.items()} }")
    ctx.show("sources", by_source(r.product))
    rules = pipeline.rule_summary(r)
    ctx.show("rules", rules.pivot_table(index="rule", columns="counter", values="value", sort=False).T)
    return r, examples


def write_effects_on_truth(ctx: Context, r: pipeline.Postprocessed, world: Truth) -> None:
    """Each rule against the simulated world's truth: ``rule_pixels.csv``, ``rule_lakes.csv``,
    ``rule_removed.csv`` and the figure ``rule_effects``."""
    pixels, lakes, removed = evaluate.effects_on_truth(
        r.steps,
        r.removed,
        r.tiles,
        world,
        min_km2=ctx.params["min_lake_area_km2"],
        aridity_threshold=ctx.params["aridity_threshold"],
    )
    for name, table in (("rule_pixels", pixels), ("rule_lakes", lakes), ("rule_removed", removed)):
        ctx.write_csv(f"{name}.csv", table)
        ctx.show(name, table)
    ctx.save(rule_effects(pixels), "rule_effects.png")


def write_lake_level(ctx: Context, r: pipeline.Postprocessed, world: Truth) -> pd.DataFrame:
    """Mean recall of the truth lakes and mean precision of the product's lakes per size group (``lake_level.csv``)."""
    _, _, level = evaluate.lake_level(r.steps["final"], r.tiles, world, ctx.params["size_groups_km2"])
    ctx.write_csv("lake_level.csv", level)
    return ctx.show("lake_level", level)


def records(frame: pd.DataFrame) -> list[dict]:
    """A table as JSON records, NaN as None."""
    return frame.astype(object).where(frame.notna(), None).to_dict("records")
