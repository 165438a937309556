"""The figures every trainer and ``evaluate.py`` report, built on ``training.metrics``, and their tables."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from training import metrics


def age_scores(true_age: np.ndarray, predicted_age: np.ndarray) -> dict:
    """MAE, share within 5 years, bias, and the same per band of true age; ages in years."""
    return {"age_mae": metrics.mean_absolute_error(true_age, predicted_age),
            "age_within5": metrics.within(true_age, predicted_age, 5),
            "age_bias": metrics.mean_error(true_age, predicted_age),
            "age_bands": metrics.age_bands(true_age, predicted_age)}


def accuracy_by_age_band(true: np.ndarray, predicted: np.ndarray, true_age: np.ndarray) -> list[dict]:
    """Accuracy per band of true age: gender is much harder to tell for children, which the overall figure
    hides."""
    return [{"band": name, "n": int(inside.sum()), "acc": metrics.accuracy(true[inside], predicted[inside])}
            for name, inside in metrics.band_masks(true_age)]


def classification_scores(true: np.ndarray, predicted: np.ndarray, labels: Sequence[str]) -> dict:
    """Accuracy, macro-F1, per-class scores (by label) and the confusion matrix (rows: true class) of class
    indices; ``metrics.NO_PREDICTION`` counts as wrong."""
    classes = len(labels)
    return {"n": int(len(true)), "accuracy": metrics.accuracy(true, predicted),
            "macro_f1": metrics.macro_f1(true, predicted, classes),
            "per_class": dict(zip(labels, metrics.per_class_scores(true, predicted, classes))),
            "confusion": metrics.confusion_matrix(true, predicted, classes).tolist()}


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table of preformatted cells: the first column names the row, the others are figures
    (right-aligned)."""
    lines = [header, [":---"] + ["---:"] * (len(header) - 1), *rows]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)
