"""Evaluation metrics in plain numpy, small enough to check by hand.

Classification metrics take integer class indices. A prediction of ``-1``
means "no prediction" (no face was found, the image could not be read): it
never equals a true class, so it counts as wrong in accuracy and as a miss
(false negative) for its true class, but as no class's false positive.
Age metrics take years; a ``NaN`` prediction is a miss in the within-N rate
and is left out of the mean absolute error, which has no value to give it.
"""

from __future__ import annotations

import math

import numpy as np

NO_PREDICTION = -1

# (name, lowest age, first age of the next band); by the *true* age.
AGE_BANDS = (("0-12", 0, 13), ("13-19", 13, 20), ("20-39", 20, 40), ("40-59", 40, 60), ("60+", 60, math.inf))


def _pair(true, pred) -> tuple[np.ndarray, np.ndarray]:
    true, pred = np.asarray(true), np.asarray(pred)
    if true.shape != pred.shape or true.ndim != 1:
        raise ValueError(f"expected two 1-d arrays of one length, got {true.shape} and {pred.shape}")
    return true, pred


def _ratio(numerator: float, denominator: float) -> float | None:
    # None, not NaN: it stays valid JSON and says "no data" rather than "zero".
    return float(numerator) / float(denominator) if denominator else None


def mean_absolute_error(true, pred) -> float | None:
    """Mean of |pred - true| over the items that have a prediction."""
    true, pred = _pair(np.asarray(true, np.float64), np.asarray(pred, np.float64))
    found = ~np.isnan(pred)
    return _ratio(np.abs(pred[found] - true[found]).sum(), found.sum())


def mean_error(true, pred) -> float | None:
    """Mean of pred - true over the items that have a prediction: > 0 means ages are overestimated."""
    true, pred = _pair(np.asarray(true, np.float64), np.asarray(pred, np.float64))
    found = ~np.isnan(pred)
    return _ratio((pred[found] - true[found]).sum(), found.sum())


def within(true, pred, tolerance: float = 5.0) -> float | None:
    """Share of all items with |pred - true| <= tolerance (the original system's age metric)."""
    true, pred = _pair(np.asarray(true, np.float64), np.asarray(pred, np.float64))
    with np.errstate(invalid="ignore"):      # NaN compares False: a miss, as intended
        hits = np.abs(pred - true) <= tolerance
    return _ratio(hits.sum(), len(true))


def band_masks(true_age, bands=AGE_BANDS) -> list[tuple[str, np.ndarray]]:
    """(band name, boolean mask of the items whose true age is in it), for every band."""
    true_age = np.asarray(true_age, np.float64)
    return [(name, (true_age >= low) & (true_age < high)) for name, low, high in bands]


def age_bands(true, pred, tolerance: float = 5.0, bands=AGE_BANDS) -> list[dict]:
    """MAE and within-tolerance per band of true age; every band is listed, empty ones with None."""
    true, pred = _pair(np.asarray(true, np.float64), np.asarray(pred, np.float64))
    out = []
    for name, inside in band_masks(true, bands):
        out.append({"band": name, "n": int(inside.sum()), "predicted": int((inside & ~np.isnan(pred)).sum()),
                    "mae": mean_absolute_error(true[inside], pred[inside]),
                    "bias": mean_error(true[inside], pred[inside]),
                    f"within{tolerance:g}": within(true[inside], pred[inside], tolerance)})
    return out


def accuracy(true, pred) -> float | None:
    true, pred = _pair(true, pred)
    return _ratio((true == pred).sum(), len(true))


def confusion_matrix(true, pred, classes: int) -> np.ndarray:
    """(classes, classes) counts, row = true class, column = predicted class.

    Items without a prediction are in no column; their row sums are therefore
    short of the class's support by the number of misses.
    """
    true, pred = _pair(true, pred)
    found = pred != NO_PREDICTION
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (true[found].astype(np.int64), pred[found].astype(np.int64)), 1)
    return matrix


def per_class_scores(true, pred, classes: int) -> list[dict]:
    """Precision, recall, F1 and support of each class; a score whose denominator is 0 is 0.0."""
    true, pred = _pair(true, pred)
    out = []
    for label in range(classes):
        tp = int(((true == label) & (pred == label)).sum())
        predicted = int((pred == label).sum())
        support = int((true == label).sum())
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * tp / (predicted + support) if predicted + support else 0.0
        out.append({"precision": precision, "recall": recall, "f1": f1, "support": support,
                    "predicted": predicted})
    return out


def macro_f1(true, pred, classes: int) -> float | None:
    """Unweighted mean F1 over the classes that occur in the truth or the predictions.

    A class that is in neither has no defined F1 and would only drag the mean
    towards 0 (the same choice as scikit-learn's default labels).
    """
    scores = per_class_scores(true, pred, classes)
    seen = [score["f1"] for score in scores if score["support"] or score["predicted"]]
    return _ratio(sum(seen), len(seen))


# Decades of true age, for the view of the data balanced over the lifespan (UTKFace has no one over 89).
DECADES = tuple((f"{low}-{low + 9}", low, low + 10) for low in range(0, 90, 10)) + (("90+", 90, math.inf),)


def balanced(per_band: list[dict], key: str) -> float | None:
    """The mean over bands of ``per_band[i][key]``, each band with items weighted equally, so that a crowd of
    one age cannot hide the error at another; bands without items (or without a value) are left out."""
    values = [band[key] for band in per_band if band["n"] and band.get(key) is not None]
    return float(np.mean(values)) if values else None


def decade_weights(true_age, bands=DECADES) -> np.ndarray:
    """A weight per item such that every band of true age that has items weighs the same, summing to 1: a
    weighted mean with them is the mean of the per-band means (``balanced``), and weighted means over any
    subset (an age band, a group) stay comparable with it. Items in no band weigh 0."""
    weights = np.zeros(len(np.asarray(true_age)))
    filled = [inside for _, inside in band_masks(true_age, bands) if inside.any()]
    for inside in filled:
        weights[inside] = 1.0 / (inside.sum() * len(filled))
    return weights


def weighted_mean(values, weights) -> float | None:
    """Sum of weight x value over the sum of the weights, leaving out NaN values; None when no weight is left."""
    values, weights = _pair(np.asarray(values, np.float64), np.asarray(weights, np.float64))
    found = ~np.isnan(values)
    total = weights[found].sum()
    return float((weights[found] * values[found]).sum() / total) if total > 0 else None


def bootstrap_interval(statistic, n: int, samples: int = 1000, level: float = 0.95,
                       seed: int = 0) -> tuple[float, float] | None:
    """Percentile bootstrap interval of ``statistic(indices)`` over ``samples`` resamples of ``range(n)`` with
    replacement (seeded, so a report is reproducible); resamples where the statistic has no value are left
    out; None without items or values."""
    if n == 0:
        return None
    rng = np.random.default_rng(seed)
    values = [statistic(rng.integers(0, n, n)) for _ in range(samples)]
    values = np.asarray([value for value in values if value is not None], np.float64)
    if not len(values):
        return None
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)
