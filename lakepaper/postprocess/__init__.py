"""Stage 05: the U-Net's lake masks post-processed into the lake product (paper section 2.4), fully open.

The authors ran these steps in ArcGIS; here they are geopandas, shapely 2 and rasterio:

* :mod:`.partitions` - the prediction's tiles on disk and each tile's share of the product;
* :mod:`.vectorize` - masks to polygons and polygons back to pixels;
* :mod:`.seams` - one polygon per lake across tile borders;
* :mod:`.crs` - reprojection of shapely arrays, cached;
* :mod:`.references` - every reference dataset read by path, in whatever CRS it comes in;
* :mod:`.rules` - ocean, river (cases a-d), minimum area, completion, manual edits;
* :mod:`.product` - the product table and its GeoPackage and GeoParquet;
* :mod:`.pipeline` - the whole pass over a prediction, step by step, partition by partition;
* :mod:`.evaluate` - each rule against the simulated truth, the scores of each step in the test regions,
  and lake-level accuracy.

The stage itself (inputs, outputs, manifest) is :mod:`lakepaper.stages.postprocess`; the choice of the
figures' examples is :mod:`lakepaper.figures.postprocess_examples`.
"""
