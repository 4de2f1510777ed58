"""Lake distribution (lakepaper.stats): ellipsoidal areas, cells, split areas, profiles, headline numbers."""

from __future__ import annotations

import warnings

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import pytest
import shapely
from shapely.geometry.polygon import orient

from lakepaper import stats
from lakepaper.errors import InputError, ParameterError

GEOD = pyproj.Geod(ellps="WGS84")
EDGES = (0.005, 0.01, 0.03, 0.1, 1.0, 100.0, 10000.0)
#: Surface area of the WGS84 ellipsoid, km2.
EARTH_KM2 = 510_065_621.724


def geod_km2(g) -> float:
    return abs(GEOD.geometry_area_perimeter(g)[0]) / 1e6


def frame(geoms, **cols) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(cols, geometry=list(geoms), crs=4326)


# --- areas -------------------------------------------------------------------------------------------


def test_geodesic_area_matches_pyproj_geod():
    lakes = stats.synthetic_lakes(300, seed=3, a_max=50.0, lat_range=(-75, 80))
    ours = stats.geodesic_area_km2(lakes.geometry.to_numpy())
    ref = np.array([geod_km2(g) for g in lakes.geometry])
    np.testing.assert_allclose(ours, ref, rtol=1e-6)


def test_geodesic_area_holes_parts_and_non_polygons():
    outer = shapely.box(10, 60, 10.2, 60.1)
    hole = shapely.box(10.05, 60.02, 10.1, 60.05)
    with_hole = shapely.Polygon(outer.exterior.coords, [hole.exterior.coords])
    multi = shapely.MultiPolygon([shapely.box(0, 0, 0.01, 0.01), shapely.box(1, 1, 1.02, 1.01)])
    geoms = [with_hole, multi, shapely.Point(0, 0), shapely.LineString([(0, 0), (1, 1)]), shapely.Polygon(), None]
    a = stats.geodesic_area_km2(geoms)
    # straight lon/lat edges against geodesic ones: parallels are not geodesics, so densify for the reference;
    # pyproj sums signed ring areas, so the hole must wind the other way round
    assert a[0] == pytest.approx(geod_km2(orient(with_hole).segmentize(0.001)), rel=1e-6)
    assert a[1] == pytest.approx(geod_km2(multi.segmentize(0.001)), rel=1e-6)
    assert a[0] == pytest.approx(a[0:1].sum()) and a[0] < geod_km2(outer.segmentize(0.001))
    assert a[2:].tolist() == [0, 0, 0, 0]
    # orientation does not matter
    assert stats.geodesic_area_km2([outer.reverse()])[0] == pytest.approx(stats.geodesic_area_km2([outer])[0])
    assert len(stats.geodesic_area_km2([])) == 0


def test_cell_areas_are_geodesic():
    grid = stats.Grid(1.0)
    cells = grid.cell_area_km2()
    assert cells.shape == (180, 360)
    assert cells.sum() == pytest.approx(EARTH_KM2, rel=1e-9)
    # an equatorial cell and a polar one, against pyproj on the densified rectangle
    for row in (90, 179, 0, 147):
        lat0 = grid.lat_edges[row]
        rect = shapely.box(0, lat0, 1, lat0 + 1).segmentize(0.001)
        assert cells[row, 0] == pytest.approx(geod_km2(rect), rel=1e-5)
    assert cells[90, 0] > 12300 and cells[179, 0] < 110  # cells near the poles are small
    assert stats.Grid(0.5).cell_area_km2().sum() == pytest.approx(EARTH_KM2, rel=1e-9)
    with pytest.raises(ParameterError):
        stats.Grid(0.7)


def test_grid_indexing_clamps_the_edges():
    g = stats.Grid(1.0)
    assert g.col([-180, 179.99, 180]).tolist() == [0, 359, 359]
    assert g.row([-90, 0, 90]).tolist() == [0, 90, 179]


# --- locate: counting and splitting ---------------------------------------------------------------


def test_a_lake_across_a_cell_edge_is_counted_once_and_split():
    across = shapely.box(-0.01, 10.2, 0.01, 10.25)  # half west, half east of 0 E
    inside = shapely.box(5.1, 10.1, 5.2, 10.2)
    lc = stats.locate(frame([across, inside]))
    assert lc.n_crossing == 1 and len(lc) == 2
    count = stats.count_grid(lc)
    assert count.sum() == 2 and count[100, 185] == 1
    area = stats.area_grid(lc)
    assert area[100, 179] == pytest.approx(area[100, 180], rel=1e-9)  # split in halves
    assert area[100, 179] + area[100, 180] == pytest.approx(stats.geodesic_area_km2([across])[0])
    assert area.sum() == pytest.approx(lc.area_km2.sum())


def test_split_matches_an_independent_overlay():
    """Piece areas against geopandas.overlay with the cell polygons, on lakes that cross many cells."""
    lakes = stats.synthetic_lakes(250, seed=5, a_min=50.0, a_max=20000.0, lat_range=(-70, 75))
    # vertices ~1 km apart, as in lake outlines: edges straight in lon/lat and in the equal-area
    # projection then cut the cell edges at the same places
    lakes = lakes.set_geometry(lakes.segmentize(0.01))
    lc = stats.locate(lakes)
    assert lc.n_crossing > 50
    g = lc.grid
    near = {
        (r, c)
        for x0, y0, x1, y1 in lakes.geometry.bounds.to_numpy()
        for r in range(int(np.floor(y0)) + 90, int(np.floor(y1)) + 91)
        for c in range(int(np.floor(x0)) + 180, int(np.floor(x1)) + 181)
    }
    cells = [
        (r, c, shapely.box(g.lon_edges[c], g.lat_edges[r], g.lon_edges[c + 1], g.lat_edges[r + 1])) for r, c in near
    ]
    grid = gpd.GeoDataFrame(
        {"row": [x[0] for x in cells], "col": [x[1] for x in cells]}, geometry=[x[2] for x in cells], crs=4326
    )
    over = gpd.overlay(lakes[["geometry"]], grid, how="intersection", keep_geom_type=True)
    over["km2"] = stats.geodesic_area_km2(over.geometry.to_numpy())
    ref = over.groupby(["row", "col"]).km2.sum()
    ours = stats.area_grid(lc)
    got = pd.Series(ours[ref.index.get_level_values(0), ref.index.get_level_values(1)], index=ref.index)
    np.testing.assert_allclose(got.to_numpy(), ref.to_numpy(), rtol=1e-6, atol=1e-5)  # 10 m2: a tenth of a pixel
    assert ours.sum() == pytest.approx(ref.sum(), rel=1e-9)


def test_area_column_is_used_and_pieces_scaled_to_it():
    across = shapely.box(-0.01, 10.2, 0.01, 10.25)
    lc = stats.locate(frame([across], area=[8.0]), area_col="area")
    assert lc.area_km2.tolist() == [8.0]
    assert stats.area_grid(lc)[100, 179] == pytest.approx(4.0)
    with pytest.raises(InputError, match="column 'nope'"):
        stats.locate(frame([across]), area_col="nope")
    with pytest.raises(InputError, match="no numeric area"):
        stats.locate(frame([across], area=["x"]), area_col="area")


def test_any_crs_gives_the_same_result():
    lakes = stats.synthetic_lakes(200, seed=2, a_max=30.0, lat_range=(40, 50))
    lakes = lakes[(lakes.geometry.bounds.minx > 6) & (lakes.geometry.bounds.maxx < 12)]  # one UTM zone
    a = stats.locate(lakes)
    b = stats.locate(lakes.to_crs(32632))
    np.testing.assert_allclose(b.area_km2, a.area_km2, rtol=1e-4)  # vertices reprojected, edges not densified
    assert (stats.count_grid(a) == stats.count_grid(b)).all()
    np.testing.assert_allclose(stats.area_grid(b), stats.area_grid(a), rtol=1e-4, atol=1e-9)
    with pytest.raises(InputError, match="no CRS"):
        stats.locate(gpd.GeoDataFrame(geometry=[shapely.box(0, 0, 1, 1)]))


def test_empty_geometries_are_dropped_with_a_warning():
    f = frame([shapely.box(0.1, 0.1, 0.2, 0.2), None, shapely.Polygon()], id=[1, 2, 3])
    with pytest.warns(UserWarning, match="2 lakes without geometry"):
        lc = stats.locate(f, id_col="id")
    assert len(lc) == 1 and lc.dropped == 2 and lc.ids.tolist() == [1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        empty = stats.locate(frame([]))
    assert len(empty) == 0 and stats.count_grid(empty).sum() == 0
    assert np.isnan(stats.headline(empty)["share_count_below_1km2"])


def test_counts_use_a_point_inside_the_lake():
    # a C-shaped lake whose centroid lies outside it, in another cell
    c_shape = shapely.Polygon(
        [(0.5, 0.5), (2.5, 0.5), (2.5, 0.6), (0.6, 0.6), (0.6, 2.4), (2.5, 2.4), (2.5, 2.5), (0.5, 2.5)]
    )
    assert not c_shape.contains(c_shape.centroid)
    lc = stats.locate(frame([c_shape]))
    assert shapely.Point(lc.lon[0], lc.lat[0]).within(c_shape)


# --- grids, profiles, numbers ---------------------------------------------------------------------


def test_profiles_and_density_are_sums_of_the_grid():
    lakes = stats.synthetic_lakes(3000, seed=7, a_max=500.0)
    lc = stats.locate(lakes, area_col="area_km2")
    lat, lon = stats.profile(lc, "lat"), stats.profile(lc, "lon")
    assert len(lat) == 180 and len(lon) == 360
    assert lat["count"].sum() == lon["count"].sum() == 3000
    assert lat.area_km2.sum() == pytest.approx(lakes.area_km2.sum())
    assert lon.area_km2.sum() == pytest.approx(lakes.area_km2.sum())
    np.testing.assert_allclose(stats.density_grid(lc) * lc.grid.cell_area_km2(), stats.area_grid(lc))
    cells = stats.grid_frame(lc)
    assert cells["count"].sum() == 3000 and cells.area_km2.sum() == pytest.approx(lakes.area_km2.sum())
    with pytest.raises(ParameterError):
        stats.profile(lc, "depth")


def test_select_keeps_pieces_with_their_lakes():
    lakes = stats.synthetic_lakes(2000, seed=8, a_min=0.005, a_max=5000.0)
    lc = stats.locate(lakes, area_col="area_km2")
    big, small = lc.in_size_range(1.0), lc.in_size_range(0, 1.0)
    assert len(big) + len(small) == len(lc)
    np.testing.assert_allclose(stats.area_grid(big) + stats.area_grid(small), stats.area_grid(lc))
    assert stats.area_grid(big).sum() == pytest.approx(lc.area_km2[lc.area_km2 >= 1].sum())
    assert big.n_crossing + small.n_crossing <= lc.n_crossing
    with pytest.raises(ParameterError):
        lc.select([True])


def test_headline_numbers_by_hand():
    pts = [(10, 60), (10, 10), (20, 58), (30, -5)]
    areas = [0.001, 0.5, 2.0, 200.0]
    geoms = [shapely.Point(x, y).buffer(0.01) for x, y in pts]
    h = stats.headline(stats.locate(frame(geoms, area=areas), area_col="area"))
    assert h["n_lakes"] == 4 and h["total_area_km2"] == pytest.approx(202.501)
    assert h["share_count_below_1km2"] == 50.0 and h["share_count_below_0_01km2"] == 25.0
    assert h["share_area_above_100km2"] == pytest.approx(100 * 200 / 202.501)
    assert h["share_count_north_57"] == 50.0
    assert h["share_area_north_57"] == pytest.approx(100 * 2.001 / 202.501)
    table = stats.beside(h, ("truth", h))
    assert table.loc["share_count_below_1km2", "published"] == 98.3 and "truth" in table


def test_headline_numbers_of_sections_3_2_and_3_3_by_the_papers_definitions():
    """Western hemisphere as '-20 W - 160 E' (west of 20 W or east of 160 E), lakes > 10,000 km2, and
    every lake below 0.01 km2 (the paper's "3.9 million not in PLD" are all of them)."""
    pts = [(-100, 50), (-25, 40), (-15, 40), (10, 60), (165, 60), (159.5, 60), (50, 42)]
    areas = [0.004, 0.006, 20000.0, 0.5, 3.0, 12000.0, 371000.0]
    geoms = [shapely.Point(x, y).buffer(0.01) for x, y in pts]
    h = stats.headline(stats.locate(frame(geoms, area=areas), area_col="area"))
    west = [0.004, 0.006, 3.0]  # -100 and -25 (west of 20 W) and 165 (east of 160 E); not -15, not 159.5
    assert h["share_count_west"] == pytest.approx(100 * 3 / 7)
    assert h["share_area_west"] == pytest.approx(100 * sum(west) / sum(areas))
    assert h["n_lakes_above_10000km2"] == 3  # 20000, 12000 and 371000
    assert h["n_lakes_below_0_01km2"] == 2 and h["area_below_0_01km2"] == pytest.approx(0.01)
    # a lake across 20 W: its area by its pieces (cells west of 20 W count), its count by its point
    across = shapely.box(-21.0, 10.0, -19.0, 10.5)
    h = stats.headline(stats.locate(frame([across], area=[100.0]), area_col="area"))
    assert h["share_area_west"] == pytest.approx(50, abs=0.5)
    assert h["share_count_west"] in (0.0, 100.0)
    assert stats.headline(stats.locate(frame([across], area=[100.0]), area_col="area"), west_lon=(-30.0, 160.0))[
        "share_area_west"
    ] == pytest.approx(0.0)
    table = stats.beside(h)
    assert table.loc["share_count_west", "published"] == 54.0 and table.loc["area_below_0_01km2", "published"] == 27643


def test_size_group_table_by_hand():
    t = stats.size_group_table([0.001, 0.005, 0.02, 0.02, 150.0, 20000.0], EDGES)
    assert t["count"].tolist() == [1, 1, 2, 0, 0, 0, 1, 1]
    assert t.loc["0.01-0.03", "area_km2"] == pytest.approx(0.04)
    assert t.count_share.sum() == pytest.approx(100) and t.area_share.sum() == pytest.approx(100)
    b = stats.size_group_bounds(EDGES)
    assert b.loc["<0.005", "lo"] == 0 and b.loc[">=10000", "hi"] == np.inf and list(b.index) == list(t.index)


def test_synthetic_lakes_are_valid_and_follow_the_law():
    lakes = stats.synthetic_lakes(5000, seed=1)
    assert lakes.crs.to_epsg() == 4326 and shapely.is_valid(lakes.geometry.to_numpy()).all()
    assert lakes.area_km2.min() > 0.003
    # N(>A) ~ A^-0.9: ten times fewer lakes per 10^(1/0.9) in area
    n1, n2 = (lakes.area_km2 > 0.01).sum(), (lakes.area_km2 > 0.01 * 10 ** (1 / 0.9)).sum()
    assert 7 < n1 / n2 < 13


def test_geodesic_area_in_chunks_is_the_same(monkeypatch):
    lakes = stats.synthetic_lakes(100, seed=4).geometry.to_numpy()
    whole = stats.geodesic_area_km2(lakes)
    monkeypatch.setattr(stats, "_CHUNK", 7)
    np.testing.assert_array_equal(stats.geodesic_area_km2(lakes), whole)
