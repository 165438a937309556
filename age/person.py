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
"""

from __future__ import annotations

import numpy as np

from facecore.heads_file import Heads, NetworkFeatures
from facecore.weights import WeightFile
from gender.softening import answer_gender

from .calibration import answer_age
from .distribution import AgeDistribution


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
        """(k, 101) age distributions and (k, 2) gender probabilities, one per face."""
        inputs = np.asarray(inputs, np.float64)
        width = self.width - embeddings.shape[1]
        x = np.concatenate([inputs[:, :width], np.asarray(embeddings, np.float64)], axis=1)
        network_age, network_gender = inputs[:, width:-2], inputs[:, -2:]
        return answer_age(self.heads, x, network_age), answer_gender(self.heads, x, network_gender)

    def run(self, inputs: np.ndarray, embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(101,) age distribution and (2,) gender probabilities of one person: the mean over their faces."""
        age, gender = self.run_each(inputs, embeddings)
        return age.mean(axis=0), gender.mean(axis=0)
