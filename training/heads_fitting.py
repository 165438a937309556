"""Fitting the age and gender heads with scikit-learn, and the v1 recipe's choices.

Gender is a logistic regression on the standardised features; age has three candidates: a multinomial logistic
regression over the age bins (``bins``), a ridge regression of log(1 + age) (``linear``) and a kernel ridge
regression of log(1 + age) on Nystroem RBF features (``rbf``), the last two turned into a distribution by a
Gaussian in log(1 + age). Each also mixes with the dlib-models network, its weight chosen on "tune". ``Fitter``
hands back the arrays the runtime ``facecore.heads_file.Heads`` reads; the v2 recipe (``training.lifespan``) adds
decade weights, soft labels, a calibration and the children's gender temperature on top of the same fitting.
"""

from __future__ import annotations

import logging

import numpy as np

from facecore.heads_file import Heads
from training.metrics import DECADES, band_masks

log = logging.getLogger(__name__)


def sample_weights(ages: np.ndarray, power: float) -> np.ndarray | None:
    """(1 / images of the decade) ** power per image, mean 1; None for power 0 (unweighted, as v1)."""
    if not power:
        return None
    decade = np.zeros(len(ages), np.int64)
    for number, (_, inside) in enumerate(band_masks(ages, DECADES)):
        decade[inside] = number
    weights = (1.0 / np.bincount(decade)[decade]) ** power
    return weights / weights.mean()


C_GRID = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
ALPHA_GRID = (0.1, 1.0, 10.0, 100.0, 1000.0)
GAMMA_GRID = (0.5 / 128, 1.0 / 128, 2.0 / 128)      # on standardised 128-d embeddings
RBF_CENTRES = 300
MIX_GRID = np.round(np.linspace(0, 1, 21), 2)
PARAMETER_NAMES = {"bins": "C", "linear": "alpha", "rbf": "alpha, gamma"}


def age_bin_index(ages: np.ndarray, bin_ages: np.ndarray) -> np.ndarray:
    """The nearest bin of ``bin_ages``; ages past the last bin go to it."""
    return np.abs(np.minimum(ages, bin_ages[-1])[:, None] - bin_ages[None, :]).argmin(axis=1)


class Fitter:
    """Fits every candidate head on some rows and hands back the arrays the runtime ``Heads`` reads; the age
    heads weigh each image by its decade to the power ``decade_weight`` (0: unweighted, as v1); with
    ``soft_sigma`` (years) the ``bins`` head learns soft labels around the true age instead of one bin."""

    def __init__(self, features: dict, labels: dict, bin_ages: np.ndarray, seed: int,
                 decade_weight: float = 0.0, soft_sigma: float = 0.0) -> None:
        self.x, self.ages, self.genders = features["x"].astype(np.float64), labels["age"], labels["gender"]
        self.bin_ages, self.seed, self.decade_weight = bin_ages, seed, decade_weight
        self.soft_sigma = soft_sigma

    def age_weights(self, rows: np.ndarray) -> np.ndarray | None:
        return sample_weights(self.ages[rows], self.decade_weight)

    def base(self, rows: np.ndarray) -> dict:
        mean, scale = self.x[rows].mean(axis=0), self.x[rows].std(axis=0)
        return {"embedding_mean": mean, "embedding_scale": np.where(scale > 0, scale, 1.0),
                "age_bins": self.bin_ages, "age_mix": np.float64(1.0), "gender_mix": np.float64(1.0)}

    def z(self, base: dict, rows: np.ndarray) -> np.ndarray:
        return (self.x[rows] - base["embedding_mean"]) / base["embedding_scale"]

    def gender(self, base: dict, rows: np.ndarray, c: float) -> dict:
        from sklearn.linear_model import LogisticRegression
        model = LogisticRegression(C=c, max_iter=5000).fit(self.z(base, rows), self.genders[rows])
        assert list(model.classes_) == [0, 1]             # 1 = female
        return {"gender_coef": model.coef_[0], "gender_intercept": np.float64(model.intercept_[0])}

    def age_bins(self, base: dict, rows: np.ndarray, c: float) -> dict:
        from sklearn.linear_model import LogisticRegression
        x, ages, weights = self.z(base, rows), self.ages[rows], self.age_weights(rows)
        if self.soft_sigma:
            x, ages, weights = soft_labels(x, ages, weights, self.soft_sigma, self.bin_ages[-1])
        target = age_bin_index(ages, self.bin_ages)
        model = LogisticRegression(C=c, max_iter=3000).fit(x, target, sample_weight=weights)
        coef = np.zeros((self.x.shape[1], len(self.bin_ages)))
        intercept = np.full(len(self.bin_ages), -1e4)     # bins no training image has: probability 0
        coef[:, model.classes_] = model.coef_.T
        intercept[model.classes_] = model.intercept_
        return {"age_kind": np.str_("bins"), "age_coef": coef, "age_intercept": intercept}

    def age_ridge(self, base: dict, rows: np.ndarray, alpha: float, gamma: float | None = None) -> dict:
        from sklearn.linear_model import Ridge
        x = self.z(base, rows)
        target = np.log1p(self.ages[rows])
        if gamma is None:
            model = Ridge(alpha=alpha).fit(x, target, sample_weight=self.age_weights(rows))
            return {"age_kind": np.str_("linear"), "age_coef": model.coef_,
                    "age_intercept": np.float64(model.intercept_), "age_sigma": np.float64(0.3)}
        # Kernel ridge regression on RBF features of a fixed random sample of the training faces
        # (a Nystroem approximation folded into plain centres + coefficients, so the runtime needs neither).
        from sklearn.kernel_approximation import Nystroem
        nystroem = Nystroem(kernel="rbf", gamma=gamma, n_components=min(RBF_CENTRES, len(rows)),
                            random_state=self.seed).fit(x)
        model = Ridge(alpha=alpha).fit(nystroem.transform(x), target, sample_weight=self.age_weights(rows))
        return {"age_kind": np.str_("rbf"), "age_centres": nystroem.components_, "age_gamma": np.float64(gamma),
                "age_coef": nystroem.normalization_.T @ model.coef_,
                "age_intercept": np.float64(model.intercept_), "age_sigma": np.float64(0.3)}


SOFT_OFFSETS = np.array([-4.0, -2.0, 0.0, 2.0, 4.0])     # years around the true age


def soft_labels(x: np.ndarray, ages: np.ndarray, weights: np.ndarray | None, sigma: float, top: float) -> tuple:
    """Distribution learning with a plain multinomial logistic regression: each image repeated at its age plus
    ``SOFT_OFFSETS`` (clipped to 0..``top``), weighted by a Gaussian of ``sigma`` years (the weights of one
    image sum to its own weight), so the head learns a spread of neighbouring ages rather than one bin."""
    gauss = np.exp(-SOFT_OFFSETS ** 2 / (2 * sigma ** 2))
    gauss /= gauss.sum()
    weights = np.ones(len(ages)) if weights is None else weights
    return (np.concatenate([x] * len(SOFT_OFFSETS)),
            np.concatenate([np.clip(ages + offset, 0, top) for offset in SOFT_OFFSETS]),
            np.concatenate([weights * share for share in gauss]))


def heads_of(*parts: dict) -> Heads:
    arrays = {}
    for part in parts:
        arrays.update(part)
    if "age_kind" not in arrays:
        arrays.update({"age_kind": np.str_("linear"), "age_coef": np.zeros(len(arrays["embedding_mean"])),
                       "age_intercept": np.float64(0), "age_sigma": np.float64(1)})
    if "gender_coef" not in arrays:
        arrays.update({"gender_coef": np.zeros(len(arrays["embedding_mean"])), "gender_intercept": np.float64(0)})
    return Heads(arrays)


def expected(distribution: np.ndarray, bin_ages: np.ndarray) -> np.ndarray:
    return distribution @ bin_ages


def log_loss(female: np.ndarray, gender: np.ndarray) -> float:
    p = np.clip(np.where(gender == 1, female, 1 - female), 1e-7, 1)
    return float(-np.log(p).mean())


def tune(fitter: Fitter, features: dict, parts: dict) -> dict:
    """Every choice made on "tune" with heads fitted on "fit": hyper-parameters, log-age spread, mix weights."""
    fit, held = parts["fit"], parts["tune"]
    base = fitter.base(fit)
    x_held, age_held = fitter.x[held], fitter.ages[held]
    dlib_age = expected(features["dlib_age"][held].astype(np.float64), fitter.bin_ages)
    choices = {"gender": tune_gender(fitter, features, base, fit, held)}

    candidates = {"bins": [("C", value) for value in C_GRID],
                  "linear": [("alpha", value) for value in ALPHA_GRID],
                  "rbf": [(("alpha", "gamma"), (alpha, gamma)) for alpha in ALPHA_GRID[:4] for gamma in GAMMA_GRID]}
    choices["age"] = {}
    for kind, grid in candidates.items():
        results = []
        for name, value in grid:
            part = make_age_part(fitter, base, fit, kind, value)
            heads = heads_of(base, part)
            if kind == "bins":
                predicted = expected(heads.age(x_held), fitter.bin_ages)
            else:
                predicted = np.expm1(heads.age_log_mean(x_held))
            results.append((float(np.abs(predicted - age_held).mean()), value, part))
        mae, value, part = min(results, key=lambda result: result[0])
        entry = {"param": value, "tune_mae_point": mae}
        if kind != "bins":
            # The Gaussian's spread in log(1 + age): the residual spread on held-out images.
            residual = heads_of(base, part).age_log_mean(x_held) - np.log1p(np.minimum(age_held, 80))
            part["age_sigma"] = np.float64(residual.std())
            entry["sigma"] = float(residual.std())
        head_age = expected(heads_of(base, part).age(x_held), fitter.bin_ages)
        entry["tune_mae"] = float(np.abs(head_age - age_held).mean())
        entry["mix"] = float(min(MIX_GRID, key=lambda w: (
            np.abs(w * head_age + (1 - w) * dlib_age - age_held).mean(), -w)))
        choices["age"][kind] = entry
        log.info("age %s: %s, tune MAE %.3f (distribution), mix weight of the head %.2f",
                 kind, value, entry["tune_mae"], entry["mix"])
    return choices


def tune_gender(fitter: Fitter, features: dict, base: dict, fit: np.ndarray, held: np.ndarray) -> dict:
    """The gender head's C and its weight when mixed with the network, both by log-loss on ``held``."""
    x_held, gender_held = fitter.x[held], fitter.genders[held]
    dlib_female = features["dlib_gender"][held, 1].astype(np.float64)
    scores = {}
    for c in C_GRID:
        female = heads_of(base, fitter.gender(base, fit, c)).gender(x_held)[:, 1]
        scores[c] = log_loss(female, gender_held)
    c = min(scores, key=scores.get)
    female = heads_of(base, fitter.gender(base, fit, c)).gender(x_held)[:, 1]
    mix = min(MIX_GRID, key=lambda w: (log_loss(w * female + (1 - w) * dlib_female, gender_held), -w))
    log.info("gender: C=%g (tune log-loss %.4f), mix weight of the head %.2f", c, scores[c], mix)
    return {"C": c, "tune_log_loss": scores, "mix": float(mix)}


def make_age_part(fitter: Fitter, base: dict, rows: np.ndarray, kind: str, value) -> dict:
    if kind == "bins":
        return fitter.age_bins(base, rows, value)
    if kind == "linear":
        return fitter.age_ridge(base, rows, value)
    alpha, gamma = value
    return fitter.age_ridge(base, rows, alpha, gamma)


def refit(fitter: Fitter, choices: dict, rows: np.ndarray) -> dict:
    """Every head refitted on all of train with the choices made on "tune": {age kind: Heads arrays}."""
    base = fitter.base(rows)
    gender = fitter.gender(base, rows, choices["gender"]["C"])
    out = {}
    for kind, entry in choices["age"].items():
        part = make_age_part(fitter, base, rows, kind, entry["param"])
        if "sigma" in entry:
            part["age_sigma"] = np.float64(entry["sigma"])
        out[kind] = {**base, **gender, **part, "age_mix": np.float64(entry["mix"]),
                     "gender_mix": np.float64(choices["gender"]["mix"])}
    return out
