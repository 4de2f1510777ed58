"""notebooks/explore.ipynb and lakepaper.explore (issue 22): a build on a geemap map, with an inspector.

Every test reads a small build written here (:func:`make_map_build`: two 128-px tiles of the ``tiny``
profile's layout, with composites, the U-Net's probability and mask, a product whose lakes each carry a known
story, GLAKES, PLD, the truth and stage 05's river cases), so the answers are known and nothing depends on
build/. The notebook test starts JupyterLab as ``make lab`` does (as tests/test_lab.py), runs explore.ipynb
top to bottom through a ``lakepaper`` kernel on that build, and checks the map's layers and inspector.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from io import BytesIO
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from builders import jupyterlab_command, kernel_client
from PIL import Image
from pyproj import Transformer
from rasterio.transform import from_origin

from lakepaper import explore, io, paths
from lakepaper.errors import InputError, ParameterError

CRS = "EPSG:32633"
PX, RES = 128, 10.0
ORIGINS = {"T01": (500_000.0, 5_000_000.0), "T02": (510_000.0, 5_000_000.0)}
#: The product's lakes: id -> (tile, centre x, y (UTM), radius m, source, sources, reservoir, river_case).
LAKES = {
    1: ("T01", 500_300.0, 4_999_700.0, 100.0, "prediction", "prediction", False, "a"),
    2: ("T01", 500_900.0, 4_999_300.0, 150.0, "glakes", "glakes", False, ""),
    3: ("T01", 500_900.0, 4_999_800.0, 80.0, "prediction", "prediction+glakes", True, ""),
    4: ("T02", 510_500.0, 4_999_500.0, 120.0, "pld", "pld", False, ""),
}
TO_LONLAT = Transformer.from_crs(CRS, 4326, always_xy=True)


def _disc(x: float, y: float, r: float):
    return shapely.Point(x, y).buffer(r, 32)


def _lonlat(geoms) -> gpd.GeoSeries:
    return gpd.GeoSeries(geoms, crs=CRS).to_crs(4326)


def lake_point(lake: int) -> tuple[float, float]:
    """(lat, lon) of a lake's centre."""
    _, x, y, *_ = LAKES[lake]
    lon, lat = TO_LONLAT.transform(x, y)
    return lat, lon


def make_map_build(root: Path, profile: str = "tiny") -> Path:
    """A build with what the map reads, under ``root/<profile>``; returns that folder."""
    b = root / profile
    t0 = time.time()
    for tile, (x0, y0) in ORIGINS.items():
        transform = from_origin(x0, y0, RES, RES)
        cols, rows = np.meshgrid(np.arange(PX), np.arange(PX))
        xs, ys = x0 + (cols + 0.5) * RES, y0 - (rows + 0.5) * RES
        water = np.zeros((PX, PX), bool)
        for t, x, y, r, source, *_ in LAKES.values():
            if t == tile and source != "glakes":  # the GLAKES-only lake is dry in the image (seasonal)
                water |= (xs - x) ** 2 + (ys - y) ** 2 <= r**2
        nodata = (rows < 10) & (cols < 10)
        bands = np.stack(
            [
                np.where(water, 30, 60 + cols % 7),  # B2
                np.where(water, 40, 80 + rows % 5),  # B3
                np.where(water, 20, 70),  # B4
                np.where(water, 5, 150),  # B11
                np.where(water, 500, -300),  # NDWI x 1000
            ]
        ).astype(np.int16)
        bands[:, nodata] = -32768
        count = np.where(nodata, 0, 4).astype(np.int16)
        io.write_raster(
            b / "01_composite" / "tiles" / f"{tile}.tif",
            np.concatenate([bands, count[None]]),
            crs=CRS,
            transform=transform,
            nodata=-32768,
            band_names=["B2", "B3", "B4", "B11", "NDWI", "clear_count"],
            tags={"SCALE": 1000, "BANDS": "B2,B3,B4,B11,NDWI", "COUNT_BAND": "clear_count", "TILE": tile},
        )
        prob = np.where(nodata, 255, np.where(water, 225, 25)).astype(np.uint8)
        kw = dict(crs=CRS, transform=transform, nodata=255)
        io.write_raster(b / "04_predict" / "tiles" / f"{tile}_prob.tif", prob, band_names=["lake_probability"], **kw)
        mask = np.where(nodata, 255, water).astype(np.uint8)
        io.write_raster(b / "04_predict" / "tiles" / f"{tile}_mask.tif", mask, band_names=["lake"], **kw)

    geoms = [_disc(x, y, r) for _, x, y, r, *_ in LAKES.values()]
    product = gpd.GeoDataFrame(
        {
            "id": list(LAKES),
            "area_km2": [g.area / 1e6 for g in geoms],
            "perimeter_km": [g.length / 1e3 for g in geoms],
            "source": [v[4] for v in LAKES.values()],
            "sources": [v[5] for v in LAKES.values()],
            "reservoir": [v[6] for v in LAKES.values()],
            "river_case": [v[7] for v in LAKES.values()],
            "tile": [v[0] for v in LAKES.values()],
        },
        geometry=_lonlat(geoms),
        crs=4326,
    )
    (b / "05_postprocess").mkdir(parents=True)
    product.to_parquet(b / "05_postprocess" / "lakes.parquet")
    river = shapely.union(_disc(500_300, 4_999_700, 100), shapely.box(500_380, 4_999_690, 500_420, 4_999_710))
    cases = gpd.GeoDataFrame(
        {"case": ["a"], "area_ratio": [0.9], "glakes": [True], "reservoir": [False], "tile": ["T01"]},
        geometry=_lonlat([river]),
        crs=4326,
    )
    io.write_vector(cases, b / "05_postprocess" / "river_cases.gpkg", "Polygon")

    refs = b / "00_world" / "references"
    refs.mkdir(parents=True)
    glakes = gpd.GeoDataFrame(
        {"Lake_id": [7, 8, 9], "Lake_type": [1, 2, 1], "Lake_area": [0.07, 0.03, 0.03]},
        geometry=_lonlat([geoms[1], _disc(500_920, 4_999_800, 90), _disc(500_290, 4_999_690, 95)]),
        crs=4326,
    )
    glakes.to_file(refs / "glakes.shp")
    pld = gpd.GeoDataFrame({"lake_id": [21], "ref_area": [0.045]}, geometry=_lonlat([geoms[3]]), crs=4326)
    pld.to_file(refs / "pld.shp")
    truth = gpd.GeoDataFrame(
        {
            "lake_id": [100001, 100002],
            "tile": ["T01", "T02"],
            "biome": ["river", "arid"],
            "type": ["natural", "salt"],
            "area_km2": [0.0301, 0.04],
            "area_max_km2": [0.035, 0.05],
        },
        geometry=_lonlat([_disc(500_300, 4_999_700, 98), _disc(510_500, 4_999_500, 110)]),
        crs=4326,
    )
    (b / "00_world" / "truth").mkdir(parents=True)
    truth.to_parquet(b / "00_world" / "truth" / "lakes.parquet")

    refs_record = {n: {"path": str(refs / f"{n}.shp"), "origin": "simulated"} for n in ("glakes", "pld")}
    for stage, parameters in (
        ("00_world", {"profile": profile}),
        ("01_composite", {"profile": profile}),
        ("04_predict", {"profile": profile}),
        (
            "05_postprocess",
            {
                "profile": profile,
                "area_ratio_threshold": 0.8,
                "min_lake_area_km2": 0.005,
                "aridity_threshold": 0.2,
                "glakes_completion_min_km2": 1.0,
                "references": refs_record,
            },
        ),
    ):
        io.write_manifest(b / stage, stage=stage, parameters=parameters, started=t0)
    return b


@pytest.fixture(scope="module")
def build_root(tmp_path_factory) -> Path:
    """The folder that holds the ``tiny`` build (what LAKEPAPER_BUILD points at)."""
    root = tmp_path_factory.mktemp("build")
    make_map_build(root)
    return root


@pytest.fixture(scope="module")
def build(build_root) -> explore.Build:
    return explore.Build("tiny", build_root / "tiny")


# --- the data half ------------------------------------------------------------------------------------


def _image(ov: explore.Overlay) -> np.ndarray:
    return np.asarray(Image.open(BytesIO(ov.image)).convert("RGBA"))


def _pixel_lonlat(ov: explore.Overlay, row: float, col: float) -> tuple[float, float]:
    """The lon/lat of an image position: linear in Web Mercator between the overlay's bounds."""
    (s, w), (n, e) = ov.bounds
    merc = Transformer.from_crs(4326, 3857, always_xy=True)
    (x0, y0), (x1, y1) = merc.transform(w, n), merc.transform(e, s)
    width, height = ov.size
    x, y = x0 + (col + 0.5) / width * (x1 - x0), y0 + (row + 0.5) / height * (y1 - y0)
    return Transformer.from_crs(3857, 4326, always_xy=True).transform(x, y)


def test_layers_are_warped_to_web_mercator_where_their_pixels_lie(build):
    ndwi = explore.render(build.raster("ndwi", "T02"), "ndwi")
    img = _image(ndwi)
    bright = np.argwhere((img[..., 0] > 200) & (img[..., 3] == 255))
    assert len(bright) > 100  # lake 4 is the only water of T02
    lon, lat = _pixel_lonlat(ndwi, *bright.mean(axis=0))
    want_lat, want_lon = lake_point(4)
    # within a pixel (10 m) of the lake's centre
    x, y = Transformer.from_crs(4326, CRS, always_xy=True).transform(lon, lat)
    assert np.hypot(x - LAKES[4][1], y - LAKES[4][2]) < RES
    # the no-data corner (top left, 10 x 10 px) is transparent; a tile's image is ~ 128 px a side
    assert img[2, 2, 3] == 0 and 120 < ndwi.size[0] < 140
    # the bounds hold the tile's footprint (to within a pixel, 1e-4 degrees: the warped grid's edge)
    (s, w), (n, e) = ndwi.bounds
    tw, ts, te, tn = build.tile_bounds("T02")
    assert w <= tw + 1e-4 and s <= ts + 1e-4 and e >= te - 1e-4 and n >= tn - 1e-4
    assert abs((e - w) - (te - tw)) < 2e-4 and abs((n - s) - (tn - ts)) < 2e-4


def test_a_window_of_a_tile_is_drawn_at_full_resolution_and_a_whole_tile_decimated(build):
    lat, lon = lake_point(4)
    box = (lon - 0.003, lat - 0.002, lon + 0.003, lat + 0.002)  # ~470 x 440 m around lake 4
    ov = explore.render(build.raster("ndwi", "T02"), "ndwi", box=box)
    (s, w), (n, e) = ov.bounds
    assert w <= box[0] + 2e-4 and e >= box[2] - 2e-4 and s <= box[1] + 2e-4 and n >= box[3] - 2e-4
    assert 40 < ov.size[0] < 60  # 10 m pixels
    img = _image(ov)
    bright = np.argwhere((img[..., 0] > 200) & (img[..., 3] == 255))
    x, y = Transformer.from_crs(4326, CRS, always_xy=True).transform(*_pixel_lonlat(ov, *bright.mean(axis=0)))
    assert np.hypot(x - LAKES[4][1], y - LAKES[4][2]) < RES
    small = explore.render(build.raster("ndwi", "T02"), "ndwi", max_px=32)
    assert max(small.size) <= 32
    with pytest.raises(ParameterError, match="box"):
        explore.render(build.raster("ndwi", "T02"), "ndwi", box=(0.0, 0.0, 0.1, 0.1))


def test_every_kind_of_layer_renders(build):
    for kind in ("rgb", "ndwi", "prob", "mask"):
        ov = explore.render(build.raster(kind, "T01"), kind, max_px=64)
        img = _image(ov)
        assert max(ov.size) <= 64 and ov.data_url().startswith("data:image/png;base64,")
        assert img[..., 3].any(), kind
    mask = _image(explore.render(build.raster("mask", "T01"), "mask"))
    lakes = (mask[..., 2] == 255) & (mask[..., 3] == 255)
    nodata = (mask[..., 3] > 0) & (mask[..., 3] < 255)
    assert lakes.sum() > 50 and nodata.sum() > 50  # lakes drawn, no data grey, the rest transparent
    jpeg = explore.render(build.raster("rgb", "T01"), "rgb", fmt="jpeg")
    assert jpeg.mime == "image/jpeg" and jpeg.image[:2] == b"\xff\xd8"


def test_a_lakes_record_says_which_rules_touched_it_and_its_truth(build):
    rec = explore.lake_records(build).set_index("id")
    one = rec.loc[1]
    assert one.rules[0].startswith("prediction: found by the U-Net")
    assert any("case a" in r and "0.90" in r and "kept whole" in r for r in one.rules), one.rules
    assert one.glakes_id == 9 and pd.isna(one.pld_id)
    assert one.truth.startswith("truth lake 100001 (natural, river)") and "covers" in one.truth
    three = rec.loc[3]
    assert any("reservoir" in r and "spared" in r for r in three.rules)
    assert any("united with the GLAKES" in r for r in three.rules)
    assert rec.loc[2].rules[0].startswith("completion: added from GLAKES") and rec.loc[2].glakes_id == 7
    assert rec.loc[2].truth.startswith("no truth lake here")
    assert rec.loc[4].rules == ["completion: added from the PLD (a lake in an arid zone, aridity index < 0.2)"]
    html = explore.inspector_html(rec.reset_index().iloc[0])
    assert "#1 (tile T01)" in html and "0.03 km²" in html and "case a" in html


def test_bad_inputs_name_the_file_or_parameter(tmp_path, build):
    with pytest.raises(InputError, match="01_composite"):
        explore.Build("tiny", tmp_path / "nothing")
    with pytest.raises(ParameterError, match="kind"):
        explore.render(build.raster("rgb", "T01"), "false colour")
    with pytest.raises(ParameterError, match="tile"):
        build.raster("rgb", "T99")
    with pytest.raises(InputError, match="no such raster"):
        explore.warp(tmp_path / "missing.tif", [1])


# --- the map --------------------------------------------------------------------------------------------

LAYER_NAMES = [
    "composite: true colour (stage 01)",
    "composite: NDWI (stage 01)",
    "U-Net lake probability (stage 04)",
    "U-Net raw mask (stage 04)",
    "river rule: polygons the mask cut (before it)",
    "GLAKES",
    "PLD",
    "truth (simulated world)",
    "lakes: this product (stage 05)",
]


def test_the_map_has_every_layer_a_split_view_and_an_inspector(build_root):
    pytest.importorskip("geemap")
    import ipyleaflet

    ex = explore.explore("tiny", root=build_root / "tiny", basemap=False)
    assert ex.tile == "T01"  # the tile with most lakes
    assert [layer.name for layer in ex.map.layers] == LAYER_NAMES
    controls = {type(c).__name__: c for c in ex.map.controls}
    assert "LayersControl" in controls
    split = controls["SplitMapControl"]
    assert split.left_layer is ex.layers["rgb"] and split.right_layer is ex.layers["prob"]
    assert isinstance(ex.layers["rgb"], ipyleaflet.ImageOverlay) and ex.layers["rgb"].url.startswith("data:image/png")
    product = ex.layers["product"]
    assert sorted(f["properties"]["id"] for f in product.data["features"]) == [1, 2, 3]  # T01's lakes only
    # a click on lake 1, as the front end sends it
    feature = next(f for f in product.data["features"] if f["properties"]["id"] == 1)
    product._handle_mouse_events(None, {"event": "click", "feature": feature, "properties": feature["properties"]}, [])
    assert "#1 (tile T01)" in ex.inspector.value and "case a" in ex.inspector.value
    assert "truth lake 100001" in ex.inspector.value
    glakes = ex.layers["glakes"]
    g = glakes.data["features"][0]
    glakes._handle_mouse_events(None, {"event": "click", "feature": g, "properties": g["properties"]}, [])
    assert "<b>GLAKES</b>" in ex.inspector.value and "<th>Lake_id</th><td>7</td>" in ex.inspector.value
    with pytest.raises(ParameterError, match="lake_id"):
        ex.show(4)  # on T02
    # zoomed in (the bounds the browser reports), the rasters are redrawn for the view
    with pytest.raises(ParameterError, match="map.bounds"):
        ex.refine()
    lat, lon = lake_point(1)
    ex.map.set_trait("bounds", ((lat - 0.002, lon - 0.003), (lat + 0.002, lon + 0.003)))
    before = ex.layers["prob"].url
    assert ex.refine() == (lon - 0.003, lat - 0.002, lon + 0.003, lat + 0.002)
    (s, w), (n, e) = ex.layers["prob"].bounds
    assert abs(s - (lat - 0.002)) < 2e-4 and abs(e - (lon + 0.003)) < 2e-4 and ex.layers["prob"].url != before


def test_earth_engine_layer_without_credentials_says_so(build_root, tmp_path, monkeypatch):
    pytest.importorskip("geemap")
    pytest.importorskip("ee")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    assert not explore.earth_engine_ready()
    ex = explore.explore("tiny", root=build_root / "tiny", basemap=False, split=False)
    with pytest.raises(InputError, match="earthengine authenticate"):
        explore.add_gee_composite(ex)


def test_the_earth_engine_layer_is_stage_01s_recipe_on_a_utm_tile_around_the_view(build_root, monkeypatch):
    pytest.importorskip("geemap")
    from ee_offline import offline_ee

    from lakepaper import params
    from lakepaper.composite import gee

    p = params.resolve("tiny")
    tile = explore.view_tile(45.1, 15.2, p, size_px=100)
    assert tile.epsg == 32633 and tile.bounds[2] - tile.bounds[0] == tile.bounds[3] - tile.bounds[1] == 1000
    x, y = Transformer.from_crs(4326, 32633, always_xy=True).transform(15.2, 45.1)
    assert tile.bounds[0] < x < tile.bounds[2] and tile.bounds[1] < y < tile.bounds[3]
    assert explore.view_tile(-33.9, 18.4, p).epsg == 32734  # south of the equator
    with pytest.raises(ParameterError, match="center"):
        explore.view_tile(85, 0, p)

    class FakeMap:  # what add_gee_composite uses of geemap's Map
        center = [45.1, 15.2]
        added: list = []

        def addLayer(self, image, vis, name):  # noqa: N802 (geemap's name)
            self.added.append((image, vis, name))

    ex = explore.Explorer(FakeMap(), explore.Build("tiny", build_root / "tiny"), "T01", {}, None, None)
    monkeypatch.setattr(gee, "initialize", lambda project=None: None)
    with offline_ee():
        image = explore.add_gee_composite(ex, size_px=100)
        graph = image.serialize()
    ((added, vis, name),) = FakeMap.added
    assert added is image and vis["bands"] == ["B4", "B3", "B2"] and "45.100, 15.200" in name
    assert p["s2_collection"] in graph and "EPSG:32633" in graph


# --- the notebook in JupyterLab -------------------------------------------------------------------------

NOTEBOOK = paths.NOTEBOOKS / "explore.ipynb"
CHECK = """
import json
print("CHECK " + json.dumps({
    "tile": ex.tile,
    "map": type(ex.map).__module__ + "." + type(ex.map).__name__,
    "layers": [layer.name for layer in ex.map.layers],
    "controls": sorted({type(c).__name__ for c in ex.map.controls}),
    "lakes": sorted(f["properties"]["id"] for f in ex.layers["product"].data["features"]),
    "inspector": ex.show(3),
}))
"""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _call(base: str, token: str, path: str, method: str = "GET", body: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        raw = resp.read()
        return json.loads(raw) if raw else None


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def test_explore_notebook_runs_in_jupyterlab_and_makes_the_map(build_root, tmp_path):
    """JupyterLab as ``make lab`` starts it (the repository as root, the lakepaper kernel), the notebook's
    cells run top to bottom in a kernel it started (parameters as papermill injects them: profile tiny), no
    network; then the map widget is checked in that kernel."""
    pytest.importorskip("jupyterlab", reason="JupyterLab not installed (pip install -e '.[lab]')")
    pytest.importorskip("geemap")

    port, token = _free_port(), secrets.token_hex(16)
    env = dict(
        os.environ,
        JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
        JUPYTER_PLATFORM_DIRS="1",
        LAKEPAPER_BUILD=str(build_root),
    )
    cmd = jupyterlab_command(port, token, f"--ServerApp.preferred_dir={paths.NOTEBOOKS}")
    log = (tmp_path / "lab.log").open("w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    kernel_id = None
    try:
        nb, deadline = None, time.monotonic() + 30
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"jupyter lab exited early:\n{Path(log.name).read_text()[-3000:]}"
            try:
                nb = _call(base, token, "/api/contents/notebooks/explore.ipynb?content=1&type=notebook")
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.25)
        assert nb is not None, f"server not answering after 30 s:\n{Path(log.name).read_text()[-3000:]}"
        kernel_name = nb["content"]["metadata"]["kernelspec"]["name"]
        assert kernel_name == "lakepaper"
        kernel = _call(base, token, "/api/kernels", "POST", {"name": kernel_name, "path": "notebooks"})
        kernel_id = kernel["id"]
        with kernel_client(tmp_path / "runtime", kernel_id, timeout=30) as client:
            cells = [c for c in nb["content"]["cells"] if c["cell_type"] == "code"]
            assert "parameters" in cells[0]["metadata"].get("tags", [])
            sources = [cells[0]["source"], 'profile = "tiny"  # injected, as papermill does']
            sources += [c["source"] for c in cells[1:]] + [CHECK]
            out: list[str] = []

            def hook(msg):
                if msg["msg_type"] == "stream":
                    out.append(msg["content"]["text"])
                elif msg["msg_type"] == "error":
                    out.append("\n".join(msg["content"]["traceback"]))

            for i, source in enumerate(sources):
                reply = client.execute_interactive(source, timeout=120, output_hook=hook)
                assert reply["content"]["status"] == "ok", f"cell {i} failed:\n{''.join(out)[-3000:]}"
        _call(base, token, f"/api/kernels/{kernel_id}", "DELETE")
        kernel_id = None
    finally:
        if kernel_id is not None and proc.poll() is None:
            with contextlib.suppress(urllib.error.URLError, ConnectionError, TimeoutError):
                _call(base, token, f"/api/kernels/{kernel_id}", "DELETE")
        _stop(proc)
        log.close()
    assert proc.poll() is not None, "jupyter lab still running after the test"
    text = "".join(out)
    assert "tile T01 of 2: T01, T02" in text
    check = json.loads(text.split("CHECK ", 1)[1].splitlines()[0])
    assert check["map"] == "geemap.geemap.Map"
    assert check["layers"][0] == "OpenStreetMap.Mapnik" and check["layers"][1:] == LAYER_NAMES
    assert {"LayersControl", "SplitMapControl", "WidgetControl"} <= set(check["controls"])
    assert check["lakes"] == [1, 2, 3]
    assert "#3 (tile T01)" in check["inspector"] and "reservoir" in check["inspector"]


def test_the_notebook_is_not_a_stage_and_declares_its_parameters():
    from lakepaper.stages import STAGES

    assert "explore" not in STAGES
    nb = json.loads(NOTEBOOK.read_text())
    assert nb["metadata"]["kernelspec"]["name"] == "lakepaper"
    assert all(not c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code"), "commit it without outputs"
