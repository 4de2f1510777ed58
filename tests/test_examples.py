"""Per-patch test scores and Supplementary Fig. 1 (lakepaper.train.examples, lakepaper.figures.examples)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
from builders import synthetic_set

from lakepaper import scoring
from lakepaper.figures import save
from lakepaper.figures.examples import supplementary_fig1
from lakepaper.metrics import patch_windows
from lakepaper.train.evaluate import pooled, region_counts
from lakepaper.train.examples import choose_examples, example_patches, patch_counts, region_totals
from lakepaper.train.loss import COUNTS, confusion


class ShiftedNdwiModel(torch.nn.Module):
    """Lake where NDWI > 0, shifted by two pixels: right and wrong pixels in every lake patch."""

    def forward(self, x):
        return torch.sigmoid(50 * torch.roll(x[:, 4:5], shifts=(2, 2), dims=(2, 3)))


@pytest.fixture(scope="module")
def chips():
    data = synthetic_set(seed=3, n=(1, 1, 6), sizes=(20, 90))
    return [dataclasses.replace(c, region_type="NR" if i % 2 else "SL") for i, c in enumerate(data["test"])]


@pytest.fixture(scope="module")
def per_patch(chips):
    return patch_counts(ShiftedNdwiModel(), chips, patch_size=32, batch=3)


def test_one_pass_gives_table1_exactly(chips, per_patch):
    """Summed per region, the per-patch counts are evaluate.region_counts: Table 1 and the examples share a pass."""
    direct = region_counts(ShiftedNdwiModel(), chips, patch_size=32, batch=5)
    totals = region_totals(per_patch, chips)
    pd.testing.assert_frame_equal(totals, direct[totals.columns.tolist()], check_dtype=False)
    pd.testing.assert_frame_equal(pooled(totals), pooled(direct))
    for r, c in enumerate(chips):  # the patches of a region are numbered as the windows are taken, row by row
        mine = per_patch[per_patch.region == r]
        win = patch_windows(*c.label.shape, 32)
        assert mine.patch.tolist() == list(range(len(win)))
        assert mine[["row", "col"]].to_numpy().tolist() == win[["row", "col"]].to_numpy().tolist()
    ious = [scoring.scores(r.tp, r.fp, r.fn)["iou"] for r in per_patch.itertuples()]
    np.testing.assert_allclose(per_patch.iou, ious)
    assert ((per_patch.iou > 0) & (per_patch.iou < 1)).any()  # the shifted model is neither perfect nor blind


def _pp(rows):
    return pd.DataFrame(rows, columns=["region_id", "region_type", "region", "patch", "tp", "fp", "fn", "tn"])


def test_examples_are_the_median_and_the_worst_patch_per_type():
    p = _pp(
        [
            ("a", "NR", 0, 0, 9, 1, 0, 0),  # 0.9
            ("a", "NR", 0, 1, 5, 5, 0, 0),  # 0.5
            ("b", "NR", 1, 0, 7, 3, 0, 0),  # 0.7
            ("b", "NR", 1, 1, 0, 0, 0, 9),  # no lake in label or prediction: IoU undefined, never chosen
            ("c", "NR", 2, 0, 1, 1, 0, 0),  # 0.5 too, with fewer wrong pixels than a/1: a/1 is the worst
            ("d", "SL", 3, 0, 0, 0, 4, 0),  # the only SL patch: median and worst at once
        ]
    )
    ex = choose_examples(p, ["NR", "AR", "SL"])
    assert ex[["region_type", "which", "region_id", "patch"]].to_numpy().tolist() == [
        ["NR", "median", "b", 0],
        ["NR", "worst", "a", 1],
        ["SL", "median, worst", "d", 0],
    ]  # AR has no patch: left out
    assert ex.of.tolist() == [4, 4, 1]
    assert ex.iou.tolist() == pytest.approx([0.7, 0.5, 0.0])
    assert choose_examples(p.sample(frac=1, random_state=1), ["NR", "AR", "SL"]).equals(ex)  # order-free


def test_example_patches_are_the_patches_that_were_scored(chips, per_patch):
    chosen = choose_examples(per_patch, ["NR", "SL"])
    assert set(chosen.region_type) == {"NR", "SL"}
    shown = example_patches(ShiftedNdwiModel(), chips, chosen, patch_size=32)
    assert len(shown) == len(chosen)
    for e in shown:
        counted = {k: int(e[k]) for k in COUNTS}
        y, p, v = (torch.from_numpy(np.asarray(e[k])) for k in ("label", "pred", "valid"))
        assert confusion(p.float(), y, v) == counted
        assert e["image"].shape == (5, 32, 32) and e["bands"][:3] == ("B2", "B3", "B4")


def test_supplementary_fig1_draws_one_row_per_example(chips, per_patch, tmp_path):
    chosen = choose_examples(per_patch, ["NR", "SL"])
    fig = supplementary_fig1(example_patches(ShiftedNdwiModel(), chips, chosen, patch_size=32), title="t")
    assert len(fig.axes) == 3 * len(chosen)
    labels = [fig.axes[3 * i].get_ylabel() for i in range(len(chosen))]
    assert all(r.region_type in t and r.which in t for r, t in zip(chosen.itertuples(), labels, strict=True))
    save(fig, tmp_path / "s1.png")
    assert (tmp_path / "s1.png").stat().st_size > 5000
    empty = supplementary_fig1([])
    assert "no test patch" in " ".join(t.get_text() for ax in empty.axes for t in ax.texts)
