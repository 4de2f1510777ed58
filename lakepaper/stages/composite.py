"""Stage 01: one clear-sky Sentinel-2 composite per tile (paper section 2.1), measured against the truth.

Reads stage 00's world (scenes, cloud probabilities, truth). Writes ``tiles/<tile>.tif`` (the
composite bands x1000 and a clear-observation count, :mod:`lakepaper.composite.local`),
``tile_grid.gpkg``, the figures ``composite_<tile>`` of two tiles and the manifest, whose numbers
are the per-tile summary and the comparison with the truth clear-sky mean
(:func:`lakepaper.composite.checks.compare_to_truth`). The recipe's constants are recorded from
the one tuple both backends read, :data:`lakepaper.composite.local.RECIPE_PARAMS`.

The notebook parameter ``source`` chooses where the imagery comes from
(:mod:`lakepaper.composite.sources`): ``world`` (the default, above), ``stac`` (a catalog or API
``stac`` and an ``area``) or ``cogs`` (a folder of composites ``cogs`` and their ``tile_grid``).
Every source writes the same ``tiles/*.tif`` + ``tile_grid.gpkg``; the manifest records the source
under ``source``. Only the world has a truth to compare with and scenes to draw.
"""

from __future__ import annotations

import pandas as pd

from lakepaper.composite import sources
from lakepaper.composite.checks import compare_world_to_truth
from lakepaper.composite.local import RECIPE_PARAMS
from lakepaper.composite.stage import composite_world
from lakepaper.figures.composite import composite_vs_scenes
from lakepaper.stages.context import Context, Result
from lakepaper.world.files import WorldFiles

#: The method constants this stage uses: the compositing recipe's.
CONSTANTS = RECIPE_PARAMS
#: Tiles drawn beside their cloudiest scenes (the first ones of the world).
FIGURE_TILES = 2


def run(ctx: Context) -> Result:
    """Composite every tile, draw two, compare all with the truth (the world); or composite / import another source."""
    source = sources.check_source(ctx.args.get("source", "world"))
    if source != "world":
        return _run_other(ctx, source)
    P = ctx.params
    world = WorldFiles(ctx.upstream("00_world"))
    out = sources.clear_outputs(ctx.begin())

    summary = composite_world(world, out, P, progress=not ctx.quiet)
    ctx.show("summary", summary)
    drawn = list(summary.tile[:FIGURE_TILES])
    for tile in drawn:
        ctx.save(composite_vs_scenes(world, tile, out / "tiles" / f"{tile}.tif", P), f"composite_{tile}.png")
    ctx.keep("drawn", [f"composite_{tile}" for tile in drawn])

    truth = ctx.show("truth", compare_world_to_truth(world, out, summary.tile, P))
    return ctx.finish(
        constants=CONSTANTS,
        extra={
            "tiles": summary.drop(columns=["seconds"]).to_dict("records"),
            "truth": truth.round(6).to_dict("records"),
            "source": {"source": "world"},
        },
        omit=_not_of(source),
    )


def _not_of(source: str) -> list[str]:
    """The source parameters another source uses (not recorded); the world's parameters stay as before sources
    existed (its ``source`` is in the manifest's ``source`` record)."""
    other = [a for s, names in sources.SOURCE_ARGS.items() if s != source for a in names]
    return [*other, "source"] if source == "world" else other


def _run_other(ctx: Context, source: str) -> Result:
    """``stac`` or ``cogs``: the composites and grid, a summary; no truth, no scene figures."""
    P, a = ctx.params, ctx.args
    out = sources.clear_outputs(ctx.begin())
    if source == "stac":
        summary = sources.composite_stac(a["stac"], a["area"], out, P, progress=not ctx.quiet)
        scl_only = sorted(summary.tile[summary.cloud_mask == "SCL only"])
        record = {"source": "stac", "stac": str(a["stac"]), "area": a["area"], "tiles": list(summary.tile)}
        if scl_only:
            record["cloud_mask"] = {
                "SCL only": scl_only,
                "why": "no s2cloudless asset on the items: cloud = SCL classes 8, 9, 10; "
                "s2cloudless from the L1C assets is a later step (issue 17, item 1)",
            }
            ctx.say(f"cloud mask from SCL only (no s2cloudless asset) for tile(s) {', '.join(scl_only)}")
        constants = CONSTANTS
    else:
        summary = sources.import_cogs(a["cogs"], a["tile_grid"], out, P)
        record = {"source": "cogs", "cogs": str(a["cogs"]), "tile_grid": str(a["tile_grid"])}
        constants = ("composite_bands", "composite_scale")
    ctx.show("summary", summary)
    ctx.keep("drawn", [])
    ctx.show("truth", pd.DataFrame({"truth": [f"none: source {source!r} is not the simulated world"]}))
    return ctx.finish(
        constants=constants,
        extra={"tiles": summary.drop(columns=["seconds"]).to_dict("records"), "source": record},
        omit=_not_of(source),
    )
