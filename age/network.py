"""Age: dlib-models ``dnn_age_predictor_v1`` (81 bins, 0-80 years) run through onnxruntime.

We keep the whole distribution rather than the package's rounded age: the
expected value is the point estimate, and the distribution gives an interval
and can be averaged over frames before taking the expectation. It is answered
over the lifespan bins (0-100 years) like every age model, with nothing above 80.
"""

from __future__ import annotations

import numpy as np

from facecore.onnx import OnnxChipModel

from .distribution import AgeDistribution, on_lifespan


class AgeModel(AgeDistribution, OnnxChipModel):
    task = "age"
    classes = 81

    def __init__(self, weight, **kwargs) -> None:
        super().__init__(weight, **kwargs)
        # The network's own bins (bin 0 stands for babies under a year; the manifest gives 0.25 for it).
        self.network_bins = np.asarray(self.spec["age_weights"], dtype=np.float64)

    def run(self, faces) -> np.ndarray:
        """(n, 101) age distributions over the lifespan bins."""
        return on_lifespan(super().run(faces), self.network_bins)
