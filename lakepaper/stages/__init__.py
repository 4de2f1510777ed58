"""The pipeline's stages: what each one is, what it reads, and the one function that runs it.

Each stage is a module here with one entry point, ``run(ctx) -> Result`` (e.g.
:func:`lakepaper.stages.distribution.run`). The numbered notebook of the stage declares its
parameters (the ``parameters`` cell papermill fills), builds a :class:`Context` from them, calls
``run`` once, and shows what it returns; tests, kill tests and benchmarks call the same function.

:data:`REGISTRY` is the one declaration of which earlier stages each stage reads. It drives

* the Makefile's dependencies (``lakepaper stamps`` writes ``build/<profile>/.stages.mk``, see
  :mod:`lakepaper.stages.deps`): a stage reruns when a stage it reads, its own parameters, its
  notebook or a module it imports changed, and for no other reason;
* :meth:`Context.upstream`, which refuses to open a stage the registry does not list as read;
* the paper page's stage graph (Fig. 1) while a stage has no manifest yet.

Import cost matters: ``make`` reads this registry on every call, so this module imports nothing
heavy; the stage modules are imported only to run them.
"""

from __future__ import annotations

from dataclasses import dataclass

from lakepaper.errors import ParameterError


@dataclass(frozen=True)
class Stage:
    """One stage of the pipeline."""

    name: str  # "05_postprocess": notebook notebooks/<name>.ipynb, outputs build/<profile>/<name>/
    module: str  # the module under lakepaper.stages whose run(ctx) does the work
    title: str  # the flowchart box's title
    does: str  # one line: what the stage does
    section: str  # the paper section it reproduces (a key of lakepaper.report.content.SECTION_TITLES)
    reads: tuple[str, ...] = ()  # earlier stages whose outputs it may read
    labels: tuple[str, ...] = ()  # hand-made files under labels/<profile>/ it applies when they exist


#: Every stage, in the order data flows through them.
REGISTRY: dict[str, Stage] = {
    s.name: s
    for s in (
        Stage(
            "00_world", "world", "Simulated world", "synthetic Sentinel-2 scenes, true lakes, reference maps", "data"
        ),
        Stage(
            "01_composite",
            "composite",
            "Preprocessing",
            "mask cloud, shadow, snow; per-pixel mean of B2 B3 B4 B11 NDWI",
            "2.1",
            ("00_world",),
        ),
        Stage(
            "02_samples",
            "samples",
            "Samples",
            "NDWI-threshold labels, edits, 60/20/20 split by type",
            "2.2",
            ("00_world", "01_composite"),
        ),
        Stage(
            "03_train",
            "train",
            "U-Net training",
            "Dice loss, AdaDelta, early stopping on val loss",
            "2.3",
            ("02_samples",),
        ),
        Stage(
            "04_predict",
            "predict",
            "Prediction",
            "sliding windows, edges discarded, tiles stitched",
            "2.3",
            ("00_world", "01_composite", "02_samples", "03_train"),
        ),
        Stage(
            "05_postprocess",
            "postprocess",
            "Post-processing",
            "ocean & river masks, area ratio, 0.005 km² minimum, completion",
            "2.4",
            ("00_world", "01_composite", "02_samples", "04_predict"),
            ("river_review.gpkg", "final_review.gpkg"),  # lakepaper.postprocess.review.REVIEWS
        ),
        Stage(
            "06_accuracy",
            "accuracy",
            "Accuracy",
            "patch-level Table 1, river-mask Table 2, lake-level Fig. 5, scores per water type",
            "3.1",
            ("00_world", "01_composite", "02_samples", "03_train", "04_predict", "05_postprocess"),
        ),
        Stage(
            "07_distribution",
            "distribution",
            "Distribution",
            "headline numbers, 1° cells, latitude/longitude profiles",
            "3.2",
            ("00_world", "05_postprocess"),
        ),
        Stage(
            "08_comparison",
            "comparison",
            "Comparison",
            "vs GLAKES and PLD by size group, region and cell",
            "3.3",
            ("00_world", "01_composite", "05_postprocess"),
        ),
        Stage(
            "09_qtp",
            "qtp",
            "QTP lakes",
            "RGB U-Net on the QTP lake dataset, pre-training",
            "extra",
            ("00_world", "02_samples"),
        ),
        Stage("10_checkdam", "checkdam", "Check dams", "Jilin-1 gully dataset: grid, augmentation, U-Net", "extra"),
    )
}

#: The stage names in pipeline order.
STAGES: tuple[str, ...] = tuple(REGISTRY)


def get(name: str) -> Stage:
    """The registry entry of a stage, or a ParameterError naming the stages there are."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ParameterError("stage", f"unknown stage {name!r}; stages: {', '.join(STAGES)}") from None


#: The stage that simulates the world; the profiles that run on real data do not build it.
WORLD = "00_world"
#: Profiles on real data: no simulated world; every input comes from parameters (make prereqs says which).
REAL_DATA_PROFILES = ("paper",)


def stages_for(profile: str) -> tuple[str, ...]:
    """The stages ``make all`` builds for a profile: every stage, but the simulated world on real data."""
    return tuple(s for s in STAGES if not (s == WORLD and profile in REAL_DATA_PROFILES))


def readers(name: str) -> list[str]:
    """The stages that read ``name``'s outputs, directly or through another stage, in pipeline order."""
    found: set[str] = set()
    frontier = {name}
    while frontier:
        frontier = {s.name for s in REGISTRY.values() if set(s.reads) & frontier} - found
        found |= frontier
    return [s for s in STAGES if s in found]


from lakepaper.stages.runner import (  # noqa: E402  (the runner needs STAGES above)
    check_parameters,
    declared_parameters,
    notebook_path,
    parse_value,
    read_stamp,
    run_stage,
    split_parameters,
    stamp_path,
    write_stamps,
)

__all__ = [
    "REGISTRY",
    "STAGES",
    "Stage",
    "check_parameters",
    "declared_parameters",
    "get",
    "notebook_path",
    "parse_value",
    "read_stamp",
    "readers",
    "stages_for",
    "run_stage",
    "split_parameters",
    "stamp_path",
    "write_stamps",
]
