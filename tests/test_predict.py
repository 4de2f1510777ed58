"""Stage 04: window geometry, seamless stitching, no data, atomic outputs, resumable runs, the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from builders import write_input_tile as _tile
from rasterio.transform import Affine

from lakepaper import io
from lakepaper.errors import InputError, ParameterError
from lakepaper.predict import cluster, windows
from lakepaper.predict.tiled import NODATA, PROB_SCALE, InputTile, predict_tile

BANDS = ("B2", "B3", "B4", "B11", "NDWI")
SIZE, EDGE = 64, 8


def _net(seed: int = 0) -> torch.nn.Module:
    """Receptive field radius 2 <= EDGE: each kept pixel sees only real (or reflected) data."""
    torch.manual_seed(seed)
    conv = torch.nn.Conv2d
    return torch.nn.Sequential(conv(5, 4, 3, padding=1), torch.nn.ReLU(), conv(4, 1, 3, padding=1), torch.nn.Sigmoid())


def _forward(net):
    net.eval()

    def f(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return net(torch.from_numpy(x))[:, 0].numpy()

    return f


def test_windows_cover_every_pixel_once_with_context():
    for n in (1, 47, 48, 49, 150, 376):
        keep = SIZE - 2 * EDGE
        hits = np.zeros(n, int)
        for s in windows.starts(n, SIZE, EDGE):
            lo, hi = s + EDGE, min(s + EDGE + keep, n)
            hits[lo:hi] += 1
            assert lo - s >= EDGE and (s + SIZE) - hi >= EDGE
        assert (hits == 1).all(), n
    assert windows.starts(1000, 576, 100)[:3] == [-100, 276, 652]  # the authors' stride 376
    assert windows.valid_fraction(576, 100) == pytest.approx(376**2 / 576**2)


@pytest.mark.bad_input
@pytest.mark.parametrize(("size", "edge", "name"), [(60, 8, "patch_size"), (64, 32, "edge_px"), (64, -1, "edge_px")])
def test_window_geometry_errors_name_the_parameter(size, edge, name):
    with pytest.raises(ParameterError, match=name):
        windows.check_geometry(size, edge)


def test_stitched_prediction_equals_each_pixels_own_window(tmp_path):
    data = _tile(tmp_path / "in.tif")
    f = _forward(_net())
    tile = InputTile.open(tmp_path / "in.tif", BANDS)
    info = predict_tile(f, tile, tmp_path / "p.tif", tmp_path / "m.tif", size=SIZE, edge=EDGE, batch=3)
    assert info["windows"] == 4 * 4
    prob, meta = io.read_raster(tmp_path / "p.tif")
    valid = ~(data == -32768).any(axis=0)
    # reference: the whole tile at once (reflect-padded as the windows are): every pixel's own centred view
    x = np.where(valid, data / 1000.0, 0.0).astype(np.float32)  # a pixel missing any band is 0 in every band
    ref = f(np.pad(x, ((0, 0), (EDGE, EDGE), (EDGE, EDGE)), mode="reflect")[None])[0][EDGE:-EDGE, EDGE:-EDGE]
    diff = np.abs(np.rint(ref * PROB_SCALE) - prob[0])[valid]
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3  # equal but for float rounding at .5 steps
    assert (prob[0][~valid] == NODATA).all()
    mask = io.read_raster(tmp_path / "m.tif")[0][0]
    assert set(np.unique(mask)) <= {0, 1, NODATA} and (mask[~valid] == NODATA).all()
    assert np.array_equal(mask[valid] == 1, ref[valid] > 0.5)
    assert meta["crs"].to_epsg() == 32633 and meta["transform"] == Affine(10, 0, 500000, 0, -10, 4000000)
    assert meta["tags"]["SCALE"] == str(PROB_SCALE)


@pytest.mark.bad_input
def test_tile_smaller_than_a_window_is_predicted(tmp_path):
    _tile(tmp_path / "small.tif", shape=(20, 30), hole=False)
    tile = InputTile.open(tmp_path / "small.tif", BANDS)
    info = predict_tile(_forward(_net()), tile, tmp_path / "p.tif", tmp_path / "m.tif", size=SIZE, edge=EDGE)
    assert info["windows"] == 1 and io.read_raster(tmp_path / "m.tif")[0].shape == (1, 20, 30)


@pytest.mark.bad_input
def test_all_nodata_tile_gives_all_nodata_output(tmp_path):
    data = np.full((5, 40, 40), -32768, np.int16)
    io.write_raster(
        tmp_path / "empty.tif",
        data,
        crs="EPSG:32633",
        transform=Affine(10, 0, 0, 0, -10, 0),
        nodata=-32768,
        band_names=list(BANDS),
        tags={"SCALE": 1000},
    )
    tile = InputTile.open(tmp_path / "empty.tif", BANDS)
    info = predict_tile(_forward(_net()), tile, tmp_path / "p.tif", tmp_path / "m.tif", size=SIZE, edge=EDGE)
    assert info["nodata_share"] == 1.0 and (io.read_raster(tmp_path / "m.tif")[0] == NODATA).all()


@pytest.mark.bad_input
def test_band_errors_name_the_file(tmp_path):
    _tile(tmp_path / "in.tif")
    with pytest.raises(InputError, match="in.tif.*lacks band.*B8"):
        InputTile.open(tmp_path / "in.tif", ("B2", "B3", "B4", "B8"))
    data = np.zeros((3, 32, 32), np.int16)
    io.write_raster(tmp_path / "three.tif", data, crs="EPSG:32633", transform=Affine(10, 0, 0, 0, -10, 0))
    with pytest.raises(InputError, match="three.tif.*no names"):
        InputTile.open(tmp_path / "three.tif", BANDS)
    with pytest.raises(InputError, match="three.tif.*has 3 bands"):
        InputTile.open(tmp_path / "three.tif", BANDS, file_bands=BANDS)
    with pytest.raises(InputError, match="not found"):
        InputTile.open(tmp_path / "nope.tif", BANDS)


def test_unnamed_bands_with_declared_order_and_scale(tmp_path):
    rng = np.random.default_rng(1)
    data = rng.random((5, 40, 40)).astype(np.float32)
    io.write_raster(tmp_path / "plain.tif", data * 10000, crs="EPSG:4326", transform=Affine(1e-4, 0, 0, 0, -1e-4, 0))
    order = ("NDWI", "B4", "B3", "B2", "B11")  # the authors' own band order
    tile = InputTile.open(tmp_path / "plain.tif", BANDS, scale=10000, file_bands=order)
    assert tile.indexes == [4, 3, 2, 5, 1]
    with __import__("rasterio").open(tmp_path / "plain.tif") as src:
        got, _ = tile.read_rows(src, 0, 40)
    assert np.allclose(got[4], data[0], atol=1e-6)


@pytest.mark.bad_input
def test_a_failure_mid_tile_leaves_no_file(tmp_path):
    _tile(tmp_path / "in.tif")
    calls = {"n": 0}
    f = _forward(_net())

    def failing(x):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("killed")
        return f(x)

    with pytest.raises(RuntimeError):
        predict_tile(
            failing,
            InputTile.open(tmp_path / "in.tif", BANDS),
            tmp_path / "o" / "p.tif",
            tmp_path / "o" / "m.tif",
            size=SIZE,
            edge=EDGE,
            batch=2,
        )
    assert not list((tmp_path / "o").iterdir())


def test_finished_tiles_are_skipped(tmp_path, monkeypatch):
    for k in range(3):
        _tile(tmp_path / f"T0{k}.tif", seed=k)
    monkeypatch.setattr(cluster, "load_forward", lambda path, precision: (_forward(_net()), BANDS, SIZE))
    tiles = sorted(tmp_path.glob("T0*.tif"))
    first = cluster.predict_tiles(tiles[:2], "x.pt", tmp_path / "out", edge=EDGE, scheduler="sync", progress=False)
    assert not first.skipped.any()
    stamp = (tmp_path / "out" / "T00_mask.tif").stat().st_mtime_ns
    second = cluster.predict_tiles(tiles, "x.pt", tmp_path / "out", edge=EDGE, scheduler="sync", progress=False)
    assert second.skipped.tolist() == [True, True, False]
    assert (tmp_path / "out" / "T00_mask.tif").stat().st_mtime_ns == stamp


def test_tiles_of_another_model_or_setting_are_predicted_again(tmp_path, monkeypatch):
    _tile(tmp_path / "T00.tif", seed=0)
    monkeypatch.setattr(cluster, "load_forward", lambda path, precision: (_forward(_net()), BANDS, SIZE))
    tiles = [tmp_path / "T00.tif"]
    model_a, model_b = tmp_path / "a.pt", tmp_path / "b.pt"
    model_a.write_bytes(b"model a")
    model_b.write_bytes(b"model b")
    kw = {"edge": EDGE, "scheduler": "sync", "progress": False}
    assert not cluster.predict_tiles(tiles, model_a, tmp_path / "out", **kw).skipped.any()
    assert cluster.predict_tiles(tiles, model_a, tmp_path / "out", **kw).skipped.all()  # same run: kept
    assert not cluster.predict_tiles(tiles, model_b, tmp_path / "out", **kw).skipped.any()  # another model
    assert not cluster.predict_tiles(tiles, model_b, tmp_path / "out", **kw, threshold=0.7).skipped.any()
    _tile(tmp_path / "T00.tif", seed=1)  # the composite changed
    assert not cluster.predict_tiles(tiles, model_b, tmp_path / "out", **kw, threshold=0.7).skipped.any()


def test_precision_auto_is_a_concrete_choice_and_bad_ones_are_named():
    from lakepaper.predict.model import resolve_precision

    assert resolve_precision("fp32") == "fp32" and resolve_precision("bf16") == "bf16"
    assert resolve_precision("auto", "cpu") in ("fp32", "bf16")
    from lakepaper.predict.model import make_forward

    f = make_forward(_net(), "fp32", device="cpu")
    assert f.device == "cpu" and not hasattr(f, "empty")  # pinned buffers are for CUDA only
    assert f(np.zeros((2, 5, 16, 16), np.float32)).shape == (2, 16, 16)
    with pytest.raises(ParameterError, match="precision"):
        resolve_precision("fp16")


def _peak_numpy_bytes(tmp_path, shape, name, pipeline="auto") -> int:
    """Peak bytes allocated through Python's allocators (numpy included) while predicting a tile."""
    import tracemalloc

    _tile(tmp_path / f"{name}.tif", shape=shape, hole=False)
    tile = InputTile.open(tmp_path / f"{name}.tif", BANDS)
    f = _forward(_net())
    tracemalloc.start()
    try:
        out = (tmp_path / f"{name}_p.tif", tmp_path / f"{name}_m.tif")
        predict_tile(f, tile, *out, size=SIZE, edge=EDGE, batch=4, pipeline=pipeline)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _peak_in_fresh_process(tmp_path, shape, name, pipeline) -> int:
    """:func:`_peak_numpy_bytes` in a fresh interpreter: tracemalloc counts every thread's allocations, and
    threads an earlier test left running (a Dask cluster, a reader pool) would add theirs to the peak."""
    import subprocess
    import sys

    code = (
        f"import sys, pathlib; sys.path.insert(0, {str(Path(__file__).parent)!r}); import test_predict as t; "
        f"print(t._peak_numpy_bytes(pathlib.Path({str(tmp_path)!r}), {shape!r}, {name!r}, {pipeline!r}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("pipeline", ["sequential", "overlapped"])
def test_memory_is_bounded_by_the_strip_not_the_tile(tmp_path, pipeline):
    base = _peak_in_fresh_process(tmp_path, (256, 512), "base", pipeline)
    taller = _peak_in_fresh_process(tmp_path, (1024, 512), "taller", pipeline)  # 4x the pixels, same strip width
    wider = _peak_in_fresh_process(tmp_path, (512, 1024), "wider", pipeline)  # 4x the pixels, strips twice as wide
    assert taller < 1.3 * base, (base, taller)
    assert wider < 2.6 * base, (base, wider)


@pytest.mark.parametrize("readers", [1, 3])
def test_overlapped_loop_writes_the_same_bytes_as_the_sequential_one(tmp_path, readers):
    _tile(tmp_path / "in.tif", shape=(300, 170))  # 7 strips: more than the read-ahead and writer queues hold
    tile = InputTile.open(tmp_path / "in.tif", BANDS)
    f = _forward(_net(seed=3))
    files, infos = {}, {}
    for mode in ("sequential", "overlapped"):
        out = tmp_path / mode
        infos[mode] = predict_tile(
            f, tile, out / "p.tif", out / "m.tif", size=SIZE, edge=EDGE, batch=3, pipeline=mode, readers=readers
        )
        files[mode] = [(out / name).read_bytes() for name in ("p.tif", "m.tif")]
        assert infos[mode]["pipeline"] == mode
    assert files["overlapped"] == files["sequential"]
    for key in ("windows", "lake_share", "nodata_share"):
        assert infos["overlapped"][key] == infos["sequential"][key]
    shapes = []  # a model call that hands out its own (on CUDA: pinned) buffers gets its windows stacked into them
    f.empty = lambda shape: shapes.append(shape) or np.full(shape, np.nan, np.float32)
    out = tmp_path / "buffers"
    predict_tile(f, tile, out / "p.tif", out / "m.tif", size=SIZE, edge=EDGE, batch=3, pipeline="overlapped")
    assert shapes[:2] == [(3, 5, SIZE, SIZE), (1, 5, SIZE, SIZE)]  # 4 windows a strip: 3 + 1
    assert [(out / name).read_bytes() for name in ("p.tif", "m.tif")] == files["sequential"]
    assert 0 < infos["overlapped"]["lake_share"] < 1 and infos["overlapped"]["nodata_share"] > 0


def test_auto_pipeline_follows_the_model_calls_device(tmp_path):
    from lakepaper.predict import tiled

    assert tiled.resolve_pipeline("auto", "cpu") == tiled.AUTO_PIPELINE["cpu"]
    assert tiled.resolve_pipeline("auto", "cuda:1") == "overlapped"
    assert tiled.resolve_pipeline("sequential", "cuda") == "sequential"
    with pytest.raises(ParameterError, match="pipeline"):
        tiled.resolve_pipeline("parallel")
    _tile(tmp_path / "in.tif", shape=(40, 40), hole=False)
    tile = InputTile.open(tmp_path / "in.tif", BANDS)
    f = _forward(_net())
    f.device = "cuda"  # a model call says where it runs; the loop on the CPU side follows
    info = predict_tile(f, tile, tmp_path / "p.tif", tmp_path / "m.tif", size=SIZE, edge=EDGE)
    assert info["pipeline"] == "overlapped"
    with pytest.raises(ParameterError, match="readers"):
        predict_tile(f, tile, tmp_path / "p.tif", tmp_path / "m.tif", size=SIZE, edge=EDGE, readers=0)


@pytest.mark.bad_input
@pytest.mark.parametrize("where", ["model", "reader", "writer"])
def test_a_failure_in_any_thread_of_the_overlapped_loop_leaves_no_file(tmp_path, monkeypatch, where):
    from lakepaper.predict import tiled

    _tile(tmp_path / "in.tif", shape=(300, 170))
    calls = {"n": 0}
    f = _forward(_net())

    def fail_third(fn):
        def wrapped(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 3:
                raise RuntimeError(f"killed in the {where}")
            return fn(*args, **kwargs)

        return wrapped

    if where == "model":
        f = fail_third(f)
    elif where == "reader":
        monkeypatch.setattr(tiled, "_padded_strip", fail_third(tiled._padded_strip))
    else:
        monkeypatch.setattr(tiled._Strips, "write", fail_third(tiled._Strips.write))
    out = tmp_path / "o"
    with pytest.raises(RuntimeError, match=f"killed in the {where}"):
        tile = InputTile.open(tmp_path / "in.tif", BANDS)
        predict_tile(f, tile, out / "p.tif", out / "m.tif", size=SIZE, edge=EDGE, batch=2, pipeline="overlapped")
    assert not list(out.iterdir())
    assert not [t for t in __import__("threading").enumerate() if t.name.startswith("lakepaper-")]
