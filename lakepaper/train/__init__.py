"""Stage 03: training the U-Net as in the paper (section 2.3, Supplementary Table 1).

* :mod:`lakepaper.train.sampler`: area-proportional patches with flips; sequential test patches;
* :mod:`lakepaper.train.loss`: 1 - Dice over the batch; pooled confusion counts and scores;
* :mod:`lakepaper.train.loop`: :func:`~lakepaper.train.loop.train`, resumable, deterministic on CPU;
* :mod:`lakepaper.train.checkpoint`: checkpoints that carry their parameters and band order;
* :mod:`lakepaper.train.evaluate`: patch-level Table 1 of a split;
* :mod:`lakepaper.train.table`: Supplementary Table 1 from the parameters used.

The model itself is :class:`lakepaper.unet.UNet`.
"""
