"""Train age and gender heads on UTKFace and compare them with the dlib-models networks on a held-out
validation split.

    python -m training heads [--features embedding|networks] [--recipe v1|v2] [--decade-weight 1]
                             [--data ../shared/data/utkface] [--cache ~/.cache/videoface] [--seed 0] [--ship]

Two recipes. ``v2`` (the default with ``--features networks``; ``training.lifespan``): the "lifespan" heads,
``weights/age_gender_netheads_v2.npz``: 101 lifespan bins, images weighted by decade, an isotonic calibration,
a lower-confidence gender for children, every choice on the decade-balanced view of "tune"; it prints both views
and the table by race group for the published networks, v1 "tuned" and v2. ``v1`` (the only recipe for the
embedding): what made the shipped ``*_v1.npz`` files, on the network's 81 bins, described below;
``--features networks --recipe v1`` reproduces the "tuned" figures (it refuses ``--ship``: v1 is shipped).

``--features embedding`` (default): heads on the dlib face embedding ("FaceNet + heads", the original's
design; choices ``heads`` / ``ensemble`` in the service). ``--features networks``: heads on the dlib-models age
and gender networks' own penultimate features, i.e. their last layers refitted on UTKFace (choice ``tuned``,
the service default: no extra network at run time). Everything below is the same for both.

One data path, in order:

1. ``labels.csv`` is split once, with ``--seed``, into train (80%) and validation (20%), stratified by age band
   and gender. Inside train a second split with the same seed holds out 20% ("tune") on which every
   hyper-parameter and ensemble weight is chosen; validation is only ever scored (``training.data``).
2. Per image, through the service's own code (decoder, dlib 5-point aligner on the whole crop, as
   ``analyse_images(faces_given=True)`` does, ``training.batches``): the 128-d embedding, and the dlib-models
   age distribution (81 bins) and gender probabilities as baselines (or the networks' features, with
   ``--features networks``). Cached in ``--cache`` (outside the repository: the features name research-only
   files), so a re-run only fits.
3. Heads with scikit-learn: gender is a logistic regression on the embedding; age has three candidates (a
   multinomial logistic regression over the 81 age bins; a ridge regression of log-age and a kernel ridge
   regression of log-age on Nystroem RBF features, both turned into an 81-bin distribution by a Gaussian in
   log-age). Each also mixes with the dlib-models network (weight chosen on "tune").
4. The table (validation: age MAE, within 5 years, MAE per band, gender accuracy overall and per band) is
   printed and written to ``--cache/heads_report[_networks]_seed<seed>.json``.
5. ``--ship`` refits the chosen heads on all of train and writes ``weights/age_gender_heads_v1.npz`` (or
   ``age_gender_netheads_v1.npz``) and its manifest entry (sha256, data, terms, seed, validation figures).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from age.distribution import LIFESPAN_BINS, on_lifespan
from training import data
from training.batches import faces_given
from training.metrics import accuracy
from training.scoring import accuracy_by_age_band, age_scores, markdown_table, two_views, views_table
from training.shipping import WEIGHTS_DIR, command, ship

log = logging.getLogger(__name__)

# What the heads read: the dlib face embedding ("FaceNet + heads"), or the dlib-models age and gender
# networks' own penultimate features (``age.heads.NetworkFeatures``; the "tuned" choice).
FEATURE_KINDS = {
    "embedding": {"file": WEIGHTS_DIR / "age_gender_heads_v1.npz", "key": "age_gender_heads",
                  "describe": "the dlib 128-d face embedding", "modes": ("heads", "ensemble")},
    "networks": {"file": WEIGHTS_DIR / "age_gender_netheads_v1.npz", "key": "age_gender_netheads",
                 "describe": ("the dlib-models age and gender networks' penultimate features (256 + 16 values, "
                              "their last layers refitted)"), "modes": ("tuned-head", "tuned")},
}
# What every heads file's manifest entry says of its data: the weights inherit UTKFace's terms.
UTKFACE_LICENCE = ("Non-commercial research only: trained on UTKFace crop_part1, whose terms (non-commercial "
                   "research, image copyright with the owners) the weights inherit")
UTKFACE_DATA = {
    "data": "UTKFace crop_part1 (research only, non-commercial), 7,778 200x200 crops, ../shared/data/utkface",
    "terms": "UTKFace (Zhang, Song, Qi 2017): non-commercial research only; image copyright stays with the owners"}
# The v2 recipe (``training.lifespan``, ``--features networks``): the service's "lifespan" choice.
LIFESPAN_TARGET = {"file": WEIGHTS_DIR / "age_gender_netheads_v2.npz", "key": "age_gender_lifespan",
                   "describe": FEATURE_KINDS["networks"]["describe"], "modes": ("lifespan-head", "lifespan"),
                   "name": "lifespan v2"}
# The same recipe on the networks' features and the face embedding side by side (``--features combined``): the
# person head (``age.person``), which reads the few faces per person the tracker embeds.
PERSON_TARGET = {"file": WEIGHTS_DIR / "age_gender_person_v2.npz", "key": "age_gender_person",
                 "describe": ("the dlib-models networks' penultimate features (272 values) and the dlib 128-d face "
                          "embedding side by side (400 values)"), "name": "person v2"}
V2_TARGETS = {"networks": LIFESPAN_TARGET, "combined": PERSON_TARGET}


# ----------------------------------------------------------------------------------------------- features

def feature_cache_path(cache: Path, data_dir: Path, manifest: dict) -> Path:
    digest = hashlib.sha256((data_dir / "labels.csv").read_bytes())
    for key in ("aligner", "embedding", "age", "gender"):
        digest.update(manifest[key]["sha256"].encode())
    return cache / f"utkface_features_{digest.hexdigest()[:12]}.npz"


def compute_features(data_dir: Path, files: np.ndarray, batch_size: int = 64) -> dict:
    """Embedding, dlib-models age distribution and gender probabilities for every file, through the service."""
    from faceanalysis.pipeline.analyzer import FaceAnalyzer
    from facecore.embedding import FaceEmbedder
    from facecore.frames import decode_frame

    # The baselines are the dlib-models networks, whatever the service's default.
    analyzer = FaceAnalyzer(age_gender="dlib", device="cpu", batch_size=batch_size).prepare()
    embedder = FaceEmbedder(analyzer.weights["embedding"])
    embedder.prepare(analyzer.device)
    embedding = np.zeros((len(files), 128), np.float32)
    age = np.zeros((len(files), len(LIFESPAN_BINS)), np.float32)
    gender = np.zeros((len(files), 2), np.float32)
    start = time.perf_counter()
    for first in range(0, len(files), batch_size):
        chunk = range(first, min(first + batch_size, len(files)))
        images = [decode_frame(data_dir / files[i]) for i in chunk]
        table = analyzer.analyse_images(images, faces_given=True)
        if len(table) != len(images):
            raise RuntimeError(f"expected one face per image, got {len(table)} for {len(images)}")
        age[first:chunk.stop], gender[first:chunk.stop] = table.age, table.gender
        embedding[first:chunk.stop] = embedder.run(faces_given(images, analyzer.aligner))
        done = chunk.stop
        if (first // batch_size) % 10 == 0 or done == len(files):
            elapsed = time.perf_counter() - start
            log.info("features: %d/%d images, %.0f s, %.0f s left", done, len(files), elapsed,
                     elapsed / done * (len(files) - done))
    return {"embedding": embedding, "dlib_age": age, "dlib_gender": gender}


def compute_network_features(data_dir: Path, files: np.ndarray, batch_size: int = 64) -> dict:
    """The age and gender networks' penultimate features and outputs for every file, through the service's
    aligner and networks (as ``age.heads.NetworkFeatures`` reads them at run time)."""
    from age.network import AgeModel
    from facecore.device import select_device
    from facecore.faces import Aligner
    from gender.network import GenderModel
    from facecore.frames import decode_frame
    from age.heads import NetworkFeatures
    from facecore.weights import resolve
    device = select_device("cpu")
    aligner = Aligner(resolve("aligner"))
    aligner.prepare(device)
    features = NetworkFeatures(AgeModel(resolve("age")), GenderModel(resolve("gender")))
    features.prepare(device)
    out = {"networks": [], "dlib_age": [], "dlib_gender": []}
    for first in range(0, len(files), batch_size):
        faces = faces_given([decode_frame(data_dir / name) for name in files[first:first + batch_size]], aligner)
        out["networks"].append(features.run(faces))
        out["dlib_age"].append(features.age.run(faces))
        out["dlib_gender"].append(features.gender.run(faces))
    return {name: np.concatenate(parts).astype(np.float32) for name, parts in out.items()}


def load_features(data_dir: Path, cache: Path, labels: dict, kind: str = "embedding") -> dict:
    """The features of ``kind`` (as ``"x"``) plus the networks' outputs, computed once and cached.
    ``combined``: the networks' features and the embedding side by side (both caches)."""
    from facecore.weights import load_manifest
    if kind == "combined":
        networks = load_features(data_dir, cache, labels, "networks")
        embedding = load_features(data_dir, cache, labels, "embedding")
        return {**networks, "embedding": embedding["embedding"],
                "x": np.concatenate([networks["networks"], embedding["embedding"]], axis=1)}
    path = feature_cache_path(cache, data_dir, load_manifest())
    if kind == "networks":
        path = path.with_name(path.name.replace("utkface_features_", "utkface_netfeatures_"))
    if path.is_file():
        log.info("features from %s", path)
        with np.load(path) as stored:
            features = {name: stored[name] for name in stored.files}
        if np.array_equal(features["files"], labels["file"]):
            if features["dlib_age"].shape[1] != len(LIFESPAN_BINS):     # cached before ages went to 100
                features["dlib_age"] = on_lifespan(features["dlib_age"], LIFESPAN_BINS[:features["dlib_age"].shape[1]])
            return {**features, "x": features[kind]}
        log.warning("%s lists other files; computing again", path)
    compute = compute_network_features if kind == "networks" else compute_features
    features = compute(data_dir, labels["file"])
    features["files"] = labels["file"]
    cache.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **features)
    log.info("features cached in %s", path)
    return {**features, "x": features[kind]}


# ----------------------------------------------------------------------------------------------- heads

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
        from training.lifespan import sample_weights
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


def heads_of(*parts: dict):
    from age.heads import Heads
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
        entry["mix"] = float(min(MIX_GRID, key=lambda w: (np.abs(w * head_age + (1 - w) * dlib_age - age_held).mean(), -w)))
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


# ----------------------------------------------------------------------------------------------- scoring

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
    from age.heads import Heads
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


# ----------------------------------------------------------------------------------------------- run

def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m training heads", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    data.add_data_arguments(parser, data.UTKFACE)
    parser.add_argument("--features", choices=(*FEATURE_KINDS, "combined"), default="embedding",
                        help="what the heads read: the dlib face embedding, the dlib-models networks' own "
                             "penultimate features (the 'tuned' and 'lifespan' per-face heads), or both side by "
                             "side (combined: the 'lifespan' person head, v2 only) (default %(default)s)")
    parser.add_argument("--features-only", action="store_true", help="compute and cache the features, then stop")
    parser.add_argument("--recipe", choices=("v1", "v2"),
                        help="v2 (default with --features networks): 101 lifespan bins, decade weights, calibration "
                             "and the children's gender temperature, every choice on the balanced view of 'tune' "
                             "(training/lifespan.py); v1 (the only recipe for the embedding): the 81 network bins, "
                             "unweighted, as the shipped *_v1 files were made (reproduces them; no --ship)")
    parser.add_argument("--decade-weight", type=float, default=1.0,
                        help="v2: age images weigh (1 / images of their decade) ** this (default %(default)s)")
    parser.add_argument("--soft-labels", type=float, default=0.0, metavar="SIGMA",
                        help="v2: the bins head learns soft labels, a Gaussian of SIGMA years around the true age "
                             "(0: one bin, as shipped; default %(default)s)")
    parser.add_argument("--ship", action="store_true",
                        help="write the heads file (weights/age_gender_heads_v1.npz for the embedding, "
                             "weights/age_gender_netheads_v1.npz for the networks) and its weights/manifest.json entry")
    args = parser.parse_args(argv)
    recipe = args.recipe or ("v2" if args.features in V2_TARGETS else "v1")
    if recipe == "v2" and args.features not in V2_TARGETS:
        parser.error("--recipe v2 is for --features networks or combined")
    if recipe == "v1" and args.features == "combined":
        parser.error("--features combined has the v2 recipe only")
    if recipe == "v1" and args.ship:
        parser.error("the v1 files are shipped: --recipe v1 reproduces their figures without writing them")
    data_dir, cache = args.data.resolve(), args.cache.expanduser().resolve()
    if (problem := data.missing_labels(data_dir)) is not None:
        print(problem, file=sys.stderr)
        return 2
    labels = data.utkface_labels(data_dir)
    features = load_features(data_dir, cache, labels, args.features)
    if args.features_only:
        return 0
    from age.network import AgeModel
    from facecore.weights import load_manifest, resolve
    parts = data.utkface_split(labels, args.seed)
    log.info("split (seed %d): train %d (fit %d + tune %d), validation %d", args.seed, len(parts["train"]),
             len(parts["fit"]), len(parts["tune"]), len(parts["validation"]))
    if recipe == "v2":
        return main_lifespan(args, argv, data_dir, cache, labels, features, parts)
    bin_ages = AgeModel(resolve("age", load_manifest())).network_bins     # v1: the network's 81 bins
    features = {**features, "dlib_age": features["dlib_age"][:, :len(bin_ages)]}
    fitter = Fitter(features, labels, bin_ages, args.seed)
    choices = tune(fitter, features, parts)
    heads_by_kind = refit(fitter, choices, parts["train"])
    table = evaluate(features, labels, parts["validation"], heads_by_kind, bin_ages)
    best_kind, default = choose(table, FEATURE_KINDS[args.features]["modes"])
    print(format_table(table))
    print(views_table({name: row["views"] for name, row in table.items()}))
    print(f"age head picked by validation MAE: {best_kind}; default: {default}")
    report = {
        "command": command("heads", argv),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "data_dir": str(data_dir),
        "seed": args.seed, "split": {name: int(len(rows)) for name, rows in parts.items()},
        "choices": choices, "age_head": best_kind, "default": default, "validation": table,
        "validation_subset_for_tests": data.utkface_validation_subset(labels, args.seed),
    }
    cache.mkdir(parents=True, exist_ok=True)
    suffix = "" if args.features == "embedding" else f"_{args.features}"
    report_path = cache / f"heads_report{suffix}_seed{args.seed}.json"
    report_path.write_text(json.dumps(report, indent=2, default=float) + "\n", encoding="utf-8")
    log.info("report written to %s", report_path)
    labels_path = data.write_utkface_labels(cache / f"utkface_validation_seed{args.seed}", data_dir, labels,
                                            parts["validation"], data.read_labels(data_dir, {"race": int})["race"])
    log.info("validation split for evaluate.py: --data %s --faces-given [--by race]", labels_path.parent)
    if args.ship:
        ship_heads(FEATURE_KINDS[args.features], heads_by_kind[best_kind], best_kind, default, args.seed, choices,
                   features, labels, parts, bin_ages, report["command"])
    return 0


def ship_heads(target: dict, arrays: dict, kind: str, default: str, seed: int, choices: dict, features: dict,
               labels: dict, parts: dict, bin_ages: np.ndarray, run_command: str) -> None:
    """Write the heads file (float32) and its manifest entry; the figures are re-measured from the file."""
    heads_file = target["file"]
    stored = {name: (value.astype(np.float32) if np.asarray(value).dtype.kind == "f" else value)
              for name, value in arrays.items()}
    np.savez_compressed(heads_file, **stored)
    shipped = evaluate(features, labels, parts["validation"], {kind: dict(np.load(heads_file))}, bin_ages)

    def figures(row: dict) -> dict:
        return {"age_mae": round(row["age_mae"], 3), "age_within5": round(row["age_within5"], 3),
                "gender_acc": round(row["gender_acc"], 3)}

    ship(target["key"], heads_file,
         model=(f"age and gender heads on {target['describe']} (python -m training heads): gender logistic "
                f"regression; age '{kind}' head giving the 81-bin distribution; mixed with the dlib-models "
                f"networks in '{target['modes'][1]}' mode (age weight {float(arrays['age_mix']):.2f}, gender weight "
                f"{float(arrays['gender_mix']):.2f} for the head)"),
         license_text=UTKFACE_LICENCE,
         training={
             **UTKFACE_DATA,
             "command": run_command, "seed": seed,
             "split": (f"{len(parts['train'])} train / {len(parts['validation'])} validation, stratified by age band "
                       f"and gender; choices on {len(parts['tune'])} held-out train images"),
             "age_head": {"kind": kind, PARAMETER_NAMES[kind]: choices["age"][kind]["param"],
                          **{k: v for k, v in choices["age"][kind].items() if k not in ("param", "tune_mae_point")}},
             "gender_head": {"C": choices["gender"]["C"], "mix": choices["gender"]["mix"]},
             "validation": {"dlib-models": figures(shipped["dlib-models"]),
                            target["modes"][0]: figures(shipped[f"head:{kind}"]),
                            target["modes"][1]: figures(shipped[f"ensemble:{kind}"])},
             "default": default,
         })


def main_lifespan(args, argv: list[str], data_dir: Path, cache: Path, labels: dict, features: dict,
                  parts: dict) -> int:
    """The v2 recipe (``training.lifespan``): tune on "tune", refit the chosen head on train, and compare the
    published networks, the shipped v1 "tuned" heads and v2 on validation in both views and by group."""
    from training import lifespan
    from training.scoring import group_table, views_table
    fitter = Fitter(features, labels, LIFESPAN_BINS, args.seed, decade_weight=args.decade_weight,
                    soft_sigma=args.soft_labels)
    choices = lifespan.tune(fitter, features, parts, args.seed)
    best = choices["best"]
    arrays = lifespan.finish(refit(fitter, {"gender": choices["gender"], "age": {best: choices["age"][best]}},
                                   parts["train"])[best], choices)
    races = data.read_labels(data_dir, {"race": int})["race"]
    target = V2_TARGETS[args.features]
    models = {"published network": None, "tuned v1": dict(np.load(FEATURE_KINDS["networks"]["file"]))}
    if target is PERSON_TARGET:                    # the shipped per-face v2 beside the person head
        models["lifespan v2"] = dict(np.load(LIFESPAN_TARGET["file"]))
    models[target["name"]] = arrays
    table = lifespan.compare(models, features, labels, parts["validation"], races)
    print(views_table(table))
    for name, views in table.items():
        print(f"\n{name}, by race group (validation, natural view inside each group):")
        print(group_table(views["by_race"]))
    report = {"command": command("heads", argv), "recipe": "v2",
              "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "data_dir": str(data_dir),
              "seed": args.seed, "decade_weight": args.decade_weight, "soft_labels": args.soft_labels,
              "split": {name: int(len(rows)) for name, rows in parts.items()}, "choices": choices,
              "validation": table}
    cache.mkdir(parents=True, exist_ok=True)
    soft = f"_soft{args.soft_labels:g}" if args.soft_labels else ""
    stem = "person" if target is PERSON_TARGET else "lifespan"
    report_path = cache / f"heads_report_{stem}{soft}_seed{args.seed}.json"
    report_path.write_text(json.dumps(report, indent=2, default=_json_value) + "\n", encoding="utf-8")
    log.info("report written to %s", report_path)
    labels_path = data.write_utkface_labels(cache / f"utkface_validation_seed{args.seed}", data_dir, labels,
                                            parts["validation"], races)
    log.info("validation split for evaluate.py: --data %s --faces-given [--by race]", labels_path.parent)
    if args.ship:
        ship_lifespan(arrays, choices, args, features, labels, parts, races, report["command"], target)
    return 0


def _json_value(value):
    return value.tolist() if isinstance(value, np.ndarray) else float(value)


def ship_lifespan(arrays: dict, choices: dict, args, features: dict, labels: dict, parts: dict,
                  races: np.ndarray, run_command: str, target: dict | None = None) -> None:
    """Write the v2 file (float32) and its manifest entry, the figures re-measured from the written file."""
    from training import lifespan
    target = target or LIFESPAN_TARGET
    shipped_name = target["name"]
    stored = {name: (value.astype(np.float32) if np.asarray(value).dtype.kind == "f" else value)
              for name, value in arrays.items()}
    np.savez_compressed(target["file"], **stored)
    shipped = lifespan.compare({"published network": None, shipped_name: dict(np.load(target["file"]))},
                               features, labels, parts["validation"], races)

    def figures(view: dict) -> dict:
        return {key: round(view[key], 3) for key in ("age_mae", "age_bias", "age_within5", "gender_acc")} | {
            "bands": {band["band"]: {"n": band["n"], "age_mae": round(band["age_mae"], 2),
                                     "age_bias": round(band["age_bias"], 2),
                                     "gender_acc": round(band["gender_acc"], 3)} for band in view["bands"]}}

    def groups(rows: list[dict]) -> list[dict]:
        return [{key: (round(value, 3) if isinstance(value, float) else
                       [round(v, 3) for v in value] if isinstance(value, tuple) else value)
                 for key, value in row.items()} for row in rows]

    kind = choices["best"]
    entry = choices["age"][kind]
    ship(target["key"], target["file"], version="v2",
         model=(f"age and gender heads v2 ('{shipped_name}') on {target['describe']} (python -m training heads): "
                f"gender logistic regression; age '{kind}' head over the 101 lifespan bins (0.25-100 years), images "
                f"weighted by decade, mixed with the dlib-models networks (age weight "
                f"{float(arrays['age_mix']):.2f}, gender weight {float(arrays['gender_mix']):.2f} for the head), "
                + ("calibrated by an isotonic warp of the bins" if "age_warp" in arrays else "uncalibrated")
                + f"; gender logit divided by {float(arrays['child_temperature']):.2f} for faces the age head places "
                  f"under {float(arrays['child_age']):g}"),
         license_text=UTKFACE_LICENCE,
         training={
             **UTKFACE_DATA,
             "command": run_command, "seed": args.seed, "decade_weight": args.decade_weight,
             "soft_labels": args.soft_labels,
             "split": (f"{len(parts['train'])} train / {len(parts['validation'])} validation, stratified by age band "
                       f"and gender; every choice on {len(parts['tune'])} held-out train images ('tune'), by the "
                       f"balanced (per-decade) age MAE"),
             "age_head": {"kind": kind, PARAMETER_NAMES[kind]: entry["param"], "mix": entry["mix"],
                          "calibration_power": entry["calibration_power"],
                          "tune_balanced_mae": round(entry["tune_balanced_mae"], 3)},
             "gender_head": {"C": choices["gender"]["C"], "mix": choices["gender"]["mix"]},
             "children": {key: (round(value, 4) if isinstance(value, float) else value)
                          for key, value in choices["children"].items()},
             "validation": {name: {"natural": figures(views["natural"]), "balanced": figures(views["balanced"])}
                            for name, views in shipped.items()},
             "validation_by_race": groups(shipped[shipped_name]["by_race"]),
             "validation_by_gender": groups(shipped[shipped_name]["by_gender"]),
         })
