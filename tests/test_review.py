"""The two manual reviews of the post-processing (paper 2.4): edit layers applied at the paper's places, and the
JupyterLab view that writes them."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely
from shapely.geometry import box

from lakepaper import paths
from lakepaper.errors import InputError, ParameterError
from lakepaper.postprocess import review, rules
from lakepaper.postprocess.pipeline import postprocess, reviewed_river, write_outputs
from lakepaper.postprocess.references import ReferenceSet
from lakepaper.stages import REGISTRY
from lakepaper.stages.deps import makefile_text

UTM = 32633


def _frame(geoms):
    return gpd.GeoDataFrame({"source": ["prediction"] * len(geoms)}, geometry=list(geoms), crs=UTM)


def _river_result():
    """Three polygons the river (y 480..520) cuts: c (GLAKES, two pieces), d (deleted), b (masked)."""
    river = shapely.LineString([(500000, 6000500), (502000, 6000500)]).buffer(20)
    lakes = _frame(
        [
            box(500900, 6000470, 501100, 6000560),  # c
            box(501300, 6000470, 501500, 6000530),  # d
            box(500500, 6000300, 500700, 6000510),  # b
        ]
    )
    glakes = np.array([box(500950, 6000540, 501050, 6000555)])
    kw = dict(glakes=glakes, reservoirs=np.array([]), dams=np.array([]), threshold=0.8, reservoir_distance_m=30.0)
    return rules.river_rule(lakes, np.array([river]), **kw), lakes


def _layer(actions, geoms, crs=UTM):
    return gpd.GeoDataFrame({"action": actions, "note": [""] * len(actions)}, geometry=list(geoms), crs=crs)


def test_restore_puts_back_a_deleted_residue_and_a_cut_lake_whole():
    r, lakes = _river_result()
    assert sorted(r.extra["cases"]["case"]) == ["b", "c", "d"] and len(r.frame) == 3  # c in two pieces, b
    edits = _layer(
        ["restore", "restore"], [box(501390, 6000490, 501410, 6000510), box(501000, 6000550, 501001, 6000551)]
    )
    out = rules.apply_river_review(r.frame, r.extra["cases"], edits.to_crs(3857), min_km2=0.0)
    assert out.counts == {"restored": 2, "removed": 0, "erased": 0}
    # d back whole, c whole instead of its two pieces, b as the mask left it
    assert sorted(np.round(out.frame.area)) == sorted([200 * 60, 200 * 90, 200 * 180])
    assert (
        sorted(out.frame.river_case) == ["b", "c", "d"]
        and (out.frame.area_ratio[out.frame.river_case != "b"] == 1).all()
    )
    assert len(out.extra["restored"]) == 2


def test_remove_in_the_river_review_deletes_what_the_mask_left():
    r, _ = _river_result()
    c_case = r.extra["cases"][r.extra["cases"]["case"] == "c"].geometry.iloc[0]
    edits = _layer(["remove"], [c_case.buffer(-1)])  # the polygon as the view saves it: shrunk
    out = rules.apply_river_review(r.frame, r.extra["cases"], edits, min_km2=0.0)
    assert out.counts["removed"] == 2 and len(out.frame) == 1 and out.frame.river_case.tolist() == ["b"]
    assert set(out.removed["reason"]) == {"river review remove"}


def test_reviewed_river_keeps_the_rule_cases_and_drops_restored_polygons_from_the_removed():
    r, _ = _river_result()
    p = {"min_lake_area_km2": 0.0}
    same = reviewed_river(r, None, p)
    assert same is r
    rv = reviewed_river(r, _layer(["restore"], [box(501390, 6000490, 501410, 6000510)]), p)
    assert len(r.removed) == 1 and len(rv.removed) == 0  # the residue was put back
    assert rv.counts["review_restored"] == 1 and rv.counts["polygons_out"] == 4
    assert rv.extra["cases"] is r.extra["cases"]


def test_each_review_takes_its_own_actions(tmp_path):
    _layer(["restore"], [box(0, 0, 10, 10)]).to_file(tmp_path / "r.gpkg")
    _layer(["add"], [box(0, 0, 10, 10)]).to_file(tmp_path / "a.gpkg")
    assert len(rules.read_edits(tmp_path / "r.gpkg", actions=rules.RIVER_ACTIONS)) == 1
    with pytest.raises(InputError, match=r"r\.gpkg.*unknown action.*'restore'"):
        rules.read_edits(tmp_path / "r.gpkg")  # the final review has no restore
    with pytest.raises(InputError, match="unknown action.*'add'.*restore"):
        rules.read_edits(tmp_path / "a.gpkg", actions=rules.RIVER_ACTIONS)


def test_resolve_takes_the_views_file_when_present(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "ROOT", tmp_path)
    assert review.resolve("river", "", "demo") is None
    target = review.default_path("river", "demo")
    assert target == tmp_path / "labels" / "demo" / "river_review.gpkg"
    target.parent.mkdir(parents=True)
    _layer(["restore"], [box(0, 0, 10, 10)]).to_file(target)
    assert review.resolve("river", "", "demo") == target
    assert review.resolve("river", "none", "demo") is None
    with pytest.raises(InputError, match="river_edits: review layer not found"):
        review.resolve("river", str(tmp_path / "nope.gpkg"), "demo")
    with pytest.raises(ParameterError, match="review"):
        review.resolve("middle", "", "demo")


def test_stage_05_reruns_when_a_review_layer_changes():
    assert set(REGISTRY["05_postprocess"].labels) == {r.file for r in review.REVIEWS.values()}
    text = makefile_text("demo")
    line = next(x for x in text.splitlines() if x.startswith("STAGE_CODE_05_postprocess"))
    assert "$(wildcard labels/demo/river_review.gpkg labels/demo/final_review.gpkg)" in line
    other = next(x for x in text.splitlines() if x.startswith("STAGE_CODE_04_predict"))
    assert "labels/" not in other


# --- on a post-processed world -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    """Stage 05's outputs on four tiny tiles (stand-in prediction), as the review view reads them."""
    from lakepaper import params
    from lakepaper.postprocess.references import resolve_paths
    from tests.builders import TILES, truth_world, write_standin

    root = tmp_path_factory.mktemp("review")
    world = truth_world(root / "world", TILES)
    write_standin(world, root / "predict")
    p = params.resolve("tiny")
    refs = ReferenceSet(dict(resolve_paths({}, world.references)))
    r = postprocess(root / "predict", p, references=refs)
    write_outputs(r, root / "05")
    return root, p, refs, r


def test_decisions_are_saved_replaced_and_withdrawn(done, tmp_path):
    root, *_ = done
    todo = review.items("river", root / "05")
    order = {"d": 0, "c": 1, "b": 2, "r": 3, "a": 4, "R": 5}
    ranks = todo["case"].map(order).tolist()
    assert len(todo) > 1 and ranks == sorted(ranks)  # deleted residues first, then the masked ones
    layer = tmp_path / "river.gpkg"
    review.decide("river", layer, todo.iloc[0], "restore")
    review.decide("river", layer, todo.iloc[1], "remove")
    review.decide("river", layer, todo.iloc[0], "remove")  # changed my mind
    saved = review.read_layer("river", layer)
    assert sorted(saved["action"]) == ["remove", "remove"] and len(saved) == 2
    review.decide("river", layer, todo.iloc[1], None)
    assert len(review.read_layer("river", layer)) == 1
    with pytest.raises(ParameterError, match="add"):
        review.decide("river", layer, todo.iloc[0], "add")
    final = review.items("final", root / "05")
    assert len(final) and {"key", "mark", "label"} <= set(final.columns)


def test_the_river_review_restores_in_the_pass(done, tmp_path):
    """A polygon the river mask cut, restored in the view, is whole in the next run's product."""
    root, p, refs, r = done
    todo = review.items("river", root / "05")
    item = todo[todo["case"].isin(["c", "d", "b"])].iloc[0]
    layer = tmp_path / "river.gpkg"
    review.decide("river", layer, item, "restore")
    again = postprocess(root / "predict", p, references=refs, river_edits=review.read("river", layer))

    def area_at(product):
        return float(product.loc[product.geometry.intersects(item.geometry), "area_km2"].sum())

    assert area_at(r.product) < 0.99 * item["area_km2"] <= area_at(again.product)
    assert again.counts.loc[again.counts.rule == "river", "review_restored"].sum() == 1


def test_the_view_saves_a_click(done, tmp_path):
    pytest.importorskip("ipywidgets")
    import matplotlib

    matplotlib.use("Agg")
    root, *_ = done
    layer = tmp_path / "final.gpkg"
    box_ = review.review_view("final", root / "05", None, layer)
    box_.decide("remove")
    saved = review.read_layer("final", layer)
    assert saved["action"].tolist() == ["remove"]
    first = review.items("final", root / "05").iloc[0]
    assert saved.geometry.iloc[0].within(first.geometry)
