"""Stage 05: the U-Net's lake masks post-processed into the lake product (paper section 2.4), fully open.

The authors ran these steps in ArcGIS; here they are geopandas, shapely 2 and rasterio:

* :mod:`.vectorize` - masks to polygons, one polygon per lake across tile borders, and back to pixels;
* :mod:`.references` - every reference dataset read by path, in whatever CRS it comes in;
* :mod:`.rules` - ocean, river (cases a-d), minimum area, completion, manual edits;
* :mod:`.product` - the product table and its GeoPackage and GeoParquet;
* :mod:`.stage` - the whole pass over a prediction, partition by partition;
* :mod:`.evaluate` - each rule against the simulated truth, Table 2 and lake-level accuracy.
"""
