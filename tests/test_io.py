"""lakepaper.io: rasters round-trip with their georeferencing, writes are atomic, manifests record a stage."""

from __future__ import annotations

import hashlib
import json
import time

import numpy as np
import pytest
from rasterio.crs import CRS
from rasterio.transform import from_origin

from lakepaper import io
from lakepaper.errors import InputError

UTM33 = "EPSG:32633"
TRANSFORM = from_origin(399960.0, 5100000.0, 10.0, 10.0)


def _listing(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


# --- rasters ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "dtype", "nodata"),
    [
        ((5, 300, 260), "int16", -32768),  # tiled, multi-band, integer-scaled composite
        ((1, 100, 40), "float32", np.nan),  # small: blocks shrink to fit
        ((1, 12, 9), "uint8", 255),  # tiny: written untiled
    ],
)
def test_raster_round_trip(tmp_path, shape, dtype, nodata):
    rng = np.random.default_rng(0)
    data = (rng.random(shape) * 100).astype(dtype)
    names = [f"b{i}" for i in range(shape[0])]
    path = tmp_path / "out" / "composite.tif"

    written = io.write_raster(
        path, data, crs=UTM33, transform=TRANSFORM, nodata=nodata, band_names=names, tags={"SCALE": 1000, "TILE": "t1"}
    )

    assert written == path
    assert _listing(tmp_path / "out") == ["composite.tif"]  # no partial or sidecar files
    arr, meta = io.read_raster(path)
    assert arr.dtype == np.dtype(dtype)
    assert arr.shape == shape
    np.testing.assert_array_equal(arr, data)
    assert meta["crs"] == CRS.from_epsg(32633)
    assert meta["transform"] == TRANSFORM
    assert meta["band_names"] == names
    assert meta["tags"]["SCALE"] == "1000"
    assert meta["tags"]["TILE"] == "t1"
    assert meta["width"] == shape[2] and meta["height"] == shape[1] and meta["count"] == shape[0]
    if np.isnan(nodata):
        assert np.isnan(meta["nodata"])
    else:
        assert meta["nodata"] == nodata
    left, bottom, right, top = meta["bounds"]
    assert (left, top) == (399960.0, 5100000.0)
    assert right - left == pytest.approx(10.0 * shape[2])
    assert top - bottom == pytest.approx(10.0 * shape[1])


def test_write_raster_accepts_a_2d_array_and_a_crs_object(tmp_path):
    data = np.arange(64 * 48, dtype="uint16").reshape(64, 48)
    path = io.write_raster(tmp_path / "mask.tif", data, crs=CRS.from_epsg(32633), transform=TRANSFORM)
    arr, meta = io.read_raster(path)
    assert arr.shape == (1, 64, 48)
    np.testing.assert_array_equal(arr[0], data)
    assert meta["crs"].to_epsg() == 32633
    assert meta["band_names"] == [None]


def test_read_raster_selected_bands(tmp_path):
    data = np.stack([np.full((20, 20), i, dtype="int16") for i in range(1, 6)])
    path = io.write_raster(tmp_path / "c.tif", data, crs=UTM33, transform=TRANSFORM)
    arr, _ = io.read_raster(path, bands=[2, 5])
    assert arr.shape == (2, 20, 20)
    assert arr[0].max() == 2 and arr[1].min() == 5


def test_write_raster_replaces_an_existing_file(tmp_path):
    path = tmp_path / "r.tif"
    io.write_raster(path, np.zeros((20, 20), "uint8"), crs=UTM33, transform=TRANSFORM)
    io.write_raster(path, np.ones((20, 20), "uint8"), crs=UTM33, transform=TRANSFORM)
    assert io.read_raster(path)[0].min() == 1
    assert _listing(tmp_path) == ["r.tif"]


def test_read_raster_missing_file(tmp_path):
    with pytest.raises(InputError, match="not found") as err:
        io.read_raster(tmp_path / "absent.tif")
    assert err.value.path.endswith("absent.tif")


def _truncated(raw: bytes) -> bytes:
    return raw[: len(raw) // 2]


def _garbled_tiles(raw: bytes) -> bytes:
    out = bytearray(raw)
    out[200 : len(raw) // 2] = b"\xab" * (len(raw) // 2 - 200)  # header kept, compressed tiles destroyed
    return bytes(out)


@pytest.mark.parametrize(
    "damage",
    [_truncated, _garbled_tiles, lambda raw: raw[:8], lambda raw: b"", lambda raw: b"not a tiff at all" * 40],
    ids=["half", "garbled-tiles", "header-only", "empty", "garbage"],
)
def test_read_raster_corrupt_file_raises_input_error_naming_it(tmp_path, damage):
    rng = np.random.default_rng(1)
    good = io.write_raster(
        tmp_path / "good.tif", rng.integers(0, 10000, (3, 300, 300), dtype="int16"), crs=UTM33, transform=TRANSFORM
    )
    bad = tmp_path / "damaged_composite.tif"
    bad.write_bytes(damage(good.read_bytes()))
    with pytest.raises(InputError) as err:
        io.read_raster(bad)
    assert err.value.path == str(bad)
    assert "damaged_composite.tif" in str(err.value)


# --- atomic writes ------------------------------------------------------------------------


def test_atomic_path_renames_on_success(tmp_path):
    target = tmp_path / "sub" / "a.txt"
    with io.atomic_path(target) as tmp:
        assert tmp != target
        assert tmp.parent == target.parent
        tmp.write_text("done")
        assert not target.exists()  # nothing visible until the body finishes
    assert target.read_text() == "done"
    assert _listing(tmp_path / "sub") == ["a.txt"]


def test_atomic_path_leaves_no_file_when_the_body_raises(tmp_path):
    target = tmp_path / "a.txt"
    with pytest.raises(RuntimeError, match="interrupted"), io.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert not target.exists()
    assert _listing(tmp_path) == []


def test_atomic_path_keeps_the_old_file_when_the_body_raises(tmp_path):
    target = io.write_text(tmp_path / "a.txt", "old")
    with pytest.raises(RuntimeError), io.atomic_path(target) as tmp:
        tmp.write_text("new, half written")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert _listing(tmp_path) == ["a.txt"]


def test_write_raster_failing_midway_leaves_nothing(tmp_path):
    target = tmp_path / "r.tif"
    with pytest.raises(Exception):  # noqa: B017 - whatever rasterio raises for a band that does not exist
        io.write_raster(
            target, np.zeros((2, 20, 20), "uint8"), crs=UTM33, transform=TRANSFORM, band_names=["a", "b", "c"]
        )
    assert _listing(tmp_path) == []


def test_write_json_is_deterministic_and_handles_numpy(tmp_path):
    obj = {"b": np.float32(0.5), "a": (1, 2), "c": np.int64(3), "p": tmp_path / "x"}
    first = io.write_json(tmp_path / "one.json", obj).read_bytes()
    second = io.write_json(tmp_path / "two.json", dict(reversed(list(obj.items())))).read_bytes()
    assert first == second
    assert json.loads(first) == {"a": [1, 2], "b": 0.5, "c": 3, "p": str(tmp_path / "x")}


# --- hashes and manifests -----------------------------------------------------------------


def _stage_with_outputs(stage):
    (stage / "tiles").mkdir(parents=True)
    (stage / "tiles" / "t1.bin").write_bytes(b"\x00\x01" * 1000)
    (stage / "tiles" / "t2.bin").write_bytes(b"lake")
    (stage / "summary.csv").write_text("tile,n\nt1,3\n")
    return stage


def test_hash_tree_is_stable_and_excludes_the_manifest_and_hidden_files(tmp_path):
    stage = _stage_with_outputs(tmp_path / "stage")
    first = io.hash_tree(stage)
    (stage / "manifest.json").write_text("{}")
    (stage / "tiles" / ".t3.bin.123.partial").write_bytes(b"half")
    second = io.hash_tree(stage)
    assert first == second
    assert list(first) == ["summary.csv", "tiles/t1.bin", "tiles/t2.bin"]
    assert first["tiles/t2.bin"] == hashlib.sha256(b"lake").hexdigest()
    assert io.sha256_file(stage / "summary.csv") == hashlib.sha256(b"tile,n\nt1,3\n").hexdigest()


def test_hash_tree_sees_a_changed_file(tmp_path):
    stage = _stage_with_outputs(tmp_path / "stage")
    before = io.hash_tree(stage)
    (stage / "tiles" / "t2.bin").write_bytes(b"Lake")
    after = io.hash_tree(stage)
    assert after["tiles/t2.bin"] != before["tiles/t2.bin"]
    assert after["tiles/t1.bin"] == before["tiles/t1.bin"]


def test_write_and_read_manifest(tmp_path):
    stage = _stage_with_outputs(tmp_path / "00_world")
    (stage / "run.log").write_text("12:00:01 started\n")
    started = time.time()
    path = io.write_manifest(
        stage,
        stage="00_world",
        parameters={"profile": "tiny", "patch_size": 64, "unet_widths": (4, 8), "seed": np.int64(7)},
        inputs={"world.yml": "abc123"},
        started=started,
        extra={"notes": "test"},
    )
    assert path == stage / "manifest.json"
    manifest = io.read_manifest(stage)
    assert manifest == json.loads(path.read_text())
    assert manifest["stage"] == "00_world"
    assert manifest["parameters"] == {"profile": "tiny", "patch_size": 64, "unet_widths": [4, 8], "seed": 7}
    assert manifest["inputs"] == {"world.yml": "abc123"}
    assert {**manifest["outputs"], **manifest["volatile"]} == io.hash_tree(stage)
    assert set(manifest["outputs"]) == {"summary.csv", "tiles/t1.bin", "tiles/t2.bin"}
    assert set(manifest["volatile"]) == {"run.log"}  # logs and timings: hashed, but apart
    assert manifest["versions"]["python"]
    assert manifest["versions"]["numpy"] == np.__version__
    assert 0 <= manifest["wall_seconds"] < 60
    assert manifest["notes"] == "test"

    # Writing it again does not list the old manifest among the outputs.
    io.write_manifest(stage, stage="00_world", parameters={}, started=started)
    assert "manifest.json" not in io.read_manifest(stage)["outputs"]
    assert sorted(p.name for p in stage.iterdir()) == ["manifest.json", "run.log", "summary.csv", "tiles"]


def test_read_manifest_of_an_unfinished_stage(tmp_path):
    stage = _stage_with_outputs(tmp_path / "01_composite")
    with pytest.raises(InputError, match="not finished") as err:
        io.read_manifest(stage)
    assert err.value.path == str(stage / "manifest.json")
    with pytest.raises(InputError):
        io.read_manifest(tmp_path / "never_ran")


def test_begin_stage_removes_manifest_and_what_a_killed_run_left(tmp_path):
    (tmp_path / "sub" / ".partial" / "chips").mkdir(parents=True)
    (tmp_path / "sub" / ".partial" / "chips" / "R1.tif").write_bytes(b"x")
    (tmp_path / ".a.tif.123.partial").write_bytes(b"x")
    (tmp_path / ".b.456.partial.gpkg").write_bytes(b"x")
    (tmp_path / "kept.tif").write_bytes(b"x")
    (tmp_path / ".hidden_but_not_partial").write_bytes(b"x")
    (tmp_path / "manifest.json").write_text("{}")
    io.begin_stage(tmp_path)
    left = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    assert left == [".hidden_but_not_partial", "kept.tif", "sub"]


def test_hash_tree_skips_hidden_folders(tmp_path):
    (tmp_path / ".partial").mkdir()
    (tmp_path / ".partial" / "x.tif").write_bytes(b"x")
    (tmp_path / "y.tif").write_bytes(b"y")
    assert list(io.hash_tree(tmp_path)) == ["y.tif"]
