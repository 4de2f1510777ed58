"""Issue 11 across the stages: SIGKILL at many moments, reruns equal to uninterrupted runs.

Each job below is what a stage's notebook does (``io.begin_stage``, the stage function, the
manifest last), run in a fresh interpreter and killed with SIGKILL at fractions of its
uninterrupted run time (``tests/killpoints.py`` explains the checks). Slow: run by
``make test-all``.
"""

from __future__ import annotations

import textwrap

import pytest
from killpoints import check_kill_points

from lakepaper.world.generate import generate_world
from lakepaper.world.sites import WorldConfig

pytestmark = pytest.mark.slow

FRACTIONS = [0.1, 0.3, 0.5, 0.7, 0.9]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    cfg = WorldConfig(tile_px=256, scenes_per_tile=6, tiles=("T03", "T07", "T09", "T11")).validated()
    generate_world(cfg, out, workers=2, progress=False, parameters={"n_sample_regions": 20})
    return out


@pytest.fixture(scope="module")
def composites(world, tmp_path_factory):
    out = tmp_path_factory.mktemp("composite")
    from killpoints import run_job

    run_job(_composite_job(world), out)
    return out


def _composite_job(world) -> str:
    return textwrap.dedent(f"""
        import os, time
        from lakepaper import io, params
        from lakepaper.composite.stage import composite_world
        from lakepaper.world.files import WorldFiles
        out, started = os.environ["OUT"], time.time()
        io.begin_stage(out)
        composite_world(WorldFiles({str(world)!r}), out, params.resolve("tiny"), progress=False)
        io.write_manifest(out, stage="01_composite", started=started, parameters={{}})
    """)


def test_composite_survives_kills(world, tmp_path):
    counts = check_kill_points(_composite_job(world), tmp_path / "ref", tmp_path, FRACTIONS)
    assert counts["killed_mid_run"] >= 3, counts


def test_samples_survive_kills(world, composites, tmp_path):
    code = textwrap.dedent(f"""
        import os, time
        from lakepaper import io, params
        from lakepaper.samples.stage import build_samples
        from lakepaper.world.files import WorldFiles
        out, started = os.environ["OUT"], time.time()
        io.begin_stage(out)
        build_samples(WorldFiles({str(world)!r}), {str(composites)!r}, out, params.resolve("tiny"), progress=False)
        io.write_manifest(out, stage="02_samples", started=started, parameters={{}})
    """)
    counts = check_kill_points(code, tmp_path / "ref", tmp_path, FRACTIONS)
    assert counts["killed_mid_run"] >= 3, counts
