"""The two published segmentation datasets of the compendium, read exactly as published.

* :mod:`~lakepaper.datasets.qtp`: Qinghai-Tibet Plateau lakes (6,774 RGB Google Earth images,
  256 x 256, 17 m; ground truths with lakes in red and background in black);
* :mod:`~lakepaper.datasets.checkdam`: check dams in gullies from one Jilin-1 image (0.75 m,
  UTM zone 6N): grid cells, screening, Labelme rasterisation, augmentation x5, split 6:2:2;
* :mod:`~lakepaper.datasets.labelme`: Labelme JSON files of any version;
* :mod:`~lakepaper.datasets.images`: image files (JPEG, PNG, TIFF) read whole or refused;
* :mod:`~lakepaper.datasets.augment`: flips, rotations and brightness, georeferencing kept;
* :mod:`~lakepaper.datasets.split`: seeded train/val/test splits of groups of samples;
* :mod:`~lakepaper.datasets.metrics`: mIoU and overall accuracy beside recall/precision/F1/IoU;
* :mod:`~lakepaper.datasets.replicas`: small replicas in the published layouts, from the
  simulated world (QTP) or drawn (check dams), so everything runs without the downloads;
* :mod:`~lakepaper.datasets.training`: the U-Net of stage 03 on these datasets, and the RGB ->
  Sentinel-2 pre-training transfer.
"""
