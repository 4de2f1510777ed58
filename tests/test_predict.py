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


def test_consecutive_strips_decode_each_row_once_with_the_same_values(tmp_path, monkeypatch):
    import rasterio

    from lakepaper.predict import tiled

    _tile(tmp_path / "in.tif", shape=(150, 170))  # a block of no data in rows 10-19, one pixel missing a band
    tile = InputTile.open(tmp_path / "in.tif", BANDS)
    read = []
    original = InputTile.read_rows

    def counting(self, src, r0, r1, fill=np.nan):
        read.append((r0, r1))
        return original(self, src, r0, r1, fill)

    with rasterio.open(tmp_path / "in.tif") as src:
        spans = [(0, 56), (40, 104), (88, 150), (0, 30)]
        direct = {(lo, hi): tile.read_rows(src, lo, hi, fill=0.0) for lo, hi in spans}
        monkeypatch.setattr(InputTile, "read_rows", counting)
        reader = tiled._RowReader(tile, src)
        for (lo, hi), (data, valid) in direct.items():  # three overlapping strips, then a jump back
            got, got_valid = reader.rows(lo, hi)
            assert np.array_equal(got, data) and np.array_equal(got_valid, valid), (lo, hi)
    assert read == [(0, 56), (56, 104), (104, 150), (0, 30)]  # only the rows not read before, but after a jump
    assert not direct[(0, 56)][1][10:20, 30:40].any() and (direct[(0, 56)][0][:, 10:20, 30:40] == 0).all()


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
    monkeypatch.setattr(cluster, "load_forward", lambda path, **kw: (_forward(_net()), BANDS, SIZE))
    tiles = sorted(tmp_path.glob("T0*.tif"))
    first = cluster.predict_tiles(tiles[:2], "x.pt", tmp_path / "out", edge=EDGE, scheduler="sync", progress=False)
    assert not first.skipped.any()
    stamp = (tmp_path / "out" / "T00_mask.tif").stat().st_mtime_ns
    second = cluster.predict_tiles(tiles, "x.pt", tmp_path / "out", edge=EDGE, scheduler="sync", progress=False)
    assert second.skipped.tolist() == [True, True, False]
    assert (tmp_path / "out" / "T00_mask.tif").stat().st_mtime_ns == stamp


def test_tiles_of_another_model_or_setting_are_predicted_again(tmp_path, monkeypatch):
    _tile(tmp_path / "T00.tif", seed=0)
    monkeypatch.setattr(cluster, "load_forward", lambda path, **kw: (_forward(_net()), BANDS, SIZE))
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


# --- the model call: torch.compile, padded batches (issue: faster model calls) ------------------------------------


def _tiny_unet(seed: int = 0) -> torch.nn.Module:
    from lakepaper.unet import UNet

    torch.manual_seed(seed)
    net = UNet(5, (4, 8, 16, 32, 64))
    for m in net.modules():  # running statistics far from 0/1, so that a batch-dependent normalisation would show
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return net.eval()


def test_compile_modes_resolve_per_device_and_bad_ones_are_named(tmp_path):
    from lakepaper.predict.model import AUTO_COMPILE, make_forward, resolve_compile

    assert resolve_compile("auto", "cpu") == AUTO_COMPILE["cpu"] == "off"
    assert resolve_compile("auto", "cuda:1") == AUTO_COMPILE["cuda"] != "off"
    assert resolve_compile("reduce-overhead", "cpu") == "reduce-overhead"
    assert make_forward(_net(), "fp32", "cpu").compile == "off"  # the default, auto, on the CPU
    with pytest.raises(ParameterError, match="compile"):
        resolve_compile("fast")
    with pytest.raises(ParameterError, match="compile"):
        make_forward(_net(), "fp32", "cpu", compile="on")
    with pytest.raises(ParameterError, match="compile"):
        cluster.predict_tiles([], "x.pt", tmp_path, edge=EDGE, compile="yes", scheduler="sync", progress=False)


def test_padding_the_last_batch_changes_no_output():
    """The last, smaller batch of a strip padded with zero windows to the full batch: the model sees the full
    batch, and the real windows' outputs are those of an unpadded call."""
    from lakepaper.predict.model import make_forward

    net, seen = _tiny_unet(), []
    net.register_forward_hook(lambda module, args, out: seen.append(tuple(args[0].shape)))
    x = np.random.default_rng(3).random((4, 5, 32, 32)).astype(np.float32)
    padded = make_forward(net, "fp32", "cpu", compile="off", pad=True)
    plain = make_forward(net, "fp32", "cpu", compile="off", pad=False)
    full = padded(x)
    last = padded(x[:3])  # a strip's last batch
    assert [s[0] for s in seen] == [4, 4] and last.shape == (3, 32, 32)
    np.testing.assert_array_equal(full, plain(x))
    np.testing.assert_allclose(last, plain(x[:3]), rtol=0, atol=1e-6)
    np.testing.assert_allclose(last, full[:3], rtol=0, atol=1e-6)
    assert [s[0] for s in seen[2:]] == [4, 3]  # unpadded: the model saw the batch as given
    assert make_forward(net, "fp32", "cpu", compile="off").compile == "off"
    seen.clear()
    make_forward(net, "fp32", "cpu", compile="off")(x[:3])
    assert seen == [(3, 5, 32, 32)]  # eager pads only when asked


def test_padding_wastes_at_most_a_quarter_of_a_batch_until_the_graphs_run_out():
    """A batch is padded to the smallest one run before if at most MAX_PAD_WASTE of it would be zeros; else it
    runs as it is (a graph of its own), until MAX_GRAPHS shapes, from when it is padded whatever the waste."""
    from lakepaper.predict import model as m

    assert (m.MAX_PAD_WASTE, m.MAX_GRAPHS) == (0.25, 4)
    net, seen = _net(), []
    net.register_forward_hook(lambda module, args, out: seen.append(args[0].shape[0]))
    f = m.make_forward(net, "fp32", "cpu", compile="off", pad=True)
    x = np.random.default_rng(6).random((8, 5, 16, 16)).astype(np.float32)
    for n in (8, 7, 3, 5, 6, 2, 1, 8):
        assert f(x[:n]).shape == (n, 16, 16)
    # 7 of 8: padded; 3 and 5: their own; 6 of 8: padded; 2: its own (the fourth shape); 1: padded to 2
    assert seen == [8, 8, 3, 5, 8, 2, 2, 8]


def test_a_failing_compile_falls_back_to_eager_with_a_warning(monkeypatch):
    import warnings

    from lakepaper.predict.model import make_forward

    def broken(model, **options):
        def call(x):
            raise RuntimeError("InvalidCxxCompiler: no working C++ compiler found\nmore lines")

        return call

    monkeypatch.setattr(torch, "compile", broken)
    net = _tiny_unet()
    x = np.random.default_rng(4).random((2, 5, 32, 32)).astype(np.float32)
    f = make_forward(net, "fp32", "cpu", compile="default")
    assert f.compile == "default"
    with pytest.warns(RuntimeWarning, match=r"torch.compile \(mode 'default'\) failed.*InvalidCxxCompiler"):
        y = f(x)
    assert f.compile == "off"
    np.testing.assert_array_equal(y, make_forward(net, "fp32", "cpu", compile="off")(x))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        f(x)  # eager from then on: no second warning


@pytest.mark.slow
def test_compiled_model_call_on_the_cpu_serves_every_batch_with_one_graph():
    """torch.compile with inductor on the CPU (needs a C compiler; some 15 s): the same values as eager, and the
    padded last batch reuses the graph of the full one."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    from lakepaper.predict.model import make_forward

    torch._dynamo.reset()
    counters.clear()
    net = _net()
    x = np.random.default_rng(5).random((4, 5, 64, 64)).astype(np.float32)
    f, eager = make_forward(net, "fp32", "cpu", compile="default"), make_forward(net, "fp32", "cpu", compile="off")
    a, b = f(x), f(x[:3])
    assert f.compile == "default"  # it compiled (no fallback)
    np.testing.assert_allclose(a, eager(x), atol=1e-5)
    np.testing.assert_allclose(b, eager(x[:3]), atol=1e-5)
    assert counters["stats"]["unique_graphs"] == 1


# --- many tiles: the ledger, progress, where the workers run (issue: scale-out) ----------------------------------


def test_a_tile_list_resumes_from_the_ledger_without_hashing_inputs_or_opening_outputs(tmp_path, monkeypatch):
    import os

    for k in range(3):
        _tile(tmp_path / f"T0{k}.tif", seed=k)
    monkeypatch.setattr(cluster, "load_forward", lambda path, **kw: (_forward(_net()), BANDS, SIZE))
    tiles, out = sorted(tmp_path.glob("T0*.tif")), tmp_path / "out"
    kw = {"edge": EDGE, "scheduler": "sync", "progress": False}
    assert not cluster.predict_tiles(tiles, "x.pt", out, **kw).skipped.any()
    assert (out / cluster.LEDGER).is_file() and cluster.LEDGER.startswith(".")  # hidden: not a stage output
    assert set(io.hash_tree(out)) == {f"T0{k}_{s}.tif" for k in range(3) for s in ("prob", "mask")}

    def forbidden(*args, **kwargs):
        raise AssertionError("the client hashed an input or opened an output")

    with monkeypatch.context() as m:  # the ledger alone says all three are done
        m.setattr(cluster, "run_id", forbidden)
        m.setattr(cluster, "is_done", forbidden)
        m.setattr(cluster.io, "sha256_file", forbidden)
        assert cluster.predict_tiles(tiles, "x.pt", out, **kw).skipped.all()

    predicted = []
    real = cluster.predict_tile
    monkeypatch.setattr(cluster, "predict_tile", lambda *a, **k: predicted.append(a[1].path.stem) or real(*a, **k))
    stat = tiles[0].stat()
    os.utime(tiles[0], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # touched, same bytes: tags checked, kept
    (out / "T01_prob.tif").unlink()  # an output gone: predicted again
    summary = cluster.predict_tiles(tiles, "x.pt", out, **kw)
    assert summary.skipped.tolist() == [True, False, True] and predicted == ["T01"]
    (out / cluster.LEDGER).unlink()  # the ledger lost: every tile checked by its tags, none predicted again
    assert cluster.predict_tiles(tiles, "x.pt", out, **kw).skipped.all() and predicted == ["T01"]
    assert cluster.predict_tiles(tiles, "x.pt", out, **kw, threshold=0.6).skipped.tolist() == [False] * 3


@pytest.mark.bad_input
def test_a_damaged_ledger_is_named(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / cluster.LEDGER).write_bytes(b"not a database, " * 100)
    _tile(tmp_path / "T00.tif")
    with pytest.raises(InputError, match=r"\.predicted\.sqlite.*delete it"):
        cluster.predict_tiles([tmp_path / "T00.tif"], "x.pt", out, edge=EDGE, scheduler="sync", progress=False)


def test_progress_counts_tiles_and_km2_per_hour(tmp_path, monkeypatch, capsys):
    from rasterio.crs import CRS

    assert cluster.pixel_km2({"transform": Affine(10, 0, 0, 0, -10, 0), "crs": CRS.from_epsg(32633)}) == pytest.approx(
        1e-4
    )
    geo = {"transform": Affine(0.001, 0, 0, 0, -0.001, 60.5), "crs": CRS.from_epsg(4326), "height": 1000}
    assert cluster.pixel_km2(geo) == pytest.approx(0.11132**2 * 0.5, rel=1e-3)  # 60 degrees north
    for k in range(2):
        _tile(tmp_path / f"T0{k}.tif", seed=k)
    monkeypatch.setattr(cluster, "load_forward", lambda path, **kw: (_forward(_net()), BANDS, SIZE))
    tiles = sorted(tmp_path.glob("T0*.tif"))
    cluster.predict_tiles(tiles[:1], "x.pt", tmp_path / "out", edge=EDGE, scheduler="sync", progress=False)
    capsys.readouterr()
    cluster.predict_tiles(tiles, "x.pt", tmp_path / "out", edge=EDGE, scheduler="sync", progress=True)
    err = capsys.readouterr().err
    assert "2/2" in err and "tiles/h" in err and "km2/h" in err  # one done before counts from the start
    assert "1/2" in err.split("\r")[1]


def test_workers_fit_the_machine():
    plan = cluster.plan_workers
    assert plan("cpu", cores=16) == cluster.WorkerPlan("cpu", 16, 1)  # the old default: a worker per core
    assert plan("cpu", 4, cores=16) == cluster.WorkerPlan("cpu", 4, 4)
    assert plan("cpu", threads_per_worker=8, cores=16) == cluster.WorkerPlan("cpu", 2, 8)
    assert plan("cpu", 3, 2, cores=16) == cluster.WorkerPlan("cpu", 3, 2)  # both given: as given
    assert plan("auto", cores=16, gpus=()).device == "cpu"
    assert plan("auto", cores=16, gpus=("0", "1")) == cluster.WorkerPlan("cuda", 2, 8, ("0", "1"))
    assert plan("cuda", 1, cores=16, gpus=("GPU-a", "GPU-b")) == cluster.WorkerPlan("cuda", 1, 16, ("GPU-a",))
    with pytest.raises(ParameterError, match="n_workers.*one worker per GPU"):
        plan("cuda", 3, cores=16, gpus=("0", "1"))
    with pytest.raises(ParameterError, match="device.*no CUDA device"):
        plan("cuda", cores=16, gpus=())
    with pytest.raises(ParameterError, match="threads_per_worker"):
        plan("cpu", threads_per_worker=0)
    with pytest.raises(ParameterError, match="device"):
        plan("tpu")
    assert not cluster.visible_gpus() or torch.cuda.is_available()


def test_torch_threads_per_worker_are_set(tmp_path, monkeypatch):
    _tile(tmp_path / "T00.tif")
    monkeypatch.setattr(cluster, "load_forward", lambda path, **kw: (_forward(_net()), BANDS, SIZE))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        cluster.predict_tiles([tmp_path / "T00.tif"], "x.pt", tmp_path / "a", edge=EDGE, scheduler="sync",
                              progress=False)  # fmt: skip
        assert torch.get_num_threads() == 2  # not given: left as they are
        cluster.predict_tiles([tmp_path / "T00.tif"], "x.pt", tmp_path / "b", edge=EDGE, scheduler="sync",
                              threads_per_worker=1, progress=False)  # fmt: skip
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_gpu_workers_are_pinned_one_per_gpu_and_tasks_ask_for_one():
    """The local GPU cluster's layout, on the CPU: each worker sees one GPU and offers the resource; a CPU
    cluster offers none, and its tasks ask for none."""
    import os

    from dask.distributed import Client

    with (
        cluster.local_cluster(cluster.WorkerPlan("cuda", 2, 1, ("3", "GPU-x"))) as gpu,
        Client(gpu) as client,
    ):
        client.wait_for_workers(2)
        seen = client.run(lambda: os.environ.get("CUDA_VISIBLE_DEVICES"))
        assert sorted(seen.values()) == ["3", "GPU-x"]
        assert cluster.task_resources(client) == {"GPU": 1}
        fut = client.submit(os.getpid, resources=cluster.task_resources(client), pure=False)
        assert fut.result(timeout=60) in client.run(os.getpid).values()
    with cluster.local_cluster(cluster.WorkerPlan("cpu", 1, 1)) as cpu, Client(cpu) as client:
        assert cluster.task_resources(client) is None


def test_cli_predicts_a_folder_or_a_tile_list_resumably(tmp_path, capsys):
    from builders import tiny_checkpoint

    from lakepaper.cli import build_parser, main
    from lakepaper.predict.model import COMPILES

    predict = build_parser()._subparsers._group_actions[0].choices["predict"]  # its --compile: the model's modes
    assert next(a for a in predict._actions if a.dest == "compile").choices == COMPILES
    model = tiny_checkpoint(tmp_path / "m.pt")
    for k in range(2):
        _tile(tmp_path / "in" / f"T0{k}.tif", shape=(120, 110), seed=k)
    common = ["--model", str(model), "--edge", str(EDGE), "--scheduler", "sync", "--compile", "off"]
    assert main(["predict", str(tmp_path / "in"), "--out", str(tmp_path / "out"), *common]) == 0
    assert "2 tiles, 2 predicted" in capsys.readouterr().out
    assert {p.name for p in (tmp_path / "out").glob("*.tif")} == {
        f"T0{k}_{s}.tif" for k in (0, 1) for s in ("prob", "mask")
    }
    (tmp_path / "tiles.txt").write_text("# the grid\nin/T00.tif\n\nin/T01.tif\n")
    assert main(["predict", str(tmp_path / "tiles.txt"), "--out", str(tmp_path / "out"), *common]) == 0
    assert "2 tiles, 0 predicted (0.0 Mpixel), 2 already done" in capsys.readouterr().out
    (tmp_path / "tiles.csv").write_text("path,area\nin/T00.tif,1\nin/T09.tif,2\n")
    assert main(["predict", str(tmp_path / "tiles.csv"), "--out", str(tmp_path / "out"), *common]) == 2
    assert "tiles.csv: lists 1 file(s) that do not exist" in capsys.readouterr().err
    one = ["predict", str(tmp_path / "in" / "T00.tif"), "--out", str(tmp_path / "one.tif"), "--model", str(model)]
    assert main([*one, "--n-workers", "2"]) == 2
    assert "'n_workers': is for many tiles" in capsys.readouterr().err


def test_gpu_benchmark_runs_on_the_cpu_without_the_vector_stack_and_says_when_there_is_no_gpu(tmp_path):
    """``benchmarks/predict_gpu.py --device cpu --quick``: a tiny U-Net through every measurement, in a fresh
    interpreter that never imports geopandas or pyogrio; without ``--device cpu`` and without CUDA it stops with
    a message (exit 2)."""
    import json
    import subprocess
    import sys

    script = Path(__file__).parents[1] / "benchmarks" / "predict_gpu.py"
    out = tmp_path / "r.json"
    run = subprocess.run([sys.executable, str(script), "--device", "cpu", "--quick", "--json", str(out)],
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    r = json.loads(out.read_text())
    assert r["vector_modules"] == [] and r["environment"]["torch"] == torch.__version__
    assert r["strip_batch"] == len(windows.starts(512, 64, 8)) and r["raw"][0]["windows_per_s"] > 0
    assert r["end_to_end"]["windows"] == len(windows.starts(512, 64, 8)) ** 2 and r["end_to_end"]["share_of_raw"] > 0
    assert r["gpu_hours_global"]["end_to_end"] > 0 and set(r["met"]) == {"raw_share", "e2e_share", "gpu_hours"}
    assert "bf16 matmul" in run.stdout and "global land surface" in run.stdout
    fresh = subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(script.parent)!r}); "
                            "import predict_gpu, lakepaper.predict.tiled, lakepaper.predict.model, lakepaper.unet; "
                            "print(sorted(m for m in ('geopandas', 'pyogrio', 'fiona') if m in sys.modules))"],
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert fresh.stdout.strip() == "[]", fresh.stderr[-2000:]
    if not torch.cuda.is_available():
        gpu = subprocess.run([sys.executable, str(script), "--quick"], capture_output=True, text=True, timeout=120)
        assert gpu.returncode == 2 and "no CUDA device is visible" in gpu.stderr
