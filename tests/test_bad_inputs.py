"""Issue 11: bad inputs across the stages that the stage test files do not already cover.

Every case here checks three things: the error names the file or parameter and what is wrong;
nothing is written; and an output that was already finished is not damaged (its bytes are
unchanged). Cases of one stage that its own test file covers (bad scenes and parameters of
stage 01 in ``test_composite.py``, edits and thresholds in ``test_samples.py``, window geometry
and bands in ``test_predict.py``, papermill parameters in ``test_stages.py``) are counted with
these by the ``bad_input`` marker: ``pytest -m bad_input --collect-only -q``.
"""

from __future__ import annotations

import errno
import os
import shutil
import warnings

import numpy as np
import pytest
from builders import composite_tile, kept_scenes
from rasterio.transform import Affine

from lakepaper import io, params
from lakepaper.errors import InputError, LakepaperError
from lakepaper.predict.tiled import InputTile, predict_tile
from lakepaper.samples.chips import read_training_set, write_chip
from lakepaper.samples.stage import build_samples
from lakepaper.stages import composite as composite_stage
from lakepaper.stages import samples as samples_stage
from lakepaper.stages.context import Context
from lakepaper.world.files import WorldFiles
from lakepaper.world.generate import generate_world
from lakepaper.world.sites import WorldConfig

pytestmark = pytest.mark.bad_input
TILE = "T07"
BANDS = ("B2", "B3", "B4", "B11", "NDWI")


@pytest.fixture(scope="module")
def p():
    return params.resolve("tiny")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("built") / "00_world"
    cfg = WorldConfig(tile_px=256, scenes_per_tile=4, tiles=(TILE,)).validated()
    generate_world(cfg, out, workers=1, progress=False, parameters={"n_sample_regions": 6})
    return WorldFiles(out)


@pytest.fixture(scope="module")
def composite(world):
    """Stage 01 run on the world, beside it (``<root>/01_composite``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return composite_stage.run(
            Context.create("01_composite", profile="tiny", root=world.root.parent, quiet=True)
        ).out


def _truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _copy_world(world, dst):
    shutil.copytree(world.root, dst, ignore=shutil.ignore_patterns("references"))
    return WorldFiles(dst)


def _unchanged(folder):
    """Snapshot of every file's hash (hidden ones included) to compare after a failure."""
    return {f.relative_to(folder).as_posix(): io.sha256_file(f) for f in sorted(folder.rglob("*")) if f.is_file()}


def test_truncated_scene_names_the_file_and_keeps_the_finished_tile(world, composite, p, tmp_path):
    w = _copy_world(world, tmp_path / "w")
    sid = kept_scenes(w, TILE, p).system_index.iloc[1]
    bad = w.asset_paths(TILE, sid, "L2A_10m")[0]
    _truncate(bad)
    out = tmp_path / "out"
    shutil.copytree(composite, out)  # a finished composite of this tile is already there
    before = _unchanged(out)
    with pytest.raises(LakepaperError, match=bad.name):
        composite_tile(w, TILE, out / "tiles" / f"{TILE}.tif", p=p)
    assert _unchanged(out) == before


def test_truncated_composite_in_samples_names_the_file(world, composite, p, tmp_path):
    comp = tmp_path / "comp"
    shutil.copytree(composite, comp)
    _truncate(comp / "tiles" / f"{TILE}.tif", 0.3)
    with pytest.raises(InputError, match=f"{TILE}.tif"):
        build_samples(world, comp, tmp_path / "s", p, world_regions=world.root / "regions.gpkg", progress=False)
    assert not (tmp_path / "s" / "regions.gpkg").exists() and not (tmp_path / "s" / "chips").exists()


def test_truncated_chip_names_the_file(world, composite, p, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        build_samples(world, composite, tmp_path / "s", p, world_regions=world.root / "regions.gpkg", progress=False)
    victim = sorted((tmp_path / "s" / "chips").glob("*_image.tif"))[0]
    _truncate(victim, 0.4)
    with pytest.raises(InputError, match=victim.name):
        read_training_set(tmp_path / "s")


def test_truncated_predict_input_names_the_file(composite, tmp_path):
    bad = tmp_path / "in.tif"
    shutil.copy(composite / "tiles" / f"{TILE}.tif", bad)
    _truncate(bad, 0.2)
    with pytest.raises(InputError, match="in.tif"):
        tile = InputTile.open(bad, BANDS)
        predict_tile(
            lambda x: np.zeros((len(x), *x.shape[2:])), tile, tmp_path / "p.tif", tmp_path / "m.tif", size=64, edge=8
        )
    assert not (tmp_path / "p.tif").exists() and not (tmp_path / "m.tif").exists()


def test_nan_values_in_a_predict_input_become_nodata(tmp_path):
    data = np.random.default_rng(0).random((5, 48, 48)).astype(np.float32)
    data[:, 5:9, 5:9] = np.nan
    io.write_raster(
        tmp_path / "nan.tif", data, crs="EPSG:32633", transform=Affine(10, 0, 0, 0, -10, 0), band_names=list(BANDS)
    )
    tile = InputTile.open(tmp_path / "nan.tif", BANDS)
    predict_tile(
        lambda x: np.full((len(x), *x.shape[2:]), 0.9, np.float32),
        tile,
        tmp_path / "p.tif",
        tmp_path / "m.tif",
        size=64,
        edge=8,
    )
    mask = io.read_raster(tmp_path / "m.tif")[0][0]
    assert (mask[5:9, 5:9] == 255).all() and (mask[10:, 10:] == 1).all()


def _run_stage(stage, world, composite, out):
    """Stages 01 and 02 through their run(ctx), into ``out`` (named as the stage, the earlier stages linked
    beside it); stage 04's tile writer on one tile."""
    if stage in ("composite", "samples"):
        root = out.parent
        (root / "00_world").symlink_to(world.root)
        if stage == "samples":
            (root / "01_composite").symlink_to(composite)
        module = composite_stage if stage == "composite" else samples_stage
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module.run(Context.create(FOLDER[stage], profile="tiny", root=root, quiet=True))
    else:
        tile = InputTile.open(composite / "tiles" / f"{TILE}.tif", BANDS)
        predict_tile(lambda x: np.zeros((len(x), *x.shape[2:])), tile, out / "p.tif", out / "m.tif", size=64, edge=8)


STAGES = ["composite", "samples", "predict"]
FOLDER = {"composite": "01_composite", "samples": "02_samples", "predict": "04_predict"}


@pytest.mark.parametrize("stage", STAGES)
def test_a_disk_that_refuses_the_final_rename_leaves_nothing(world, composite, p, tmp_path, monkeypatch, stage):
    """As on a file system that turned read-only mid-run (EROFS): the error surfaces, no file is left."""

    def refuse(src, dst):
        raise OSError(errno.EROFS, "Read-only file system", str(dst))

    monkeypatch.setattr(io.os, "replace", refuse)
    out = tmp_path / FOLDER[stage]
    out.mkdir()
    with pytest.raises(OSError, match="Read-only"):
        _run_stage(stage, world, composite, out)
    left = [f.relative_to(out).as_posix() for f in out.rglob("*") if f.is_file()]
    assert not left, left


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores folder permissions; the EROFS test above covers it")
@pytest.mark.parametrize("stage", STAGES)
def test_read_only_output_folder_fails_cleanly(world, composite, p, tmp_path, stage):
    out = tmp_path / FOLDER[stage]
    out.mkdir()
    out.chmod(0o555)
    try:
        with pytest.raises((OSError, LakepaperError)):
            _run_stage(stage, world, composite, out)
        assert not list(out.iterdir())
    finally:
        out.chmod(0o755)


def test_chip_written_over_a_finished_one_is_atomic(tmp_path):
    t = Affine(10, 0, 0, 0, -10, 0)
    good = np.zeros((5, 8, 8), np.float32)
    write_chip(tmp_path, "R1", good, np.zeros((8, 8), np.uint8), crs="EPSG:32633", transform=t)
    before = _unchanged(tmp_path)
    with pytest.raises(InputError, match="not binary"):
        write_chip(tmp_path, "R1", good, np.full((8, 8), 3, np.uint8), crs="EPSG:32633", transform=t)
    assert _unchanged(tmp_path) == before
