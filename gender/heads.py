"""The gender head fitted on UTKFace beside the age head (``age.heads``): logistic regression on the same
features, optionally averaged with the dlib-models gender network."""

from __future__ import annotations

import numpy as np

from age.heads import HeadModel


class HeadGenderModel(HeadModel):
    task = "gender"
    classes = 2

    def run(self, faces) -> np.ndarray:
        """(n, 2) male, female."""
        return self._combine(self.heads.gender(self.features.run(faces)), faces,
                             self.heads.gender_mix).astype(np.float32)
