"""Stage 01: one clear-sky Sentinel-2 composite per tile (paper section 2.1), measured against the truth.

The notebook parameter ``source`` chooses where the imagery comes from
(:mod:`lakepaper.composite.sources`): ``world`` (the default: the simulated world's own static STAC
catalog, ``00_world/stac``), ``stac`` (any catalog or API ``stac`` and an ``area``) or ``cogs`` (a
folder of composites ``cogs`` and their ``tile_grid``). ``world`` and ``stac`` run one code path:
find the items, composite them with the local backend's recipe and kernel
(:func:`lakepaper.composite.sources.composite_stac`), draw the first two tiles beside their
cloudiest scenes. Every source writes the same ``tiles/*.tif`` + ``tile_grid.gpkg``; the manifest
records the source under ``source``. Where the source has a truth (the world's, ``00_world``), the
composites are compared with the truth clear-sky mean (:mod:`lakepaper.composite.checks`). The
recipe's constants are recorded from the one tuple both backends read,
:data:`lakepaper.composite.local.RECIPE_PARAMS`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lakepaper.composite import sources
from lakepaper.composite.checks import compare_tiles_to_truth
from lakepaper.composite.local import RECIPE_PARAMS
from lakepaper.figures.composite import composite_vs_scenes
from lakepaper.stages.context import Context, Result
from lakepaper.truth import Truth

#: The method constants this stage uses: the compositing recipe's.
CONSTANTS = (*RECIPE_PARAMS, *sources.LOCAL_PARAMS)
#: Where the tiles run (stage 04's parameters, as there): they change no output, so are not recorded.
WHERE = ("scheduler", "n_workers")
#: Tiles drawn beside their cloudiest scenes (the first ones of the world).
FIGURE_TILES = 2


def run(ctx: Context) -> Result:
    """Composite every tile (the world's catalog or another STAC source), draw two, compare with the truth if any."""
    source = sources.check_source(ctx.args.get("source", "world"))
    if source == "cogs":
        return _run_cogs(ctx)
    if source == "gee":
        return _run_gee(ctx)
    P, a = ctx.params, ctx.args
    if source == "world":
        world = ctx.upstream("00_world")
        stac, area, truth = world / "stac", sources.catalog_tiles(world / "stac"), Truth(world)
        record = {"source": "world", "stac": "00_world/stac"}
    else:
        sources.check_stac_args(a["stac"], a["area"])
        stac, area, truth = a["stac"], a["area"], None
        record = {"source": "stac", "stac": str(a["stac"]), "area": a["area"]}
    out = sources.clear_outputs(ctx.begin())

    items = sources.find_tiles(str(stac), area, P)
    summary = sources.composite_stac(
        str(stac),
        area,
        out,
        P,
        progress=not ctx.quiet,
        source=source,
        tiles=items,
        cloud=a.get("cloud_probability") or "auto",
        scheduler=a.get("scheduler") or None,
        n_workers=a.get("n_workers") or None,
    )
    ctx.show("summary", summary)
    drawn = list(summary.tile[:FIGURE_TILES])
    for tile in drawn:
        figure = composite_vs_scenes(tile, items[tile], out / "tiles" / f"{tile}.tif", P)
        ctx.save(figure, f"composite_{tile}.png")
    ctx.keep("drawn", [f"composite_{tile}" for tile in drawn])
    extra = {"tiles": summary.drop(columns=["seconds"]).to_dict("records"), "source": record}
    if source == "stac":
        record["tiles"] = list(summary.tile)
        record["cloud_mask"] = {k: sorted(g.tile) for k, g in summary.groupby("cloud_mask")}
        for kind, tiles in record["cloud_mask"].items():
            ctx.say(f"cloud probability: {kind} for tile(s) {', '.join(tiles)}")
    if truth is not None:
        table = ctx.show("truth", compare_tiles_to_truth(truth, out, items, P))
        extra["truth"] = table.round(6).to_dict("records")
    else:
        ctx.show("truth", pd.DataFrame({"truth": [f"none: source {source!r} is not the simulated world"]}))
    if source == "world":
        extra["tiles"] = summary.drop(columns=["seconds", "cloud_mask"]).to_dict("records")
    return ctx.finish(constants=CONSTANTS, extra=extra, omit=[*_not_of(source), *WHERE])


def _not_of(source: str) -> list[str]:
    """The source parameters another source uses (not recorded); the world's parameters stay as before sources
    existed (its ``source`` is in the manifest's ``source`` record)."""
    own = set(sources.SOURCE_ARGS[source])
    other = sorted({a for names in sources.SOURCE_ARGS.values() for a in names} - own)
    return [*other, "source"] if source == "world" else other


def _run_gee(ctx: Context) -> Result:
    """``gee``: the paper's recipe run by Earth Engine over the land tiles of ``area``, exported, downloaded and
    checked (:func:`lakepaper.composite.exports.composite_gee`); resumes from the stage's export ledger."""
    from lakepaper.composite.exports import composite_gee

    P, a = ctx.params, ctx.args
    out = ctx.begin()
    sources.clear_outputs(out, ledger=Path(a["gee_ledger"]) if a["gee_ledger"] else out / sources.GEE_LEDGER)
    summary = composite_gee(
        a["area"] or None,
        out,
        P,
        ledger=a["gee_ledger"] or None,
        destination=a["gee_destination"],
        bucket=a["gee_bucket"] or None,
        project=a["gee_project"] or None,
        max_concurrent=a["gee_max_concurrent"],
        max_attempts=a["gee_max_attempts"],
        land=a["land_mask"] or None,
        progress=not ctx.quiet,
    )
    ctx.show("summary", summary)
    ctx.keep("drawn", [])
    ctx.show("truth", pd.DataFrame({"truth": ["none: source 'gee' is not the simulated world"]}))
    record = {"source": "gee", "area": a["area"], "tiles": list(summary.tile), "destination": a["gee_destination"]}
    return ctx.finish(
        constants=RECIPE_PARAMS,
        extra={"tiles": summary.to_dict("records"), "source": record},
        omit=[*_not_of("gee"), *WHERE, "gee_ledger", "gee_max_concurrent", "gee_max_attempts"],
    )


def _run_cogs(ctx: Context) -> Result:
    """``cogs``: the composites checked and rewritten into the contract, and the grid; no truth, no scene figures."""
    P, a = ctx.params, ctx.args
    out = sources.clear_outputs(ctx.begin())
    summary = sources.import_cogs(a["cogs"], a["tile_grid"], out, P)
    ctx.show("summary", summary)
    ctx.keep("drawn", [])
    ctx.show("truth", pd.DataFrame({"truth": ["none: source 'cogs' is not the simulated world"]}))
    return ctx.finish(
        constants=("composite_bands", "composite_scale"),
        extra={
            "tiles": summary.drop(columns=["seconds"]).to_dict("records"),
            "source": {"source": "cogs", "cogs": str(a["cogs"]), "tile_grid": str(a["tile_grid"])},
        },
        omit=[*_not_of("cogs"), *WHERE],
    )
