"""The two manual reviews of the post-processing (paper section 2.4), as edit layers every run re-applies.

The paper checks and edits its result by hand twice: after the river mask ("extensive manual checks and
modifications ... finished the river mask") and at the end ("... gave the final GLAKESplus"). Here each
review is a vector file of edits (:func:`lakepaper.postprocess.rules.read_edits`) that stage 05 applies at
the paper's place on every run:

``river_edits`` (:data:`REVIEWS`), after the river mask
    ``restore`` (put back whole a polygon the river mask cut or deleted), ``remove``, ``erase``;
``edits``, last
    ``remove``, ``erase``, ``add``.

A parameter left ``""`` takes the file the review view saves to, ``labels/<profile>/river_review.gpkg`` or
``labels/<profile>/final_review.gpkg``, when it exists (``make`` reruns stage 05 when it changes); ``none``
switches the review off; a path is that file. The stage records which file it applied, with its sha256.

:func:`review_view` is the JupyterLab view of a finished stage 05 (notebook 05 with ``interactive =
True``): one polygon at a time over the composite's true colour, with buttons for the review's actions.
A decision is the polygon shrunk by about a metre (so it meets that polygon and what the rules left of it,
and no lake beside it), saved at once to the layer; deciding an item again replaces its earlier decision,
and "no edit" withdraws it.

Example (in notebook 05):
    >>> stage, composite = "build/demo/05_postprocess", "build/demo/01_composite"
    >>> review_view("river", stage, composite, "labels/demo/river_review.gpkg")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from lakepaper import io, paths
from lakepaper.errors import InputError, ParameterError
from lakepaper.postprocess import rules


@dataclass(frozen=True)
class Review:
    """One manual review: the stage parameter that names its layer, the file the view saves to, its actions."""

    param: str
    file: str
    actions: tuple[str, ...]
    title: str


#: The two reviews, in the order the pass applies them.
REVIEWS = {
    "river": Review("river_edits", "river_review.gpkg", rules.RIVER_ACTIONS, "after the river mask"),
    "final": Review("edits", "final_review.gpkg", rules.ACTIONS, "the final product"),
}
#: How far (degrees, ~1 m) a decision's polygon is shrunk from the item's (a disc of this radius if none is left).
MARK_DEG = 1e-5


def default_path(review: str, profile: str) -> Path:
    """Where the view saves ``review``'s layer: ``labels/<profile>/<file>``."""
    return paths.ROOT / "labels" / profile / _review(review).file


def resolve(review: str, value: str, profile: str) -> Path | None:
    """The layer a stage run applies: ``value`` if a path, :func:`default_path` for ``""`` when it exists,
    None for ``""`` without one or for ``"none"``.

    Raises:
        InputError: a path given that does not exist.
    """
    if value == "none":
        return None
    if value:
        path = Path(value)
        if not path.exists():
            raise InputError(path, f"{_review(review).param}: review layer not found")
        return path
    path = default_path(review, profile)
    return path if path.exists() else None


def read(review: str, path: str | os.PathLike[str] | None) -> gpd.GeoDataFrame | None:
    """The layer of ``review`` at ``path`` with that review's actions checked (None: no layer)."""
    return None if path is None else rules.read_edits(path, actions=_review(review).actions)


def _review(name: str) -> Review:
    if name not in REVIEWS:
        raise ParameterError("review", f"{name!r}: choose {' or '.join(REVIEWS)}")
    return REVIEWS[name]


# --- the items and the decisions ---------------------------------------------------------------------------


def items(review: str, stage_dir: str | os.PathLike[str]) -> gpd.GeoDataFrame:
    """What a reviewer looks at, in EPSG:4326, most doubtful first, with ``key``, ``tile`` and ``label``.

    river: every polygon the river mask cut (``river_cases.gpkg``), deleted residues (case d) first, then the
    masked ones (c, b, r), then those kept whole (a, R), largest first in each. final: every lake of the
    product (``lakes.gpkg``), those completion or a review added first, then the smallest.
    """
    river = _review(review) is REVIEWS["river"]
    path = Path(stage_dir) / ("river_cases.gpkg" if river else "lakes.gpkg")
    if not path.exists():
        raise InputError(path, "run stage 05 first: the review reads its outputs")
    frame = gpd.read_file(path).to_crs(4326)
    area = rules.areas_km2(frame.geometry.values, frame.crs)
    if river:
        order = {"d": 0, "c": 1, "b": 2, "r": 3, "a": 4, "R": 5}
        rank = frame["case"].map(order).fillna(9).to_numpy()
        label = [
            f"case {c}, area ratio {r:.2f}, {a:.4f} km2"
            for c, r, a in zip(frame["case"], frame["area_ratio"], area, strict=True)
        ]
        sort = np.lexsort((-area, rank))
    else:
        added = frame["source"].astype(str).to_numpy() != "prediction"
        label = [f"{s}, {a:.4f} km2" for s, a in zip(frame["sources"], area, strict=True)]
        sort = np.lexsort((area, ~added))
        if "tile" not in frame:
            frame["tile"] = ""
    frame = frame.assign(label=label, area_km2=area).iloc[sort].reset_index(drop=True)
    geoms = np.asarray(frame.geometry.values, dtype=object)
    pts = shapely.point_on_surface(geoms)
    frame["key"] = [f"{review}:{x:.6f},{y:.6f}" for x, y in zip(shapely.get_x(pts), shapely.get_y(pts), strict=True)]
    # the polygon shrunk by ~1 m: it meets this polygon (and what a rule left of it) and nothing beside it
    inner = shapely.buffer(geoms, -MARK_DEG)
    thin = shapely.is_empty(inner)
    inner[thin] = shapely.buffer(pts[thin], MARK_DEG)
    frame["mark"] = inner
    return frame


def read_layer(review: str, path: str | os.PathLike[str]) -> gpd.GeoDataFrame:
    """The decisions saved so far (an empty layer when the file does not exist yet)."""
    path = Path(path)
    if not path.exists():
        return gpd.GeoDataFrame({"action": [], "note": []}, geometry=gpd.GeoSeries([], crs=4326), crs=4326)
    return read(review, path).to_crs(4326)


def decide(review: str, path: str | os.PathLike[str], item, action: str | None) -> gpd.GeoDataFrame:
    """Save the decision ``action`` on ``item`` (a row of :func:`items`) to the layer at ``path``, replacing
    an earlier decision on the same item; ``None`` withdraws it. Returns the layer as saved."""
    if action is not None and action not in _review(review).actions:
        raise ParameterError("action", f"{action!r}: the {review} review takes {' | '.join(_review(review).actions)}")
    layer = read_layer(review, path)
    mine = layer["note"].astype(str).str.startswith(item["key"] + " ") if len(layer) else np.zeros(0, bool)
    layer = layer[~np.asarray(mine, bool)]
    if action is not None:
        row = gpd.GeoDataFrame(
            {"action": [action], "note": [f"{item['key']} {item['tile']} {item['label']}"]},
            geometry=[item["mark"]],
            crs=4326,
        )
        layer = gpd.GeoDataFrame(pd.concat([layer, row], ignore_index=True), geometry="geometry", crs=4326)
    io.write_vector(layer.reset_index(drop=True), path, "Polygon")
    return layer


# --- the JupyterLab view ------------------------------------------------------------------------------------


def review_view(
    review: str,
    stage_dir: str | os.PathLike[str],
    composite_dir: str | os.PathLike[str] | None,
    layer: str | os.PathLike[str],
):
    """An ipywidgets box: the items of :func:`items` one at a time over the composite's true colour (the
    polygon outlined; the product's lakes in blue), a button per action of the review, "no edit", and
    previous / next. Each click saves the layer (:func:`decide`); the next stage-05 run applies it.

    Returns:
        The widget (display it). ``widget.decide(action)`` decides the shown item as a click does;
        ``widget.show(i)`` shows item ``i``.
    """
    import ipywidgets as w
    import matplotlib.pyplot as plt

    todo = items(review, stage_dir)
    product = gpd.read_file(Path(stage_dir) / "lakes.gpkg").to_crs(4326)
    state = {"i": 0}
    status, out = w.Label(), w.Output()
    if not len(todo):
        status.value = f"nothing to review: stage 05 found no item for the {review} review"
        return w.VBox([status])

    def draw():
        item = todo.iloc[state["i"]]
        layer_now = read_layer(review, layer)
        done = layer_now[layer_now["note"].astype(str).str.startswith(item["key"] + " ")]
        status.value = (
            f"{state['i'] + 1} / {len(todo)}  {item['tile']}  {item['label']}  "
            f"decision: {done['action'].iloc[0] if len(done) else 'none'}  -> {layer}"
        )
        with out:
            out.clear_output(wait=True)
            fig, ax = plt.subplots(figsize=(6, 6))
            x0, y0, x1, y1 = item.geometry.bounds
            pad = max(x1 - x0, y1 - y0, 0.004) * 0.4
            view = (x0 - pad, y0 - pad, x1 + pad, y1 + pad)
            _true_colour(ax, composite_dir, item["tile"], view)
            product.cx[view[0] : view[2], view[1] : view[3]].plot(ax=ax, color="#1f5fd6", alpha=0.45, zorder=2)
            gpd.GeoSeries([item.geometry], crs=4326).boundary.plot(ax=ax, color="k", linestyle="--", zorder=3)
            ax.set_xlim(view[0], view[2]), ax.set_ylim(view[1], view[3])
            ax.set_title(f"{review} review: {item['label']}", fontsize=9)
            ax.set_xticks([]), ax.set_yticks([])
            plt.show()

    def show(i: int):
        state["i"] = int(np.clip(i, 0, len(todo) - 1))
        draw()

    def on_decide(action: str | None):
        decide(review, layer, todo.iloc[state["i"]], action)
        show(state["i"] + 1 if state["i"] + 1 < len(todo) else state["i"])

    buttons = [w.Button(description=a) for a in _review(review).actions if a != "add"]
    for b in buttons:
        b.on_click(lambda _b, a=b.description: on_decide(a))
    none, prev, nxt = w.Button(description="no edit"), w.Button(description="<"), w.Button(description=">")
    none.on_click(lambda _b: on_decide(None))
    prev.on_click(lambda _b: show(state["i"] - 1))
    nxt.on_click(lambda _b: show(state["i"] + 1))
    box = w.VBox([w.HBox([prev, nxt, *buttons, none]), status, out])
    box.decide, box.show = on_decide, show
    draw()
    return box


def _true_colour(ax, composite_dir, tile: str, view) -> None:
    """The composite's true colour under ``view`` (EPSG:4326 bounds), when the composite is there."""
    if composite_dir is None or not tile:
        return
    path = Path(composite_dir) / "tiles" / f"{tile}.tif"
    if not path.exists():
        return
    import rasterio
    from rasterio.warp import transform_bounds
    from rasterio.windows import from_bounds

    with rasterio.open(path) as src:
        names = list(src.descriptions)
        if not {"B2", "B3", "B4"} <= set(names):
            return
        b = transform_bounds(4326, src.crs, *view)
        win = from_bounds(*b, transform=src.transform).round_offsets().round_lengths()
        bands = ("B4", "B3", "B2")
        raw = src.read([names.index(k) + 1 for k in bands], window=win, boundless=True).astype(np.float32)
        scale = float(src.tags().get("SCALE", 1.0))
    from lakepaper.figures.examples import true_colour

    ax.imshow(
        true_colour(raw / scale, bands), extent=(view[0], view[2], view[1], view[3]), zorder=0, interpolation="nearest"
    )
