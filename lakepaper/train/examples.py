"""Per-patch scores of a model on the test split, and the test examples of Supplementary Fig. 1.

The paper's Table 1 scores isolated 576 x 576 patches taken sequentially from the test regions
(:func:`lakepaper.train.sampler.sequential_patches`: every pixel once, padding and unobserved pixels
left out); Supplementary Fig. 1 shows examples of them per region type (image, label, prediction).

* :func:`patch_counts`: one pass of the model over every test patch, keeping the confusion counts of
  each patch (``test_patches.csv``); :func:`region_totals` sums them per region, which is exactly
  :func:`lakepaper.train.evaluate.region_counts`, so Table 1 and the examples come from one pass.
* :func:`choose_examples`: a reproducible choice, per region type, of the patch of median IoU and the
  patch of lowest IoU among the patches that hold lake in the label or the prediction (IoU is undefined
  on a patch with neither); ties are broken by more wrong pixels, then region id and patch number.
* :func:`example_patches`: the chosen patches again, as the model saw them, with its probabilities.

Example:
    >>> import pandas as pd
    >>> p = pd.DataFrame({"region_id": ["a", "a", "b"], "region_type": ["NR"] * 3, "patch": [0, 1, 0],
    ...                   "tp": [9, 5, 0], "fp": [1, 5, 0], "fn": [0, 0, 0]})
    >>> choose_examples(p, ["NR"])[["which", "region_id", "patch"]].to_numpy().tolist()
    [['median', 'a', 0], ['worst', 'a', 1]]
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from lakepaper import scoring
from lakepaper.metrics import patch_windows
from lakepaper.samples.chips import Chip
from lakepaper.train.loop import autocast, pick_device
from lakepaper.train.loss import COUNTS, confusion
from lakepaper.train.sampler import Patches, sequential_patches

#: Which examples :func:`choose_examples` takes per region type, in order.
KINDS = ("median", "worst")


def patch_counts(model: torch.nn.Module, chips: Sequence[Chip], *, threshold: float = 0.5, **kwargs) -> pd.DataFrame:
    """Per sequential patch: region_id, region_type, region (index into ``chips``), patch (its number in the
    region, row by row), row, col (the window's top-left pixel in the region), tp, fp, fn, tn and iou of
    ``probability > threshold`` (``kwargs``: those of :func:`patch_probabilities`)."""
    return scored_patches(model, chips, threshold=threshold, **kwargs)[0]


def predicted_maps(
    model: torch.nn.Module, chips: Sequence[Chip], *, threshold: float = 0.5, **kwargs
) -> list[np.ndarray]:
    """The model's lake map of each chip (bool, the chip's shape): ``probability > threshold`` of the same
    patches :func:`patch_counts` scores, each pixel from the patch that owns it (``kwargs``: those of
    :func:`patch_probabilities`)."""
    return scored_patches(model, chips, threshold=threshold, **kwargs)[1]


def scored_patches(
    model: torch.nn.Module, chips: Sequence[Chip], *, threshold: float = 0.5, **kwargs
) -> tuple[pd.DataFrame, list[np.ndarray]]:
    """:func:`patch_counts` and :func:`predicted_maps` from one pass of the model over the patches."""
    rows: list[dict] = []
    maps = [np.zeros(c.label.shape, bool) for c in chips]
    for r, k, w, b, i, prob in patch_probabilities(model, chips, **kwargs):
        y = torch.from_numpy(b.label[i]).to(prob.device)
        v = torch.from_numpy(b.valid[i]).to(prob.device)
        rows.append(
            {
                "region_id": chips[r].region_id,
                "region_type": chips[r].region_type,
                "region": r,
                "patch": k,
                "row": int(w.row),
                "col": int(w.col),
                **confusion(prob, y, v, threshold),
            }
        )
        dr, dc = w.own_row - w.row, w.own_col - w.col
        own = prob[dr : dr + w.own_height, dc : dc + w.own_width].cpu().numpy() > threshold
        maps[r][w.own_row : w.own_row + w.own_height, w.own_col : w.own_col + w.own_width] = own
    out = pd.DataFrame(rows, columns=["region_id", "region_type", "region", "patch", "row", "col", *COUNTS])
    out["iou"] = [scoring.scores(r.tp, r.fp, r.fn)["iou"] for r in out.itertuples()] if len(out) else []
    return out, maps


def patch_probabilities(
    model: torch.nn.Module,
    chips: Sequence[Chip],
    *,
    patch_size: int,
    batch: int = 8,
    pad_value: float = 0.0,
    device: str | torch.device | None = None,
    precision: str = "fp32",
) -> Iterator[tuple[int, int, Any, Patches, int, torch.Tensor]]:
    """The model's lake probability on each isolated sequential patch of the chips
    (:func:`lakepaper.train.sampler.sequential_patches`), one patch at a time: the chip's index, the patch's
    number in the chip, its window (a row of :func:`lakepaper.metrics.patch_windows`), the batch it came
    in, its index in that batch, and the probabilities (rows, cols; fp32, on ``device``)."""
    device = pick_device(device)
    model = model.to(device).eval()
    seen = [0] * len(chips)
    windows = [patch_windows(*c.label.shape, patch_size) for c in chips]
    with torch.no_grad():
        for b in sequential_patches(chips, patch_size, batch=batch, pad_value=pad_value):
            x = torch.from_numpy(b.image).to(device)
            with autocast(device, precision):
                prob = model(x).float()
            for i, r in enumerate(b.region.tolist()):
                k = seen[r]
                seen[r] += 1
                yield r, k, windows[r].iloc[k], b, i, prob[i, 0]


def region_totals(per_patch: pd.DataFrame, chips: Sequence[Chip] | None = None) -> pd.DataFrame:
    """Per region: region_id, region_type, patches, tp, fp, fn, tn (as ``evaluate.region_counts``), in
    the order of ``chips`` when given (a region without patches keeps zero counts)."""
    g = per_patch.groupby(["region_id", "region_type"], sort=False)
    out = g[list(COUNTS)].sum()
    out.insert(0, "patches", g.size())
    out = out.reset_index()
    if chips is not None:
        keys = pd.DataFrame({"region_id": [c.region_id for c in chips], "region_type": [c.region_type for c in chips]})
        out = keys.merge(out, how="left", on=["region_id", "region_type"]).fillna(0)
    return out.astype({c: int for c in ("patches", *COUNTS)})


def choose_examples(per_patch: pd.DataFrame, types: Sequence[str], kinds: Sequence[str] = KINDS) -> pd.DataFrame:
    """Per region type (in ``types`` order) the median-IoU and the lowest-IoU patch (see the module docstring).

    The median is the upper median of the patches with a defined IoU (of two patches, the better one).
    Where both are the same patch it is listed once, with ``which`` = ``"median, worst"``. A type without
    a scorable patch is left out.
    """
    p = per_patch.copy()
    p["errors"] = p["fp"] + p["fn"]
    p["iou"] = [scoring.scores(r.tp, r.fp, r.fn)["iou"] for r in p.itertuples()] if len(p) else []
    rows = []
    for t in types:
        s = p[(p.region_type == t) & p.iou.notna()]
        if s.empty:
            continue
        s = s.sort_values(["iou", "errors", "region_id", "patch"], ascending=[True, False, True, True])
        picks: dict[int, list[str]] = {}
        for kind in kinds:
            at = {"median": len(s) // 2, "worst": 0}[kind]
            picks.setdefault(at, []).append(kind)
        for at in sorted(picks, key=lambda a: -a):  # median first, then the worst
            rows.append({"which": ", ".join(picks[at]), "of": len(s), **s.iloc[at].to_dict()})
    cols = ["which", "of", *per_patch.columns.drop("iou", errors="ignore"), "errors", "iou"]
    return pd.DataFrame(rows, columns=cols).drop(columns="errors").reset_index(drop=True)


def example_patches(
    model: torch.nn.Module,
    chips: Sequence[Chip],
    chosen: pd.DataFrame,
    *,
    patch_size: int,
    threshold: float = 0.5,
    pad_value: float = 0.0,
    device: str | torch.device | None = None,
    precision: str = "fp32",
) -> list[dict]:
    """The chosen patches as the model saw them: per row of ``chosen`` a dict with ``image`` (bands, s, s),
    ``label``, ``valid`` (the pixels scored in this patch), ``observed`` (the window's pixels the label
    observed, including those scored in the previous patch of a shifted last window), ``prob``, ``pred``
    (prob > threshold), ``bands``, the window's ``height``/``width`` inside the region and the row's fields
    (type, which, region_id, patch, scores)."""
    device = pick_device(device)
    model = model.to(device).eval()
    out = []
    for row in chosen.to_dict("records"):
        chip = chips[int(row["region"])]
        patches = sequential_patches([chip], patch_size, batch=1, pad_value=pad_value)
        b = next(itertools.islice(patches, int(row["patch"]), None), None)
        if b is None:
            raise IndexError(f"region {chip.region_id} has no patch {row['patch']}")
        with torch.no_grad(), autocast(device, precision):
            prob = model(torch.from_numpy(b.image).to(device)).float()[0, 0].cpu().numpy()
        h, w = min(patch_size, chip.label.shape[0]), min(patch_size, chip.label.shape[1])
        r0, c0 = int(row["row"]), int(row["col"])
        observed = np.zeros((patch_size, patch_size), bool)
        observed[:h, :w] = True if chip.observed is None else chip.observed[r0 : r0 + h, c0 : c0 + w]
        out.append(
            {
                **row,
                "image": b.image[0],
                "label": b.label[0],
                "valid": b.valid[0],
                "observed": observed,
                "prob": prob,
                "pred": (prob > threshold).astype(np.uint8),
                "bands": tuple(chip.bands),
                "height": h,
                "width": w,
            }
        )
    return out
