"""Stage 05: the U-Net's lake masks post-processed into the lake product (paper section 2.4, Figs. 3 and 4).

Reads stage 04's masks (or any folder of ``<tile>_mask.tif`` given as ``prediction``), stage 01's tile
grid (each tile's core), the reference datasets, and for scoring stage 02's test regions and, on the
simulated world, stage 00's truth. A reference given as ``""`` is the simulated world's file when stage
00 built a world and the profile is not ``paper``, else the real file laid out under ``references/``
(:mod:`lakepaper.prereqs`); ``"none"`` switches it off.

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

from lakepaper.figures.postprocess import fig3, fig4, rule_effects
from lakepaper.figures.postprocess_examples import FigureExamples
from lakepaper.postprocess import evaluate, pipeline
from lakepaper.postprocess.product import by_source
from lakepaper.postprocess.references import REFERENCES, ReferenceSet, resolve_paths
from lakepaper.postprocess.rules import read_edits
from lakepaper.stages.context import Context, Result
from lakepaper.world.files import WorldFiles

#: The method constants this stage uses.
CONSTANTS = (
    "coast_distance_m",
    "area_ratio_threshold",
    "min_lake_area_km2",
    "reservoir_distance_m",
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
    simulated = world is not None and (world / "world.json").exists() and ctx.profile != "paper"
    refs = references(ctx, world if simulated else None)
    grid = a["tile_grid"] or (composite / "tile_grid.gpkg" if (composite / "tile_grid.gpkg").exists() else "")
    edits = read_edits(a["edits"]) if a["edits"] else None
    ctx.begin()
    ctx.keep("simulated", simulated)
    ctx.show("references", pd.DataFrame({"path": {k: str(v) if v else "(off)" for k, v in refs.paths.items()}}))

    r, examples = make_product(ctx, prediction_dir, refs, grid, edits)
    if simulated:
        write_effects_on_truth(ctx, r, WorldFiles(world))
    if (samples / "regions.gpkg").exists():
        scores = evaluate.step_scores_regions(r.steps, r.tiles, samples, split="test")
        ctx.write_csv("test_region_scores.csv", scores)
        ctx.show("test_region_scores", scores)
    level = write_lake_level(ctx, r, WorldFiles(world)) if simulated else None
    ctx.save(fig3(examples.fig3, threshold=P["area_ratio_threshold"], composite_dir=composite), "fig3_river_cases.png")
    ctx.save(fig4(examples.fig4), "fig4_floodplain_mask.png")

    for t in r.tiles:
        ctx.record_input(f"prediction/{t.path.name}", t.path)
    if a["edits"]:
        ctx.record_input("edits", a["edits"])
    return ctx.finish(
        constants=CONSTANTS,
        resolved={
            "prediction": str(prediction_dir),
            "tile_grid": str(grid),
            "references": {k: reference_record(v) for k, v in refs.paths.items()},
        },
        omit=REFERENCES,  # recorded as resolved, under "references"
        extra={
            "lakes": int(len(r.product)),
            "area_km2": round(float(r.product.area_km2.sum()), 4),
            "sources": r.product.source.value_counts().to_dict(),
            "repaired": r.repaired,
            "switched_off": r.skipped,
            "rules": pipeline.rule_summary(r).to_dict("records"),
            "lake_level": None if level is None else records(level.reset_index(names="group")),
        },
    )


def references(ctx: Context, world: Path | None) -> ReferenceSet:
    """The reference datasets: each as given, ``""`` the simulated world's file (``world``: its folder) or,
    without a world, the real file under ``references/`` (``make prereqs PROFILE=paper``)."""
    given = {name: ctx.args[name] for name in REFERENCES}
    if world is None:
        from lakepaper.prereqs import REFERENCES as REAL_FILES
        from lakepaper.prereqs import reference_path, references_dir

        given.update({r.name: str(reference_path(r, references_dir())) for r in REAL_FILES if not given[r.name]})
    return ReferenceSet(resolve_paths(given, world / "references" if world is not None else None))


def make_product(
    ctx: Context, prediction_dir: Path, refs: ReferenceSet, grid, edits
) -> tuple[pipeline.Postprocessed, FigureExamples]:
    """The whole pass and its files; the figures' examples chosen on the way."""
    examples = FigureExamples()
    t0 = time.perf_counter()
    r = pipeline.postprocess(
        prediction_dir,
        ctx.params,
        references=refs,
        tile_grid=pipeline.read_tile_grid(grid),
        edits=edits,
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


def write_effects_on_truth(ctx: Context, r: pipeline.Postprocessed, world: WorldFiles) -> None:
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


def write_lake_level(ctx: Context, r: pipeline.Postprocessed, world: WorldFiles) -> pd.DataFrame:
    """Mean recall of the truth lakes and mean precision of the product's lakes per size group (``lake_level.csv``)."""
    _, _, level = evaluate.lake_level(r.steps["final"], r.tiles, world, ctx.params["size_groups_km2"])
    ctx.write_csv("lake_level.csv", level)
    return ctx.show("lake_level", level)


def reference_record(path: Path | None) -> dict | None:
    """A reference dataset as the manifest records it: its path and size in bytes (a folder: all its files)."""
    if path is None:
        return None
    files = [path] if path.is_file() else sorted(f for f in path.rglob("*") if f.is_file())
    return {"path": str(path), "bytes": sum(f.stat().st_size for f in files)}


def records(frame: pd.DataFrame) -> list[dict]:
    """A table as JSON records, NaN as None."""
    return frame.astype(object).where(frame.notna(), None).to_dict("records")
