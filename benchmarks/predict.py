"""Stage 04 benchmark: how fast the U-Net maps lakes on this machine, and what the global run would cost.

Measured in one run, printed (nothing is asserted):

* this machine's fp32 and bf16 matmul rates (torch.mm of two n x n matrices, best of several);
* the model's raw forward throughput on a batch of windows held in memory (Mpixel/s of input)
  and its achieved FLOP/s, per arithmetic path (fp32 eager; bf16 autocast + channels-last), with
  the share of the bf16 matmul rate (target >= 0.3);
* the end-to-end tiled throughput: a composite-sized GeoTIFF on disk predicted by
  ``predict_tile`` (reading, padding, stitching and writing COGs included), against
  ``raw x valid fraction`` (target >= 0.85 of it), per strip loop (``--pipeline``; ``both``, the
  default, times the sequential and the overlapped loop on the same tile, alternating, best of
  ``--repeats``, and prints their ratio and what ``auto`` runs on this device). The raw rate of
  that ratio is *sustained*: the model called as many times as the tile's loop calls it, on
  batches of different windows held in memory, timed whole, in the same rounds as the end-to-end
  runs and best of as many. The best single call (the raw rate above) is printed beside it: on a
  shared machine it is 5-20 % above what the model sustains over a tile, whatever feeds it;
* km2/hour and the projected cost of the paper's global run (about 1.5e12 land pixels at 10 m)
  on this CPU and, scaled by FLOP rate, on one modern GPU;
* the share of pixels that change class between fp32 and bf16 on the same windows, and with
  ``--iou`` the stitched test-region IoU of stage 04 predicted both ways (target: change <= 0.002).

Usage: ``python benchmarks/predict.py [--profile demo] [--checkpoint build/demo/03_train/best.pt]``.
Without a checkpoint, a randomly initialised U-Net of the profile's widths is timed (speed does
not depend on the weights; the IoU comparison then compares against the fp32 output itself).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from rasterio.transform import Affine

from lakepaper import io, params
from lakepaper.predict import windows
from lakepaper.predict.model import make_forward
from lakepaper.predict.tiled import InputTile, predict_tile, resolve_pipeline

GLOBAL_PIXELS = 1.5e12  # the paper's land area at 10 m, approximately
H100_BF16_DENSE = 989e12  # FLOP/s, NVIDIA H100 SXM datasheet (dense bf16 tensor core)


def best_of(fn, repeats: int = 3) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def matmul_rate(dtype: torch.dtype, n: int = 2048) -> float:
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    return 2 * n**3 / best_of(lambda: torch.mm(a, b))


def forward_flops(model: torch.nn.Module, x: torch.Tensor) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(x)
    return float(counter.get_total_flops())


def build_model(profile: str, checkpoint: str | None):
    p = params.resolve(profile)
    if checkpoint:
        from lakepaper.train.checkpoint import load_model

        model, meta = load_model(checkpoint)
        return model.eval(), int(meta["patch_size"]), p
    from lakepaper.unet import UNet

    torch.manual_seed(0)
    return UNet(p["in_channels"], p["unet_widths"]).eval(), int(p["patch_size"]), p


def iou_change(profile: str, checkpoint: str, p: dict) -> None:
    """Stage 04's stitched IoU over the test regions with fp32 and with bf16 (every tile, both ways)."""
    from lakepaper import paths
    from lakepaper.predict.cluster import predict_tiles
    from lakepaper.predict.evaluate import pooled, region_counts

    tiles = sorted((paths.stage_dir(profile, "01_composite") / "tiles").glob("*.tif"))
    iou = {}
    with tempfile.TemporaryDirectory() as tmp:
        for precision in ("fp32", "bf16"):
            out = Path(tmp) / precision
            predict_tiles(tiles, checkpoint, out, edge=p["edge_px"], threshold=p["prob_threshold"],
                          batch=p["batch_size"], precision=precision, scheduler="sync", progress=False)  # fmt: skip
            counts = region_counts(out, paths.stage_dir(profile, "02_samples"), split="test")
            iou[precision] = float(pooled(counts).loc["all", "iou"])
    print(
        f"stitched test IoU over {len(tiles)} tiles: fp32 {iou['fp32']:.5f}, bf16 {iou['bf16']:.5f}, "
        f"change {iou['bf16'] - iou['fp32']:+.5f} (target: |change| <= 0.002)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="demo")
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--tile-px", type=int, default=3072, help="side of the synthetic tile for the end-to-end run")
    ap.add_argument("--pipeline", default="both", choices=("both", "auto", "sequential", "overlapped"),
                    help="strip loop(s) of the end-to-end run")  # fmt: skip
    ap.add_argument("--precision", default="best", choices=("best", "fp32", "bf16"),
                    help="arithmetic of the end-to-end run (best: the faster raw forward)")  # fmt: skip
    ap.add_argument("--repeats", type=int, default=2, help="end-to-end runs per strip loop (best taken)")
    ap.add_argument("--iou", action="store_true", help="also stage 04's test IoU in fp32 and bf16 (needs the build)")
    args = ap.parse_args()

    torch.set_num_threads(torch.get_num_threads())
    fp32, bf16 = matmul_rate(torch.float32), matmul_rate(torch.bfloat16)
    print(f"threads {torch.get_num_threads()}; matmul fp32 {fp32 / 1e9:.1f} GFLOP/s, bf16 {bf16 / 1e9:.1f} GFLOP/s")

    if args.iou and not args.checkpoint:
        ap.error("--iou needs --checkpoint (a trained model of the build)")
    model, size, p = build_model(args.profile, args.checkpoint)
    edge = int(p["edge_px"])
    x = np.random.default_rng(0).random((args.batch, p["in_channels"], size, size)).astype(np.float32)
    flops = forward_flops(model, torch.from_numpy(x))
    print(f"model: widths {p['unet_widths']}, window {size} px, {flops / args.batch / 1e9:.2f} GFLOP per window")

    raw, outputs = {}, {}
    for precision in ("fp32", "bf16"):
        f = make_forward(model, precision, device="cpu")
        outputs[precision] = f(x)
        seconds = best_of(lambda f=f: f(x))
        raw[precision] = args.batch * size * size / seconds
        achieved = flops / seconds
        print(
            f"  {precision}: raw forward {raw[precision] / 1e6:.2f} Mpixel/s, {achieved / 1e9:.1f} GFLOP/s = "
            f"{achieved / fp32:.2f} of fp32 matmul, {achieved / bf16:.2f} of bf16 matmul"
        )
    a, b = outputs["fp32"] > p["prob_threshold"], outputs["bf16"] > p["prob_threshold"]
    print(f"  bf16 vs fp32 on the same windows: {(a != b).mean():.5f} of pixels change class")
    best = max(raw, key=raw.get) if args.precision == "best" else args.precision

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        n = args.tile_px
        arr = (np.random.default_rng(1).random((6, n, n)) * 1000).astype(np.int16)
        io.write_raster(tmp / "tile.tif", arr, crs="EPSG:32633", transform=Affine(10, 0, 0, 0, -10, 0),
                        nodata=-32768, band_names=["B2", "B3", "B4", "B11", "NDWI", "clear_count"],
                        tags={"SCALE": 1000})  # fmt: skip
        tile = InputTile.open(tmp / "tile.tif", ("B2", "B3", "B4", "B11", "NDWI"))
        f = make_forward(model, best, device="cpu")
        modes = ("sequential", "overlapped") if args.pipeline == "both" else (args.pipeline,)
        calls = windows.count((n, n), size, edge) // args.batch  # the loop's full batches
        ring = [np.random.default_rng(2 + k).random(x.shape).astype(np.float32) for k in range(16)]
        seconds, model_s, runs, sustained = {}, {}, {mode: [] for mode in modes}, []
        for _ in range(args.repeats):  # alternating, so that a slower moment of the machine hits all
            t0 = time.perf_counter()
            for k in range(calls):
                f(ring[k % len(ring)])
            sustained.append(calls * args.batch * size * size / (time.perf_counter() - t0))
            for mode in modes:
                info = predict_tile(f, tile, tmp / "p.tif", tmp / "m.tif", size=size, edge=edge, batch=args.batch,
                                    pipeline=mode)  # fmt: skip
                key = info["pipeline"]
                runs[mode].append(info["seconds"])
                if info["seconds"] < seconds.get(key, np.inf):
                    seconds[key], model_s[key] = info["seconds"], info["model_seconds"]
    valid = windows.valid_fraction(size, edge)
    held = max(sustained)
    print(f"end to end ({best}, {n} x {n} px tile from disk, {info['windows']} windows, best of {args.repeats}):")
    print(f"  raw forward sustained over the loop's {calls} calls: {held / 1e6:.2f} Mpixel/s "
          f"({held / raw[best]:.2f} of the best single call, {raw[best] / 1e6:.2f})")  # fmt: skip
    for key in seconds:
        rate = info["pixels"] / seconds[key]
        print(f"  {key:>10}: {rate / 1e6:.2f} Mpixel/s = {rate / (held * valid):.2f} of raw (sustained) x valid "
              f"fraction ({valid:.3f}; target >= 0.85), {rate / (raw[best] * valid):.2f} of the best call's; "
              f"model {model_s[key] / seconds[key]:.2f} of the wall time")  # fmt: skip
    if len(seconds) == 2:
        pairs = np.array(runs["sequential"]) / np.array(runs["overlapped"])  # each pair run back to back
        print(f"  overlapped / sequential throughput: {seconds['sequential'] / seconds['overlapped']:.2f} (best of "
              f"each), {np.median(pairs):.2f} (median of {len(pairs)} pairs, {pairs.min():.2f}..{pairs.max():.2f}); "
              f"auto runs {resolve_pipeline('auto', 'cpu')} on this CPU")  # fmt: skip
    e2e = info["pixels"] / min(seconds.values())
    km2_h = e2e * 3600 * 1e-4
    cpu_days = GLOBAL_PIXELS / e2e / 86400
    share = (flops / best_of(lambda: f(x))) / bf16  # of this CPU's bf16 matmul rate
    flop_per_map_px = flops / args.batch / (size * size * valid)
    gpu_hours = GLOBAL_PIXELS * flop_per_map_px / (H100_BF16_DENSE * share) / 3600
    print(f"{km2_h:,.0f} km2/hour here; the paper's global run (~{GLOBAL_PIXELS:.1e} px of map, "
          f"{flop_per_map_px / 1e6:.2f} MFLOP each): {cpu_days:,.0f} days on this CPU; ~{gpu_hours:,.1f} hours of "
          f"model time on one H100 if it reached the same share ({share:.2f}) of its {H100_BF16_DENSE / 1e12:.0f} "
          "TFLOP/s bf16 peak (an estimate: reading and writing not included)")  # fmt: skip
    if args.iou:
        iou_change(args.profile, args.checkpoint, p)


if __name__ == "__main__":
    main()
