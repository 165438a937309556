"""Pick where the networks run: the GPU when TensorFlow / onnxruntime see one, else the CPU."""

from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Device:
    tf_device: str              # "GPU:0" or "CPU:0", for TensorFlow / Keras models
    ort_providers: tuple        # onnxruntime execution providers, best first

    @property
    def kind(self) -> str:
        return "GPU" if self.tf_device.startswith("GPU") else "CPU"

    def describe(self) -> dict:
        return {"tensorflow": self.tf_device, "onnxruntime": list(self.ort_providers)}


def select_device(prefer: str = "auto") -> Device:
    """``prefer`` is "auto", "cpu" or "gpu"; "gpu" without a GPU falls back to the CPU, logged."""
    import onnxruntime
    import tensorflow as tf

    want_gpu = prefer in ("auto", "gpu")
    gpus = tf.config.list_physical_devices("GPU") if want_gpu else []
    for gpu in gpus:
        # Without this TensorFlow takes all GPU memory and onnxruntime gets none.
        tf.config.experimental.set_memory_growth(gpu, True)
    ort_gpu = want_gpu and "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    device = Device(
        tf_device="GPU:0" if gpus else "CPU:0",
        ort_providers=("CUDAExecutionProvider", "CPUExecutionProvider") if ort_gpu else ("CPUExecutionProvider",),
    )
    if prefer == "gpu" and not gpus:
        log.warning("a GPU was asked for but TensorFlow sees none; running on the CPU")
    log.info("TensorFlow models run on %s; onnxruntime providers %s", device.tf_device, list(device.ort_providers))
    return device
