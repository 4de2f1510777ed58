"""A simulated analyst: the demo's stand-in for the paper's hand-chosen thresholds and hand edits.

On the simulated world the truth is known, so the demo can make the two hand steps of
section 2.2 the way a careful but human analyst would, and store them as the same data a real
analyst produces (a threshold table and an edit layer; :mod:`lakepaper.samples.labels`):

1. **Threshold.** The analyst slides the NDWI threshold and keeps the value whose label looks
   best: here the value on a 0.05 grid from -0.30 to 0.50 with the highest IoU against the
   truth (for a region without lakes, the fewest false lake pixels), ties to the value nearest 0.
2. **Edits.** The analyst draws a *remove* polygon around each blob of false lake pixels and an
   *add* polygon around each missed part of a lake, tracing pixel edges by hand. Imperfect, as
   hands are: polygons are simplified by ``TRACE_TOLERANCE_PX`` (corners cut, so boundaries are
   not pixel-perfect), and a blob smaller than ``SMALL_PX`` pixels is overlooked with
   probability ``OVERLOOK_P`` (small ponds missed, specks left in).

Randomness: ``default_rng([seed, 33, region number])``, so the same world and seed give the same
edits. Nothing here is used outside the demo: on real data the thresholds and edits are an
analyst's files.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
from rasterio.features import shapes
from rasterio.transform import Affine
from shapely.geometry import box, shape

from lakepaper import scoring
from lakepaper.samples.labels import initial_label, iou_counts

THRESHOLD_GRID = np.round(np.arange(-0.30, 0.501, 0.05), 2)
TRACE_TOLERANCE_PX = 0.6
SMALL_PX = 6
OVERLOOK_P = 0.5


def choose_threshold(ndwi: np.ndarray, truth: np.ndarray) -> float:
    """The grid threshold whose NDWI label best matches the truth (see the module docstring)."""
    best, best_score = 0.0, None
    for t in sorted(THRESHOLD_GRID, key=abs):  # ties go to the value nearest 0
        c = iou_counts(initial_label(ndwi, t), truth)
        score = scoring.scores_of(c)["iou"] if truth.any() else -c["fp"]  # with truth, IoU is defined
        if best_score is None or score > best_score:
            best, best_score = float(t), score
    return best


def _blobs(mask: np.ndarray, transform: Affine) -> list[tuple[object, int]]:
    """Polygons of the blobs of ``mask`` in map coordinates, with their pixel counts.

    Blobs are 4-connected: 8-connected ones give rings that touch themselves (invalid polygons).
    """
    out = []
    for geom, _ in shapes(mask.astype(np.uint8), mask=mask, connectivity=4, transform=transform):
        poly = shape(geom)
        out.append((poly, int(round(poly.area / abs(transform.a * transform.e)))))
    return out


def make_edits(
    initial: np.ndarray,
    truth: np.ndarray,
    transform: Affine,
    region_id: str,
    rng: np.random.Generator,
) -> gpd.GeoDataFrame:
    """The analyst's edit polygons for one region (in the region's map CRS, no CRS set).

    Returns:
        Columns ``region_id``, ``action`` (``add``/``remove``), ``pixels`` (the blob's size) and
        the traced polygon.
    """
    tol = TRACE_TOLERANCE_PX * abs(transform.a)
    rows_n, cols_n = initial.shape
    left, top = transform.c, transform.f
    rect = box(left, top + transform.e * rows_n, left + transform.a * cols_n, top)  # drawn inside the region
    rows = []
    for action, mask in (("remove", (initial > 0) & ~truth), ("add", truth & (initial == 0))):
        for poly, n in _blobs(mask, transform):
            if n < SMALL_PX and rng.random() < OVERLOOK_P:
                continue
            traced = poly.simplify(tol, preserve_topology=True).intersection(rect)
            for part in getattr(traced, "geoms", [traced]):
                if part.geom_type == "Polygon" and part.is_valid and not part.is_empty:
                    rows.append({"region_id": region_id, "action": action, "pixels": n, "geometry": part})
    return gpd.GeoDataFrame(rows, columns=["region_id", "action", "pixels", "geometry"], geometry="geometry")
