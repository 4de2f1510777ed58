"""The numbers on the page: this run's value of every number the paper publishes, beside it, and a few facts
that say what the run did.

* :data:`NUMBERS`: the published-vs-run table: a key of :data:`lakepaper.params.PUBLISHED` and a function
  that *reads* this run's value from a stage's manifest or CSV (the stages compute; nothing is re-derived
  here). A function raises :class:`~lakepaper.report.outputs.Missing` (or fails to find a key) when the stage
  has not produced the value; the page then says "not produced by this run" and why.
* :data:`RUN_FACTS`: numbers the paper does not publish but a reviewer wants (tiles, scenes, epochs, ...).

Table 1's numbers follow the paper's definition: the model on isolated test patches (stage 03's scores,
which stage 06 records as ``table1``). The stitched prediction cut into the same patches (stage 06's
``table1_stitched``) is shown beside each of them, in the row's note, and in :data:`RUN_FACTS`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from lakepaper.params import PUBLISHED
from lakepaper.report.outputs import Missing, Run

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
    stitched: Callable[[Run], float] | None = None  # the same number on the stitched prediction, shown in the note
    stitched_label: str = "stitched prediction (stage 04), same patches"  # what ``stitched`` is, in the note


def _table1_row(run: Run, region_type: str) -> dict[str, Any]:
    """Table 1 as the paper defines it: isolated test patches (stage 03's scores, recorded by stage 06)."""
    return run.record("06_accuracy", "table1", "region_type", region_type)


def _stitched_row(run: Run, region_type: str) -> dict[str, Any]:
    """The stitched prediction (stage 04) cut into the same patches (stage 06)."""
    return run.record("06_accuracy", "table1_stitched", "region_type", region_type)


def _score(row: Callable[[Run, str], dict[str, Any]], region_type: str, *keys: str) -> Callable[[Run], float]:
    """The lowest of ``keys`` (%) of a Table 1 row; one key: that score."""
    return lambda run: min(_pct(row(run, region_type)[k]) for k in keys)


_ISOLATED = "isolated test patches, each predicted on its own (the paper's definition, stage 03's model)"


def _pct(x: Any) -> float:
    return 100.0 * float(x)


def _table2_change(run: Run, column: str) -> float:
    return float(run.record("06_accuracy", "table2", "row", "change")[column])


#: Which Fig. 5a fit the paper's R² and slopes are compared with ("ols" or "origin").
LAKE_FIT = "ols"


def _fits(run: Run, column: str) -> list[float]:
    rows = [r for r in run.extra("06_accuracy", "fits") if r.get("fit") == LAKE_FIT]
    values = [float(r[column]) for r in rows if r.get(column) is not None and not _isnan(r[column])]
    if not values:
        raise Missing(f"06_accuracy: no {LAKE_FIT} fit with a {column} (too few lakes)")
    return values


def _lake_level_min(run: Run) -> float:
    return float(run.extra("06_accuracy", "lake_level_recall_precision_min_pct"))


def _isnan(x: Any) -> bool:
    try:
        return math.isnan(float(x))
    except (TypeError, ValueError):
        return False


def _headline(key: str) -> Callable[[Run], float]:
    return lambda run: float(run.extra("07_distribution", "headline", key))


def _table1_number(key: str, label: str, region_type: str, *scores: str, relation: str = "=") -> Number:
    """A Table 1 number: the lowest of ``scores`` of ``region_type``'s isolated patches, the stitched value beside."""
    return Number(
        key,
        label,
        _score(_table1_row, region_type, *scores),
        "%",
        relation,
        "06_accuracy (03_train)",
        note=_ISOLATED,
        stitched=_score(_stitched_row, region_type, *scores),
    )


def _group_recall(group: str) -> Callable[[Run], float]:
    """Stage 06's mean recall (%) of one of Fig. 5b's size groups."""

    def read(run: Run) -> float:
        v = run.extra("06_accuracy", "lake_level_recall_pct", group)
        if v is None:
            raise Missing(f"06_accuracy: no labelled lake of {group} km² in the test regions")
        return float(v)

    return read


#: How the paper's "3.9 million lakes not in PLD" is computed: by its definition, all lakes below 0.01 km2.
_NOT_IN_PLD = (
    "the paper's '3.9 million lakes < 0.01 km² not in PLD' are all lakes below PLD's 0.01 km² minimum "
    "(32.6 % of 12 million)"
)


def _touching_no_pld(key: str) -> Callable[[Run], float]:
    return lambda run: float(run.extra("08_comparison", "below_0_01km2", key))


def _checkdam_test(column: str) -> Callable[[Run], float]:
    return lambda run: _pct(run.record("10_checkdam", "test", "row", "all")[column])


NUMBERS: tuple[Number, ...] = (
    _table1_number("patch_iou", "Patch-level IoU, all test patches", "all", "iou"),
    _table1_number(
        "patch_recall_precision_f1_min",
        "Lowest of patch recall, precision, F1",
        "all",
        "recall",
        "precision",
        "f1",
        relation=">",
    ),
    _table1_number("ar_precision", "AR (alongside rivers) precision", "AR", "precision"),
    _table1_number("ar_iou", "AR IoU", "AR", "iou"),
    _table1_number("sl_recall", "SL (salt lakes) recall", "SL", "recall"),
    _table1_number("sl_iou", "SL IoU", "SL", "iou"),
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
    Number(
        "lake_level_recall_0_1_1km2",
        "Lake level: mean recall, labelled lakes of 0.1-1 km²",
        _group_recall("0.1-1"),
        "%",
        stage="06_accuracy",
        note="Fig. 5b's own size groups (params.lake_size_groups_km2), not Fig. 7's",
    ),
    Number(
        "lake_level_recall_1_20km2",
        "Lake level: mean recall, labelled lakes of 1-20 km²",
        _group_recall("1-20"),
        "%",
        stage="06_accuracy",
        note="the paper: lower than 0.1-1 km² (large lakes with river-like parts missed)",
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
        "share_count_west",
        "Share of lakes in the western hemisphere (count)",
        _headline("share_count_west"),
        "%",
        stage="07_distribution",
        note="the paper's hemisphere: west of 20° W or east of 160° E",
    ),
    Number(
        "share_area_west",
        "Share of lake area in the western hemisphere",
        _headline("share_area_west"),
        "%",
        stage="07_distribution",
        note="west of 20° W or east of 160° E; lakes across the line by their pieces per 1° cell",
    ),
    Number(
        "n_lakes_above_10000km2",
        "Lakes > 10,000 km²",
        _headline("n_lakes_above_10000km2"),
        stage="07_distribution",
        note="Fig. 7's last group; the paper: 16 in each of GLAKESplus, GLAKES and PLD",
    ),
    Number(
        "n_lakes_below_0_01km2",
        "Lakes < 0.01 km² (below PLD's minimum)",
        _headline("n_lakes_below_0_01km2"),
        "",
        "~",
        "07_distribution",
        note=_NOT_IN_PLD,
        stitched=_touching_no_pld("touching_no_pld"),
        stitched_label="touching no PLD polygon (stage 08)",
    ),
    Number(
        "area_below_0_01km2",
        "Total area of the lakes < 0.01 km²",
        _headline("area_below_0_01km2"),
        "km²",
        stage="07_distribution",
        note=_NOT_IN_PLD,
        stitched=_touching_no_pld("area_touching_no_pld_km2"),
        stitched_label="touching no PLD polygon (stage 08)",
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
        rows.append(NumberRow(_with_stitched(n, run), float(published), source, value, missing))
    return rows


def _with_stitched(n: Number, run: Run) -> Number:
    """``n`` with this run's stitched value added to its note (unchanged where it has none or it is missing)."""
    if n.stitched is None:
        return n
    try:
        v = float(n.stitched(run))
    except (Missing, KeyError, IndexError, TypeError, ValueError):
        return n
    unit = f"{' ' if n.unit in ('%', 'km²') else ''}{n.unit}"
    text = "—" if _isnan(v) else (f"{v:,.0f}" if not n.unit else f"{v:.2f}{unit}")
    return dataclasses.replace(n, note=f"{n.note}; {n.stitched_label}: {text}".lstrip("; "))


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


def _arithmetic(run: Run) -> str:
    t = run.extra("03_train", "training")
    layout = ", channels-last" if t.get("channels_last") else ""
    return (
        f"{t['precision']} on {t['device']}{layout}; bf16 and fp32 train to different weights: the demo's test IoU "
        "moved ~0.7 points between two machines, the tiny profile's several points (Table D1)"
    )


def _predict_arithmetic(run: Run) -> str:
    return str(run.extra("04_predict", "parameters", "precision"))


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
    Fact("Training arithmetic (train_precision_cpu / _cuda; auto: bf16 where native)", "03_train", _arithmetic),
    Fact("Inference arithmetic (predict_precision)", "04_predict", _predict_arithmetic),
    Fact("U-Net trainable parameters", "03_train", lambda r: float(r.extra("03_train", "training", "parameters"))),
    Fact(
        "Test IoU of the trained model, isolated patches (Table 1)",
        "03_train",
        lambda r: _pct(r.extra("03_train", "test", "iou")),
        "%",
    ),
    Fact(
        "Test IoU, stitched prediction cut into the same patches",
        "06_accuracy",
        _score(_stitched_row, "all", "iou"),
        "%",
    ),
    Fact(
        "What seamless inference adds to the test IoU",
        "06_accuracy",
        lambda r: _score(_stitched_row, "all", "iou")(r) - _score(_table1_row, "all", "iou")(r),
        "pp",
    ),
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
    from lakepaper.params import CONSTANTS, PROFILES

    overrides = PROFILES.get(profile, {})
    return [(k, CONSTANTS[k].value, v, CONSTANTS[k].source) for k, v in overrides.items() if k in CONSTANTS]
