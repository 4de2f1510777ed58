"""lakepaper.references: one registry of the reference datasets, read in their published schemas.

The fixtures here are written in each dataset's *published* layout (column names and types from its
documentation, cited in :mod:`lakepaper.references`), not from the simulated world's files.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
from published import write_published
from rasterio.transform import from_origin

from lakepaper import compare, params, prereqs
from lakepaper import references as registry
from lakepaper.errors import InputError, ParameterError
from lakepaper.postprocess import references as pp
from lakepaper.postprocess import rules

UTM = "EPSG:32633"  # 15 E
BOUNDS = (500000.0, 0.0, 502000.0, 2000.0)  # 2 x 2 km at the equator


@pytest.fixture
def published(tmp_path):
    """Small files in the published schemas of GLAKES, PLD, HydroLAKES, GRWL, GeoDAR, OSM, Global-AI, GSW."""
    return write_published(tmp_path / "references", crs=UTM, origin=BOUNDS[:2], size=BOUNDS[2] - BOUNDS[0])


# --- one registry ----------------------------------------------------------------------------------------


def test_every_list_reads_the_one_registry():
    assert all(isinstance(r, registry.Dataset) for r in prereqs.REFERENCES)
    assert {r.name for r in prereqs.REFERENCES} == {n for n, d in registry.DATASETS.items() if not d.optional}
    assert registry.for_stage("05_postprocess") == pp.REFERENCES
    for name in ("glakes", "pld", "hydrolakes"):
        d = registry.DATASETS[name]
        assert compare.PRESETS[name] == {"id": d.id_col, "area": d.area_col}
    for d in registry.DATASETS.values():
        assert d.url and d.cite and d.how and d.real
        assert (d.raster is None) == (d.kind != "raster")
    assert registry.DATASETS["aridity"].raster.scale == 10000 == params.resolve("paper")["aridity_scale"]
    assert registry.DATASETS["occurrence"].raster.nodata == 255


def test_empty_means_simulated_with_a_world_else_real(tmp_path, monkeypatch):
    monkeypatch.setenv("LAKEPAPER_REFERENCES", str(tmp_path / "refs"))
    world = tmp_path / "00_world" / "references"
    (world / "aridity_index").mkdir(parents=True)
    r = registry.resolve("aridity", "", world)
    assert r.path == world / "aridity_index" and r.origin == "simulated"
    with pytest.raises(ParameterError, match="'glakes'.*not found.*doi.org") as e:
        registry.resolve("glakes", "", None)  # the real file, not laid out
    assert str(tmp_path / "refs" / "glakes" / "glakes.gpkg") in str(e.value)
    real = tmp_path / "refs" / "glakes" / "glakes.gpkg"
    real.parent.mkdir(parents=True)
    real.write_bytes(b"x")
    assert registry.resolve("glakes", "", None).origin == "real"
    with pytest.raises(ParameterError, match="'glakes'.*give the file"):
        registry.resolve("glakes", "", None, real=False)
    assert registry.resolve("glakes", "none", None).path is None


# --- the published schemas read through the registry ----------------------------------------------------


def test_published_vectors_read_through_the_registry(published):
    given = {
        "glakes": published / "glakes.gpkg",
        "pld": published / "pld.gpkg",
        "grwl": published / "grwl.shp",
        "geodar_dams": published / "GeoDAR_v11_dams.shp",
        "osm_land": published / "land_polygons.shp",
    }
    paths = pp.resolve_paths({n: str(given.get(n, "none")) for n in pp.REFERENCES}, None)
    refs = pp.ReferenceSet(paths)
    g = refs.vector("glakes", bounds=BOUNDS, crs=UTM)
    assert list(g.columns[:2]) == ["Lake_id", "Lake_type"] and sorted(g.Lake_id) == [1001, 1002]
    assert g.crs == UTM and np.allclose(sorted(g.area / 1e6), [0.09, 0.25], rtol=1e-3)
    assert sorted(refs.vector("pld", bounds=BOUNDS, crs=UTM).lake_id) == [1120000001, 1120000002]
    rivers = pp.river_polygons(
        refs.vector("osm_rivers", bounds=BOUNDS, crs=UTM), refs.vector("grwl", bounds=BOUNDS, crs=UTM)
    )
    assert len(rivers) == 1 and rivers[0].area == pytest.approx(
        2000 * 120 + np.pi * 60**2, rel=0.01
    )  # width_m / 2, round caps
    assert len(refs.vector("geodar_dams", bounds=BOUNDS, crs=UTM, columns=())) == 1
    assert len(refs.vector("osm_land", bounds=BOUNDS, crs=UTM)) == 1


def test_published_rasters_scale_and_nodata(published):
    refs = pp.ReferenceSet(
        pp.resolve_paths(
            {n: "none" for n in pp.REFERENCES}
            | {"aridity": str(published / "ai_v3_yr.tif"), "occurrence": str(published / "gsw")},
            None,
        )
    )
    t = from_origin(14.99, 0.03, 1 / 120, 1 / 120)
    ai = refs.raster("aridity", (4, 4), t, "EPSG:4326")
    assert ai.mask[0, 0] and not ai.mask[1:, 1:].any()
    arid = rules.arid(ai, threshold=0.2, scale=registry.DATASETS["aridity"].raster.scale)
    assert not arid[0, 0] and arid[1:, 1:].all()  # AI 0.15 < 0.2; the nodata cell is not arid
    occ = refs.raster("occurrence", (80, 80), from_origin(14.99, 0.03, 0.0005, 0.0005), "EPSG:4326")
    assert occ.mask[:, :40].all() and not occ.mask[:, 40:].any()  # 255 untagged: no data all the same
    assert (occ[:, 40:] == 10).all()


def test_published_catalogues_in_stage_08(published):
    h = compare.read_catalogue(published / "HydroLAKES_polys_v10.shp", preset="hydrolakes")
    assert sorted(h.lake_id) == [7, 8] and sorted(h.area_km2) == [0.1, 0.26]
    g = compare.read_catalogue(published / "glakes.gpkg", preset="glakes")
    assert sorted(g.area_km2) == [0.09, 0.25]  # Area_bound, not Area_PW
    p = compare.read_catalogue(published / "pld.gpkg")  # guessed from the published columns
    assert sorted(p.lake_id) == [1120000001, 1120000002] and sorted(p.area_km2) == [0.09, 0.25]


# --- a user's column mapping --------------------------------------------------------------------------------


def _renamed(published, tmp_path):
    g = gpd.read_file(published / "glakes.gpkg").rename(
        columns={"Lake_id": "ID", "Lake_type": "TYPE", "Area_bound": "AREA"}
    )
    g.to_file(tmp_path / "my_glakes.gpkg")
    return tmp_path / "my_glakes.gpkg"


def test_user_column_mapping(published, tmp_path, monkeypatch):
    mine = _renamed(published, tmp_path)
    paths = pp.resolve_paths({n: "none" for n in pp.REFERENCES} | {"glakes": str(mine)}, None)
    refs = pp.ReferenceSet(paths, columns={"glakes": {"Lake_id": "ID", "Lake_type": "TYPE"}})
    g = refs.vector("glakes", bounds=BOUNDS, crs=UTM)
    assert {"Lake_id", "Lake_type"} <= set(g.columns) and sorted(g.Lake_type) == [1, 2]
    c = compare.read_catalogue(mine, preset="glakes", columns={"Lake_id": "ID", "Area_bound": "AREA"})
    assert sorted(c.lake_id) == [1001, 1002] and sorted(c.area_km2) == [0.09, 0.25]
    # the same through the environment, as a stage run reads it
    monkeypatch.setenv("LAKEPAPER_REF_GLAKES_COLUMNS", "Lake_id=ID, Lake_type=TYPE,Area_bound=AREA")
    assert sorted(pp.ReferenceSet(paths).vector("glakes", bounds=BOUNDS, crs=UTM).Lake_id) == [1001, 1002]
    assert registry.resolve("glakes", str(mine), None).record()["columns"]["Lake_id"] == "ID"
    assert sorted(compare.read_catalogue(mine, preset="glakes").lake_id) == [1001, 1002]
    with pytest.raises(ParameterError, match="'Lake_ID' is not a published column of glakes"):
        registry.columns_for("glakes", {"Lake_ID": "ID"})
    monkeypatch.setenv("LAKEPAPER_REF_GLAKES_COLUMNS", "Lake_id")
    with pytest.raises(ParameterError, match="LAKEPAPER_REF_GLAKES_COLUMNS"):
        registry.columns_for("glakes")


# --- a wrong schema -------------------------------------------------------------------------------------


@pytest.mark.bad_input
def test_wrong_schema_names_the_file_and_the_column(published, tmp_path):
    mine = _renamed(published, tmp_path)
    paths = pp.resolve_paths({n: "none" for n in pp.REFERENCES} | {"glakes": str(mine)}, None)
    with pytest.raises(InputError, match=r"glakes: column 'Lake_id'.* missing") as e:
        pp.ReferenceSet(paths).vector("glakes", bounds=BOUNDS, crs=UTM)
    assert e.value.path == str(mine) and "LAKEPAPER_REF_GLAKES_COLUMNS" in str(e.value)
    with pytest.raises(InputError, match=r"'Lake_type' \(mapped to 'KIND'\) missing") as e:
        pp.ReferenceSet(paths, columns={"glakes": {"Lake_id": "ID", "Lake_type": "KIND"}}).vector(
            "glakes", bounds=BOUNDS, crs=UTM
        )
    with pytest.raises(InputError, match=r"'lake_id'.*pld's published schema") as e:
        compare.read_catalogue(published / "glakes.gpkg", preset="pld")
    assert e.value.path == str(published / "glakes.gpkg")
    # a GLAKES file given as PLD: PLD's lake_id is missing
    paths = pp.resolve_paths({n: "none" for n in pp.REFERENCES} | {"pld": str(published / "glakes.gpkg")}, None)
    with pytest.raises(InputError, match="pld: column 'lake_id'"):
        pp.ReferenceSet(paths).vector("pld", bounds=BOUNDS, crs=UTM)


def test_reference_record_in_the_manifest(published):
    r = registry.resolve("pld", str(published / "pld.gpkg"), None)
    rec = r.record()
    assert rec["origin"] == "given" and rec["bytes"] == (published / "pld.gpkg").stat().st_size
    assert "columns" not in rec  # the published names: nothing to record
    assert registry.resolve("pld", "none", None).record() is None


def test_reference_columns_parameter_of_stages_05_and_08():
    from lakepaper import stages
    from lakepaper.errors import ParameterError as PE
    from lakepaper.references import column_overrides

    # a notebook parameter, so make records it and reruns the stage when it changes
    for stage in ("05_postprocess", "08_comparison"):
        assert stages.declared_parameters(stage)["reference_columns"] == {}
        stages.check_parameters(stage, {"reference_columns": {"glakes": {"Lake_id": "ID"}}})
    assert column_overrides({"glakes": {"Lake_id": "ID"}}, ("glakes", "pld")) == {"glakes": {"Lake_id": "ID"}}
    with pytest.raises(PE, match="reference_columns.*'grwl' is not a reference dataset of this stage"):
        column_overrides({"grwl": {"width_m": "W"}}, ("glakes", "pld"))
    with pytest.raises(PE, match="reference_columns"):
        column_overrides({"glakes": "Lake_id=ID"}, ("glakes",))
