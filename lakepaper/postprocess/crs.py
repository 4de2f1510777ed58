"""Shapely arrays from one CRS to another, with the transformers and CRS keys cached.

Post-processing reprojects many small arrays (a partition's pieces, a reference's features, a tile's
core) between a handful of CRSs: the tiles' UTM zones and EPSG:4326. Building a ``pyproj``
transformer costs milliseconds and ``CRS.to_wkt`` ~0.1 ms, so both are cached: transformers per
pair of WKT keys (:func:`transformer`), keys per CRS object (:func:`crs_key`).
"""

from __future__ import annotations

import functools

import numpy as np
import shapely
from pyproj import CRS, Transformer


@functools.lru_cache(maxsize=256)
def transformer(src: str, dst: str) -> Transformer:
    """The transformer between two CRSs given as WKT (cached), longitude/easting first."""
    return Transformer.from_crs(CRS.from_user_input(src), CRS.from_user_input(dst), always_xy=True)


_KEYS: dict[int, tuple[object, str]] = {}


def crs_key(crs) -> str:
    """A CRS as WKT, cached per object (``to_wkt`` costs ~0.1 ms; it is asked for per piece)."""
    hit = _KEYS.get(id(crs))
    if hit is not None and hit[0] is crs:
        return hit[1]
    key = CRS.from_user_input(crs).to_wkt()
    if len(_KEYS) > 4096:
        _KEYS.clear()
    _KEYS[id(crs)] = (crs, key)
    return key


def reproject(geoms, src, dst) -> np.ndarray:
    """Geometries from CRS ``src`` to ``dst`` (vertices transformed; no densification)."""
    geoms = np.asarray(geoms, dtype=object)
    ks, kd = crs_key(src), crs_key(dst)
    if ks == kd or not len(geoms):
        return geoms
    tr = transformer(ks, kd)

    def fn(xy: np.ndarray) -> np.ndarray:
        x, y = tr.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geoms, fn)
