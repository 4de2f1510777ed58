"""Cloud probability from the L1C assets, as Earth Engine's ``COPERNICUS/S2_CLOUD_PROBABILITY`` holds it.

Earth Engine publishes, for every Sentinel-2 scene, the probability that the s2cloudless
classifier (Sentinel Hub's LightGBM model, package ``s2cloudless``) gives each pixel, computed on
the **top-of-atmosphere** (L1C) reflectances of ten bands (B01 B02 B04 B05 B08 B8A B09 B10 B11 B12).
The public STAC collections have no such layer, so a STAC source computes it here, scene by scene,
from the L1C item of each L2A item:

1. the ten bands are read at ``resolution_m`` (``cloudless_resolution_m``, 80 m by default) on the
   tile's own grid, averaging finer pixels (odc-stac, ``resampling="average"``), and scaled to
   reflectance with the item's ``raster:bands`` scale and offset (the -1000 DN offset of processing
   baseline 04.00 included);
2. the classifier runs on those pixels (no averaging or dilation of its own: the recipe's buffer
   does that), as the simulated world made its own ``s2cloudless`` asset;
3. the probability is interpolated bilinearly to 10 m (:func:`upsample_rows`, the same numbers as
   ``scipy.ndimage.zoom(order=1, grid_mode=True, mode="nearest")`` on the whole tile, computed for
   any block of rows) and stored as the asset is: 0..100, 255 where a band had no data.

Why 80 m: s2cloudless classifies ~37,000 pixels/s on one core here; at 10 m one 10,980 px
Sentinel-2 tile would take about an hour per scene. Sentinel Hub computes its precomputed layers at
160 m; the world's generator measured (its ``scenes.py``) that coarser blocks let small
clouds and cloud edges through (composite residue 7.5 % of pixels at 160 m, 5.3 % at 80 m, 2.9 % at
40 m). At 80 m a full tile is ~1,400 x 1,400 classifier pixels, about a minute per scene per core.

The L1C item of an L2A item is its ``derived_from`` link when the catalog has one (the world's
does), else the item of the ``sentinel-2-l1c`` collection whose id is the L2A id with ``_L2A``
replaced by ``_L1C`` (Earth Search v1 names them so).
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from lakepaper.composite import stac as reader
from lakepaper.errors import InputError

#: The bands the s2cloudless model reads, in its order.
BANDS = ("B01", "B02", "B04", "B05", "B08", "B8A", "B09", "B10", "B11", "B12")
#: The stored probability's no data (as the s2cloudless asset and Earth Engine's layer).
NODATA = 255
L1C_COLLECTION = "sentinel-2-l1c"


def l1c_items(source: str | os.PathLike[str], l2a_items: Sequence) -> list | None:
    """The L1C item of each L2A item, in their order; None when any has none (the catalog has no L1C)."""
    found: dict[str, Any] = {}
    wanted = {}
    for it in l2a_items:
        link = next((lk for lk in it.links if lk.rel == "derived_from"), None)
        if link is not None:
            try:
                target = link.resolve_stac_object(root=it.get_root()).target
            except Exception:  # noqa: BLE001  (a dangling link: fall back to the id)
                target = None
            if target is not None and str(getattr(target, "id", "")).endswith("_L1C"):
                found[it.id] = target
                continue
        wanted[it.id] = it.id.replace("_L2A", "_L1C")
    if wanted:
        src = str(source)
        if reader._is_api(src):
            others = _search_ids(src, list(wanted.values()))
        else:
            try:
                others = {o.id: o for o in reader._walk_static(src, L1C_COLLECTION)}
            except InputError:
                return None
        for l2a_id, l1c_id in wanted.items():
            if l1c_id not in others:
                return None
            found[l2a_id] = others[l1c_id]
    return [found[it.id] for it in l2a_items]


def _search_ids(api: str, ids: list[str]) -> dict:
    import pystac_client

    client = pystac_client.Client.open(api)
    return {it.id: it for it in client.search(collections=[L1C_COLLECTION], ids=ids).items()}


def coarse_probability(item, geobox10, resolution_m: float, detector=None) -> tuple[np.ndarray, np.ndarray]:
    """The s2cloudless probability (0..1, float32) of one L1C item at ``resolution_m`` on the tile's grid, and
    where all ten bands had data; both of shape ceil(rows / f) x ceil(cols / f), f = resolution / 10 m."""
    from odc.geo.geobox import GeoBox

    f = factor(geobox10, resolution_m)
    rows, cols = geobox10.shape
    coarse = GeoBox((math.ceil(rows / f), math.ceil(cols / f)), geobox10.affine * _scale(f), geobox10.crs)
    ds = reader.load([item], list(BANDS), coarse, resampling="average").compute()
    toa = np.stack([ds[b].isel(time=0).values for b in BANDS], axis=-1).astype(np.float32)
    valid = np.isfinite(toa).all(axis=-1)
    detector = detector or _detector()
    prob = detector.get_cloud_probability_maps(np.where(np.isfinite(toa), toa, 0.0)[None])[0]
    return prob.astype(np.float32), valid


def factor(geobox10, resolution_m: float) -> int:
    """The whole number of 10 m pixels per classifier pixel."""
    res = abs(geobox10.resolution.x)
    f = resolution_m / res
    if f < 1 or abs(f - round(f)) > 1e-9:
        raise InputError("cloudless_resolution_m", f"{resolution_m} m is not a whole multiple of the {res} m grid")
    return int(round(f))


def upsample_rows(coarse: np.ndarray, f: int, r0: int, r1: int, cols: int) -> np.ndarray:
    """Rows ``r0:r1`` (all ``cols`` columns) of ``coarse`` interpolated bilinearly to ``f`` times its resolution.

    The numbers of ``scipy.ndimage.zoom(coarse, f, order=1, grid_mode=True, mode="nearest")``: the
    centre of fine pixel ``x`` lies at ``(x + 0.5) / f - 0.5`` in coarse pixels, clamped to the edge
    pixels' centres; computed for any block of rows, so that a tile's blocks agree with the whole tile.
    """
    ry, wy = _weights(np.arange(r0, r1), f, coarse.shape[0])
    cx, wx = _weights(np.arange(cols), f, coarse.shape[1])
    c = coarse.astype(np.float64)
    top = c[ry[0]] * (1 - wy)[:, None] + c[ry[1]] * wy[:, None]
    return top[:, cx[0]] * (1 - wx)[None] + top[:, cx[1]] * wx[None]


def _weights(x: np.ndarray, f: int, n: int) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
    u = np.clip((x + 0.5) / f - 0.5, 0.0, n - 1.0)
    i0 = np.floor(u).astype(np.int64)
    i1 = np.minimum(i0 + 1, n - 1)
    return (i0, i1), u - i0


def _scale(f: int):
    from affine import Affine

    return Affine.scale(f)


def _detector():
    from s2cloudless import S2PixelCloudDetector

    return S2PixelCloudDetector(all_bands=False, average_over=0, dilation_size=0)


class FromL1C:
    """The probability of each scene of a tile, computed once per scene on first use (thread-safe) and then
    read block by block as the ``s2cloudless`` asset would be (uint8 0..100, :data:`NODATA`)."""

    def __init__(self, l1c: Sequence, geobox10, resolution_m: float) -> None:
        self.l1c, self.geobox, self.f = list(l1c), geobox10, factor(geobox10, resolution_m)
        self.resolution = resolution_m
        self._done: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._locks = [threading.Lock() for _ in self.l1c]
        self._detector = _detector()

    def rows(self, i: int, r0: int, r1: int) -> np.ndarray:
        """Rows ``r0:r1`` of scene ``i``'s probability at 10 m."""
        with self._locks[i]:
            if i not in self._done:
                self._done[i] = coarse_probability(self.l1c[i], self.geobox, self.resolution, self._detector)
        prob_c, valid_c = self._done[i]
        cols = self.geobox.shape[1]
        prob = np.clip(np.rint(upsample_rows(prob_c, self.f, r0, r1, cols) * 100), 0, 100).astype(np.uint8)
        ok = upsample_rows(valid_c.astype(np.float32), self.f, r0, r1, cols) > 0.5
        prob[~ok] = NODATA
        return prob
