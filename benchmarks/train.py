"""Stage 03 benchmark: U-Net training throughput on this machine, and how close it gets to the matmul rate.

Measured in one run, printed (nothing is asserted):

* this machine's fp32 (and bf16) matmul rate: torch.mm of two 4096 x 4096 matrices;
* training throughput (patches/s) of full training steps (forward, Dice + L2 loss, backward,
  AdaDelta step; BatchNorm in training mode), for the demo profile's model and patch size and for
  the paper's widths at a reduced patch size, per arithmetic path:
  ``fp32`` (eager, contiguous), ``fp32+cl`` (channels-last), ``bf16`` (autocast), ``bf16+cl``;
* the achieved FLOP/s of each, counted as 3 x the forward convolution FLOPs
  (:func:`lakepaper.unet.conv_flops`: forward, backward to inputs, backward to weights), and its
  ratio to the fp32 matmul rate (target >= 0.3 on CPU);
* with ``--iou``: the demo model trained on stage 02's data in fp32 and in the fastest other path,
  and the test IoU of both (so a faster path is only adopted if it does not hurt IoU).

Every configuration is built once, warmed up, then timed in interleaved rounds together with the
matmul; each figure is the best time seen. On a machine shared with other work this takes every
figure at the quietest moments the run saw, so the ratios compare like with like.

Usage: ``python benchmarks/train.py [--threads N] [--rounds 3] [--steps 3] [--iou]``.
"""

from __future__ import annotations

import argparse
import time

import torch

from lakepaper import params
from lakepaper.train.loss import dice_loss
from lakepaper.unet import UNet, conv_flops

MODES = {"fp32": ("fp32", False), "fp32+cl": ("fp32", True), "bf16": ("bf16", False), "bf16+cl": ("bf16", True)}


def matmul_time(a: torch.Tensor, b: torch.Tensor, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - t0)
    return min(times)


class Step:
    """One configuration's training step (forward, Dice + L2 loss, backward, AdaDelta), built once."""

    def __init__(self, widths, size: int, batch: int, mode: str, p: dict):
        precision, cl = MODES[mode]
        torch.manual_seed(0)
        fmt = torch.channels_last if cl else torch.contiguous_format
        self.net = UNet(p["in_channels"], widths, p["unet_upsample"]).train().to(memory_format=fmt)
        self.opt = torch.optim.Adadelta(self.net.parameters(), lr=p["learning_rate"], rho=p["adadelta_rho"],
                                        eps=p["adadelta_eps"])  # fmt: skip
        self.x = torch.rand(batch, p["in_channels"], size, size).contiguous(memory_format=fmt)
        self.y = (self.x[:, 4:5] > 0.5).float()
        self.bf16, self.p, self.batch = precision == "bf16", p, batch
        self.flops = 3 * conv_flops(self.net, size, size) * batch  # per step
        self.best = float("inf")

    def __call__(self) -> float:
        t0 = time.perf_counter()
        self.opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            prob = self.net(self.x)
        loss = dice_loss(prob, self.y, smooth=self.p["dice_smooth"]) + self.p["l2_output"] * self.net.l2_penalty()
        loss.backward()
        self.opt.step()
        dt = time.perf_counter() - t0
        self.best = min(self.best, dt)
        return dt


def iou_check(mode: str) -> float:
    """Test IoU of the demo model trained on stage 02's data with ``mode`` (a full demo run)."""
    from lakepaper import paths
    from lakepaper.train.checkpoint import load_model
    from lakepaper.train.evaluate import evaluate
    from lakepaper.train.loop import load_splits, train

    precision, cl = MODES[mode]
    p = params.resolve("demo", train_precision_cpu=precision, train_channels_last=cl)
    samples = paths.stage_dir("demo", "02_samples")
    s = load_splits(samples, p["composite_bands"], ("train", "val", "test"))
    out = paths.build_root() / "bench" / f"train_{mode}"
    t0 = time.perf_counter()
    r = train(s["train"], s["val"], out, p, device="cpu", resume=False, progress=False, folder=samples)
    model, _ = load_model(r["best"])
    iou = float(evaluate(model, s["test"], p, device="cpu", precision=precision).loc["all", "iou"])
    print(f"  {mode:8s} demo run {time.perf_counter() - t0:6.0f} s, {len(r['history'])} epochs, test IoU {iou:.4f}")
    return iou


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, = cores)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds over every configuration")
    ap.add_argument("--steps", type=int, default=3, help="timed training steps per configuration and round")
    ap.add_argument("--paper-size", type=int, default=128, help="patch side for the paper-width model")
    ap.add_argument("--paper-batch", type=int, default=2)
    ap.add_argument("--modes", default=",".join(MODES), help="comma-separated subset of " + ", ".join(MODES))
    ap.add_argument("--iou", action="store_true", help="also train the demo in fp32 and the fastest other mode")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    modes = args.modes.split(",")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, mkldnn bf16 "
          f"{torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()}")  # fmt: skip
    demo, paper = params.resolve("demo"), params.resolve("paper")
    configs = [
        ("demo", demo["unet_widths"], demo["patch_size"], demo["batch_size"]),
        ("paper widths", paper["unet_widths"], args.paper_size, args.paper_batch),
    ]
    steps = {(name, m): Step(w, s, b, m, demo) for name, w, s, b in configs for m in modes}
    n = 4096
    mats = {dt: (torch.randn(n, n).to(dt), torch.randn(n, n).to(dt)) for dt in (torch.float32, torch.bfloat16)}
    mm = dict.fromkeys(mats, float("inf"))
    for step in steps.values():  # warm-up: oneDNN primitives, allocator
        step(), step()
    for a, b in mats.values():
        torch.mm(a, b)
    # Interleaved rounds, the best time of each: on a shared machine, every figure is then taken
    # at the quietest moments the run saw, the matmul rate too, so their ratio is fair.
    for _ in range(args.rounds):
        for dt, (a, b) in mats.items():
            mm[dt] = min(mm[dt], matmul_time(a, b))
        for step in steps.values():
            for _ in range(args.steps):
                step()
    fp32, bf16 = 2 * n**3 / mm[torch.float32], 2 * n**3 / mm[torch.bfloat16]
    print(f"matmul {n}^2: fp32 {fp32 / 1e9:.1f} GFLOP/s, bf16 {bf16 / 1e9:.1f} GFLOP/s")
    print(f"{'model':13s} {'patch':>5s} {'batch':>5s} {'mode':8s} {'patches/s':>10s} {'GFLOP/s':>8s} "
          f"{'/fp32 mm':>8s} {'/bf16 mm':>8s}")  # fmt: skip
    for name, _, size, batch in configs:
        for m in modes:
            st = steps[name, m]
            achieved = st.flops / st.best
            print(f"{name:13s} {size:5d} {batch:5d} {m:8s} {batch / st.best:10.2f} {achieved / 1e9:8.1f} "
                  f"{achieved / fp32:8.3f} {achieved / bf16:8.3f}")  # fmt: skip
    for name, *_ in configs:
        best = min(modes, key=lambda m: steps[name, m].best)
        gain = steps[name, "fp32"].best / steps[name, best].best if "fp32" in modes else float("nan")
        print(f"fastest for {name}: {best} ({gain:.2f}x fp32)")
    if args.iou:
        print("IoU check (demo profile, stage 02 data, full demo runs):")
        other = min((m for m in modes if m != "fp32"), key=lambda m: steps["demo", m].best)
        for mode in ("fp32", other):
            iou_check(mode)


if __name__ == "__main__":
    main()
