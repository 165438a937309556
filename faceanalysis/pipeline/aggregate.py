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


class TrimmedMeanAggregator:
    """Drop the frames farthest from the per-class median, then the confidence-weighted mean of the rest.

    Distance is the L1 distance of a frame's probability vector to the
    element-wise median over all frames; the ``trim`` share of frames (rounded
    down, so fewer than 5 frames are never trimmed at 20%) with the largest
    distance is left out. One bad crop or a detector jitter cannot pull the
    answer towards itself.
    """
    name = "trimmed_mean"
    trim = 0.2

    def combine(self, probabilities: np.ndarray, confidence: np.ndarray) -> np.ndarray:
        probabilities = np.asarray(probabilities, dtype=np.float64)
        confidence = np.asarray(confidence, dtype=np.float64)
        drop = int(np.floor(self.trim * len(probabilities)))
        if drop:
            distance = np.abs(probabilities - np.median(probabilities, axis=0)).sum(axis=1)
            keep = np.sort(np.argsort(distance, kind="stable")[:len(probabilities) - drop])
            probabilities, confidence = probabilities[keep], confidence[keep]
        return ConfidenceWeightedAggregator().combine(probabilities, confidence)


class LogOddsAggregator:
    """Geometric pooling: confidence-weighted mean of log-probabilities, then renormalised (a softmax).

    Equivalent to multiplying the per-frame distributions (each raised to its
    weight share): a class that several frames call nearly impossible stays
    unlikely. Probabilities are clipped at ``floor`` so a single hard zero
    cannot veto a class.
    """
    name = "log_odds"
    floor = 1e-6

    def combine(self, probabilities: np.ndarray, confidence: np.ndarray) -> np.ndarray:
        logs = np.log(np.clip(np.asarray(probabilities, dtype=np.float64), self.floor, 1.0))
        weights = np.asarray(confidence, dtype=np.float64)
        if weights.sum() <= 0:
            weights = np.ones_like(weights)
        pooled = weights @ logs / weights.sum()
        return _normalised(np.exp(pooled - pooled.max()))


AGGREGATORS = {rule.name: rule for rule in (MeanAggregator, ConfidenceWeightedAggregator,
                                            TrimmedMeanAggregator, LogOddsAggregator)}
DEFAULT_AGGREGATOR = ConfidenceWeightedAggregator.name


def _normalised(vector: np.ndarray) -> np.ndarray:
    return vector / vector.sum()
