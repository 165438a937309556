"""Sequence aggregation and per-frame choice of the analysed face, on hand-made numbers."""

from __future__ import annotations

import numpy as np
import pytest

from faceanalysis.pipeline.aggregate import (AGGREGATORS, ConfidenceWeightedAggregator, LogOddsAggregator, MeanAggregator,
                                    TrimmedMeanAggregator)
from faceanalysis.pipeline.analyzer import _primary_faces
from facecore.frames import natural_key


def test_mean_aggregator():
    probabilities = np.array([[0.2, 0.8], [0.6, 0.4]])
    assert MeanAggregator().combine(probabilities, np.array([1.0, 0.1])) == pytest.approx([0.4, 0.6])


def test_confidence_weighted_aggregator_trusts_confident_frames():
    probabilities = np.array([[0.2, 0.8], [0.6, 0.4]])
    combined = ConfidenceWeightedAggregator().combine(probabilities, np.array([0.75, 0.25]))
    assert combined == pytest.approx([0.3, 0.7])
    assert combined.sum() == pytest.approx(1)


def test_largest_face_of_each_frame_is_primary():
    frame = np.array([0, 0, 1, 2, 2, 2])
    boxes = np.array([[0, 0, 10, 10], [0, 0, 50, 50], [0, 0, 5, 5],
                      [0, 0, 20, 20], [0, 0, 30, 30], [0, 0, 25, 25]], dtype=float)
    assert _primary_faces(frame, boxes).tolist() == [False, True, True, False, True, False]


def test_frames_sort_naturally():
    names = ["f10.jpg", "f2.jpg", "f1.jpg", "F3.jpg"]
    assert sorted(names, key=natural_key) == ["f1.jpg", "f2.jpg", "F3.jpg", "f10.jpg"]


def test_age_expectation_and_interval(analyzer):
    age = analyzer.models["age"]
    distribution = np.zeros(81)
    distribution[[30, 40]] = 0.5
    assert age.expected_age(distribution) == pytest.approx(35)
    # Half the mass in the bin of 30 (29.5-30.5), half in 40 (39.5-40.5): the 10% and 90% points.
    assert age.interval(distribution) == (29.7, 40.3)


def test_trimmed_mean_drops_the_outlying_frame():
    # Five frames: four agree, one is far from the median [0.8, 0.2]; 20% of 5 drops exactly that one.
    probabilities = np.array([[0.8, 0.2], [0.7, 0.3], [0.9, 0.1], [0.8, 0.2], [0.0, 1.0]])
    confidence = np.array([1.0, 1.0, 1.0, 0.5, 1.0])
    # kept: 0.8, 0.7, 0.9 (weight 1) and 0.8 (weight 0.5) -> (0.8 + 0.7 + 0.9 + 0.4) / 3.5 = 0.8
    assert TrimmedMeanAggregator().combine(probabilities, confidence) == pytest.approx([0.8, 0.2])
    assert MeanAggregator().combine(probabilities, confidence)[0] == pytest.approx(0.64)


def test_trimmed_mean_keeps_short_sequences_whole():
    probabilities = np.array([[0.2, 0.8], [0.6, 0.4]])
    combined = TrimmedMeanAggregator().combine(probabilities, np.array([0.75, 0.25]))
    assert combined == pytest.approx([0.3, 0.7])


def test_log_odds_is_the_normalised_geometric_mean():
    probabilities = np.array([[0.5, 0.5], [0.8, 0.2]])
    # equal weights: sqrt(0.5 * 0.8) = 0.632..., sqrt(0.5 * 0.2) = 0.316... -> [2/3, 1/3]
    combined = LogOddsAggregator().combine(probabilities, np.array([0.9, 0.9]))
    assert combined == pytest.approx([2 / 3, 1 / 3])
    assert combined.sum() == pytest.approx(1)


def test_log_odds_weights_by_confidence_and_clips_zeros():
    probabilities = np.array([[1.0, 0.0], [0.0, 1.0]])
    # weights 3:1 on log-probabilities clipped at 1e-6: log p = 0.75 log(1) + 0.25 log(1e-6) for class 0,
    # and the mirror for class 1, so class 0 : class 1 = 1e-6 ** 0.25 : 1e-6 ** 0.75 = 1 : 1e-3.
    combined = LogOddsAggregator().combine(probabilities, np.array([0.75, 0.25]))
    assert combined == pytest.approx([1 / 1.001, 0.001 / 1.001])
    # all-zero confidence falls back to equal weights
    assert LogOddsAggregator().combine(probabilities, np.zeros(2)) == pytest.approx([0.5, 0.5])


def test_every_rule_is_registered_and_returns_a_distribution():
    assert {"mean", "confidence_weighted_mean", "trimmed_mean", "log_odds"} <= set(AGGREGATORS)
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(7), size=12)
    for rule in AGGREGATORS.values():
        combined = rule().combine(probabilities, rng.uniform(0.5, 1, size=12))
        assert combined.shape == (7,)
        assert combined.sum() == pytest.approx(1)
        assert (combined >= 0).all()
