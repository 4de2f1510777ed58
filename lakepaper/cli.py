"""The ``lakepaper`` command: run stages and tools from a shell.

Examples:
    lakepaper run 00_world --profile tiny -p world_seed 7
    lakepaper world --profile demo --out build/demo/00_world
    lakepaper stages
"""

from __future__ import annotations

import argparse
import sys

from lakepaper.errors import LakepaperError


def _cmd_run(args: argparse.Namespace) -> int:
    from lakepaper.stages import parse_value, run_stage

    params = {name: parse_value(value) for name, value in args.param}
    out = run_stage(args.stage, profile=args.profile, parameters=params, progress=not args.no_progress_bar)
    print(f"executed notebook: {out}")
    return 0


def _cmd_stages(args: argparse.Namespace) -> int:
    from lakepaper.stages import STAGES, declared_parameters

    for stage in STAGES:
        declared = declared_parameters(stage)
        print(f"{stage}: " + ", ".join(f"{k}={v!r}" for k, v in declared.items()))
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lakepaper",
        description="GLAKESplus compendium: 10 m lake mapping from Sentinel-2 with a U-Net. "
        "`make all` runs every stage; these commands run one piece.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="execute one stage's notebook with papermill (parameters checked first)")
    run.add_argument("stage", help="stage name, e.g. 00_world (see `lakepaper stages`)")
    run.add_argument("--profile", default="demo", help="demo (default), tiny or paper")
    run.add_argument(
        "-p",
        "--param",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="notebook parameter, as with papermill -p (repeatable)",
    )
    run.add_argument("--no-progress-bar", action="store_true", help="no cell progress bar (for CI logs)")
    run.set_defaults(func=_cmd_run)

    stages = sub.add_parser("stages", help="list the stages and the parameters each notebook takes")
    stages.set_defaults(func=_cmd_stages)

    world = sub.add_parser("world", help="generate the simulated Sentinel-2 world without a notebook")
    world.add_argument("--profile", default="demo", help="scale of the world: demo (default) or tiny")
    world.add_argument("--out", default=None, help="output folder (default build/<profile>/00_world)")
    world.add_argument("--seed", type=int, default=None, help="world seed (default: the profile's)")
    world.add_argument("--tiles", default=None, help="comma-separated tile names, e.g. T01,T07 (default: all)")
    world.add_argument("--workers", type=int, default=None, help="parallel processes (default: CPU count)")
    world.set_defaults(func=_cmd_world)
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
