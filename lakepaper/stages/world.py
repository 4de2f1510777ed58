"""Stage 00: the simulated Sentinel-2 world, and the checks that it is realistic enough to stand in.

Reads nothing. Writes the world folder laid out as :mod:`lakepaper.world.generate` describes: its
imagery only as a static STAC catalog in Earth Search's layout (``stac/``,
:mod:`lakepaper.world.stac`), which stage 01 reads as it reads any catalog; its truth
(:mod:`lakepaper.truth`: rasters, lakes, per-scene flags, ``world.json``), references in their
published schemas and sample regions. Figures ``world_tiles``, ``world_biomes``,
``world_scenes_<tile>`` (two tiles), ``world_lake_sizes``, ``world_cloud_cover`` and
``world_cloud_false_positives``, and the manifest, whose numbers are the world's checks
(:mod:`lakepaper.world.checks`): the lake-size law fitted back (Cael & Seekell 2016), the real
s2cloudless classifier against the simulated clouds, NDWI alone against the truth per region type,
and ``water_type_index_iou``: NDWI > 0 and MNDWI > 0 against the lakes per optical water type
(:func:`lakepaper.world.checks.index_iou_by_type`; table ``water_types``).

The notebook's ``tiles`` is the constant ``world_tiles`` (the command-line name stays ``tiles``);
``workers`` changes no byte of the world and is not recorded.
"""

from __future__ import annotations

import time

import pandas as pd

from lakepaper.errors import ParameterError
from lakepaper.figures import world as wfig
from lakepaper.stages import REAL_DATA_PROFILES
from lakepaper.stages.context import Context, Result
from lakepaper.water_types import has_water_types, table_records
from lakepaper.world import checks
from lakepaper.world.files import WorldFiles
from lakepaper.world.generate import generate_world
from lakepaper.world.sites import WorldConfig

#: The method constants this stage uses (``n_sample_regions``: how many sample regions it draws).
CONSTANTS = ("world_seed", "world_tile_px", "world_scenes_per_tile", "world_tiles", "n_sample_regions")
#: Tiles whose acquisitions are drawn (the first ones of the world).
QUICKLOOK_TILES = 2
#: The columns of the tile table a reader sees.
TILE_COLUMNS = ["tile", "biome", "region_type", "place", "lat", "lon", "epsg", "n_lakes", "lake_area_km2", "aridity"]


def run(ctx: Context) -> Result:
    """Generate the world, draw it, check it; the manifest holds the checks' numbers."""
    if ctx.profile in REAL_DATA_PROFILES:
        raise ParameterError(
            "profile", f"profile {ctx.profile} runs on real data: stage 00 simulates a world for demo and tiny only"
        )
    P = ctx.override(world_tiles=ctx.args["tiles"])
    cfg = WorldConfig.from_params(P)
    out = ctx.begin()
    ctx.keep("config", cfg)

    summary = generate_world(
        cfg,
        out,
        workers=ctx.args["workers"],
        progress=not ctx.quiet,
        manifest=False,
        parameters={"n_sample_regions": P["n_sample_regions"]},
    )
    ctx.keep("summary", summary)
    world = WorldFiles(out)
    ctx.save(wfig.tile_map(world), "world_tiles.png")
    ctx.show("tiles", world.tiles()[TILE_COLUMNS])
    ctx.save(wfig.biome_gallery(world), "world_biomes.png")
    quicklooks = list(world.tiles().tile[:QUICKLOOK_TILES])
    for t in quicklooks:
        ctx.save(wfig.scene_quicklooks(world, t), f"world_scenes_{t}.png")
    ctx.keep("quicklooks", [f"world_scenes_{t}" for t in quicklooks])

    fit = checks.size_law(world)
    ctx.save(wfig.size_distribution(world, fit), "world_lake_sizes.png")
    ctx.say(
        f"configured tau = {fit['configured']:.3f}, fitted tau = {fit['fitted']:.3f} ± {fit['stderr']:.3f} "
        f"(n = {fit['n']})"
    )
    ctx.save(wfig.cloud_cover(world), "world_cloud_cover.png")

    scores = checks.cloud_scores(world)
    cloud = checks.cloud_summary(scores)
    fp = checks.false_positive_by_surface(scores)
    ctx.save(wfig.false_positives_by_surface(fp), "world_cloud_false_positives.png")
    ctx.show("cloud_detection", pd.Series(cloud))

    ndwi = ndwi_tables(world)
    ctx.show("ndwi", ndwi_side_by_side(ndwi))
    ctx.save(wfig.water_spectra(), "world_water_types.png")
    water_types = None
    if has_water_types(world):
        water_types = ctx.show("water_types", checks.index_iou_by_type(world))
    else:
        ctx.say("this world has no optical water types (truth/<tile>/water_type.tif): per-type index IoU skipped")

    size_mb = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 1e6
    catalog_mb = sum(f.stat().st_size for f in world.catalog.rglob("*") if f.is_file()) / 1e6
    ctx.say(f"imagery: the STAC catalog {world.catalog.relative_to(out.parent)}/catalog.json, {catalog_mb:.0f} MB")
    ctx.say(
        f"world: {summary['tiles']} tiles, {summary['scenes']} scenes, {summary['lakes']} lakes, "
        f"{size_mb:.0f} MB on disk, {time.time() - ctx.started:.0f} s including the checks"
    )
    return ctx.finish(
        constants=CONSTANTS,
        omit=("tiles", "workers"),
        extra={
            "summary": summary,
            "size_law": fit,
            "cloud_detection": cloud,
            "ndwi_water_iou": ndwi["water"]["iou"].round(4).to_dict(),
            "ndwi_lake_iou": ndwi["lake"]["iou"].round(4).to_dict(),
            "water_type_index_iou": table_records(water_types),
            "size_mb": round(size_mb, 1),
        },
    )


def ndwi_tables(world: WorldFiles) -> dict[str, pd.DataFrame]:
    """NDWI alone (mean clear-sky NDWI > 0) per region type against two truths, ``water`` and ``lake``
    (:func:`lakepaper.world.checks.ndwi_iou`, pooled by :func:`~lakepaper.world.checks.iou_table`)."""
    counts = checks.ndwi_iou(world)
    return {truth: checks.iou_table(counts, truth=truth) for truth in ("water", "lake")}


def ndwi_side_by_side(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """IoU, precision and recall against water and against lakes, side by side per region type."""
    cols = ["iou", "precision", "recall"]
    return pd.concat({"water vs land": tables["water"][cols], "lakes": tables["lake"][cols]}, axis=1)
