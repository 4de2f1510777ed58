"""Tiny inputs shared by the stage tests and the issue-11 reliability tests.

Import as ``from builders import ...`` (``tests/`` has no ``__init__.py``; pytest puts it on the path).

* stage 03: :func:`synthetic_chip`, :func:`synthetic_set`, :func:`write_set` (chips and a regions table as
  stage 02 writes them);
* stage 04: :func:`write_input_tile` (a composite-like int16 GeoTIFF), :func:`tiny_checkpoint` (an untrained
  tiny U-Net saved as stage 03 saves one);
* stage 05: :func:`truth_world` (truths and references, no scenes), :func:`write_mask`, :func:`write_standin`;
* stages 00-05 in a row: :func:`scene_world` (a one-tile world with scenes, regions and references) and
  :func:`run_pipeline` (stages 01-05 on it, as the notebooks call them).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
from rasterio.transform import Affine
from shapely.geometry import box

from lakepaper import io, params
from lakepaper.samples.chips import BANDS, Chip, write_chip
from lakepaper.world.files import WorldFiles

CRS = "EPSG:32633"
UTM = CRS
#: Tiles of :func:`truth_world`: river (AR), arid salt lakes (SL), coast with lagoons, reservoirs.
TILES = ("T07", "T09", "T13", "T15")


# --- stage 03: a synthetic training set (lakes are blobs of high NDWI and dark SWIR) ---------------------


def synthetic_chip(region_id: str, h: int, w: int, rng: np.random.Generator, split: str = "train") -> Chip:
    yy, xx = np.mgrid[:h, :w]
    label = np.zeros((h, w), np.uint8)
    for _ in range(int(rng.integers(1, 4))):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        ry, rx = rng.uniform(3, max(4, h / 3)), rng.uniform(3, max(4, w / 3))
        label[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1] = 1
    noise = rng.normal(0, 0.02, (5, h, w)).astype(np.float32)
    land = np.array([0.08, 0.1, 0.12, 0.25, -0.3], np.float32)[:, None, None]
    water = np.array([0.06, 0.07, 0.05, 0.02, 0.45], np.float32)[:, None, None]
    image = np.where(label[None] == 1, water, land) + noise
    return Chip(
        region_id, ["NR", "AR", "SL"][int(rng.integers(3))], split, h * w * 1e-4, image.astype(np.float32), label
    )


def synthetic_set(seed: int = 0, n=(6, 3, 3), sizes=(20, 90)) -> dict[str, list[Chip]]:
    rng = np.random.default_rng(seed)
    out = {}
    for split, k in zip(("train", "val", "test"), n, strict=True):
        out[split] = [
            synthetic_chip(f"{split[0].upper()}{i:03d}", *rng.integers(*sizes, size=2), rng, split) for i in range(k)
        ]
    return out


def write_set(folder, chips: list[Chip]) -> None:
    """Write chips and a regions.gpkg the way stage 02 does."""
    rows = []
    for i, c in enumerate(chips):
        t = Affine(10, 0, 500000 + 5000 * i, 0, -10, 4000000)
        image, label = write_chip(folder, c.region_id, c.image, c.label, crs=CRS, transform=t)
        rows.append(
            {
                "region_id": c.region_id,
                "region_type": c.region_type,
                "split": c.split,
                "area_km2": c.area_km2,
                "image": image,
                "label": label,
                "geometry": box(500000 + 5000 * i, 3990000, 500100 + 5000 * i, 4000000),
            }
        )
    io.write_vector(gpd.GeoDataFrame(rows, crs=CRS), Path(folder) / "regions.gpkg", "Polygon")


# --- stage 04: input tiles and a checkpoint ----------------------------------------------------------------


def write_input_tile(path, shape=(150, 170), seed=0, hole=True) -> np.ndarray:
    """An int16 composite-like tile (bands ``BANDS``, SCALE 1000, nodata -32768); ``hole``: a block of no data
    and one pixel missing one band. Returns the array written."""
    data = (np.random.default_rng(seed).random((5, *shape)) * 1000).astype(np.int16)
    if hole:
        data[:, 10:20, 30:40] = -32768
        data[2, 100, 100] = -32768  # one band missing at one pixel is no data too
    io.write_raster(
        path,
        data,
        crs="EPSG:32633",
        transform=Affine(10, 0, 500000, 0, -10, 4000000),
        nodata=-32768,
        band_names=list(BANDS),
        tags={"SCALE": 1000},
    )
    return data


def tiny_checkpoint(path, seed: int = 0, **over) -> Path:
    """An untrained U-Net of the ``tiny`` profile (``over`` overrides parameters), saved as stage 03 does."""
    import torch

    from lakepaper.train.checkpoint import save_checkpoint
    from lakepaper.unet import UNet

    p = params.resolve("tiny", **over)
    torch.manual_seed(seed)
    model = UNet(p["in_channels"], p["unet_widths"], p["unet_upsample"])
    return save_checkpoint(
        path,
        model,
        bands=p["composite_bands"],
        patch_size=p["patch_size"],
        params={},
        epoch=0,
        val_loss=1.0,
        metrics={},
    )


# --- stage 05: truths and references, prediction masks --------------------------------------------------------


def truth_world(out, tiles=TILES, tile_px: int = 256) -> WorldFiles:
    """Truths, lakes table, references and world.json of the given tiles (no scenes: ~2 s for four)."""
    from lakepaper.world.generate import _tile_record, _write_truth, build_truth, lakes_frame
    from lakepaper.world.references import build_references
    from lakepaper.world.sites import WorldConfig

    out = Path(out)
    cfg = WorldConfig(tile_px=tile_px, scenes_per_tile=1, tiles=tuple(tiles)).validated()
    truths = [build_truth(cfg, i, s) for i, s in enumerate(cfg.sites(), start=1)]
    for t in truths:
        _write_truth(t, out / "truth" / t.site.name)
    lakes = pd.concat([lakes_frame(t) for t in truths], ignore_index=True)
    gpd.GeoDataFrame(lakes, geometry="geometry", crs=4326).to_parquet(out / "truth" / "lakes.parquet", index=False)
    build_references(truths, out / "references", seed=cfg.seed)
    info = {"config": dataclasses.asdict(cfg), "tiles": [_tile_record(t) for t in truths]}
    (out / "world.json").write_text(json.dumps(info, default=str))
    return WorldFiles(out)


def write_mask(path, mask: np.ndarray, transform, crs=UTM) -> None:
    """A mask file in stage 04's format: uint8 1 lake, 0 not, 255 no data."""
    io.write_raster(path, mask.astype(np.uint8), crs=crs, transform=transform, nodata=255, band_names=["lake"])


def write_standin(world: WorldFiles, out, tiles=TILES, *, with_errors: bool = True) -> None:
    """Stand-in prediction: truth lakes plus sea, lagoons and river; arid salt lakes missed (the U-Net's SL gap)."""
    out = Path(out)
    lakes = pd.read_parquet(world.lakes_path, columns=["lake_id", "type"])
    salt = lakes.loc[lakes["type"] == "salt", "lake_id"].to_numpy()
    lagoons = lakes.loc[lakes["type"] == "lagoon", "lake_id"].to_numpy()
    for t in tiles:
        ids, meta = io.read_raster(world.truth_path(t, "lake_id"))
        masks, mm = io.read_raster(world.truth_path(t, "masks"))
        band = {n: masks[i].astype(bool) for i, n in enumerate(mm["band_names"])}
        pred = (ids[0] > 0) & ~np.isin(ids[0], salt)
        if with_errors:
            pred |= band["ocean"] | band["river"]
            # lagoons with their tidal fringe: the world's inlets end at the lagoon's maximum shore
            pred |= np.isin(io.read_raster(world.truth_path(t, "lake_id_max"))[0][0], lagoons)
        write_mask(out / f"{t}_mask.tif", pred, meta["transform"], meta["crs"])


# --- stages 00-05 in a row ---------------------------------------------------------------------------------


def scene_world(out, tiles=("T07",), tile_px: int = 128, scenes: int = 2, regions: int = 3) -> WorldFiles:
    """A small simulated world with scenes (stage 00): ~2 s for one 128-px tile of two scenes."""
    from lakepaper.world.generate import generate_world
    from lakepaper.world.sites import WorldConfig

    cfg = WorldConfig(tile_px=tile_px, scenes_per_tile=scenes, tiles=tuple(tiles)).validated()
    generate_world(cfg, Path(out), workers=1, progress=False, parameters={"n_sample_regions": regions})
    return WorldFiles(out)


def run_pipeline(world_root, out, **over) -> Path:
    """Stages 01 to 05 on a world through their ``run(ctx)``, as the notebooks call them (``tiny`` profile,
    ``over``: method constants; one torch thread, Dask off), into ``out/<stage>``; the world is copied to
    ``out/00_world`` first. Returns ``out``."""
    import shutil
    import warnings

    import torch

    from lakepaper.stages import composite, postprocess, predict, samples, train
    from lakepaper.stages.context import Context

    out = Path(out)
    shutil.copytree(world_root, out / "00_world")
    own = {"01_composite": {"scheduler": "sync"}, "03_train": {"device": "cpu"}, "04_predict": {"scheduler": "sync"}}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # gaps filled with the median, and the like
            for module in (composite, samples, train, predict, postprocess):
                stage = f"{module.__name__.rsplit('.', 1)[1]}"
                name = next(s for s in STAGE_NAMES if s.endswith(f"_{stage}"))
                given = {**own.get(name, {}), **{k: v for k, v in over.items() if k in _declared(name)}}
                module.run(Context.create(name, profile="tiny", root=out, quiet=True, **given))
    finally:
        torch.set_num_threads(threads)
    return out


STAGE_NAMES = ("01_composite", "02_samples", "03_train", "04_predict", "05_postprocess")


def _declared(stage: str) -> dict:
    from lakepaper.stages import declared_parameters

    return declared_parameters(stage)


def composite_tile(world: WorldFiles, tile: str, out_path, *, p: dict, **kw) -> dict:
    """Stage 01's composite of one world tile, made as the stage makes it: from the world's STAC catalog."""
    from lakepaper.composite.sources import composite_stac_tile, find_tiles

    items = find_tiles(str(world.catalog), [tile], p)[tile]
    return composite_stac_tile(tile, items, Path(out_path), p, **kw)


def kept_scenes(world: WorldFiles, tile: str, p: dict) -> pd.DataFrame:
    """The world's scenes of ``tile`` that the recipe keeps (date range, scene cloud limit), by date."""
    s = world.scenes()
    s = s[(s.tile == tile) & (s.date >= p["start_date"]) & (s.date <= f"{p['end_date']} 23:59:59")]
    s = s[s["CLOUDY_PIXEL_PERCENTAGE"] < float(p["max_scene_cloud_pct"])]
    return s.sort_values(["date", "system_index"]).reset_index(drop=True)


def jupyterlab_command(port: int, token: str, *extra: str) -> list[str]:
    """The command ``make lab`` runs, on a given port and token, headless (and as root where tests run as root)."""
    import os
    import sys

    from lakepaper import paths

    cmd = [
        sys.executable,
        "-m",
        "jupyter",
        "lab",
        "--no-browser",
        "--ip",
        "127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.token={token}",
        f"--ServerApp.root_dir={paths.ROOT}",
        *extra,
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # containers and CI often run as root
        cmd.append("--allow-root")
    return cmd


@contextlib.contextmanager
def kernel_client(runtime_dir, kernel_id: str, *, timeout: float):
    """A ready client on a running kernel's connection file (``runtime_dir/kernel-<id>.json``), as the Lab
    front end connects; its channels are stopped on exit."""
    from jupyter_client import BlockingKernelClient

    client = BlockingKernelClient(connection_file=str(Path(runtime_dir) / f"kernel-{kernel_id}.json"))
    client.load_connection_file()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=timeout)
        yield client
    finally:
        client.stop_channels()


def chromium_or_skip():
    """:mod:`lakepaper.report.browser`, or the test skipped when headless Chromium is not installed."""
    import pytest

    from lakepaper.report import browser

    try:
        browser.find_browser()
    except browser.BrowserUnavailable as exc:
        pytest.skip(f"headless Chromium not available: {exc}")
    return browser
