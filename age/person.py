"""The person head: one age and gender answer per person, from the few faces of that person the tracker embeds.

The per-face heads read only what the networks compute for every face anyway (272 values). Adding the dlib face
embedding (128 values) to them cuts the age error on the view balanced by decade by about a tenth (README,
"Age and gender over the lifespan"), but the embedding costs ~75 ms per face: too dear for every frame. The
tracker already keeps up to ``samples`` aligned chips per tracklet (faces at least ``min_embed_side`` pixels
wide) and embeds them to tell people apart, so this head reads those: per sampled face, the networks' features
and outputs (kept by the tracker with the chip) and its embedding; the person's answer is the mean over them.

The arithmetic is that of the per-face heads on the 400 values side by side (``weights/age_gender_person_v2.npz``,
``python -m training heads --features combined``): ``age.calibration.answer_age`` (lifespan bins, the mix with the
published network, the calibration warp) and ``gender.softening.answer_gender`` (the mix, the children's gender
temperature), exactly as the trainer scored it. The gender half is gender's code; this head only feeds both.
One exception on age: a face whose age readout spreads over the lifespan (``UNSURE_SPREAD``) takes the network's
age distribution instead, because the head's mean over mass at both ends of the lifespan is an adult age.
"""

from __future__ import annotations

import numpy as np

from facecore.heads_file import Heads, NetworkFeatures
from facecore.weights import WeightFile
from gender.softening import answer_gender

from .calibration import answer_age
from .distribution import LIFESPAN_BINS, AgeDistribution, on_lifespan

# A face whose age the head's own readout spreads this widely over the lifespan (standard deviation of
# log(1 + age) under it) is one the head cannot read: its age is the network's (``run_each``).
UNSURE_SPREAD = 0.8


class PersonHead(AgeDistribution):
    """``face_inputs(faces)`` per batch (cheap: the networks' cached outputs), ``run(inputs, embeddings)`` per
    person (or ``run_each`` per face)."""

    def __init__(self, heads: WeightFile, features: NetworkFeatures) -> None:
        self.file = heads
        self.heads = Heads.load(heads.path)
        self.features = features
        self.width = len(self.heads.arrays["embedding_mean"])

    def prepare(self, device) -> None:
        self.features.prepare(device)

    def face_inputs(self, faces) -> np.ndarray:
        """(n, 272 + 101 + 2): per face, the networks' features, age distribution and gender probabilities; all
        three are cached on the batch by the per-face models, so this computes nothing new."""
        return np.concatenate([self.features.run(faces), self.features.age.run(faces),
                               self.features.gender.run(faces)], axis=1).astype(np.float32)

    def run_each(self, inputs: np.ndarray, embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(k, 101) age distributions and (k, 2) gender probabilities, one per face. Where the head's own age
        readout is spread wider than ``UNSURE_SPREAD`` (``log_age_spread``), the face's age is the network's
        distribution instead of the head's answer."""
        inputs = np.asarray(inputs, np.float64)
        width = self.width - embeddings.shape[1]
        x = np.concatenate([inputs[:, :width], np.asarray(embeddings, np.float64)], axis=1)
        network_age, network_gender = inputs[:, width:-2], inputs[:, -2:]
        age = answer_age(self.heads, x, network_age)
        # On faces unlike its training images (children blurred by motion in video) the head's softmax puts
        # mass at both ends of the lifespan at once, and its mean lands among adults; the network, trained on
        # many more faces, still reads them.
        unsure = log_age_spread(on_lifespan(self.heads.age(x), self.heads.bin_ages)) > UNSURE_SPREAD
        age[unsure] = network_age[unsure]
        return age, answer_gender(self.heads, x, network_gender)

    def run(self, inputs: np.ndarray, embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(101,) age distribution and (2,) gender probabilities of one person: the mean over their faces."""
        age, gender = self.run_each(inputs, embeddings)
        return age.mean(axis=0), gender.mean(axis=0)


def log_age_spread(distributions: np.ndarray) -> np.ndarray:
    """(n,) the standard deviation of log(1 + age) under each (n, 101) lifespan distribution: 0 for one bin,
    about 0.3 for a face the head reads well, above 1 when its mass sits at both ends of the lifespan."""
    distributions = np.asarray(distributions, np.float64)
    log_age = np.log1p(LIFESPAN_BINS)
    mean = distributions @ log_age
    return np.sqrt(np.maximum(distributions @ log_age ** 2 - mean ** 2, 0.0))
