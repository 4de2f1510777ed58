"""The one scoring module (lakepaper.scoring): hand cases, the empty-case rule, scikit-learn, and its users."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lakepaper import scoring
from lakepaper.errors import InputError
from lakepaper.scoring import NODATA

# --- confusion -----------------------------------------------------------------------------------------


def test_confusion_by_hand():
    label = np.array([[1, 1, 0, 0, 1], [0, 0, 0, 1, 1]], np.uint8)
    pred = np.array([[1, 0, 1, 255, 1], [0, 0, 0, 0, 255]], np.uint8)
    assert scoring.confusion(label, pred) == {"tp": 2, "fp": 1, "fn": 2, "tn": 3, "nodata": 2}
    # without a no-data value, 255 is simply "not lake"
    assert scoring.confusion(label, pred, nodata=None) == {"tp": 2, "fp": 1, "fn": 3, "tn": 4, "nodata": 0}


def test_nodata_and_invalid_pixels_are_left_out():
    label = np.array([1, 1, 1, 0, 0], np.uint8)
    pred = np.array([1, NODATA, 0, 1, 0], np.uint8)
    valid = np.array([True, True, False, True, True])  # e.g. a label pixel never observed
    assert scoring.confusion(label, pred, valid=valid) == {"tp": 1, "fp": 1, "fn": 0, "tn": 1, "nodata": 2}
    # a lake pixel without prediction is no miss: the scores see only the pixels with both
    s = scoring.scores_of(scoring.confusion(label, pred, valid=valid))
    assert s["recall"] == 1.0 and s["precision"] == 0.5
    all_out = scoring.confusion(label, np.full(5, NODATA, np.uint8))
    assert all_out["nodata"] == 5 and all(np.isnan(v) for v in scoring.scores_of(all_out).values())


def test_confusion_takes_booleans_and_any_shape():
    truth = np.array([True, False, True])
    assert scoring.confusion(truth, np.array([True, True, False]), nodata=None) == {
        "tp": 1,
        "fp": 1,
        "fn": 1,
        "tn": 0,
        "nodata": 0,
    }
    with pytest.raises(InputError, match="differ"):
        scoring.confusion(np.zeros((3, 3)), np.zeros((3, 4)))
    with pytest.raises(InputError, match="differ"):
        scoring.confusion(np.zeros(3), np.zeros(3), valid=np.ones(4, bool))


# --- scores and the empty cases -------------------------------------------------------------------------


def test_scores_by_hand():
    s = scoring.scores(6, 2, 3)
    assert s["recall"] == pytest.approx(6 / 9)
    assert s["precision"] == pytest.approx(6 / 8)
    assert s["f1"] == pytest.approx(2 * (6 / 9) * (6 / 8) / (6 / 9 + 6 / 8))  # the harmonic mean
    assert s["iou"] == pytest.approx(6 / 11)
    assert scoring.scores(5, 0, 0) == {"recall": 1.0, "precision": 1.0, "f1": 1.0, "iou": 1.0}


def _scores(label, pred):
    return scoring.scores_of(scoring.confusion(np.array(label, np.uint8), np.array(pred, np.uint8)))


def test_empty_prediction():
    s = _scores([1, 1, 0], [0, 0, 0])  # lake labelled, nothing predicted
    assert s["recall"] == 0 and s["f1"] == 0 and s["iou"] == 0
    assert np.isnan(s["precision"])  # not 0: nothing was predicted, so nothing was wrong


def test_empty_label():
    s = _scores([0, 0, 0], [1, 0, 0])  # nothing labelled, lake predicted
    assert np.isnan(s["recall"])  # not 0: there was nothing to find
    assert s["precision"] == 0 and s["f1"] == 0 and s["iou"] == 0


def test_both_empty():
    s = _scores([0, 0, 0], [0, 0, 0])
    assert all(np.isnan(v) for v in s.values())  # not 0 (a failure) and not 1 (a success): undefined


def test_scores_of_arrays_and_ratio():
    arr = scoring.scores(np.array([0, 1]), np.array([0, 1]), np.array([0, 0]))
    assert np.isnan(arr["iou"][0]) and arr["iou"][1] == 0.5
    assert scoring.ratio(1, 4) == 0.25 and np.isnan(scoring.ratio(0, 0))
    assert isinstance(scoring.ratio(1, 4), float)


@pytest.mark.parametrize("seed", range(8))
def test_scores_match_scikit_learn(seed):
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(seed)
    n = 500
    label = (rng.random(n) < [0.0, 0.3, 0.3, 0.0, 0.5, 0.1, 0.2, 0.0][seed]).astype(np.uint8)
    pred = (rng.random(n) < [0.2, 0.0, 0.3, 0.0, 0.5, 0.9, 0.2, 0.0][seed]).astype(np.uint8)
    pred[rng.random(n) < (0.1 if seed >= 6 else 0.0)] = NODATA  # pixels without prediction
    c = scoring.confusion(label, pred)
    s = scoring.scores_of(c)
    seen = pred != NODATA  # scikit-learn scores only the pixels with a prediction
    y, p = label[seen], pred[seen]
    with np.errstate(all="ignore"):
        ref = {
            "recall": sk.recall_score(y, p, zero_division=np.nan),
            "precision": sk.precision_score(y, p, zero_division=np.nan),
            "f1": sk.f1_score(y, p, zero_division=np.nan),
        }
    for k, v in ref.items():
        assert s[k] == pytest.approx(v, nan_ok=True), k
    if c["tp"] + c["fp"] + c["fn"]:  # jaccard_score offers no NaN for the empty case
        assert s["iou"] == pytest.approx(sk.jaccard_score(y, p))
    else:
        assert np.isnan(s["iou"])
    tn, fp, fn, tp = sk.confusion_matrix(y, p, labels=[0, 1]).ravel()
    assert (c["tp"], c["fp"], c["fn"], c["tn"]) == (tp, fp, fn, tn)


# --- pooling -------------------------------------------------------------------------------------------


def test_pooled_sums_counts_before_scoring():
    counts = pd.DataFrame(
        {"kind": ["NR", "NR", "SL"], "tp": [10, 0, 5], "fp": [0, 10, 5], "fn": [0, 0, 5], "tn": [1, 2, 3]}
    )
    t = scoring.pooled(counts, "kind", order=("NR", "AR"), describe=lambda g: {"n": len(g)})
    assert list(t.index) == ["NR", "AR", "SL", "all"]  # the order given, then the others, then all
    assert list(t.columns) == ["n", "tp", "fp", "fn", "tn", *scoring.SCORES]
    assert t.loc["NR", "precision"] == 0.5  # pooled 10/20, not the mean of 1.0 and 0.0
    assert t.loc["AR", "n"] == 0 and t.loc["AR", "tp"] == 0 and np.isnan(t.loc["AR", "iou"])
    assert t.loc["all", "tn"] == 6 and t.loc["all", "iou"] == pytest.approx(15 / 35)
    only_all = scoring.pooled(counts)
    assert list(only_all.index) == ["all"]


def test_pooled_prefix_keys_total_and_score():
    counts = pd.DataFrame({"g": ["a", "b"], "lake_tp": [1, 0], "lake_fp": [1, 0], "lake_fn": [0, 0], "tn": [5, 5]})
    t = scoring.pooled(counts, "g", prefix="lake_", total=False)
    assert list(t.index) == ["a", "b"] and list(t.columns) == ["tp", "fp", "fn", *scoring.SCORES]
    assert t.loc["a", "precision"] == 0.5 and np.isnan(t.loc["b", "precision"])
    k = scoring.pooled(counts.rename(columns=lambda c: c.removeprefix("lake_")), keys=("tp", "fp", "fn"))
    assert "tn" not in k
    custom = scoring.pooled(counts, prefix="lake_", score=lambda c: {"hits": c["tp"]})
    assert custom.loc["all", "hits"] == 1


def test_add_sums_and_percent():
    a, b = {"tp": 1, "fp": 2}, {"tp": 3, "fn": 4}
    assert scoring.add(a, b) == {"tp": 4, "fp": 2, "fn": 4}
    assert scoring.add(a, b, keys=("tp", "tn")) == {"tp": 4, "tn": 0}
    assert scoring.add() == {}
    frame = pd.DataFrame({"x_tp": [1, 2], "x_fn": [0, 3], "other": [9, 9]})
    assert scoring.sums(frame, prefix="x_") == {"tp": 3, "fn": 3}
    t = pd.DataFrame({"tp": [1], "recall": [0.5], "iou": [np.nan]})
    p = scoring.as_percent(t)
    assert p.loc[0, "recall"] == 50 and p.loc[0, "tp"] == 1 and np.isnan(p.loc[0, "iou"])
    assert t.loc[0, "recall"] == 0.5  # a copy


# --- every user follows the one rule -------------------------------------------------------------------


def test_every_pooled_table_gives_nan_for_an_empty_group():
    """The copies that used ``max(..., 1)`` gave 0 here; all of them now call lakepaper.scoring."""
    from lakepaper.datasets.metrics import score_table
    from lakepaper.predict.evaluate import pooled as predict_pooled
    from lakepaper.samples.stage import iou_by_type
    from lakepaper.train.evaluate import pooled as train_pooled
    from lakepaper.world.checks import iou_table

    counts = pd.DataFrame(
        {
            "region_id": ["a", "b"],
            "region_type": ["NR", "SL"],
            "patches": [1, 1],
            "tp": [5, 0],
            "fp": [1, 0],
            "fn": [2, 0],
            "tn": [10, 10],
        }
    )
    for table in (train_pooled(counts), predict_pooled(counts), score_table(counts, "region_type")):
        assert np.isnan(table.loc["SL", "iou"]) and table.loc["NR", "iou"] == pytest.approx(5 / 8)
    prefixed = counts.rename(columns={k: f"lake_{k}" for k in ("tp", "fp", "fn")})
    world = iou_table(prefixed, truth="lake")
    assert np.isnan(world.loc["SL", "precision"]) and world.index.name == "region_type"
    kinds = counts.assign(
        **{f"{kind}_{k}": counts[k] for kind in ("default", "ndwi", "edited") for k in ("tp", "fp", "fn")}
    )
    samples = iou_by_type(kinds)
    assert np.isnan(samples.loc["SL", "edited_recall"]) and samples.loc["all", "regions"] == 2


def test_training_scores_are_the_modules():
    torch = pytest.importorskip("torch")
    from lakepaper.train.loss import add_counts, confusion, scores

    prob = torch.tensor([0.9, 0.2, 0.8, 0.1])
    target = torch.tensor([1.0, 1.0, 0.0, 0.0])
    c = add_counts({}, confusion(prob, target))
    assert c == {"tp": 1, "fp": 1, "fn": 1, "tn": 1}
    assert scores(c) == scoring.scores_of(c)
    empty = confusion(torch.zeros(4), torch.zeros(4))
    assert np.isnan(scores(empty)["precision"]) and np.isnan(scores(empty)["iou"])
