"""Age and gender heads trained on UTKFace, and the choice between them and the dlib-models networks.

The heads are small scikit-learn models trained by ``training/heads.py`` on UTKFace (research-only terms, see the
README) and shipped as plain arrays (sha256 in the weights manifest). Two sets, on two kinds of features:

- ``weights/age_gender_heads_v1.npz``: on the dlib ResNet 128-d face embedding ("FaceNet + heads", the
  original's design); the embedding costs ~75 ms per face on a CPU core;
- ``weights/age_gender_netheads_v1.npz``: on the dlib-models age and gender networks' own penultimate
  features (272 values, ``NetworkFeatures``), i.e. their last layer refitted on UTKFace; free at run time,
  as the networks run anyway.

The arithmetic is the same for both ("embedding" below is whichever feature vector the set reads):

- the features are standardised with the training mean and scale;
- gender: logistic regression, p(female) = sigmoid(x . w + b); returned as (male, female);
- age, one of three kinds, a distribution over the file's ``age_bins`` (the v1 files: the dlib network's 81,
  0.25, 1, ..., 80 years; later files may go to 100), answered over the lifespan bins (``age.distribution``), so
  the expected age, the interval and the averaging over frames work unchanged:
  ``bins``: multinomial logistic regression over the bins (softmax);
  ``linear`` / ``rbf``: a ridge regression of log(1 + age) on the embedding (``rbf``: on RBF kernel features
  of ``age_centres``), turned into a distribution by a Gaussian in log(1 + age) around the prediction, with
  the residual spread measured on held-out training images, integrated over each bin (below the first edge
  into the first bin, above the last inner edge into the last);
- ``age_mix`` / ``gender_mix``: the weight of the head when averaged with the dlib-models network's
  distribution / probabilities ("ensemble"), chosen on held-out training images;
- optional (the v2 "lifespan" file): ``age_warp``, a monotone map from each lifespan bin's age to a calibrated
  age (isotonic regression from predicted to true age on held-out training images, weighted by decade), applied
  to the mixed distribution by moving each bin's mass to its calibrated age, split between the two nearest
  bins, so the answer stays a distribution over the same 101 bins; and ``child_age`` / ``child_temperature``:
  where the age head alone places a face under ``child_age`` years, the gender logit is divided by the
  temperature (fitted on held-out images by log-loss), because gender from a child's face is close to a coin
  toss for these features and the answer should say so rather than be confident.

The settings' ``age_gender`` picks the models (``faceanalysis.pipeline.registry``): ``lifespan`` (the default:
the v2 heads on the networks' features, weighted by decade and calibrated over 0-100 years, per face, and the
person head ``age.person`` per person), ``tuned`` (the v1 networks
averaged with the heads on their own features), ``dlib`` (the dlib-models networks as published, CC0),
``heads`` (embedding heads only) or ``ensemble`` (embedding heads averaged with the networks). The gender
head is ``gender.heads.HeadGenderModel``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from facecore.weights import WeightFile

from .distribution import LIFESPAN_BINS, AgeDistribution, on_lifespan

log = logging.getLogger(__name__)



def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _normal_cdf(z: np.ndarray) -> np.ndarray:
    from scipy.special import ndtr
    return ndtr(z)


class Heads:
    """The arrays of a heads file and the arithmetic on them (shared by training and the service)."""

    def __init__(self, arrays: dict) -> None:
        self.arrays = {name: np.asarray(value) for name, value in arrays.items()}
        self.age_kind = str(self.arrays["age_kind"])
        self.bin_ages = self.arrays["age_bins"].astype(np.float64)
        middles = (self.bin_ages[1:] + self.bin_ages[:-1]) / 2
        self._log_edges = np.log1p(middles)          # inner edges between the bins, in log(1 + age)
        self.age_mix = float(self.arrays["age_mix"])
        self.gender_mix = float(self.arrays["gender_mix"])

    @classmethod
    def load(cls, path: Path) -> "Heads":
        with np.load(path, allow_pickle=False) as stored:
            return cls({name: stored[name] for name in stored.files})

    def standardise(self, embedding: np.ndarray) -> np.ndarray:
        return (np.asarray(embedding, np.float64) - self.arrays["embedding_mean"]) / self.arrays["embedding_scale"]

    def gender(self, embedding: np.ndarray) -> np.ndarray:
        """(n, 2) male, female."""
        z = self.standardise(embedding) @ self.arrays["gender_coef"] + float(self.arrays["gender_intercept"])
        female = 1 / (1 + np.exp(-z))
        return np.stack([1 - female, female], axis=1)

    def age_log_mean(self, embedding: np.ndarray) -> np.ndarray:
        x = self.standardise(embedding)
        if self.age_kind == "rbf":
            centres = self.arrays["age_centres"].astype(np.float64)
            squared = (x * x).sum(1)[:, None] - 2 * x @ centres.T + (centres * centres).sum(1)[None, :]
            x = np.exp(-float(self.arrays["age_gamma"]) * np.maximum(squared, 0))
        return x @ self.arrays["age_coef"] + float(self.arrays["age_intercept"])

    def log_gaussian_bins(self, log_mean: np.ndarray, sigma: float) -> np.ndarray:
        cdf = _normal_cdf((self._log_edges[None, :] - log_mean[:, None]) / sigma)
        n = len(log_mean)
        cdf = np.concatenate([np.zeros((n, 1)), cdf, np.ones((n, 1))], axis=1)
        return np.diff(cdf, axis=1)

    def age(self, embedding: np.ndarray) -> np.ndarray:
        """(n, len(age_bins)) age distribution over ``age_bins`` (81 in the v1 files, 101 in v2)."""
        if self.age_kind == "bins":
            x = self.standardise(embedding)
            return _softmax(x @ self.arrays["age_coef"] + self.arrays["age_intercept"])
        return self.log_gaussian_bins(self.age_log_mean(embedding), float(self.arrays["age_sigma"]))

    @staticmethod
    def mix(head: np.ndarray, network: np.ndarray, weight: float) -> np.ndarray:
        return weight * head + (1 - weight) * network

    def calibrate(self, distributions: np.ndarray) -> np.ndarray:
        """(n, 101) lifespan distributions with ``age_warp`` applied (unchanged without one)."""
        if "age_warp" not in self.arrays:
            return distributions
        return warp_bins(distributions, self.arrays["age_warp"].astype(np.float64))

    def soften_children(self, gender: np.ndarray, embedding: np.ndarray) -> np.ndarray:
        """(n, 2) gender probabilities with the logit divided by ``child_temperature`` where the age head alone
        places the face under ``child_age`` (unchanged without them)."""
        if "child_temperature" not in self.arrays:
            return gender
        young = self.age(embedding) @ self.bin_ages < float(self.arrays["child_age"])
        return soften(gender, young, float(self.arrays["child_temperature"]))


def warp_bins(distributions: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Each lifespan bin's mass moved to the age ``targets[bin]`` (clipped to 0.25-100), split linearly between
    the two lifespan bins around it: the expected age becomes the mass-weighted mean of the targets."""
    targets = np.clip(targets, LIFESPAN_BINS[0], LIFESPAN_BINS[-1])
    upper = np.clip(np.searchsorted(LIFESPAN_BINS, targets), 1, len(LIFESPAN_BINS) - 1)
    share = (targets - LIFESPAN_BINS[upper - 1]) / (LIFESPAN_BINS[upper] - LIFESPAN_BINS[upper - 1])
    move = np.zeros((len(targets), len(LIFESPAN_BINS)))
    move[np.arange(len(targets)), upper - 1] = 1 - share
    move[np.arange(len(targets)), upper] += share
    return np.asarray(distributions, np.float64) @ move


def soften(gender: np.ndarray, rows: np.ndarray, temperature: float) -> np.ndarray:
    """(n, 2) male, female with the female logit of ``rows`` divided by ``temperature`` (> 1: less sure)."""
    female = np.clip(np.asarray(gender, np.float64)[:, 1], 1e-7, 1 - 1e-7)
    logit = np.log(female / (1 - female))
    female = np.where(rows, 1 / (1 + np.exp(-logit / temperature)), female)
    return np.stack([1 - female, female], axis=1)


class NetworkFeatures:
    """The age and gender networks' penultimate features side by side (256 + 16 = 272 values per face): what
    the "tuned" heads read. Both networks run once per batch whichever task asks first (``OnnxChipModel``
    caches their outputs on the ``FaceBatch``), so the tuned heads add no network call to the pipeline."""

    def __init__(self, age, gender) -> None:
        self.age, self.gender = age, gender

    def prepare(self, device) -> None:
        self.age.prepare(device)
        self.gender.prepare(device)

    def run(self, faces) -> np.ndarray:
        return np.concatenate([self.age.features(faces), self.gender.features(faces)], axis=1)


class HeadModel:
    """Shared part of the age and gender heads: the features they read (the embedding, or the networks'
    own features; computed once per batch and cached on the FaceBatch, so both heads share them) and, when
    averaging, the dlib-models network mixed in."""
    task = ""

    def __init__(self, network, heads: WeightFile, features, ensemble: bool) -> None:
        self.file = heads
        self.heads = Heads.load(heads.path)
        self.features = features
        self.network = network if ensemble else None

    def prepare(self, device) -> None:
        self.features.prepare(device)
        if self.network is not None:
            self.network.prepare(device)

    def _combine(self, head: np.ndarray, faces, weight: float) -> np.ndarray:
        if self.network is None or weight >= 1:
            return head
        return Heads.mix(head, self.network.run(faces).astype(np.float64), weight)


class HeadAgeModel(AgeDistribution, HeadModel):
    task = "age"

    def run(self, faces) -> np.ndarray:
        """(n, 101) age distributions over the lifespan bins."""
        head = on_lifespan(self.heads.age(self.features.run(faces)), self.heads.bin_ages)
        return self.heads.calibrate(self._combine(head, faces, self.heads.age_mix)).astype(np.float32)
