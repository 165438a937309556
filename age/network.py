"""Age: dlib-models ``dnn_age_predictor_v1`` (81 bins, 0-80 years) run through onnxruntime.

We keep the whole 81-bin distribution rather than the package's rounded age:
the expected value is the point estimate, and the distribution gives an
interval and can be averaged over frames before taking the expectation.
"""

from __future__ import annotations

import numpy as np

from facecore.onnx import OnnxChipModel

from .distribution import AgeDistribution


class AgeModel(AgeDistribution, OnnxChipModel):
    task = "age"
    classes = 81

    def __init__(self, weight, **kwargs) -> None:
        super().__init__(weight, **kwargs)
        # Bin 0 stands for babies under a year; the manifest gives 0.25 for it.
        self.bin_ages = np.asarray(self.spec["age_weights"], dtype=np.float64)
