"""What the s2cloudless tutorial's erosion changes in the composite, measured on the simulated world.

Earth Engine's s2cloudless tutorial masks ``is_cld_shdw.focalMin(2).focalMax(BUFFER*2/20)`` at 20 m
(``BUFFER = 50``): it erodes cloud | shadow by 40 m, dropping specks, then buffers by 100 m. Before
issue 18 this compendium only dilated, by 50 m. Three recipes are compared here, every other step
the same (``lakepaper.composite.masks.scene_mask``, the local backend's):

* ``tutorial``: erode 40 m, then buffer 100 m (the default, ``lakepaper.params``);
* ``erode20``: erode 20 m (one 20 m pixel), then buffer 100 m;
* ``buffer100``: buffer 100 m, no erosion;
* ``buffer50``: buffer 50 m, no erosion (the recipe before issue 18).

For each tile of a world (default: a tiny world, 16 tiles of 256 px, with 24 scenes a tile and seed 7,
generated once under ``/tmp/lakepaper-bench`` unless ``--world`` names one: the figures quoted in
``lakepaper.params``' ``cloud_morphology``) and each scene the paper's scene filter
keeps, the clear mask of each recipe is compared with the world's per-scene truth flags:

* ``clear/px``: clear observations per pixel (what the mean is made of);
* ``lost %``: truly clear observations the recipe masks (false alarms of the mask);
* ``dirty %``: observations the recipe keeps that are truly thick or thin cloud or cloud shadow
  (the cloud residue that enters the mean);
* ``residue %``: composite pixels whose B2 mean is more than 0.05 off the truth's clear-sky mean
  (``lakepaper.composite.checks``' definition), among pixels observed by both;
* ``unseen %``: pixels with no clear observation at all.

Rows: all pixels, then per surface group of the truth's cover map, the paper's hard region types:
``salt`` (salt crust, saline water: SL), ``built-up`` (urban, building shadow: BR), ``ice`` (glacier,
snow, glacial water: IL), ``water`` (other lakes), ``land`` (the rest: NR, AR).

Usage::

    python benchmarks/cloud_mask_recipe.py [--world PATH] [--scenes 24] [--seed 7]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from lakepaper import params
from lakepaper.composite.masks import scene_mask, upsample2
from lakepaper.io import read_raster
from lakepaper.truth import FLAG, NOT_CLEAR_SKY
from lakepaper.world.files import WorldFiles
from lakepaper.world.spectra import SURFACES

RECIPES = {
    "tutorial": {"cloud_morphology": ("erode", "dilate"), "cloud_erode_m": 40.0, "cloud_buffer_m": 100.0},
    "erode20": {"cloud_morphology": ("erode", "dilate"), "cloud_erode_m": 20.0, "cloud_buffer_m": 100.0},
    "buffer100": {"cloud_morphology": ("dilate",), "cloud_buffer_m": 100.0},
    "buffer50": {"cloud_morphology": ("dilate",), "cloud_buffer_m": 50.0},
}
GROUPS = {
    "salt": ("salt_crust", "saline_water"),
    "built-up": ("urban", "building_shadow"),
    "ice": ("glacier_ice", "snow", "glacial_water"),
    "water": ("clear_water", "turbid_water", "wetland"),
}
DIRTY = FLAG["thick_cloud"] | FLAG["thin_cloud"] | FLAG["shadow"]


def make_world(root: Path, scenes: int, seed: int) -> Path:
    from lakepaper.world.generate import generate_world
    from lakepaper.world.sites import WorldConfig

    if (root / "world.json").exists():
        return root
    p = params.resolve("tiny", world_scenes_per_tile=scenes, world_seed=seed)
    generate_world(WorldConfig.from_params(p), root, workers=1, parameters={"n_sample_regions": p["n_sample_regions"]})
    return root


def group_of(cover: np.ndarray) -> np.ndarray:
    names = np.array(["land"] * (max(SURFACES.values()) + 1), dtype=object)
    for group, surfaces in GROUPS.items():
        for s in surfaces:
            names[SURFACES[s]] = group
    return names[cover]


def measure(world: WorldFiles, p: dict) -> pd.DataFrame:
    scenes = world.scenes()
    dates = scenes.date.dt.date.astype(str)
    cloudy = scenes.CLOUDY_PIXEL_PERCENTAGE.to_numpy()
    keep = scenes[(cloudy < p["max_scene_cloud_pct"]) & (dates >= p["start_date"]) & (dates <= p["end_date"])]
    rows = []
    for tile, of_tile in keep.groupby("tile"):
        cover = read_raster(world.truth_path(tile, "cover"))[0][0]
        groups = group_of(cover)
        acc = {r: {k: 0 for k in ("count", "sum", "dirty", "lost")} for r in RECIPES}
        t_sum = t_count = 0
        for s in of_tile.itertuples():
            l2a = world.read_scene(tile, s.system_index, "L2A_10m")[0]
            b20 = world.read_scene(tile, s.system_index, "L2A_20m")[0]
            prob = world.read_scene(tile, s.system_index, "CLDPRB")[0][0]
            flags = read_raster(world.flags_path(tile, s.system_index))[0][0]
            b11 = upsample2(b20[0])
            truly_clear = (flags & NOT_CLEAR_SKY) == 0
            t_sum = t_sum + np.where(truly_clear, l2a[0], 0).astype(np.float64)
            t_count = t_count + truly_clear
            for name, recipe in RECIPES.items():
                q = {**p, **recipe}
                clear = scene_mask(l2a, b11, b20[1], prob, azimuth_deg=float(s.MEAN_SOLAR_AZIMUTH_ANGLE), p=q).clear
                a = acc[name]
                a["count"] = a["count"] + clear
                a["sum"] = a["sum"] + np.where(clear, l2a[0], 0).astype(np.float64)
                a["dirty"] = a["dirty"] + (clear & ((flags & DIRTY) > 0))
                a["lost"] = a["lost"] + (~clear & truly_clear)
        truth = np.where(t_count > 0, t_sum / np.maximum(t_count, 1), np.nan) / 1e4
        for name, a in acc.items():
            comp = np.where(a["count"] > 0, a["sum"] / np.maximum(a["count"], 1), np.nan) / 1e4
            both = (a["count"] > 0) & (t_count > 0)
            residue = both & (np.abs(comp - truth) > 0.05)
            for group in ("all", *GROUPS, "land"):
                sel = np.ones(cover.shape, bool) if group == "all" else groups == group
                if not sel.any():
                    continue
                rows.append(
                    {
                        "tile": tile,
                        "recipe": name,
                        "group": group,
                        "pixels": int(sel.sum()),
                        "clear": int(a["count"][sel].sum()),
                        "dirty": int(a["dirty"][sel].sum()),
                        "lost": int(a["lost"][sel].sum()),
                        "true_clear": int(t_count[sel].sum()),
                        "residue": int(residue[sel].sum()),
                        "both": int(both[sel].sum()),
                        "unseen": int((a["count"][sel] == 0).sum()),
                    }
                )
    return pd.DataFrame(rows)


def table(raw: pd.DataFrame) -> pd.DataFrame:
    t = raw.groupby(["group", "recipe"], sort=False)[
        ["pixels", "clear", "dirty", "lost", "true_clear", "residue", "both", "unseen"]
    ].sum()
    out = pd.DataFrame(
        {
            "pixels": t.pixels,
            "clear/px": (t.clear / t.pixels).round(3),
            "lost %": (100 * t.lost / t.true_clear.clip(lower=1)).round(2),
            "dirty %": (100 * t.dirty / t.clear.clip(lower=1)).round(3),
            "residue %": (100 * t.residue / t.both.clip(lower=1)).round(3),
            "unseen %": (100 * t.unseen / t.pixels).round(3),
        }
    )
    return out


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", default=None, help="a generated world (default: a tiny one, generated once)")
    parser.add_argument("--scenes", type=int, default=24, help="scenes per tile of the generated world")
    parser.add_argument("--seed", type=int, default=7, help="seed of the generated world")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    default = Path(f"/tmp/lakepaper-bench/world-{args.scenes}-{args.seed}")
    root = Path(args.world) if args.world else make_world(default, args.scenes, args.seed)
    p = params.resolve("tiny")
    raw = measure(WorldFiles(root), p)
    out = table(raw)
    with pd.option_context("display.width", 160, "display.max_rows", 100):
        print(f"world {root}: {raw.tile.nunique()} tiles; {time.perf_counter() - started:.0f} s")
        print(out.to_string())
    return out


if __name__ == "__main__":
    main()
