"""Stage 04 on one GPU: how close the U-Net comes to the GPU's bf16 rate, and what the global run would cost.

Measured in one run on the visible CUDA device (``--device cuda``, the default), printed, and with ``--json``
written to a file (nothing is asserted; the targets are printed beside the numbers):

* the bf16 matmul rate (``torch.mm`` of two n x n bfloat16 matrices, best of three), the reference;
* the raw forward rate of the U-Net at the paper widths (64..1024, 576 x 576 windows, bf16 autocast,
  channels-last, windows already on the GPU), in windows/s and as a share of that matmul rate
  (target >= 0.45), eager and compiled (``torch.compile`` modes ``default`` and ``reduce-overhead``, the
  latter with CUDA graphs), at batches of 16, 32 and 64 windows and at the batch one strip of the tile
  gives (a strip's windows are one batch at most: 22 for an 8192 px tile);
* end to end, :func:`lakepaper.predict.tiled.predict_tile` on a synthetic 8192 x 8192 int16 five-band tile
  written to a temporary folder (reading, padding, the model call from host memory, stitching and writing
  both COGs included) with the model call of :func:`lakepaper.predict.model.make_forward` in the fastest
  compile mode: its window rate as a share of the raw rate at the same batch and mode (target >= 0.8), and
  the model's share of the wall time;
* the projected GPU-hours for the global land surface (about 1.5e12 pixels at 10 m) at the end-to-end rate
  (target <= 6 h on one H200) and at the raw rate;
* which compile mode was fastest, against what ``compile="auto"`` runs on CUDA
  (``lakepaper.predict.model.AUTO_COMPILE``).

It needs torch with CUDA, numpy, rasterio and this package only (no geopandas, no pyogrio: checked at the
end, and by ``tests/test_predict.py``). A full run takes about 3-5 minutes on an H200 (mostly compiling: one
graph per batch shape and mode); ``--quick`` (a 4096 px tile, the strip's batch only, no CUDA graphs) about
1-2. Without a CUDA device it stops with a message; ``--device cpu --quick`` runs the same code with a tiny
U-Net in seconds, to check the script.

Usage::

    python benchmarks/predict_gpu.py [--quick] [--json build/predict_gpu.json]
    python benchmarks/predict_gpu.py --device cpu --quick      # the script itself, on the CPU
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

GLOBAL_PIXELS = 1.5e12  # the paper's land area at 10 m, approximately
TARGETS = {"raw_share": 0.45, "e2e_share": 0.8, "gpu_hours": 6.0}
BANDS = ("B2", "B3", "B4", "B11", "NDWI")
#: Modules this script must not need (the vector stack): a GPU machine may lack them.
FORBIDDEN = ("geopandas", "pyogrio", "fiona")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"), help="cuda (default); cpu checks the script")
    ap.add_argument("--quick", action="store_true", help="a smaller tile, one batch, no CUDA graphs (1-2 min)")
    ap.add_argument("--profile", default=None, help="U-Net widths and window: paper (cuda default) or tiny (cpu)")
    ap.add_argument("--batches", default=None, help="raw-forward batches, comma-separated (default 16,32,64)")
    ap.add_argument("--modes", default=None, help="compile modes to time (default off,default,reduce-overhead)")
    ap.add_argument("--tile-px", type=int, default=None, help="side of the synthetic tile (default 8192)")
    ap.add_argument("--repeats", type=int, default=None, help="end-to-end runs, best taken (default 2)")
    ap.add_argument("--seconds", type=float, default=None, help="least time per raw measurement (default 1.5)")
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = ap.parse_args(argv)
    cpu, quick = args.device == "cpu", args.quick
    args.profile = args.profile or ("tiny" if cpu else "paper")
    args.tile_px = args.tile_px or (512 if cpu else 4096 if quick else 8192)
    args.repeats = args.repeats or (1 if quick else 2)
    args.seconds = args.seconds or (0.3 if cpu else 0.8 if quick else 1.5)
    modes = args.modes or ("off" if cpu and quick else "off,default" if quick else "off,default,reduce-overhead")
    args.modes = [m.strip() for m in modes.split(",") if m.strip()]
    args.batches = None if args.batches is None else [int(b) for b in args.batches.split(",")]
    return args


def environment(device: str) -> dict:
    import rasterio
    import torch

    env = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "rasterio": rasterio.__version__,
        "gdal": rasterio.__gdal_version__,
        "cpu_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
    }
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        env |= {
            "gpu": torch.cuda.get_device_name(0),
            "gpu_memory_gib": round(props.total_memory / 2**30, 1),
            "capability": f"{props.major}.{props.minor}",
            "cudnn": torch.backends.cudnn.version(),
        }
    else:
        env["gpu"] = None
    return env


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def per_call(fn, device: str, seconds: float, repeats: int = 3) -> float:
    """Seconds per call of ``fn``: warmed up, then the best of ``repeats`` loops of at least ``seconds`` each."""
    fn()
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    n = max(1, math.ceil(seconds / max(time.perf_counter() - t0, 1e-6)))
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        _sync(device)
        best = min(best, (time.perf_counter() - t0) / n)
    return best


def matmul_rate(device: str, seconds: float) -> float:
    """bf16 FLOP/s of a large square matmul."""
    import torch

    n = 8192 if device == "cuda" else 1024
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    return 2 * n**3 / per_call(lambda: torch.mm(a, b), device, seconds)


def build_net(profile: str, device: str):
    import torch

    from lakepaper import params
    from lakepaper.unet import UNet

    p = params.resolve(profile)
    torch.manual_seed(0)
    net = UNet(p["in_channels"], p["unet_widths"], p["unet_upsample"]).eval()
    return net.to(device, memory_format=torch.channels_last), p


def window_flops(net, size: int, device: str) -> float:
    """FLOPs of the forward pass of one window."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, net.in_channels, size, size, device=device)
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        net(x)
    return float(counter.get_total_flops())


def raw_call(net, mode: str, device: str):
    """The network on windows already on the device, bf16 autocast, eager (``off``) or compiled in ``mode``."""
    import torch

    fn = net if mode == "off" else torch.compile(net, mode=mode, dynamic=False)

    def call(x):
        if mode == "reduce-overhead" and device == "cuda":
            torch.compiler.cudagraph_mark_step_begin()
        with torch.inference_mode(), torch.autocast(device, dtype=torch.bfloat16):
            return fn(x)

    return call


def measure_raw(
    net, p: dict, device: str, modes: list[str], batches: list[int], seconds: float, strip: int | None = None
) -> list[dict]:
    """Windows/s of the raw forward per compile mode and batch (modes beyond ``off`` and ``default``: at the
    ``strip`` batch and the best batch so far only); compile time of the first call."""
    import torch
    import torch._dynamo

    torch._dynamo.config.recompile_limit = 64  # one graph per batch shape, several shapes
    size = int(p["patch_size"])
    rows = []
    for mode in modes:
        torch._dynamo.reset()
        these = batches
        if mode not in ("off", "default") and rows:  # CUDA graphs: at the strip's batch and the best so far only
            these = sorted(
                {batches[0] if strip is None else strip, max(rows, key=lambda r: r["windows_per_s"])["batch"]}
            )
        for batch in these:
            call = raw_call(net, mode, device)
            x = torch.rand(batch, net.in_channels, size, size, device=device).contiguous(
                memory_format=torch.channels_last
            )
            t0 = time.perf_counter()
            try:
                call(x)
                _sync(device)
            except Exception as exc:  # a mode this build cannot run: say so, go on
                print(f"  {mode:>15} batch {batch:>3}: failed ({type(exc).__name__}: {str(exc).splitlines()[0]})")
                break
            first = time.perf_counter() - t0
            seconds_per_call = per_call(lambda call=call, x=x: call(x), device, seconds)
            rows.append({"mode": mode, "batch": batch, "windows_per_s": batch / seconds_per_call, "first_s": first})
            print(
                f"  {mode:>15} batch {batch:>3}: {batch / seconds_per_call:8.1f} windows/s (first call {first:.1f} s)"
            )
            del x
        if device == "cuda":
            torch.cuda.empty_cache()
    return rows


def write_tile(path: Path, n: int) -> float:
    """A synthetic composite-like tile: int16 x1000, five named bands, deflate as stage 01 writes; seconds taken."""
    import rasterio
    from rasterio.transform import Affine

    from lakepaper.io import GTIFF_OPTIONS

    t0 = time.perf_counter()
    rng = np.random.default_rng(1)
    profile = dict(GTIFF_OPTIONS, count=len(BANDS), height=n, width=n, dtype="int16", crs="EPSG:32633",
                   transform=Affine(10, 0, 500000, 0, -10, 4000000), nodata=-32768, num_threads="all_cpus")  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        for r0 in range(0, n, 1024):
            rows = min(1024, n - r0)
            data = rng.integers(0, 1000, (len(BANDS), rows, n), dtype=np.int16)
            dst.write(data, window=rasterio.windows.Window(0, r0, n, rows))
        for i, b in enumerate(BANDS, 1):
            dst.set_band_description(i, b)
        dst.update_tags(SCALE=1000)
    return time.perf_counter() - t0


def end_to_end(net, p: dict, device: str, mode: str, batch: int, n: int, repeats: int, tmp: Path) -> dict:
    """``predict_tile`` on a synthetic n x n tile with ``make_forward``'s call (bf16, compile ``mode``); best run."""
    from lakepaper.predict.model import make_forward
    from lakepaper.predict.tiled import InputTile, predict_tile

    size, edge = int(p["patch_size"]), int(p["edge_px"])
    written = write_tile(tmp / "tile.tif", n)
    print(f"  synthetic {n} x {n} tile written in {written:.1f} s")
    tile = InputTile.open(tmp / "tile.tif", BANDS)
    forward = make_forward(net, "bf16", device, compile=mode)
    t0 = time.perf_counter()
    forward(np.zeros((batch, len(BANDS), size, size), np.float32))  # compile (and cuDNN's choice) before timing
    warm = time.perf_counter() - t0
    best = None
    for _ in range(repeats):
        info = predict_tile(forward, tile, tmp / "p.tif", tmp / "m.tif", size=size, edge=edge, batch=batch)
        if best is None or info["seconds"] < best["seconds"]:
            best = info
    best |= {"mode": forward.compile, "batch": batch, "warm_up_s": warm}
    return best


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print(
            f"predict_gpu: no CUDA device is visible (torch {torch.__version__}, CUDA build {torch.version.cuda}); "
            "this benchmark measures a GPU. Run it on a machine with one, or `--device cpu --quick` to check the "
            "script; benchmarks/predict.py measures the CPU.",
            file=sys.stderr,
        )
        return 2
    from lakepaper.predict import windows
    from lakepaper.predict.model import AUTO_COMPILE

    started = time.perf_counter()
    device = args.device
    env = environment(device)
    print(f"device: {env['gpu'] or 'CPU'}; torch {env['torch']} (CUDA {env['cuda']}, cuDNN {env.get('cudnn')}); "
          f"rasterio {env['rasterio']} (GDAL {env['gdal']}); {env['cpu_cores']} CPU cores")  # fmt: skip
    if device == "cuda":
        torch.backends.cudnn.benchmark = True
    mm = matmul_rate(device, args.seconds)
    print(f"bf16 matmul: {mm / 1e12:.1f} TFLOP/s")

    net, p = build_net(args.profile, device)
    size, edge = int(p["patch_size"]), int(p["edge_px"])
    flops = window_flops(net, size, device)
    strip = len(windows.starts(args.tile_px, size, edge))  # windows of one strip: a model call's batch at most
    batches = sorted(set(args.batches or ([] if args.quick else [16, 32, 64])) | {strip})
    print(f"model: {args.profile} widths {p['unet_widths']}, {size} px windows, edge {edge}: "
          f"{flops / 1e9:.3g} GFLOP per window; a {args.tile_px} px tile's strips hold {strip} windows")  # fmt: skip
    print("raw forward (windows on the device, bf16 autocast, channels-last):")
    raw = measure_raw(net, p, device, args.modes, batches, args.seconds, strip)
    for r in raw:
        r["share_of_matmul"] = r["windows_per_s"] * flops / mm
    best = max(raw, key=lambda r: r["windows_per_s"])
    at_strip = [r for r in raw if r["batch"] == strip]
    fastest = max(at_strip, key=lambda r: r["windows_per_s"]) if at_strip else best
    print(f"  best: {best['mode']} at batch {best['batch']}, {best['share_of_matmul']:.3f} of the bf16 matmul rate "
          f"(target >= {TARGETS['raw_share']}); eager best "
          f"{max((r['share_of_matmul'] for r in raw if r['mode'] == 'off'), default=float('nan')):.3f}")  # fmt: skip
    print(f"  at the strip's batch ({strip}): fastest {fastest['mode']}; compile='auto' runs "
          f"{AUTO_COMPILE.get(device, 'off')} on {device}")  # fmt: skip

    print(f"end to end (predict_tile, {fastest['mode']}, batch {strip}, best of {args.repeats}):")
    with tempfile.TemporaryDirectory(prefix="lakepaper-gpu-") as tmp:
        e2e = end_to_end(net, p, device, fastest["mode"], strip, args.tile_px, args.repeats, Path(tmp))
    ref = next(r for r in raw if r["mode"] == fastest["mode"] and r["batch"] == strip)
    e2e_windows = e2e["windows"] / e2e["seconds"]
    e2e_px = e2e["pixels"] / e2e["seconds"]
    keep = (size - 2 * edge) ** 2
    share = e2e_windows / ref["windows_per_s"]
    print(f"  {e2e['pixels'] / 1e6:.1f} Mpixel, {e2e['windows']} windows in {e2e['seconds']:.2f} s "
          f"(model {e2e['model_seconds'] / e2e['seconds']:.2f} of it; warm-up {e2e['warm_up_s']:.1f} s): "
          f"{e2e_windows:.1f} windows/s = {share:.3f} of the raw rate at that batch and mode "
          f"(target >= {TARGETS['e2e_share']}), {e2e_windows / best['windows_per_s']:.3f} of the best raw rate; "
          f"{e2e_px / 1e6:.1f} Mpixel/s, {e2e_px * 3600 * 1e-4 / 1e6:.2f} million km2/hour")  # fmt: skip
    hours_e2e = GLOBAL_PIXELS / e2e_px / 3600
    hours_raw = GLOBAL_PIXELS / (best["windows_per_s"] * keep) / 3600
    where = f"one {env['gpu']}" if env["gpu"] else "this CPU"
    print(f"global land surface (~{GLOBAL_PIXELS:.1e} px at 10 m) on {where}: {hours_e2e:,.1f} h end to end "
          f"(target <= {TARGETS['gpu_hours']} h on one H200), {hours_raw:,.1f} h of raw model time")  # fmt: skip
    heavy = sorted(m for m in FORBIDDEN if m in sys.modules)
    total = time.perf_counter() - started
    print(f"vector libraries imported: {heavy or 'none'}; {total:.0f} s in all")
    results = {
        "environment": env,
        "profile": args.profile,
        "matmul_bf16_flops": mm,
        "window_flops": flops,
        "raw": raw,
        "raw_best": best,
        "strip_batch": strip,
        "end_to_end": {k: v for k, v in e2e.items()} | {"windows_per_s": e2e_windows, "share_of_raw": share},
        "gpu_hours_global": {"end_to_end": hours_e2e, "raw": hours_raw},
        "auto_compile": AUTO_COMPILE.get(device, "off"),
        "fastest_compile_at_strip_batch": fastest["mode"],
        "targets": TARGETS,
        "met": {
            "raw_share": best["share_of_matmul"] >= TARGETS["raw_share"],
            "e2e_share": share >= TARGETS["e2e_share"],
            "gpu_hours": hours_e2e <= TARGETS["gpu_hours"],
        },
        "vector_modules": heavy,
        "seconds": total,
    }
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2, default=str) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
