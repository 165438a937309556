"""128-d face embedding: dlib's ResNet face-recognition network (``dlib_face_recognition_resnet_model_v1``).

The network was trained on 150x150 chips cut with dlib's 5-point landmarks
and 25% padding (``get_face_chip_details(shape, 150, 0.25)``, dlib's own
recipe), so that is the chip it gets here, from the same 5-point shapes the
age and gender networks use. All faces of a batch go to the network in one
``compute_face_descriptor`` call. The result is cached on the ``FaceBatch``,
so the age head and the gender head read one embedding per face per batch.
"""

from __future__ import annotations

import logging
import threading

import dlib
import numpy as np

from facecore.weights import WeightFile

log = logging.getLogger(__name__)

CHIP_SIZE = 150
CHIP_PADDING = 0.25
DIMENSIONS = 128


class FaceEmbedder:
    name = "dlib-resnet-embedding"

    def __init__(self, weight: WeightFile, max_batch: int = 64) -> None:
        self.file = weight
        self.max_batch = max_batch
        self._net = None
        self._loading = threading.Lock()

    def prepare(self, device) -> None:   # dlib-bin runs on the CPU only
        with self._loading:
            if self._net is None:
                self._net = dlib.face_recognition_model_v1(str(self.file.path))
                log.debug("loaded %s", self.file.path.name)

    def embed_chips(self, chips: np.ndarray) -> np.ndarray:
        """(n, 150, 150, 3) uint8 RGB chips to (n, 128) float32 embeddings, in bounded calls."""
        outputs = []
        for start in range(0, len(chips), self.max_batch):
            batch = [np.ascontiguousarray(chip) for chip in chips[start:start + self.max_batch]]
            outputs.append(np.asarray(self._net.compute_face_descriptor(batch), dtype=np.float32))
        return np.concatenate(outputs) if outputs else np.zeros((0, DIMENSIONS), np.float32)

    def run(self, faces) -> np.ndarray:
        """(n, 128) embeddings of the faces of a batch, computed once per batch and shared."""
        return faces.cached(("embedding", self.file.sha256),
                            lambda: self.embed_chips(faces.aligned_chips(CHIP_SIZE, CHIP_PADDING)))
