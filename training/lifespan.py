"""The v2 ("lifespan") recipe of the heads on the networks' features: what it adds to the v1 fitting
(``training.heads_fitting``).

v1 was chosen on UTKFace's natural mix (38% under 13), which rewarded children and never saw the cost at the
other end (60+ about 12 years too young). v2 is chosen on the view balanced by decade (``training.scoring``),
always on "tune", never on validation:

- age bins: the 101 lifespan bins (0.25, 1, ..., 100), so a head can answer past 80;
- sample weights by decade: each image weighs (1 / images of its decade) ** ``decade_weight``, normalised to a
  mean of 1 (1: every decade weighs the same; 0: v1);
- a monotone calibration from predicted to true age: isotonic regression of the true age on the mixed
  distribution's expected age, weighted by decade to the power chosen on "tune" (scored by 2-fold
  cross-fitting inside "tune"), stored as ``age_warp`` (the calibrated age of every lifespan bin,
  ``age.calibration.warp_bins``);
- gender for children: where the age head alone places a face under ``CHILD_AGE``, the gender logit is divided
  by a temperature fitted by log-loss on "tune" (``gender.softening.soften``).
"""

from __future__ import annotations

import logging

import numpy as np

from age.calibration import answer_age, warp_bins
from age.distribution import LIFESPAN_BINS, on_lifespan
from facecore.heads_file import Heads
from gender.softening import answer_gender, soften
from training import heads_fitting as fitting
from training.heads_fitting import log_loss, sample_weights
from training.metrics import decade_weights

log = logging.getLogger(__name__)

CHILD_AGE = 13.0                                   # the "0-12" band of the reports
TEMPERATURES = np.round(np.linspace(1, 6, 51), 2)
CALIBRATION_POWERS = (None, 0.0, 0.5, 1.0)         # None: no calibration
V2_C_GRID = (0.01, 0.03, 0.1)                      # v1 chose 0.1; weighted by decade, 0.3 and 1 lost on "tune"


def balanced_mae(true_age: np.ndarray, predicted_age: np.ndarray) -> float:
    """The mean of the per-decade MAEs: what every v2 choice minimises."""
    return float(decade_weights(true_age) @ np.abs(predicted_age - true_age))


def isotonic_warp(predicted: np.ndarray, true_age: np.ndarray, power: float) -> np.ndarray:
    """(101,) calibrated age of every lifespan bin: isotonic regression of true on predicted age, each image
    weighted by (1 / images of its decade) ** power."""
    from sklearn.isotonic import IsotonicRegression
    weights = sample_weights(true_age, power)
    model = IsotonicRegression(y_min=float(LIFESPAN_BINS[0]), y_max=float(LIFESPAN_BINS[-1]),
                               out_of_bounds="clip").fit(predicted, true_age, sample_weight=weights)
    return model.predict(LIFESPAN_BINS)


def choose_calibration(distributions: np.ndarray, true_age: np.ndarray, seed: int) -> tuple[float | None, dict]:
    """The calibration power (None: none) with the lowest balanced MAE on ``distributions`` (lifespan, of
    held-out images), each warp fitted on one half and scored on the other (both ways), so that the choice does
    not reward a warp for remembering the images it is scored on. Returns (power, {power: balanced MAE})."""
    order = np.random.default_rng(seed).permutation(len(true_age))
    halves = (order[::2], order[1::2])
    expected = distributions @ LIFESPAN_BINS
    scores = {}
    for power in CALIBRATION_POWERS:
        predicted = expected.copy()
        if power is not None:
            for scored, fitted in (halves, halves[::-1]):
                warp = isotonic_warp(expected[fitted], true_age[fitted], power)
                predicted[scored] = warp_bins(distributions[scored], warp) @ LIFESPAN_BINS
        scores[power] = balanced_mae(true_age, predicted)
    best = min(scores, key=scores.get)
    return best, {str(power): score for power, score in scores.items()}


def fit_child_temperature(female: np.ndarray, gender: np.ndarray, young: np.ndarray) -> tuple[float, float, float]:
    """The temperature (>= 1) of the gender logit with the lowest log-loss on the ``young`` faces; returns it
    with the log-loss before and after."""
    if not young.any():
        return 1.0, float("nan"), float("nan")

    def loss(temperature: float) -> float:
        softened = soften(np.stack([1 - female, female], axis=1), young, temperature)[young, 1]
        return log_loss(softened, gender[young])

    best = min(TEMPERATURES, key=loss)
    return float(best), loss(1.0), loss(best)


# ----------------------------------------------------------------------------------------------- the recipe

def tune(fitter, features: dict, parts: dict, seed: int) -> dict:
    """Every v2 choice, made on "tune" with heads fitted on "fit" (decade-weighted): the gender head as v1
    (log-loss), then per age kind its parameter, its mix with the network and its calibration, each by the
    balanced MAE; the kind with the lowest (cross-fitted) balanced MAE; the children's gender temperature."""
    fit, held = parts["fit"], parts["tune"]
    base = fitter.base(fit)
    x_held, age_held, gender_held = fitter.x[held], fitter.ages[held], fitter.genders[held]
    network_age = features["dlib_age"][held].astype(np.float64)
    choices = {"gender": fitting.tune_gender(fitter, features, base, fit, held), "age": {}}
    candidates = {"bins": [("C", value) for value in V2_C_GRID],
                  "linear": [("alpha", value) for value in fitting.ALPHA_GRID],
                  "rbf": [(("alpha", "gamma"), (alpha, gamma)) for alpha in fitting.ALPHA_GRID[:4]
                          for gamma in fitting.GAMMA_GRID]}
    for kind, grid in candidates.items():
        results = []
        for _, value in grid:
            part = fitting.make_age_part(fitter, base, fit, kind, value)
            if kind != "bins":
                # The Gaussian's spread in log(1 + age): the residual spread on held-out images.
                residual = fitting.heads_of(base, part).age_log_mean(x_held) - np.log1p(age_held)
                part["age_sigma"] = np.float64(residual.std())
            head = on_lifespan(fitting.heads_of(base, part).age(x_held), fitter.bin_ages)
            results.append((balanced_mae(age_held, head @ LIFESPAN_BINS), value, part, head))
        score, value, part, head = min(results, key=lambda result: result[0])
        mix = float(min(fitting.MIX_GRID, key=lambda w: (balanced_mae(
            age_held, Heads.mix(head, network_age, w) @ LIFESPAN_BINS), -w)))
        mixed = Heads.mix(head, network_age, mix)
        power, calibration = choose_calibration(mixed, age_held, seed)
        entry = {"param": value, "tune_balanced_mae_head": score, "mix": mix, "calibration_power": power,
                 "tune_balanced_mae_by_calibration": calibration, "tune_balanced_mae": calibration[str(power)]}
        if "age_sigma" in part:
            entry["sigma"] = float(part["age_sigma"])
        if power is not None:
            entry["warp"] = isotonic_warp(mixed @ LIFESPAN_BINS, age_held, power)
        choices["age"][kind] = entry
        log.info("age %s: %s, tune balanced MAE %.3f (head), mix %.2f, calibration %s: %.3f", kind, value, score,
                 mix, power, entry["tune_balanced_mae"])
    best = min(choices["age"], key=lambda kind: choices["age"][kind]["tune_balanced_mae"])
    choices["best"] = best
    entry = choices["age"][best]
    part = fitting.make_age_part(fitter, base, fit, best, entry["param"])
    if "sigma" in entry:
        part["age_sigma"] = np.float64(entry["sigma"])
    heads = fitting.heads_of(base, part, fitter.gender(base, fit, choices["gender"]["C"]))
    young = heads.age(x_held) @ fitter.bin_ages < CHILD_AGE
    female = Heads.mix(heads.gender(x_held), features["dlib_gender"][held].astype(np.float64),
                               choices["gender"]["mix"])[:, 1]
    temperature, before, after = fit_child_temperature(female, gender_held, young)
    choices["children"] = {"age_below": CHILD_AGE, "temperature": temperature, "n_tune": int(young.sum()),
                           "tune_log_loss_before": before, "tune_log_loss_after": after,
                           "tune_accuracy": (float(((female > 0.5) == gender_held)[young].mean())
                                             if young.any() else None)}
    log.info("age head %s; children (age head < %g, %d tune faces): gender temperature %.2f, log-loss %.4f -> %.4f",
             best, CHILD_AGE, young.sum(), temperature, before, after)
    return choices


def finish(arrays: dict, choices: dict) -> dict:
    """The refitted best kind's arrays with the calibration and the children's temperature added."""
    entry = choices["age"][choices["best"]]
    out = dict(arrays)
    if "warp" in entry:
        out["age_warp"] = np.asarray(entry["warp"], np.float64)
    out["child_age"] = np.float64(choices["children"]["age_below"])
    out["child_temperature"] = np.float64(choices["children"]["temperature"])
    return out


def predict(arrays: dict, x: np.ndarray, network_age: np.ndarray, network_gender: np.ndarray) -> tuple:
    """(lifespan age distributions, gender probabilities) as the service's head models answer in "tuned" /
    "lifespan" mode (``age.calibration.HeadAgeModel``, ``gender.softening.HeadGenderModel``)."""
    heads = Heads(arrays)
    return answer_age(heads, x, network_age), answer_gender(heads, x, network_gender)


RACES = {0: "White", 1: "Black", 2: "Asian", 3: "Indian", 4: "Others"}   # UTKFace's race labels


def inputs_of(arrays: dict, features: dict) -> np.ndarray:
    """The feature matrix a heads file reads, told by its width: the networks' features (272, the per-face
    heads) or ``features["x"]`` (whatever this run trains on, e.g. networks and embedding side by side)."""
    width = len(arrays["embedding_mean"])
    for candidate in (features.get("networks"), features["x"]):
        if candidate is not None and candidate.shape[1] == width:
            return candidate
    raise ValueError(f"no features of width {width} for this heads file")


def compare(models: dict, features: dict, labels: dict, rows: np.ndarray, races: np.ndarray | None) -> dict:
    """Both views, and the table by race group and by gender, of every model ({name: heads arrays, or None for
    the published networks}) on ``rows``."""
    from facecore.labels import GENDERS
    from training.scoring import by_group, two_views
    true_age, true_gender = labels["age"][rows], labels["gender"][rows]
    network_age = features["dlib_age"][rows].astype(np.float64)
    network_gender = features["dlib_gender"][rows].astype(np.float64)
    out = {}
    for name, arrays in models.items():
        if arrays is None:
            age, gender = network_age, network_gender
        else:
            age, gender = predict(arrays, inputs_of(arrays, features)[rows], network_age, network_gender)
        predicted_age, predicted_gender = age @ LIFESPAN_BINS, gender.argmax(axis=1)
        out[name] = two_views(true_age, predicted_age, true_gender, predicted_gender)
        out[name]["by_gender"] = by_group(true_gender, dict(enumerate(GENDERS)), true_age, predicted_age,
                                          true_gender, predicted_gender)
        if races is not None:
            out[name]["by_race"] = by_group(races[rows], RACES, true_age, predicted_age, true_gender,
                                            predicted_gender)
    return out
