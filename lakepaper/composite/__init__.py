"""Stage 01: Sentinel-2 compositing (section 2.1 of the paper).

* :mod:`~lakepaper.composite.masks`: per-scene clear-observation masks (cloud, shadow, buffer, snow);
* :mod:`~lakepaper.composite.kernel`: the single-pass clear-observation mean;
* :mod:`~lakepaper.composite.local`: the local backend, one GeoTIFF per tile, and its reader.
"""

from lakepaper.composite.local import COUNT_BAND, NODATA, composite_tile, read_composite, select_scenes

__all__ = ["COUNT_BAND", "NODATA", "composite_tile", "read_composite", "select_scenes"]
