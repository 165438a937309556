"""Every metric of training.metrics on small hand-made cases whose answers are worked out in the comments, and
the score tables of training.scoring built on them."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from training import metrics, scoring

NAN = math.nan


def test_mae_skips_missing_predictions():
    # |12-10| + |20-20| + |25-30| = 2 + 0 + 5 over the 3 items that have a prediction
    assert metrics.mean_absolute_error([10, 20, 30, 40], [12, 20, 25, NAN]) == pytest.approx(7 / 3)


def test_mae_of_nothing_is_none():
    assert metrics.mean_absolute_error([], []) is None
    assert metrics.mean_absolute_error([10], [NAN]) is None


def test_mean_error_keeps_the_sign():
    # (+2 + 0 - 5) / 3 over the items with a prediction: ages are underestimated on average
    assert metrics.mean_error([10, 20, 30, 40], [12, 20, 25, NAN]) == pytest.approx(-1)
    assert metrics.mean_error([10], [NAN]) is None


def test_within_counts_the_boundary_and_misses():
    # errors 2, 0, 5, missing: 5 is "within 5", the missing one is wrong -> 3 of 4
    assert metrics.within([10, 20, 30, 40], [12, 20, 25, NAN], 5) == 0.75
    # with tolerance 4 only the errors 2 and 0 count -> 2 of 4
    assert metrics.within([10, 20, 30, 40], [12, 20, 25, NAN], 4) == 0.5
    assert metrics.within([30], [35.01], 5) == 0.0


def test_age_bands_split_by_true_age():
    true = [5, 12, 13, 19, 25, 45, 70]
    pred = [10, 20, 13, 30, NAN, 45, 60]
    bands = {band["band"]: band for band in metrics.age_bands(true, pred)}
    assert list(bands) == ["0-12", "13-19", "20-39", "40-59", "60+"]
    # 0-12: errors 5 and 8 -> MAE 6.5, one of two within 5
    assert bands["0-12"] == {"band": "0-12", "n": 2, "predicted": 2, "mae": 6.5, "bias": 6.5, "within5": 0.5}
    # 13-19: errors 0 and 11 -> MAE 5.5, one of two within 5
    assert bands["13-19"] == {"band": "13-19", "n": 2, "predicted": 2, "mae": 5.5, "bias": 5.5, "within5": 0.5}
    # 20-39: its only item has no prediction: no MAE, and it is a miss
    assert bands["20-39"] == {"band": "20-39", "n": 1, "predicted": 0, "mae": None, "bias": None, "within5": 0.0}
    assert bands["40-59"] == {"band": "40-59", "n": 1, "predicted": 1, "mae": 0.0, "bias": 0.0, "within5": 1.0}
    assert bands["60+"] == {"band": "60+", "n": 1, "predicted": 1, "mae": 10.0, "bias": -10.0, "within5": 0.0}


def test_empty_age_band_says_so():
    bands = {band["band"]: band for band in metrics.age_bands([30, 31], [30, 40])}
    assert bands["60+"] == {"band": "60+", "n": 0, "predicted": 0, "mae": None, "bias": None, "within5": None}
    assert bands["20-39"] == {"band": "20-39", "n": 2, "predicted": 2, "mae": 4.5, "bias": 4.5, "within5": 0.5}


def test_accuracy_counts_no_prediction_as_wrong():
    # right, wrong, right, no prediction -> 2 of 4
    assert metrics.accuracy([0, 1, 2, 2], [0, 2, 2, metrics.NO_PREDICTION]) == 0.5
    assert metrics.accuracy([], []) is None


# Three classes; the last item of class 2 has no prediction.
TRUE = [0, 0, 1, 1, 2, 2]
PRED = [0, 1, 1, 1, 0, -1]


def test_confusion_matrix_rows_are_true_columns_predicted():
    expected = [[1, 1, 0],
                [0, 2, 0],
                [1, 0, 0]]    # the unpredicted class-2 item is in no column
    assert metrics.confusion_matrix(TRUE, PRED, 3).tolist() == expected


def test_per_class_scores():
    scores = metrics.per_class_scores(TRUE, PRED, 3)
    # class 0: tp 1, predicted 2, support 2
    assert scores[0] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2, "predicted": 2}
    # class 1: tp 2, predicted 3, support 2 -> F1 = 2*2 / (3+2)
    assert scores[1]["precision"] == pytest.approx(2 / 3)
    assert scores[1]["recall"] == 1.0
    assert scores[1]["f1"] == pytest.approx(0.8)
    # class 2: never predicted -> every score 0, not a division error
    assert scores[2] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2, "predicted": 0}


def test_macro_f1_averages_seen_classes_only():
    # (0.5 + 0.8 + 0) / 3; a fourth class absent from truth and predictions does not count
    assert metrics.macro_f1(TRUE, PRED, 3) == pytest.approx(1.3 / 3)
    assert metrics.macro_f1(TRUE, PRED, 4) == pytest.approx(1.3 / 3)
    assert metrics.macro_f1([], [], 3) is None


def test_matches_scikit_learn_on_random_labels():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    true = rng.integers(0, 7, 500)
    pred = np.where(rng.random(500) < 0.6, true, rng.integers(0, 7, 500))
    labels = list(range(7))
    assert metrics.confusion_matrix(true, pred, 7).tolist() == \
        sklearn_metrics.confusion_matrix(true, pred, labels=labels).tolist()
    assert metrics.macro_f1(true, pred, 7) == pytest.approx(
        sklearn_metrics.f1_score(true, pred, labels=labels, average="macro"))
    assert metrics.accuracy(true, pred) == pytest.approx(sklearn_metrics.accuracy_score(true, pred))


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError):
        metrics.accuracy([0, 1], [0])
    with pytest.raises(ValueError):
        metrics.mean_absolute_error([1.0, 2.0], [1.0])


def test_band_masks_are_half_open():
    masks = dict(metrics.band_masks([12, 12.5, 13, 59.9, 60, NAN]))
    assert masks["0-12"].tolist() == [True, True, False, False, False, False]    # 12.5 is still a child
    assert masks["13-19"].tolist() == [False, False, True, False, False, False]
    assert masks["40-59"].tolist() == [False, False, False, True, False, False]
    assert masks["60+"].tolist() == [False, False, False, False, True, False]     # unlabelled: in no band


def test_classification_scores_name_each_class():
    # true 0 0 1 2, predicted 0 1 1 (none): 2 of 4 right; class 2 has no prediction, so it is a miss
    scores = scoring.classification_scores(np.array([0, 0, 1, 2]), np.array([0, 1, 1, metrics.NO_PREDICTION]),
                                           ("a", "b", "c"))
    assert scores["n"] == 4 and scores["accuracy"] == 0.5
    assert list(scores["per_class"]) == ["a", "b", "c"]
    assert scores["per_class"]["a"]["recall"] == 0.5 and scores["per_class"]["b"]["precision"] == 0.5
    assert scores["confusion"] == [[1, 1, 0], [0, 1, 0], [0, 0, 0]]
    # F1: a 2/3, b 2/3, c 0 (it occurs in the truth)
    assert scores["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 0) / 3)


def test_age_scores_and_accuracy_by_band():
    true_age, predicted = np.array([5.0, 30.0, 70.0]), np.array([7.0, 20.0, NAN])
    scores = scoring.age_scores(true_age, predicted)
    assert scores["age_mae"] == pytest.approx(6) and scores["age_bias"] == pytest.approx(-4)
    assert scores["age_within5"] == pytest.approx(1 / 3)           # the missing prediction is a miss
    assert [band["n"] for band in scores["age_bands"]] == [1, 0, 1, 0, 1]
    by_band = scoring.accuracy_by_age_band(np.array([0, 1, 1]), np.array([0, 0, 1]), true_age)
    assert [(band["band"], band["acc"]) for band in by_band] == [
        ("0-12", 1.0), ("13-19", None), ("20-39", 0.0), ("40-59", None), ("60+", 1.0)]


def test_markdown_table_right_aligns_the_figures():
    assert scoring.markdown_table(["model", "acc"], [["a", "0.5"]]) == "| model | acc |\n| :--- | ---: |\n| a | 0.5 |"


# --- edges the tests above leave open (found by mutation testing, tests/mutation.py) ----------------------------

def test_a_refusal_names_both_shapes():
    with pytest.raises(ValueError, match=r"^expected two 1-d arrays of one length, got \(2,\) and \(1,\)$"):
        metrics.accuracy([0, 1], [0])
    with pytest.raises(ValueError, match=r"got \(1, 2\) and \(1, 2\)"):
        metrics.within([[1, 2]], [[1, 2]])


def test_a_missing_prediction_may_be_none():
    # None becomes NaN: a miss for "within", left out of the mean errors.
    assert metrics.mean_absolute_error([10, 20], [12, None]) == 2.0
    assert metrics.mean_error([10, 20], [12, None]) == 2.0
    assert metrics.within([10, 20], [12, None]) == 0.5
    bands = metrics.age_bands([10, 20], [12, None])
    assert (bands[0]["mae"], bands[2]["predicted"], bands[2]["within5"]) == (2.0, 0, 0.0)


def test_within_is_5_years_by_default():
    assert metrics.within([30, 30], [35, 35.01]) == 0.5


def test_age_bands_take_their_bands_and_tolerance():
    bands = metrics.age_bands([5, 15, 25], [7, 20, 25], tolerance=2, bands=(("young", 0, 18), ("adult", 18, 99)))
    # young: errors 2 and 5 -> one within 2; adult: error 0
    assert bands == [{"band": "young", "n": 2, "predicted": 2, "mae": 3.5, "bias": 3.5, "within2": 0.5},
                     {"band": "adult", "n": 1, "predicted": 1, "mae": 0.0, "bias": 0.0, "within2": 1.0}]


def test_a_class_only_predicted_has_recall_0_and_a_class_in_neither_f1_0():
    scores = metrics.per_class_scores([0, 0], [0, 1], 3)
    assert scores[1] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0, "predicted": 1}
    assert scores[2] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0, "predicted": 0}


def test_the_confusion_matrix_counts_in_integers():
    matrix = metrics.confusion_matrix(TRUE, PRED, 3)
    assert matrix.dtype == np.int64
    assert json.dumps(matrix.tolist()) == "[[1, 1, 0], [0, 2, 0], [1, 0, 0]]"     # as a report writes it


def test_an_unlabelled_age_may_be_none_and_is_in_no_band():
    masks = dict(metrics.band_masks([12, None]))
    assert masks["0-12"].tolist() == [True, False] and not any(mask[1] for mask in masks.values())


def test_a_missing_value_may_be_none_in_a_weighted_mean():
    assert metrics.weighted_mean([2.0, None, 4.0], [1.0, 5.0, 3.0]) == pytest.approx(3.5)


def counting():
    """A statistic that ignores its resample and answers 0, 1, 2, ...: its percentiles are known exactly."""
    answers = iter(range(10_000))
    return lambda pick: float(next(answers))


def test_the_bootstrap_interval_is_the_central_level_of_the_resampled_values():
    # 1000 values 0..999: numpy's (linear) 2.5th and 97.5th percentiles are 24.975 and 974.025.
    assert metrics.bootstrap_interval(counting(), 3) == (pytest.approx(24.975), pytest.approx(974.025))
    assert metrics.bootstrap_interval(counting(), 3, level=0.9) == (pytest.approx(49.95), pytest.approx(949.05))


def test_the_bootstrap_defaults_and_seed():
    values = np.arange(10.0)
    mean = lambda pick: float(values[pick].mean())  # noqa: E731
    assert metrics.bootstrap_interval(mean, 10) == metrics.bootstrap_interval(mean, 10, samples=1000, level=0.95,
                                                                              seed=0)
    assert metrics.bootstrap_interval(mean, 10, seed=5) == metrics.bootstrap_interval(mean, 10, seed=5)
    assert metrics.bootstrap_interval(mean, 10, seed=5) != metrics.bootstrap_interval(mean, 10, seed=6)
