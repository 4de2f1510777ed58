"""The global land tile grid of the Earth Engine exports (lakepaper.composite.landgrid).

What must hold: tiles of the paper's window geometry within Earth Engine's export limits; one
projection per tile (the UTM zone owning its core, UPS beyond 84 N / 80 S); names unique worldwide;
the owned cores partition the land (no overlap, no gap, across zone boundaries too); only land and
its coastal margin; an area outside Sentinel-2's extent refused; the whole land surface in under a
minute on 2 cores (slow test); ``lakepaper composite gee --dry-run`` without credentials.
"""

from __future__ import annotations

import time

import geopandas as gpd
import numpy as np
import pyproj
import pytest
import shapely
from shapely.geometry import box

from lakepaper import params
from lakepaper.cli import main
from lakepaper.composite import landgrid
from lakepaper.errors import InputError, ParameterError
from lakepaper.world.sites import SITES


@pytest.fixture(scope="module")
def paper():
    return params.resolve("paper")


def test_tile_size_fits_the_windows_and_earth_engines_limits(paper):
    e = landgrid.export_parameters(paper)
    assert e["core_px"] == 24 * (576 - 2 * 100) == 9024  # whole windows: 24 cores of 376 px
    assert e["export_px"] == 9024 + 200 and e["max_pixels"] == 9224**2 < landgrid.EE_MAX_PIXELS
    assert e["file_dimensions"] % 256 == 0 and e["export_px"] <= e["file_dimensions"] < e["export_px"] + 256
    with pytest.raises(ParameterError) as err:
        landgrid.export_parameters(paper, windows=30)  # 11480 px: over maxPixels
    assert err.value.name == "windows"
    with pytest.raises(ParameterError) as err:
        landgrid.tile_side_px({**paper, "edge_px": 300})
    assert err.value.name == "edge_px"


def _utm_zone(lon: float) -> int:
    return int((lon + 180) // 6) + 1


def test_tiles_across_a_zone_boundary_partition_the_land(paper):
    """Around 12 E (zones 32 and 33): owned parts do not overlap, cover the land, each in its centre's zone."""
    area = [10.5, 47.0, 13.5, 49.0]
    grid = landgrid.build_grid(paper, area=area, margin_m=0.0)
    assert set(grid.zone) == {"32N", "33N"} and grid.tile.is_unique
    parts = grid.geometry.to_numpy()  # compared in lon/lat, the polygons' own coordinates
    union = shapely.union_all(parts)
    assert shapely.area(parts).sum() == pytest.approx(union.area, rel=1e-9)  # no overlap
    assert box(*area).difference(union).area < 1e-9  # no gap (the box is all land); slivers < 10 m2
    for row in grid.itertuples():
        # the owned part lies in the tile's zone; the core square is in the zone's UTM grid
        lon = row.geometry.representative_point().x
        assert row.epsg == 32600 + _utm_zone(lon), row.tile
        assert row.left % (9024 * 10) == 0 and row.right - row.left == 90240.0
        assert row.tile == f"{row.zone}_{int(row.bottom // 90240):04d}_{int(row.left // 90240):02d}"
    edge = grid[grid.owned_fraction < 1]
    assert len(edge) and ((edge.zone == "32N") | (edge.zone == "33N")).all()
    # the buffered footprint is the core plus 100 px on every side
    row = grid.iloc[0]
    to_utm = pyproj.Transformer.from_crs(4326, int(row.epsg), always_xy=True)
    xs, ys = to_utm.transform(*shapely.from_wkt(row.buffered_wkt).exterior.xy)
    assert min(xs) == pytest.approx(row.left - 1000, abs=1) and max(ys) == pytest.approx(row.top + 1000, abs=1)


def test_names_are_unique_across_hemispheres_and_zones(paper):
    grid = landgrid.build_grid(paper, area=[-61.0, -2.0, -59.0, 1.5])  # Amazon, across the equator and 60 W
    assert {"20N", "20S", "21N", "21S"} <= set(grid.zone) and grid.tile.is_unique
    assert set(grid.epsg) == {32620, 32621, 32720, 32721}
    south = grid[grid.zone.str.endswith("S")]
    assert (south.bottom < 10_000_000).all() and (south.top > 9_800_000).all()  # the southern false northing


def test_polar_caps_use_ups(paper):
    area = [0.0, -85.0, 20.0, -81.0]  # Antarctic ice: beyond UTM's 80 S
    with pytest.raises(ParameterError, match="Sentinel-2"):
        landgrid.build_grid(paper, area=area)
    grid = landgrid.build_grid(paper, area=area, lat_range=(-90.0, 84.0))
    assert len(grid) > 10 and set(grid.zone) == {"PS"} and set(grid.epsg) == {landgrid.UPS_SOUTH}
    assert grid.tile.str.match(r"^PS_\d{4}_\d{4}$").all() and grid.tile.is_unique
    below = landgrid.build_grid(paper, area=[0.0, -81.0, 20.0, -79.0], lat_range=(-90.0, 84.0))
    assert {"PS", "31S", "32S", "33S", "34S"} <= set(below.zone)  # both sides of 80 S
    parts = below.geometry.to_numpy()
    assert shapely.area(parts).sum() == pytest.approx(shapely.union_all(parts).area, rel=1e-9)
    assert box(0.0, -81.0, 20.0, -79.0).difference(shapely.union_all(parts)).area < 1e-9


def test_only_land_and_its_coastal_margin(tmp_path, paper):
    island = gpd.GeoDataFrame(geometry=[box(-30.0, -20.0, -29.9, -19.9)], crs=4326)  # 10 km, mid-Atlantic
    island.to_file(tmp_path / "island.gpkg")
    area = [-31.0, -21.0, -29.0, -19.0]
    assert landgrid.build_grid(paper, area=area).empty  # open ocean in Natural Earth
    near = landgrid.build_grid(paper, area=area, land=tmp_path / "island.gpkg", margin_m=0.0)
    wide = landgrid.build_grid(paper, area=area, land=tmp_path / "island.gpkg", margin_m=60_000.0)
    assert 1 <= len(near) <= 4 and len(wide) > len(near)
    assert shapely.union_all(near.geometry.to_numpy()).covers(island.geometry[0])
    (tmp_path / "broken.gpkg").write_text("not a vector file")
    with pytest.raises(InputError) as err:
        landgrid.build_grid(paper, area=area, land=tmp_path / "broken.gpkg")
    assert err.value.path == str(tmp_path / "broken.gpkg")


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "area",
    [[0.0, 85.0, 10.0, 89.0], [0.0, -70.0, 10.0, -60.0], [10.0, 50.0, 5.0, 51.0], "no/such/file.gpkg", 42],
)
def test_bad_areas_are_named(paper, area):
    with pytest.raises(ParameterError) as err:
        landgrid.build_grid(paper, area=area)
    assert err.value.name == "area"


def test_demo_sites_and_the_dry_run(paper, capsys, tmp_path):
    grid = landgrid.build_grid(paper, area=landgrid.demo_area(SITES))
    sites = landgrid.demo_area(SITES).geoms
    assert all(grid.intersects(s).any() for s in sites)  # every demo site is on the land grid
    s = landgrid.summary(grid, paper)
    assert s["tiles"] == len(grid) and s["export_bytes"] == len(grid) * 9224**2 * 6 * 2
    assert main(["composite", "gee", "--dry-run", "--area", "demo", "--grid-out", str(tmp_path / "g.gpkg")]) == 0
    text = capsys.readouterr().out
    assert f"tiles: {len(grid)} in" in text and "export volume" in text and "TB" in text
    written = gpd.read_file(tmp_path / "g.gpkg")
    assert list(written.tile) == list(grid.tile) and {"path", "epsg", "crs_transform", "buffered_wkt"} <= set(written)
    assert main(["composite", "gee", "--dry-run", "--area", "0,-75,10,-70"]) == 2
    assert "Sentinel-2" in capsys.readouterr().err


@pytest.mark.slow
def test_global_land_grid_in_under_a_minute(paper):
    started = time.perf_counter()
    grid = landgrid.build_grid(paper)
    seconds = time.perf_counter() - started
    assert seconds < 60, seconds
    s = landgrid.summary(grid, paper)
    # Land within 56 S - 84 N is ~1.35e8 km2; with coastal margins and zone-edge tiles, 1.4e8 - 1.8e8 owned
    assert 1.4e8 < s["owned_km2"] < 1.8e8 and 18_000 < s["tiles"] < 30_000
    assert grid.tile.is_unique and set(grid.zone.str[-1]) == {"N", "S"}
    assert np.isclose(grid.owned_fraction.max(), 1.0)
