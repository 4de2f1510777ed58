"""Sample regions of the simulated world: the rectangles the labelling stage draws labels in.

GLAKESplus (paper section 2.2) labels 799 representative sample regions worldwide and splits them
60/20/20 into training, validation and test sets by stratified random sampling. Each region has a
*type*, its main feature:

- NR (normal regions): lakes easy to tell from the background;
- AR (alongside rivers): rivers and lakes side by side, oxbow lakes shaped like river reaches;
- BR (built-up regions): buildings and their shadows look like water in NDWI;
- IL (ice lakes): glaciers resemble lakes in NDWI and SWIR;
- SL (salt lakes): low NDWI, bright in the other bands, in arid and semi-arid land.

Here a region is an axis-aligned, pixel-aligned rectangle on one tile's 10 m UTM grid. Its type
follows from where it lies: in an "urban" tile BR, on the "plateau" IL, in an "arid" tile SL;
elsewhere AR when it overlaps the river mask or an oxbow lake, else NR. Region sides are drawn
log-uniformly between ``tile_px / 20`` and ``tile_px / 2.5`` (rounded to 8 px; aspect within 2:3),
the ~1.5 orders of magnitude of area of the paper's Fig. 2b. Regions never overlap, lie fully in their
tile and contain lake pixels at the typical extent (the extent labels map), except ~5 % negatives
with no lake pixel at all (not even at the maximum extent). A region is at most ``MAX_SEA_SHARE`` sea
(the truth's ocean mask): an analyst draws a lake sample region along a coast, with its lagoons and
some sea, not over open water. The paper leaves the sea to its ocean mask (section 2.4: limited by
its small input, the model can hardly tell the ocean and wide rivers, locally alike, from large
lakes), and a 128 px patch of open sea is, to the model, a patch of a large lake's interior.

Allocation: every region type that the tiles can provide gets at least ``min(5, n // types)`` regions
(at least ``ceil(0.1 n)`` for large ``n``), so that a stratified 60/20/20 split has each type in every
subset; the rest goes to the types in proportion to the number of tiles that can provide them. A type's
regions are dealt round-robin over its tiles (in a seeded random order). A region that finds no room in
its tile tries the type's other tiles, then any tile with any type; if none has room the result has
fewer than ``n_regions`` rows (a warning says so). Randomness: ``default_rng([seed, 11])`` for the
allocation and ``default_rng([seed, 11, tile_index])`` per tile, so the same truths and seed give the
same regions and the same ids.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry import box

from lakepaper.world.truth import PIXEL_M, TileTruth

REGION_TYPES = ("NR", "AR", "BR", "IL", "SL")
#: Biomes whose every region has one type, whatever it contains.
BIOME_TYPE = {"urban": "BR", "plateau": "IL", "arid": "SL"}
SIDE_MIN_FRAC, SIDE_MAX_FRAC = 1 / 20, 1 / 2.5
SIDE_STEP = 8  # px: sides are multiples of this
ASPECT_MAX = 1.5
NEGATIVE_SHARE = 0.05
MIN_PER_TYPE = 5
MIN_LAKE_PX = 25  # a positive region holds at least one 0.0025 km2 lake's worth of typical-extent water
MAX_SEA_SHARE = 0.25  # the most of a region that may be sea (the ocean mask)
TRIES = 240  # positions tried per region
SHRINK_EVERY, SHRINK = 40, 0.85  # after this many misses the rectangle shrinks by this factor

COLUMNS = (
    "region_id",
    "tile",
    "region_type",
    "biome",
    "row_off",
    "col_off",
    "height",
    "width",
    "area_km2",
    "lake_fraction",
    "crs_tile",
)


@dataclass
class _TileState:
    """A tile's masks as summed-area tables, its occupancy and its random stream."""

    index: int
    truth: TileTruth
    rng: np.random.Generator
    sat: dict[str, np.ndarray] = field(default_factory=dict)
    busy: np.ndarray | None = None
    placed: list[dict] = field(default_factory=list)

    def count(self, name: str, r0: int, c0: int, h: int, w: int) -> int:
        s = self.sat[name]
        return int(s[r0 + h, c0 + w] - s[r0, c0 + w] - s[r0 + h, c0] + s[r0, c0])


def _sat(mask: np.ndarray) -> np.ndarray:
    """Summed-area table with a leading row and column of zeros."""
    s = np.zeros((mask.shape[0] + 1, mask.shape[1] + 1), np.int64)
    s[1:, 1:] = mask.astype(np.int64).cumsum(0).cumsum(1)
    return s


def _state(index: int, truth: TileTruth, seed: int) -> _TileState:
    t = truth
    typed = {lake.type: [] for lake in t.lakes}
    for lake in t.lakes:
        typed[lake.type].append(lake.lake_id)
    oxbow = np.isin(t.lake_id, typed.get("oxbow", []))
    feature = {  # what a region of the type shows, preferred over bare ground for the first half of the tries
        "BR": t.masks["urban"],
        "IL": t.masks["glacier"] | np.isin(t.lake_id, typed.get("ice", [])),
        "SL": t.masks["saltflat"] | np.isin(t.lake_id, typed.get("salt", [])),
    }
    st = _TileState(index, t, np.random.default_rng([seed, 11, index]))
    st.sat = {
        "typical": _sat(t.typical_lake_id() > 0),
        "max": _sat(t.lake_id > 0),
        "river": _sat(t.masks["river"] | oxbow),
        "sea": _sat(t.masks["ocean"]),
        **{k: _sat(v) for k, v in feature.items()},
    }
    st.busy = np.zeros(t.shape, bool)
    return st


def _types_of(t: TileTruth) -> set[str]:
    """The region types a tile can provide."""
    if t.site.biome in BIOME_TYPE:
        return {BIOME_TYPE[t.site.biome]}
    has_river = t.masks["river"].any() or any(lake.type == "oxbow" for lake in t.lakes)
    return {"NR", "AR"} if has_river else {"NR"}


def _region_type(st: _TileState, r0: int, c0: int, h: int, w: int) -> str:
    biome = st.truth.site.biome
    if biome in BIOME_TYPE:
        return BIOME_TYPE[biome]
    return "AR" if st.count("river", r0, c0, h, w) > 0 else "NR"


def _allocate(n: int, providers: dict[str, list[int]]) -> dict[str, int]:
    """Regions per type: a floor for every available type, the rest by number of providing tiles."""
    types = [k for k in REGION_TYPES if providers.get(k)]
    if not types or n <= 0:
        return {}
    floor = min(max(MIN_PER_TYPE, math.ceil(0.1 * n)), n // len(types))
    quota = dict.fromkeys(types, floor)
    rest = n - floor * len(types)
    weights = np.array([len(providers[k]) for k in types], float)
    share = rest * weights / weights.sum()
    extra = np.floor(share).astype(int)
    order = np.argsort(-(share - extra), kind="stable")  # largest remainders first, ties in type order
    extra[order[: rest - int(extra.sum())]] += 1
    for k, e in zip(types, extra, strict=True):
        quota[k] += int(e)
    return quota


def _round_side(x: float, lo: int, hi: int) -> int:
    return int(min(max(SIDE_STEP * round(x / SIDE_STEP), lo), hi))


def _try_place(st: _TileState, want: str | None, negative: bool, side: float, aspect: float) -> dict | None:
    """Place one rectangle of (about) the given size in a tile; None if no position fits."""
    n_rows, n_cols = st.truth.shape
    lo = max(SIDE_STEP, _round_side(min(n_rows, n_cols) * SIDE_MIN_FRAC, SIDE_STEP, 10**9))
    hi = max(lo, (int(min(n_rows, n_cols) * SIDE_MAX_FRAC) // SIDE_STEP) * SIDE_STEP)
    rng = st.rng
    scale = 1.0
    for attempt in range(TRIES):
        if attempt and attempt % SHRINK_EVERY == 0:
            scale *= SHRINK
        h = _round_side(side * scale * math.sqrt(aspect), lo, hi)
        w = _round_side(side * scale / math.sqrt(aspect), lo, hi)
        r0 = int(rng.integers(0, n_rows - h + 1))
        c0 = int(rng.integers(0, n_cols - w + 1))
        kind = _region_type(st, r0, c0, h, w)
        if want is not None and kind != want:
            continue
        if st.busy[r0 : r0 + h, c0 : c0 + w].any() or st.count("sea", r0, c0, h, w) > MAX_SEA_SHARE * h * w:
            continue
        lakes = st.count("typical", r0, c0, h, w)
        if negative:
            if st.count("max", r0, c0, h, w) > 0:
                continue
        elif lakes < MIN_LAKE_PX:
            continue
        if kind in st.sat and attempt < TRIES // 2 and st.count(kind, r0, c0, h, w) == 0:
            continue  # prefer rectangles that show their type's feature
        st.busy[r0 : r0 + h, c0 : c0 + w] = True
        region = {
            "tile_index": st.index,
            "region_type": kind,
            "row_off": r0,
            "col_off": c0,
            "height": h,
            "width": w,
            "lake_fraction": lakes / (h * w),
        }
        st.placed.append(region)
        return region
    return None


def build_regions(truths: list[TileTruth], *, n_regions: int, seed: int) -> gpd.GeoDataFrame:
    """Draw the world's sample regions.

    Args:
        truths: every tile of the world, in the world's order.
        n_regions: number of regions wanted (the paper labels 799).
        seed: the world's seed.

    Returns:
        One row per region, sorted by tile then position, with ``region_id`` ("R0001" ...),
        ``tile``, ``region_type`` (NR, AR, BR, IL, SL), ``biome``, ``row_off``, ``col_off``, ``height``,
        ``width`` (10 m pixels on the tile grid), ``area_km2``, ``lake_fraction`` (typical extent),
        ``crs_tile`` (EPSG code of the tile grid) and the rectangle as geometry in EPSG:4326.
    """
    if n_regions < 0:
        raise ValueError(f"n_regions must be >= 0, got {n_regions}")
    states = [_state(i, t, seed) for i, t in enumerate(truths)]
    providers: dict[str, list[int]] = {k: [] for k in REGION_TYPES}
    for st in states:
        for k in _types_of(st.truth):
            providers[k].append(st.index)
    quota = _allocate(n_regions, providers)
    rng = np.random.default_rng([seed, 11])

    # Slots: (tile, type, negative, side, aspect), dealt round-robin over each type's tiles.
    slots = []
    for kind, q in quota.items():
        tiles = [providers[kind][j] for j in rng.permutation(len(providers[kind]))]
        slots.extend((tiles[j % len(tiles)], kind) for j in range(q))
    n_neg = round(NEGATIVE_SHARE * len(slots))
    negative = np.zeros(len(slots), bool)
    negative[rng.choice(len(slots), n_neg, replace=False)] = True
    full = []
    for (tile, kind), neg in zip(slots, negative, strict=True):
        tile_px = min(truths[tile].shape)
        lo, hi = tile_px * SIDE_MIN_FRAC, tile_px * SIDE_MAX_FRAC
        side = math.exp(rng.uniform(math.log(lo), math.log(hi)))
        aspect = math.exp(rng.uniform(-math.log(ASPECT_MAX), math.log(ASPECT_MAX)))
        full.append((tile, kind, bool(neg), side, aspect))
    # Within a tile, large rectangles first: they need the most room.
    full.sort(key=lambda s: (s[0], -s[3]))

    missing = 0
    for tile, kind, neg, side, aspect in full:
        order = [tile] + [t for t in providers[kind] if t != tile]
        placed = None
        for negative_try in (True, False) if neg else (False,):
            for t in order:
                placed = _try_place(states[t], kind, negative_try, side, aspect)
                if placed:
                    break
            if placed:
                break
        if placed is None:  # any tile, any type
            for st in states:
                placed = _try_place(st, None, False, side, aspect)
                if placed:
                    break
        missing += placed is None
    if missing:
        warnings.warn(
            f"placed {n_regions - missing} of {n_regions} sample regions: the tiles are full",
            RuntimeWarning,
            stacklevel=2,
        )
    return _to_frame(states)


def _to_frame(states: list[_TileState]) -> gpd.GeoDataFrame:
    """Regions as a GeoDataFrame in EPSG:4326, numbered in tile, row, column order."""
    parts = []
    for st in states:
        t = st.truth
        rows = sorted(st.placed, key=lambda r: (r["row_off"], r["col_off"]))
        if not rows:
            continue
        geoms = []
        for r in rows:
            x0, y0 = t.transform @ (r["col_off"], r["row_off"])
            x1, y1 = t.transform @ (r["col_off"] + r["width"], r["row_off"] + r["height"])
            rect = box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
            geoms.append(shapely.segmentize(rect, 8 * PIXEL_M))  # edges stay true after reprojection
        df = pd.DataFrame(rows)
        df["tile"] = t.site.name
        df["biome"] = t.site.biome
        df["area_km2"] = df["height"] * df["width"] * (PIXEL_M * PIXEL_M) / 1e6
        df["crs_tile"] = int(t.crs.to_epsg())
        parts.append(gpd.GeoDataFrame(df, geometry=gpd.GeoSeries(geoms, crs=t.crs)).to_crs(4326))
    if not parts:
        empty = {
            c: pd.Series(dtype="object" if c in ("region_id", "tile", "region_type", "biome") else "float64")
            for c in COLUMNS
        }
        return gpd.GeoDataFrame(empty, geometry=gpd.GeoSeries([], crs=4326), crs=4326)
    out = gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), geometry="geometry", crs=4326)
    out["region_id"] = [f"R{i:04d}" for i in range(1, len(out) + 1)]
    for c in ("row_off", "col_off", "height", "width", "crs_tile"):
        out[c] = out[c].astype("int64")
    return out[[*COLUMNS, "geometry"]]
