"""Gender: dlib-models ``dnn_gender_classifier_v1`` run through onnxruntime.

The network's columns are (female, male); we return (male, female), the order
of the legacy codes 30001 / 30002, so no caller has to remember the swap.
"""

from __future__ import annotations

import numpy as np

from facecore.labels import GENDERS
from facecore.onnx import OnnxChipModel


class GenderModel(OnnxChipModel):
    task = "gender"
    classes = 2

    def __init__(self, weight, **kwargs) -> None:
        super().__init__(weight, **kwargs)
        network_labels = list(self.spec["labels"])
        self._order = [network_labels.index(label) for label in GENDERS]

    def run(self, faces) -> np.ndarray:
        return super().run(faces)[:, self._order]
