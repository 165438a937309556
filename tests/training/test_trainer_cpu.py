"""The trainers' entry point keeps CPU training alive where oneDNN's AVX-512 kernels crash it (training/__main__.py).

On a processor with AVX-512 (an AMD EPYC here), one training step of the mini-Xception on the trainer's own
augmented batches ends TensorFlow 2.21 with a segmentation fault unless oneDNN is held to AVX2. Each case runs in
its own interpreter because the setting only counts before TensorFlow loads. Without the setting, the step is
what crashes on such a processor (not asserted: whether it does depends on the processor and oneDNN's release)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# One optimiser step of the mini-Xception (the FER+ trainer's start) on a batch the trainer's jitter made.
ONE_STEP = """
import numpy as np
{setup}
import keras, tensorflow as tf
from facecore.weights import resolve
from training.ferplus import video_jitter
x = np.random.default_rng(0).uniform(-1, 1, (64, 64, 64, 1)).astype("float32")
y = np.full((64, 7), 1 / 7, "float32")
jitter = video_jitter(0, 64)
batches = tf.data.Dataset.from_tensor_slices((x, y)).batch(64).map(lambda a, b: (jitter(a), b))
model = keras.models.load_model(str(resolve("expression").path), compile=False)
model.compile(optimizer="adam", loss="categorical_crossentropy")
print("loss", model.fit(batches, epochs=1, verbose=0).history["loss"][0])
"""


def one_step(setup: str, **env: str) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items() if key not in ("DNNL_MAX_CPU_ISA",
                                                                                  "TF_ENABLE_ONEDNN_OPTS")}
    return subprocess.run([sys.executable, "-c", ONE_STEP.format(setup=setup)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env={**environment, **env})


def test_the_trainers_entry_point_holds_onednn_to_avx2_unless_told_otherwise():
    check = "import os, training.__main__; print(os.environ['DNNL_MAX_CPU_ISA'])"
    run = [sys.executable, "-c", check]
    clean = {key: value for key, value in os.environ.items() if key != "DNNL_MAX_CPU_ISA"}
    assert subprocess.run(run, cwd=ROOT, capture_output=True, text=True, env=clean).stdout.strip() == "AVX2"
    told = {**clean, "DNNL_MAX_CPU_ISA": "AVX512_CORE"}
    assert subprocess.run(run, cwd=ROOT, capture_output=True, text=True, env=told).stdout.strip() == "AVX512_CORE"


def test_a_training_step_survives_through_the_trainers_entry_point():
    run = one_step("import training.__main__")
    assert run.returncode == 0 and "loss" in run.stdout, run.stderr[-2000:]

