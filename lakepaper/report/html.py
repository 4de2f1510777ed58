"""The paper as one self-contained HTML page: images embedded as data URIs, no external resource of
any kind (fonts, styles and images are all inline), so the file can be mailed, archived or opened
offline and shows the same. The one script is the product's map (:mod:`lakepaper.report.map`, Leaflet
inlined); without scripts its section shows the composites as images and the page reads the same.

Large raster figures (over :data:`EMBED_MAX_BYTES`) are embedded as a downscaled JPEG copy, said
so in the caption; the original file and its sha256 are in the colophon's hash manifest.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import html
import io as _io
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from lakepaper.report import colophon as col
from lakepaper.report.data import DataSources, data_sources
from lakepaper.report.graph import StageGraph, _duration
from lakepaper.report.map import SECTION_ID as MAP_ID
from lakepaper.report.map import TITLE as MAP_TITLE
from lakepaper.report.map import map_section
from lakepaper.report.numbers import NUMBERS, FactRow, NumberRow, published_vs_run, run_facts, scale_rows
from lakepaper.report.outputs import Missing, Run
from lakepaper.report.registry import FIGURES, PAGE_TABLES, TABLES, FigureCaptions, FigureItem, TableItem
from lakepaper.report.sections import SECTIONS, stage_info

#: Figures larger than this are embedded as a downscaled JPEG (keeps the page a few MB).
EMBED_MAX_BYTES = 700_000
EMBED_MAX_WIDTH = 1800
JPEG_QUALITY = 85

TITLE = "A 10 m resolution global lake dataset based on Sentinel-2 MSI data and deep learning"


def esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _inline(text: str) -> str:
    """Escape, then turn **bold** into <strong>."""
    return re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", esc(text))


# --- images ----------------------------------------------------------------------------------------


@dataclass
class Embedded:
    uri: str
    width: int
    height: int
    note: str  # "" or how the embedded copy differs from the file


def embed_image(path: Path) -> Embedded:
    """A PNG as a data URI: as is when small, else a downscaled JPEG (deterministic)."""
    from PIL import Image

    data = path.read_bytes()
    with Image.open(_io.BytesIO(data)) as im:
        im.load()
        width, height = im.size
        if len(data) <= EMBED_MAX_BYTES:
            return Embedded("data:image/png;base64," + base64.b64encode(data).decode("ascii"), width, height, "")
        rgb = im.convert("RGBA")
        flat = Image.new("RGB", rgb.size, (255, 255, 255))
        flat.paste(rgb, mask=rgb.getchannel("A"))
        if flat.width > EMBED_MAX_WIDTH:
            flat = flat.resize((EMBED_MAX_WIDTH, round(flat.height * EMBED_MAX_WIDTH / flat.width)), Image.LANCZOS)
        buf = _io.BytesIO()
        flat.save(buf, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    note = (
        f"embedded as a {flat.width} × {flat.height} JPEG copy ({col.human_bytes(buf.tell())}); "
        f"the file is a {width} × {height} PNG of {col.human_bytes(len(data))}"
    )
    return Embedded("data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii"), *flat.size, note)


def figure_html(path: Path, label: str, caption: str, source: str, expected_sha: str | None = None) -> str:
    img = embed_image(path)
    note = f" <span class='note'>({esc(img.note)})</span>" if img.note else ""
    if expected_sha and sha256_bytes(path) != expected_sha:
        note += " <span class='stale'>(this file changed after its stage recorded it: rerun the stage)</span>"
    alt = f"{label}: {caption}" if label else caption or path.name
    return (
        f"<figure id='{_anchor(label or source)}'>"
        f"<img src='{img.uri}' width='{img.width}' height='{img.height}' alt='{esc(alt)}' loading='eager'>"
        f"<figcaption>{'<b>' + esc(label) + '.</b> ' if label else ''}{esc(caption)} "
        f"<span class='src'>{esc(source)}</span>{note}</figcaption></figure>"
    )


def missing_html(label: str, caption: str, why: str) -> str:
    return (
        f"<div class='missing' id='{_anchor(label)}'><b>{esc(label)}</b> — not produced by this run: {esc(why)}."
        f"<div class='note'>{esc(caption)}</div></div>"
    )


def _anchor(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


# --- tables ------------------------------------------------------------------------------------------


def read_table(run: Run, item: TableItem) -> tuple[pd.DataFrame, str]:
    """The table's file, formatted for display; :class:`Missing` if the run did not produce it."""
    try:
        df = run.csv(item.stage, item.file)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise Missing(f"{item.stage}/{item.file} unreadable ({exc})") from exc
    for c in item.percent:
        if c in df and pd.api.types.is_numeric_dtype(df[c]) and df[c].abs().max() <= 1.0:
            df[c] = df[c] * 100
    if item.index and item.index in df:
        df = df.set_index(item.index)
        df.index.name = None
    return df, f"{item.stage}/{item.file}"


def table_html(df: pd.DataFrame) -> str:
    shown = df.copy()
    for c in shown.columns:
        if pd.api.types.is_float_dtype(shown[c]):
            shown[c] = shown[c].map(lambda v: "—" if pd.isna(v) else f"{v:,.2f}")
    keep_index = not isinstance(shown.index, pd.RangeIndex)
    return shown.to_html(classes="data", border=0, index=keep_index, escape=True, na_rep="—")


def table_item_html(run: Run, item: TableItem) -> str:
    try:
        df, source = read_table(run, item)
    except Missing as exc:
        return missing_html(item.label, item.caption, str(exc))
    return (
        f"<div class='table' id='{_anchor(item.label)}'><p class='caption'><b>{esc(item.label)}.</b> "
        f"{esc(item.caption)} <span class='src'>{esc(source)}</span></p>{table_html(df)}</div>"
    )


# --- numbers ----------------------------------------------------------------------------------------


def fmt_number(value: float, unit: str, *, signed: bool = False, published: bool = False) -> str:
    """A number for the table; ``published`` keeps the paper's own precision (87.5, not 87.50)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if unit in ("%", "pp"):
        spec = ".4g" if published else ".2f"
        text = format(value, ("+" if signed else "") + spec)
    elif abs(value) >= 1e6:
        text = f"{value / 1e6:.3g} × 10⁶"
    elif float(value).is_integer():
        text = f"{value:,.0f}"
    elif abs(value) >= 100:
        text = f"{value:,.1f}"
    else:
        text = f"{value:.3g}"
    suffix = {"%": " %", "pp": " pp", "km²": " km²"}.get(unit, f" {unit}" if unit else "")
    return text + suffix


def numbers_html(rows: Sequence[NumberRow], simulated: bool) -> str:
    out = [
        "<table class='data numbers'><thead><tr><th>Number</th><th>Paper</th><th>This run</th>"
        "<th>From stage</th><th>Paper's source</th></tr></thead><tbody>"
    ]
    for r in rows:
        n = r.number
        signed = n.unit == "pp"
        rel = {"=": "", ">": "> ", "~": "~"}[n.relation]
        paper = rel + fmt_number(r.published, n.unit, signed=signed, published=True)
        if r.value is None:
            why = f"<div class='why'>{esc(r.missing)}</div>"
            run_cell = f"<td class='absent' title='{esc(r.missing)}'>not produced by this run{why}</td>"
        else:
            run_cell = f"<td class='value'>{esc(fmt_number(r.value, n.unit, signed=signed))}</td>"
        note = f"<div class='why'>{esc(n.note)}</div>" if n.note else ""
        out.append(
            f"<tr id='n-{esc(n.key)}'><td>{esc(n.label)}{note}</td><td class='value'>{esc(paper)}</td>{run_cell}"
            f"<td><code>{esc(n.stage)}</code></td><td class='src'>{esc(r.source)}</td></tr>"
        )
    out.append("</tbody></table>")
    if simulated:
        out.append(
            "<p class='note'>This run's numbers come from a <b>simulated world</b>: a few synthetic tiles, not the "
            "Sentinel-2 archive. They show that the method runs end to end and how its parts behave; they are not "
            "estimates of the world's lakes and are not expected to equal the paper's.</p>"
        )
    return "".join(out)


def facts_html(rows: Sequence[FactRow]) -> str:
    out = [
        "<table class='data numbers'><thead><tr><th>This run</th><th>Value</th><th>From stage</th></tr></thead><tbody>"
    ]
    for r in rows:
        if r.value is None:
            cell = f"<td class='absent'>not produced by this run<div class='why'>{esc(r.missing)}</div></td>"
        else:
            text = (
                r.value
                if isinstance(r.value, str)
                else fmt_number(float(r.value), r.fact.unit, signed=r.fact.unit == "pp")
            )
            cell = f"<td class='value'>{esc(text)}</td>"
        out.append(f"<tr><td>{esc(r.fact.label)}</td>{cell}<td><code>{esc(r.fact.stage)}</code></td></tr>")
    out.append("</tbody></table>")
    return "".join(out)


def scale_html(profile: str) -> str:
    rows = scale_rows(profile)
    if not rows:
        return "<p class='note'>This profile runs at the paper's scale: no constant is scaled down.</p>"
    body = "".join(
        f"<tr><td><code>{esc(k)}</code></td><td>{esc(_show(paper))}</td><td class='value'>{esc(_show(v))}</td>"
        f"<td class='src'>{esc(src)}</td></tr>"
        for k, paper, v, src in rows
    )
    return (
        f"<p class='note'>Profile <b>{esc(profile)}</b> changes the scale of the run only, never a threshold or a "
        "rule of the method (see <code>lakepaper/params.py</code>):</p><details><summary>"
        f"{len(rows)} constants scaled down from the paper's values</summary><table class='data'><thead><tr>"
        "<th>parameter</th><th>paper</th><th>this profile</th><th>source</th></tr></thead><tbody>"
        + body
        + "</tbody></table></details>"
    )


# --- the page ------------------------------------------------------------------------------------


CSS = """
:root { --ink:#1d2733; --muted:#5d6d7e; --line:#d5dbe1; --accent:#1b4f72; --warn:#9a5b00; --warnbg:#fff4e0; }
* { box-sizing: border-box; }
body { margin:0; font: 16px/1.55 -apple-system, "Segoe UI", "Helvetica Neue", Arial, "Liberation Sans", sans-serif;
       color: var(--ink); background:#fafbfc; }
main { max-width: 1000px; margin: 0 auto; padding: 0 28px 60px; background:#fff; box-shadow: 0 0 12px rgba(0,0,0,.05); }
.banner { position: sticky; top: 0; z-index: 5; background: var(--warnbg); color: var(--warn);
          border-bottom: 2px solid #f0b44c; padding: 10px 28px; font-weight: 700; text-align: center; }
.banner small { font-weight: 400; color: #6e4a10; display:block; }
header { padding: 30px 0 10px; border-bottom: 1px solid var(--line); }
h1 { font-size: 1.75em; line-height:1.25; margin: 0 0 .3em; }
h2, h3, figure, .table, .missing { scroll-margin-top: 70px; }
h2 { font-size: 1.35em; margin-top: 2em; padding-bottom:.2em; border-bottom: 1px solid var(--line); }
h3 { font-size: 1.1em; margin-top: 1.6em; }
.meta, .note, .src, .why { color: var(--muted); }
.meta { font-size: .92em; }
.src { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: .8em; }
.note { font-size: .88em; }
.why { font-size: .78em; }
nav.toc { font-size: .92em; columns: 2; margin: 1em 0; }
nav.toc a { color: var(--accent); text-decoration: none; display:block; }
figure { margin: 1.4em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); display:block; margin: 0 auto; }
figcaption, p.caption { font-size: .9em; margin-top: .4em; }
.missing { border: 1px dashed #b0b8c0; background: #f6f7f8; padding: 12px 14px; margin: 1.2em 0; font-size: .92em; }
table.data { border-collapse: collapse; font-size: .85em; margin: .5em 0 1.2em; width: 100%; }
table.data th, table.data td { border-bottom: 1px solid var(--line); padding: 4px 8px; text-align: left;
                               vertical-align: top; }
table.data thead th { background: #f0f3f6; border-bottom: 2px solid #c7d0d9; }
table.data td.value, table.data td:not(:first-child) { font-variant-numeric: tabular-nums; }
td.absent { color: var(--muted); font-style: italic; }
.numbers td.value { white-space: nowrap; font-weight: 600; }
.stale { color: #b03a2e; font-weight: 600; }
.status-done { color: #1e7b34; } .status-stale { color: #b03a2e; } .status-notrun { color: var(--muted); }
details { border: 1px solid var(--line); border-radius: 4px; padding: 6px 10px; margin: .6em 0; }
details > summary { cursor: pointer; font-weight: 600; }
details table.data { font-size: .78em; }
code, .hash { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: .85em; word-break: break-all; }
.abstract { background: #f4f7fa; border-left: 4px solid var(--accent); padding: 10px 16px; }
footer { margin-top: 3em; font-size: .85em; color: var(--muted); }
"""


@dataclass
class PageParts:
    run: Run
    graph: StageGraph
    fig1: Path | None
    git: col.Git
    built_at: str
    paper_seconds: float | None = None


def stage_status(parts: PageParts, stage: str) -> tuple[str, str]:
    node = parts.graph.nodes.get(stage)
    if node is None or node.status == "not run":
        why = parts.run.problems.get(stage, "not run yet")
        return "notrun", why
    if node.status == "stale":
        return "stale", f"stale: input {', '.join(node.stale_because)} since it ran"
    return "done", f"done in {_duration(node.wall_seconds)}" if node.wall_seconds is not None else "done"


def render(parts: PageParts) -> str:
    run = parts.run
    data = data_sources(run)
    simulated = data.simulated  # as the manifests record it, never from the profile's name
    numbers = published_vs_run(run, NUMBERS)
    captions = FigureCaptions.read()
    body: list[str] = []

    body.append(banner_html(run.profile, data))
    done = [s for s in run.stages if run.done(s)]
    body.append("<main><header>")
    body.append(f"<h1>{esc(TITLE)}</h1>")
    body.append(
        "<p class='meta'>GLAKESplus, after Beihui Hu and Lian Feng — regenerated by the <code>lakepaper</code> "
        f"compendium. Profile <b>{esc(run.profile)}</b>; {len(done)} of {len(run.stages)} stages finished; "
        f"source {esc(parts.git.label)}; built {esc(parts.built_at)}.</p>"
    )
    body.append(data_summary_html(data))
    body.append("</header>")

    toc = [("abstract", "Abstract"), ("headline-numbers", "Headline numbers: the paper and this run")]
    toc += [(f"section {s.key}", s.title) for s in SECTIONS]
    lake_map = map_section(run.root, run.profile)  # "" when the build has no composite or product
    toc += [(f"{MAP_ID}-title", MAP_TITLE)] if lake_map else []
    toc += [("appendix", "Appendix: every other figure the stages made"), ("colophon", "Colophon")]
    body.append("<nav class='toc'>" + "".join(f"<a href='#{_anchor(k)}'>{esc(t)}</a>" for k, t in toc) + "</nav>")

    body.append("<h2 id='abstract'>Abstract</h2><div class='abstract'>")
    body.append(
        "<p>Existing global lake datasets miss many small lakes. The paper maps lakes worldwide at 10 m from all "
        "Sentinel-2 observations between 28 March 2017 and 10 April 2022: a cloud-masked multi-year mean image, a "
        "U-Net trained on hand-edited labels of 799 sample regions, and post-processing with ocean, river and "
        "floodplain masks and completion from GLAKES and PLD. The result, GLAKESplus, holds ~12 million lakes "
        "over 0.005 km² (~3.4 × 10⁶ km²); lakes under 1 km² are 98.3 % of them.</p>"
    )
    if simulated:
        body.append(
            "<p><b>This page</b> re-runs the same method, stage by stage, on a simulated world small enough for a "
            "laptop. It reproduces the procedure, the figures and the tables; its numbers describe the simulated "
            "world only.</p>"
        )
    body.append("</div>")

    body.append("<h2 id='headline-numbers'>Headline numbers: the paper and this run</h2>")
    body.append(numbers_html(numbers, simulated))
    body.append("<h3 id='run-facts'>This run at a glance</h3>")
    body.append(facts_html(run_facts(run)))
    body.append(scale_html(run.profile))

    figures = {f.label: f for f in FIGURES}
    tables = {t.label: t for t in TABLES}
    used: set[tuple[str, str]] = set()
    for section in SECTIONS:
        body.append(f"<h2 id='{_anchor('section ' + section.key)}'>{esc(section.title)}</h2>")
        if section.stages:
            chips = []
            for s in section.stages:
                cls, words = stage_status(parts, s)
                chips.append(f"<code>{esc(s)}</code> <span class='status-{cls}'>{esc(words)}</span>")
            body.append("<p class='meta'>Produced by " + "; ".join(chips) + ".</p>")
        body += [f"<p>{_inline(p)}</p>" for p in section.paragraphs]
        for label in section.items:
            if label == "Fig. 1":
                body.append(_fig1_html(parts))
            elif label in figures:
                item = figures[label]
                used.add((item.stage, item.file))
                body.append(_figure_item_html(run, item))
            elif label in tables:
                body.append(table_item_html(run, tables[label]))
            elif label in PAGE_TABLES:
                body.append(PAGE_TABLES[label].render(run))
    body.append(lake_map)
    body.append(_appendix_html(run, used, captions))
    body.append(colophon_html(parts))
    body.append(
        "<footer>Generated by <code>python -m lakepaper paper</code> from the stage manifests under "
        f"<code>{esc(_rel(run.root))}</code>. The method summaries paraphrase the GLAKESplus paper; figures and "
        "tables are this run's.</footer></main>"
    )
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{esc(TITLE)} — {esc(run.profile)}</title><style>{CSS}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def banner_html(profile: str, data: DataSources) -> str:
    """The warning at the top: a simulated world, a source not recorded, or real imagery with simulated
    samples or references; nothing for a run on real data throughout (or before stage 01 has run)."""
    if data.simulated:
        head = f"{profile}: simulated world, not the real Sentinel-2 archive"
        small = (
            "Every figure, table and number below was computed by this compendium on a synthetic world; "
            "the paper's published values are shown beside them for comparison only."
        )
    elif data.unrecorded:
        head = f"{profile}: imagery source not recorded"
        small = (
            "This build's manifests do not say where its imagery came from (they were written before stage 01 "
            "recorded its source): rerun stage 01 and the stages after it before reading these numbers as real."
        )
    elif data.recorded and data.simulated_parts():
        head = f"{profile}: real imagery ({data.imagery_kind}), simulated {', '.join(data.simulated_parts())}"
        small = "The parts named come from the simulated world: numbers that depend on them describe it, not the Earth."
    else:
        return ""
    return f"<div class='banner' role='note'>{esc(head)}<small>{esc(small)}</small></div>"


def data_summary_html(data: DataSources) -> str:
    """One line under the title: imagery, samples, references by origin (the colophon has the details)."""
    origins: dict[str, list[str]] = {}
    for r in data.references:
        names = origins.setdefault(r.origin, [])
        if r.name not in names:
            names.append(r.name)
    refs = "; ".join(f"{o}: {', '.join(n)}" for o, n in origins.items()) or "not recorded (stages 05, 08)"
    return (
        f"<p class='meta data-sources'><b>Data.</b> Imagery: {esc(data.imagery)}. Samples: {esc(data.samples)}. "
        f"Reference datasets — {esc(refs)}. Manual reviews: {esc(data.reviews)} "
        "(<a href='#data-sources'>details</a>).</p>"
    )


def data_sources_html(data: DataSources) -> str:
    """The colophon's data section: imagery, samples, and each reference dataset with origin, size, sha256."""
    rows = [
        ("imagery source", data.imagery),
        ("imagery recorded by", data.imagery_stage or "—"),
        ("sample source", data.samples),
        ("manual reviews (stage 05)", data.reviews),
    ]
    out = ["<h3 id='data-sources'>Data sources</h3>", _kv_table(rows)]
    if data.references:
        out.append(
            "<table class='data references'><thead><tr><th>reference dataset</th><th>stage</th><th>origin</th>"
            "<th>path</th><th>size</th><th>sha256</th></tr></thead><tbody>"
        )
        for r in data.references:
            out.append(
                f"<tr><td>{esc(r.name)}</td><td><code>{esc(r.stage)}</code></td><td>{esc(r.origin)}</td>"
                f"<td>{esc(r.path or '—')}</td><td>{esc(col.human_bytes(r.bytes) if r.bytes is not None else '—')}"
                f"</td><td class='hash'>{esc(r.sha256 or 'not recorded')}</td></tr>"
            )
        out.append("</tbody></table>")
    else:
        out.append("<p class='note'>No stage recorded the reference datasets it read (stages 05 and 08).</p>")
    return "".join(out)


def _fig1_html(parts: PageParts) -> str:
    caption = (
        "Flowchart for developing the dataset, generated from the pipeline's stage graph: one box per notebook "
        "stage, coloured by paper section, with its status in this build; one arrow per upstream stage whose "
        "manifest the stage recorded as an input (dashed: inputs planned for stages that have not run)."
    )
    if parts.fig1 is None or not parts.fig1.exists():
        return missing_html("Fig. 1", caption, "the flowchart could not be drawn")
    return figure_html(parts.fig1, "Fig. 1", caption, "paper/" + parts.fig1.name)


def _figure_item_html(run: Run, item: FigureItem) -> str:
    try:
        path = run.file(item.stage, item.file)
    except Missing as exc:
        return missing_html(item.label, item.caption, str(exc))
    expected = run.outputs(item.stage).get(item.file)
    return figure_html(path, item.label, item.caption, f"{item.stage}/{item.file}", expected)


def _appendix_html(run: Run, used: set[tuple[str, str]], captions: FigureCaptions) -> str:
    out = [
        "<h2 id='appendix'>Appendix: every other figure the stages made</h2>",
        "<p class='note'>Figures the stages write besides the paper's (checks of the simulated world, composites, "
        "labels, training curves...), captioned from <code>figures/README.md</code>.</p>",
    ]
    n = 0
    for stage in run.stages:
        figs = [p for p in run.figures(stage) if (stage, str(p.relative_to(run.stage_dir(stage)))) not in used]
        if not figs:
            continue
        info = stage_info(stage)
        out.append(f"<h3 id='appendix-{_anchor(stage)}'>{esc(stage)} — {esc(info.title)}</h3>")
        for p in figs:
            n += 1
            caption = captions.caption(p.name) or p.stem.replace("_", " ")
            expected = run.outputs(stage).get(f"figures/{p.name}")
            out.append(figure_html(p, "", caption, f"{stage}/figures/{p.name}", expected))
    if not n:
        out.append("<p class='note'>No other figures in this build.</p>")
    return "".join(out)


# --- colophon ----------------------------------------------------------------------------------------


def _kv_table(rows: Iterable[tuple[str, Any]], head: tuple[str, str] = ("", "")) -> str:
    thead = f"<thead><tr><th>{esc(head[0])}</th><th>{esc(head[1])}</th></tr></thead>" if any(head) else ""
    body = "".join(f"<tr><td>{esc(k)}</td><td>{esc(_show(v))}</td></tr>" for k, v in rows)
    return f"<table class='data'>{thead}<tbody>{body}</tbody></table>"


def _show(v: Any) -> str:
    if isinstance(v, dict | list | tuple):
        return json.dumps(v, default=str, ensure_ascii=False)
    return "None" if v is None else str(v)


def colophon_html(parts: PageParts) -> str:
    run = parts.run
    out = ["<h2 id='colophon'>Colophon</h2>"]
    git = parts.git
    if git.dirty is None:
        tree = "unknown"
    elif not git.dirty:
        tree = "clean"
    else:
        tree = "dirty: uncommitted changes to " + ", ".join(git.changed[:20]) + (" …" if len(git.changed) > 20 else "")
    src = [("git commit", git.commit), ("working tree", tree)]
    if git.untracked:
        src.append(("untracked files", git.untracked))
    src += [("profile", run.profile), ("build folder", _rel(run.root)), ("paper built", parts.built_at)]
    if parts.paper_seconds is not None:
        src.append(("paper assembly", f"{parts.paper_seconds:.1f} s"))
    out.append("<h3>Source and build</h3>" + _kv_table(src))
    out.append(data_sources_html(data_sources(run)))

    # wall time per stage
    rows, total = [], 0.0
    for s in run.stages:
        cls, words = stage_status(parts, s)
        m = run.manifests.get(s, {})
        wall = m.get("wall_seconds")
        total += float(wall) if isinstance(wall, int | float) else 0.0
        outputs = {**(m.get("outputs") or {}), **(m.get("volatile") or {})}
        size = sum(col.file_bytes(run, s, r) or 0 for r in outputs) if outputs else None
        rows.append(
            f"<tr><td><code>{esc(s)}</code></td><td class='status-{cls}'>{esc(words)}</td>"
            f"<td>{esc(f'{wall:,.1f} s' if isinstance(wall, int | float) else '—')}</td>"
            f"<td>{len(outputs) if s in run.manifests else '—'}</td><td>{esc(col.human_bytes(size))}</td></tr>"
        )
    out.append(
        "<h3>Wall time per stage</h3><table class='data'><thead><tr><th>Stage</th><th>Status</th><th>Wall time</th>"
        "<th>Output files</th><th>Size</th></tr></thead><tbody>" + "".join(rows) + "</tbody>"
        f"<tfoot><tr><th>all stages</th><th></th><th>{total:,.1f} s ({esc(_duration(total))})</th><th></th><th></th>"
        "</tr></tfoot></table>"
    )

    # hardware
    hw = [(f"paper build: {k}", v) for k, v in col.machine().items()]
    for s, m in run.manifests.items():
        if m.get("machine"):
            hw.append((f"{s}", ", ".join(f"{k} {v}" for k, v in m["machine"].items())))
    out.append("<h3>Hardware</h3>" + _kv_table(hw))

    # versions
    packages, per_stage = col.stage_versions(run)
    now = {"python": col.machine()["python"], **col.package_versions()}
    vrows = "".join(
        "<tr><td>"
        + esc(p)
        + "</td>"
        + "".join(f"<td>{esc(per_stage[s].get(p, '—'))}</td>" for s in per_stage)
        + f"<td>{esc(now.get(p, '—'))}</td></tr>"
        for p in dict.fromkeys([*packages, *now])
    )
    out.append(
        "<h3>Package versions</h3><p class='note'>As recorded by each stage when it ran, and as installed for this "
        "paper build.</p><table class='data'><thead><tr><th>Package</th>"
        + "".join(f"<th>{esc(s)}</th>" for s in per_stage)
        + "<th>paper build</th></tr></thead><tbody>"
        + vrows
        + "</tbody></table>"
    )

    # parameters
    out.append("<h3>Parameters per stage</h3>")
    for s, m in run.manifests.items():
        params = m.get("parameters") or {}
        out.append(f"<details><summary><code>{esc(s)}</code> — {len(params)} parameters</summary>")
        out.append(_kv_table(sorted(params.items()), ("parameter", "value")) + "</details>")
    if not run.manifests:
        out.append("<p class='note'>No stage has run.</p>")

    # hash manifest
    out.append(
        "<h3 id='hash-manifest'>Hash manifest</h3><p class='note'>Every input and output of every finished stage, "
        "with the sha256 its manifest recorded. A stage's inputs are the sha256 of the upstream manifests (and "
        "files) it read; the manifest's own sha256 is what a downstream stage records.</p>"
    )
    for s, m in run.manifests.items():
        inputs = m.get("inputs") or {}
        outputs = {**(m.get("outputs") or {}), **(m.get("volatile") or {})}
        out.append(
            f"<details class='hashes' data-stage='{esc(s)}'><summary><code>{esc(s)}</code> — manifest "
            f"<span class='hash'>{esc(run.manifest_sha.get(s, ''))}</span>; {len(inputs)} inputs, "
            f"{len(outputs)} outputs</summary>"
        )
        if inputs:
            out.append(
                "<table class='data'><thead><tr><th>input</th><th>sha256</th></tr></thead><tbody>"
                + "".join(f"<tr><td>{esc(k)}</td><td class='hash'>{esc(v)}</td></tr>" for k, v in inputs.items())
                + "</tbody></table>"
            )
        out.append(
            "<table class='data'><thead><tr><th>output</th><th>bytes</th><th>sha256</th></tr></thead><tbody>"
            + "".join(
                f"<tr><td>{esc(k)}</td><td>{col.file_bytes(run, s, k) or '—'}</td><td class='hash'>{esc(v)}</td></tr>"
                for k, v in sorted(outputs.items())
            )
            + "</tbody></table></details>"
        )
    if parts.fig1 is not None and parts.fig1.exists():
        # written before the page (the screenshot is taken after it, so it cannot be listed here)
        assets = [p for p in (parts.fig1, parts.fig1.parent / "stage_graph.json") if p.is_file()]
        out.append(
            "<details class='hashes' data-stage='paper'><summary><code>paper</code> — this page's own files "
            f"({esc(_rel(parts.fig1.parent))})</summary><table class='data'><thead><tr><th>file</th><th>bytes</th>"
            "<th>sha256</th></tr></thead><tbody>"
            + "".join(
                f"<tr><td>{esc(p.name)}</td><td>{p.stat().st_size}</td>"
                f"<td class='hash'>{esc(sha256_bytes(p))}</td></tr>"
                for p in assets
            )
            + "</tbody></table></details>"
        )
    return "".join(out)


def sha256_bytes(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _rel(path: Path) -> str:
    from lakepaper import paths

    try:
        return str(Path(path).resolve().relative_to(paths.ROOT))
    except ValueError:
        return str(path)


def now_utc() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
