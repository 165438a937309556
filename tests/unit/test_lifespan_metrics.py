"""The balanced (per-decade) view and the bootstrap interval on numbers worked out by hand, including both sides
of every boundary they depend on (a decade's first and last year, empty decades, resamples without a value)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training.metrics import DECADES, balanced, bootstrap_interval, decade_weights, weighted_mean
from training.scoring import by_group, group_table, two_views, views_table


def test_decades_cover_ten_years_each_and_90_plus():
    assert DECADES[0] == ("0-9", 0, 10) and DECADES[8] == ("80-89", 80, 90)
    assert DECADES[9] == ("90+", 90, math.inf) and len(DECADES) == 10


def test_balanced_is_the_mean_over_bands_with_items():
    per_band = [{"n": 3, "mae": 1.0}, {"n": 1, "mae": 5.0}, {"n": 0, "mae": None}, {"n": 2, "mae": None}]
    assert balanced(per_band, "mae") == 3.0                 # (1 + 5) / 2: empty and valueless bands left out
    assert balanced([{"n": 0, "mae": None}], "mae") is None


def test_decade_weights_split_the_unit_evenly_between_filled_decades():
    # 9.9 is still 0-9, 10 is 10-19; 89 is 80-89, 90 is 90+; -1 is in no decade.
    weights = decade_weights([0, 9.9, 10, 89, 90, -1])
    assert weights == pytest.approx([1 / 8, 1 / 8, 1 / 4, 1 / 4, 1 / 4, 0])
    assert decade_weights([]).shape == (0,)


def test_weighted_mean_leaves_out_nan_and_renormalises():
    assert weighted_mean([1.0, 3.0, np.nan], [0.25, 0.25, 0.5]) == 2.0
    assert weighted_mean([np.nan], [1.0]) is None
    assert weighted_mean([1.0, 2.0], [0.0, 0.0]) is None


def test_two_views_on_hand_made_ages():
    # Three children off by 1 year, one 85-year-old off by -9: natural MAE (1+1+1+9)/4 = 3, balanced (1 + 9)/2 = 5.
    true = np.array([5.0, 6, 7, 85])
    pred = np.array([6.0, 7, 8, 76])
    views = two_views(true, pred, np.array([0, 1, 0, 1]), np.array([0, 0, 0, 1]))
    assert views["natural"]["age_mae"] == pytest.approx(3.0)
    assert views["balanced"]["age_mae"] == pytest.approx(5.0)
    assert views["natural"]["age_bias"] == pytest.approx((3 - 9) / 4)
    assert views["balanced"]["age_bias"] == pytest.approx((1 - 9) / 2)
    assert views["natural"]["age_within5"] == pytest.approx(0.75) and views["balanced"]["age_within5"] == 0.5
    assert views["natural"]["gender_acc"] == pytest.approx(0.75)            # one child wrong
    assert views["balanced"]["gender_acc"] == pytest.approx((2 / 3 + 1) / 2)
    sixty = views["balanced"]["bands"][-1]
    assert sixty["band"] == "60+" and sixty["n"] == 1 and sixty["age_bias"] == pytest.approx(-9)
    assert [row["n"] for row in views["decades"]] == [3, 0, 0, 0, 0, 0, 0, 0, 1, 0]
    assert views["decades"][1]["age_mae"] is None
    table = views_table({"model": views})
    assert "| model | balanced | 5.00 | -4.00 | 0.500 | 0.833 |" in table


def test_bootstrap_interval_is_seeded_and_brackets_the_statistic():
    values = np.array([1.0, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    mean = lambda pick: float(values[pick].mean())
    low, high = bootstrap_interval(mean, len(values), samples=2000, seed=0)
    assert low < 5.5 < high and bootstrap_interval(mean, len(values), samples=2000, seed=0) == (low, high)
    assert 3.5 < low < 4.5 and 6.5 < high < 7.5             # the mean's standard error is about 0.9
    constant = lambda pick: 2.0
    assert bootstrap_interval(constant, 5) == (2.0, 2.0)
    assert bootstrap_interval(mean, 0) is None
    assert bootstrap_interval(lambda pick: None, 3) is None


def test_by_group_counts_figures_and_intervals():
    groups = np.array([0, 0, 1, 1, 1])
    rows = by_group(groups, {0: "a", 1: "b", 2: "empty"}, np.array([10.0, 20, 30, 40, 50]),
                    np.array([12.0, 20, 27, 40, 50]), np.array([0, 1, 0, 1, 1]), np.array([0, 0, 0, 1, 1]),
                    samples=200)
    a, b, empty = rows
    assert (a["n"], a["age_mae"], a["age_bias"], a["gender_acc"]) == (2, 1.0, 1.0, 0.5)
    assert (b["n"], b["age_mae"], b["age_bias"], b["gender_acc"]) == (3, 1.0, -1.0, 1.0)
    assert a["age_mae_ci95"][0] >= 0 and a["age_mae_ci95"][1] <= 2
    assert b["gender_acc_ci95"] == (1.0, 1.0)
    assert empty["n"] == 0 and empty["age_mae"] is None and empty["age_mae_ci95"] is None
    assert "| b | 3 | 1.00 [" in group_table(rows)
