"""The pipeline's stage graph, and the paper's Fig. 1 flowchart drawn from it.

Nodes are the stages (:class:`~lakepaper.report.outputs.Run.stages`). Edges come from the data: a
finished stage's manifest records, under ``inputs``, the sha256 of every upstream stage's manifest
it read, so each such key is an arrow. A stage that has not run yet has no manifest; its arrows are
the ones the registry plans (:data:`lakepaper.stages.REGISTRY` ``reads``), else the
previous stage in pipeline order. Each node also carries its status: done, stale (an upstream
manifest changed after the stage ran, so ``make`` would rerun it) or not run.

The flowchart is plain matplotlib (no graphviz): stages are layered top to bottom by their
longest path from a source, ordered within a layer by their parents' positions; an arrow that
skips layers is drawn as an arc beside the column so it never crosses a box.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from lakepaper.report.outputs import Run
from lakepaper.report.sections import SECTION_TITLES, stage_info

#: Status -> (edge colour, line style, words) of a flowchart box.
STATUS_STYLE = {
    "done": ("#1b4f72", "solid", "done"),
    "stale": ("#c0392b", "solid", "stale"),
    "not run": ("#8a8a8a", (0, (4, 3)), "not run yet"),
}

#: Section key -> box fill colour.
SECTION_COLOURS = {
    "data": "#eeeeee",
    "2.1": "#d6eaf8",
    "2.2": "#d5f5e3",
    "2.3": "#fcf3cf",
    "2.4": "#fadbd8",
    "3.1": "#e8daef",
    "3.2": "#d1f2eb",
    "3.3": "#fdebd0",
    "extra": "#f4f6f6",
}


@dataclass(frozen=True)
class Node:
    stage: str
    title: str
    does: str
    section: str
    status: str  # "done" | "stale" | "not run"
    wall_seconds: float | None = None
    stale_because: tuple[str, ...] = ()  # e.g. ("00_world changed", "01_composite missing")


@dataclass
class StageGraph:
    """Stages and their dependencies; ``edges`` are (upstream, downstream) pairs."""

    nodes: dict[str, Node]
    edges: list[tuple[str, str]] = field(default_factory=list)
    recorded: set[tuple[str, str]] = field(default_factory=set)  # edges read from manifests (the rest are planned)

    def parents(self, stage: str) -> list[str]:
        return [a for a, b in self.edges if b == stage]

    def children(self, stage: str) -> list[str]:
        return [b for a, b in self.edges if a == stage]

    def downstream(self, stage: str) -> list[str]:
        """Every stage that depends on ``stage``, directly or not, in pipeline order."""
        seen: set[str] = set()
        todo = [stage]
        while todo:
            for child in self.children(todo.pop()):
                if child not in seen:
                    seen.add(child)
                    todo.append(child)
        return [s for s in self.nodes if s in seen]

    def layers(self) -> dict[str, int]:
        """Stage -> layer: the length of the longest path from a stage without parents."""
        order = list(self.nodes)
        layer: dict[str, int] = {}
        for _ in range(len(order) + 1):  # relax; a cycle (never expected) stops after n rounds
            changed = False
            for s in order:
                value = max((layer.get(p, 0) + 1 for p in self.parents(s) if p in self.nodes), default=0)
                if layer.get(s) != value:
                    layer[s], changed = value, True
            if not changed:
                break
        return layer


def stage_graph(run: Run) -> StageGraph:
    """The stage graph of a build: recorded edges for finished stages, planned ones for the rest."""
    nodes: dict[str, Node] = {}
    edges: list[tuple[str, str]] = []
    recorded: set[tuple[str, str]] = set()
    stages = list(run.stages)
    for i, stage in enumerate(stages):
        info = stage_info(stage)
        if run.done(stage):
            manifest = run.manifests[stage]
            ups = [k for k in (manifest.get("inputs") or {}) if k in stages and k != stage]
            recorded.update((u, stage) for u in ups)
            status = "stale" if stage in run.stale else "done"
            wall = manifest.get("wall_seconds")
        else:
            if stage in _registry_stages():
                ups = [u for u in info.reads if u in stages]
            else:  # unknown and not run: assume it reads the stage before it
                ups = stages[i - 1 : i] if i else []
            status, wall = "not run", None
        edges += [(u, stage) for u in ups]
        nodes[stage] = Node(
            stage,
            info.title,
            info.does,
            info.section,
            status,
            float(wall) if isinstance(wall, int | float) else None,
            tuple(f"{up} {why}" for up, why in run.stale.get(stage, {}).items()),
        )
    return StageGraph(nodes, edges, recorded)


def _registry_stages() -> set[str]:
    from lakepaper.stages import REGISTRY

    return set(REGISTRY)


# --- layout ----------------------------------------------------------------------------------------

BOX_W, BOX_H = 4.0, 1.35  # data units
COL_STEP, ROW_STEP = 4.6, 2.0
LANE_STEP = 0.26  # distance between the vertical lanes of arrows that skip layers


def layout(graph: StageGraph) -> dict[str, tuple[float, float]]:
    """Stage -> box centre (x, y); layer 0 at the top (y = 0), y decreasing downwards."""
    layer = graph.layers()
    order = {s: i for i, s in enumerate(graph.nodes)}
    rows: dict[int, list[str]] = {}
    for s in graph.nodes:
        rows.setdefault(layer[s], []).append(s)
    pos: dict[str, tuple[float, float]] = {}
    for k in sorted(rows):
        members = rows[k]

        def key(s: str) -> tuple[float, int]:
            xs = [pos[p][0] for p in graph.parents(s) if p in pos]
            return (sum(xs) / len(xs) if xs else -1e3 + order[s], order[s])

        members.sort(key=key)
        n = len(members)
        for j, s in enumerate(members):
            pos[s] = ((j - (n - 1) / 2) * COL_STEP, -k * ROW_STEP)
    return pos


def route(graph: StageGraph, pos: dict[str, tuple[float, float]]) -> dict[tuple[str, str], list[tuple[float, float]]]:
    """Polyline of every arrow, from the bottom of its source box to the top of its target box.

    Between adjacent layers the arrow is straight. One that skips layers drops into the gap below its
    source, runs sideways to a vertical lane outside every box, down the lane, and sideways again in
    the gap above its target: it never crosses a box. Lanes nest by span (short ones inside), on the
    side nearer to both ends; legs sharing a gap are spread vertically so they do not overlap.
    """
    if not pos:
        return {}
    left = min(x for x, _ in pos.values()) - BOX_W / 2
    right = max(x for x, _ in pos.values()) + BOX_W / 2
    routes: dict[tuple[str, str], list[tuple[float, float]]] = {}
    long_edges = []
    for a, b in graph.edges:
        (xa, ya), (xb, yb) = pos[a], pos[b]
        if abs(ya - yb) <= ROW_STEP * 1.01:
            routes[(a, b)] = [(xa, ya - BOX_H / 2), (xb, yb + BOX_H / 2)]
        else:
            long_edges.append((a, b))
    gap = ROW_STEP - BOX_H
    lanes = {-1: 0, 1: 0}
    ports: dict[tuple[str, str, int], int] = {}  # (stage, "out"/"in", side) -> count
    legs: dict[float, int] = {}  # gap y (rounded) -> legs already running in it
    order = list(graph.nodes)
    for a, b in sorted(long_edges, key=lambda e: (pos[e[0]][1] - pos[e[1]][1], order.index(e[0]), order.index(e[1]))):
        (xa, ya), (xb, yb) = pos[a], pos[b]
        mid = (xa + xb) / 2
        if abs(mid) > 1e-6:  # noqa: SIM108 (bow out on the side the two boxes lean to)
            side = 1 if mid > 0 else -1
        else:  # both in the middle column: the side with fewer lanes so far
            side = -1 if lanes[-1] <= lanes[1] else 1
        lanes[side] += 1
        lane_x = (right if side > 0 else left) + side * LANE_STEP * lanes[side]
        k_out = ports[(a, "out", side)] = ports.get((a, "out", side), 0) + 1
        k_in = ports[(b, "in", side)] = ports.get((b, "in", side), 0) + 1
        x_out = xa + side * (BOX_W / 2 - 0.25 - 0.16 * (k_out - 1))
        x_in = xb + side * (BOX_W / 2 - 0.25 - 0.16 * (k_in - 1))
        below = round(ya - BOX_H / 2, 3)
        above = round(yb + BOX_H / 2, 3)
        n_below = legs[below] = legs.get(below, 0) + 1
        n_above = legs[above + gap] = legs.get(above + gap, 0) + 1  # the same gap, seen from its lower box
        y_out = below - min(0.12 + 0.09 * (n_below - 1), gap - 0.1)
        y_in = above + min(0.12 + 0.09 * (n_above - 1), gap - 0.1)
        routes[(a, b)] = [
            (x_out, ya - BOX_H / 2),
            (x_out, y_out),
            (lane_x, y_out),
            (lane_x, y_in),
            (x_in, y_in),
            (x_in, yb + BOX_H / 2),
        ]
    return routes


def draw_flowchart(graph: StageGraph, path: str | Path, *, title: str | None = None) -> Path:
    """Draw Fig. 1 from the stage graph and write it as PNG (atomically, no timestamp)."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Patch
    from matplotlib.path import Path as MplPath

    from lakepaper.figures import save

    pos = layout(graph)
    routes = route(graph, pos)
    pts = [p for r in routes.values() for p in r] + list(pos.values()) or [(0.0, 0.0)]
    x0 = min(min(x for x, _ in pts), min(x for x, _ in pos.values()) - BOX_W / 2) - 0.4
    x1 = max(max(x for x, _ in pts), max(x for x, _ in pos.values()) + BOX_W / 2) + 0.4
    y0 = min(y for _, y in pos.values()) - BOX_H / 2 - 0.3
    y1 = max(y for _, y in pos.values()) + BOX_H / 2 + 0.2
    scale = 0.55  # inches per data unit
    fig = Figure(figsize=((x1 - x0) * scale, (y1 - y0) * scale + 1.6))  # no pyplot: no global state, any backend
    ax = fig.add_axes((0.0, 1.4 / ((y1 - y0) * scale + 1.6), 1.0, (y1 - y0) * scale / ((y1 - y0) * scale + 1.6)))
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")
    ax.axis("off")

    for stage, node in graph.nodes.items():
        x, y = pos[stage]
        colour, style, words = STATUS_STYLE[node.status]
        ax.add_patch(
            FancyBboxPatch(
                (x - BOX_W / 2, y - BOX_H / 2),
                BOX_W,
                BOX_H,
                boxstyle="round,pad=0.0,rounding_size=0.15",
                facecolor=SECTION_COLOURS.get(node.section, "#ffffff"),
                edgecolor=colour,
                linewidth=1.6 if node.status != "not run" else 1.1,
                linestyle=style,
                zorder=3,
            )
        )
        status = words
        if node.status == "done" and node.wall_seconds is not None:
            status = f"done in {_duration(node.wall_seconds)}"
        elif node.status == "stale":
            status = f"stale: input {', '.join(node.stale_because)}"
        ax.text(x, y + 0.42, node.title, ha="center", va="center", fontsize=8.5, weight="bold", zorder=4)
        ax.text(
            x, y + 0.18, stage, ha="center", va="center", fontsize=6.5, family="monospace", color="#444444", zorder=4
        )
        does = textwrap.fill(node.does, 44) if node.does else ""
        ax.text(x, y - 0.14, does, ha="center", va="center", fontsize=6.3, zorder=4, linespacing=1.0)
        ax.text(x, y - 0.5, status, ha="center", va="center", fontsize=6.2, style="italic", color=colour, zorder=4)

    for (a, b), points in routes.items():
        recorded = (a, b) in graph.recorded
        codes = [MplPath.MOVETO] + [MplPath.LINETO] * (len(points) - 1)
        ax.add_patch(
            FancyArrowPatch(
                path=MplPath(points, codes),
                arrowstyle="-|>,head_length=4,head_width=2.5",
                color="#34495e" if recorded else "#9aa5ad",
                linewidth=1.0,
                linestyle="solid" if recorded else (0, (3, 2)),
                shrinkA=0,
                shrinkB=0,
                joinstyle="miter",
                zorder=2,
            )
        )

    sections = [
        Patch(facecolor=SECTION_COLOURS[key], edgecolor="#666666", label=label)
        for key, label in SECTION_TITLES.items()
        if any(n.section == key for n in graph.nodes.values())
    ]
    statuses = [
        Line2D([], [], color=STATUS_STYLE[s][0], linestyle=STATUS_STYLE[s][1], label=f"box: {STATUS_STYLE[s][2]}")
        for s in STATUS_STYLE
        if any(n.status == s for n in graph.nodes.values())
    ]
    arrows = [Line2D([], [], color="#34495e", label="arrow: input recorded in the manifest")]
    if any(e not in graph.recorded for e in graph.edges):
        arrows.append(Line2D([], [], color="#9aa5ad", linestyle=(0, (3, 2)), label="arrow: planned input"))
    fig.legend(handles=sections + statuses + arrows, loc="lower center", ncol=2, fontsize=7, frameon=False)
    fig.suptitle(title or "Fig. 1. The pipeline, drawn from its own stage graph", fontsize=10, y=0.995)
    out = Path(path)
    save(fig, out)
    return out


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def describe(graph: StageGraph) -> Iterable[str]:
    """Text lines of the graph (for logs and tests): ``stage [status] <- parents``."""
    for stage, node in graph.nodes.items():
        parents = ", ".join(graph.parents(stage)) or "-"
        yield f"{stage} [{node.status}] <- {parents}"
