"""The gender head fitted on UTKFace beside the age head (``age.heads``): logistic regression on the same
features, optionally averaged with the dlib-models gender network; the v2 file answers with less confidence for
faces its age head places among children (``age.heads.Heads.soften_children``)."""

from __future__ import annotations

import numpy as np

from age.heads import HeadModel


class HeadGenderModel(HeadModel):
    task = "gender"
    classes = 2

    def run(self, faces) -> np.ndarray:
        """(n, 2) male, female."""
        features = self.features.run(faces)
        mixed = self._combine(self.heads.gender(features), faces, self.heads.gender_mix)
        return self.heads.soften_children(mixed, features).astype(np.float32)
