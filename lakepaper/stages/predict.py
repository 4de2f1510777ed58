"""Stage 04: every tile predicted with sliding windows, edges discarded, windows stitched (paper section 2.3).

Reads stage 01's composite tiles, stage 03's best checkpoint (or any given as ``checkpoint``), stage 02's
test regions (to score the stitched prediction) and, for the figures, stage 00's truth where there is one.
Writes per tile ``tiles/<tile>_prob.tif`` (lake probability x 250) and ``tiles/<tile>_mask.tif`` (1 lake,
0 not, 255 no data) through :func:`lakepaper.predict.cluster.predict_tiles`, on a Dask cluster (``scheduler``:
"" a local cluster, with CUDA one worker per GPU, else ``n_workers`` processes of ``threads_per_worker`` torch
threads; ``sync`` no Dask; or a scheduler's address), the model compiled as ``compile`` says (``auto``: with
CUDA, not on the CPU). A tile whose two files carry this run's ``RUN_ID`` (checkpoint, input tile and
settings) is not predicted again, so a killed run resumes (the ledger ``tiles/.predicted.sqlite`` makes that
check cheap for long tile lists). Also writes ``figures/prediction_<tile>.png`` for the first two tiles; the manifest
holds the stitched scores over the test regions and one row per tile.
"""

from __future__ import annotations

import time

from lakepaper import io
from lakepaper.figures.predict import prediction_vs_truth
from lakepaper.predict.cluster import predict_tiles
from lakepaper.predict.evaluate import pooled, region_counts
from lakepaper.predict.model import resolve_precision
from lakepaper.stages.context import Context, Result

#: The method constants this stage uses.
CONSTANTS = ("edge_px", "prob_threshold", "batch_size")
#: Arguments that change no output: where the tiles run, and how the model call is compiled (floating-point
#: rounding aside, as the thread count).
WHERE = ("scheduler", "n_workers", "threads_per_worker", "compile")


def run(ctx: Context) -> Result:
    """Predict the tiles not yet done, score the stitched prediction in the test regions, draw two tiles."""
    a, P = ctx.args, ctx.params
    composite = ctx.upstream("01_composite")
    samples = ctx.upstream("02_samples")
    trained = ctx.upstream("03_train")
    world = ctx.upstream("00_world", required=False) or ctx.stage_dir("00_world")
    checkpoint = a["checkpoint"] or str(trained / "best.pt")
    precision = resolve_precision(a["precision"] or P["predict_precision"])
    out = ctx.begin()

    tiles = sorted((composite / "tiles").glob("*.tif"))
    summary = predict(ctx, tiles, checkpoint, precision)
    ctx.show("tiles", summary)

    stitched = pooled(region_counts(out / "tiles", samples, split="test"))
    patch_iou = io.read_manifest(trained).get("test", {}).get("iou")
    ctx.say(
        f"stitched IoU over the test regions: {stitched.loc['all', 'iou']:.4f}; stage 03 patch-level IoU: {patch_iou}"
    )
    ctx.show("stitched", stitched)

    for tile in [t.stem for t in tiles[:2]]:
        fig = prediction_vs_truth(composite / "tiles" / f"{tile}.tif", out / "tiles", tile, world)
        ctx.save(fig, f"prediction_{tile}.png")

    return ctx.finish(
        constants=CONSTANTS,
        resolved={"checkpoint": checkpoint, "precision": precision},
        omit=WHERE,
        extra={
            "stitched": stitched.round(6).reset_index(names="region_type").to_dict("records"),
            "tiles": summary.drop(columns=[c for c in ("seconds", "model_seconds") if c in summary]).to_dict("records"),
        },
    )


def predict(ctx: Context, tiles, checkpoint: str, precision: str):
    """Every tile not yet done (:func:`~lakepaper.predict.cluster.predict_tiles`); one row per tile, and a note of
    the throughput."""
    a, P = ctx.args, ctx.params
    t0 = time.perf_counter()
    summary = predict_tiles(
        tiles,
        checkpoint,
        ctx.out / "tiles",
        edge=P["edge_px"],
        threshold=P["prob_threshold"],
        batch=P["batch_size"],
        precision=precision,
        compile=a.get("compile") or "auto",
        scheduler=a["scheduler"] or None,
        n_workers=a["n_workers"] or None,
        threads_per_worker=a.get("threads_per_worker") or None,
        progress=not ctx.quiet,
    )
    wall = time.perf_counter() - t0
    done = summary[~summary.skipped]
    mpx = done.pixels.sum() / 1e6 if len(done) else 0.0
    ctx.say(
        f"{len(done)} tiles predicted ({len(summary) - len(done)} already done), {mpx:.1f} Mpixel in {wall:.0f} s"
        + (f": {mpx / wall:.2f} Mpixel/s, {mpx * 1e6 * 1e-4 / wall * 3600:.0f} km2/hour" if len(done) else "")
    )
    return summary
