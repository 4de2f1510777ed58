"""Leave one water type out: does the U-Net map an optical water type it never saw? (issue 21, item 3)

A model that learned "bright in green, dark in NIR means water" may miss highly turbid water (red and
NIR as bright as green) when no such lake was in its training set. From a finished stage 02 and 03
of a build this benchmark

1. drops from the training and validation splits every region whose truth holds at least
   ``--min-px`` lake pixels (``lake_id > 0``) of the held-out type (``--hold-out``, default
   ``very_turbid``; types from ``truth/<tile>/water_type.tif`` of the build's stage 00), and says
   how many it dropped;
2. trains a U-Net on what is left with exactly stage 03's parameters (those stored in stage 03's
   ``best.pt``; :func:`lakepaper.train.loop.train`) into ``<build>/<profile>/benchmarks/
   leave_out_<type>/`` (stage 03's folder is never written; a rerun with the same data resumes or
   reuses that run);
3. scores both models, stage 03's ``best.pt`` ("model (all types)") and the held-out one
   ("model (without <type>)"), and the index maps "NDWI > 0" (the chips' NDWI band) and
   "MNDWI > 0" (the chips' B3 and B11), per water type on the test regions
   (:mod:`lakepaper.water_types`: type zones from ``water_type.tif`` grown ``MARGIN_PX`` into the
   land around water, truth ``lake_id > 0``, pixels the labels never observed left out). The models
   predict each test region as Table 1 does: isolated sequential patches, no context beyond a patch.

Prints the per-type IoU table (and the test IoU against the labels of both models) and writes it to
``<build>/<profile>/benchmarks/leave_out_<type>.csv``.

Time: on the ``tiny`` profile about 8 s wall on 2 shared CPU cores (measured: 4 s training the tiny
network for 3 epochs, under 1 s scoring, the rest imports; a rerun reuses the held-out run); on
``demo`` about one stage-03 training more (stage 03 took 178 s on the README's 2-core machine in stop 25,
505 s in stop 29 with 80 epochs), so 3-10 minutes, not measured here.

Usage: ``python benchmarks/robustness.py [--profile tiny] [--build build] [--hold-out very_turbid]
[--min-px 20] [--device cpu]``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from lakepaper import io, paths, regions, water_types
from lakepaper.errors import InputError, ParameterError
from lakepaper.train.checkpoint import load_model
from lakepaper.train.evaluate import evaluate
from lakepaper.train.examples import predicted_maps
from lakepaper.train.loop import load_splits, pick_device, train
from lakepaper.truth import WATER_TYPES, Truth

TYPE_FILE = "{tile}/water_type.tif"
LAKE_FILE = "{tile}/lake_id.tif"


def type_pixels(samples: Path, truth_dir: Path, code: int, splits=("train", "val")) -> pd.DataFrame:
    """Per region of ``splits``: region_id, split, and its lake pixels (``lake_id > 0``) of water type ``code``."""
    rows = []
    for split in splits:
        kinds = regions.cut_regions(samples, truth_dir, split=split, name=TYPE_FILE)
        lakes = regions.cut_regions(samples, truth_dir, split=split, name=LAKE_FILE)
        for rid, kind in kinds.items():
            rows.append({"region_id": rid, "split": split, "px": int(((kind == code) & (lakes[rid] > 0)).sum())})
    return pd.DataFrame(rows, columns=["region_id", "split", "px"])


def predict_region(model, chip, p: dict, device) -> np.ndarray:
    """The model's lake map (bool) of one region from isolated sequential patches, as Table 1 scores them
    (:func:`lakepaper.train.examples.predicted_maps`; each pixel from the patch that owns it)."""
    scored = {"patch_size": p["patch_size"], "threshold": p["prob_threshold"], "pad_value": p["pad_value"]}
    return predicted_maps(model, [chip], batch=p["batch_size"], device=device, **scored)[0]


def score(models: dict, chips, samples: Path, truth_dir: Path, p: dict, device) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-type counts of every method on the test regions, and each model's pooled IoU against the labels."""
    by_id = {c.region_id: c for c in chips}
    counts = []
    for tile, group in regions.by_tile(samples, "test"):
        kind_path = truth_dir / TYPE_FILE.format(tile=tile)
        if not kind_path.exists():
            raise InputError(
                kind_path, "no water types in this truth folder: rebuild stage 00 with a world that has them"
            )
        zone_tile = water_types.zones(io.read_raster(kind_path)[0][0])
        lake_tile = io.read_raster(truth_dir / LAKE_FILE.format(tile=tile))[0][0]
        for r in group.itertuples():
            chip = by_id[r.region_id]
            zone, lake = regions.cut(zone_tile, r, kind_path), regions.cut(lake_tile, r, tile)
            maps = {name: predict_region(m, chip, p, device) for name, m in models.items()}
            maps |= water_types.composite_index_maps(chip.image, chip.bands, source=chip.region_id)
            counts.append(water_types.type_counts(zone, lake, maps, valid=chip.observed))
    by_label = pd.DataFrame({name: evaluate(m, chips, p, device=device).loc["all"] for name, m in models.items()}).T
    return pd.concat(counts, ignore_index=True), by_label


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="tiny", help="the build's profile (tiny)")
    ap.add_argument("--build", type=Path, default=None, help="build root (default: $LAKEPAPER_BUILD or build/)")
    ap.add_argument("--truth", type=Path, default=None, help="truth folder (default: the build's 00_world)")
    ap.add_argument(
        "--hold-out", default="very_turbid", help=f"water type to leave out, one of {', '.join(WATER_TYPES)}"
    )
    ap.add_argument("--min-px", type=int, default=20, help="drop a region with at least this many lake px of the type")
    ap.add_argument("--device", default=None, help="torch device (default: CUDA when present, else the CPU)")
    args = ap.parse_args()
    t_start = time.perf_counter()
    if args.hold_out not in WATER_TYPES:
        raise ParameterError("hold-out", f"expected one of {WATER_TYPES}, got {args.hold_out!r}")
    if args.min_px < 1:
        raise ParameterError("min-px", f"must be at least 1, got {args.min_px}")
    root = (args.build or paths.build_root()).resolve() / args.profile
    samples, stage03 = root / "02_samples", root / "03_train"
    truth = Truth(args.truth or root / "00_world")
    truth_dir = truth.root / "truth"
    best = stage03 / "best.pt"
    if not best.exists():
        raise InputError(best, "no stage-03 model here: run 03_train for this profile first")
    model_all, meta = load_model(best)
    p = dict(meta["params"])  # exactly stage 03's training parameters
    device = pick_device(args.device)
    splits = load_splits(samples, p["composite_bands"], ("train", "val", "test"))
    code = WATER_TYPES.index(args.hold_out) + 1

    px = type_pixels(samples, truth_dir, code)
    drop = set(px.region_id[px.px >= args.min_px])
    kept = {s: [c for c in splits[s] if c.region_id not in drop] for s in ("train", "val")}
    test_px = type_pixels(samples, truth_dir, code, splits=("test",))
    print(f"{root}: hold out {args.hold_out!r} (code {code}); regions with >= {args.min_px} lake px of it dropped: "
          f"train {len(splits['train']) - len(kept['train'])} of {len(splits['train'])}, "
          f"val {len(splits['val']) - len(kept['val'])} of {len(splits['val'])}; "
          f"test regions holding it: {int((test_px.px >= args.min_px).sum())} of {len(test_px)} "
          f"({int(test_px.px.sum())} lake px)")  # fmt: skip
    if not (test_px.px > 0).any():
        print(
            f"note: the test regions hold no lake pixel of {args.hold_out}: its row below scores only false positives"
        )
    for s in ("train", "val"):
        if not kept[s]:
            raise InputError(samples, f"every {s} region holds {args.hold_out}: nothing left to train on")

    name_out = f"model (without {args.hold_out})"
    t0 = time.perf_counter()
    if drop:
        out = root / "benchmarks" / f"leave_out_{args.hold_out}"
        r = train(kept["train"], kept["val"], out, p, device=device, resume=True, progress=False, folder=samples)
        model_out, _ = load_model(r["best"])
        print(f"trained without {args.hold_out}: {len(r['history'])} epochs on {r['device']} ({r['precision']}), "
              f"best epoch {r['best_epoch']}, {time.perf_counter() - t0:.1f} s -> {out}")  # fmt: skip
    else:
        model_out = model_all
        print(f"no region dropped: the model without {args.hold_out} is stage 03's")
    models = {"model (all types)": model_all.to(device).eval(), name_out: model_out.to(device).eval()}

    t0 = time.perf_counter()
    counts, by_label = score(models, splits["test"], samples, truth_dir, p, device)
    table = water_types.type_table(counts)
    print(f"scored {len(splits['test'])} test regions in {time.perf_counter() - t0:.1f} s")
    print("test IoU against the labels (all types): "
          + ", ".join(f"{m} {v:.4f}" for m, v in by_label.iou.items()))  # fmt: skip
    print(f"IoU per water type, test regions, profile {args.profile} "
          f"(type zones: water + {water_types.MARGIN_PX} px; truth lake_id > 0):")  # fmt: skip
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.round(4).to_string() if not table.empty else "(no water-type pixels in the test regions)")
    csv = root / "benchmarks" / f"leave_out_{args.hold_out}.csv"
    csv.parent.mkdir(parents=True, exist_ok=True)
    table.round(6).to_csv(csv)
    print(f"wrote {csv}; total {time.perf_counter() - t_start:.1f} s")


if __name__ == "__main__":
    main()
