"""Age heads trained on UTKFace, and the calibration of their answer over the lifespan.

The heads are small scikit-learn models trained by ``python -m training heads`` on UTKFace (research-only terms,
see the README) and shipped as plain arrays (sha256 in the weights manifest). One file holds the age and the
gender readouts on one feature vector (``facecore.heads_file``: the file, its readouts and the mixing); this module is
what age does with its readout. Two sets of v1 files, on two kinds of features:

- ``weights/age_gender_heads_v1.npz``: on the dlib ResNet 128-d face embedding ("FaceNet + heads", the
  original's design); the embedding costs ~75 ms per face on a CPU core;
- ``weights/age_gender_netheads_v1.npz``: on the dlib-models age and gender networks' own penultimate
  features (272 values, ``facecore.heads_file.NetworkFeatures``), i.e. their last layer refitted on UTKFace; free
  at run time, as the networks run anyway.

The file's distribution over its ``age_bins`` (the v1 files: the dlib network's 81, 0.25, 1, ..., 80 years;
later files go to 100) is answered over the lifespan bins (``age.distribution``), so the expected age, the
interval and the averaging over frames work unchanged; it is mixed with the network's (``age_mix``), then,
where the file has one (v2, "lifespan"), calibrated by ``age_warp``: a monotone map from each lifespan bin's age
to a calibrated age (isotonic regression from predicted to true age on held-out training images, weighted by
decade), applied by moving each bin's mass to its calibrated age, split between the two nearest bins, so the
answer stays a distribution over the same 101 bins.

The settings' ``age_gender`` picks the models (``faceanalysis.pipeline.registry``): ``lifespan`` (the default:
the v2 heads on the networks' features, per face, and the person head ``age.person`` per person), ``tuned`` (the
v1 heads on the networks' features averaged with the networks), ``dlib`` (the dlib-models networks as published,
CC0), ``heads`` (embedding heads only) or ``ensemble`` (embedding heads averaged with the networks). The gender
head is ``gender.softening.HeadGenderModel``.
"""

from __future__ import annotations

import numpy as np

from facecore.heads_file import HeadModel, Heads, answer

from .distribution import LIFESPAN_BINS, AgeDistribution, on_lifespan


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


def calibrate(heads: Heads, distributions: np.ndarray) -> np.ndarray:
    """(n, 101) lifespan distributions with the file's ``age_warp`` applied (unchanged without one)."""
    if "age_warp" not in heads.arrays:
        return distributions
    return warp_bins(distributions, heads.arrays["age_warp"].astype(np.float64))


def answer_age(heads: Heads, features: np.ndarray, network: np.ndarray | None) -> np.ndarray:
    """(n, 101) the age answer of a heads file: its readout on the lifespan bins, mixed with the network's
    distribution (None: the head alone), calibrated."""
    head = on_lifespan(heads.age(features), heads.bin_ages)
    return answer(head, network, heads.age_mix, lambda mixed: calibrate(heads, mixed))


class HeadAgeModel(AgeDistribution, HeadModel):
    task = "age"

    def run(self, faces) -> np.ndarray:
        """(n, 101) age distributions over the lifespan bins."""
        features = self.features.run(faces)
        return answer_age(self.heads, features, self.network_answer(faces, self.heads.age_mix)).astype(np.float32)
