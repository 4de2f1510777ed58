"""Assemble ``build/<profile>/paper.html`` from whatever the stages have produced.

``python -m lakepaper paper --profile demo`` (the last step of ``make all``) reads every stage
manifest, draws Fig. 1 from the stage graph into ``build/<profile>/paper/fig1_flowchart.png``,
writes the page atomically, then (``--browser auto``, the default) loads it in headless Chromium
when one is installed, checks that every image renders and the console is clean, and saves
``build/<profile>/paper/screenshot.png``; where the page has the product's map, clicks a lake on it and
saves ``paper/map_screenshot.png``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from lakepaper import io
from lakepaper.errors import InputError
from lakepaper.report.graph import draw_flowchart, stage_graph
from lakepaper.report.html import PageParts, now_utc, render
from lakepaper.report.numbers import NUMBERS, published_vs_run
from lakepaper.report.outputs import Run
from lakepaper.stages import REGISTRY

ASSETS = "paper"  # folder beside paper.html: Fig. 1, the stage graph as JSON, the screenshot


def build_paper(profile: str = "demo", *, out: str | Path | None = None, root: str | Path | None = None) -> Path:
    """Write the self-contained HTML paper of a profile's build and return its path.

    Args:
        profile: the build profile (``build/<profile>``).
        out: the HTML file (default ``build/<profile>/paper.html``); Fig. 1 goes into ``paper/`` beside it.
        root: the profile's build folder, if not ``build/<profile>`` (tests).

    Raises:
        InputError: no stage of the profile has finished (there is nothing to report).
    """
    from lakepaper.report.colophon import git_info

    run = Run.load(profile, root=root, extra_stages=REGISTRY)
    if not run.manifests and not run.problems:
        raise InputError(run.root, f"no finished stage for profile {profile!r}: run `make all PROFILE={profile}` first")
    out = Path(out) if out is not None else run.root / "paper.html"
    assets = out.parent / ASSETS
    graph = stage_graph(run)
    fig1 = draw_flowchart(graph, assets / "fig1_flowchart.png")
    io.write_json(
        assets / "stage_graph.json",
        {
            "profile": profile,
            "nodes": {s: {"status": n.status, "section": n.section, "title": n.title} for s, n in graph.nodes.items()},
            "edges": [[a, b, "recorded" if (a, b) in graph.recorded else "planned"] for a, b in graph.edges],
        },
    )
    parts = PageParts(run=run, graph=graph, fig1=fig1, git=git_info(), built_at=now_utc())
    return io.write_text(out, render(parts))


def summary(profile: str, path: Path, root: str | Path | None = None) -> str:
    """One paragraph for the terminal: stages, numbers produced, page size."""
    run = Run.load(profile, root=root, extra_stages=REGISTRY)
    rows = published_vs_run(run, NUMBERS)
    produced = sum(r.value is not None for r in rows)
    done = [s for s in run.stages if run.done(s)]
    return (
        f"paper: {path} ({path.stat().st_size / 2**20:.1f} MiB); stages finished {len(done)}/{len(run.stages)} "
        f"({', '.join(done) or 'none'}); published numbers reproduced {produced}/{len(rows)}"
    )


def main(profile: str, *, out: str | None = None, browser: str = "auto") -> int:
    """The ``lakepaper paper`` command: build, then check in a browser (auto: when one is installed)."""
    from lakepaper.report.browser import BrowserUnavailable, check_page

    t0 = time.perf_counter()
    path = build_paper(profile, out=out)
    print(summary(profile, path) + f"; {time.perf_counter() - t0:.1f} s")
    if browser == "off":
        return 0
    try:
        report = check_page(path, screenshot=path.parent / ASSETS / "screenshot.png")
    except BrowserUnavailable as exc:
        if browser == "require":
            print(f"lakepaper paper: error: browser check required but unavailable: {exc}", file=sys.stderr)
            return 1
        print(f"browser check skipped: {exc}")
        return 0
    if not report.ok:
        return _failed("the page does not render cleanly in Chromium", report.problems())
    print(
        f"browser check: Chromium {report.browser}, {report.images} images render, no console errors "
        f"({report.seconds:.1f} s); screenshot {report.screenshot}"
    )
    return _check_map(path)


def _check_map(path: Path) -> int:
    """The page's map, when it has one: it renders and a click on a lake opens its inspector; a screenshot."""
    from lakepaper.report.map import SECTION_ID, check_map

    if f"<section id='{SECTION_ID}'>" not in path.read_text(encoding="utf-8"):
        return 0
    m = check_map(path, screenshot=path.parent / ASSETS / "map_screenshot.png")
    if not m.ok:
        return _failed("the page's map does not work in Chromium", m.problems())
    print(
        f"map check: {m.tiles} composites, {m.lakes} lakes drawn, lake {m.clicked} inspected; screenshot {m.screenshot}"
    )
    return 0


def _failed(what: str, problems: list[str]) -> int:
    """Say on stderr what failed and each problem; the exit status of a failed check (1)."""
    print(f"lakepaper paper: error: {what}:", file=sys.stderr)
    for p in problems:
        print(f"  - {p}", file=sys.stderr)
    return 1
