"""Sequence aggregation and per-frame choice of the analysed face, on hand-made numbers."""

from __future__ import annotations

import numpy as np
import pytest

from faceanalysis.aggregate import ConfidenceWeightedAggregator, MeanAggregator
from faceanalysis.analyzer import _primary_faces
from faceanalysis.frames import natural_key


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
