"""The ``lakepaper`` command: run stages and tools from a shell.

Examples:
    lakepaper run 00_world --profile tiny -p world_seed 7
    lakepaper world --profile demo --out build/demo/00_world
    lakepaper stages
    lakepaper predict composite.tif --model build/demo/03_train/best.pt --out lakes.tif
    lakepaper paper --profile demo
    lakepaper prereqs --profile paper
"""

from __future__ import annotations

import argparse
import sys

from lakepaper.errors import LakepaperError


def _cmd_run(args: argparse.Namespace) -> int:
    from lakepaper.stages import parse_value, read_stamp, run_stage

    params = read_stamp(args.params_file) if args.params_file else {}
    params.update({name: parse_value(value) for name, value in args.param})
    out = run_stage(args.stage, profile=args.profile, parameters=params, progress=not args.no_progress_bar)
    print(f"executed notebook: {out}")
    return 0


def _cmd_stamps(args: argparse.Namespace) -> int:
    from lakepaper.stages import parse_value, write_stamps
    from lakepaper.stages.deps import write_makefile

    changed = write_stamps(args.profile, {name: parse_value(value) for name, value in args.param})
    write_makefile(args.profile)
    if changed:
        print(f"parameters changed for: {', '.join(changed)}")
    return 0


def _cmd_stages(args: argparse.Namespace) -> int:
    from lakepaper.stages import REGISTRY, declared_parameters

    for stage in REGISTRY.values():
        declared = declared_parameters(stage.name)
        print(f"{stage.name}: {stage.title} ({stage.does})")
        print(f"    reads: {', '.join(stage.reads) or 'nothing earlier'}; run by lakepaper.stages.{stage.module}.run")
        print("    parameters: " + ", ".join(f"{k}={v!r}" for k, v in declared.items()))
    return 0


def _cmd_world(args: argparse.Namespace) -> int:
    from lakepaper import params, paths
    from lakepaper.world.generate import generate_world
    from lakepaper.world.sites import WorldConfig

    p = params.resolve(args.profile)
    changes = {}
    if args.seed is not None:
        changes["seed"] = args.seed
    if args.tiles:
        changes["tiles"] = tuple(args.tiles.split(","))
    cfg = WorldConfig.from_params(p, **changes)
    out = args.out or paths.stage_dir(args.profile, "00_world")
    summary = generate_world(cfg, out, workers=args.workers, parameters={"n_sample_regions": p["n_sample_regions"]})
    print(f"world written to {out}: " + ", ".join(f"{k}={v}" for k, v in summary.items()))
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch

    from lakepaper.predict.model import load_forward
    from lakepaper.predict.tiled import InputTile, predict_tile

    if args.threads:
        torch.set_num_threads(args.threads)
    forward, bands, size = load_forward(args.model, precision=args.precision, compile=args.compile)
    tile = InputTile.open(args.input, bands, scale=args.scale, offset=args.offset, file_bands=_file_bands(args))
    out = Path(args.out)
    prob = out.with_name(f"{out.stem}_prob{out.suffix}")
    edge = _predict_edge(args)
    info = predict_tile(
        forward, tile, prob, out, size=size, edge=edge, batch=args.batch, threshold=args.threshold, progress=True
    )
    print(
        f"{out} (lake mask) and {prob} (probability x250): {info['pixels'] / 1e6:.2f} Mpixel, {info['windows']} "
        f"windows, {info['lake_share']:.1%} lake, {info['nodata_share']:.1%} no data, {info['seconds']:.1f} s; "
        f"edge {edge} px, values: {tile.scaling}"
    )
    return 0


def _file_bands(args: argparse.Namespace) -> list[str] | None:
    """``--bands``: the file's band names in order, or None."""
    return [b.strip() for b in args.bands.split(",")] if args.bands else None


def _predict_edge(args: argparse.Namespace) -> int:
    """``--edge``; else the ``--profile`` given; else the edge of the profile the checkpoint was trained with."""
    from lakepaper import params

    if args.edge is not None:
        return args.edge
    if args.profile is not None:
        return params.resolve(args.profile)["edge_px"]
    from lakepaper.predict.windows import training_edge
    from lakepaper.train.checkpoint import read_checkpoint

    return training_edge(read_checkpoint(args.model))


def _cmd_paper(args: argparse.Namespace) -> int:
    from lakepaper.report.build import main as paper_main

    return paper_main(args.profile, out=args.out, browser=args.browser)


def _cmd_prereqs(args: argparse.Namespace) -> int:
    from lakepaper.prereqs import main as prereqs_main

    return prereqs_main(args.profile, references=args.references, record=args.record, verify=not args.quick)


def _gee_area(text: str | None):
    """``--area``: None (all land), ``demo`` (the simulated world's sites), a file, or minx,miny,maxx,maxy."""
    import json
    from pathlib import Path

    from lakepaper.errors import ParameterError

    if text is None or text == "land":
        return None
    if text == "demo":
        from lakepaper.composite.landgrid import demo_area
        from lakepaper.world.sites import SITES

        return demo_area(SITES)
    if Path(text).exists():
        return text
    try:
        values = json.loads(text) if text.strip().startswith("[") else [float(v) for v in text.split(",")]
    except ValueError as exc:
        raise ParameterError(
            "area", f"expected a polygon file, demo, land or minx,miny,maxx,maxy; got {text!r}"
        ) from exc
    return values


def _cmd_composite_gee(args: argparse.Namespace) -> int:
    from pathlib import Path

    from lakepaper import params, paths
    from lakepaper.composite import exports, landgrid

    p = params.resolve(args.profile)
    area = _gee_area(args.area)
    if args.dry_run:
        print(exports.dry_run(p, area, land=args.land, windows=args.windows))
        if args.grid_out:
            grid = landgrid.build_grid(p, area=area, land=args.land, windows=args.windows)
            print(f"wrote {landgrid.write_grid(grid, args.grid_out)}")
        return 0
    out = Path(args.out) if args.out else paths.stage_dir(args.profile, "01_composite")
    rows = exports.composite_gee(
        area,
        out,
        p,
        ledger=args.ledger,
        destination=args.destination,
        bucket=args.bucket,
        project=args.project,
        max_concurrent=args.max_concurrent,
        max_attempts=args.max_attempts,
        land=args.land,
        windows=args.windows,
    )
    print(f"{len(rows)} tiles verified in {out / 'tiles'}; grid {out / 'tile_grid.gpkg'}")
    return 0


#: What a tile list file may be called (one path a line; ``.csv``: a ``path`` column).
TILE_LISTS = (".txt", ".lst", ".csv")


def _tile_list(text: str):
    """``lakepaper predict INPUT``: the GeoTIFFs of a folder, or of a list file (paths relative to it); None for a
    single file.

    Raises:
        InputError: an empty folder or list, a list without a ``path`` column, listed files that do not exist.
    """
    import csv
    from pathlib import Path

    from lakepaper.errors import InputError

    path = Path(text)
    if path.is_dir():
        tiles = sorted(
            p for p in path.iterdir() if p.suffix.lower() in (".tif", ".tiff") and not p.name.startswith(".")
        )
    elif path.suffix.lower() in TILE_LISTS:
        if not path.is_file():
            raise InputError(path, "tile list not found")
        with path.open(newline="") as f:
            if path.suffix.lower() == ".csv":
                reader = csv.DictReader(f)
                if "path" not in (reader.fieldnames or []):
                    raise InputError(path, f"a CSV tile list needs a 'path' column; it has {reader.fieldnames}")
                names = [row["path"].strip() for row in reader]
            else:
                names = [line.strip() for line in f]
        tiles = [path.parent / n for n in names if n and not n.startswith("#")]
    else:
        return None
    if not tiles:
        raise InputError(path, "no GeoTIFF (*.tif) to predict in it")
    missing = [str(t) for t in tiles if not t.is_file()]
    if missing:
        raise InputError(path, f"lists {len(missing)} file(s) that do not exist, e.g. {missing[:3]}")
    return tiles


def _cmd_predict_tiles(args: argparse.Namespace) -> int:
    """``lakepaper predict``: one GeoTIFF (``_cmd_predict``), or, INPUT a folder or a tile list, every tile of it into
    the folder ``--out`` on a Dask cluster, resumably (:func:`lakepaper.predict.cluster.predict_tiles`)."""
    from pathlib import Path

    from lakepaper.errors import InputError, ParameterError

    tiles = _tile_list(args.input)
    if tiles is None:
        for name in ("n_workers", "threads_per_worker", "scheduler"):
            if getattr(args, name) is not None:
                raise ParameterError(name, "is for many tiles (INPUT a folder or a tile list); one file runs here")
        return _cmd_predict(args)
    from lakepaper.predict.cluster import predict_tiles
    from lakepaper.predict.model import resolve_precision

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(out, "with many tiles, --out is the folder of their outputs, not a file")
    options = {"scale": args.scale, "offset": args.offset, "file_bands": _file_bands(args)}
    summary = predict_tiles(
        tiles,
        args.model,
        out,
        edge=_predict_edge(args),
        threshold=args.threshold,
        batch=args.batch,
        precision=resolve_precision(args.precision),
        compile=args.compile,
        tile_options={k: v for k, v in options.items() if v is not None} or None,
        scheduler=args.scheduler,
        n_workers=args.n_workers,
        threads_per_worker=args.threads_per_worker or args.threads,
    )
    done = summary[~summary.skipped]
    mpx = float(done["pixels"].sum()) / 1e6 if len(done) else 0.0
    print(
        f"{out}: {len(summary)} tiles, {len(done)} predicted ({mpx:.1f} Mpixel), {len(summary) - len(done)} already "
        f"done; per tile <tile>_mask.tif (1 lake, 0 not, 255 no data) and <tile>_prob.tif (probability x250)"
    )
    return 0


def _param_option(parser: argparse.ArgumentParser, text: str) -> None:
    """``-p NAME VALUE``, repeatable, as papermill takes it."""
    parser.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"), help=text)


def build_parser() -> argparse.ArgumentParser:
    from lakepaper.predict.model import COMPILES  # torch-free: numpy only

    parser = argparse.ArgumentParser(
        prog="lakepaper",
        description="GLAKESplus compendium: 10 m lake mapping from Sentinel-2 with a U-Net. "
        "`make all` runs every stage; these commands run one piece.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="execute one stage's notebook with papermill (parameters checked first)")
    run.add_argument("stage", help="stage name, e.g. 00_world (see `lakepaper stages`)")
    run.add_argument("--profile", default="demo", help="demo (default), tiny or paper")
    _param_option(run, "notebook parameter, as with papermill -p (repeatable)")
    run.add_argument("--params-file", default=None, help="JSON object of parameters (as `lakepaper stamps` writes)")
    run.add_argument("--no-progress-bar", action="store_true", help="no cell progress bar (for CI logs)")
    run.set_defaults(func=_cmd_run)

    stamps = sub.add_parser(
        "stamps",
        help="record per stage the parameters it takes (build/<profile>/.params/<stage>.json) and what each stage "
        "depends on (build/<profile>/.stages.mk); used by make",
    )
    stamps.add_argument("--profile", default="demo", help="demo (default), tiny or paper")
    _param_option(stamps, "parameter, given to every stage whose notebook declares it (repeatable)")
    stamps.set_defaults(func=_cmd_stamps)

    stages = sub.add_parser("stages", help="list the stages, what each reads, and the parameters each notebook takes")
    stages.set_defaults(func=_cmd_stages)

    world = sub.add_parser("world", help="generate the simulated Sentinel-2 world without a notebook")
    world.add_argument("--profile", default="demo", help="scale of the world: demo (default) or tiny")
    world.add_argument("--out", default=None, help="output folder (default build/<profile>/00_world)")
    world.add_argument("--seed", type=int, default=None, help="world seed (default: the profile's)")
    world.add_argument("--tiles", default=None, help="comma-separated tile names, e.g. T01,T07 (default: all)")
    world.add_argument("--workers", type=int, default=None, help="parallel processes (default: CPU count)")
    world.set_defaults(func=_cmd_world)

    pred = sub.add_parser(
        "predict",
        help="map lakes in any GeoTIFF with a trained model (sliding windows, edges discarded)",
        description="Predict a lake mask for one GeoTIFF in the model's band order (default B2,B3,B4,B11,NDWI: "
        "reflectance 0..1 and NDWI -1..1 after scaling). Writes OUT (uint8: 1 lake, 0 not, 255 no data) and "
        "OUT_prob (probability x250), Cloud-Optimised GeoTIFFs on the input's grid and CRS.",
    )
    pred.add_argument(
        "input",
        help="GeoTIFF to predict (a stage-01 composite, or your own); or a folder of GeoTIFFs, or a tile list "
        "(.txt: a path a line; .csv: a 'path' column), predicted into the folder --out",
    )
    pred.add_argument("--model", required=True, help="checkpoint of stage 03 (e.g. build/demo/03_train/best.pt)")
    pred.add_argument(
        "--out",
        required=True,
        help="output lake mask; the probability goes beside it as *_prob.tif (many tiles: the output folder)",
    )
    pred.add_argument(
        "--scale",
        type=float,
        help="divide the file's values by this (default: the file's GDAL scales/offsets, else its SCALE tag, else "
        "Sentinel-2 L2A metadata (BOA_ADD_OFFSET, PROCESSING_BASELINE), else 1)",
    )
    pred.add_argument(
        "--offset",
        type=float,
        help="with --scale: add this to the values before dividing, in the file's units (Sentinel-2 L2A from "
        "processing baseline 04.00: -1000); not to index bands (NDWI)",
    )
    pred.add_argument(
        "--bands",
        help="comma-separated names of the file's bands in order, if it has no descriptions (it may not "
        "contradict them)",
    )
    pred.add_argument(
        "--edge",
        type=int,
        help="pixels discarded at each window border (default: the edge of the profile the checkpoint was "
        "trained with: paper 100, demo 24, tiny 8)",
    )
    pred.add_argument("--profile", default=None, help="take --edge from this profile, not from the checkpoint")
    pred.add_argument("--batch", type=int, default=4, help="windows per model call (default 4)")
    pred.add_argument("--threshold", type=float, default=0.5, help="probability above which a pixel is lake (0.5)")
    pred.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp32", "bf16"],
        help="auto (default: bf16 where the CPU/GPU computes it natively, else fp32), fp32 or bf16 autocast",
    )
    pred.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    pred.set_defaults(func=_cmd_predict)
    # many tiles: INPUT a folder of GeoTIFFs or a tile list (.txt: a path a line; .csv: a 'path' column), --out a
    # folder; finished tiles are skipped (a ledger in --out and each output's RUN_ID tag), so a rerun resumes
    pred.add_argument(
        "--n-workers",
        type=int,
        default=None,
        help="many tiles: local workers (default: one per GPU with CUDA, else cores // threads)",
    )
    pred.add_argument(
        "--threads-per-worker",
        type=int,
        default=None,
        help="many tiles: torch threads per worker (default: --threads, else cores // --n-workers; neither: 1)",
    )
    pred.add_argument(
        "--scheduler", default=None, help="many tiles: a Dask scheduler's address (tcp://host:8786), or sync (no Dask)"
    )
    pred.add_argument(
        "--compile",
        default="auto",
        choices=COMPILES,
        help="torch.compile the model: auto (default: with CUDA, not on the CPU), off, or a mode",
    )
    pred.set_defaults(func=_cmd_predict_tiles)

    paper = sub.add_parser("paper", help="assemble build/<profile>/paper.html from the stages' outputs")
    paper.add_argument("--profile", default="demo", help="demo (default), tiny or paper")
    paper.add_argument("--out", default=None, help="HTML file (default build/<profile>/paper.html)")
    paper.add_argument(
        "--browser",
        default="auto",
        choices=["auto", "require", "off"],
        help="check the page in headless Chromium, save a screenshot (auto: when installed)",
    )
    paper.set_defaults(func=_cmd_paper)

    pre = sub.add_parser("prereqs", help="check what a profile needs before it runs (paper: Earth Engine, GPU, files)")
    pre.add_argument("--profile", default="paper", help="profile to check (default paper)")
    pre.add_argument(
        "--references", default=None, help="reference folder (default $LAKEPAPER_REFERENCES or references/)"
    )
    pre.add_argument("--record", action="store_true", help="record the sha256 of the reference files present first")
    pre.add_argument("--quick", action="store_true", help="check presence only, no checksums")
    pre.set_defaults(func=_cmd_prereqs)

    comp = sub.add_parser("composite", help="stage-01 composites outside the notebooks (Earth Engine exports)")
    comp_sub = comp.add_subparsers(dest="backend", required=True, metavar="BACKEND")
    gee = comp_sub.add_parser(
        "gee",
        help="export the land tiles of an area from Earth Engine (ledger in the build folder; resumable)",
        description="Cut the area's land into the global tile grid (lakepaper.composite.landgrid) and export each "
        "tile from Earth Engine, tracked in a ledger that a rerun resumes from. --dry-run prints the tile count, "
        "pixels and export volume without credentials.",
    )
    gee.add_argument(
        "--area",
        default=None,
        help="minx,miny,maxx,maxy in lon/lat, a polygon file, 'demo' (the simulated "
        "world's sites) or 'land' (default: all land within Sentinel-2's extent)",
    )
    gee.add_argument("--profile", default="paper", help="parameters (default paper: 576 px windows, 100 px edges)")
    gee.add_argument("--dry-run", action="store_true", help="print tiles, pixels and export volume; no credentials")
    gee.add_argument("--grid-out", default=None, help="with --dry-run: also write the grid (a GeoPackage)")
    gee.add_argument("--land", default=None, help="land polygon file (default: the shipped Natural Earth 1:50m land)")
    gee.add_argument("--windows", type=int, default=24, help="model window cores per tile side (default 24)")
    gee.add_argument("--out", default=None, help="stage folder (default build/<profile>/01_composite)")
    gee.add_argument("--ledger", default=None, help="ledger file (default OUT/gee_exports.sqlite)")
    gee.add_argument("--destination", default="gcs", choices=["gcs", "url"], help="gcs (default) or url (small tiles)")
    gee.add_argument("--bucket", default=None, help="Cloud Storage bucket of the exports (gcs)")
    gee.add_argument("--project", default=None, help="Google Cloud project registered for Earth Engine")
    gee.add_argument("--max-concurrent", type=int, default=300, help="tasks queued or running at once (default 300)")
    gee.add_argument("--max-attempts", type=int, default=3, help="submissions per tile before it fails (default 3)")
    gee.set_defaults(func=_cmd_composite_gee)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except LakepaperError as exc:
        print(f"lakepaper: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
