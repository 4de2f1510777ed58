"""The HTML paper (lakepaper.report): stage graph, Fig. 1, published-vs-run numbers, embedding, colophon,
the prerequisites check, and the page in a real headless Chromium.

Every test builds its own small fake build under tmp_path (manifests written by lakepaper.io.write_manifest,
tiny PNG figures and CSV tables shaped like the notebooks'), so nothing depends on the heavy stages or on
build/. The browser test skips, saying why, where Chromium cannot be had (`.ci/install-browser` installs it).
"""

from __future__ import annotations

import json
import re
import time
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from builders import chromium_or_skip
from PIL import Image

from lakepaper import io, prereqs
from lakepaper.errors import InputError
from lakepaper.report import graph, html, registry
from lakepaper.report.build import build_paper
from lakepaper.report.numbers import NUMBERS, published_vs_run, run_facts
from lakepaper.report.outputs import Missing, Run
from lakepaper.stages import REGISTRY

# --- a fake build --------------------------------------------------------------------------------

COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189)]


def _png(path: Path, i: int = 0, size: tuple[int, int] = (60, 40)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, COLOURS[i % len(COLOURS)]).save(path)


def _stage(root: Path, stage: str, *, reads=(), files=None, figures=(), extra=None, parameters=None) -> Path:
    """Write a finished stage: its files, figures and manifest (inputs = sha256 of upstream manifests)."""
    out = root / stage
    out.mkdir(parents=True, exist_ok=True)
    for name, text in (files or {}).items():
        io.write_text(out / name, text)
    for i, name in enumerate(figures):
        _png(out / "figures" / name, i)
    inputs = {s: io.sha256_file(root / s / "manifest.json") for s in reads}
    io.write_manifest(
        out,
        stage=stage,
        parameters=parameters or {"profile": "demo"},
        inputs=inputs,
        started=time.time() - 3.5,
        extra=extra,
    )
    return out


def _csv(df: pd.DataFrame, **kw) -> str:
    return df.to_csv(**kw)


TABLE1 = pd.DataFrame(
    {
        "regions": [4, 2, 3, 9],
        "patches": [10, 5, 7, 22],
        "recall": [0.96, 0.95, 0.7, 0.94],
        "precision": [0.95, 0.9, 0.8, 0.93],
        "f1": [0.955, 0.92, 0.75, 0.935],
        "iou": [0.91, 0.85, 0.6, 0.876],
    },
    index=pd.Index(["NR", "AR", "SL", "all"], name="region_type"),
)
STITCHED = TABLE1.assign(iou=TABLE1.iou + [0.02, 0.03, 0.05, 0.025], precision=TABLE1.precision + 0.01)
TABLE1_BOTH = pd.concat(
    [TABLE1, STITCHED[["recall", "precision", "f1", "iou"]].add_prefix("stitched ")], axis=1
).assign(**{"iou gain (pp)": 100 * (STITCHED.iou - TABLE1.iou)})
TABLE2 = pd.DataFrame(
    {"recall": [94.0, 93.9, -0.1], "precision": [91.0, 92.8, 1.8], "f1": [92.4, 93.3, 0.9], "iou": [86.0, 87.4, 1.4]},
    index=pd.Index(["before", "after", "change"], name="row"),
)
HEADLINE = {
    "n_lakes": 1234.0,
    "total_area_km2": 56.7,
    "share_count_below_1km2": 97.5,
    "share_area_above_100km2": 0.0,
    "share_count_below_0_01km2": 30.1,
    "share_count_north_57": 40.0,
    "share_area_north_57": 25.0,
    "share_count_west": 51.0,
    "share_area_west": 44.0,
    "n_lakes_above_10000km2": 0.0,
    "n_lakes_below_0_01km2": 371.0,
    "area_below_0_01km2": 1.9,
}


WORLD_SOURCE = {"source": "world"}
SIMULATED_REFS = {
    "glakes": {"path": "build/demo/00_world/references/glakes.shp", "origin": "simulated", "bytes": 2048},
    "pld": {"path": "build/demo/00_world/references/pld.shp", "origin": "simulated", "bytes": 1024},
    "osm_ocean": None,  # switched off
}


def make_build(
    root: Path,
    upto: str = "10_checkdam",
    *,
    source: dict | None = WORLD_SOURCE,
    samples: dict | None = None,
    references: dict | None = None,
) -> Path:
    """A fake demo build with the stages up to ``upto``; returns build/<profile> (= root/demo). ``source``:
    stage 01's imagery record (None: not recorded, an older build); ``samples``: stage 02's parameters;
    ``references``: the reference records of stages 05 and 08 (default: the world's)."""
    b = root / "demo"
    refs = SIMULATED_REFS if references is None else references
    stages = [
        (
            "00_world",
            dict(
                figures=["world_tiles.png", "world_scenes_T01.png"],
                files={"world.json": "{}"},
                extra={
                    "summary": {"tiles": 2, "scenes": 8, "lakes": 300, "lake_area_km2": 12.5},
                    "cloud_detection": {"recall_10m": 0.97},
                },
            ),
        ),
        (
            "01_composite",
            dict(
                reads=["00_world"],
                figures=["composite_T01.png"],
                files={"tiles/T01.txt": "x"},
                extra={
                    "tiles": [{"tile": "T01", "clear_share": 0.99}, {"tile": "T02", "clear_share": 0.97}],
                    **({"source": source} if source is not None else {}),
                },
            ),
        ),
        (
            "02_samples",
            dict(
                reads=["00_world", "01_composite"],
                figures=["fig2_samples.png", "labels_by_type.png"],
                files={"label_iou.csv": "region_type,edited_iou\nall,0.95\n"},
                extra={"regions": 30, "label_iou": [{"region_type": "all", "edited_iou": 0.95}]},
                parameters={"profile": "demo", **(samples or {})},
            ),
        ),
        (
            "03_train",
            dict(
                reads=["02_samples"],
                figures=["training_curves.png", "supplementary_fig1.png"],
                files={
                    "supplementary_table1.csv": "hyperparameter,value,params,source\n"
                    "Input size,64 x 64 x 5,patch_size,[P] 2.3\nOptimizer,AdaDelta (lr 1.0),optimizer,[A]\n",
                    "test_metrics.csv": _csv(TABLE1),
                },
                extra={
                    "test": {"recall": 0.9, "precision": 0.9, "f1": 0.9, "iou": 0.82},
                    "training": {
                        "epochs": 3,
                        "parameters": 12345,
                        "precision": "bf16",
                        "device": "cpu",
                        "channels_last": True,
                    },
                },
            ),
        ),
        (
            "04_predict",
            dict(
                reads=["01_composite", "02_samples", "03_train"],
                figures=["prediction_T01.png"],
                extra={"stitched": []},
                parameters={"profile": "demo", "precision": "fp32"},
            ),
        ),
        (
            "05_postprocess",
            dict(
                reads=["00_world", "01_composite", "02_samples", "04_predict"],
                figures=["fig3_river_cases.png", "fig4_floodplain_mask.png", "rule_effects.png"],
                extra={"lakes": 250, "area_km2": 11.9, "imagery_source": source},
                parameters={"profile": "demo", "references": refs},
            ),
        ),
        (
            "06_accuracy",
            dict(
                reads=["02_samples", "03_train", "04_predict", "05_postprocess"],
                figures=["fig5_lake_level.png", "table1_patch_accuracy.png"],
                files={"table1_patch_accuracy.csv": _csv(TABLE1_BOTH), "table2_river_mask.csv": _csv(TABLE2)},
                extra={
                    "table1": TABLE1.reset_index().to_dict("records"),
                    "table1_stitched": STITCHED.reset_index().to_dict("records"),
                    "table2": TABLE2.reset_index().to_dict("records"),
                    "lake_level_recall_precision_min_pct": 88.0,
                    "lake_level_recall_pct": {"0.1-1": 96.0, "1-20": 94.0},
                    "fits": [
                        {"lakes": "labelled", "fit": "ols", "slope": 0.95, "r2": 0.97, "n": 40},
                        {"lakes": "predicted", "fit": "ols", "slope": 0.93, "r2": 0.99, "n": 41},
                        {"lakes": "labelled", "fit": "origin", "slope": 0.5, "r2": 0.2, "n": 40},
                    ],
                    "size_groups": [
                        {
                            "size_group": "<0.005",
                            "labelled": 5,
                            "mean_recall": 0.2,
                            "predicted": 3,
                            "mean_precision": 0.1,
                        },
                        {
                            "size_group": "0.005-0.01",
                            "labelled": 6,
                            "mean_recall": 0.88,
                            "predicted": 7,
                            "mean_precision": 0.9,
                        },
                        {
                            "size_group": ">=10000",
                            "labelled": 0,
                            "mean_recall": None,
                            "predicted": 0,
                            "mean_precision": None,
                        },
                    ],
                },
            ),
        ),
        (
            "07_distribution",
            dict(
                reads=["05_postprocess"],
                figures=["fig6_distribution.png"],
                files={"headline.csv": "number,run\nn_lakes,1234\n"},
                extra={"headline": HEADLINE},
            ),
        ),
        (
            "08_comparison",
            dict(
                reads=["00_world", "05_postprocess"],
                figures=["fig7_size_groups.png", "fig8_regions.png", "fig9_vs_pld.png"],
                parameters={"profile": "demo", "references": {k: v for k, v in refs.items() if k in ("glakes", "pld")}},
                extra={
                    "below_0_01km2": {
                        "lakes": 371,
                        "area_km2": 1.9,
                        "touching_no_pld": 350,
                        "area_touching_no_pld_km2": 1.7,
                    }
                },
            ),
        ),
        (
            "09_qtp",
            dict(reads=["00_world", "02_samples"], figures=["qtp_pairs.png"], extra={"dataset": {"images": 24}}),
        ),
        (
            "10_checkdam",
            dict(
                figures=["checkdam_grid.png"],
                extra={
                    "counts": {"cells": 16, "kept": 5, "samples": 25},
                    "test": [{"row": "all", "miou": 0.81, "oa": 0.9}],
                },
            ),
        ),
    ]
    for stage, kw in stages:
        _stage(b, stage, **kw)
        if stage == upto:
            break
    return b


def images_of(page: str) -> list[str]:
    class P(HTMLParser):
        srcs: list[str] = []

        def handle_starttag(self, tag, attrs):
            if tag == "img":
                self.srcs.append(dict(attrs).get("src", ""))

    p = P()
    p.srcs = []
    p.feed(page)
    return p.srcs


# --- the stage graph and Fig. 1 -------------------------------------------------------------------


def test_graph_from_manifests_and_plan(tmp_path):
    b = make_build(tmp_path, upto="02_samples")
    run = Run.load("demo", root=b, extra_stages=REGISTRY)
    g = graph.stage_graph(run)
    assert [s for s, n in g.nodes.items() if n.status == "done"] == ["00_world", "01_composite", "02_samples"]
    assert g.nodes["05_postprocess"].status == "not run"
    # recorded edges come from the manifests' inputs, the rest from the registry's plan
    assert ("00_world", "02_samples") in g.recorded and ("01_composite", "02_samples") in g.recorded
    assert ("02_samples", "03_train") in g.edges and ("02_samples", "03_train") not in g.recorded
    assert g.layers()["02_samples"] == 2 and g.layers()["05_postprocess"] == 5
    assert g.downstream("03_train") == [
        "04_predict",
        "05_postprocess",
        "06_accuracy",
        "07_distribution",
        "08_comparison",
    ]
    assert "02_samples [done] <- 00_world, 01_composite" in list(graph.describe(g))


def test_graph_edges_follow_recorded_inputs_and_unknown_stages(tmp_path):
    b = make_build(tmp_path, upto="01_composite")
    _stage(b, "02_samples", reads=["01_composite"])  # recorded inputs win over the plan (which also names 00)
    _stage(b, "11_extra", reads=["02_samples"], figures=["extra.png"])  # a stage no registry knows yet
    run = Run.load("demo", root=b, extra_stages=REGISTRY)
    g = graph.stage_graph(run)
    assert g.parents("02_samples") == ["01_composite"]
    assert g.parents("11_extra") == ["02_samples"] and "11_extra" in g.nodes
    assert list(g.nodes)[-1] == "11_extra"


def test_stale_stage_when_upstream_manifest_changed(tmp_path):
    b = make_build(tmp_path, upto="02_samples")
    _stage(b, "00_world", parameters={"profile": "demo", "world_seed": 7})  # rerun upstream with another parameter
    run = Run.load("demo", root=b)
    assert run.stale == {"01_composite": {"00_world": "changed"}, "02_samples": {"00_world": "changed"}}
    g = graph.stage_graph(run)
    assert g.nodes["01_composite"].status == "stale" and g.nodes["00_world"].status == "done"
    assert g.nodes["01_composite"].stale_because == ("00_world changed",)
    (b / "01_composite" / "manifest.json").unlink()  # an upstream stage that is gone
    assert Run.load("demo", root=b).stale["02_samples"] == {"00_world": "changed", "01_composite": "missing"}


def test_flowchart_png_is_drawn_from_the_graph(tmp_path):
    b = make_build(tmp_path, upto="02_samples")
    run = Run.load("demo", root=b, extra_stages=REGISTRY)
    g = graph.stage_graph(run)
    out = graph.draw_flowchart(g, tmp_path / "fig1.png")
    with Image.open(out) as im:
        assert im.format == "PNG" and im.width > 600 and im.height > 600
    routes = graph.route(g, graph.layout(g))
    assert set(routes) == set(g.edges)
    # no arrow passes through a box it does not start or end at
    pos = graph.layout(g)
    for (a, b_), pts in routes.items():
        for (x0, y0), (x1, y1) in zip(pts, pts[1:], strict=False):
            for s, (x, y) in pos.items():
                if s in (a, b_):
                    continue
                inside_x = min(x0, x1) < x + graph.BOX_W / 2 and max(x0, x1) > x - graph.BOX_W / 2
                inside_y = min(y0, y1) < y + graph.BOX_H / 2 and max(y0, y1) > y - graph.BOX_H / 2
                straight = x0 == x1 or y0 == y1
                assert not (straight and inside_x and inside_y), f"arrow {a}->{b_} crosses box {s}"


# --- published vs run ------------------------------------------------------------------------------


def test_numbers_not_produced_for_missing_stages(tmp_path):
    b = make_build(tmp_path, upto="02_samples")
    rows = published_vs_run(Run.load("demo", root=b))
    assert len(rows) == len(NUMBERS) and all(r.value is None for r in rows)
    by_key = {r.number.key: r for r in rows}
    assert "06_accuracy has not run" in by_key["patch_iou"].missing
    assert "07_distribution has not run" in by_key["share_count_below_1km2"].missing
    assert by_key["share_area_above_100km2"].published == 56.1
    page = (build_paper("demo", root=b, out=tmp_path / "paper.html")).read_text()
    row = re.search(r"<tr id='n-share_count_below_1km2'>.*?</tr>", page, re.S).group(0)
    assert "98.3" in row and "not produced by this run" in row


def test_numbers_extracted_from_a_full_run(tmp_path):
    b = make_build(tmp_path)
    rows = {r.number.key: r for r in published_vs_run(Run.load("demo", root=b))}
    assert all(r.value is not None for r in rows.values()), {k: r.missing for k, r in rows.items() if r.missing}
    assert rows["patch_iou"].value == pytest.approx(87.6)
    assert rows["patch_recall_precision_f1_min"].value == pytest.approx(93.0)
    assert rows["ar_precision"].value == pytest.approx(90.0) and rows["sl_recall"].value == pytest.approx(70.0)
    assert rows["river_mask_precision_gain"].value == pytest.approx(1.8)  # percentage points, as stored
    assert rows["lake_level_r2"].value == pytest.approx(0.97)  # lowest of the two OLS fits
    assert rows["lake_level_recall_precision_min"].value == pytest.approx(88.0)  # as stage 06 recorded it
    assert rows["n_test_patches"].value == 22 and rows["n_lakes"].value == 1234
    assert rows["checkdam_miou_min"].value == pytest.approx(81.0)


def test_the_page_compares_every_published_number_by_the_papers_definition(tmp_path):
    """Issue 20 item 7: at least 26 published numbers, the headline ones of 3.2-3.3 among them."""
    from lakepaper.params import PUBLISHED

    assert len(NUMBERS) >= 26 and {n.key for n in NUMBERS} == set(PUBLISHED)
    b = make_build(tmp_path)
    rows = {r.number.key: r for r in published_vs_run(Run.load("demo", root=b))}
    assert rows["share_count_west"].value == 51.0 and rows["share_count_west"].published == 54.0
    assert rows["share_area_west"].published == 48.0 and rows["n_lakes_above_10000km2"].published == 16
    assert rows["n_lakes_below_0_01km2"].value == 371 and rows["n_lakes_below_0_01km2"].published == 3.9e6
    assert "touching no PLD polygon (stage 08): 350" in rows["n_lakes_below_0_01km2"].number.note
    assert "1.70 km²" in rows["area_below_0_01km2"].number.note and rows["area_below_0_01km2"].published == 27643
    assert rows["lake_level_recall_0_1_1km2"].value == 96.0 and rows["lake_level_recall_1_20km2"].value == 94.0
    page = build_paper("demo", root=b, out=tmp_path / "paper.html").read_text()
    for key in ("share_count_west", "n_lakes_below_0_01km2", "lake_level_recall_1_20km2"):
        assert f"<tr id='n-{key}'>" in page, key
    m = json.loads((b / "06_accuracy" / "manifest.json").read_text())
    m["lake_level_recall_pct"]["1-20"] = None  # no labelled lake of 1-20 km2 in the test regions
    (b / "06_accuracy" / "manifest.json").write_text(json.dumps(m))
    row = {r.number.key: r for r in published_vs_run(Run.load("demo", root=b))}["lake_level_recall_1_20km2"]
    assert row.value is None and "1-20" in row.missing


def test_the_page_says_which_arithmetic_the_run_used(tmp_path):
    """Issue 20 item 12: the training and inference arithmetic, and the spread to expect across machines."""
    b = make_build(tmp_path)
    facts = {f.fact.stage: f.value for f in run_facts(Run.load("demo", root=b)) if "arithmetic" in f.fact.label}
    assert facts["03_train"].startswith("bf16 on cpu, channels-last") and "0.7 points" in facts["03_train"]
    assert facts["04_predict"] == "fp32"


def test_table1_numbers_are_the_isolated_patches_with_the_stitched_value_beside(tmp_path):
    """Issue 20: the published-vs-run numbers of Table 1 use the paper's definition (isolated patches, stage 06's
    ``table1``); the stitched value of the same number stays visible in the row's note, and in the facts."""
    b = make_build(tmp_path)
    run = Run.load("demo", root=b)
    rows = {r.number.key: r for r in published_vs_run(run)}
    table1_keys = ("patch_iou", "patch_recall_precision_f1_min", "ar_precision", "ar_iou", "sl_recall", "sl_iou")
    for key in table1_keys:
        assert "isolated" in rows[key].number.note and "stitched" in rows[key].number.note, key
    assert rows["patch_iou"].value == pytest.approx(100 * TABLE1.loc["all", "iou"])
    assert f"{100 * STITCHED.loc['all', 'iou']:.2f} %" in rows["patch_iou"].number.note
    assert f"{100 * STITCHED.loc['AR', 'precision']:.2f} %" in rows["ar_precision"].number.note
    facts = {f.fact.label: f.value for f in run_facts(run)}
    gain = facts["What seamless inference adds to the test IoU"]
    assert gain == pytest.approx(100 * (STITCHED.loc["all", "iou"] - TABLE1.loc["all", "iou"]))
    # without the stitched record the number stays, its note says only what it is
    m = json.loads((b / "06_accuracy" / "manifest.json").read_text())
    del m["table1_stitched"]
    (b / "06_accuracy" / "manifest.json").write_text(json.dumps(m))
    rows = {r.number.key: r for r in published_vs_run(Run.load("demo", root=b))}
    assert rows["patch_iou"].value == pytest.approx(100 * TABLE1.loc["all", "iou"])
    assert "stitched prediction" not in rows["patch_iou"].number.note


def test_page_table1_shows_both_definitions_and_states_the_pooling(tmp_path):
    b = make_build(tmp_path)
    page = build_paper("demo", root=b, out=tmp_path / "paper.html").read_text()
    t1 = page.split("id='table-1'")[1].split("</table>")[0]
    assert "pooled" in t1 and "on its own" in t1  # the caption states the definition and the pooling rule
    head = t1.split("</thead>")[0]
    for col in ("iou", "stitched iou", "stitched precision", "iou gain (pp)"):
        assert f"<th>{col}</th>" in head, col
    assert f"{100 * TABLE1.loc['AR', 'iou']:.2f}" in t1 and f"{100 * STITCHED.loc['AR', 'iou']:.2f}" in t1
    sup = page.split("id='supplementary-fig-1'")[1].split("</figure>")[0]
    assert "median" in sup and "03_train/figures/supplementary_fig1.png" in sup
    # placed in section 3.1, after Table 1
    assert page.index("id='table-1'") < page.index("id='supplementary-fig-1'") < page.index("id='table-2'")


def test_a_broken_extractor_input_says_why_instead_of_failing(tmp_path):
    b = make_build(tmp_path, upto="06_accuracy")
    m = json.loads((b / "06_accuracy" / "manifest.json").read_text())
    m["table1"] = [{"region_type": "all"}]  # a row without scores
    (b / "06_accuracy" / "manifest.json").write_text(json.dumps(m))
    rows = {r.number.key: r for r in published_vs_run(Run.load("demo", root=b))}
    assert rows["patch_iou"].value is None and "KeyError" in rows["patch_iou"].missing


def test_run_lookups_raise_missing_with_a_reason(tmp_path):
    b = make_build(tmp_path, upto="00_world")
    run = Run.load("demo", root=b)
    with pytest.raises(Missing, match="has not run"):
        run.manifest("06_accuracy")
    with pytest.raises(Missing, match="did not write table1.csv"):
        run.file("00_world", "table1.csv")
    (b / "00_world" / "world.json").unlink()
    with pytest.raises(Missing, match="no longer on disk"):
        run.file("00_world", "world.json")


# --- the page ----------------------------------------------------------------------------------------


def test_page_is_self_contained_with_every_figure_table_and_hash(tmp_path):
    b = make_build(tmp_path)
    out = build_paper("demo", root=b)
    assert out == b / "paper.html" and (b / "paper" / "fig1_flowchart.png").exists()
    page = out.read_text()
    srcs = images_of(page)
    run = Run.load("demo", root=b)
    n_figures = sum(len(run.figures(s)) for s in run.stages)
    assert len(srcs) == n_figures + 1  # every stage figure, plus Fig. 1
    assert all(s.startswith("data:image/") for s in srcs)
    assert not re.search(r"""(src|href)\s*=\s*['"]?(https?:|//|file:)""", page)
    assert "<script" not in page and "@import" not in page
    for label in [
        "Fig. 1",
        *(f"Fig. {i}" for i in range(2, 10)),
        "Table 1",
        "Table 2",
        "Supplementary Table 1",
        "Supplementary Fig. 1",
    ]:
        assert f"<b>{label}.</b>" in page, label
    assert "id='table-d1'" in page  # the departures from the paper, one table
    assert "not produced by this run" not in page.split("id='colophon'")[0]
    # Table 1 shown in %, from the stage's CSV
    t1 = page.split("id='table-1'")[1].split("</table>")[0]
    assert "87.60" in t1 and "AR" in t1
    # banner on a simulated profile
    assert "demo: simulated world, not the real Sentinel-2 archive" in page
    # colophon: every output and input hash of every stage, wall times, parameters
    colophon = page.split("id='colophon'")[1]
    for stage, m in run.manifests.items():
        assert run.manifest_sha[stage] in colophon
        for rel, sha in m["outputs"].items():
            assert sha in colophon and html.esc(rel) in colophon, (stage, rel)
        for sha in m["inputs"].values():
            assert sha in colophon
    assert "Wall time per stage" in colophon and "3.5 s" in colophon
    assert "git commit" in colophon and "Package versions" in colophon


def test_partial_build_page_says_what_is_missing(tmp_path):
    b = make_build(tmp_path, upto="02_samples")
    page = build_paper("demo", root=b).read_text()
    assert "<b>Fig. 2.</b>" in page  # made by 02
    assert re.search(r"<b>Fig\. 5</b> — not produced by this run: stage 06_accuracy has not run", page)
    assert re.search(r"<b>Table 1</b> — not produced by this run", page)
    assert "05_postprocess</code> <span class='status-notrun'>not run yet" in page


def test_paper_profile_has_no_banner_and_empty_build_is_refused(tmp_path):
    b = make_build(tmp_path, upto="00_world")
    (tmp_path / "paper").mkdir()
    (b / "00_world").rename(tmp_path / "paper" / "00_world")
    page = build_paper("paper", root=tmp_path / "paper").read_text()
    assert "class='banner'" not in page
    with pytest.raises(InputError, match="no finished stage"):
        build_paper("demo", root=tmp_path / "nothing")


# --- the data the page says it used (issue 17, item 6) ---------------------------------------------------

STAC_SOURCE = {
    "source": "stac",
    "stac": "https://earth-search.aws.element84.com/v1",
    "area": [10.0, 59.0, 11.0, 60.0],
    "tiles": ["32VNM", "32VPM"],
}
REAL_REFS = {
    "glakes": {"path": "references/glakes/glakes.gpkg", "origin": "real", "bytes": 3 * 2**30, "sha256": "ab" * 32},
    "pld": {"path": "/data/my_pld.gpkg", "origin": "given", "bytes": 5 * 2**20, "sha256": "cd" * 32},
}
SIMULATED_BANNER = "simulated world, not the real Sentinel-2 archive"


def _banner(page: str) -> str:
    m = re.search(r"<div class='banner'[^>]*>(.*?)</div>", page)
    return m.group(1) if m else ""


def _colophon_data(page: str) -> str:
    return page.split("id='colophon'")[1].split("id='data-sources'")[1].split("<h3")[0]


def test_a_stac_run_has_no_simulated_banner_and_names_its_catalog(tmp_path):
    b = make_build(
        tmp_path, source=STAC_SOURCE, samples={"regions": "/data/regions.shp"}, references=REAL_REFS
    )  # the profile is demo: the page must not guess from it
    page = build_paper("demo", root=b).read_text()
    assert SIMULATED_BANNER not in page and "class='banner'" not in page
    assert "on a simulated world small enough" not in page  # nor the abstract's or the numbers' simulated notes
    header = page.split("</header>")[0]
    assert "STAC catalog https://earth-search.aws.element84.com/v1" in header and "2 tiles" in header
    data = _colophon_data(page)
    assert "https://earth-search.aws.element84.com/v1" in data and "[10.0, 59.0, 11.0, 60.0]" in data
    assert "given regions /data/regions.shp" in data
    assert "simulated world" not in data


def test_a_world_run_shows_the_banner_and_says_so_in_the_colophon(tmp_path):
    page = build_paper("demo", root=make_build(tmp_path)).read_text()
    assert _banner(page).startswith("demo: " + SIMULATED_BANNER)
    data = _colophon_data(page)
    assert "simulated world (stage 00" in data and "the simulated world&#x27;s sample regions" in data


def test_a_build_that_recorded_no_source_says_so(tmp_path):
    page = build_paper("demo", root=make_build(tmp_path, source=None)).read_text()
    assert SIMULATED_BANNER not in page
    assert "imagery source not recorded" in _banner(page)
    assert "source not recorded (stage 01 ran before sources were recorded" in _colophon_data(page)


def test_real_imagery_with_simulated_parts_is_flagged(tmp_path):
    page = build_paper("demo", root=make_build(tmp_path, source=STAC_SOURCE)).read_text()
    banner = _banner(page)
    assert SIMULATED_BANNER not in banner
    assert "real imagery (stac), simulated samples, reference glakes, reference pld" in banner


def test_colophon_lists_each_reference_with_its_origin_size_and_checksum(tmp_path):
    page = build_paper("demo", root=make_build(tmp_path, source=STAC_SOURCE, references=REAL_REFS)).read_text()
    row = r"<tr><td>(\w+)</td><td><code>(\w+)</code></td><td>(\w+)</td><td>([^<]*)</td><td>([^<]*)</td>"
    rows = re.findall(row + r"<td class='hash'>([^<]*)</td></tr>", _colophon_data(page))
    assert sorted(rows) == sorted(
        (name, stage, r["origin"], r["path"], size, r["sha256"])
        for stage in ("05_postprocess", "08_comparison")
        for (name, r), size in zip(REAL_REFS.items(), ("3.0 GiB", "5.0 MiB"), strict=True)
    )
    # the older records (no origin, no sha256) and a switched-off dataset are said as such
    old = {"glakes": {"path": "g.shp", "bytes": 10}, "osm_ocean": None}
    page = build_paper("demo", root=make_build(tmp_path / "old", references=old)).read_text()
    data = _colophon_data(page)
    assert "<td>glakes</td><td><code>05_postprocess</code></td><td>not recorded</td><td>g.shp</td><td>10 B</td>" in data
    assert "<td>osm_ocean</td><td><code>05_postprocess</code></td><td>off</td>" in data


def test_data_sources_fall_back_to_stage_05s_copy_when_stage_01_has_not_run(tmp_path):
    from lakepaper.report.data import data_sources

    b = make_build(tmp_path, source=STAC_SOURCE)
    (b / "01_composite" / "manifest.json").unlink()  # stage 01 unfinished here
    d = data_sources(Run.load("demo", root=b))
    assert d.imagery_kind == "stac" and d.imagery_stage == "05_postprocess" and not d.simulated
    assert "as 05_postprocess recorded it" in d.imagery


def test_large_figures_are_embedded_as_downscaled_jpeg(tmp_path, monkeypatch):
    big = tmp_path / "big.png"
    _png(big, size=(2400, 300))
    monkeypatch.setattr(html, "EMBED_MAX_BYTES", 10)
    e = html.embed_image(big)
    assert e.uri.startswith("data:image/jpeg;base64,") and e.width == html.EMBED_MAX_WIDTH
    assert "2400 × 300 PNG" in e.note


def test_figure_captions_from_figures_readme():
    caps = registry.FigureCaptions.read()
    assert "biome" in caps.caption("world_biomes.png").lower()
    assert caps.caption("world_scenes_T07.png")  # <tile> pattern
    assert caps.caption("no_such_figure.png") == ""


def test_cli_paper_and_prereqs(tmp_path, monkeypatch, capsys):
    from lakepaper.cli import main

    make_build(tmp_path, upto="01_composite")
    monkeypatch.setenv("LAKEPAPER_BUILD", str(tmp_path))
    assert main(["paper", "--profile", "demo", "--browser", "off"]) == 0
    assert (tmp_path / "demo" / "paper.html").exists()
    assert "stages finished 2/" in capsys.readouterr().out
    assert main(["paper", "--profile", "tiny", "--browser", "off"]) == 2
    assert "no finished stage for profile 'tiny'" in capsys.readouterr().err
    assert main(["prereqs", "--profile", "demo"]) == 0


# --- prerequisites of PROFILE=paper ------------------------------------------------------------------


def test_prereqs_lists_everything_missing_at_once(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(prereqs, "check_gpu", lambda: prereqs.Check("CUDA GPU", False, "no CUDA device", "get one"))
    monkeypatch.setattr(
        prereqs, "check_earth_engine", lambda: [prereqs.Check("Earth Engine credentials", False, "none")]
    )
    monkeypatch.setenv("LAKEPAPER_BUILD", str(tmp_path / "build"))  # no parameters recorded by make
    rc = prereqs.main("paper", references=str(tmp_path / "refs"))
    out = capsys.readouterr().out
    assert rc == 1 and "Traceback" not in out
    for ref in prereqs.REFERENCES:
        assert f"MISSING  {ref.name}:" in out and ref.url in out
    # no imagery source given: stage 01 needs one (Earth Engine only when the source is gee); no samples
    assert "Imagery (stage 01)" in out and "Earth Engine credentials" not in out and "CUDA GPU" in out
    assert "Sample regions (stage 02)" in out and "Sample labels (stage 02)" in out
    assert prereqs.PENDING in out  # no invented checksums
    assert f"{len(prereqs.REFERENCES) + 4} of" in out


def test_prereqs_checksums_recorded_then_verified(tmp_path):
    folder = tmp_path / "refs"
    for ref in prereqs.REFERENCES:
        path = folder / ref.default
        if ref.folder:
            path.mkdir(parents=True)
            (path / "tile_0.tif").write_bytes(b"tile")
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(ref.name.encode())
    first = prereqs.check_references(folder)
    assert all(c.ok for c in first) and all("to be recorded" in c.detail for c in first)
    prereqs.record_checksums(folder)
    registry = prereqs.read_registry(folder)
    assert set(registry) == {r.name for r in prereqs.REFERENCES}
    assert all(c.ok and "matches" in c.detail for c in prereqs.check_references(folder))
    (folder / "glakes" / "glakes.gpkg").write_bytes(b"changed")
    bad = {c.name.split(":")[0]: c for c in prereqs.check_references(folder)}
    assert not bad["glakes"].ok and "differs" in bad["glakes"].detail
    assert bad["pld"].ok


# --- the page in a real browser --------------------------------------------------------------------


def test_page_renders_in_headless_chromium(tmp_path):
    browser = chromium_or_skip()
    b = make_build(tmp_path)
    page = build_paper("demo", root=b)
    shot = b / "paper" / "screenshot.png"
    report = browser.check_page(page, screenshot=shot)
    assert report.ok, report.problems()
    assert report.images == len(images_of(page.read_text())) > 10
    assert report.banner.startswith("demo: simulated world")
    with Image.open(shot) as im:
        assert im.width > 800 and im.height > 800


def test_browser_check_catches_broken_images_and_console_errors(tmp_path):
    browser = chromium_or_skip()
    bad = tmp_path / "bad.html"
    bad.write_text(
        "<!DOCTYPE html><html><head><title>x</title></head><body>"
        "<img alt='broken' src='data:image/png;base64,AAAA'><img alt='far' src='missing.png'>"
        "<script>console.error('boom')</script></body></html>"
    )
    report = browser.check_page(bad)
    assert not report.ok
    assert "broken" in report.broken and "far" in report.broken and report.external == ["far"]
    assert any("boom" in c for c in report.console)


def test_a_figure_changed_after_its_stage_ran_is_flagged(tmp_path):
    b = make_build(tmp_path, upto="02_samples")
    _png(b / "02_samples" / "figures" / "fig2_samples.png", 3)  # rewritten after the manifest
    page = build_paper("demo", root=b).read_text()
    fig2 = page.split("id='fig-2'")[1].split("</figure>")[0]
    assert "changed after its stage recorded it" in fig2
    assert "fig1_flowchart.png" in page.split("id='colophon'")[1]


def test_data_sources_say_which_review_layers_stage_05_applied(tmp_path):
    import json

    from lakepaper.report.data import data_sources

    b = make_build(tmp_path)
    d = data_sources(Run.load("demo", root=b))
    assert d.reviews == "no review layer applied"
    path = b / "05_postprocess" / "manifest.json"
    m = json.loads(path.read_text())
    m["parameters"]["river_edits"] = "labels/demo/river_review.gpkg"
    m["reviews"] = {"river": 3, "final": 0}
    path.write_text(json.dumps(m))
    d = data_sources(Run.load("demo", root=b))
    assert d.reviews == "river review labels/demo/river_review.gpkg (3 edits)"
    page = build_paper("demo", root=b).read_text()
    assert "Manual reviews: river review labels/demo/river_review.gpkg (3 edits)" in page
