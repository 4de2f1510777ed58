"""Comparing catalogues (lakepaper.compare) and the figures of stages 06-08 (drawn offline)."""

from __future__ import annotations

import socket
import urllib.request

import matplotlib

matplotlib.use("Agg")

import geopandas as gpd  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import shapely  # noqa: E402
from rasterio.transform import from_origin  # noqa: E402

from lakepaper import compare, io, metrics, stats  # noqa: E402
from lakepaper.errors import InputError, ParameterError  # noqa: E402

EDGES = (0.005, 0.01, 0.03, 0.1, 1.0, 100.0, 10000.0)


@pytest.fixture
def offline(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access blocked by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    yield
    plt.close("all")


def lake(x, y, km2):
    """A square lake of about ``km2`` centred at lon x, lat y."""
    half = np.sqrt(km2) / 2 / 111.32
    return shapely.box(x - half / np.cos(np.radians(y)), y - half, x + half / np.cos(np.radians(y)), y + half)


@pytest.fixture
def files(tmp_path):
    """Small look-alikes of GLAKES (Shapefile), PLD (Shapefile), a product (GeoParquet) and a plain GeoPackage."""
    glakes = gpd.GeoDataFrame(
        {"Lake_id": [1, 2], "Area_bound": [0.05, 2.0], "Lake_type": [1, 2]},
        geometry=[lake(10, 60, 0.05), lake(10.5, 60.2, 2.0)],
        crs=4326,
    )
    pld = gpd.GeoDataFrame(
        {"lake_id": [11, 12, 13], "ref_area": [0.012, 0.05, 1.8]},
        geometry=[lake(11, 61, 0.012), lake(10, 60, 0.05), lake(10.5, 60.2, 1.8)],
        crs=4326,
    )
    product = gpd.GeoDataFrame(
        {"id": [1, 2, 3, 4], "area_km2": [0.006, 0.012, 0.05, 2.0]},
        geometry=[lake(12, 62, 0.006), lake(11, 61, 0.012), lake(10, 60, 0.05), lake(10.5, 60.2, 2.0)],
        crs=4326,
    )
    plain = gpd.GeoDataFrame({"name": ["a"]}, geometry=[lake(5, 5, 1.0)], crs=4326).to_crs(32631)
    io.write_vector(glakes, tmp_path / "glakes.shp", "Polygon")
    io.write_vector(pld, tmp_path / "pld.shp", "Polygon")
    product.to_parquet(tmp_path / "lakes.parquet")
    io.write_vector(plain, tmp_path / "plain.gpkg", "Polygon")
    return tmp_path


def test_read_catalogue_knows_the_layouts(files):
    g = compare.read_catalogue(files / "glakes.shp")
    assert list(g.columns) == ["lake_id", "area_km2", "geometry"] and g.crs.to_epsg() == 4326
    assert g.lake_id.tolist() == [1, 2] and g.area_km2.tolist() == [0.05, 2.0]
    p = compare.read_catalogue(files / "pld.shp")
    assert p.area_km2.tolist() == [0.012, 0.05, 1.8]
    prod = compare.read_catalogue(files / "lakes.parquet")
    assert prod.lake_id.tolist() == [1, 2, 3, 4]
    # any columns by name; no area column: ellipsoidal areas; any CRS
    plain = compare.read_catalogue(files / "plain.gpkg")
    assert plain.lake_id.tolist() == [1] and plain.area_km2.iloc[0] == pytest.approx(1.0, rel=0.01)
    named = compare.read_catalogue(files / "glakes.shp", id_col="Lake_type", area_col="Area_bound")
    assert named.lake_id.tolist() == [1, 2]
    box = compare.read_catalogue(files / "glakes.shp", bbox=(9.9, 59.9, 10.1, 60.1))
    assert box.lake_id.tolist() == [1]


def test_read_catalogue_errors(files):
    with pytest.raises(InputError, match="not found"):
        compare.read_catalogue(files / "missing.shp")
    with pytest.raises(InputError, match="'Hylak_id' not in the file"):
        compare.read_catalogue(files / "glakes.shp", preset="hydrolakes")
    with pytest.raises(InputError, match="'size' not in the file"):
        compare.read_catalogue(files / "pld.shp", area_col="size")
    with pytest.raises(ParameterError):
        compare.read_catalogue(files / "pld.shp", preset="glwd")
    (files / "broken.gpkg").write_text("not a geopackage")
    with pytest.raises(InputError, match="readable"):
        compare.read_catalogue(files / "broken.gpkg")


def test_standardise_refuses_missing_columns_and_keeps_ids():
    f = gpd.GeoDataFrame({"x": [1]}, geometry=[lake(0, 0, 0.1)], crs=4326)
    with pytest.raises(InputError, match="area_col"):
        compare.standardise(f, area_col="area")
    s = compare.standardise(f, id_col="x")
    assert s.lake_id.tolist() == [1] and s.area_km2.iloc[0] == pytest.approx(0.1, rel=0.01)


def test_size_group_comparison_by_hand(files):
    cats = {
        n: compare.read_catalogue(files / f)
        for n, f in (("GLAKESplus", "lakes.parquet"), ("GLAKES", "glakes.shp"), ("PLD", "pld.shp"))
    }
    t = compare.size_group_comparison(cats, EDGES)
    counts = compare.wide(t, "count")
    assert list(counts.columns) == ["GLAKESplus", "GLAKES", "PLD"]
    assert counts.loc["0.005-0.01"].tolist() == [1, 0, 0]
    assert counts.loc["0.01-0.03"].tolist() == [1, 0, 1]
    assert counts.loc["1-100"].tolist() == [1, 1, 1]
    assert compare.wide(t, "area_km2").loc["1-100", "PLD"] == pytest.approx(1.8)
    # LakeCells and plain area arrays work too
    t2 = compare.size_group_comparison({"a": compare.locate_all(cats)["PLD"], "b": np.array([0.02])}, EDGES)
    assert compare.wide(t2, "count").loc["0.01-0.03"].tolist() == [1, 1]


def test_profiles_and_cell_difference(files):
    prod = compare.read_catalogue(files / "lakes.parquet")
    pld = compare.read_catalogue(files / "pld.shp")
    lat = compare.profiles_by_group({"A": prod, "B": pld}, axis="lat")
    assert set(lat.group) == set(compare.FIG9_GROUPS)
    assert lat.groupby("catalogue")["count"].sum().to_dict() == {"A": 4, "B": 3}
    row = lat[(lat.catalogue == "A") & (lat.group == "0.005-0.01") & (lat["count"] > 0)]
    assert row.lo.tolist() == [62.0]
    d = compare.cell_difference(prod, pld, lo=0.01, hi=0.1)
    assert d["count_diff"].sum() == 0 and d["count_a"].sum() == 2
    assert d["area_diff"].sum() == pytest.approx(0.012 + 0.05 - 0.012 - 0.05)
    d = compare.cell_difference(prod, pld, lo=0.005, hi=0.01)
    assert d["count_diff"][152, 192] == 1  # 62 N, 12 E
    with pytest.raises(ParameterError):
        compare.cell_difference(stats.locate(prod, grid_deg=1.0), stats.locate(pld, grid_deg=0.5))


def test_drop_clip_and_unmatched(files):
    prod = compare.read_catalogue(files / "lakes.parquet")
    pld = compare.read_catalogue(files / "pld.shp")
    kept = compare.drop_in_box(prod, (9.5, 59.5, 10.7, 60.5))
    assert kept.lake_id.tolist() == [1, 2]
    assert compare.drop_in_box(prod, None) is prod
    assert compare.clip(prod, (10.9, 60.9, 11.1, 61.1)).lake_id.tolist() == [2]
    u = compare.unmatched(prod, pld, EDGES)
    assert u.loc["0.005-0.01", "count_unmatched"] == 1 and u.loc["0.01-0.03", "count_unmatched"] == 0
    assert u.loc["0.005-0.01", "area_km2_unmatched"] == pytest.approx(0.006)
    assert u.loc["1-100", "count_unmatched_share"] == 0
    assert compare.unmatched(prod, pld.iloc[:0], EDGES)["count_unmatched"].sum() == 4


# --- figures, drawn without the network -------------------------------------------------------------


def test_figures_of_stages_07_and_08(offline, files, tmp_path):
    from lakepaper.figures import save
    from lakepaper.figures.comparison import MapPanel, fig7, fig8, fig9
    from lakepaper.figures.distribution import fig6

    read = compare.read_catalogue
    cats = {
        "GLAKESplus": read(files / "lakes.parquet"),
        "PLD": read(files / "pld.shp"),
        "GLAKES": read(files / "glakes.shp"),
    }
    cells = compare.locate_all(cats)
    save(fig6(cells["GLAKESplus"], title="product"), tmp_path / "fig6.png", formats=("png", "pdf"))
    save(fig7(compare.size_group_comparison(cells, EDGES)), tmp_path / "fig7.png")
    lon = compare.profiles_by_group(cells, axis="lon")
    lat = compare.profiles_by_group(cells, axis="lat")
    save(fig9(lon, lat, compare.cell_difference(cells["GLAKESplus"], cells["PLD"])), tmp_path / "fig9.png")
    rgb = np.random.default_rng(0).random((20, 30, 3))
    panel = MapPanel("ponds", (9.9, 59.9, 10.8, 60.4), cats, ndwi=rgb[..., 0], rgb=rgb, extent=(9.9, 10.8, 59.9, 60.4))
    save(fig8([panel, MapPanel("empty", (0, 0, 0.1, 0.1), cats)]), tmp_path / "fig8.png")
    for name in ("fig6.png", "fig6.pdf", "fig7.png", "fig8.png", "fig9.png"):
        assert (tmp_path / name).stat().st_size > 10_000


def test_figures_of_stage_06(offline, tmp_path):
    from lakepaper.figures import save
    from lakepaper.figures.accuracy import fig5, table1_bars

    rng = np.random.default_rng(0)
    regions = []
    for i, kind in enumerate(("NR", "AR", "SL")):
        label = np.zeros((60, 70), np.uint8)
        label[10:30, 10:40] = 1
        label[40:42, 50:52] = 1
        pred = label.copy()
        pred[rng.random(pred.shape) < 0.01] = 1
        regions.append(metrics.Region(f"R{i}", kind, label, pred))
    _, table = metrics.patch_table(regions, 32)
    lab, pre = metrics.lake_tables(regions, residues={"R1": pred.astype(bool)})
    assert pre.river_residue.any()
    save(fig5(lab, pre, metrics.lake_level_summary(lab, pre, EDGES)), tmp_path / "fig5.png")
    save(table1_bars(table, {"IoU": 87.5}), tmp_path / "table1.png")
    assert (tmp_path / "fig5.png").stat().st_size > 10_000


def test_composite_basemap_reads_a_composite(tmp_path):
    from lakepaper.composite.local import COUNT_BAND
    from lakepaper.figures.comparison import composite_basemap

    bands = np.full((6, 8, 10), 100, np.int16)
    bands[4] = 500  # NDWI 0.5
    bands[5] = 3  # clear observations
    names = ["B2", "B3", "B4", "B11", "NDWI", COUNT_BAND]
    io.write_raster(
        tmp_path / "T01.tif",
        bands,
        crs="EPSG:32633",
        transform=from_origin(500000, 6000000, 10, 10),
        nodata=-32768,
        band_names=names,
        tags={"SCALE": 1000},
    )
    bm = composite_basemap(tmp_path / "T01.tif")
    assert bm["ndwi"].shape == (8, 10) and np.allclose(bm["ndwi"], 0.5)
    assert bm["rgb"].shape == (8, 10, 3) and bm["extent"] == (500000, 500100, 5999920, 6000000)
    assert pd.api.types.is_float_dtype(bm["rgb"].dtype) and bm["crs"].to_epsg() == 32633


def test_cell_table_unmatched_table_and_summary(files):
    prod = compare.read_catalogue(files / "lakes.parquet")
    pld = compare.read_catalogue(files / "pld.shp")
    glakes = compare.read_catalogue(files / "glakes.shp")
    t = compare.cell_table(compare.cell_difference(prod, pld, lo=0.01, hi=0.1), "P", "PLD")
    assert t.columns.tolist() == [
        *("lon", "lat", "count_P", "count_PLD", "count_diff", "area_P", "area_PLD", "area_diff"),
    ]
    assert t[["lon", "lat"]].values.tolist() == [[10.0, 60.0], [11.0, 61.0]]  # grid order, from the south
    assert t.count_P.tolist() == [1, 1] and t.count_diff.tolist() == [0, 0]
    assert (t.area_P == t.area_PLD).all()  # the same lakes; areas are split over the cells a lake overlaps
    u = compare.unmatched_table(prod, {"PLD": pld, "GLAKES": glakes}, EDGES)
    assert u.columns[:2].tolist() == ["reference", "size_group"] and u.reference.unique().tolist() == ["PLD", "GLAKES"]
    by = u.set_index(["reference", "size_group"]).count_unmatched
    assert by["PLD", "0.005-0.01"] == 1 and by["GLAKES", "0.01-0.03"] == 1  # GLAKES has no lake at 61 N
    s = compare.summary({"P": prod, "none": prod.iloc[:0]}, {"P": "lakes.parquet"})
    assert s.loc["P", "lakes"] == 4 and s.loc["P", "smallest km2"] == pytest.approx(0.006)
    assert s.loc["none", "lakes"] == 0 and pd.isna(s.loc["none", "smallest km2"]) and s.loc["none", "file"] == ""


def test_fig8_regions_picked_on_the_world_or_given(files, tmp_path):
    from lakepaper.figures.comparison import region_panels, world_panels, world_tiles

    tiles = pd.DataFrame(
        {
            "tile": ["T1", "T2", "T3", "T4", "T5"],
            "biome": ["arid", "river", "ponds", "river", "arid"],
            "lat": [30.0, 50.0, 60.0, 40.0, 31.0],
        }
    )
    assert world_tiles(tiles) == [
        ("ponds", "T3"),
        ("a salt flat", "T1"),
        ("lakes by a river", "T2"),  # the northernmost
        ("seasonal lakes", "T5"),
    ]
    assert world_tiles(tiles[tiles.biome == "river"]) == [("lakes by a river", "T2")]
    assert world_panels(tiles, tmp_path / "no composites", {}) == []  # tiles without a composite: left out
    cats = {"P": compare.read_catalogue(files / "lakes.parquet")}
    panels = region_panels([["ponds", 9.9, 59.9, 10.8, 60.4], ["b", 0, 0, 1, 1]], [""], cats, right=("P",))
    assert [(p.title, p.box, p.ndwi) for p in panels] == [
        ("ponds", (9.9, 59.9, 10.8, 60.4), None),
        ("b", (0, 0, 1, 1), None),
    ]
    assert panels[0].right == ("P",)


def test_stage_08_on_given_files(offline, files, tmp_path):
    """The whole stage on given catalogues and a given region: no earlier stage, no world."""
    from lakepaper.stages import comparison
    from lakepaper.stages.context import Context

    ctx = Context.create(
        "08_comparison",
        profile="tiny",
        root=tmp_path / "build",
        quiet=True,
        product=str(files / "lakes.parquet"),
        glakes=str(files / "glakes.shp"),
        pld=str(files / "pld.shp"),
        truth="none",
        exclude_box=[11.5, 61.5, 12.5, 62.5],
        fig8_regions=[["ponds", 9.9, 59.9, 10.8, 60.4]],
    )
    r = comparison.run(ctx)
    assert r.manifest["inputs"] == {} and r.manifest["lakes"] == {"GLAKESplus": 4, "GLAKES": 2, "PLD": 3}
    assert r.manifest["parameters"]["exclude_box"] == [11.5, 61.5, 12.5, 62.5]
    assert set(r.figures) == {"fig7_size_groups", "fig8_regions", "fig9_vs_pld"}
    assert "left out of Fig. 9 (point inside the box (11.5, 61.5, 12.5, 62.5)): GLAKESplus 1, PLD 0" in r.notes
    assert not any("Caspian" in n for n in r.notes)  # no lake there: nothing said
    assert r.manifest["parameters"]["exclude_caspian"] is True
    assert r.manifest["parameters"]["fig9_exclude_box"] == [46.0, 36.0, 55.5, 47.5]
    small = r.manifest["below_0_01km2"]  # the paper's "not in PLD" below 0.01 km2: all of them
    assert small["lakes"] == 1 and small["touching_no_pld"] == 1 and small["area_km2"] == pytest.approx(0.006)
    assert r.manifest["above_10000km2"] == {"GLAKESplus": 0, "GLAKES": 0, "PLD": 0}
    cells = pd.read_csv(r.out / "fig9c_cells_0.01-0.1km2.csv")
    assert cells.columns[2:4].tolist() == ["count_GLAKESplus", "count_PLD"] and len(cells) == 2
    assert r.table("unmatched").reference.unique().tolist() == ["GLAKES", "PLD"]
    assert (r.out / "figures" / "fig8_regions.pdf").exists()


def test_caspian_left_out_of_fig9_but_not_the_small_lakes_around_it():
    """The paper's Fig. 9 leaves out the Caspian Sea (and Garabogazkol), not the Volga delta's ponds."""
    from lakepaper import params
    from lakepaper.stages.comparison import _drop_large_in_box

    cat = gpd.GeoDataFrame(
        {"lake_id": [1, 2, 3, 4], "area_km2": [371000.0, 18000.0, 0.5, 2000.0]},
        geometry=[lake(50.5, 42.0, 4.0), lake(53.4, 41.2, 2.0), lake(47.8, 46.3, 0.5), lake(10, 60, 2.0)],
        crs=4326,
    )
    P = params.resolve("paper")
    kept = _drop_large_in_box(cat, tuple(P["fig9_exclude_box"]), P["fig9_exclude_min_km2"])
    assert kept.lake_id.tolist() == [3, 4]  # the delta's pond and the large lake outside the box stay
    assert _drop_large_in_box(cat.iloc[2:], (46.0, 36.0, 55.5, 47.5), 1000.0).lake_id.tolist() == [3, 4]


def test_fig8_defaults_per_profile_and_basemaps_from_the_tile_grid(tmp_path):
    from lakepaper import params
    from lakepaper.stages.comparison import _basemaps_from_grid, _tile_grid

    paper = params.resolve("paper")["fig8_regions"]
    assert len(paper) == 4 and [r[0][:3] for r in paper] == ["(a)", "(b)", "(c)", "(d)"]
    assert "Uyuni" in paper[1][0] and paper[1][2] < -19 and paper[3][1] < -60  # south, west: real places
    assert params.resolve("tiny")["fig8_regions"] == () == params.resolve("demo")["fig8_regions"]
    grid = gpd.GeoDataFrame(
        {"tile": ["A", "B"], "path": ["tiles/A.tif", "tiles/B.tif"]},
        geometry=[shapely.box(0, 0, 1, 1), shapely.box(113, 29, 114, 30)],
        crs=4326,
    )
    grid.to_file(tmp_path / "tile_grid.gpkg")
    g = _tile_grid(tmp_path)
    assert g.path.tolist() == [str(tmp_path / "tiles/A.tif"), str(tmp_path / "tiles/B.tif")]
    regions = [list(r) for r in paper]
    assert _basemaps_from_grid(regions, [], g) == [str(tmp_path / "tiles/B.tif"), "", "", ""]
    assert _basemaps_from_grid(regions, ["given.tif"], g)[0] == "given.tif"
    assert _basemaps_from_grid(regions, [], None) == ["", "", "", ""]
    assert _tile_grid(tmp_path / "none") is None
