"""Stage 01: one clear-sky Sentinel-2 composite per tile (paper section 2.1), measured against the truth.

Reads stage 00's world (scenes, cloud probabilities, truth). Writes ``tiles/<tile>.tif`` (the
composite bands x1000 and a clear-observation count, :mod:`lakepaper.composite.local`),
``tile_grid.gpkg``, the figures ``composite_<tile>`` of two tiles and the manifest, whose numbers
are the per-tile summary and the comparison with the truth clear-sky mean
(:func:`lakepaper.composite.checks.compare_to_truth`). The recipe's constants are recorded from
the one tuple both backends read, :data:`lakepaper.composite.local.RECIPE_PARAMS`.
"""

from __future__ import annotations

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
    """Composite every tile, draw two, compare all with the truth."""
    P = ctx.params
    world = WorldFiles(ctx.upstream("00_world"))
    out = ctx.begin()

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
        },
    )
