"""Scoring the v1 heads on validation: the evaluate.py figures per model, the printed table, and the choice
between the head alone and the head averaged with the networks. (The v2 recipe scores in both views,
``training.lifespan.compare``.)"""

from __future__ import annotations

import numpy as np

from facecore.heads_file import Heads
from training.heads_fitting import expected
from training.metrics import accuracy
from training.scoring import accuracy_by_age_band, age_scores, markdown_table, two_views


def score(true_age: np.ndarray, true_gender: np.ndarray, age_distribution: np.ndarray, gender: np.ndarray,
          bin_ages: np.ndarray) -> dict:
    """The evaluate.py figures (``training.scoring``) for one set of predictions."""
    predicted_gender = gender.argmax(axis=1)
    return {"n": int(len(true_age)), **age_scores(true_age, expected(age_distribution, bin_ages)),
            "gender_acc": accuracy(true_gender, predicted_gender),
            "gender_acc_by_age_band": accuracy_by_age_band(true_gender, predicted_gender, true_age),
            "views": two_views(true_age, expected(age_distribution, bin_ages), true_gender, predicted_gender)}


def evaluate(features: dict, labels: dict, rows: np.ndarray, heads_by_kind: dict, bin_ages: np.ndarray) -> dict:
    """Validation scores: dlib-models, each head alone, and each head averaged with the networks."""
    x = features["x"][rows]
    true_age, true_gender = labels["age"][rows], labels["gender"][rows]
    dlib_age = features["dlib_age"][rows].astype(np.float64)
    dlib_gender = features["dlib_gender"][rows].astype(np.float64)
    table = {"dlib-models": score(true_age, true_gender, dlib_age, dlib_gender, bin_ages)}
    for kind, arrays in heads_by_kind.items():
        heads = Heads(arrays)
        head_age, head_gender = heads.age(x), heads.gender(x)
        table[f"head:{kind}"] = score(true_age, true_gender, head_age, head_gender, bin_ages)
        table[f"ensemble:{kind}"] = score(true_age, true_gender, Heads.mix(head_age, dlib_age, heads.age_mix),
                                          Heads.mix(head_gender, dlib_gender, heads.gender_mix), bin_ages)
        table[f"ensemble:{kind}"]["mix"] = {"age": heads.age_mix, "gender": heads.gender_mix}
    return table


def format_table(table: dict) -> str:
    bands = [band["band"] for band in table["dlib-models"]["age_bands"]]
    header = (["model", "age MAE", "within 5", "bias"] + [f"MAE {band}" for band in bands] + ["gender acc"]
              + [f"gender {band}" for band in bands])
    rows = []
    for name, row in table.items():
        cells = [name, f"{row['age_mae']:.2f}", f"{row['age_within5']:.3f}", f"{row['age_bias']:+.2f}"]
        cells += [f"{band['mae']:.2f}" for band in row["age_bands"]]
        cells += [f"{row['gender_acc']:.3f}"] + [f"{band['acc']:.3f}" for band in row["gender_acc_by_age_band"]]
        rows.append(cells)
    return markdown_table(header, rows)


def choose(table: dict, modes: tuple[str, str] = ("heads", "ensemble")) -> tuple[str, str]:
    """The age head with the lowest validation MAE, and which to prefer: the head alone or averaged with the
    networks (``modes``) when it beats the dlib-models networks on both age MAE and gender accuracy (the lower
    MAE of the two), else "dlib"."""
    kinds = [name.split(":", 1)[1] for name in table if name.startswith("head:")]
    best = min(kinds, key=lambda kind: table[f"head:{kind}"]["age_mae"])
    base = table["dlib-models"]
    better = [(table[name]["age_mae"], -table[name]["gender_acc"], choice)
              for name, choice in ((f"head:{best}", modes[0]), (f"ensemble:{best}", modes[1]))
              if table[name]["age_mae"] < base["age_mae"] and table[name]["gender_acc"] > base["gender_acc"]]
    return best, (min(better)[2] if better else "dlib")
