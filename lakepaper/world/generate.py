"""Write the simulated world to disk, in the formats the real sources come in.

Layout of the world folder (``build/<profile>/00_world``)::

    world.json                  configuration, tiles (CRS, bounds, biome), counts
    tiles.geojson               tile footprints (EPSG:4326)
    truth/<tile>/lake_id.tif    int32 lake id at the typical extent (flooded >= 50 % of the time)
    truth/<tile>/lake_id_max.tif  int32 lake id at the maximum extent
    truth/<tile>/occurrence.tif uint8 percent of time under water (any water)
    truth/<tile>/cover.tif      uint8 surface class of the dry land (codes: spectra.SURFACES)
    truth/<tile>/water_type.tif uint8 optical water type of every pixel ever wet (codes 1.. of
                                lakepaper.truth.WATER_TYPES; 0 never water)
    truth/<tile>/masks.tif      uint8 bands river, ocean, urban, glacier, saltflat, paddy, floodplain,
                                building_shadow
    truth/lakes.parquet         GeoParquet, one row per lake: polygon (EPSG:4326) and table
    stac/                       the imagery, and only copy of it: a static STAC catalog laid out like
                                Earth Search's sentinel-2-l2a and sentinel-2-l1c (:mod:`lakepaper.world.stac`):
                                one COG per band (L2A B02 B03 B04 B08 B11 SCL and s2cloudless; L1C's 13
                                bands at 80 m), DNs with the -1000 offset from 2022-01-25 on
    scenes/<tile>/<id>_truth.tif     uint8 truth flags of a scene (scenes.FLAG): truth, not imagery
    scenes.csv                  per-scene metadata (as Earth Engine's image properties), truth statistics
                                and the scene's STAC item ids (``l2a_item``, ``l1c_item``)
    references/...              OSM-, GRWL-, GeoDAR-, GLAKES-, PLD-like data, aridity, floodplain
    regions.gpkg                sample regions with their region type
    manifest.json               written last: parameters, output hashes, versions, wall time

``<id>`` is the scene's Earth Engine ``system:index``; its items carry it as ``lakepaper:system_index``
(and the tile as ``lakepaper:tile``), which is how truth is joined to imagery. The stages read the
imagery only through the catalog, as they read a real one.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from rasterio import features
from rasterio.transform import Affine
from shapely.geometry import box

from lakepaper import io
from lakepaper.truth import WATER_TYPES
from lakepaper.world import scenes as sc
from lakepaper.world.sites import Site, WorldConfig
from lakepaper.world.stac import finish_catalog, write_scene_assets
from lakepaper.world.truth import DRY, TileTruth, build_tile

MASK_NAMES = ("river", "ocean", "urban", "glacier", "saltflat", "paddy", "floodplain", "building_shadow")


def tile_seed(cfg: WorldConfig, index: int, stream: int) -> np.random.Generator:
    """One generator per tile and purpose, so tiles can be built in any order or in parallel."""
    return np.random.default_rng([cfg.seed, index, stream])


def build_truth(cfg: WorldConfig, index: int, site: Site) -> TileTruth:
    """The truth of tile number ``index`` (1-based)."""
    return build_tile(
        site,
        cfg.biome(site.biome),
        tile_px=cfg.tile_px,
        tile_index=index,
        size_exponent=cfg.size_exponent,
        min_lake_km2=cfg.min_lake_km2,
        max_lake_km2=cfg.max_lake_km2,
        rng=tile_seed(cfg, index, 0),
        optics_rng=tile_seed(cfg, index, 2),
        streams_rng=tile_seed(cfg, index, 4),
    )


def _write_truth(truth: TileTruth, folder: Path) -> None:
    kw = {"crs": truth.crs, "transform": truth.transform}
    io.write_raster(folder / "lake_id.tif", truth.typical_lake_id(), nodata=None, band_names=["lake_id"], **kw)
    io.write_raster(folder / "lake_id_max.tif", truth.lake_id, band_names=["lake_id_max"], **kw)
    io.write_raster(folder / "occurrence.tif", truth.occurrence(), band_names=["occurrence_pct"], **kw)
    io.write_raster(folder / "cover.tif", truth.cover, band_names=["surface"], **kw)
    io.write_raster(
        folder / "water_type.tif",
        truth.water_type(),
        band_names=["water_type"],
        tags={f"TYPE_{i}": name for i, name in enumerate(WATER_TYPES, start=1)},
        **kw,
    )
    masks = np.stack([truth.masks[m] for m in MASK_NAMES]).astype(np.uint8)
    io.write_raster(folder / "masks.tif", masks, band_names=list(MASK_NAMES), **kw)


def lakes_frame(truth: TileTruth) -> gpd.GeoDataFrame:
    """The truth lakes of one tile: typical-extent polygons in EPSG:4326 and their table."""
    typical = truth.typical_lake_id()
    parts: dict[int, list] = {}
    for geom, value in features.shapes(typical, mask=typical > 0, transform=truth.transform, connectivity=4):
        parts.setdefault(int(value), []).append(shapely.geometry.shape(geom))
    rows = []
    for lake in truth.lakes:
        if lake.lake_id not in parts:
            continue
        geom = shapely.union_all(parts[lake.lake_id])
        x, y = truth.transform @ (lake.col, lake.row)
        rows.append(
            {
                "lake_id": lake.lake_id,
                "tile": truth.site.name,
                "biome": truth.site.biome,
                "type": lake.type,
                "area_km2": round(lake.area_km2, 6),
                "area_perm_km2": round(lake.area_perm_km2, 6),
                "area_max_km2": round(lake.area_max_km2, 6),
                "from_size_law": lake.from_size_law,
                "drawn_km2": round(lake.drawn_km2, 6),
                "water": lake.water,
                "x": x,
                "y": y,
                "geometry": geom,
            }
        )
    frame = gpd.GeoDataFrame(rows, geometry="geometry", crs=truth.crs)
    return frame.to_crs(4326)


def _tile_job(
    cfg: WorldConfig, index: int, site: Site, out: str
) -> tuple[TileTruth, list[dict], gpd.GeoDataFrame, dict]:
    """Build and write one tile: truth, its lakes, its scenes' COGs and truth flags (runs in a worker process)."""
    from s2cloudless import S2PixelCloudDetector

    out_dir = Path(out)
    truth = build_truth(cfg, index, site)
    _write_truth(truth, out_dir / "truth" / site.name)
    rng = tile_seed(cfg, index, 1)
    dates = sc.scene_dates(rng, cfg.scenes_per_tile, cfg.start, cfg.end, lat=site.lat)
    years = {d.year for d in dates}
    year_offset = {y: float(rng.uniform(-0.15, 0.15)) for y in sorted(years)}  # wet and dry years
    detector = S2PixelCloudDetector(all_bands=True, average_over=0, dilation_size=0)
    maker = sc.SceneMaker(
        truth, cloud_factor=cfg.cloud_factor, detector=detector, processor_rng=tile_seed(cfg, index, 3)
    )
    folder = out_dir / "scenes" / site.name
    metas, written = [], {}
    for k, date in enumerate(dates):
        scene = maker.make(date, rng, year_offset=year_offset[date.year], index=k)
        t10, t20 = truth.transform, truth.transform @ Affine.scale(2, 2)
        tc = truth.transform @ Affine.scale(cfg.cloud_factor)
        written[(site.name, scene.scene_id)] = write_scene_assets(
            out_dir / "stac" / ".scenes" / site.name / scene.scene_id,
            scene,
            crs=truth.crs,
            t10=t10,
            t20=t20,
            tc=tc,
            date=date,
        )
        io.write_raster(
            folder / f"{scene.scene_id}_truth.tif",
            scene.flags,
            crs=truth.crs,
            transform=t10,
            band_names=["flags"],
            tags={f"FLAG_{k.upper()}": v for k, v in sc.FLAG.items()},
        )
        metas.append(scene.meta)
    return truth, metas, lakes_frame(truth), written


def _tile_record(truth: TileTruth) -> dict:
    left, top = truth.transform.c, truth.transform.f
    n = truth.shape[0]
    right, bottom = left + n * truth.transform.a, top + n * truth.transform.e
    return {
        "tile": truth.site.name,
        "biome": truth.site.biome,
        "place": truth.site.place,
        "region_type": truth.biome.region_type,
        "lat": truth.site.lat,
        "lon": truth.site.lon,
        "epsg": truth.crs.to_epsg(),
        "bounds": [left, bottom, right, top],
        "size_px": n,
        "aridity": truth.biome.aridity,
        "n_lakes": len(truth.lakes),
        "lake_area_km2": round(sum(lk.area_km2 for lk in truth.lakes), 4),
        "water_px": int((truth.threshold < DRY).sum()),
    }


def generate_world(
    cfg: WorldConfig,
    out_dir: str | os.PathLike[str],
    *,
    workers: int | None = None,
    progress: bool = True,
    parameters: dict | None = None,
    manifest: bool = True,
) -> dict:
    """Generate the whole simulated world into ``out_dir`` and finish with its manifest.

    Args:
        cfg: the world's configuration (validated here).
        out_dir: the stage folder, e.g. ``build/demo/00_world``.
        workers: processes building tiles in parallel (default: CPU count, at most the tiles).
            They are *spawned*, so a script that calls this with workers > 1 must do so under
            ``if __name__ == "__main__":``, as Python requires for spawned processes.
        progress: show a progress bar (notebook-aware).
        parameters: extra parameters to record in the manifest (``n_sample_regions`` is used).
        manifest: write the stage manifest at the end. A notebook that shows more after
            generating passes False and writes the manifest as its own last step.

    Returns:
        A summary: tiles, scene and lake counts, wall time, size on disk.
    """
    from tqdm.auto import tqdm

    from lakepaper.world.references import build_references
    from lakepaper.world.regions import build_regions

    cfg = cfg.validated()
    started = time.time()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    io.begin_stage(out)  # from here on the stage is unfinished (and stale partial files are gone)
    for old in ("scenes", "stac", "truth"):  # an earlier world's files (or an older layout's) do not linger
        shutil.rmtree(out / old, ignore_errors=True)
    sites = cfg.sites()
    workers = max(1, min(workers or os.cpu_count() or 1, len(sites)))
    results: dict[str, tuple] = {}
    bar = tqdm(total=len(sites), desc="world tiles", unit="tile", disable=not progress)
    if workers == 1:
        for i, site in enumerate(sites, start=1):
            results[site.name] = _tile_job(cfg, i, site, str(out))
            bar.update()
    else:
        # spawn, not fork: a forked child of a process that already ran OpenMP code (LightGBM, torch) can hang
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(_tile_job, cfg, i, site, str(out)): site.name for i, site in enumerate(sites, 1)}
            for fut, name in futures.items():
                results[name] = fut.result()
                bar.update()
    bar.close()
    truths = [results[s.name][0] for s in sites]
    metas = [m for s in sites for m in results[s.name][1]]
    lakes = pd.concat([results[s.name][2] for s in sites], ignore_index=True)
    lakes = gpd.GeoDataFrame(lakes, geometry="geometry", crs=4326)
    with io.atomic_path(out / "truth" / "lakes.parquet") as tmp:
        lakes.to_parquet(tmp, index=False)
    records = [_tile_record(t) for t in truths]
    written = {key: w for s in sites for key, w in results[s.name][3].items()}
    scenes = finish_catalog(out / "stac", pd.DataFrame(metas), {r["tile"]: r for r in records}, written)
    with io.atomic_path(out / "scenes.csv") as tmp:
        scenes.to_csv(tmp, index=False)
    footprints = gpd.GeoDataFrame(
        [{k: v for k, v in r.items() if k != "bounds"} for r in records],
        geometry=[box(*r["bounds"]) for r in records],
        crs=None,
    )
    parts = [
        gpd.GeoDataFrame(footprints.iloc[[i]], geometry="geometry", crs=t.crs).to_crs(4326)
        for i, t in enumerate(truths)
    ]
    tiles = pd.concat(parts, ignore_index=True)
    with io.atomic_path(out / "tiles.geojson") as tmp:
        tmp.write_text(tiles.to_json(drop_id=True))
    build_references(truths, out / "references", seed=cfg.seed)
    regions = build_regions(truths, n_regions=int((parameters or {}).get("n_sample_regions", 120)), seed=cfg.seed)
    io.write_vector(regions, out / "regions.gpkg", "Polygon")
    summary = {
        "tiles": len(truths),
        "scenes": len(metas),
        "lakes": int(len(lakes)),
        "lake_area_km2": round(float(lakes["area_km2"].sum()), 3),
        "regions": int(len(regions)),
    }
    io.write_json(out / "world.json", {"config": dataclasses.asdict(cfg), "tiles": records, "summary": summary})
    summary["seconds"] = round(time.time() - started, 1)  # in the manifest only: world.json stays reproducible
    summary["bytes"] = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    if manifest:
        io.write_manifest(
            out,
            stage="00_world",
            parameters={**dataclasses.asdict(cfg), **(parameters or {})},
            started=started,
            extra={"summary": summary},
        )
    return summary
