"""Truth only where there is truth (issue 17, item 5): stages 07 and 08 compare with the simulated world's
truth, and take its reference files as defaults, only when the run's imagery source, as stage 01 recorded it
(and stage 05 copied it), is the simulated world; :mod:`lakepaper.stages.provenance` reads the record.

Each test writes a small fake build (manifests by :func:`lakepaper.io.write_manifest`, catalogues as
GeoParquet/Shapefile) and runs the stage through its ``run(ctx)``, as its notebook does.
"""

from __future__ import annotations

import json
import time

import geopandas as gpd
import matplotlib
import numpy as np
import pytest
import shapely

matplotlib.use("Agg")

from lakepaper import io  # noqa: E402
from lakepaper.errors import ParameterError  # noqa: E402
from lakepaper.stages import comparison, distribution, provenance  # noqa: E402
from lakepaper.stages.context import Context  # noqa: E402

STAC = {"source": "stac", "stac": "https://earth-search.aws.element84.com/v1", "area": [10, 59, 13, 63]}
WORLD = {"source": "world"}


def _lake(x, y, km2):
    half = np.sqrt(km2) / 2 / 111.32
    return shapely.box(x - half / np.cos(np.radians(y)), y - half, x + half / np.cos(np.radians(y)), y + half)


def _lakes(areas, **columns):
    geoms = [_lake(10 + i, 60 + i / 2, a) for i, a in enumerate(areas)]
    return gpd.GeoDataFrame({**columns, "area_km2": areas}, geometry=geoms, crs=4326)


def _manifest(folder, stage, extra=None):
    folder.mkdir(parents=True, exist_ok=True)
    io.write_manifest(folder, stage=stage, parameters={"profile": "tiny"}, inputs={}, started=time.time(), extra=extra)


def fake_build(root, *, source, via="05_postprocess"):
    """A world (world.json, truth lakes, references) and a finished stage 05 (its product); ``source``: the
    imagery record stage 01 wrote (None: not recorded), written to stage 01 (``via="01_composite"``) or, as
    stage 05's copy, to stage 05."""
    world = root / "00_world"
    (world / "truth").mkdir(parents=True)
    (world / "world.json").write_text("{}")
    _lakes([0.006, 0.02, 0.05, 0.3, 2.0], lake_id=[1, 2, 3, 4, 5]).to_parquet(world / "truth" / "lakes.parquet")
    refs = world / "references"
    refs.mkdir()
    glakes = _lakes([0.05, 2.0], Lake_id=[1, 2]).rename(columns={"area_km2": "Area_bound"})
    io.write_vector(glakes, refs / "glakes.shp", "Polygon")
    pld = _lakes([0.012, 0.05], lake_id=[11, 12]).rename(columns={"area_km2": "ref_area"})
    io.write_vector(pld, refs / "pld.shp", "Polygon")
    _manifest(world, "00_world")
    post = root / "05_postprocess"
    post.mkdir()
    _lakes([0.006, 0.02, 0.05, 2.0], id=[1, 2, 3, 4]).to_parquet(post / "lakes.parquet")
    if via == "01_composite":
        _manifest(root / "01_composite", "01_composite", {"source": source} if source else None)
        _manifest(post, "05_postprocess")
    else:
        _manifest(post, "05_postprocess", {provenance.IMAGERY_KEY: source} if source else None)
    return root


def _run07(root):
    return distribution.run(Context.create("07_distribution", profile="tiny", root=root, quiet=True))


def test_stage_07_compares_with_no_truth_when_the_imagery_is_not_the_world(tmp_path):
    b = fake_build(tmp_path / "build", source=STAC)
    assert (b / "00_world" / "truth" / "lakes.parquet").exists()
    r = _run07(b)
    assert r.manifest["parameters"]["truth"] == "none"
    assert r.manifest[provenance.IMAGERY_KEY] == STAC
    assert not (r.out / "cells_vs_truth.csv").exists()
    assert not any("truth" in c for c in r.table("headline").columns)  # no truth column beside the run
    assert any("'stac' is not the simulated world" in n for n in r.notes)


def test_stage_07_compares_with_the_truth_on_the_world(tmp_path):
    b = fake_build(tmp_path / "build", source=WORLD)
    r = _run07(b)
    assert r.manifest["parameters"]["truth"] == str(b / "00_world" / "truth" / "lakes.parquet")
    assert (r.out / "cells_vs_truth.csv").exists()
    head = json.loads((r.out / "manifest.json").read_text())["headline"]
    assert head["n_lakes"] == 4
    assert sum("truth" in c for c in r.table("headline").columns) == 2  # above the minimum, and all


def test_stage_07_truth_given_is_used_whatever_the_source(tmp_path):
    b = fake_build(tmp_path / "build", source=STAC)
    truth = b / "00_world" / "truth" / "lakes.parquet"
    r = distribution.run(Context.create("07_distribution", profile="tiny", root=b, quiet=True, truth=str(truth)))
    assert r.manifest["parameters"]["truth"] == str(truth) and (r.out / "cells_vs_truth.csv").exists()


def test_an_older_build_without_a_recorded_source_keeps_the_old_rule(tmp_path):
    """No record: a world and a profile other than paper still mean the world (stages rerun record it)."""
    b = fake_build(tmp_path / "build", source=None)
    r = _run07(b)
    assert r.manifest["parameters"]["truth"].endswith("truth/lakes.parquet")
    assert r.manifest[provenance.IMAGERY_KEY] is None
    assert provenance.has_truth(None, b / "00_world", "tiny")
    assert not provenance.has_truth(None, b / "00_world", "paper")
    assert not provenance.has_truth(WORLD, tmp_path / "no world", "tiny")
    assert not provenance.has_truth(STAC, b / "00_world", "tiny")


def test_stage_08_reads_stage_01s_source_no_truth_and_no_simulated_references(tmp_path, monkeypatch):
    monkeypatch.setenv("LAKEPAPER_REFERENCES", str(tmp_path / "no references"))
    b = fake_build(tmp_path / "build", source=STAC, via="01_composite")
    refs = b / "00_world" / "references"
    # "" is the real file on real imagery, never the world's: it is not laid out here
    with pytest.raises(ParameterError, match="glakes"):
        comparison.run(Context.create("08_comparison", profile="tiny", root=b, quiet=True))
    ctx = Context.create(
        "08_comparison", profile="tiny", root=b, quiet=True, glakes=str(refs / "glakes.shp"), pld=str(refs / "pld.shp")
    )
    r = comparison.run(ctx)
    assert r.manifest["parameters"]["truth"] == "none" and "truth" not in r.manifest["lakes"]
    assert r.manifest[provenance.IMAGERY_KEY] == STAC
    assert "fig8_regions" not in r.figures  # the world's tiles are no regions of real imagery
    assert any("give fig8_regions" in n for n in r.notes)
    rec = r.manifest["parameters"]["references"]["glakes"]
    assert rec["origin"] == "given" and rec["bytes"] > 0 and len(rec["sha256"]) == 64


def test_stage_08_on_the_world_takes_its_truth_and_references(tmp_path):
    b = fake_build(tmp_path / "build", source=WORLD, via="01_composite")
    ctx = Context.create(
        "08_comparison", profile="tiny", root=b, quiet=True, fig8_regions=[["ponds", 9.9, 59.9, 10.8, 60.4]]
    )
    r = comparison.run(ctx)
    assert r.manifest["parameters"]["truth"].endswith("truth/lakes.parquet") and r.manifest["lakes"]["truth"] == 5
    refs = r.manifest["parameters"]["references"]
    assert {refs[n]["origin"] for n in ("glakes", "pld")} == {"simulated"}
    assert refs["pld"]["sha256"] == io.sha256_file(b / "00_world" / "references" / "pld.shp")
