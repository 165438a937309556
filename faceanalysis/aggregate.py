"""How per-frame probabilities become one answer for the sequence.

The 2020 system used an LSTM trained on data that is not available anywhere;
an untrained one would be a random number generator. The temporal stage is
therefore a small pluggable rule. A trained temporal model can replace it
behind the same ``combine`` call once labelled sequences exist.
"""

from __future__ import annotations

import numpy as np


class MeanAggregator:
    """Plain average of the per-frame probability vectors."""
    name = "mean"

    def combine(self, probabilities: np.ndarray, confidence: np.ndarray) -> np.ndarray:
        return _normalised(np.asarray(probabilities, dtype=np.float64).mean(axis=0))


class ConfidenceWeightedAggregator:
    """Average weighted by detection confidence, so blurred or half-seen faces count less."""
    name = "confidence_weighted_mean"

    def combine(self, probabilities: np.ndarray, confidence: np.ndarray) -> np.ndarray:
        weights = np.asarray(confidence, dtype=np.float64)
        if weights.sum() <= 0:
            weights = np.ones_like(weights)
        return _normalised(weights @ np.asarray(probabilities, dtype=np.float64) / weights.sum())


AGGREGATORS = {rule.name: rule for rule in (MeanAggregator, ConfidenceWeightedAggregator)}
DEFAULT_AGGREGATOR = ConfidenceWeightedAggregator.name


def _normalised(vector: np.ndarray) -> np.ndarray:
    return vector / vector.sum()
