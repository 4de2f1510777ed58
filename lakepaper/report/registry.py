"""Which stage and file make each of the paper's figures and tables, and the captions of every other figure.

* :data:`FIGURES` and :data:`TABLES`: paper item -> the stage and file that make it (one file per item).
* :data:`PAGE_TABLES`: tables that no stage writes but the package keeps (label -> :class:`PageTable`): the
  departures from the paper (:mod:`lakepaper.report.departures`), with the effects the run measured.
* :class:`FigureCaptions`: captions of the stage figures that are not paper figures, read from the table
  in ``figures/README.md``; they appear in the page's appendix.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lakepaper import paths
from lakepaper.report import departures

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
    stage: str  # the one stage that computes it
    file: str  # CSV relative to the stage folder
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
        "Supplementary Fig. 1",
        "03_train",
        "figures/supplementary_fig1.png",
        "The model on isolated test patches, per region type (the paper's a-f: normal lakes, small and big river "
        "regions, built-up, ice lakes, salt lakes): the composite in true colour, the label, and the prediction "
        "coloured by outcome. Chosen reproducibly: per type the patch of median IoU and the patch of lowest IoU "
        "among the test patches with lake in the label or the prediction.",
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
_STITCHED = tuple(f"stitched {s}" for s in _SCORES)  # lakepaper.metrics.STITCHED + score

TABLES: tuple[TableItem, ...] = (
    TableItem(
        "Table 1",
        "06_accuracy",
        "table1_patch_accuracy.csv",
        "Patch-level accuracy of the U-Net on the test regions, by region type (scores in %). As in the paper, "
        "each test region is cut sequentially into patches of the model's input size (every pixel once; the last "
        "patch of a row or column shifted back to the border) and the model predicts each patch on its own; the "
        "confusion counts of all patches of a region type, and of all patches (row all), are summed before "
        "recall, precision, F1 and IoU are computed (pooled pixels, not a mean of per-patch scores; padding and "
        "never-observed pixels left out). The stitched columns score stage 04's seamless prediction (sliding "
        "windows, window edges discarded, so every pixel has context) cut into the same patches; iou gain is "
        "stitched minus isolated IoU in percentage points: what seamless inference adds.",
        percent=_SCORES + _STITCHED,
        index="region_type",
    ),
    TableItem(
        "Table 2",
        "06_accuracy",
        "table2_river_mask.csv",
        "Scores on the test regions before and after the river mask, and the change (percentage points).",
        index="row",
    ),
    TableItem(
        "Supplementary Table 1",
        "03_train",
        "supplementary_table1.csv",
        "U-Net training settings as used by this run.",
    ),
)


@dataclass(frozen=True)
class PageTable:
    """A table the package keeps rather than a stage writes; ``html(run, label=, caption=)`` renders it."""

    label: str
    caption: str
    html: Callable[..., str]  # (run, *, label, caption) -> an HTML block
    frame: Callable[..., Any]  # (run) -> the table as a DataFrame (tests, notebooks)

    def render(self, run) -> str:
        return self.html(run, label=self.label, caption=self.caption)


PAGE_TABLES: dict[str, PageTable] = {
    t.label: t
    for t in (
        PageTable(
            "Table D1",
            "Where this compendium departs from the paper: what the paper (or the authors' released code, where the "
            "paper is silent) does, what this compendium does and why, whether that follows the authors' code or is "
            "this compendium's own choice, and the effect measured on the simulated world where it was measured "
            "(from this run's outputs where it can be). Every method constant also carries its provenance label in "
            "Supplementary Table 1.",
            departures.departures_html,
            departures.departures_frame,
        ),
    )
}


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
