"""What the age and the gender heads share: one heads file, the features it reads, and the one mixing arithmetic.

A heads file (``weights/age_gender_*.npz``, trained by ``python -m training heads``) holds both tasks' readouts
on one feature vector, so the file, its standardisation and its two linear readouts live here, below both tasks:

- the features are standardised with the training mean and scale;
- gender: logistic regression, p(female) = sigmoid(x . w + b); returned as (male, female);
- age, one of three kinds, a distribution over the file's ``age_bins``:
  ``bins``: multinomial logistic regression over the bins (softmax);
  ``linear`` / ``rbf``: a ridge regression of log(1 + age) on the features (``rbf``: on RBF kernel features of
  ``age_centres``), turned into a distribution by a Gaussian in log(1 + age) around the prediction, with the
  residual spread measured on held-out training images, integrated over each bin (below the first edge into
  the first bin, above the last inner edge into the last);
- ``age_mix`` / ``gender_mix``: the weight of the head when averaged with the dlib-models network's
  distribution / probabilities, chosen on held-out training images.

What each task then does with its readout is the task's own: the lifespan bins and the calibration warp are
``age.calibration``; the children's gender temperature is ``gender.softening``. Both answer through ``answer`` below.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from facecore.weights import WeightFile


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _normal_cdf(z: np.ndarray) -> np.ndarray:
    from scipy.special import ndtr
    return ndtr(z)


def mix(head: np.ndarray, network: np.ndarray, weight: float) -> np.ndarray:
    """The head's answer averaged with the network's, ``weight`` being the head's share."""
    return weight * head + (1 - weight) * network


def answer(head: np.ndarray, network: np.ndarray | None, weight: float,
           finish: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """A head's answer as every user of a heads file computes it: mixed with the network's (``weight``: the
    head's share; no network: the head alone), then ``finish``-ed (the task's calibration), if given."""
    mixed = head if network is None else mix(head, network, weight)
    return mixed if finish is None else finish(mixed)


class Heads:
    """The arrays of a heads file and the two readouts on them (shared by training and the service)."""

    mix = staticmethod(mix)

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


class NetworkFeatures:
    """The age and gender networks' penultimate features side by side (256 + 16 = 272 values per face): what
    the "tuned" and "lifespan" heads read. Both networks run once per batch whichever task asks first
    (``OnnxChipModel`` caches their outputs on the ``FaceBatch``), so these heads add no network call."""

    def __init__(self, age, gender) -> None:
        self.age, self.gender = age, gender

    def prepare(self, device) -> None:
        self.age.prepare(device)
        self.gender.prepare(device)

    def run(self, faces) -> np.ndarray:
        return np.concatenate([self.age.features(faces), self.gender.features(faces)], axis=1)


class HeadModel:
    """Shared part of the age and gender head models: the features they read (the embedding, or the networks'
    own features; computed once per batch and cached on the FaceBatch, so both heads share them) and, when
    averaging, the dlib-models network of the task mixed in."""
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

    def network_answer(self, faces, weight: float) -> np.ndarray | None:
        """The task network's answer to mix in (float64), or None where the head answers alone (no network, or
        the head's share is 1), so that the network is not run for nothing."""
        if self.network is None or weight >= 1:
            return None
        return self.network.run(faces).astype(np.float64)
