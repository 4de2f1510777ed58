"""The Earth Engine export grid in figures: tiles, pixels, volume and compute time, from the demo to the globe.

For the paper's windows (576 px, 100 px edges: 9024 px tile cores, 9224 px exports), prints per
area the tile count, pixels (cores, owned parts, exports), owned area, the uncompressed export
volume, and the seconds to compute the grid. Areas: the demo's sites (``landgrid.demo_area``), a
country (Finland's bounding box), a continent (Africa's) and all land within Sentinel-2's extent.

Usage::

    python benchmarks/landgrid.py [--out tile_grid.gpkg]   # --out: also write the global grid
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from lakepaper import params
from lakepaper.composite import landgrid
from lakepaper.world.sites import SITES

AREAS = {
    "demo sites": landgrid.demo_area(SITES),
    "Finland (bbox)": [20.5, 59.8, 31.6, 70.1],
    "Africa (bbox)": [-18.0, -35.0, 52.0, 38.0],
    "all land": None,
}


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="write the global grid here (GeoPackage)")
    args = parser.parse_args(argv)
    p = params.resolve("paper")
    rows = []
    for name, area in AREAS.items():
        started = time.perf_counter()
        grid = landgrid.build_grid(p, area=area)
        seconds = time.perf_counter() - started
        s = landgrid.summary(grid, p)
        rows.append(
            {
                "area": name,
                "tiles": s["tiles"],
                "zones": s["zones"],
                "core Gpx": round(s["core_px"] / 1e9, 2),
                "owned Gpx": round(s["owned_px"] / 1e9, 2),
                "export Gpx": round(s["export_px"] / 1e9, 2),
                "owned km2": s["owned_km2"],
                "export TB": round(s["export_bytes"] / 1e12, 3),
                "seconds": round(seconds, 1),
            }
        )
        if area is None and args.out:
            started = time.perf_counter()
            landgrid.write_grid(grid, args.out)
            print(f"wrote {args.out} in {time.perf_counter() - started:.1f} s")
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 160):
        print(table.to_string(index=False))
    return table


if __name__ == "__main__":
    main()
