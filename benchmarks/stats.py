"""Benchmark of stages 07-08 (distribution and comparison) on 10^6 synthetic lakes: prints timings.

Issue 8's target: distribution + comparison of 10^6 lakes in under a minute on 2 cores.

Catalogues (``lakepaper.stats.synthetic_lakes``: jittered 24-gons in EPSG:4326, power-law areas):

* "product": ``--n`` lakes >= 0.005 km2 (10^6 by default);
* "PLD-like": ``--n`` lakes >= 0.01 km2 (another seed);
* "GLAKES-like": ``--n`` / 3 lakes >= 0.03 km2.

Timed steps:

1. distribution of the product: ``locate`` (count cell by a point inside each lake, area split over
   the 1-degree cells it overlaps), once with the area column and once computing ellipsoidal areas
   from the geometry; then the headline numbers, count/area/density grids, latitude and longitude
   profiles and the size-group table (Fig. 6 and section 3.2);
2. comparison: ``locate`` of the two references, count and area per size group (Fig. 7), latitude
   and longitude profiles per size range (Fig. 9a,b,d,e), per-cell differences for 0.01-0.1 km2
   (Fig. 9c);
3. (not in the target) reading the product back from GeoParquet, and ``unmatched`` (product lakes
   that touch no PLD-like lake: a spatial join of 10^6 x 10^6 polygons).

Usage:
    .venv/bin/python benchmarks/stats.py [--n 1000000] [--vertices 24] [--skip-join]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np


class Clock:
    def __init__(self) -> None:
        self.rows: list[tuple[str, float, bool]] = []

    def __call__(self, name: str, fn, *, counted: bool = True):
        t0 = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t0
        self.rows.append((name, dt, counted))
        print(f"  {name:<58s} {dt:7.2f} s", flush=True)
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="lakes in the product catalogue")
    ap.add_argument("--vertices", type=int, default=24, help="vertices of each synthetic lake outline")
    ap.add_argument("--skip-join", action="store_true", help="leave out the spatial join (unmatched lakes)")
    args = ap.parse_args()

    from lakepaper import compare, params, stats

    p = params.resolve("paper")
    edges, deg = p["size_groups_km2"], p["grid_deg"]
    n = args.n
    print(f"{os.cpu_count()} CPU cores; {n:,} lakes; grid {deg:g} degree")

    t0 = time.perf_counter()
    product = stats.synthetic_lakes(n, seed=1, a_min=0.005, vertices=args.vertices)
    pld = stats.synthetic_lakes(n, seed=2, a_min=0.01, vertices=args.vertices)
    glakes = stats.synthetic_lakes(n // 3, seed=3, a_min=0.03, vertices=args.vertices)
    print(f"setup (not timed): three synthetic catalogues in {time.perf_counter() - t0:.0f} s, "
          f"{args.vertices} vertices a lake")  # fmt: skip

    clock = Clock()
    print("1. distribution (Fig. 6, section 3.2)")
    lc = clock("locate, area from the column", lambda: stats.locate(product, grid_deg=deg, area_col="area_km2"))
    lc_geom = clock("locate, ellipsoidal area from the geometry", lambda: stats.locate(product, grid_deg=deg))
    diff = np.max(np.abs(lc_geom.area_km2 / lc.area_km2 - 1))
    print(
        f"     {lc.n_crossing:,} lakes cross a cell edge ({100 * lc.n_crossing / n:.2f} %); "
        f"areas from the geometry against the column (the same ellipsoidal area): max rel. diff {diff:.1e}"
    )

    def distribution():
        h = stats.headline(lc, high_latitude_deg=p["high_latitude_deg"])
        grids = stats.count_grid(lc), stats.area_grid(lc), stats.density_grid(lc)
        prof = stats.profile(lc, "lat"), stats.profile(lc, "lon")
        return h, grids, prof, stats.size_group_table(lc.area_km2, edges)

    h, *_ = clock("headline numbers, grids, profiles, size groups", distribution)

    print("2. comparison (Figs. 7 and 9)")
    refs = clock("locate the PLD-like and GLAKES-like catalogues",
                 lambda: compare.locate_all({"PLD": pld, "GLAKES": glakes}, grid_deg=deg))  # fmt: skip
    cells = {"product": lc, **refs}
    clock("count and area per size group (Fig. 7)", lambda: compare.size_group_comparison(cells, edges))
    clock("lat and lon profiles per size range (Fig. 9a,b,d,e)",
          lambda: [compare.profiles_by_group(cells, axis=a, grid_deg=deg) for a in ("lat", "lon")])  # fmt: skip
    clock("per-cell differences 0.01-0.1 km2 (Fig. 9c)", lambda: compare.cell_difference(lc, refs["PLD"]))

    print("3. not in the target")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "lakes.parquet"
        product.to_parquet(path)
        clock("read the product back from GeoParquet (read_catalogue)", lambda: compare.read_catalogue(path),
              counted=False)  # fmt: skip
    if not args.skip_join:
        std = compare.standardise(product, id_col="id", area_col="area_km2")
        ref = compare.standardise(pld, id_col="id", area_col="area_km2")
        clock("unmatched: product lakes touching no PLD-like lake (spatial join)",
              lambda: compare.unmatched(std, ref, edges), counted=False)  # fmt: skip

    counted = sum(dt for _, dt, c in clock.rows if c)
    print(f"\ndistribution + comparison of {n:,} lakes: {counted:.1f} s (target < 60 s on 2 cores)")
    print(f"headline of the synthetic product: {h['n_lakes']:,} lakes, {h['total_area_km2']:,.0f} km2, "
          f"{h['share_count_below_1km2']:.1f} % of the count below 1 km2")  # fmt: skip


if __name__ == "__main__":
    main()
