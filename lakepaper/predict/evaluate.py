"""The stitched prediction against the labels of the sample regions (the check that tiling loses nothing).

Stage 03 reports IoU on patches cut from the test regions; here the same regions are cut from
the stitched tile predictions of stage 04 and scored against the same labels, pixels pooled.
If windows and stitching lost nothing at seams, the two agree (issue target: within 0.01).
"""

from __future__ import annotations

import os

import pandas as pd

from lakepaper import scoring
from lakepaper.predict.cluster import output_paths
from lakepaper.regions import read_test_regions


def region_counts(pred_dir: str | os.PathLike[str], samples_dir: str | os.PathLike[str], split: str = "test"):
    """Per region of ``split``: tp, fp, fn, and pixels without a prediction or never observed (``unseen``, excluded)."""
    mask_name = output_paths("", "{tile}")[1].name  # <tile>_mask.tif
    rows = []
    for r in read_test_regions(samples_dir, pred_dir, split=split, mask_name=mask_name):
        c = scoring.confusion(r.label, r.pred)
        row = {"region_id": r.region_id, "region_type": r.region_type, "tp": c["tp"], "fp": c["fp"], "fn": c["fn"]}
        rows.append(row | {"unseen": c["nodata"]})
    return pd.DataFrame(rows)


def pooled(counts: pd.DataFrame, by: str | None = "region_type") -> pd.DataFrame:
    """Recall, precision, F1 and IoU from pooled counts, per ``by`` and over all (row ``all``)."""
    table = scoring.pooled(counts, by, describe=lambda g: {"regions": len(g)})
    return table[["regions", *scoring.SCORES]]
