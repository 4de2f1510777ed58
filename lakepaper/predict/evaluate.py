"""The stitched prediction against the labels of the sample regions (the check that tiling loses nothing).

Stage 03 reports IoU on patches cut from the test regions; here the same regions are cut from
the stitched tile predictions of stage 04 and scored against the same labels, pixels pooled.
If windows and stitching lost nothing at seams, the two agree (issue target: within 0.01).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from lakepaper import io
from lakepaper.predict.run import output_paths
from lakepaper.predict.tiled import NODATA
from lakepaper.samples.chips import LABEL_NODATA, read_regions


def region_counts(pred_dir: str | os.PathLike[str], samples_dir: str | os.PathLike[str], split: str = "test"):
    """Per region of ``split``: tp, fp, fn, and pixels without a prediction (excluded)."""
    regions = read_regions(samples_dir)
    regions = regions[regions.split == split]
    rows = []
    for tile, group in regions.groupby("tile"):
        mask = io.read_raster(output_paths(pred_dir, tile)[1])[0][0]
        for r in group.itertuples():
            pred = mask[r.row_off : r.row_off + r.height, r.col_off : r.col_off + r.width]
            raw = io.read_raster(Path(samples_dir) / r.label)[0][0]
            label = raw == 1
            seen = (pred != NODATA) & (raw != LABEL_NODATA)  # no prediction, or never observed: left out
            p = (pred == 1) & seen
            rows.append(
                {
                    "region_id": r.region_id,
                    "region_type": r.region_type,
                    "tp": int((p & label).sum()),
                    "fp": int((p & ~label).sum()),
                    "fn": int((~p & label & seen).sum()),
                    "unseen": int((~seen).sum()),
                }
            )
    return pd.DataFrame(rows)


def pooled(counts: pd.DataFrame, by: str | None = "region_type") -> pd.DataFrame:
    """Recall, precision, F1 and IoU from pooled counts, per ``by`` and over all (row ``all``)."""
    groups = [*counts.groupby(by)] if by else []
    out = {}
    for name, g in [*groups, ("all", counts)]:
        tp, fp, fn = (int(g[k].sum()) for k in ("tp", "fp", "fn"))
        out[name] = {
            "regions": len(g),
            "recall": tp / (tp + fn) if tp + fn else np.nan,
            "precision": tp / (tp + fp) if tp + fp else np.nan,
            "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else np.nan,
            "iou": tp / (tp + fp + fn) if tp + fp + fn else np.nan,
        }
    return pd.DataFrame.from_dict(out, orient="index")
