"""Issue 11 across the stages: SIGKILL at many moments, reruns equal to uninterrupted runs.

Each job below is what a stage's notebook does (``io.begin_stage``, the stage function, the
manifest last), run in a fresh interpreter and killed with SIGKILL at fractions of its
uninterrupted run time (``tests/killpoints.py`` explains the checks): composite and samples at
five moments each, train, predict and postprocess at four each (timed from the stage's start,
after the imports). Stage 04 also loses a Dask worker mid-tile. Slow: run by ``make test-all``.
"""

from __future__ import annotations

import os
import textwrap

import pandas as pd
import pytest
from builders import TILES, synthetic_set, tiny_checkpoint, truth_world, write_input_tile, write_set, write_standin
from killpoints import MARK, check_kill_points, die_once, stage_digest

from lakepaper import io
from lakepaper.train.checkpoint import read_checkpoint
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
        from pathlib import Path
        from lakepaper.composite.sources import catalog_tiles, composite_stac
        out, started = os.environ["OUT"], time.time()
        io.begin_stage(out)
        stac = {str(world)!r} + "/stac"
        composite_stac(stac, catalog_tiles(stac), Path(out), params.resolve("tiny"), progress=False, source="world")
        io.write_manifest(out, stage="01_composite", started=started, parameters={{}})
    """)


def test_composite_survives_kills(world, tmp_path):
    counts = check_kill_points(_composite_job(world), tmp_path / "ref", tmp_path, FRACTIONS)
    print(f"kill points: {counts}")  # shown with -s
    assert counts["killed_mid_run"] >= 3, counts


def test_samples_survive_kills(world, composites, tmp_path):
    code = textwrap.dedent(f"""
        import os, time
        from lakepaper import io, params
        from lakepaper.samples.stage import build_samples
        from lakepaper.truth import Truth
        out, started = os.environ["OUT"], time.time()
        io.begin_stage(out)
        build_samples(Truth({str(world)!r}), {str(composites)!r}, out, params.resolve("tiny"), progress=False,
                      world_regions={str(world)!r} + "/regions.gpkg")
        io.write_manifest(out, stage="02_samples", started=started, parameters={{}})
    """)
    counts = check_kill_points(code, tmp_path / "ref", tmp_path, FRACTIONS)
    print(f"kill points: {counts}")  # shown with -s
    assert counts["killed_mid_run"] >= 3, counts


# --- stages 03-05: killed from the stage's start (MARK), after the imports ----------------------------------

STAGE_FRACTIONS = [0.1, 0.35, 0.6, 0.85]
#: Training long enough for kills between and inside epochs (~0.1 s an epoch).
TRAIN_OVER = {
    "patch_size": 32,
    "batch_size": 4,
    "patches_per_epoch": 16,
    "val_patches_per_epoch": 8,
    "max_epochs": 12,
    "patience": 50,
}


def _job(imports: str, body: str) -> str:
    return (
        textwrap.dedent(imports)
        + "\n"
        + textwrap.dedent(f"""
        import os, time
        from lakepaper import io
        out, started = os.environ["OUT"], time.time()
        io.begin_stage(out)
        {MARK}
    """)
        + textwrap.dedent(body)
    )


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    out = tmp_path_factory.mktemp("samples")
    data = synthetic_set()
    write_set(out, data["train"] + data["val"])
    return out


def _train_job(samples) -> str:
    return _job(
        """
        import torch
        torch.set_num_threads(1)
        from lakepaper import params
        from lakepaper.train.loop import load_splits, train
        """,
        f"""
        p = params.resolve("tiny", **{TRAIN_OVER!r})
        splits = load_splits({str(samples)!r}, p["composite_bands"])
        train(splits["train"], splits["val"], out, p, device="cpu", progress=False)
        io.write_manifest(out, stage="03_train", started=started, parameters={{}})
        """,
    )


def _train_left(folder, ref) -> None:
    """What a killed training run leaves is earlier, complete states of the reference's files: readable
    checkpoints of epochs it reached, and a history that is the reference's first rows, never behind last.pt."""
    full = pd.read_csv(ref / "history.csv").drop(columns="seconds", errors="ignore")
    rows = 0
    if (folder / "history.csv").exists():
        left = pd.read_csv(folder / "history.csv").drop(columns="seconds", errors="ignore")
        rows = len(left)
        pd.testing.assert_frame_equal(left, full.iloc[:rows], check_dtype=False)
    if (folder / "last.pt").exists():
        epoch = read_checkpoint(folder / "last.pt")["epoch"]  # raises on a half-written file
        assert 1 <= epoch <= rows, f"last.pt of epoch {epoch}, history.csv of {rows} epochs"
    if (folder / "best.pt").exists():  # written first in an epoch: may be one ahead of the history
        epoch = read_checkpoint(folder / "best.pt")["epoch"]
        assert 1 <= epoch <= rows + 1 and bool(full.best.iloc[epoch - 1]), f"best.pt of epoch {epoch}"


def test_train_survives_kills(samples, tmp_path):
    counts = check_kill_points(
        _train_job(samples),
        tmp_path / "ref",
        tmp_path,
        STAGE_FRACTIONS,
        mark=True,
        digest=stage_digest,
        check_left=_train_left,
    )
    print(f"kill points: {counts}")  # shown with -s
    assert counts["killed_mid_run"] >= 3, counts
    assert len(pd.read_csv(tmp_path / "ref" / "history.csv")) == TRAIN_OVER["max_epochs"]


@pytest.fixture(scope="module")
def predict_inputs(tmp_path_factory):
    """Six composite-like tiles (with no data) and an untrained tiny U-Net."""
    out = tmp_path_factory.mktemp("predict_in")
    for k in range(6):
        write_input_tile(out / "tiles" / f"T{k:02d}.tif", shape=(200, 230), seed=k)
    return sorted((out / "tiles").glob("*.tif")), tiny_checkpoint(out / "model.pt")


def _predict_job(tiles, checkpoint) -> str:
    return _job(
        """
        import torch
        torch.set_num_threads(1)
        from lakepaper.predict.cluster import predict_tiles
        """,
        f"""
        predict_tiles({[str(t) for t in tiles]!r}, {str(checkpoint)!r}, os.path.join(out, "tiles"), edge=8, batch=4,
                      scheduler="sync", progress=False)
        io.write_manifest(out, stage="04_predict", started=started, parameters={{}})
        """,
    )


def test_predict_survives_kills(predict_inputs, tmp_path):
    counts = check_kill_points(_predict_job(*predict_inputs), tmp_path / "ref", tmp_path, STAGE_FRACTIONS, mark=True)
    print(f"kill points: {counts}")  # shown with -s
    assert counts["killed_mid_run"] >= 3, counts
    assert len(io.hash_tree(tmp_path / "ref" / "tiles")) == 2 * len(predict_inputs[0])


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    """A truth world of four tiles and the stand-in prediction of ``test_postprocess.py``."""
    world = truth_world(tmp_path_factory.mktemp("world05"), TILES)
    out = tmp_path_factory.mktemp("standin")
    write_standin(world, out)
    return world, out


def test_postprocess_survives_kills(standin, tmp_path):
    world, prediction = standin
    code = _job(
        """
        from lakepaper import params
        from lakepaper.postprocess.references import ReferenceSet, resolve_paths
        from lakepaper.postprocess.pipeline import postprocess, write_outputs
        """,
        f"""
        refs = ReferenceSet(resolve_paths({{}}, {str(world.references)!r}))
        result = postprocess({str(prediction)!r}, params.resolve("tiny"), references=refs)
        write_outputs(result, out)
        io.write_manifest(out, stage="05_postprocess", started=started, parameters={{}})
        """,
    )
    counts = check_kill_points(code, tmp_path / "ref", tmp_path, STAGE_FRACTIONS, mark=True)
    print(f"kill points: {counts}")  # shown with -s
    assert counts["killed_mid_run"] >= 3, counts
    assert {"lakes.gpkg", "lakes.parquet", "rules.csv"} <= set(io.hash_tree(tmp_path / "ref"))


# --- stage 04 on Dask: a worker dies mid-tile ------------------------------------------------------------------


def test_a_worker_dying_mid_tile_loses_and_duplicates_no_tile(predict_inputs, tmp_path):
    """One LocalCluster worker process exits (``os._exit``) while a tile is half written; the nanny restarts it,
    the scheduler gives the tile to a worker again: every tile once, each identical to a run without Dask."""
    from dask.distributed import Client, LocalCluster

    from lakepaper.predict.cluster import LEDGER, predict_tiles

    tiles, checkpoint = predict_inputs
    clean = predict_tiles(tiles, checkpoint, tmp_path / "clean", edge=8, batch=4, scheduler="sync", progress=False)
    out, flag = tmp_path / "dask", tmp_path / "died"
    out.mkdir()
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        client.register_plugin(die_once(str(flag), str(out)))
        before = set(client.run(os.getpid).values())
        summary = predict_tiles(
            tiles, checkpoint, out, edge=8, batch=4, scheduler=cluster.scheduler_address, progress=False
        )
        client.wait_for_workers(2)
        after = set(client.run(os.getpid).values())
    assert flag.exists() and flag.read_text() in {str(p) for p in before}  # a worker did die, mid-tile
    assert before != after  # and was replaced
    assert summary.tile.tolist() == clean.tile.tolist() == [t.stem for t in tiles]  # each tile once
    assert not summary.skipped.any()
    assert io.hash_tree(out) == io.hash_tree(tmp_path / "clean")
    # the dead worker's half-written files are hidden .partial names, which no reader takes and the
    # stage's next start removes (beside the ledger of finished tiles, hidden too)
    stale = [p.name for p in out.iterdir() if p.name.startswith(".") and p.name != LEDGER]
    assert stale and all(f".{flag.read_text()}.partial" in n for n in stale), stale
    io.begin_stage(out)
    assert not [p for p in out.iterdir() if ".partial" in p.name]
    again = predict_tiles(tiles, checkpoint, out, edge=8, scheduler="sync", progress=False)
    assert again.skipped.all()
