"""Where stage 01's cloud probability comes from, and what it costs the composites: prints figures, asserts nothing.

A STAC source may give the cloud probability three ways (``cloud`` of
:func:`lakepaper.composite.sources.composite_stac_tile`):

``asset``
    the items' ``s2cloudless`` asset: Earth Engine's ``COPERNICUS/S2_CLOUD_PROBABILITY`` as the
    simulated world carries it (no public catalog has it);
``l1c``
    computed from each item's L1C item with the s2cloudless classifier
    (:mod:`lakepaper.composite.cloudless`, at ``cloudless_resolution_m``), what a real catalog needs;
``scl``
    none: Sen2Cor's SCL classes 8, 9 and 10 (cloud medium/high probability, thin cirrus) as cloud.

On a simulated world (default: the ``tiny`` profile's, generated in a temporary folder; or
``--world``), every tile is composited once per mode (same items, recipe and threads) and each
composite is compared with the truth clear-sky mean (:func:`lakepaper.composite.checks.compare_to_truth`):
``within_0_01`` (share of pixels with >= 3 clear observations, composite and truth, whose B2 B3 B4
are within 0.01 of the truth), ``residue`` (share of observed pixels whose B2 is pulled > 0.05 off:
cloud, shadow or snow let through), ``no_observation`` (share with no clear observation: masked
away), ``clear_share`` (share with at least one) and the seconds each composite took (the L1C mode
includes running the classifier; the items are found before the clock starts). Per tile, then
pooled over the tiles (weighted by the pixels each share is taken over).

What it shows:

* how much worse the masks get without s2cloudless, SCL only: the clear share, ``no_observation``,
  ``within_0_01`` and residue of ``scl`` against ``asset``;
* that the probability computed from the L1C items matches the world's own layer (the world made
  its layer with the same classifier on the same 80 m L1C grid): the pixels whose clear count
  differs between the ``asset`` and ``l1c`` composites, and, over the scenes, the pixels whose
  probability (0..100) differs, those whose cloud decision (probability > ``cloud_prob_threshold``)
  differs, and the largest difference, anywhere and more than two classifier pixels from no data.

Measured on the tiny world (16 tiles of 256 px, 50 items kept; recipe defaults of 2026-12-04,
``cloud_morphology=("dilate",)``), pooled: SCL only leaves a clear observation at 64.0 % of the
pixels against 76.6 % with s2cloudless (no observation 36.0 % against 23.4 %: Sen2Cor's cloud
classes over-mask the world's scenes), ``within_0_01`` 0.918 against 0.930, while its residue is
lower (0.95 % against 1.21 %: it masks more, cloud edges included). The L1C-computed probability
differs from the layer at 1.2 % of scene pixels, by at most 7 points more than 160 m from no
data (rounding and interpolation); next to the swath's no-data edge the bilinear 80 m -> 10 m
interpolation mixes in classifier pixels of no data (up to 47 points); the cloud decision differs
at 0.016 % of scene pixels, the clear count at 0.03 % of pixels (by one observation), and the
composites' figures agree to the 4th decimal (``within_0_01`` 0.9301 both). Computing it costs
~3.6x the composite's time here (22.8 s against 6.4 s for the 16 tiles, 2 busy cores).

Usage:
    .venv/bin/python benchmarks/cloud_sources.py [--world build/tiny/00_world] [--profile tiny]
        [--tiles T01 T05] [--workers N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

MODES = ("asset", "l1c", "scl")
METRICS = ("within_0_01", "residue", "no_observation", "clear_share", "seconds")


def generate(folder: Path, profile: str) -> Path:
    """The world of ``profile`` (stage 00's configuration) in ``folder``; its path."""
    from lakepaper import params
    from lakepaper.world.generate import generate_world
    from lakepaper.world.sites import WorldConfig

    p = params.resolve(profile)
    t0 = time.perf_counter()
    generate_world(
        WorldConfig.from_params(p), folder, progress=False, parameters={"n_sample_regions": p["n_sample_regions"]}
    )
    print(f"generated the {profile} profile's world in {folder} in {time.perf_counter() - t0:.0f} s")
    return folder


def probability_agreement(items: list, l1c: list, p: dict) -> tuple[int, int, int, int, int]:
    """Over the tile's scenes: (pixels, pixels whose probability differs, pixels whose cloud decision differs,
    the largest difference where both have data, the largest more than two classifier pixels away from
    any no data) between the items' ``s2cloudless`` asset and the probability computed from their L1C items."""
    import cv2
    import rasterio

    from lakepaper.composite import stac as reader
    from lakepaper.composite.cloudless import FromL1C
    from lakepaper.composite.sources import asset_files

    geobox = reader.tile_geobox(items, reader.Area(tile="-"), float(p.get("resolution_m", 10.0)))
    rows = int(geobox.shape[0])
    computed = FromL1C(l1c, geobox, float(p["cloudless_resolution_m"]))
    threshold = float(p["cloud_prob_threshold"])
    n = prob_diff = cloud_diff = largest = inside = 0
    reach = 4 * computed.f + 1  # two classifier pixels each side
    for i, it in enumerate(items):
        with rasterio.open(asset_files([it], ["s2cloudless"])[0]) as src:
            world = src.read(1)
        mine = computed.rows(i, 0, rows)
        n += world.size
        prob_diff += int((world != mine).sum())
        cloud_diff += int((((world > threshold) & (world != 255)) != ((mine > threshold) & (mine != 255))).sum())
        nodata = (world == 255) | (mine == 255)
        diff = np.where(nodata, 0, np.abs(world.astype(np.int16) - mine.astype(np.int16)))
        near = cv2.dilate(nodata.view(np.uint8), np.ones((reach, reach), np.uint8)).view(bool)
        largest = max(largest, int(diff.max()))
        inside = max(inside, int(diff[~near].max()) if (~near).any() else 0)
    return n, prob_diff, cloud_diff, largest, inside


def run(world: Path, profile: str, tiles: list[str] | None, workers: int, out: Path) -> None:
    from lakepaper import params
    from lakepaper.composite.checks import compare_to_truth, truth_clear_mean
    from lakepaper.composite.cloudless import l1c_items
    from lakepaper.composite.local import read_composite
    from lakepaper.composite.sources import catalog_tiles, composite_stac_tile, find_tiles
    from lakepaper.truth import Truth

    p = params.resolve(profile)
    stac = world / "stac"
    truth = Truth(world)
    found = find_tiles(str(stac), tiles or catalog_tiles(stac), p)
    l1c = {t: l1c_items(str(stac), items) for t, items in found.items()}
    missing = [t for t, v in l1c.items() if v is None]
    if missing:
        raise SystemExit(f"no L1C item for every item of tile(s) {missing}: not a catalog for the l1c mode")
    n_items = sum(len(v) for v in found.values())
    print(
        f"world {world}: {len(found)} tiles, {n_items} L2A items (profile {profile}: "
        f"{p['start_date']}..{p['end_date']}, scene cloud < {p['max_scene_cloud_pct']} %); "
        f"{workers} thread(s) per composite; cloud_prob_threshold "
        f"{p['cloud_prob_threshold']}, cloudless_resolution_m {p['cloudless_resolution_m']}"
    )
    first = next(iter(found))
    for mode in MODES:  # numba's kernels, odc-stac and the classifier loaded before any clock
        composite_stac_tile(first, found[first], out / "warm.tif", p, num_workers=workers, cloud=mode, l1c=l1c[first])

    rows, agree = [], []
    for t, items in found.items():
        _, n_true = truth_clear_mean(truth, t, items, p)
        counts = {}
        for mode in MODES:
            path = out / f"{t}_{mode}.tif"
            t0 = time.perf_counter()
            info = composite_stac_tile(t, items, path, p, num_workers=workers, cloud=mode, l1c=l1c[t])
            seconds = time.perf_counter() - t0
            row = compare_to_truth(truth, t, items, path, p)
            count = read_composite(path)[1]
            counts[mode] = count
            rows.append(
                {
                    **row,
                    "mode": mode,
                    "scenes": len(items),
                    "clear_share": info["clear_share"],
                    "seconds": seconds,
                    # the pixels each share is taken over (to pool the tiles)
                    "n_sel": int(((count >= 3) & (n_true >= 3)).sum()),
                    "n_both": int(((count > 0) & (n_true > 0)).sum()),
                    "n_pixels": int(count.size),
                }
            )
        n, prob_diff, cloud_diff, largest, inside = probability_agreement(items, l1c[t], p)
        agree.append(
            {
                "tile": t,
                "pixels": int(counts["asset"].size),
                "count_differs": int((counts["asset"] != counts["l1c"]).sum()),
                "max_count_diff": int(np.abs(counts["asset"].astype(int) - counts["l1c"]).max()),
                "scene_pixels": n,
                "prob_differs": prob_diff,
                "cloud_differs": cloud_diff,
                "max_prob_diff": largest,
                "max_away_from_nodata": inside,
            }
        )
    table = pd.DataFrame(rows)
    report(table, pd.DataFrame(agree), p)


def _pooled(g: pd.DataFrame) -> pd.Series:
    def w(col: str, weight: str) -> float:
        tot = g[weight].where(g[col].notna(), 0).sum()
        return float((g[col].fillna(0) * g[weight]).sum() / tot) if tot else float("nan")

    return pd.Series(
        {
            "within_0_01": w("within_0_01", "n_sel"),
            "residue": w("residue", "n_both"),
            "no_observation": w("no_observation", "n_pixels"),
            "clear_share": w("clear_share", "n_pixels"),
            "seconds": float(g["seconds"].sum()),
        }
    )


def report(table: pd.DataFrame, agree: pd.DataFrame, p: dict) -> None:
    pd.set_option("display.width", 200)
    fmt = {m: "{:.4f}".format for m in METRICS[:-1]} | {"seconds": "{:.2f}".format}
    wide = table.pivot(index=["tile", "scenes"], columns="mode", values=list(METRICS))
    wide = wide.reindex(columns=pd.MultiIndex.from_product([METRICS, MODES]))
    print("\nper tile (shares of pixels; within_0_01 is NaN where no pixel has >= 3 clear observations):")
    print(wide.to_string(float_format=lambda v: f"{v:.4f}"))
    pooled = table.groupby("mode").apply(_pooled, include_groups=False).reindex(list(MODES))
    print(f"\npooled over {table.tile.nunique()} tiles (within_0_01 over pixels with >= 3 clear observations in both):")
    print(pooled.to_string(formatters=fmt))
    tot = agree[["pixels", "count_differs", "scene_pixels", "prob_differs", "cloud_differs"]].sum()
    print(
        "\nasset vs l1c: pixels whose clear count differs; over the scenes, pixels whose probability / cloud "
        "decision differs:"
    )
    print(agree.to_string(index=False))
    print(
        f"all tiles: clear count differs at {tot.count_differs} of {tot.pixels} pixels "
        f"({tot.count_differs / tot.pixels:.4%}); probability differs at {tot.prob_differs} of {tot.scene_pixels} "
        f"scene pixels ({tot.prob_differs / tot.scene_pixels:.4%}), cloud decision at {tot.cloud_differs} "
        f"({tot.cloud_differs / tot.scene_pixels:.4%}); largest probability difference {agree.max_prob_diff.max()} "
        f"points where both have data, {agree.max_away_from_nodata.max()} more than two classifier pixels "
        f"({2 * p['cloudless_resolution_m']:g} m) away from any no data"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--world", type=Path, help="a generated world folder with stac/ (default: generate the --profile's world)"
    )
    parser.add_argument("--profile", default="tiny", help="parameters (dates, recipe) and world to generate (tiny)")
    parser.add_argument("--tiles", nargs="+", help="only these world tiles (default: all)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="threads per composite (cores)")
    parser.add_argument("--keep", type=Path, help="keep the composites (and a generated world) here")
    args = parser.parse_args(argv)
    scratch = args.keep or Path(tempfile.mkdtemp(prefix="cloud_sources_"))
    scratch.mkdir(parents=True, exist_ok=True)
    try:
        world = args.world or generate(scratch / "00_world", args.profile)
        (scratch / "composites").mkdir(exist_ok=True)
        run(world, args.profile, args.tiles, args.workers, scratch / "composites")
    finally:
        if args.keep is None:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
