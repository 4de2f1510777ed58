"""Peak memory of stage 01's compositing from STAC: bounded by the block, not by the scenes.

Writes a synthetic stack of scenes for one tile as a small static STAC catalog in the simulated
world's layout (Earth Search's ``sentinel-2-l2a`` and ``sentinel-2-l1c`` collections, one COG per
band, written offline by :func:`lakepaper.world.stac.write_scene_assets` and
:func:`~lakepaper.world.stac.finish_catalog`; same bands, grids, nodata and COG settings as the
world's; the values are fake: smooth fields, blobs of cloud, some water and snow) and runs
:func:`lakepaper.composite.sources.composite_stac_tile` (``cloud="asset"``: the items'
``s2cloudless`` COGs) on it in a fresh subprocess per configuration, reading that process's peak
resident memory (``VmHWM`` of /proc/self/status, reset when the child is ready; ``ru_maxrss``
where there is no /proc):

1. 10, 20, 40 scenes at a fixed block size: peak memory stays flat;
2. block sizes up to the whole tile at 40 scenes: peak memory grows with the block.

Each row shows the peak of the process, the part above the process's own baseline (imports,
numba's cached kernels and the catalog's items loaded, before the call), the model of
``composite_stac_tile``'s docstring, and what the whole stack would take in memory at once
(scenes x 5 bands x pixels x 2 bytes: B2 B3 B4 B8 and B11 at 10 m as uint16), which is what an
unchunked ``np.nanmean`` composite would hold.

Usage:
    .venv/bin/python benchmarks/composite_memory.py [--size 2048] [--scenes 10 20 40]
        [--block-rows 256 512 1024 2048] [--fixed-block 256] [--batch 8] [--workers 2] [--keep DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

TILE = "T00"
EPSG = 32633
#: The first scene's date (then one a week).
START = "2018-01-01"


def make_stack(folder: Path, scenes: int, size: int, seed: int = 0) -> Path:
    """A static STAC catalog in ``folder/stac``: one tile of ``size`` x ``size`` 10 m pixels, ``scenes`` scenes.

    Also ``folder/scenes.csv``, the scene table (one row per scene, with its item ids), and
    ``folder/stack.json``, what was made (for ``--keep``).
    """
    import cv2
    import pandas as pd
    from rasterio.transform import Affine

    from lakepaper.world.stac import finish_catalog, write_scene_assets

    if size % 16:
        raise SystemExit(f"--size {size}: expected a multiple of 16 (20 m and 80 m grids)")
    folder.mkdir(parents=True, exist_ok=True)
    catalog = folder / "stac"
    if catalog.exists():
        shutil.rmtree(catalog)
    left, top = 400000.0, 6000000.0
    record = {"tile": TILE, "bounds": [left, top - 10.0 * size, left + 10.0 * size, top], "epsg": EPSG}
    rng = np.random.default_rng(seed)
    t10 = Affine(10.0, 0, left, 0, -10.0, top)
    t20, t80 = t10 @ Affine.scale(2), t10 @ Affine.scale(8)

    def field(n: int, coarse: int, lo: float, hi: float) -> np.ndarray:
        small = rng.random((coarse, coarse)).astype(np.float32)
        return lo + (hi - lo) * cv2.resize(small, (n, n), interpolation=cv2.INTER_CUBIC).clip(0, 1)

    water = field(size // 2, 12, 0, 1) > 0.8  # 20 m
    rows, written = [], {}
    for k in range(scenes):
        date = pd.Timestamp(START) + pd.Timedelta(days=7 * k)
        sid = f"{date:%Y%m%d}T103000_{date:%Y%m%d}T103000_{TILE}"
        cloud = field(size, 24, 0, 100) * (k % 3 != 0)  # one scene in three cloudless
        l2a = np.stack([field(size, 32, 300, 3000) for _ in range(4)]).astype(np.uint16)
        l2a += rng.integers(0, 50, l2a.shape, dtype=np.uint16)  # sensor noise
        b11 = field(size // 2, 32, 500, 3000).astype(np.uint16)
        scl = np.where(water, 6, 4).astype(np.uint16)
        scl[field(size // 2, 8, 0, 1) > 0.9] = 11
        l1c = np.stack([field(size // 8, 8, 500, 4000) for _ in range(13)]).astype(np.uint16)
        scene = SimpleNamespace(l2a_10m=l2a, l2a_20m=np.stack([b11, scl]), l1c=l1c, cloud_prob=cloud.astype(np.uint8))
        written[(TILE, sid)] = write_scene_assets(
            catalog / ".scenes" / TILE / sid, scene, crs=f"EPSG:{EPSG}", t10=t10, t20=t20, tc=t80, date=date.date()
        )
        rows.append(
            {
                "system_index": sid,
                "tile": TILE,
                "date": date.date().isoformat(),
                "SPACECRAFT_NAME": "Sentinel-2A" if k % 2 == 0 else "Sentinel-2B",
                "CLOUDY_PIXEL_PERCENTAGE": round(float((cloud > 50).mean() * 100), 3),
                "MEAN_SOLAR_ZENITH_ANGLE": 40.0,
                "MEAN_SOLAR_AZIMUTH_ANGLE": 150.0 + k % 20,
            }
        )
    table = finish_catalog(catalog, pd.DataFrame(rows), {TILE: record}, written)
    table.to_csv(folder / "scenes.csv", index=False)
    (folder / "stack.json").write_text(json.dumps({"scenes": scenes, "size": size, "seed": seed}))
    return folder


def _reusable(folder: Path, scenes: int, size: int) -> bool:
    """True when ``folder`` holds a stack of at least ``scenes`` scenes of ``size`` px (``--keep``)."""
    try:
        made = json.loads((folder / "stack.json").read_text())
    except (OSError, ValueError):
        return False
    return made.get("size") == size and made.get("scenes", 0) >= scenes and (folder / "stac" / "catalog.json").exists()


def _params(scenes: int) -> dict:
    """The demo parameters, the date range cut to the first ``scenes`` scenes, every scene kept."""
    import pandas as pd

    from lakepaper import params

    end = pd.Timestamp(START) + pd.Timedelta(days=7 * (scenes - 1))
    return {
        **params.resolve("demo"),
        "start_date": START,
        "end_date": end.date().isoformat(),
        "max_scene_cloud_pct": 100.1,
    }


def _peak_rss() -> int:
    """This process's peak resident memory, bytes: VmHWM from /proc (Linux), else ru_maxrss.

    ru_maxrss alone misleads here: Linux carries it across fork and exec, so a child started by a
    parent that once held gigabytes reports the parent's peak. :func:`_reset_peak` clears VmHWM.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _reset_peak() -> None:
    """Reset the peak-RSS counter to the current RSS (Linux >= 4.0; elsewhere a no-op)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def child(folder: Path, scenes: int, block_rows: int | None, batch: int, workers: int) -> dict:
    """Run one configuration in this process; report its peak memory (call this in a fresh process)."""
    import dask.threaded  # noqa: F401  (imported by the call: part of the baseline)
    import odc.stac  # noqa: F401

    from lakepaper.composite.kernel import Accumulator
    from lakepaper.composite.masks import scene_mask
    from lakepaper.composite.sources import composite_stac_tile, find_tiles

    p = _params(scenes)
    Accumulator((2, 2), parallel=False).add(np.ones((1, 5, 2, 2), np.uint16), np.ones((1, 2, 2), bool))
    scene_mask(
        np.ones((4, 8, 8), np.uint16),
        np.ones((8, 8), np.uint16),
        np.ones((4, 4), np.uint16),
        np.zeros((8, 8), np.uint8),
        azimuth_deg=150.0,
        p=p,
    )
    items = find_tiles(str(folder / "stac"), [TILE], p)[TILE]
    _reset_peak()
    base = _peak_rss()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        info = composite_stac_tile(
            TILE,
            items,
            Path(tmp) / "c.tif",
            p,
            batch=batch,
            block_rows=block_rows,
            num_workers=workers,
            cloud="asset",
        )
        seconds = time.perf_counter() - t0
    peak = _peak_rss()
    return {"scenes": info["n_scenes"], "peak": peak, "base": base, "seconds": seconds}


def _chunk_rows() -> int:
    from lakepaper.composite import sources

    return int(getattr(sources, "_CHUNK", 512))


def model_bytes(size: int, block_rows: int, halo: int, batch: int, workers: int, n_bands: int = 5) -> int:
    """The memory model of ``composite_stac_tile``'s docstring (working set above the baseline)."""
    tall = min(block_rows + 2 * halo, size)
    buffers = 2 * batch * tall * size * 11
    blocks = 2 * block_rows * size * 64
    scenes = workers * tall * size * 30
    output = (n_bands + 1) * size * size * 2
    return buffers + blocks + scenes + output


def run(folder: Path, scenes: int, block_rows: int, batch: int, workers: int) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        str(folder),
        "--scenes",
        str(scenes),
        "--block-rows",
        str(block_rows),
        "--batch",
        str(batch),
        "--workers",
        str(workers),
    ]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(folder: Path, size: int, scene_counts, block_sizes, fixed_block: int, batch: int, workers: int) -> None:
    from lakepaper.composite.local import halo_rows

    halo = halo_rows(_params(1))
    mb = 2**20
    print(f"tile {size} x {size} px, batch {batch}, {workers} worker thread(s), halo {halo} rows")
    print("peak RSS of a fresh process per row; 'above base': above its RSS before composite_stac_tile")
    head = (
        f"{'scenes':>6} {'block rows':>10} {'peak MB':>8} {'above base':>10} {'model MB':>9} "
        f"{'whole stack MB':>14} {'seconds':>7}"
    )
    print(head)
    configs = [(n, fixed_block) for n in scene_counts]
    configs += [(max(scene_counts), b) for b in block_sizes if (max(scene_counts), b) not in configs]
    for n, b in configs:
        r = run(folder, n, b, batch, workers)
        rows = min(b, size)
        stack = r["scenes"] * 5 * size * size * 2
        cells = (
            f"{r['scenes']:>6}",
            f"{rows:>10}",
            f"{r['peak'] / mb:>8.0f}",
            f"{(r['peak'] - r['base']) / mb:>10.0f}",
            f"{model_bytes(size, rows, halo, batch, workers) / mb:>9.0f}",
            f"{stack / mb:>14.0f}",
            f"{r['seconds']:>7.1f}",
        )
        print(" ".join(cells))
    print(
        "model: the memory formula of composite_stac_tile's docstring; not in it: a fixed few tens of MB (thread\n"
        "stacks and allocator arenas, GDAL's block cache). Fewer scenes than 2 x batch read below it: pages\n"
        "of a batch buffer that no scene fills are never resident. whole stack: the scenes' B2 B3 B4 B8 B11\n"
        "at 10 m as uint16 held at once, what an unchunked composite would need. odc-stac reads whole chunks of\n"
        f"{_chunk_rows()} rows: a block with its halos shorter than that reads (and holds, per worker) more rows than\n"
        "the model's block + 2 halos, so small blocks sit above the model and re-read chunks (slower)"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--size", type=int, default=2048, help="tile side, 10 m pixels, a multiple of 16 (%(default)s)")
    parser.add_argument(
        "--scenes", type=int, nargs="+", default=[10, 20, 40], help="scene counts of the rows at --fixed-block"
    )
    parser.add_argument(
        "--block-rows",
        type=int,
        nargs="+",
        default=[256, 512, 1024, 2048],
        help="block sizes (rows, multiples of 8) of the rows at the most scenes",
    )
    parser.add_argument("--fixed-block", type=int, default=256, help="block rows of the scene-count rows")
    parser.add_argument("--batch", type=int, default=8, help="scenes fed to the kernel at once (%(default)s)")
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="threads of composite_stac_tile (default: cores)"
    )
    parser.add_argument(
        "--keep", type=Path, help="write (or reuse, same size and enough scenes) the catalog here, not in a temp folder"
    )
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.scenes[0], args.block_rows[0], args.batch, args.workers)))
        return
    folder = args.keep or Path(tempfile.mkdtemp()) / "stack"
    try:
        if not _reusable(folder, max(args.scenes), args.size):
            t0 = time.perf_counter()
            make_stack(folder, max(args.scenes), args.size)
            print(
                f"wrote a STAC catalog of {max(args.scenes)} synthetic scenes of {args.size}^2 px in {folder / 'stac'} "
                f"in {time.perf_counter() - t0:.0f} s"
            )
        table(folder, args.size, args.scenes, args.block_rows, args.fixed_block, args.batch, args.workers)
    finally:
        if args.keep is None:
            shutil.rmtree(folder.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
