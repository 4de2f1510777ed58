"""``lakepaper predict`` on real Sentinel-2 files: scaling rules, value-range check, band names, edge, read errors.

Every file here is a small synthetic GeoTIFF written with rasterio; the model call is a per-pixel function of
B11 and NDWI, so a value off by the L2A offset (0.1) or unscaled changes the mask.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import rasterio
import rasterio.shutil
from builders import tiny_checkpoint
from rasterio.transform import Affine

from lakepaper import cli, io
from lakepaper.errors import InputError, ParameterError
from lakepaper.predict import windows
from lakepaper.predict.tiled import InputTile, band_name, predict_tile
from lakepaper.train.checkpoint import read_checkpoint

BANDS = ("B2", "B3", "B4", "B11", "NDWI")
SIZE, EDGE = 64, 8
SHAPE = (96, 80)
HOLE = (slice(10, 20), slice(30, 40))  # DN 0: Sentinel-2's no data


def _forward(x: np.ndarray) -> np.ndarray:
    """Lake where B11 is dark and NDWI high, pixel by pixel: a shift of 0.1 in either moves the boundary."""
    z = 40.0 * (0.15 - x[:, 3]) + 5.0 * x[:, 4]
    return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)


def _reflectance(seed: int = 0) -> np.ndarray:
    """(5, rows, cols) float: B2 B3 B4 B11 in 0..0.5, NDWI in -0.5..0.5."""
    rng = np.random.default_rng(seed)
    r = rng.random((5, *SHAPE)) * 0.5
    r[4] -= 0.25
    r[4] *= 2
    return r


def _dn(r: np.ndarray, shift: int = 0) -> np.ndarray:
    """int16 digital numbers: reflectance x 10000 (+ ``shift`` on the reflectance bands: baseline 04.00's +1000),
    NDWI x 10000; 0 (no data) in ``HOLE``."""
    dn = np.rint(r * 10000).astype(np.int16)
    dn[dn == 0] = 1  # 0 is no data in an L2A file: only the hole has it
    dn[:4] += shift
    dn[:, HOLE[0], HOLE[1]] = 0
    return dn


def _expected(dn: np.ndarray, offset: float) -> np.ndarray:
    """What the DNs mean, as float32: (DN + offset) / 10000 on the reflectance bands, DN / 10000 on NDWI;
    NaN in the hole."""
    v = dn.astype(np.float32)
    v[:4] += np.float32(offset)
    v /= np.float32(10000)
    v[:, HOLE[0], HOLE[1]] = np.nan
    return v


def _write(path, data, *, names=BANDS, tags=None, band_tags=None, scales=None, offsets=None, nodata=None, cog=False):
    """A GeoTIFF of ``data`` (bands, rows, cols): band descriptions, tags, GDAL scales/offsets as given;
    ``cog``: laid out as a Cloud-Optimised GeoTIFF (header first, data after, overviews unless ``cog == "flat"``)."""
    profile = dict(
        driver="GTiff",
        count=data.shape[0],
        height=data.shape[1],
        width=data.shape[2],
        dtype=data.dtype,
        crs="EPSG:32633",
        transform=Affine(10, 0, 500000, 0, -10, 4000000),
        nodata=nodata,
        tiled=True,
        blockxsize=16,
        blockysize=16,
        compress="deflate",
    )
    plain = path.with_name(path.name + ".plain.tif") if cog else path
    with rasterio.open(plain, "w", **profile) as dst:
        dst.write(data)
        for i, name in enumerate(names or (), start=1):
            dst.set_band_description(i, name)
        if tags:
            dst.update_tags(**tags)
        for i, t in (band_tags or {}).items():
            dst.update_tags(i, **t)
        if scales is not None:
            dst.scales = scales
        if offsets is not None:
            dst.offsets = offsets
    if cog:
        options = {"overviews": "none"} if cog == "flat" else {"overview_resampling": "nearest"}
        rasterio.shutil.copy(plain, path, driver="COG", blocksize=64, compress="deflate", **options)
        plain.unlink()
    return path


def _mask(tile: InputTile, out, pipeline: str = "sequential") -> np.ndarray:
    predict_tile(_forward, tile, out / "p.tif", out / "m.tif", size=SIZE, edge=EDGE, pipeline=pipeline)
    return io.read_raster(out / "m.tif")[0][0]


@pytest.fixture
def reference(tmp_path):
    """The float reflectance file and its mask: what every correctly scaled file must give."""
    r = _reflectance()
    path = _write(tmp_path / "float.tif", _expected(_dn(r, 1000), -1000.0))
    mask = _mask(InputTile.open(path, BANDS), tmp_path / "ref")
    assert 0.2 < (mask == 1).mean() < 0.8 and (mask[HOLE] == 255).all()  # both classes: a shift shows
    return r, mask


@pytest.mark.bad_input
@pytest.mark.parametrize("cog", [False, True])
def test_an_unscaled_int16_file_stops_with_the_fix(tmp_path, cog):
    path = _write(tmp_path / "dn.tif", _dn(_reflectance()), cog=cog)
    with pytest.raises(InputError, match=r"dn\.tif: band B2 reads .* not reflectance.*--scale 10000"):
        InputTile.open(path, BANDS)
    tile = InputTile.open(path, BANDS, scale=10000)
    assert tile.scale == (10000.0,) * 5 and tile.scaling == "--scale 10000"


@pytest.mark.bad_input
def test_the_cli_stops_an_unscaled_file_in_one_line_and_writes_nothing(tmp_path, capsys):
    ckpt = tiny_checkpoint(tmp_path / "best.pt")
    path = _write(tmp_path / "dn.tif", _dn(_reflectance()))
    out = tmp_path / "out"
    out.mkdir()
    assert cli.main(["predict", str(path), "--model", str(ckpt), "--out", str(out / "m.tif")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "dn.tif" in err[0] and "--scale 10000" in err[0], err
    assert not list(out.iterdir())


def test_gdal_scales_and_offsets_give_the_float_files_mask(tmp_path, reference):
    r, expected = reference
    dn = _dn(r, 1000)
    scales, offsets = (1e-4,) * 5, (-0.1, -0.1, -0.1, -0.1, 0.0)  # Earth Search's raster:bands, NDWI unshifted
    path = _write(tmp_path / "gdal.tif", dn, scales=scales, offsets=offsets, nodata=0)
    tile = InputTile.open(path, BANDS)
    assert tile.scaling.startswith("GDAL scales")
    assert np.array_equal(_mask(tile, tmp_path / "out"), expected)


L2A_TAGS = {
    "baseline": ({"PROCESSING_BASELINE": "04.00"}, None, 1000),
    "stac baseline": ({"s2:processing_baseline": "05.10"}, None, 1000),
    "earth engine per band": ({f"BOA_ADD_OFFSET_B{b}": "-1000" for b in (1, 2, 3, 4, 8, 11, 12)}, None, 1000),
    "zero-padded per band": ({"BOA_ADD_OFFSET_B02": "-1000", "BOA_ADD_OFFSET": "-1000"}, None, 1000),
    "band metadata": ({}, {i: {"BOA_ADD_OFFSET": "-1000"} for i in range(1, 5)}, 1000),
    "before 04.00": ({"PROCESSING_BASELINE": "03.01", "BOA_QUANTIFICATION_VALUE": "10000"}, None, 0),
    "already shifted back": ({"s2:processing_baseline": "04.00", "earthsearch:boa_offset_applied": "True"}, None, 0),
}


@pytest.mark.parametrize("case", L2A_TAGS)
def test_the_l2a_offset_is_undone_from_the_files_metadata(tmp_path, reference, case):
    r, expected = reference
    tags, band_tags, shift = L2A_TAGS[case]
    path = _write(tmp_path / "l2a.tif", _dn(r, shift), tags=tags, band_tags=band_tags)  # no nodata declared
    tile = InputTile.open(path, BANDS)
    assert tile.scaling.startswith("Sentinel-2 L2A") and tile.nodata == 0
    assert tile.offset == (-float(shift),) * 4 + (0.0,)  # never on the index band
    assert np.array_equal(_mask(tile, tmp_path / "out"), expected)


def test_explicit_scale_and_offset_win_over_the_metadata(tmp_path, reference):
    r, expected = reference
    dn = _dn(r, 1000)
    path = _write(tmp_path / "tagged.tif", dn, tags={"SCALE": "10000", "PROCESSING_BASELINE": "04.00"})
    with pytest.raises(
        InputError, match=r"tagged\.tif: has a SCALE tag .*\(BOA_ADD_OFFSET -1000\).*--scale 10000 --offset -1000"
    ):
        InputTile.open(path, BANDS)
    tile = InputTile.open(path, BANDS, scale=10000, offset=-1000)
    assert np.array_equal(_mask(tile, tmp_path / "out"), expected)
    with pytest.raises(ParameterError, match="offset.*--scale"):
        InputTile.open(path, BANDS, offset=-1000)


def test_stage_01_composites_keep_their_scale_tag(tmp_path):
    data = (np.random.default_rng(2).random((5, 40, 40)) * 1000).astype(np.int16)
    path = _write(tmp_path / "T00.tif", data, tags={"SCALE": "1000"}, nodata=-32768)
    tile = InputTile.open(path, BANDS)
    assert tile.scale == (1000.0,) * 5 and tile.offset == (0.0,) * 5 and tile.scaling == "SCALE tag 1000"


@pytest.mark.bad_input
def test_bands_that_contradict_the_descriptions_are_refused(tmp_path):
    dn = _dn(_reflectance())
    path = _write(tmp_path / "named.tif", dn, tags={"SCALE": "10000"})
    with pytest.raises(ParameterError, match=r"bands.*named\.tif.*band 1 is described as 'B2', not 'B4'"):
        InputTile.open(path, BANDS, file_bands=("B4", "B3", "B2", "B11", "NDWI"))
    same = InputTile.open(path, BANDS, file_bands=("B02", "green", "B4", "swir16", "ndwi"))  # the same bands
    assert same.indexes == [1, 2, 3, 4, 5]
    # descriptions as other tools write them name the bands too; descriptions that name no band can be renamed
    other = _write(tmp_path / "gdal.tif", dn, names=("blue", "B03", "B4, central wavelength 665 nm", "B11", "NDWI"))
    assert InputTile.open(other, BANDS, scale=10000).indexes == [1, 2, 3, 4, 5]
    generic = _write(tmp_path / "generic.tif", dn[::-1].copy(), names=[f"Band {i}" for i in range(1, 6)])
    tile = InputTile.open(generic, BANDS, scale=10000, file_bands=("NDWI", "B11", "B4", "B3", "B2"))
    assert tile.indexes == [5, 4, 3, 2, 1]
    assert [band_name(n) for n in ("B08", "b8a", "nir08", " B12 ")] == ["B8", "B8A", "B8A", "B12"]


@pytest.mark.bad_input
def test_the_cli_refuses_bands_that_contradict_the_descriptions(tmp_path, capsys):
    ckpt = tiny_checkpoint(tmp_path / "best.pt")
    path = _write(tmp_path / "named.tif", _dn(_reflectance()), tags={"SCALE": "10000"})
    argv = [
        "predict",
        str(path),
        "--model",
        str(ckpt),
        "--out",
        str(tmp_path / "m.tif"),
        "--bands",
        "B3,B2,B4,B11,NDWI",
    ]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'bands'" in err[0] and "named.tif" in err[0], err
    assert not (tmp_path / "m.tif").exists()


def test_the_edge_defaults_to_the_checkpoints_training_profile(tmp_path, capsys):
    ckpt = tiny_checkpoint(tmp_path / "best.pt")  # the tiny profile: 64 px patches, 8 px edges
    assert windows.training_edge(read_checkpoint(ckpt)) == 8
    assert windows.training_edge({"patch_size": 576, "params": {"unet_widths": [64, 128, 256, 512, 1024]}}) == 100
    assert windows.training_edge({"patch_size": 128, "params": {}}) == 24
    assert windows.training_edge({"patch_size": 128, "params": {"edge_px": 30}}) == 30
    with pytest.raises(ParameterError, match="edge.*96 px.*--edge"):
        windows.training_edge({"patch_size": 96, "params": {}})
    path = _write(tmp_path / "in.tif", _dn(_reflectance()), tags={"SCALE": "10000"})
    for extra, edge in (([], 8), (["--profile", "demo"], 24), (["--edge", "4"], 4)):
        out = tmp_path / f"m{edge}.tif"
        argv = ["predict", str(path), "--model", str(ckpt), "--out", str(out), "--precision", "fp32", *extra]
        assert cli.main(argv) == 0, capsys.readouterr().err
        assert io.read_raster(out)[1]["tags"]["EDGE"] == str(edge)


def _truncated_copy(src, dst, keep: float = 0.5) -> None:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * keep)])


@pytest.mark.bad_input
def test_a_truncated_geotiff_stops_at_open_naming_the_file_and_rows(tmp_path, capsys):
    whole = _write(tmp_path / "whole.tif", _dn(_reflectance()), tags={"SCALE": "10000"}, cog="flat")
    cut = tmp_path / "cut.tif"
    _truncated_copy(whole, cut)  # the header (first in a COG) is whole, the second half of the data is not
    with pytest.raises(InputError, match=r"cut\.tif: rows \d+-\d+ of 96 could not be read .* truncated or corrupt"):
        InputTile.open(cut, BANDS)
    ckpt = tiny_checkpoint(tmp_path / "best.pt")
    out = tmp_path / "out"
    out.mkdir()
    assert cli.main(["predict", str(cut), "--model", str(ckpt), "--out", str(out / "m.tif")]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and "cut.tif: rows" in err[0] and "Traceback" not in captured.err, err
    assert not list(out.iterdir())


@pytest.mark.bad_input
@pytest.mark.parametrize("pipeline", ["sequential", "overlapped"])
def test_a_geotiff_that_breaks_during_the_strip_loop_names_the_rows_and_leaves_nothing(tmp_path, pipeline):
    path = _write(tmp_path / "in.tif", _dn(_reflectance()), tags={"SCALE": "10000"}, cog="flat")
    tile = InputTile.open(path, BANDS)  # read and checked while whole
    _truncated_copy(path, path)
    out = tmp_path / "out"
    with pytest.raises(InputError, match=r"in\.tif: rows \d+-\d+ of 96 could not be read .* truncated or corrupt"):
        predict_tile(_forward, tile, out / "p.tif", out / "m.tif", size=SIZE, edge=EDGE, pipeline=pipeline)
    assert not list(out.iterdir())
    assert not [t for t in threading.enumerate() if t.name.startswith("lakepaper-")]
