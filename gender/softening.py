"""Gender heads fitted on UTKFace beside the age heads (``age.calibration``; one file holds both,
``facecore.heads_file``): logistic regression on the same features, optionally averaged with the dlib-models gender
network.

The v2 ("lifespan") files add ``child_age`` / ``child_temperature``: where the file's own age readout places a
face under ``child_age`` years, the gender logit is divided by the temperature (fitted on held-out images by
log-loss), because gender from a child's face is close to a coin toss for these features and the answer should
say so rather than be confident.
"""

from __future__ import annotations

import numpy as np

from facecore.heads_file import HeadModel, Heads, answer


def soften(gender: np.ndarray, rows: np.ndarray, temperature: float) -> np.ndarray:
    """(n, 2) male, female with the female logit of ``rows`` divided by ``temperature`` (> 1: less sure)."""
    female = np.clip(np.asarray(gender, np.float64)[:, 1], 1e-7, 1 - 1e-7)
    logit = np.log(female / (1 - female))
    female = np.where(rows, 1 / (1 + np.exp(-logit / temperature)), female)
    return np.stack([1 - female, female], axis=1)


def soften_children(heads: Heads, gender: np.ndarray, features: np.ndarray) -> np.ndarray:
    """(n, 2) gender probabilities with the logit divided by ``child_temperature`` where the file's age readout
    alone places the face under ``child_age`` (unchanged without them)."""
    if "child_temperature" not in heads.arrays:
        return gender
    young = heads.age(features) @ heads.bin_ages < float(heads.arrays["child_age"])
    return soften(gender, young, float(heads.arrays["child_temperature"]))


def answer_gender(heads: Heads, features: np.ndarray, network: np.ndarray | None) -> np.ndarray:
    """(n, 2) male, female: the gender answer of a heads file, its readout mixed with the network's
    probabilities (None: the head alone), softened for children."""
    return answer(heads.gender(features), network, heads.gender_mix,
                  lambda mixed: soften_children(heads, mixed, features))


class HeadGenderModel(HeadModel):
    task = "gender"
    classes = 2

    def run(self, faces) -> np.ndarray:
        """(n, 2) male, female."""
        features = self.features.run(faces)
        network = self.network_answer(faces, self.heads.gender_mix)
        return answer_gender(self.heads, features, network).astype(np.float32)
