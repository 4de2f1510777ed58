"""Scores per optical water type: where the water indices fail, and whether the model does.

A lake mapper that has learned "NDWI > 0 means water" fails on highly turbid water (red and NIR
as bright as green), on scum-covered eutrophic lakes and near bright shores; one that uses all its
bands does not. To see which, every pixel near water is given the optical type of the water it
belongs to, and any binary map (NDWI > 0, MNDWI > 0, the model's prediction) is scored per type.

The *zone* of a type: the pixels whose water (any extent, from a truth's ``water_type.tif``) is of
that type, grown by ``margin_px`` pixels into the land around it, each grown pixel going to the
nearest water. Inside a zone, the truth is the lake at its typical extent (``lake_id > 0``), so
a false positive counts against the type whose shore it lies on. Codes are those of
:data:`lakepaper.truth.WATER_TYPES` (1, 2, ...; 0 none).

Two *scopes* (:data:`SCOPES`, :func:`scope_zones`) say which water makes the zones:

* ``water``: every water body of the type. Rivers, sea and paddies (water, but not lakes) count as
  false where a map calls them lake: the lake product's view, before stage 05's river mask. Highly
  turbid water is mostly river in the world (as on Earth), so this scope mixes two questions: does
  a map see the type's water, and does it tell lakes from rivers;
* ``lakes``: the lakes of the type alone (their largest extent, ``lake_id_max``, where the truth has
  it); other water and the land around it are left out. This is the first question alone: where the
  indices fail on the water itself and whether the model does. The second is the river mask's.

* :func:`zones`, :func:`type_counts`, :func:`type_table`: the scoring core, on arrays;
* :func:`index_maps`, :func:`composite_index_maps`: ``NDWI > 0`` and ``MNDWI > 0`` from bands or a composite;
* a whole run scored on the pixels no model saw in training or validation (stage 06), per tile from
  a truth folder, stage 01's composites and stage 04's masks, is :func:`lakepaper.regions.water_type_counts`
  (there, beside the other readers of stage outputs, so that this module stays free of them and
  stage 00 can use it without depending on the compositing code).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd
from scipy import ndimage

from lakepaper import scoring
from lakepaper.errors import InputError, ParameterError
from lakepaper.truth import WATER_TYPES, Truth

#: Pixels of land around water that count toward its type (30 m at 10 m pixels).
MARGIN_PX = 3
#: The methods :func:`lakepaper.regions.water_type_counts` scores, in the order tables show them
#: (``model``: with a prediction).
METHODS = ("NDWI > 0", "MNDWI > 0", "model")
#: The splits of stage 02 whose regions a model has seen (their pixels are not held out).
SEEN_SPLITS = ("train", "val")
#: The truth raster of the per-type scores (:class:`lakepaper.truth.Truth`).
TRUTH_NAME = "water_type"
#: Which water makes a type's zones (module docstring): every water body, or the lakes alone.
SCOPES = ("water", "lakes")


def zones(water_type: np.ndarray, *, margin_px: int = MARGIN_PX) -> np.ndarray:
    """Per pixel the code of the type zone it lies in (0: farther than ``margin_px`` from water).

    Example:
        >>> w = np.zeros((1, 9), np.uint8); w[0, 1] = 3; w[0, 7] = 1
        >>> zones(w, margin_px=2).tolist()
        [[3, 3, 3, 3, 0, 1, 1, 1, 1]]
    """
    water_type = np.asarray(water_type)
    wet = water_type > 0
    if not wet.any():
        return np.zeros(water_type.shape, np.uint8)
    dist, (ri, ci) = ndimage.distance_transform_edt(~wet, return_indices=True)
    nearest = water_type[ri, ci]
    return np.where(dist <= margin_px, nearest, 0).astype(np.uint8)


def scope_zones(
    water_type: np.ndarray, lake_extent: np.ndarray, scope: str, *, margin_px: int = MARGIN_PX
) -> tuple[np.ndarray, np.ndarray]:
    """The type zones of a scope (:data:`SCOPES`) and the pixels it counts.

    Args:
        water_type: type codes of every pixel ever water (0: never).
        lake_extent: True where a lake lies at any extent (the truth's ``lake_id_max > 0``).
        scope: ``water`` (every water body; every pixel counts) or ``lakes`` (lake water alone; water that
            is never a lake, and land nearer to it than to a lake, left out).

    Example:
        >>> w = np.array([[2, 2, 0, 0, 3, 3]], np.uint8); lake = np.array([[1, 1, 0, 0, 0, 0]], bool)
        >>> [z.tolist() for z in scope_zones(w, lake, "lakes", margin_px=1)]
        [[[2, 2, 2, 0, 0, 0]], [[True, True, True, False, False, False]]]
    """
    if _checked(scope) == "water":
        return zones(water_type, margin_px=margin_px), np.ones(np.shape(water_type), bool)
    water_type = np.asarray(water_type)
    lake_water = np.asarray(lake_extent, bool) & (water_type > 0)
    other = (water_type > 0) & ~lake_water  # rivers, sea, paddies: water that is never a lake
    keep = ~other
    if other.any() and lake_water.any():  # a shore pixel nearer to a river than to a lake is the river's
        keep &= ~(ndimage.distance_transform_edt(~other) < ndimage.distance_transform_edt(~lake_water))
    lake_zone = zones(np.where(lake_water, water_type, 0), margin_px=margin_px)
    return np.where(keep, lake_zone, 0).astype(np.uint8), keep


def type_counts(
    zone: np.ndarray,
    lake: np.ndarray,
    maps: Mapping[str, np.ndarray],
    *,
    valid: np.ndarray | None = None,
) -> pd.DataFrame:
    """tp, fp and fn of each map in each type zone.

    Args:
        zone: type codes from :func:`zones`.
        lake: the truth, non-zero = lake.
        maps: method name -> boolean map (True = lake), each of the zone's shape.
        valid: pixels to count (e.g. outside the training regions, observed at least once).

    Returns:
        One row per (water_type, method) with counts; types without pixels are left out.
    """
    keep = zone > 0 if valid is None else (zone > 0) & np.asarray(valid, bool)
    z = zone[keep].astype(np.int64)
    truth = np.asarray(lake)[keep] > 0
    n = len(WATER_TYPES) + 1
    rows = []
    for method, m in maps.items():
        scoring.check_pair(zone, m, name=f"type zones/{method}")
        pred = np.asarray(m, bool)[keep]
        tp = np.bincount(z, weights=truth & pred, minlength=n)
        fp = np.bincount(z, weights=~truth & pred, minlength=n)
        fn = np.bincount(z, weights=truth & ~pred, minlength=n)
        px = np.bincount(z, weights=truth, minlength=n)
        for code, name in enumerate(WATER_TYPES, start=1):
            if tp[code] + fp[code] + fn[code] + px[code] == 0:
                continue
            rows.append(
                {
                    "water_type": name,
                    "method": method,
                    "lake_px": int(px[code]),
                    "tp": int(tp[code]),
                    "fp": int(fp[code]),
                    "fn": int(fn[code]),
                }
            )
    return pd.DataFrame(rows, columns=["water_type", "method", "lake_px", "tp", "fp", "fn"])


def _checked(scope: str) -> str:
    if scope not in SCOPES:
        raise ParameterError("scope", f"expected one of {SCOPES}, got {scope!r}")
    return scope


def _in_scope(counts: pd.DataFrame, scope: str) -> pd.DataFrame:
    """The rows of one scope, where the counts have a ``scope`` column (a whole run's do)."""
    return counts[counts["scope"] == _checked(scope)] if "scope" in counts else counts


def type_table(counts: pd.DataFrame, *, score: str = "iou", scope: str = "water") -> pd.DataFrame:
    """Counts pooled per type and method: one row per water type, one column per method's ``score``.

    Also a ``lake_px`` column (the lake pixels of the type) and a row ``all``. Counts with a ``scope``
    column (:func:`lakepaper.regions.water_type_counts`) are taken in ``scope`` (:data:`SCOPES`).
    """
    counts = _in_scope(counts, scope)
    if counts.empty:
        return pd.DataFrame()
    present = set(counts.water_type)
    rows = [t for t in WATER_TYPES if t in present] + ["all"]
    out = {}
    for method, g in counts.groupby("method", sort=False):
        out[method] = scoring.pooled(g, "water_type", order=[t for t in WATER_TYPES if t in set(g.water_type)])[score]
    table = pd.DataFrame(out).reindex(rows)
    # a type's lake pixels do not depend on the method, but a method lists a type only where it has counts
    px = counts.groupby(["method", "water_type"])["lake_px"].sum().groupby("water_type").max()
    px["all"] = px.sum()
    table.insert(0, "lake_px", px.reindex(table.index).fillna(0).astype(int))
    table.index.name = "water_type"
    return table


def type_scores(counts: pd.DataFrame) -> pd.DataFrame:
    """Counts pooled per method and type, with every score: the long form of :func:`type_table`.

    Returns:
        One row per (scope where the counts have one, method, water type, and ``all``): ``scope``,
        ``method``, ``water_type``, ``lake_px``, tp, fp, fn, recall, precision, F1 and IoU
        (:func:`lakepaper.scoring.pooled`); empty without counts.
    """
    if "scope" in counts:  # each scope on its own, in the order of SCOPES
        frames = [type_scores(g.drop(columns="scope")).assign(scope=s) for s, g in counts.groupby("scope", sort=False)]
        if not frames:
            return pd.DataFrame()
        out = pd.concat(frames, ignore_index=True).sort_values(
            "scope", key=lambda c: c.map(SCOPES.index), kind="stable"
        )
        return out[["scope", *(c for c in out.columns if c != "scope")]].reset_index(drop=True)
    frames = []
    for method, g in counts.groupby("method", sort=False):
        t = scoring.pooled(
            g,
            "water_type",
            order=[t for t in WATER_TYPES if t in set(g.water_type)],
            keys=("tp", "fp", "fn"),
            describe=lambda rows: {"lake_px": int(rows["lake_px"].sum())},
        )
        frames.append(t.rename_axis("water_type").reset_index().assign(method=method))
    if not frames:
        return pd.DataFrame()
    out = pd.concat(frames, ignore_index=True)
    return out[["method", *(c for c in out.columns if c != "method")]]


def table_records(table: pd.DataFrame | None) -> list[dict] | None:
    """A per-type table (:func:`type_table`) as manifest records, one per row, scores rounded to 4
    digits, NaN as None (JSON has no NaN); None for no table."""
    if table is None or table.empty:
        return None
    rounded = table.round(4).astype(object).where(table.notna(), None)
    return rounded.reset_index().to_dict("records")


def index_maps(b3: np.ndarray, b8: np.ndarray, b11: np.ndarray) -> dict[str, np.ndarray]:
    """The two index maps every lake mapper starts from: ``NDWI > 0`` (B3, B8) and ``MNDWI > 0`` (B3, B11).

    Any consistent reflectance scale (integer digital numbers are taken as floats, never wrapped);
    pixels where a band is NaN are not water.
    """
    b3, b8, b11 = (np.asarray(b, np.float64) for b in (b3, b8, b11))
    with np.errstate(invalid="ignore", divide="ignore"):
        ndwi = (b3 - b8) / (b3 + b8)
        mndwi = (b3 - b11) / (b3 + b11)
    return {"NDWI > 0": np.nan_to_num(ndwi, nan=-1.0) > 0, "MNDWI > 0": np.nan_to_num(mndwi, nan=-1.0) > 0}


def composite_index_maps(
    bands: np.ndarray, band_names: Iterable[str], *, source: object = "composite"
) -> dict[str, np.ndarray]:
    """``NDWI > 0`` and ``MNDWI > 0`` of a composite (:func:`lakepaper.composite.local.read_composite`).

    The paper's composite (B2 B3 B4 B11 NDWI) has no B8: its ``NDWI`` band, the mean of per-scene
    NDWI (the index stage 02 thresholds into labels), gives ``NDWI > 0``; a composite with B8 and no
    NDWI band gives it from B3 and B8. ``MNDWI > 0`` is from the mean B3 and B11 (B11 at 20 m,
    resampled to 10 m by the composite). NaN (never observed) is not water.

    Raises:
        InputError: a band needed is missing (``source`` names the file).
    """
    names = list(band_names)
    need = {"B3", "B11"} | ({"NDWI"} if "B8" not in names else set())
    missing = sorted(need - set(names))
    if missing:
        raise InputError(source, f"the composite lacks band(s) {missing} for NDWI > 0 and MNDWI > 0 (it has {names})")
    band = {n: bands[i] for i, n in enumerate(names)}
    b8 = band["B8"] if "B8" in band else band["B3"]  # without B8, NDWI is the composite's own band
    maps = index_maps(band["B3"], b8, band["B11"])
    if "NDWI" in band:
        maps["NDWI > 0"] = np.nan_to_num(np.asarray(band["NDWI"], np.float64), nan=-1.0) > 0
    return maps


def has_water_types(truth: Truth, tiles: Iterable[str] | None = None) -> bool:
    """Whether a truth folder has the per-pixel water types (``water_type.tif``) of every tile given (default: all)."""
    names = list(truth.tiles().tile) if tiles is None else list(tiles)
    return bool(names) and all(truth.has(t, TRUTH_NAME) for t in names)
