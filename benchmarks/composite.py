"""Benchmark of the local compositing backend (stage 01): prints figures, asserts nothing.

Measured in one run, on this machine:

1. memory-copy bandwidth (``np.copyto`` of a buffer as large as the scene stack);
2. the compositing kernel on an in-memory stack of 40 scenes of 1024 x 1024 (B2 B3 B4 B8 B11 as
   uint16 plus a clear mask), whole stack at once and scene by scene, as MB/s of scene data
   consumed and as a share of the copy bandwidth (issue 3's target: >= 0.25);
   ``np.nanmean`` over the NaN-masked stack for comparison;
3. end to end from files: ``composite_tile`` over every tile of a world beside the plain
   read-and-decode rate of the same GeoTIFFs (target: >= 0.7 of the read rate).

Usage:
    .venv/bin/python benchmarks/composite.py [--world build/demo/00_world] [--scenes 40]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def in_memory(scenes: int, size: int) -> None:
    from lakepaper.composite.kernel import Accumulator, composite_stack

    rng = np.random.default_rng(0)
    bands = rng.integers(1, 10000, (scenes, 5, size, size), dtype=np.uint16)
    clear = rng.random((scenes, size, size)) < 0.7
    nbytes = bands.nbytes + clear.nbytes
    src = np.ones(nbytes // 8)
    dst = np.empty_like(src)
    t_copy = best_of(lambda: np.copyto(dst, src), 5)
    composite_stack(bands[:1], clear[:1])  # compile / load the numba kernel first

    def per_scene() -> None:
        acc = Accumulator((size, size))
        for s in range(scenes):
            acc.add(bands[s], clear[s])
        acc.result()

    t_stack = best_of(lambda: composite_stack(bands, clear), 3)
    t_scene = best_of(per_scene, 3)
    t_nan = best_of(lambda: np.nanmean(np.where(clear[:, None], bands, np.nan).astype(np.float32), axis=0), 1)
    mb = nbytes / 1e6
    print(f"scene stack: {scenes} scenes x 5 bands x {size}^2 uint16 + mask = {mb:.0f} MB")
    print(f"memory copy bandwidth        {mb / t_copy:8.0f} MB/s")
    for name, t in (("kernel, whole stack", t_stack), ("kernel, scene by scene", t_scene), ("np.nanmean", t_nan)):
        print(f"{name:28s} {mb / t:8.0f} MB/s   {t_copy / t:5.3f} of copy bandwidth")


def end_to_end(world_dir: Path | None) -> None:
    from lakepaper import io, params
    from lakepaper.composite.local import composite_tile, select_scenes
    from lakepaper.world.files import WorldFiles

    p = params.resolve("demo")
    if world_dir is None or not (world_dir / "world.json").exists():
        from lakepaper.world.generate import generate_world
        from lakepaper.world.sites import WorldConfig

        world_dir = Path(tempfile.mkdtemp()) / "world"
        print(f"no world given: generating a small one in {world_dir}")
        generate_world(
            WorldConfig(tile_px=512, scenes_per_tile=12, tiles=("T01", "T05", "T11")),
            world_dir,
            progress=False,
            parameters={"n_sample_regions": 10},
        )
    world = WorldFiles(world_dir)
    tiles = list(world.tiles().tile)
    files = [
        world.scene_path(t, s.system_index, prod)
        for t in tiles
        for s in select_scenes(world, t, p).itertuples()
        for prod in ("L2A_10m", "L2A_20m", "CLDPRB")
    ]
    size_mb = sum(f.stat().st_size for f in files) / 1e6
    t0 = time.perf_counter()
    decoded = sum(io.read_raster(f)[0].nbytes for f in files) / 1e6
    t_read = time.perf_counter() - t0
    out = Path(tempfile.mkdtemp())
    t0 = time.perf_counter()
    for t in tiles:
        composite_tile(world, t, out / f"{t}.tif", p=p)
    t_comp = time.perf_counter() - t0
    print(
        f"end to end over {len(tiles)} tiles of {world_dir}: {len(files)} files, {size_mb:.0f} MB on disk, "
        f"{decoded:.0f} MB decoded"
    )
    print(f"plain read-and-decode        {decoded / t_read:8.0f} MB/s decoded ({t_read:.1f} s)")
    print(
        f"composite_tile, all tiles    {decoded / t_comp:8.0f} MB/s decoded ({t_comp:.1f} s)   "
        f"{t_read / t_comp:5.3f} of the read rate"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--world", type=Path, default=Path("build/demo/00_world"), help="a generated world folder")
    parser.add_argument("--scenes", type=int, default=40, help="scenes in the in-memory stack")
    parser.add_argument("--size", type=int, default=1024, help="side of the in-memory scenes, pixels")
    args = parser.parse_args()
    in_memory(args.scenes, args.size)
    end_to_end(args.world)


if __name__ == "__main__":
    main()
