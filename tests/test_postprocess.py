"""Stage 05: vectorising, tile seams, each rule, the product, and the whole pass on a small simulated world.

The world here is built from truths and references only (no scenes: ~2 s). The stand-in prediction
(:func:`write_standin`) is the truth at its typical extent plus the errors the rules target: the sea
with lagoons and their inlets, the river with its banks, and arid salt lakes missed.
Lagoons are predicted at their maximum extent: the world's tidal inlets end at the lagoon's maximum
shore, so at the typical extent a lagoon lies 20-45 m from the sea and no 10 m rule could see that
it is joined to it.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from builders import TILES, UTM, truth_world, write_mask, write_standin
from rasterio import features
from rasterio.transform import from_origin
from shapely.geometry import box

from lakepaper import io, params
from lakepaper.errors import InputError, ParameterError
from lakepaper.figures import save
from lakepaper.figures.postprocess import fig3, fig4
from lakepaper.figures.postprocess_examples import FigureExamples
from lakepaper.postprocess import evaluate, rules
from lakepaper.postprocess.partitions import mask_tiles
from lakepaper.postprocess.pipeline import postprocess, read_tile_grid, write_outputs
from lakepaper.postprocess.product import COLUMNS, perimeter_km, write_product
from lakepaper.postprocess.references import ReferenceSet, read_vector, resolve_paths
from lakepaper.postprocess.seams import merge_seams
from lakepaper.postprocess.vectorize import burn, vectorize, vectorize_tile
from lakepaper.world.files import WorldFiles


@pytest.fixture(scope="module")
def p():
    return params.resolve("tiny")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Truths, lakes table, references and world.json of four tiny-profile tiles (no scenes)."""
    return truth_world(tmp_path_factory.mktemp("world"), TILES)


@pytest.fixture(scope="module")
def standin(world, tmp_path_factory):
    out = tmp_path_factory.mktemp("predict")
    write_standin(world, out)
    return out


@pytest.fixture(scope="module")
def refs(world):
    return resolve_paths({}, world.references)


@pytest.fixture(scope="module")
def examples():
    """The figures' examples, chosen while the ``result`` pass runs."""
    return FigureExamples()


@pytest.fixture(scope="module")
def result(standin, refs, p, examples):
    return postprocess(standin, p, references=ReferenceSet(dict(refs)), observer=examples)


# --- vectorising -------------------------------------------------------------------------------------


def test_vectorize_keeps_islands_as_holes_and_counts_by_connectivity():
    m = np.zeros((8, 8), np.uint8)
    m[1:6, 1:6] = 1
    m[3, 3] = 0  # an island
    m[6, 6] = 1  # touches the big lake only at a corner
    t = from_origin(0, 80, 10, 10)
    g4, _, bad4 = vectorize(m, t, connectivity=4)
    g8, _, bad8 = vectorize(m, t, connectivity=8)
    assert len(g4) == 2 and bad4 == 0
    big = max(g4, key=lambda g: g.area)
    assert len(big.interiors) == 1 and big.area == pytest.approx(24 * 100)
    assert len(g8) == 1 and shapely.is_valid(g8).all() and bad8 == 1  # corner contact: repaired to a MultiPolygon
    assert g8[0].area == pytest.approx(25 * 100)
    with pytest.raises(ParameterError, match="connectivity"):
        vectorize(m, t, connectivity=6)


def _grid(tmp_path, whole: np.ndarray, n: int = 2, margin: int = 0, origin=(500000.0, 6000000.0)):
    """Cut a mask into n x n tiles (each with ``margin`` px of its neighbours) and the grid of their cores."""
    h, w = whole.shape
    th, tw = h // n, w // n
    rows = []
    for i in range(n):
        for j in range(n):
            r0, r1 = max(0, i * th - margin), min(h, (i + 1) * th + margin)
            c0, c1 = max(0, j * tw - margin), min(w, (j + 1) * tw + margin)
            t = from_origin(origin[0] + c0 * 10, origin[1] - r0 * 10, 10, 10)
            write_mask(tmp_path / f"R{i}C{j}_mask.tif", whole[r0:r1, c0:c1], t)
            x0, y0 = origin[0] + j * tw * 10, origin[1] - (i + 1) * th * 10
            rows.append({"tile": f"R{i}C{j}", "geometry": box(x0, y0, x0 + tw * 10, y0 + th * 10)})
    grid = gpd.GeoDataFrame(rows, geometry="geometry", crs=UTM).to_crs(4326)
    return mask_tiles(tmp_path, tile_grid=grid), from_origin(origin[0], origin[1], 10, 10)


def _seamless(tiles, connectivity=4):
    parts = [vectorize_tile(t, connectivity=connectivity)[0] for t in tiles]
    parts, info = merge_seams(parts, connectivity=connectivity)
    return np.concatenate([np.asarray(q.frame.geometry.values) for q in parts]), info


def _same_polygons(a, b) -> bool:
    if len(a) != len(b):
        return False
    a = sorted(a, key=lambda g: (round(g.area), g.bounds))
    b = sorted(b, key=lambda g: (round(g.area), g.bounds))
    return all(shapely.symmetric_difference(x, y).area < 1e-6 for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("margin", [0, 3])
def test_lake_across_the_corner_of_four_tiles_is_one_polygon(tmp_path, margin):
    yy, xx = np.mgrid[0:40, 0:40]
    whole = ((yy - 20) ** 2 + (xx - 20) ** 2 < 81).astype(np.uint8)  # a disc on the common corner
    whole[19:22, 19:22] = 0  # with an island on the corner itself
    whole[2:6, 18:24] = 1  # a lake across the vertical edge only
    whole[30, 19] = whole[31, 20] = 1  # two one-pixel lakes meeting diagonally across the edge
    whole[35, 10:30] = 1  # a thin lake
    tiles, t = _grid(tmp_path, whole, margin=margin)
    geoms, info = _seamless(tiles)
    expected, _, _ = vectorize(whole, t)
    assert info["unions"] == 3
    assert _same_polygons(geoms, expected)
    disc = max(geoms, key=lambda g: g.area)
    assert disc.geom_type == "Polygon" and len(disc.interiors) == 1
    # 8-connectivity joins the diagonal pair across the edge too
    geoms8, info8 = _seamless(tiles, connectivity=8)
    assert len(geoms8) == len(expected) - 1 and info8["unions"] == 4


def test_lake_across_a_utm_zone_boundary_is_one_polygon(tmp_path):
    """Tiles on either side of 18 E (UTM 33 | 34): rotated grids, overlapping cores, still one lake."""
    lake = gpd.GeoSeries([shapely.Point(18.0, 45.0).buffer(0.004)], crs=4326)
    rows = []
    for name, epsg, lon0, lon1 in (("A", 32633, 17.98, 18.0), ("B", 32634, 18.0, 18.02)):
        footprint = box(lon0, 44.99, lon1, 45.015)
        b = gpd.GeoSeries([footprint], crs=4326).to_crs(epsg).total_bounds
        left, top = np.floor(b[0] / 10) * 10 - 50, np.ceil(b[3] / 10) * 10 + 50
        t = from_origin(left, top, 10, 10)
        shape = (int((top - b[1]) / 10) + 10, int((b[2] - left) / 10) + 10)
        m = features.rasterize([(lake.to_crs(epsg).iloc[0], 1)], out_shape=shape, transform=t, dtype="uint8")
        write_mask(tmp_path / f"{name}_mask.tif", m, t, f"EPSG:{epsg}")
        rows.append({"tile": name, "geometry": footprint})
    tiles = mask_tiles(tmp_path, tile_grid=gpd.GeoDataFrame(rows, crs=4326))
    parts, info = merge_seams([vectorize_tile(t)[0] for t in tiles])
    geoms = [g for q in parts for g in q.frame.geometry]
    assert info["unions"] == 1 and len(geoms) == 1 and geoms[0].geom_type == "Polygon"
    true_area = lake.to_crs(32633).area.iloc[0]
    assert abs(gpd.GeoSeries(geoms, crs=parts[0].crs).to_crs(32633).area.iloc[0] / true_area - 1) < 0.01


def test_burn_restores_the_pixels(tmp_path):
    rng = np.random.default_rng(3)
    whole = (rng.random((30, 30)) < 0.45).astype(np.uint8)
    tiles, _ = _grid(tmp_path, whole, n=3)
    parts = merge_seams([vectorize_tile(t)[0] for t in tiles])[0]
    for t in tiles:
        b, _ = burn(parts, t)
        r, c = int(t.core.row_off), int(t.core.col_off)
        assert (b == io.read_raster(t.path)[0][0][r : r + b.shape[0], c : c + b.shape[1]]).all()


# --- rules on hand-made geometry --------------------------------------------------------------------------


def _frame(geoms):
    return gpd.GeoDataFrame({"source": ["prediction"] * len(geoms)}, geometry=list(geoms), crs=UTM)


def test_ocean_rule_cuts_at_the_coast_and_deletes_what_touches_the_sea():
    land = [box(500000, 6000000, 501000, 6001000)]  # sea west of x = 500000
    ocean = [box(499000, 6000000, 500000, 6001000)]
    lakes = _frame(
        [
            box(500200, 6000200, 500300, 6000300),  # inland: kept
            box(500015, 6000500, 500060, 6000560),  # 15 m from the sea: kept
            box(500005, 6000700, 500060, 6000760),  # 5 m: deleted
            box(499900, 6000100, 500100, 6000150),  # across the coast (a lagoon with its inlet): deleted
            box(499500, 6000800, 499600, 6000900),  # at sea: deleted
        ]
    )
    r = rules.ocean_rule(lakes, np.array(land), np.array(ocean), coast_distance_m=10.0)
    assert len(r.frame) == 2 and r.counts["outside_land"] == 1 and r.counts["near_ocean"] == 2
    assert r.counts["cut_at_coast"] == 1
    assert sorted(r.removed["reason"]) == ["outside land", *["within coast distance of the ocean"] * 2]
    skipped = rules.ocean_rule(lakes, None, None, coast_distance_m=10.0)
    assert len(skipped.frame) == len(lakes)


def test_river_rule_cases_a_to_d_and_reservoirs():
    river = shapely.LineString([(500000, 6000500), (502000, 6000500)]).buffer(20)  # 40 m wide, y 480..520
    lakes = _frame(
        [
            box(500100, 6000300, 500300, 6000510),  # a: GLAKES, ~5 % under the river -> whole
            box(500500, 6000300, 500700, 6000510),  # b: no GLAKES, ratio ~0.95 -> masked
            box(500900, 6000470, 501100, 6000560),  # c: GLAKES, ratio ~0.44 -> masked (two pieces)
            box(501300, 6000470, 501500, 6000530),  # d: no GLAKES, ratio ~0.17 -> deleted
            box(501700, 6000400, 501900, 6000600),  # reservoir crossed by the river: kept whole
            box(500100, 6000700, 500200, 6000800),  # away from the river: untouched
        ]
    )
    glakes = np.array([box(500150, 6000350, 500250, 6000450), box(500950, 6000540, 501050, 6000555)])
    reservoirs = np.array([box(501690, 6000390, 501910, 6000610)])
    r = rules.river_rule(
        lakes,
        np.array([river]),
        glakes=glakes,
        reservoirs=reservoirs,
        dams=np.array([]),
        threshold=0.8,
        reservoir_distance_m=30.0,
    )
    cases = dict(zip(r.extra["cases"].geometry.centroid.x.round(-2), r.extra["cases"]["case"], strict=True))
    assert cases == {500200: "a", 500600: "b", 501000: "c", 501400: "d"}  # the mask spares the reservoir
    c = r.counts
    assert (c["case_a"], c["case_b"], c["case_c"], c["case_d"], c["reservoirs"]) == (1, 1, 1, 1, 1)
    out = r.frame
    assert len(out) == 6  # a, b, c (2 pieces), reservoir, untouched
    assert out.loc[out.river_case == "a"].area.iloc[0] == pytest.approx(200 * 210)
    assert out.loc[out.river_case == "b"].area.iloc[0] == pytest.approx(200 * 180)
    assert (out.river_case == "c").sum() == 2
    assert out.loc[out.reservoir].area.iloc[0] == pytest.approx(200 * 200)
    assert r.removed["reason"].tolist() == ["river residue (case d)"]
    # a reservoir known only by its dam is never cut either
    r2 = rules.river_rule(
        lakes.iloc[[4]],
        np.array([river]),
        glakes=glakes,
        reservoirs=np.array([]),
        dams=np.array([shapely.Point(501800, 6000390)]),
        threshold=0.8,
        reservoir_distance_m=30.0,
    )
    assert r2.frame.reservoir.all() and r2.frame.area.iloc[0] == pytest.approx(200 * 200)


def test_the_papers_reservoir_rule_keeps_a_reservoir_and_its_joined_river_whole():
    """A reservoir the prediction joined to a long stretch of river: the paper keeps the polygon whole
    (``whole``); the extended rule spares the reservoir's area and cuts the river off (case r)."""
    river = shapely.LineString([(500000, 6000500), (503000, 6000500)]).buffer(20)
    reservoir = box(501700, 6000400, 501900, 6000600)
    lake = shapely.union(reservoir, box(500000, 6000485, 503000, 6000515))  # the reservoir and 3 km of river
    kw = dict(glakes=np.array([]), reservoirs=np.array([reservoir]), dams=np.array([]), threshold=0.8)
    paper = rules.river_rule(_frame([lake]), np.array([river]), reservoir_distance_m=30.0, whole=True, **kw)
    extended = rules.river_rule(_frame([lake]), np.array([river]), reservoir_distance_m=30.0, **kw)
    assert paper.frame.reservoir.all() and paper.frame.area.sum() == pytest.approx(lake.area)
    assert paper.counts["case_r"] == 0 and len(paper.extra["cases"]) == 0
    assert extended.counts["case_r"] == 1 and extended.frame.area.sum() < 0.6 * lake.area
    assert extended.frame.area.sum() >= reservoir.area - 1e-6  # the reservoir itself is spared
    with pytest.raises(ParameterError):
        rules.reservoir_rule("whole")


def test_min_area_is_ellipsoidal_not_degrees():
    small, big = box(500000, 6000000, 500070, 6000070), box(500200, 6000000, 500272, 6000072)  # 0.0049, 0.0052
    r = rules.min_area_rule(_frame([small, big]), min_km2=0.005)
    assert len(r.frame) == 1 and r.frame.area_km2.iloc[0] == pytest.approx(0.005184, rel=2e-3)
    lonlat = _frame([big]).to_crs(4326)
    assert rules.areas_km2(lonlat.geometry.values, 4326)[0] == pytest.approx(0.005184, rel=2e-3)


def test_flood_mask_spares_arid_places_and_missing_occurrence():
    fp = np.ma.array([[1, 1, 1, 0]], mask=[[0, 0, 0, 0]])
    occ = np.ma.array([[10, 50, 10, 10]], mask=[[0, 0, 1, 0]])
    ai = np.ma.array([[3000, 3000, 3000, 1000]], mask=False)
    arid = rules.arid(ai, threshold=0.2, scale=10000)
    assert arid.tolist() == [[False, False, False, True]]
    assert rules.flood_mask(fp, occ, arid, occurrence_pct=30).tolist() == [[True, False, False, False]]
    assert rules.flood_mask(None, occ, arid, occurrence_pct=30) is None


def test_manual_edits(tmp_path):
    lakes = _frame([box(0, 0, 100, 100), box(200, 0, 300, 100), box(400, 0, 500, 100)])
    edits = gpd.GeoDataFrame(
        {"action": ["remove", "erase", "add"], "note": ["wrong", "paddy", "missed"]},
        geometry=[box(10, 10, 20, 20), box(250, -10, 310, 110), box(600, 0, 700, 100)],
        crs=UTM,
    ).to_crs(3857)  # edits in another CRS
    path = tmp_path / "edits.gpkg"
    edits.to_file(path)
    e = rules.read_edits(path)
    r = rules.apply_edits(lakes, e, min_km2=0.001)
    assert len(r.frame) == 2 and r.counts == {"removed": 1, "erased": 1}
    assert sorted(np.round(r.frame.area)) == [5000, 10000]
    bad = edits.assign(action=["remove", "delete", "add"])
    bad.to_file(tmp_path / "bad.gpkg")
    with pytest.raises(InputError, match="unknown action"):
        rules.read_edits(tmp_path / "bad.gpkg")


# --- references: paths, CRS, repairs -----------------------------------------------------------------------


@pytest.mark.bad_input
def test_missing_reference_names_the_parameter(world, refs, tmp_path):
    with pytest.raises(ParameterError, match="'glakes'.*not found"):
        resolve_paths({"glakes": str(tmp_path / "nope.shp")}, world.references)
    given = dict.fromkeys(refs, "none") | {"pld": ""}  # the paper profile: no simulated files to fall back on
    with pytest.raises(ParameterError, match="'pld'.*give the file"):
        resolve_paths(given, None)
    with pytest.raises(ParameterError, match="'glaeks'"):
        resolve_paths({"glaeks": ""}, world.references)
    assert resolve_paths({"pld": "none"}, world.references)["pld"] is None


@pytest.mark.bad_input
def test_references_in_other_crs_and_invalid_geometries(world, tmp_path):
    g = gpd.read_file(world.references / "glakes.shp")
    info = WorldFiles(world.root).tiles().set_index("tile").loc["T07"]
    crs = f"EPSG:{info.epsg}"
    x, y = (info.bounds[0] + info.bounds[2]) / 2, (info.bounds[1] + info.bounds[3]) / 2
    bowtie = shapely.Polygon([(0, 0), (100, 100), (100, 0), (0, 100)])  # self-intersecting, 100 m
    bad = gpd.GeoSeries([shapely.affinity.translate(bowtie, x, y)], crs=crs).to_crs(4326).iloc[0]
    g = pd.concat([g, gpd.GeoDataFrame({"Lake_id": [999999], "Lake_type": [1]}, geometry=[bad], crs=4326)])
    g = gpd.GeoDataFrame(g, geometry="geometry", crs=4326)
    g.to_crs(3857).to_file(tmp_path / "glakes_3857.gpkg")
    a, n_a = read_vector(world.references / "glakes.shp", "glakes", bounds=info.bounds, crs=crs, columns=("Lake_id",))
    b, n_b = read_vector(tmp_path / "glakes_3857.gpkg", "glakes", bounds=info.bounds, crs=crs, columns=("Lake_id",))
    assert n_a == 0 and n_b == 1
    assert set(b.Lake_id) - set(a.Lake_id) <= {999999}
    b = b[b.Lake_id != 999999].set_index("Lake_id").loc[a.Lake_id]
    assert np.allclose(b.area.to_numpy(), a.area.to_numpy(), rtol=1e-6)
    no_crs = tmp_path / "nocrs.gpkg"
    with pytest.warns(UserWarning, match="crs"):
        g.set_crs(None, allow_override=True).to_file(no_crs)
    with pytest.raises(InputError, match="no CRS"):
        read_vector(no_crs, "glakes", bounds=info.bounds, crs=crs)
    with pytest.raises(InputError, match="column"):
        read_vector(world.references / "pld.shp", "pld", bounds=info.bounds, crs=crs, columns=("Lake_id",))


# --- the whole pass on the small world ------------------------------------------------------------------


def test_each_rule_does_what_it_claims_against_truth(result, world, p):
    tiles = result.tiles
    arid = [t for t in TILES if t == "T09"]
    pixels, lakes = evaluate.step_effects(result.steps, tiles, world, min_km2=p["min_lake_area_km2"], arid_tiles=arid)
    removed = evaluate.removed_classes(result.removed, tiles, world)
    # ocean: sea and lagoon pixels gone, no real lake lost
    assert pixels.loc["prediction", "ocean"] > 10_000 and pixels.loc["prediction", "lagoon"] > 0
    assert pixels.loc["ocean", "ocean"] == 0 and pixels.loc["ocean", "lagoon"] == 0
    assert lakes.loc["ocean", "lost"] == 0
    # river: the river's pixels go, real lakes stay
    assert pixels.loc["river", "river"] < 0.05 * pixels.loc["ocean", "river"]
    assert lakes.loc["river", "lost"] == 0 and lakes.loc["river", "kept"] == lakes.loc["ocean", "detected"]
    assert pixels.loc["river", "lake"] >= 0.999 * pixels.loc["ocean", "lake"]
    # min area: what it deletes is small; completion: arid lakes the model missed come back
    assert (removed.loc["min_area"].sum()["polygons"]) > 0
    assert lakes.loc["completion", "arid_gained"] > 0
    assert lakes.loc["completion", "lost"] == 0
    assert result.product["source"].isin(["pld", "glakes"]).any()
    _, _, summary = evaluate.lake_level(result.steps["final"], tiles, world, p["size_groups_km2"])
    assert summary.loc["0.005-0.01":"0.1-1", "mean_recall"].min() > 0.8
    # completion merges GLAKES reservoirs at full supply and PLD's ephemeral arid lakes: larger than typical
    assert summary.loc["0.005-0.01":"0.1-1", "mean_precision"].min() > 0.6


def test_product_columns_areas_and_files(result, p, tmp_path):
    prod = result.product
    assert list(prod.columns) == [*COLUMNS, "geometry"] and prod.crs.to_epsg() == 4326
    assert prod["id"].tolist() == list(range(1, len(prod) + 1))
    assert (prod.area_km2 >= p["min_lake_area_km2"] - 1e-9).all()
    assert prod.geometry.is_valid.all() and (prod.geom_type == "Polygon").all()
    assert set(prod.source) <= {"prediction", "glakes", "pld", "manual"}
    assert prod.reservoir.any() and set(prod.river_case) <= {"", "a", "b", "c", "r"}
    for _, lakes in prod.groupby("tile"):  # against planar measures in the tile's UTM zone
        utm = lakes.to_crs(lakes.estimate_utm_crs())
        assert np.allclose(lakes.area_km2, utm.area / 1e6, rtol=2e-3)
        assert np.allclose(lakes.perimeter_km, utm.length / 1e3, rtol=2e-3)
    assert perimeter_km([shapely.box(0, 0, 1, 1)])[0] == pytest.approx(443.6, rel=1e-3)  # 1 degree at the equator
    paths = write_outputs(result, tmp_path / "a")
    again = write_product(result.product, tmp_path / "b")
    assert io.sha256_file(paths["gpkg"]) == io.sha256_file(again["gpkg"])
    back = gpd.read_parquet(paths["parquet"])
    assert len(back) == len(prod) and list(back.columns) == list(prod.columns)
    assert len(gpd.read_file(paths["gpkg"])) == len(prod)
    mask = io.read_raster(tmp_path / "a" / "tiles" / "T07_mask.tif")[0][0]
    assert set(np.unique(mask)) <= {0, 1, 255} and mask.sum() > 0


def test_figure_examples_are_chosen_while_the_pass_runs(result, examples, p, tmp_path):
    """Fig. 3 shows polygons the river mask cut (with the mask around them); Fig. 4 GLAKES lakes the floodplain
    mask split and cut down; neither is kept by the pass, the observer keeps only the views it chose."""
    cut = {g.wkb for q in result.cases for g in q.frame.geometry.values}
    assert "c" in examples.fig3 and all(ex["before"].wkb in cut for ex in examples.fig3.values())
    for ex in examples.fig3.values():  # drawn with the river mask, in a view around the polygon
        assert len(ex["rivers"]) and shapely.intersects(ex["before"], shapely.box(*ex["bounds"]))
    assert set(examples.fig4) == {"split", "removed"}
    for ex in examples.fig4.values():
        assert ex["before"].any() and not (ex["after"] & ~ex["before"]).any()
        assert (ex["before"] & ex["floodplain_removed"]).any()
    assert examples.fig4["split"]["score"] > 1 and 0 < examples.fig4["removed"]["score"] < 1
    # two places (paper: Fig. 4 a-b and c-d are two different regions)
    split, removed = examples.fig4["split"], examples.fig4["removed"]
    assert (split["tile"], split["extent"]) != (removed["tile"], removed["extent"])
    save(fig3(examples.fig3, threshold=p["area_ratio_threshold"]), tmp_path / "fig3.png")
    save(fig4(examples.fig4), tmp_path / "fig4.png")
    assert (tmp_path / "fig3.png").stat().st_size > 0 and (tmp_path / "fig4.png").stat().st_size > 0


def test_manual_edits_applied_last(standin, refs, p, result, tmp_path):
    victim = result.product.sort_values("area_km2").iloc[-1]
    new = shapely.Point(victim.centroid_lon, victim.centroid_lat)
    edits = gpd.GeoDataFrame({"action": ["remove"]}, geometry=[new.buffer(1e-5)], crs=4326)
    edits.to_file(tmp_path / "edits.gpkg")
    r = postprocess(standin, p, references=ReferenceSet(dict(refs)), edits=rules.read_edits(tmp_path / "edits.gpkg"))
    assert len(r.product) < len(result.product)
    assert not r.product.geometry.intersects(new).any()


@pytest.mark.bad_input
def test_empty_prediction_gives_an_empty_product(world, refs, p, tmp_path):
    info = world.tiles().set_index("tile")
    for t in ("T07", "T13"):
        e, epsg = info.loc[t, "bounds"], info.loc[t, "epsg"]
        write_mask(tmp_path / f"{t}_mask.tif", np.zeros((256, 256)), from_origin(e[0], e[3], 10, 10), f"EPSG:{epsg}")
    off = {k: "none" for k in refs}
    r = postprocess(tmp_path, p, references=ReferenceSet(resolve_paths(off, None)))
    assert len(r.product) == 0 and list(r.product.columns) == [*COLUMNS, "geometry"]
    write_outputs(r, tmp_path / "out")
    assert len(gpd.read_file(tmp_path / "out" / "lakes.gpkg")) == 0
    r = postprocess(tmp_path, p, references=ReferenceSet(dict(refs)))  # completion still adds reference lakes
    assert (r.product.source != "prediction").all()


@pytest.mark.bad_input
def test_prediction_folder_errors(tmp_path, p, refs):
    with pytest.raises(InputError, match="not found"):
        mask_tiles(tmp_path / "missing")
    with pytest.raises(InputError, match="no prediction masks"):
        mask_tiles(tmp_path)
    io.write_raster(
        tmp_path / "X_mask.tif", np.zeros((20, 20), np.float32), crs=UTM, transform=from_origin(0, 0, 10, 10)
    )
    with pytest.raises(InputError, match="uint8"):
        mask_tiles(tmp_path)
    with pytest.raises(ParameterError, match="tile_grid"):
        read_tile_grid(tmp_path / "grid.gpkg")


def test_table2_over_test_regions(result, world, tmp_path):
    """Table 2 from a samples folder whose labels are the truth: the river rule raises precision, keeps recall."""
    rows = []
    (tmp_path / "chips").mkdir()
    for k, t in enumerate(result.tiles):
        ids = io.read_raster(world.truth_path(t.name, "lake_id"))[0][0]
        for j, (r0, c0) in enumerate(((0, 0), (128, 128))):
            label = f"chips/R{k}{j}_label.tif"
            io.write_raster(
                tmp_path / label,
                (ids[r0 : r0 + 128, c0 : c0 + 128] > 0).astype(np.uint8),
                crs=UTM,
                transform=from_origin(0, 0, 10, 10),
            )
            rows.append(
                {
                    "region_id": f"R{k}{j}",
                    "tile": t.name,
                    "region_type": "AR",
                    "row_off": r0,
                    "col_off": c0,
                    "height": 128,
                    "width": 128,
                    "split": "test",
                    "label": label,
                    "geometry": box(0, 0, 1, 1),
                }
            )
    io.write_vector(gpd.GeoDataFrame(rows, crs=4326), tmp_path / "regions.gpkg", "Polygon")
    scores = evaluate.step_scores_regions(result.steps, result.tiles, tmp_path)
    table = evaluate.table2(scores)
    assert list(table.index) == ["before", "after", "change"]
    assert table.loc["change", "precision"] > 0 and abs(table.loc["change", "recall"]) < 1.0
    truth_scores = evaluate.step_scores_regions(result.steps, result.tiles, tmp_path, world=world)
    assert truth_scores.loc["river", "precision"] > truth_scores.loc["ocean", "precision"]


def test_fig4_shows_two_places():
    """``removed`` comes from another tile than ``split`` where one has a candidate, else from the same tile."""
    from lakepaper.figures.postprocess_examples import pick_fig4

    def ex(tile, rank):
        return {"tile": tile, "rank": rank}

    by_tile = {
        "T1": {"split": ex("T1", 9), "removed": ex("T1", 5e9)},
        "T2": {"split": ex("T2", 3), "removed": ex("T2", 2e9)},
    }
    chosen = pick_fig4(by_tile)
    assert chosen["split"]["tile"] == "T1" and chosen["removed"]["tile"] == "T2"
    only = pick_fig4({"T1": by_tile["T1"]})
    assert only["split"]["tile"] == only["removed"]["tile"] == "T1"
    assert pick_fig4({}) == {}
