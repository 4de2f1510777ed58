"""Benchmark of stage 05 (post-processing): polygons/s at 10^4, 10^5 and 10^6 polygons, and how the cost grows.

A synthetic mosaic of adjacent 10 m tiles in one UTM zone (``--tile`` pixels a side) holds small
lakes on a jittered lattice (2-9 pixels a side, one per 12 x 12 pixels, some across tile edges),
a sea strip along the west edge, meandering rivers with GRWL-like centre lines, and references
over all of it: OSM land and ocean, GLAKES (a fifth of the lakes, some reservoirs), PLD, and
aridity, floodplain and occurrence rasters. For each size the whole pass
(:func:`lakepaper.postprocess.pipeline.postprocess`, steps kept off) is timed by phase:

* **vectorise**: masks to polygons plus joining lakes across tile edges (``vectorise`` + ``seams``);
* **rules**: ocean, river and minimum area, partition by partition (references read per partition);
* **completion** and **product** (GLAKES flood mask and PLD per tile, union, product table).

It prints polygons/s of vectorising and of the rule pass per size, the peak memory of the process,
and the exponent b of time ~ n^b fitted over the sizes. n log n from 10^4 to 10^6 is b =
log(150)/log(100) = 1.09;
b <= 1.09 (+ noise) means the cost grows no worse than n log n. Prints figures, asserts nothing.

Usage:
    .venv/bin/python benchmarks/postprocess.py [--sizes 10000 100000 1000000] [--tile 2048]
"""

from __future__ import annotations

import argparse
import math
import resource
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely
from rasterio.transform import from_origin

CRS = "EPSG:32633"
X0, Y0 = 400000.0, 6000000.0
PITCH = 12  # one lake per 12 x 12 pixels


def mosaic(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A mask with about n lakes on a jittered lattice, and each lake's pixel box (for the references)."""
    side = int(math.ceil(math.sqrt(n) * PITCH / 16) * 16)
    side = max(side, 64)
    mask = np.zeros((side, side), np.uint8)
    r0 = np.arange(0, side - PITCH, PITCH)
    rr, cc = np.meshgrid(r0, r0, indexing="ij")
    rr, cc = rr.ravel(), cc.ravel()
    h = rng.integers(2, 10, rr.size)
    w = rng.integers(2, 10, rr.size)
    dr = rng.integers(0, PITCH - h + 1)
    dc = rng.integers(0, PITCH - w + 1)
    rs, cs = rr + dr, cc + dc
    for a, b, hh, ww in zip(rs, cs, h, w, strict=True):
        mask[a : a + hh, b : b + ww] = 1
    return mask, np.column_stack([rs, cs, h, w])


def write_world(root: Path, n: int, tile: int, seed: int = 0) -> dict:
    """Tiles, tile grid and references of a synthetic mosaic with about n lakes."""
    from lakepaper import io

    rng = np.random.default_rng(seed)
    mask, boxes = mosaic(n, rng)
    side = mask.shape[0]
    sea = side // 40  # a sea strip along the west edge (the sea is water too)
    mask[:, :sea] = 1
    # rivers: a sine-shaped centre line every 1500 px, 60 m wide, burnt into the mask
    lines = []
    for k, y in enumerate(range(700, side, 1500)):
        xs = np.linspace(sea, side, max(int(side / 20), 8))
        ys = y + 80 * np.sin(xs / 300.0 + k)
        line = shapely.LineString(np.column_stack([X0 + xs * 10, Y0 - ys * 10]))
        lines.append(line)
    from rasterio import features

    t_all = from_origin(X0, Y0, 10, 10)
    if lines:
        burnt = features.rasterize([(g.buffer(30), 1) for g in lines], out_shape=mask.shape, transform=t_all)
        mask |= burnt.astype(np.uint8)
    pred = root / "predict"
    pred.mkdir(parents=True)
    rows = []
    nt = int(math.ceil(side / tile))
    for i in range(nt):
        for j in range(nt):
            a, b = i * tile, j * tile
            sub = mask[a : a + tile, b : b + tile]
            if not sub.size:
                continue
            t = from_origin(X0 + b * 10, Y0 - a * 10, 10, 10)
            io.write_raster(pred / f"T{i:02d}{j:02d}_mask.tif", sub, crs=CRS, transform=t, nodata=255)
            x0, y1 = X0 + b * 10, Y0 - a * 10
            rows.append(
                {
                    "tile": f"T{i:02d}{j:02d}",
                    "geometry": shapely.box(x0, y1 - sub.shape[0] * 10, x0 + sub.shape[1] * 10, y1),
                }
            )
    grid = gpd.GeoDataFrame(rows, crs=CRS).to_crs(4326)
    refs = root / "references"
    refs.mkdir()
    ext = (X0, Y0 - side * 10, X0 + side * 10, Y0)
    land = shapely.box(X0 + sea * 10, ext[1] - 1000, ext[2] + 1000, Y0 + 1000)
    ocean = shapely.box(X0 - 5000, ext[1] - 1000, X0 + sea * 10, Y0 + 1000)
    gpd.GeoDataFrame(geometry=[land], crs=CRS).to_crs(4326).to_file(refs / "land.gpkg")
    gpd.GeoDataFrame(geometry=[ocean], crs=CRS).to_crs(4326).to_file(refs / "ocean.gpkg")
    gpd.GeoDataFrame({"fclass": []}, geometry=[], crs=4326).to_file(refs / "rivers.gpkg")
    gpd.GeoDataFrame({"width_m": np.full(len(lines), 60.0)}, geometry=lines, crs=CRS).to_crs(4326).to_file(
        refs / "grwl.gpkg"
    )
    pick = rng.random(len(boxes)) < 0.2
    gb = boxes[pick]
    glakes = shapely.box(
        X0 + gb[:, 1] * 10, Y0 - (gb[:, 0] + gb[:, 2]) * 10, X0 + (gb[:, 1] + gb[:, 3]) * 10, Y0 - gb[:, 0] * 10
    )
    ltype = np.where(rng.random(len(glakes)) < 0.02, 2, 1)
    gpd.GeoDataFrame({"Lake_id": np.arange(1, len(glakes) + 1), "Lake_type": ltype}, geometry=glakes, crs=CRS).to_crs(
        4326
    ).to_file(refs / "glakes.gpkg")
    pick = rng.random(len(boxes)) < 0.1
    pb = boxes[pick]
    pld = shapely.box(
        X0 + pb[:, 1] * 10, Y0 - (pb[:, 0] + pb[:, 2]) * 10, X0 + (pb[:, 1] + pb[:, 3]) * 10, Y0 - pb[:, 0] * 10
    )
    gpd.GeoDataFrame({"lake_id": np.arange(1, len(pld) + 1)}, geometry=pld, crs=CRS).to_crs(4326).to_file(
        refs / "pld.gpkg"
    )
    gpd.GeoDataFrame({"id_v11": []}, geometry=[], crs=4326).to_file(refs / "empty.gpkg")
    coarse = from_origin(X0, Y0, 300, 300)
    cs = int(math.ceil(side * 10 / 300))
    yy, xx = np.mgrid[0:cs, 0:cs]
    io.write_raster(
        refs / "aridity.tif",
        np.where(xx > cs * 0.8, 1000, 3000).astype(np.int32),
        crs=CRS,
        transform=coarse,
        nodata=-2147483648,
    )
    io.write_raster(refs / "floodplain.tif", (yy < cs // 3).astype(np.uint8), crs=CRS, transform=coarse, nodata=255)
    occ = from_origin(X0, Y0, 30, 30)
    os_ = int(math.ceil(side / 3))
    io.write_raster(
        refs / "occurrence.tif", rng.integers(0, 100, (os_, os_)).astype(np.uint8), crs=CRS, transform=occ, nodata=255
    )
    paths = {
        "osm_land": refs / "land.gpkg",
        "osm_ocean": refs / "ocean.gpkg",
        "osm_rivers": refs / "rivers.gpkg",
        "grwl": refs / "grwl.gpkg",
        "osm_reservoirs": refs / "empty.gpkg",
        "geodar_reservoirs": refs / "empty.gpkg",
        "geodar_dams": refs / "empty.gpkg",
        "glakes": refs / "glakes.gpkg",
        "pld": refs / "pld.gpkg",
        "aridity": refs / "aridity.tif",
        "floodplain": refs / "floodplain.tif",
        "occurrence": refs / "occurrence.tif",
    }
    return {"predict": pred, "grid": grid, "refs": paths, "pixels": int(mask.size), "tiles": len(rows)}


def bench(n: int, tile: int) -> dict:
    from lakepaper import params
    from lakepaper.postprocess.pipeline import postprocess
    from lakepaper.postprocess.references import ReferenceSet

    with tempfile.TemporaryDirectory(prefix="lakepaper-bench-") as tmp:
        w = write_world(Path(tmp), n, tile)
        t0 = time.perf_counter()
        r = postprocess(
            w["predict"],
            params.resolve("demo"),
            references=ReferenceSet(dict(w["refs"])),
            tile_grid=w["grid"],
            keep_steps=False,
        )
        wall = time.perf_counter() - t0
    c = r.counts
    polys = int(c.loc[c.rule == "vectorise", "polygons"].sum())
    rule_in = int(c.loc[c.rule == "ocean", "polygons_in"].sum())
    s = r.seconds
    return {
        "n": polys,
        "tiles": w["tiles"],
        "mpixel": w["pixels"] / 1e6,
        "vectorise_s": s["vectorise"] + s["seams"],
        "rules_s": s["rules"],
        "completion_s": s["completion"],
        "product_s": s["manual_and_product"],
        "wall_s": wall,
        "rule_in": rule_in,
        "lakes": len(r.product),
        "seam_unions": r.seams["prediction"]["unions"],
        "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--tile", type=int, default=2048, help="tile side in pixels")
    args = ap.parse_args()
    rows = []
    for n in args.sizes:
        row = bench(n, args.tile)
        rows.append(row)
        print(
            f"n={row['n']:>9,} polygons  {row['tiles']:>3} tiles  {row['mpixel']:7.1f} Mpx | "
            f"vectorise+seams {row['vectorise_s']:7.2f} s = {row['n'] / row['vectorise_s']:>9,.0f} polygons/s "
            f"({row['mpixel'] / row['vectorise_s']:5.1f} Mpx/s, {row['seam_unions']} lakes joined across tiles) | "
            f"rules {row['rules_s']:7.2f} s = {row['rule_in'] / row['rules_s']:>9,.0f} polygons/s | "
            f"completion {row['completion_s']:6.2f} s, product {row['product_s']:6.2f} s, whole pass "
            f"{row['wall_s']:7.2f} s = {row['n'] / row['wall_s']:>9,.0f} polygons/s -> {row['lakes']:,} lakes; "
            f"peak memory so far {row['peak_gb']:.1f} GB",
            flush=True,
        )
    if len(rows) >= 2:
        n = np.log([r["n"] for r in rows])
        nlogn = math.log(150) / math.log(100)
        print(f"growth exponent b of time ~ n^b (n log n over 10^4..10^6: b = {nlogn:.2f}):")
        for key in ("vectorise_s", "rules_s", "completion_s", "wall_s"):
            b = np.polyfit(n, np.log([r[key] for r in rows]), 1)[0]
            norm = [r[key] / (r["n"] * math.log(r["n"])) * 1e6 for r in rows]
            print(f"  {key:<13} b = {b:.2f}; time / (n ln n) = " + ", ".join(f"{v:.3f}" for v in norm) + " us")


if __name__ == "__main__":
    main()
