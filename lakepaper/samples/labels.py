"""Labels of a sample region: an NDWI threshold, then the analyst's edits, re-applied every run.

The paper (section 2.2) labels a region in two steps: threshold the composite's NDWI at a value
chosen by hand for that region, then edit the result by hand to remove commission and omission
errors. Here both steps are *data*, kept beside the code, so a papermill run reproduces every
label exactly:

* the **threshold table** (CSV: ``region_id, threshold``) overrides the default threshold
  (``params["ndwi_threshold"]``) per region; the interactive chooser of notebook 02 writes it;
* the **edit layer** (any vector file GeoPandas reads, e.g. a GeoPackage drawn in QGIS) holds
  polygons with ``region_id`` and ``action`` (``add``: lake; ``remove``: not lake). Edits in any
  CRS are reprojected to the region's tile grid. The label is ``(NDWI > t | add) & ~remove``,
  ``remove`` winning where the two overlap; a polygon burns the pixels whose centre it covers.

Example:
    >>> label = initial_label(ndwi, 0.1)  # doctest: +SKIP
    >>> label = apply_edits(label, edits_of_region, transform)  # doctest: +SKIP
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from rasterio.features import rasterize
from rasterio.transform import Affine
from shapely.geometry import box

from lakepaper import io, scoring
from lakepaper.errors import InputError

ACTIONS = ("add", "remove")
EDIT_COLUMNS = ("region_id", "action")


def initial_label(ndwi: np.ndarray, threshold: float) -> np.ndarray:
    """``NDWI > threshold`` as uint8 0/1; pixels without an observation (NaN) are not lake."""
    return (np.nan_to_num(ndwi, nan=-1.0) > threshold).astype(np.uint8)


# --- the threshold table ------------------------------------------------------------------


def read_thresholds(path: str | os.PathLike[str] | None) -> dict[str, float]:
    """region_id -> threshold from a CSV with columns ``region_id, threshold`` (None: empty)."""
    if path is None or str(path) == "":
        return {}
    path = Path(path)
    if not path.exists():
        raise InputError(path, "threshold table not found")
    table = pd.read_csv(path, dtype={"region_id": str})
    missing = {"region_id", "threshold"} - set(table.columns)
    if missing:
        raise InputError(path, f"threshold table lacks column(s) {sorted(missing)}")
    bad = table[~table.threshold.between(-1.0, 1.0)]
    if not bad.empty:
        r = bad.iloc[0]
        raise InputError(path, f"region {r.region_id}: threshold {r.threshold!r} is outside NDWI's -1..1")
    if table.region_id.duplicated().any():
        raise InputError(path, f"region {table.region_id[table.region_id.duplicated()].iloc[0]} is listed twice")
    return dict(zip(table.region_id, table.threshold.astype(float), strict=True))


def write_thresholds(path: str | os.PathLike[str], thresholds: Mapping[str, float]) -> Path:
    """Write (atomically) a threshold table, sorted by region."""
    table = pd.DataFrame(sorted(thresholds.items()), columns=["region_id", "threshold"])
    return io.write_text(path, table.to_csv(index=False, float_format="%.4f"))


def set_threshold(path: str | os.PathLike[str], region_id: str, threshold: float) -> Path:
    """Record one region's threshold in the table at ``path`` (created if absent)."""
    table = read_thresholds(path) if Path(path).exists() else {}
    table[region_id] = round(float(threshold), 4)
    return write_thresholds(path, table)


# --- the edit layer -----------------------------------------------------------------------


def read_edits(path: str | os.PathLike[str] | None) -> gpd.GeoDataFrame:
    """The edit layer, checked: columns, actions, valid non-empty geometries, a CRS.

    Raises:
        InputError: naming the file and, where it applies, the region of the offending edit.
    """
    if path is None or str(path) == "":
        return gpd.GeoDataFrame({"region_id": [], "action": []}, geometry=[], crs=4326)
    path = Path(path)
    if not path.exists():
        raise InputError(path, "edit layer not found")
    edits = gpd.read_file(path)
    missing = set(EDIT_COLUMNS) - set(edits.columns)
    if missing:
        raise InputError(path, f"edit layer lacks column(s) {sorted(missing)}; needs {list(EDIT_COLUMNS)}")
    if edits.crs is None:
        raise InputError(path, "edit layer has no CRS; save it with one (any CRS is reprojected)")
    edits["region_id"] = edits.region_id.astype(str)
    for r in edits.itertuples():
        if r.action not in ACTIONS:
            raise InputError(path, f"region {r.region_id}: action {r.action!r}, expected one of {ACTIONS}")
        if r.geometry is None or r.geometry.is_empty:
            raise InputError(path, f"region {r.region_id}: an edit has an empty geometry")
        if not r.geometry.is_valid:
            why = shapely.is_valid_reason(r.geometry)
            raise InputError(path, f"region {r.region_id}: invalid {r.action} polygon ({why}); fix it, e.g. make_valid")
        if r.geometry.geom_type not in ("Polygon", "MultiPolygon"):
            raise InputError(path, f"region {r.region_id}: {r.geometry.geom_type} edit; edits are polygons")
    return edits


def edits_for_region(
    edits: gpd.GeoDataFrame,
    region_id: str,
    crs: int | str,
    transform: Affine,
    shape: tuple[int, int],
    *,
    source: str | os.PathLike[str] = "edits",
) -> gpd.GeoDataFrame:
    """A region's edits in its tile CRS, clipped to its rectangle.

    Raises:
        InputError: an edit of this region lies wholly outside the region's rectangle.
    """
    mine = edits[edits.region_id == region_id]
    if mine.empty:
        return mine
    mine = mine.to_crs(crs)
    left, top = transform.c, transform.f
    rect = box(left, top + transform.e * shape[0], left + transform.a * shape[1], top)
    outside = ~mine.intersects(rect)
    if outside.any():
        b = mine[outside].geometry.iloc[0].bounds
        raise InputError(
            source,
            f"region {region_id}: an {mine[outside].action.iloc[0]} edit at {tuple(round(v) for v in b)} "
            f"(EPSG:{mine.crs.to_epsg()}) lies outside the region {tuple(round(v) for v in rect.bounds)}",
        )
    partly = ~mine.within(rect.buffer(0.01 * abs(transform.a)))  # reprojection round-off is not a crossing
    if partly.any():
        warnings.warn(f"region {region_id}: {int(partly.sum())} edit(s) cross the region's edge; clipped", stacklevel=2)
    return mine.assign(geometry=mine.intersection(rect))


def apply_edits(label: np.ndarray, edits: gpd.GeoDataFrame, transform: Affine) -> np.ndarray:
    """``(label | add) & ~remove`` with the edits (already in the label's CRS) burnt at pixel centres."""
    out = label.astype(bool).copy()
    for action in ACTIONS:
        shapes = [g for g in edits.geometry[edits.action == action] if not g.is_empty]
        if not shapes:
            continue
        burnt = rasterize(shapes, out_shape=label.shape, transform=transform, fill=0, default_value=1, dtype="uint8")
        if action == "add":
            out |= burnt.astype(bool)
        else:
            out &= ~burnt.astype(bool)
    return out.astype(np.uint8)


def iou_counts(pred: np.ndarray, truth: np.ndarray) -> dict[str, int]:
    """True positives, false positives and false negatives of two binary masks (:func:`lakepaper.scoring.confusion`)."""
    c = scoring.confusion(truth, np.asarray(pred).astype(bool), nodata=None)
    return {k: c[k] for k in ("tp", "fp", "fn")}
