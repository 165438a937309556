"""Age: dlib-models ``dnn_age_predictor_v1`` (81 bins, 0-80 years) run through onnxruntime.

We keep the whole 81-bin distribution rather than the package's rounded age:
the expected value is the point estimate, and the distribution gives an
interval and can be averaged over frames before taking the expectation.
"""

from __future__ import annotations

import numpy as np

from faceanalysis.onnx_model import OnnxChipModel


class AgeModel(OnnxChipModel):
    task = "age"
    classes = 81

    def __init__(self, weight, **kwargs) -> None:
        super().__init__(weight, **kwargs)
        # Bin 0 stands for babies under a year; the manifest gives 0.25 for it.
        self.bin_ages = np.asarray(self.spec["age_weights"], dtype=np.float64)

    def expected_age(self, distributions: np.ndarray) -> np.ndarray:
        return np.asarray(distributions, dtype=np.float64) @ self.bin_ages

    def interval(self, distribution: np.ndarray, mass: float = 0.8) -> tuple[float, float]:
        """Central interval holding ``mass`` of the distribution, in years."""
        cumulative = np.cumsum(distribution) / np.sum(distribution)
        tail = (1 - mass) / 2
        low = int(np.searchsorted(cumulative, tail))
        high = int(np.searchsorted(cumulative, 1 - tail))
        return float(self.bin_ages[low]), float(self.bin_ages[min(high, len(self.bin_ages) - 1)])
