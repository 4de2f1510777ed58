"""Stage 01, Earth Engine backend: the graph, offline, against the algorithm list and the parameters.

No server is reached: :mod:`ee_offline` initialises ``ee`` from the algorithm snapshot shipped in
the earthengine-api wheel, so a tile's composite graph is built and serialised locally and checked:

* every algorithm in it exists, with only declared argument names and every required one;
* the thresholds, collections and dates in it are those of ``params`` (overridden values found);
* it equals the stored graph ``tests/data/gee_graph_demo.json`` (demo profile, fixed tile);
* the local and Earth Engine backends read the same recipe parameters;
* bad input is refused with a ``ParameterError`` naming the parameter;
* export tasks, the download request and the tagging of a downloaded file (faked transport).

Regenerating the stored graph (after a deliberate change of the recipe or of the pinned
earthengine-api, and after reading the diff)::

    LAKEPAPER_REGEN_GEE=1 .venv/bin/python -m pytest tests/test_composite_gee.py -q

One test, marked ``gee``, runs a real ~2 x 2 km download when Earth Engine credentials exist
(project from ``EARTHENGINE_PROJECT`` or the credentials); without credentials it is skipped at once.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.transform import Affine

ee = pytest.importorskip("ee")

from ee_offline import algorithms, offline_ee  # noqa: E402

from lakepaper import io, params  # noqa: E402
from lakepaper.composite import COUNT_BAND, NODATA, gee, local, read_composite, sources  # noqa: E402
from lakepaper.errors import InputError, ParameterError  # noqa: E402

STORED_GRAPH = Path(__file__).parent / "data" / "gee_graph_demo.json"
PACKAGE = Path(local.__file__).parent
#: A fixed tile for the stored graph: 768 px of UTM 33N (any tile on the 10 m grid would do).
TILE = gee.Tile("T00", 32633, (400000.0, 5800000.0, 407680.0, 5807680.0))
#: ~2 x 2 km over Mueggelsee (Berlin), for the real export.
REAL_TILE = gee.Tile("MUEGGEL", 32633, (407000.0, 5809000.0, 409000.0, 5811000.0))


@pytest.fixture
def offline():
    with offline_ee() as calls:
        yield calls


def graph(tile: gee.Tile, p: dict[str, Any]) -> dict:
    """The serialised composite graph of a tile (Cloud API JSON)."""
    return json.loads(gee.composite_image(tile, p).serialize())


def invocations(node: Any) -> list[dict]:
    """Every ``functionInvocationValue`` in a serialised graph."""
    found = []
    if isinstance(node, dict):
        if "functionInvocationValue" in node:
            found.append(node["functionInvocationValue"])
        for value in node.values():
            found += invocations(value)
    elif isinstance(node, list):
        for value in node:
            found += invocations(value)
    return found


def constants(node: Any) -> list[Any]:
    """Every scalar inside a ``constantValue`` of a serialised graph (lists flattened)."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _flatten(value) if key == "constantValue" else constants(value)
    elif isinstance(node, list):
        for value in node:
            found += constants(value)
    return found


def _flatten(value: Any) -> list[Any]:
    if isinstance(value, list):
        return [x for v in value for x in _flatten(v)]
    if isinstance(value, dict):
        return [x for v in value.values() for x in _flatten(v)]
    return [value]


def args_of(g: dict, name: str) -> list[dict[str, Any]]:
    """The constant arguments of every invocation of ``name`` (references resolved one level)."""
    out = []
    for inv in invocations(g):
        if inv.get("functionName") == name:
            out.append({k: _constant(g, v) for k, v in inv.get("arguments", {}).items()})
    return out


def _constant(g: dict, node: dict) -> Any:
    if "valueReference" in node:
        node = g["values"][node["valueReference"]]
    return node.get("constantValue", node)


# --- 1. the graph is made of real algorithms -----------------------------------------------------


def test_graph_uses_only_declared_algorithms_and_arguments(offline):
    algs = algorithms()
    g = graph(TILE, params.resolve("demo"))
    used = invocations(g)
    assert len(used) > 40
    for inv in used:
        if "functionReference" in inv:  # a call of a mapped function defined in the graph itself
            continue
        name = inv["functionName"]
        assert name in algs, f"{name} is not an Earth Engine algorithm"
        declared = {a["argumentName"]: a for a in algs[name].get("arguments", [])}
        given = set(inv.get("arguments", {}))
        assert given <= set(declared), f"{name}: undeclared arguments {given - set(declared)}"
        required = {n for n, a in declared.items() if not a.get("optional")}
        assert required <= given, f"{name}: missing required arguments {required - given}"
    names = {inv.get("functionName") for inv in used}
    for needed in ("Join.saveFirst", "Filter.equals", "Image.directionalDistanceTransform", "Image.focalMax"):
        assert needed in names


# --- 2. the numbers in the graph are the parameters --------------------------------------------


def test_graph_thresholds_come_from_params(offline):
    p = params.resolve(
        "demo",
        cloud_prob_threshold=40.0,
        nir_dark_threshold=0.12,
        cloud_proj_dist_km=2.0,
        cloud_buffer_m=70.0,
        cloud_erode_m=30.0,
        cloud_morphology=("erode", "dilate"),
        scl_snow_class=10,
        max_scene_cloud_pct=55.0,
        start_date="2019-01-01",
        end_date="2019-12-31",
        s2_collection="COPERNICUS/S2_SR",
        cloud_collection="OTHER/CLOUD_PROBABILITY",
        composite_scale=500,
    )
    g = graph(TILE, p)
    values = constants(g)
    for want in (
        40.0,
        0.12 * 10000,
        70.0,
        30.0,
        55.0,
        500,
        "COPERNICUS/S2_SR",
        "OTHER/CLOUD_PROBABILITY",
        "2019-01-01",
    ):
        assert want in values, want
    for default in (50.0, 1500.0, 60.0, "COPERNICUS/S2_SR_HARMONIZED", "2017-03-28"):
        assert default not in values, default
    assert "2020-01-01" in values  # end_date inclusive: Earth Engine's exclusive end is the day after
    assert [a["maxDistance"] for a in args_of(g, "Image.directionalDistanceTransform")] == [20]  # 2 km at 100 m
    scales = sorted(a["scale"] for a in args_of(g, "Image.reproject"))
    assert scales == sorted([gee.PROJECTION_SCALE_M, gee.MORPHOLOGY_SCALE_M])  # the tutorial's 100 m and 20 m
    focal = args_of(g, "Image.focalMax")
    assert [(a["radius"], a["units"], a["kernelType"]) for a in focal] == [(70.0, "meters", "circle")]
    erode = args_of(g, "Image.focalMin")
    assert [(a["radius"], a["units"], a["kernelType"]) for a in erode] == [(30.0, "meters", "circle")]
    scene_filter = args_of(g, "Filter.lessThan")
    assert [(a["leftField"], a["rightValue"]) for a in scene_filter] == [("CLOUDY_PIXEL_PERCENTAGE", 55.0)]
    join = args_of(g, "Filter.equals")
    assert [(a["leftField"], a["rightField"]) for a in join] == [("system:index", "system:index")]
    assert 10 in values and 11 not in values  # the SCL snow class


def test_graph_numbers_default(offline):
    g = graph(TILE, params.resolve("demo"))
    values = constants(g)
    for want in (50.0, 1500.0, 50.0, 60.0, 11, 1000, "COPERNICUS/S2_SR_HARMONIZED", "COPERNICUS/S2_CLOUD_PROBABILITY"):
        assert want in values, want
    assert {"2017-03-28", "2022-04-11"} <= set(values)
    assert [a["maxDistance"] for a in args_of(g, "Image.directionalDistanceTransform")] == [10]  # 1 km at 100 m
    assert NODATA in values and 6 in values  # nodata fill; SCL water excluded from dark pixels


def test_graph_follows_the_tutorials_erosion_then_buffer(offline):
    """focalMin(2).focalMax(BUFFER*2/20) at 20 m (BUFFER = 50): 40 m, then 100 m; the order is a parameter."""
    p = params.resolve("demo", cloud_morphology=("erode", "dilate"))
    g = graph(TILE, p)
    assert [a["radius"] for a in args_of(g, "Image.focalMin")] == [40.0]
    assert [a["radius"] for a in args_of(g, "Image.focalMax")] == [100.0]
    # the erosion's output feeds the buffer: focalMax's image argument is the focalMin invocation
    (fmax,) = [inv for inv in invocations(g) if inv.get("functionName") == "Image.focalMax"]
    source = fmax["arguments"]["image"]
    source = g["values"][source["valueReference"]] if "valueReference" in source else source
    assert source["functionInvocationValue"]["functionName"] == "Image.focalMin"
    dilate_only = graph(TILE, params.resolve("demo", cloud_morphology=("dilate",)))
    assert args_of(dilate_only, "Image.focalMin") == [] and len(args_of(dilate_only, "Image.focalMax")) == 1
    with pytest.raises(ParameterError) as err:
        graph(TILE, params.resolve("demo", cloud_morphology=("erode", "open")))
    assert err.value.name == "cloud_morphology"


# --- 3. the graph is stable ----------------------------------------------------------------------


def test_graph_equals_stored(offline):
    text = json.dumps(graph(TILE, params.resolve("demo")), indent=1, sort_keys=True) + "\n"
    if os.environ.get("LAKEPAPER_REGEN_GEE") == "1":
        io.write_text(STORED_GRAPH, text)
    assert STORED_GRAPH.exists(), f"{STORED_GRAPH} missing: run with LAKEPAPER_REGEN_GEE=1"
    assert text == STORED_GRAPH.read_text(), (
        "the Earth Engine graph changed; if on purpose, regenerate with LAKEPAPER_REGEN_GEE=1 and review the diff"
    )
    assert text == json.dumps(graph(TILE, params.resolve("demo")), indent=1, sort_keys=True) + "\n"


# --- 4. both backends read the same parameters -------------------------------------------------


def _read_params(*files: Path) -> set[str]:
    pattern = re.compile(r"""\bp(?:\[|\.get\()\s*["']([a-z0-9_]+)["']""")
    return {m for f in files for m in pattern.findall(f.read_text())}


def test_backends_share_the_recipe_parameters():
    assert gee.RECIPE_PARAMS == local.RECIPE_PARAMS
    local_reads = _read_params(*(PACKAGE / f for f in ("local.py", "masks.py", "sources.py", "cloudless.py")))
    gee_reads = _read_params(PACKAGE / "gee.py")
    assert local_reads == set(local.RECIPE_PARAMS) | set(sources.LOCAL_PARAMS)
    assert gee_reads == set(gee.RECIPE_PARAMS) | set(gee.GEE_PARAMS)
    assert set(gee.GEE_PARAMS).isdisjoint(gee.RECIPE_PARAMS)
    assert set(gee.RECIPE_PARAMS) | set(gee.GEE_PARAMS) <= set(params.CONSTANTS)


# --- 5. bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "tile", "name"),
    [
        ({"start_date": "2020-01-02", "end_date": "2020-01-01"}, TILE, "end_date"),
        ({"start_date": "2020-13-01"}, TILE, "start_date"),
        ({"composite_bands": ("B2", "B8")}, TILE, "composite_bands"),
        ({"composite_bands": ("B2", "B2")}, TILE, "composite_bands"),
        ({}, gee.Tile("EMPTY", 32633, (400000.0, 5800000.0, 400000.0, 5807680.0)), "tile"),
        ({}, gee.Tile("BACK", 32633, (400000.0, 5800000.0, 399000.0, 5807680.0)), "tile"),
        ({}, gee.Tile("OFFGRID", 32633, (400000.0, 5800000.0, 400005.0, 5807680.0)), "tile"),
    ],
)
@pytest.mark.bad_input
def test_bad_input_names_the_parameter(offline, overrides, tile, name):
    with pytest.raises(ParameterError) as err:
        gee.composite_image(tile, params.resolve("demo", **overrides))
    assert err.value.name == name


@pytest.mark.bad_input
def test_bad_export_arguments(offline):
    p = params.resolve("demo")
    with pytest.raises(ParameterError, match="bucket"):
        gee.export_tiles([TILE], p, destination="gcs")
    with pytest.raises(ParameterError, match="destination"):
        gee.export_tiles([TILE], p, destination="ftp")
    with pytest.raises(ParameterError) as err:
        gee.make_tiles((0.0, 0.0, 0.0, 10.0), 32633, 100, p)
    assert err.value.name == "bounds"


# --- tiles, exports, downloads (offline) --------------------------------------------------------


def test_tile_grid_overlaps_by_the_inference_edge():
    p = params.resolve("demo")
    tiles = gee.make_tiles((5.0, 0.0, 2500.0, 1500.0), 32633, 100, p, prefix="X")
    assert len(tiles) == 6 and tiles[0].name == "X000_000"
    assert tiles[0].bounds == (0.0, 500.0, 1000.0, 1500.0)  # snapped outwards to the 10 m grid, top row first
    a, b = gee.export_bounds(tiles[0], p), gee.export_bounds(tiles[1], p)
    edge = p["edge_px"] * p["resolution_m"]
    assert a[2] - b[0] == pytest.approx(2 * edge)  # neighbours overlap by twice the discarded edge
    crs, transform, size = gee.export_grid(tiles[0], p)
    assert crs == "EPSG:32633" and transform == [10.0, 0.0, -edge, 0.0, -10.0, 1500.0 + edge]
    assert size == (100 + 2 * p["edge_px"],) * 2


def test_export_tasks_are_built_not_started(offline):
    p = params.resolve("demo")
    tasks = gee.export_tiles([TILE], p, destination="gcs", bucket="my-bucket")
    assert len(tasks) == 1 and tasks[0].state == ee.batch.Task.State.UNSUBMITTED
    options = tasks[0].config["fileExportOptions"]
    assert options["fileFormat"] == "GEO_TIFF" and options["geoTiffOptions"]["cloudOptimized"] is True
    assert options["cloudStorageDestination"]["bucket"] == "my-bucket"
    side = 768 + 2 * p["edge_px"]
    assert tasks[0].config["maxPixels"] == {"value": str(side * side)}
    rect = args_of(json.loads(tasks[0].config["expression"].serialize()), "GeometryConstructors.Rectangle")
    assert [0, 0, side, side] in [r["coordinates"] for r in rect]


def _fake_download(path: Path, bands: int, size: tuple[int, int]) -> None:
    """What Earth Engine's GEO_TIFF download gives: int16 bands, no tags, no nodata, no descriptions."""
    data = np.zeros((bands, size[1], size[0]), np.int16)
    data[0] = 123
    data[:-1, 0, 0] = NODATA
    data[-1] = 4
    data[-1, 0, 0] = 0
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        count=bands,
        width=size[0],
        height=size[1],
        dtype="int16",
        crs="EPSG:32633",
        transform=Affine(10, 0, 0, 0, -10, 0),
    ) as dst:
        dst.write(data)


def test_download_tile_is_tagged_for_read_composite(offline, tmp_path, monkeypatch):
    p = params.resolve("demo")
    tile = gee.Tile("SMALL", 32633, (400000.0, 5800000.0, 401000.0, 5801000.0))
    crs, transform, size = gee.export_grid(tile, p)
    monkeypatch.setattr(gee, "_fetch", lambda url, dest: _fake_download(dest, len(p["composite_bands"]) + 1, size))
    out = gee.download_tile(tile, tmp_path / "SMALL.tif", p)
    request = offline[-1]
    assert request["format"] == "GEO_TIFF" and request["crs"] == crs
    assert request["crs_transform"] == transform and request["dimensions"] == list(size)
    data, count, meta = read_composite(out)
    assert meta["band_names"] == list(p["composite_bands"]) and meta["tags"]["TILE"] == "SMALL"
    assert meta["tags"]["COUNT_BAND"] == COUNT_BAND and meta["nodata"] == NODATA
    assert data[0, 1, 1] == pytest.approx(123 / p["composite_scale"]) and np.isnan(data[:, 0, 0]).all()
    assert count[0, 0] == 0 and count[1, 1] == 4
    assert [f.name for f in tmp_path.iterdir()] == ["SMALL.tif"]  # no partial file left


@pytest.mark.bad_input
def test_tag_tile_checks_the_bands(tmp_path):
    p = params.resolve("demo")
    path = tmp_path / "exported.tif"
    _fake_download(path, 3, (20, 20))
    with pytest.raises(InputError, match="expected 6 int16"):
        gee.tag_tile(path, TILE, p)
    _fake_download(path, 6, (20, 20))
    gee.tag_tile(path, TILE, p)
    assert read_composite(path)[2]["tags"]["SCALE"] == str(p["composite_scale"])


@pytest.mark.bad_input
def test_initialize_without_credentials_is_clear(monkeypatch):
    monkeypatch.setattr(gee, "credentials_available", lambda: False)
    with pytest.raises(InputError, match="no Earth Engine credentials"):
        gee.initialize()


# --- 6. a real export, only with credentials -------------------------------------------------------


@pytest.mark.gee
def test_real_download_reads_back(tmp_path):
    if not gee.credentials_available():
        pytest.skip("no Earth Engine credentials: skipped real export")
    try:
        gee.initialize(project=os.environ.get("EARTHENGINE_PROJECT"))
    except InputError as exc:
        pytest.skip(f"no Earth Engine credentials: skipped real export ({exc})")
    p = params.resolve("tiny", start_date="2021-06-01", end_date="2021-08-31")
    out = gee.download_tile(REAL_TILE, tmp_path / "real.tif", p)
    data, count, meta = read_composite(out)
    side = 200 + 2 * p["edge_px"]
    assert data.shape == (len(p["composite_bands"]), side, side)
    assert meta["band_names"] == list(p["composite_bands"]) and meta["crs"] == "EPSG:32633"
    seen = count > 0
    assert seen.mean() > 0.5
    assert np.isfinite(data[:, seen]).all() and np.isnan(data[:, ~seen]).all()
    ndwi = data[list(p["composite_bands"]).index("NDWI")]
    assert (np.abs(ndwi[seen]) <= 1).all() and (ndwi[seen] > 0).any()  # part of the lake is water


# --- 7. the shared cloud morphology (masks.py for the local backends, the graph above for Earth Engine) ---


def test_morphology_erodes_specks_then_buffers_in_metres():
    from lakepaper.composite.masks import cloud_morphology, morphology_steps

    tutorial = params.resolve("demo", cloud_morphology=("erode", "dilate"))
    assert morphology_steps(tutorial) == [("erode", 40.0), ("dilate", 100.0)]
    assert morphology_steps(params.resolve("demo")) == [("dilate", 100.0)]  # the default (params: own choice)
    mask = np.zeros((120, 120), bool)
    mask[10:13, 10:13] = True  # a 30 m speck: gone after a 40 m erosion
    mask[60:80, 60:80] = True  # a 200 m cloud: kept, then buffered
    out = cloud_morphology(mask, tutorial, 10.0)
    assert not out[:40, :40].any()
    rows = np.nonzero(out[:, 70])[0]
    # eroded by 4 px (64..75), then dilated by 10 px: 54..85, i.e. 60 m beyond the cloud's edge
    assert (rows.min(), rows.max()) == (54, 85)
    dilated = cloud_morphology(mask, params.resolve("demo"), 10.0)
    assert dilated[10:13, 10:13].all() and np.nonzero(dilated[:, 70])[0].min() == 50  # 100 m beyond
    assert dilated[0:23, 0:23].any() and not dilated[24:, 0:5].any()


@pytest.mark.parametrize("order", [("dilate",), ("erode", "dilate")])
def test_block_halo_covers_the_mask_reach(order):
    """A block read with ``halo_rows`` rows of context gets the whole scene's mask on its own rows."""
    from lakepaper.composite.masks import scene_mask

    p = params.resolve("tiny", cloud_morphology=order, cloud_proj_dist_km=0.3)
    halo = local.halo_rows(p)
    assert halo == (48 if "erode" in order else 40)  # 30 + (4 +) 10 px, up to a multiple of 8
    rng = np.random.default_rng(18)
    n = 256
    l2a = rng.integers(200, 3000, (4, n, n)).astype(np.uint16)
    b11 = rng.integers(200, 3000, (n, n)).astype(np.uint16)
    scl = np.full((n // 2, n // 2), 4, np.uint16)
    prob = np.zeros((n, n), np.uint8)
    for r, c, s in rng.integers(0, n, (12, 3)):
        prob[r : r + s % 12 + 1, c : c + s % 20 + 1] = 90  # clouds of all sizes, specks included
    whole = scene_mask(l2a, b11, scl, prob, azimuth_deg=0.0, p=p).clear
    r0, r1 = 96, 160
    h0, h1 = r0 - halo, r1 + halo
    block = scene_mask(l2a[:, h0:h1], b11[h0:h1], scl[h0 // 2 : h1 // 2], prob[h0:h1], azimuth_deg=0.0, p=p).clear
    np.testing.assert_array_equal(block[r0 - h0 : r1 - h0], whole[r0:r1])
    if order == ("dilate",):  # a halo one row short of the reach (30 + 10 px) is not enough
        prob[:] = 0
        prob[r0 - 40, 100:120] = 90  # its shadow (dark NIR everywhere) reaches r0 - 10, the buffer r0
        l2a[3] = 500
        whole = scene_mask(l2a, b11, scl, prob, azimuth_deg=0.0, p=p).clear
        h0 = r0 - 38  # even: the 20 m SCL stays aligned
        cut = scene_mask(l2a[:, h0:r1], b11[h0:r1], scl[h0 // 2 : r1 // 2], prob[h0:r1], azimuth_deg=0.0, p=p).clear
        assert not whole[r0, 110] and cut[r0 - h0, 110]
