"""The paper's content registry: what each stage does, which figure and table goes where, and the
extractors that read this run's value of every number the paper publishes.

Edit here, not in the HTML code:

* :data:`SECTION_TITLES` — the paper's sections; each stage's title, line and section are in
  :data:`lakepaper.stages.REGISTRY`, with the stages it reads.
* :data:`FIGURES` and :data:`TABLES` — paper item -> the stage and file that make it. A table may
  name several candidate files; the first one the run produced is shown.
* :data:`SECTIONS` — the method and results text (summaries of the seed paper, in our own words)
  and the items placed in each section.
* :data:`NUMBERS` — the published-vs-run table: a key of :data:`lakepaper.params.PUBLISHED` and a
  function reading this run's value from manifests or CSVs. A function raises
  :class:`~lakepaper.paper.run.Missing` (or fails to find a key) when the stage has not produced
  the value; the paper then says "not produced by this run" and why.

Every figure a stage writes that is not a paper figure still appears, in the appendix, captioned
from ``figures/README.md``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from lakepaper import paths
from lakepaper.paper.run import Missing, Run
from lakepaper.params import PUBLISHED
from lakepaper.stages import REGISTRY, Stage

# --- stages ------------------------------------------------------------------------------------


#: Section key -> heading (also the flowchart's legend and colours, in this order).
SECTION_TITLES: dict[str, str] = {
    "data": "Input data",
    "2.1": "2.1 Sentinel-2 and preprocessing",
    "2.2": "2.2 Sample preparation",
    "2.3": "2.3 Model application",
    "2.4": "2.4 Post-processing",
    "3.1": "3.1 Accuracy assessment",
    "3.2": "3.2 Global lake abundance and distribution",
    "3.3": "3.3 Comparison with other global lake datasets",
    "extra": "Related datasets (QTP lakes, check dams)",
}


def stage_info(stage: str) -> Stage:
    """The registry entry (:data:`lakepaper.stages.REGISTRY`), or a plain one for a stage it does not know yet."""
    title = stage.split("_", 1)[-1].replace("_", " ").capitalize()
    return REGISTRY.get(stage, Stage(stage, "", title, "", "extra"))


# --- figures and tables --------------------------------------------------------------------------


@dataclass(frozen=True)
class FigureItem:
    label: str  # "Fig. 2"
    stage: str
    file: str  # relative to the stage folder
    caption: str


@dataclass(frozen=True)
class TableItem:
    label: str  # "Table 1"
    candidates: tuple[tuple[str, str], ...]  # (stage, file) in order of preference
    caption: str
    percent: tuple[str, ...] = ()  # columns stored as fractions 0..1, shown x100
    index: str | None = None  # column to use as row labels


FIGURES: tuple[FigureItem, ...] = (
    FigureItem(
        "Fig. 2",
        "02_samples",
        "figures/fig2_samples.png",
        "Sample regions: (a) locations by split and region type, (b) size distribution in 27 log-spaced bins, "
        "(c) count and area per region type.",
    ),
    FigureItem(
        "Fig. 3",
        "05_postprocess",
        "figures/fig3_river_cases.png",
        "River mask: target polygons by GLAKES intersection and area ratio ≥ / < 0.8 (cases a-d).",
    ),
    FigureItem(
        "Fig. 4",
        "05_postprocess",
        "figures/fig4_floodplain_mask.png",
        "GLAKES before and after the floodplain (SHIFT, 30 % occurrence) mask.",
    ),
    FigureItem(
        "Fig. 5",
        "06_accuracy",
        "figures/fig5_lake_level.png",
        "Lake-level validation: (a) true predicted area against labelled and predicted lake area, "
        "(b) mean recall and precision by lake size group.",
    ),
    FigureItem(
        "Fig. 6",
        "07_distribution",
        "figures/fig6_distribution.png",
        "Spatial distribution: lake area density and count per 1° cell, latitude and longitude profiles.",
    ),
    FigureItem(
        "Fig. 7",
        "08_comparison",
        "figures/fig7_size_groups.png",
        "Lake count and total area of this product, GLAKES and PLD by size group.",
    ),
    FigureItem("Fig. 8", "08_comparison", "figures/fig8_regions.png", "Regional comparison with GLAKES and PLD."),
    FigureItem(
        "Fig. 9",
        "08_comparison",
        "figures/fig9_vs_pld.png",
        "This product against PLD: count and area by longitude, latitude and per 1° cell (0.01-0.1 km²).",
    ),
)

_SCORES = ("recall", "precision", "f1", "iou")

TABLES: tuple[TableItem, ...] = (
    TableItem(
        "Table 1",
        (("06_accuracy", "table1_patch_accuracy.csv"), ("06_accuracy", "table1.csv")),
        "Patch-level accuracy of the U-Net prediction on the test regions, by region type (scores in %).",
        percent=_SCORES,
        index="region_type",
    ),
    TableItem(
        "Table 2",
        (("06_accuracy", "table2_river_mask.csv"), ("05_postprocess", "table2.csv")),
        "Scores on the test regions before and after the river mask, and the change (percentage points).",
        index="row",
    ),
    TableItem(
        "Supplementary Table 1",
        (("03_train", "supplementary_table1.csv"),),
        "U-Net training settings as used by this run.",
    ),
)

# --- sections ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    paragraphs: tuple[str, ...]  # plain text; **bold** is allowed
    items: tuple[str, ...] = ()  # labels of FIGURES / TABLES, or "Fig. 1"
    stages: tuple[str, ...] = ()  # stages whose results this section reports


SECTIONS: tuple[Section, ...] = (
    Section(
        "method",
        "2 Materials and methods",
        (
            "GLAKESplus maps every lake larger than 0.005 km² at 10 m resolution in four steps: (1) a multi-year "
            "per-pixel mean of cloud-free Sentinel-2 observations is computed and exported in tiles; (2) sample "
            "regions around the world are labelled and split into training, validation and test sets; (3) a U-Net "
            "is trained on them and predicts a raw global lake map; (4) post-processing removes ocean and river "
            "residue and completes the map with existing lake datasets, giving the GLAKESplus polygons.",
            "Fig. 1 below is not drawn by hand: it is generated from this compendium's own stage graph, one box per "
            "notebook stage and one arrow per input a stage's manifest records.",
        ),
        ("Fig. 1",),
    ),
    Section(
        "2.1",
        SECTION_TITLES["2.1"],
        (
            "All Sentinel-2 Level-2A scenes from 28 March 2017 to 10 April 2022 with less than 60 % cloudy pixels "
            "are used. Pixels with an s2cloudless cloud probability above 50 % are masked; cloud shadows are "
            "dark near-infrared pixels that fall inside the projected cloud mask; snow and ice are removed with "
            "the scene classification layer (class 11).",
            "Each remaining observation contributes B2, B3, B4, B11 (resampled to 10 m) and NDWI = (B3 - B8) / "
            "(B3 + B8) to a per-pixel mean. Averaging gives each lake its mean extent, damps seasonal change and "
            "washes out cloud residue, algal blooms and sediment. The five-band composite is the model's input.",
        ),
        stages=("01_composite",),
    ),
    Section(
        "2.2",
        SECTION_TITLES["2.2"],
        (
            "Representative sample regions are chosen worldwide. Each gets a first label from an NDWI threshold "
            "picked by hand, then a long manual edit removes false and missed water. Regions are typed by their "
            "dominant difficulty: normal (NR), lakes alongside rivers (AR), built-up areas (BR), ice lakes (IL) "
            "and salt lakes (SL).",
            "The paper labels 799 regions and splits them 60/20/20 into training, validation and test sets, "
            "stratified by region type (Fig. 2).",
        ),
        ("Fig. 2",),
        ("02_samples",),
    ),
    Section(
        "2.3",
        SECTION_TITLES["2.3"],
        (
            "A U-Net (encoder, decoder, skip connections) follows Pi et al.'s GLAKES model with small changes. It is "
            "trained with a Dice loss and the AdaDelta optimiser on 576 × 576 × 5 patches drawn at random from the "
            "training regions, each region chosen with probability proportional to its size. The model with the "
            "lowest validation loss is kept; training stops after 50 epochs without improvement (Supplementary "
            "Table 1).",
            "Prediction slides a window over each composite tile; the outer 100 pixels of each window's output, "
            "which lack context, are discarded and the windows are stitched into a seamless map.",
        ),
        ("Supplementary Table 1",),
        ("03_train", "04_predict"),
    ),
    Section(
        "2.4",
        SECTION_TITLES["2.4"],
        (
            "Ocean residue is removed with OpenStreetMap coastline data: water outside the land polygons goes, "
            "then every polygon touching the ocean polygons (lagoons included).",
            "River residue is removed with GRWL centre lines and OSM river areas, sparing polygons that touch OSM "
            "or GeoDAR reservoirs. Each polygon's area ratio (area after / before the river mask) then decides: a "
            "polygon that intersects GLAKES with ratio ≥ 0.8 is kept whole, one that does not intersect GLAKES "
            "and has ratio < 0.8 is deleted whole, and otherwise the masked result stays (Fig. 3). Polygons under "
            "0.005 km² are deleted.",
            "Missed lakes are completed: GLAKES natural lakes over 1 km² and its reservoirs, after masking GLAKES "
            "pixels with water occurrence below 30 % inside the SHIFT floodplain (Fig. 4), and PLD lakes in arid "
            "land (aridity index < 0.2) are merged into the map.",
        ),
        ("Fig. 3", "Fig. 4"),
        ("05_postprocess",),
    ),
    Section(
        "3.1",
        SECTION_TITLES["3.1"],
        (
            "The independent test regions are scored with recall, precision, F1 and IoU of the lake class (mIoU "
            "and overall accuracy are left out: the many correct non-lake pixels would inflate them). Patch-level "
            "scores by region type form Table 1; the paper reports an overall IoU of 87.5 with the other scores "
            "above 92.7, and weaker AR precision and SL recall. Table 2 shows what the river mask changes; Fig. 5 "
            "scores whole lakes.",
        ),
        ("Table 1", "Table 2", "Fig. 5"),
        ("06_accuracy",),
    ),
    Section(
        "3.2",
        SECTION_TITLES["3.2"],
        (
            "The paper counts ~12 million lakes over 0.005 km², ~3.4 × 10⁶ km² in total. Lakes over 100 km² hold "
            "56.1 % of the area while lakes under 1 km² are 98.3 % of the count; 49 % of the lakes (30 % of the "
            "area) lie north of 57° N (Fig. 6).",
        ),
        ("Fig. 6",),
        ("07_distribution",),
    ),
    Section(
        "3.3",
        SECTION_TITLES["3.3"],
        (
            "The product is compared with GLAKES (30 m, lakes ≥ 0.03 km²) and PLD (≥ 0.01 km²) by size group "
            "(Fig. 7), in example regions (Fig. 8) and along longitude, latitude and per 1° cell (Fig. 9).",
        ),
        ("Fig. 7", "Fig. 8", "Fig. 9"),
        ("08_comparison",),
    ),
    Section(
        "extra",
        SECTION_TITLES["extra"],
        (
            "Two further datasets reuse the segmentation code: the QTP lake dataset (RGB images and ground truths) "
            "and the Jilin-1 check-dam gully dataset. Their figures are in the appendix.",
        ),
        stages=("09_qtp", "10_checkdam"),
    ),
)

# --- published vs this run -----------------------------------------------------------------------


@dataclass(frozen=True)
class Number:
    key: str  # key of params.PUBLISHED
    label: str
    extract: Callable[[Run], float]
    unit: str = ""  # "%", "pp", "km²", ""
    relation: str = "="  # how the paper states it: "=", ">", "~"
    stage: str = ""  # where this run's value comes from (for the table)
    note: str = ""


def _table1_row(run: Run, region_type: str) -> dict[str, Any]:
    return run.record("06_accuracy", "table1", "region_type", region_type)


def _pct(x: Any) -> float:
    return 100.0 * float(x)


def _table2_change(run: Run, column: str) -> float:
    for stage in ("06_accuracy", "05_postprocess"):
        try:
            return float(run.record(stage, "table2", "row", "change")[column])
        except Missing:
            continue
    raise Missing("Table 2 (river mask) not produced: needs 05_postprocess or 06_accuracy with a river-mask residue")


#: Which Fig. 5a fit the paper's R² and slopes are compared with ("ols" or "origin").
LAKE_FIT = "ols"


def _fits(run: Run, column: str) -> list[float]:
    rows = [r for r in run.extra("06_accuracy", "fits") if r.get("fit") == LAKE_FIT]
    values = [float(r[column]) for r in rows if r.get(column) is not None and not _isnan(r[column])]
    if not values:
        raise Missing(f"06_accuracy: no {LAKE_FIT} fit with a {column} (too few lakes)")
    return values


def _lake_level_min(run: Run) -> float:
    rows = run.extra("06_accuracy", "size_groups")
    values = []
    for r in rows:
        if str(r.get("size_group", "")).startswith("<"):
            continue  # below the 0.005 km2 minimum
        for n_col, v_col in (("labelled", "mean_recall"), ("predicted", "mean_precision")):
            if (r.get(n_col) or 0) > 0 and r.get(v_col) is not None and not _isnan(r[v_col]):
                values.append(float(r[v_col]))
    if not values:
        raise Missing("06_accuracy: no lake size group with lakes")
    return 100.0 * min(values) if max(values) <= 1.0 else min(values)


def _isnan(x: Any) -> bool:
    try:
        return math.isnan(float(x))
    except (TypeError, ValueError):
        return False


def _headline(key: str) -> Callable[[Run], float]:
    return lambda run: float(run.extra("07_distribution", "headline", key))


def _checkdam_test(column: str) -> Callable[[Run], float]:
    return lambda run: _pct(run.record("10_checkdam", "test", "row", "all")[column])


NUMBERS: tuple[Number, ...] = (
    Number(
        "patch_iou",
        "Patch-level IoU, all test patches",
        lambda r: _pct(_table1_row(r, "all")["iou"]),
        "%",
        stage="06_accuracy",
    ),
    Number(
        "patch_recall_precision_f1_min",
        "Lowest of patch recall, precision, F1",
        lambda r: min(_pct(_table1_row(r, "all")[k]) for k in ("recall", "precision", "f1")),
        "%",
        ">",
        "06_accuracy",
    ),
    Number(
        "ar_precision",
        "AR (alongside rivers) precision",
        lambda r: _pct(_table1_row(r, "AR")["precision"]),
        "%",
        stage="06_accuracy",
    ),
    Number("ar_iou", "AR IoU", lambda r: _pct(_table1_row(r, "AR")["iou"]), "%", stage="06_accuracy"),
    Number(
        "sl_recall", "SL (salt lakes) recall", lambda r: _pct(_table1_row(r, "SL")["recall"]), "%", stage="06_accuracy"
    ),
    Number("sl_iou", "SL IoU", lambda r: _pct(_table1_row(r, "SL")["iou"]), "%", stage="06_accuracy"),
    Number(
        "river_mask_precision_gain",
        "River mask: precision change",
        lambda r: _table2_change(r, "precision"),
        "pp",
        stage="06_accuracy / 05_postprocess",
    ),
    Number(
        "river_mask_recall_change",
        "River mask: recall change",
        lambda r: _table2_change(r, "recall"),
        "pp",
        stage="06_accuracy / 05_postprocess",
    ),
    Number(
        "lake_level_r2",
        "Lake level: R² of true predicted area (lowest of the two fits)",
        lambda r: min(_fits(r, "r2")),
        "",
        stage="06_accuracy",
    ),
    Number(
        "lake_level_slope_min", "Lake level: lowest fit slope", lambda r: min(_fits(r, "slope")), "", ">", "06_accuracy"
    ),
    Number(
        "lake_level_recall_precision_min",
        "Lake level: lowest mean recall/precision, groups ≥ 0.005 km²",
        _lake_level_min,
        "%",
        ">",
        "06_accuracy",
    ),
    Number("n_test_regions", "Test regions", lambda r: float(_table1_row(r, "all")["regions"]), stage="06_accuracy"),
    Number(
        "n_test_patches",
        "Test patches",
        lambda r: float(_table1_row(r, "all")["patches"]),
        stage="06_accuracy",
        note="the paper's patches are 576 px; a demo profile uses smaller ones",
    ),
    Number("n_lakes", "Lakes ≥ 0.005 km²", _headline("n_lakes"), "", "~", "07_distribution"),
    Number("total_area_km2", "Total lake area", _headline("total_area_km2"), "km²", "~", "07_distribution"),
    Number(
        "share_count_below_1km2",
        "Share of lakes < 1 km² (count)",
        _headline("share_count_below_1km2"),
        "%",
        stage="07_distribution",
    ),
    Number(
        "share_area_above_100km2",
        "Share of area in lakes > 100 km²",
        _headline("share_area_above_100km2"),
        "%",
        stage="07_distribution",
    ),
    Number(
        "share_count_below_0_01km2",
        "Share of lakes < 0.01 km² (count)",
        _headline("share_count_below_0_01km2"),
        "%",
        stage="07_distribution",
    ),
    Number(
        "share_count_north_57",
        "Share of lakes north of 57° N (count)",
        _headline("share_count_north_57"),
        "%",
        stage="07_distribution",
    ),
    Number(
        "share_area_north_57",
        "Share of lake area north of 57° N",
        _headline("share_area_north_57"),
        "%",
        stage="07_distribution",
    ),
    Number(
        "qtp_images", "QTP dataset: images", lambda r: float(r.extra("09_qtp", "dataset", "images")), stage="09_qtp"
    ),
    Number(
        "checkdam_cells",
        "Check dams: grid cells",
        lambda r: float(r.extra("10_checkdam", "counts", "cells")),
        stage="10_checkdam",
    ),
    Number(
        "checkdam_kept",
        "Check dams: cells with dam land",
        lambda r: float(r.extra("10_checkdam", "counts", "kept")),
        stage="10_checkdam",
    ),
    Number(
        "checkdam_samples",
        "Check dams: samples after augmentation",
        lambda r: float(r.extra("10_checkdam", "counts", "samples")),
        stage="10_checkdam",
    ),
    Number("checkdam_miou_min", "Check dams: test mIoU", _checkdam_test("miou"), "%", ">", "10_checkdam"),
    Number("checkdam_oa_min", "Check dams: test overall accuracy", _checkdam_test("oa"), "%", ">", "10_checkdam"),
)


@dataclass
class NumberRow:
    number: Number
    published: float
    source: str
    value: float | None
    missing: str = ""  # why there is no value


def published_vs_run(run: Run, numbers: Sequence[Number] = NUMBERS) -> list[NumberRow]:
    """One row per published number: the paper's value and this run's, or why this run has none.

    Extraction never raises: a stage that has not run, a file it did not write, or a key its manifest
    lacks gives ``value=None`` with the reason in ``missing``.
    """
    rows = []
    for n in numbers:
        published, source = PUBLISHED[n.key]
        try:
            value: float | None = float(n.extract(run))
            missing = ""
            if _isnan(value):
                value, missing = None, "computed as NaN (nothing to count in this run)"
        except Missing as exc:
            value, missing = None, str(exc)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            value, missing = None, f"{n.stage or 'stage'} output lacks it ({type(exc).__name__}: {exc})"
        rows.append(NumberRow(n, float(published), source, value, missing))
    return rows


def numbers_frame(rows: Sequence[NumberRow]) -> pd.DataFrame:
    """The published-vs-run rows as a plain table (for tests and notebooks)."""
    return pd.DataFrame(
        {
            "number": [r.number.label for r in rows],
            "key": [r.number.key for r in rows],
            "paper": [r.published for r in rows],
            "this run": [r.value for r in rows],
            "missing": [r.missing for r in rows],
        }
    )


# --- captions of the stage figures that are not paper figures (figures/README.md) -----------------


@dataclass
class FigureCaptions:
    """Captions read from the table in ``figures/README.md`` (file name pattern -> what it shows)."""

    patterns: list[tuple[re.Pattern[str], str, str]] = field(default_factory=list)  # (regex, item, caption)

    @classmethod
    def read(cls, path: Path | None = None) -> FigureCaptions:
        path = path or paths.FIGURES / "README.md"
        out = cls()
        try:
            text = path.read_text()
        except OSError:
            return out
        for line in text.splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) < 4 or not line.lstrip().startswith("|"):
                continue
            item, shows, function = cells[0], cells[1], cells[3]
            for name in re.findall(r"`([^`]+\.png)`", function):
                regex = re.escape(name)
                regex = re.sub(r"<[^>]+>", ".+", regex.replace(r"\<", "<").replace(r"\>", ">"))
                out.patterns.append((re.compile(f"^{regex}$"), item, shows))
        return out

    def caption(self, file_name: str) -> str:
        for regex, item, shows in self.patterns:
            if regex.match(file_name):
                return f"{item}: {shows}" if item else shows
        return ""


# --- this run at a glance (numbers the paper does not publish, but that say what the run did) ------


@dataclass(frozen=True)
class Fact:
    label: str
    stage: str
    extract: Callable[[Run], float | str]
    unit: str = ""


def _mean_clear(run: Run) -> float:
    tiles = run.extra("01_composite", "tiles")
    return 100.0 * sum(float(t["clear_share"]) for t in tiles) / len(tiles)


RUN_FACTS: tuple[Fact, ...] = (
    Fact("Simulated tiles", "00_world", lambda r: float(r.extra("00_world", "summary", "tiles"))),
    Fact("Sentinel-2 scenes (simulated)", "00_world", lambda r: float(r.extra("00_world", "summary", "scenes"))),
    Fact("True lakes in the world", "00_world", lambda r: float(r.extra("00_world", "summary", "lakes"))),
    Fact("True lake area", "00_world", lambda r: float(r.extra("00_world", "summary", "lake_area_km2")), "km²"),
    Fact(
        "s2cloudless recall of true clouds (10 m)",
        "00_world",
        lambda r: _pct(r.extra("00_world", "cloud_detection", "recall_10m")),
        "%",
    ),
    Fact("Composite tiles", "01_composite", lambda r: float(len(r.extra("01_composite", "tiles")))),
    Fact("Mean share of composite pixels with a clear observation", "01_composite", _mean_clear, "%"),
    Fact("Sample regions labelled", "02_samples", lambda r: float(r.extra("02_samples", "regions"))),
    Fact(
        "Label IoU after edits (all regions)",
        "02_samples",
        lambda r: _pct(r.record("02_samples", "label_iou", "region_type", "all")["edited_iou"]),
        "%",
    ),
    Fact("U-Net training epochs", "03_train", lambda r: float(r.extra("03_train", "training", "epochs"))),
    Fact("U-Net trainable parameters", "03_train", lambda r: float(r.extra("03_train", "training", "parameters"))),
    Fact("Test IoU of the trained model (chips)", "03_train", lambda r: _pct(r.extra("03_train", "test", "iou")), "%"),
    Fact("Lakes in the product", "05_postprocess", lambda r: float(r.extra("05_postprocess", "lakes"))),
    Fact("Product lake area", "05_postprocess", lambda r: float(r.extra("05_postprocess", "area_km2")), "km²"),
)


@dataclass
class FactRow:
    fact: Fact
    value: float | str | None
    missing: str = ""


def run_facts(run: Run, facts: Sequence[Fact] = RUN_FACTS) -> list[FactRow]:
    """This run's own headline numbers; tolerant of missing stages like :func:`published_vs_run`."""
    rows = []
    for f in facts:
        try:
            rows.append(FactRow(f, f.extract(run)))
        except Missing as exc:
            rows.append(FactRow(f, None, str(exc)))
        except (KeyError, IndexError, TypeError, ValueError, ZeroDivisionError) as exc:
            rows.append(FactRow(f, None, f"{f.stage} output lacks it ({type(exc).__name__}: {exc})"))
    return rows


def scale_rows(profile: str) -> list[tuple[str, Any, Any, str]]:
    """(parameter, paper value, this profile's value, source) for every constant the profile scales down."""
    from lakepaper.params import PAPER, PROFILES

    overrides = PROFILES.get(profile, {})
    return [(k, PAPER[k].value, v, PAPER[k].source) for k, v in overrides.items() if k in PAPER]
