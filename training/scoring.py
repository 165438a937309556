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


# ----------------------------------------------------------------------------------------------- two views

def weighted_view(true_age: np.ndarray, predicted_age: np.ndarray, true_gender: np.ndarray | None = None,
                  predicted_gender: np.ndarray | None = None, weights: np.ndarray | None = None) -> dict:
    """Age MAE, bias, share within 5 years and gender accuracy, overall and per band of true age, every item
    weighted by ``weights`` (None: equally). A NaN age prediction is left out of MAE and bias and is a miss
    within 5 years; a gender of ``metrics.NO_PREDICTION`` is wrong."""
    true_age, predicted_age = np.asarray(true_age, np.float64), np.asarray(predicted_age, np.float64)
    weights = np.ones(len(true_age)) if weights is None else np.asarray(weights, np.float64)
    error = predicted_age - true_age
    with np.errstate(invalid="ignore"):
        hit = (np.abs(error) <= 5).astype(np.float64)
    correct = None if true_gender is None else (np.asarray(true_gender) == np.asarray(predicted_gender)).astype(float)

    def figures(inside: np.ndarray) -> dict:
        w = weights[inside]
        out = {"n": int(inside.sum()), "age_mae": metrics.weighted_mean(np.abs(error[inside]), w),
               "age_bias": metrics.weighted_mean(error[inside], w),
               "age_within5": metrics.weighted_mean(hit[inside], w)}
        if correct is not None:
            out["gender_acc"] = metrics.weighted_mean(correct[inside], w)
        return out

    return {**figures(np.ones(len(true_age), bool)),
            "bands": [{"band": name, **figures(inside)} for name, inside in metrics.band_masks(true_age)]}


def two_views(true_age: np.ndarray, predicted_age: np.ndarray, true_gender: np.ndarray | None = None,
              predicted_gender: np.ndarray | None = None) -> dict:
    """The same items seen two ways: ``natural`` (every face counts once, so the dataset's crowd of children
    dominates) and ``balanced`` (every decade of true age weighs the same: the balanced MAE is the mean of the
    per-decade MAEs), plus the per-decade figures the balanced view averages."""
    weights = metrics.decade_weights(true_age)
    decades = []
    for name, inside in metrics.band_masks(true_age, metrics.DECADES):
        row = weighted_view(np.asarray(true_age)[inside], np.asarray(predicted_age)[inside],
                            None if true_gender is None else np.asarray(true_gender)[inside],
                            None if predicted_gender is None else np.asarray(predicted_gender)[inside])
        decades.append({"band": name, **{key: value for key, value in row.items() if key != "bands"}})
    return {"natural": weighted_view(true_age, predicted_age, true_gender, predicted_gender),
            "balanced": weighted_view(true_age, predicted_age, true_gender, predicted_gender, weights),
            "decades": decades}


def views_table(named: dict) -> str:
    """One row per (model, view) of ``two_views`` results: overall figures, then MAE / bias and gender accuracy
    per age band."""
    first = next(iter(named.values()))["natural"]
    bands = [band["band"] for band in first["bands"]]
    gender = "gender_acc" in first
    header = (["model", "view", "age MAE", "bias", "within 5"] + (["gender acc"] if gender else [])
              + [f"{band} MAE / bias" for band in bands] + ([f"gender {band}" for band in bands] if gender else []))
    rows = []
    for name, views in named.items():
        for view in ("natural", "balanced"):
            row = views[view]
            cells = [name, view, _number(row["age_mae"]), _number(row["age_bias"], "+.2f"),
                     _number(row["age_within5"], ".3f")] + ([_number(row["gender_acc"], ".3f")] if gender else [])
            cells += [f"{_number(band['age_mae'], '.1f')} / {_number(band['age_bias'], '+.1f')}"
                      for band in row["bands"]]
            cells += [_number(band["gender_acc"], ".3f") for band in row["bands"]] if gender else []
            rows.append(cells)
    return markdown_table(header, rows)


def _number(value: float | None, spec: str = ".2f") -> str:
    return "n/a" if value is None else format(value, spec)


# ----------------------------------------------------------------------------------------------- by group

def by_group(groups: np.ndarray, names: dict, true_age: np.ndarray, predicted_age: np.ndarray,
             true_gender: np.ndarray | None = None, predicted_gender: np.ndarray | None = None,
             samples: int = 1000, seed: int = 0) -> list[dict]:
    """Per group (``names``: group value -> printed name): count, age MAE, bias and gender accuracy (natural
    view inside the group), each with a seeded percentile bootstrap 95% interval over the group's faces."""
    groups = np.asarray(groups)
    true_age, predicted_age = np.asarray(true_age, np.float64), np.asarray(predicted_age, np.float64)
    out = []
    for value, name in names.items():
        rows = np.flatnonzero(groups == value)
        error = predicted_age[rows] - true_age[rows]
        # Each statistic is called in this iteration only; the defaults bind this group's arrays all the same.
        statistics = {"age_mae": lambda pick, error=error: _mean(np.abs(error[pick])),
                      "age_bias": lambda pick, error=error: _mean(error[pick])}
        if true_gender is not None:
            correct = (np.asarray(true_gender)[rows] == np.asarray(predicted_gender)[rows]).astype(np.float64)
            statistics["gender_acc"] = lambda pick, correct=correct: _mean(correct[pick])
        row = {"group": name, "n": int(len(rows))}
        for key, statistic in statistics.items():
            row[key] = statistic(np.arange(len(rows))) if len(rows) else None
            row[f"{key}_ci95"] = metrics.bootstrap_interval(statistic, len(rows), samples, 0.95, seed)
        out.append(row)
    return out


def _mean(values: np.ndarray) -> float | None:
    values = values[~np.isnan(values)]
    return float(values.mean()) if len(values) else None


def group_table(rows: list[dict]) -> str:
    """Markdown table of ``by_group`` rows: each figure with its 95% interval."""
    gender = "gender_acc" in rows[0] if rows else False
    keys = [("age_mae", ".2f"), ("age_bias", "+.2f")] + ([("gender_acc", ".3f")] if gender else [])
    header = ["group", "n", "age MAE [95% CI]", "bias [95% CI]"] + (["gender acc [95% CI]"] if gender else [])
    lines = []
    for row in rows:
        cells = [row["group"], str(row["n"])]
        for key, spec in keys:
            interval = row[f"{key}_ci95"]
            cells.append(_number(row[key], spec) + ("" if interval is None else
                                                  f" [{format(interval[0], spec)}, {format(interval[1], spec)}]"))
        lines.append(cells)
    return markdown_table(header, lines)
