"""What each expression choice costs per face, all choices measured in one run on the same crops.

    python -m bench.expression_cost [--choices ensemble ferplus-ensemble ferplus ...] [--repeats 7]
                                    [--faces-per-call 16] [--faces 256] [--truth ...] [--clips ...] [--out FILE]

The faces are the real-footage faces whose expression was labelled (``bench.expression_real_footage``: real
frames, detector-sized boxes), or, without the clips, FER2013 dev images given as whole faces. Each choice is
the service's own ``ExpressionModel`` (settings' defaults: mirror image on, margins as served), prepared once
and warmed up with one untimed pass. Then, ``--repeats`` times, every choice in turn (the order rotated each
round, so that a change of machine load falls on all of them alike) runs over all the faces in calls of
``--faces-per-call`` faces (the service's batch is 16 frames), each call on a fresh batch so that the crop is
part of the cost. Prints, per choice, the median and the best milliseconds per face and the median's ratio to
the first choice, with the load average before and after (the 2-core machine this runs on is shared, so only
the ratios of one run mean anything), and the multiply-adds per face of its networks as served, a count no
load changes.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def load_average() -> str:
    path = Path("/proc/loadavg")
    return " ".join(path.read_text().split()[:3]) if path.exists() else "unknown"


def real_faces(truth: Path, clips: list[Path], limit: int):
    """Per face: (frame, box) from the labelled real footage, at most ``limit``; empty without the clips."""
    from bench.expression_real_footage import labelled_faces
    if not truth.is_dir() or not any(folder.is_dir() for folder in clips):
        return []
    frames, frame_of, boxes, _, _ = labelled_faces(truth, clips)
    return [(frames[f], box) for f, box in zip(frame_of, boxes)][:limit]


def batches(faces: list, per_call: int) -> list:
    """Fresh ``FaceBatch`` objects of ``per_call`` faces each (nothing cached), one frame per face."""
    from facecore.faces import Detections, FaceBatch
    out = []
    for start in range(0, len(faces), per_call):
        chunk = faces[start:start + per_call]
        n = len(chunk)
        detections = Detections(frame=np.arange(n), boxes=np.asarray([box for _, box in chunk], np.float32),
                                confidence=np.ones(n, np.float32), landmarks=np.zeros((n, 5, 2), np.float32))
        out.append(FaceBatch(frames=[frame for frame, _ in chunk], detections=detections))
    return out


def fer_batches(limit: int, per_call: int) -> list:
    """FER2013 dev images as whole-image faces in calls of ``per_call``, and the function making a batch of
    them; None without the data."""
    from facecore.frames import decode_frame
    from facecore.labels import EXPRESSIONS
    from training import data
    from training.batches import faces_given
    if data.missing_labels(data.FER2013) is not None:
        return None
    labels = data.read_labels(data.FER2013, {"file": str, "emotion": EXPRESSIONS, "split": str})
    files = labels["file"][labels["split"] == "dev"][:limit]
    images = [decode_frame(data.FER2013 / name) for name in files]
    return [images[start:start + per_call] for start in range(0, len(images), per_call)], faces_given


def multiply_adds(model) -> int:
    """Multiply-adds of one pass of a Keras network on one face, from its convolutions and dense layers
    (batch norms, pooling, activations and additions are left out: a few per cent of the work). A count the
    machine's load cannot change, beside the timings it does."""
    from keras import layers
    total = 0
    for layer in model.layers:
        if isinstance(layer, layers.SeparableConv2D):
            _, h, w, out = layer.output.shape
            k_h, k_w = layer.kernel_size
            inside = layer.input.shape[-1] * layer.depth_multiplier
            total += h * w * (k_h * k_w * inside + inside * out)
        elif isinstance(layer, layers.Conv2D):
            _, h, w, out = layer.output.shape
            k_h, k_w = layer.kernel_size
            total += h * w * k_h * k_w * (layer.input.shape[-1] // layer.groups) * out
        elif isinstance(layer, layers.Dense):
            total += layer.input.shape[-1] * layer.units
    return int(total)


def choice_multiply_adds(model) -> int:
    """Multiply-adds per face of an ``ExpressionModel`` as served: each network, twice where it reads the mirror
    image too (the mirror image on, and the network not one ``mirrored`` exempts)."""
    mirrored = getattr(model, "mirrored", None) or (True,) * len(model.networks)
    return sum(multiply_adds(network._model) * (2 if model.flip and mirror else 1)
               for network, mirror in zip(model.networks, mirrored))


def time_choices(models: dict, make_batches, repeats: int) -> dict:
    """{choice: [ms per face of each round]}: every choice over all faces once per round, order rotated."""
    names = list(models)
    for name in names:                        # warm-up: graph tracing and first allocations are not timed
        for batch in make_batches():
            models[name].run(batch)
    rounds = {name: [] for name in names}
    for number in range(repeats):
        order = names[number % len(names):] + names[:number % len(names)]
        for name in order:
            work = make_batches()
            faces = sum(len(batch) for batch in work)
            started = time.perf_counter()
            for batch in work:
                models[name].run(batch)
            rounds[name].append((time.perf_counter() - started) * 1000 / faces)
    return rounds


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from bench.expression_real_footage import CLIPS, TRUTH
    from faceanalysis.cli import default_cache, setup_logging
    from faceanalysis.pipeline.registry import build_task_models
    from faceanalysis.pipeline.settings import EXPRESSION_CHOICES, Settings
    from facecore.device import select_device
    from facecore.weights import load_manifest, resolve

    parser = argparse.ArgumentParser(prog="python -m bench.expression_cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--choices", nargs="+", default=["ensemble", "ferplus-ensemble", "ferplus",
                                                          "ferplus-mini-xception", "mini-xception", "vgg"],
                        choices=EXPRESSION_CHOICES, help="the first is the one the ratios are of")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--faces-per-call", type=int, default=Settings().batch_size)
    parser.add_argument("--faces", type=int, default=256)
    parser.add_argument("--truth", type=Path, default=TRUTH)
    parser.add_argument("--clips", type=Path, nargs="+", default=[CLIPS, default_cache() / "pyfeat_clips"])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    setup_logging("WARNING")

    faces = real_faces(args.truth, args.clips, args.faces)
    if faces:
        source = f"{len(faces)} labelled real-footage faces"

        def make_batches():
            return batches(faces, args.faces_per_call)
    else:
        found = fer_batches(args.faces, args.faces_per_call)
        if not found:
            print("skipped: needs the real-footage clips or ../shared/data/fer2013", file=sys.stderr)
            return 2
        chunks, faces_given = found
        source = f"{sum(map(len, chunks))} FER2013 dev images (no clips)"

        def make_batches():
            return [faces_given(chunk) for chunk in chunks]

    weights = {key: resolve(key) for key in load_manifest()}
    device = select_device("cpu")
    models = {}
    for choice in args.choices:
        models[choice] = build_task_models(weights, Settings(expression=choice))["expression"]
        models[choice].prepare(device)
    before = load_average()
    rounds = time_choices(models, make_batches, args.repeats)
    after = load_average()
    first = statistics.median(rounds[args.choices[0]])
    report = {"faces": source, "faces_per_call": args.faces_per_call, "repeats": args.repeats,
              "flip": Settings().expression_flip, "load_before": before, "load_after": after,
              "cpus": os.cpu_count(), "choices": {
                  name: {"mega_multiply_adds_per_face": round(choice_multiply_adds(models[name]) / 1e6, 1),
                         "median_ms_per_face": round(statistics.median(values), 2),
                         "best_ms_per_face": round(min(values), 2),
                         f"median_over_{args.choices[0]}": round(statistics.median(values) / first, 3),
                         "rounds": [round(value, 2) for value in values]}
                  for name, values in rounds.items()}}
    print(json.dumps(report, indent=1))
    if args.out:
        args.out.write_text(json.dumps(report, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
