"""Stage 01: Sentinel-2 compositing (section 2.1 of the paper).

* :mod:`~lakepaper.composite.sources`: where the imagery comes from (the world's STAC catalog, any
  STAC catalog or API, composites made elsewhere) and the stage's output contract;
* :mod:`~lakepaper.composite.stac`: the STAC reader (pystac-client, odc-stac; scale and offset);
* :mod:`~lakepaper.composite.local`: the local backend's engine (recipe, blocks) and the composite reader;
* :mod:`~lakepaper.composite.masks`: per-scene clear-observation masks (cloud, shadow, buffer, snow);
* :mod:`~lakepaper.composite.kernel`: the single-pass clear-observation mean;
* :mod:`~lakepaper.composite.gee`: the Earth Engine backend.
"""

from lakepaper.composite.local import COUNT_BAND, NODATA, read_composite
from lakepaper.composite.sources import composite_stac, composite_stac_tile, find_tiles

__all__ = ["COUNT_BAND", "NODATA", "composite_stac", "composite_stac_tile", "find_tiles", "read_composite"]
