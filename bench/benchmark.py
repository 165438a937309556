"""End-to-end speed of the analysis pipeline: naive vs before vs ours, on 30 / 300 / 3000 frames.

    python -m bench.benchmark [--lengths 30 300 3000] [--naive-max-frames 300] [--baseline-tree DIR]

Sequences are 640x480 JPEG frames with one face, built from the committed
samples (bench/sequences.py) in a temporary folder. Three configurations, each
measured in its own fresh subprocess (so peak RSS is that configuration's own):

- naive:  what a first implementation would write: ``MTCNN().detect_faces(frame)``
          per frame (one MTCNN object, made before the clock starts), then dlib
          alignment and one network call per face for age, gender and expression;
- before: the pipeline as it was (batched, the ``mtcnn`` package's eager Keras detector);
- ours:   the pipeline now (``FaceAnalyzer`` with the onnxruntime MTCNN).

- baseline: with ``--baseline-tree DIR``, "ours" of another checkout of this project (e.g. the commit before a
          change, ``git worktree add DIR COMMIT``), run by that checkout's own benchmark on the same frames, in
          the same run, so a change's cost is one ratio (ours / baseline).

naive and before are slow, so they run only on sequences of at most
``--naive-max-frames`` frames (default 300); the output says which were skipped.
Timings exclude model loading (reported separately); they include decoding.
The 2-core machine this was written on is shared: the 1-minute load average is
printed before and after every run, so a reader can see whether something else
was competing for the CPU.

Results check: on the shortest sequence, the per-face age / gender / expression
outputs of ours and before are compared (max |difference| is printed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STAGES = ("read", "detect", "align", "age", "gender", "expression", "aggregate")
CONFIGS = ("naive", "before", "ours")


# --------------------------------------------------------------------------- workers (one per subprocess)

def _worker(config: str, folder: Path, batch_size: int, dump: Path | None) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from faceanalysis.cli import setup_logging
    setup_logging("WARNING")
    start = time.perf_counter()
    if config == "naive":
        run = _naive_runner()
    else:
        run = _pipeline_runner(config, batch_size)
    load_s = time.perf_counter() - start
    load_before = os.getloadavg()[0]
    cpu = _cpu_seconds()
    wall = time.perf_counter()
    frames, faces, stages_ms, outputs = run(folder)
    wall = time.perf_counter() - wall
    cpu = _cpu_seconds() - cpu
    if dump is not None:
        import numpy as np
        np.savez(dump, **outputs)
    return {"config": config, "frames": frames, "faces": faces, "wall_s": wall, "cpu_s": cpu, "load_s": load_s,
            "stages_ms": stages_ms, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "load_avg_before": load_before, "load_avg_after": os.getloadavg()[0]}


def _cpu_seconds() -> float:
    # CPU time of every thread of this process: on a machine others share, the cost of a change shows in CPU
    # seconds per frame even when the wall clock is disturbed.
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _pipeline_runner(config: str, batch_size: int):
    from faceanalysis.pipeline.analyzer import FaceAnalyzer
    from faceanalysis.pipeline.detector import PackageFaceDetector

    analyzer = FaceAnalyzer(device="cpu", batch_size=batch_size)
    if config == "before":
        analyzer.detector = PackageFaceDetector(*analyzer.detector.files, min_face_size=analyzer.detector.min_face_size)
    analyzer.prepare()

    def run(folder: Path):
        result = analyzer.analyse_folder(folder)
        faces = result.faces
        outputs = {"frame": faces.frame, "age": faces.age, "gender": faces.gender, "expression": faces.expression}
        stages = {stage: result.timings_ms.get(stage, 0.0) for stage in STAGES}
        return result.frames_read, len(faces), stages, outputs

    return run


def naive_pipeline():
    """The naive pipeline's models, prepared on the CPU, and ``one_frame(rgb, timer)``: the ``mtcnn`` package's
    detector on one frame, then, face by face, the aligner and each model; returns each face's outputs
    (task -> the model's answer). bench/resolution.py runs the same on video frames."""
    import dlib
    import numpy as np
    from mtcnn import MTCNN

    from faceanalysis.pipeline.analyzer import FaceAnalyzer
    from facecore.device import select_device
    from facecore.faces import Detections, FaceBatch

    analyzer = FaceAnalyzer(device="cpu")            # only for its verified weight files and model classes
    device = select_device("cpu")
    for part in (analyzer.aligner, *analyzer.models.values()):
        part.prepare(device)
    detector = MTCNN()
    detector.detect_faces(np.zeros((480, 640, 3), np.uint8))     # let TensorFlow initialise before the clock

    def one_frame(rgb, timer) -> list[dict]:
        with timer("detect"):
            found = [face for face in detector.detect_faces(rgb) if face["confidence"] >= 0.9]
        outputs = []
        for face in found:
            x, y, w, h = face["box"]
            one = Detections(frame=np.zeros(1, np.int64), boxes=np.array([[x, y, x + w, y + h]], float),
                             confidence=np.array([face["confidence"]]), landmarks=np.zeros((1, 5, 2)))
            batch = FaceBatch(frames=[rgb], detections=one)
            with timer("align"):
                batch.shapes = [analyzer.aligner._predictor(rgb, dlib.rectangle(x, y, x + w, y + h))]
            answers = {}
            for task, model in analyzer.models.items():
                with timer(task):
                    answers[task] = model.run(batch)[0]
            outputs.append(answers)
        return outputs

    return one_frame


def _naive_runner():
    """Frame by frame, face by face, with the package API as documented."""
    import cv2
    import numpy as np

    from faceanalysis.pipeline.analyzer import StageTimer
    from facecore.frames import list_frames

    one_frame = naive_pipeline()

    def run(folder: Path):
        timer = StageTimer()
        frames = faces = 0
        collected = {"frame": [], "age": [], "gender": [], "expression": []}
        for index, path in enumerate(list_frames(folder).images):
            with timer("read"):
                rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
            frames += 1
            for answers in one_frame(rgb, timer):
                for task, answer in answers.items():
                    collected[task].append(answer)
                collected["frame"].append(index)
                faces += 1
        outputs = {key: np.asarray(value) for key, value in collected.items()}
        return frames, faces, {stage: timer.ms.get(stage, 0.0) for stage in STAGES}, outputs

    return run


# --------------------------------------------------------------------------- driver

def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores (os.cpu_count), Python {platform.python_version()}"


def build_sequences(root: Path, lengths: list[int]) -> dict[int, Path]:
    from bench.sequences import write_sequence

    longest = max(lengths)
    full = write_sequence(root / f"seq_{longest}", longest)
    folders = {longest: full}
    for length in lengths:
        if length == longest:
            continue
        folder = root / f"seq_{length}"
        folder.mkdir()
        for path in sorted(full.iterdir())[:length]:
            try:
                os.link(path, folder / path.name)      # same bytes, no extra disk
            except OSError:
                shutil.copy(path, folder / path.name)
        folders[length] = folder
    return folders


def run_config(config: str, folder: Path, batch_size: int, dump: Path | None, tree: Path = REPO) -> dict:
    # Run from the tree's own folder, so its packages come first on the path (``-m`` puts the cwd first).
    command = [sys.executable, "-m", "bench.benchmark", "--worker", config, "--folder", str(folder),
               "--batch-size", str(batch_size)]
    if dump is not None:
        command += ["--dump", str(dump)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=tree)
    if done.returncode != 0:
        raise RuntimeError(f"{config} on {folder.name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def report_line(result: dict) -> str:
    frames = max(result["frames"], 1)
    per_stage = "  ".join(f"{stage} {result['stages_ms'][stage] / frames:5.1f}" for stage in STAGES[:-1])
    return (f"  {result['config']:<6} {result['frames']:>5} frames {result['faces']:>5} faces | "
            f"{result['frames'] / result['wall_s']:6.1f} frames/s {result['wall_s'] * 1000 / frames:6.1f} ms/frame "
            f"(CPU {result.get('cpu_s', float('nan')) * 1000 / frames:6.1f} ms/frame) | "
            f"ms/frame: {per_stage} | peak RSS {result['peak_rss_mb']:5.0f} MB | load {result['load_s']:4.1f} s | "
            f"loadavg {result['load_avg_before']:.1f}->{result['load_avg_after']:.1f}")


def compare_outputs(ours: Path, other: Path) -> dict:
    import numpy as np
    a, b = np.load(ours), np.load(other)
    if not np.array_equal(a["frame"], b["frame"]):
        return {"faces_match": False}
    def padded(x, width):
        # Age distributions: a tree from before the lifespan bins has 81 of them, later ones 101 (the same
        # first 81, zeros after for the networks).
        return np.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, width - x.shape[-1])])
    out = {"faces_match": True}
    for key in ("age", "gender", "expression"):
        width = max(a[key].shape[-1], b[key].shape[-1])
        out[key] = float(np.abs(padded(a[key], width) - padded(b[key], width)).max())
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[30, 300, 3000])
    parser.add_argument("--naive-max-frames", type=int, default=300,
                        help="run naive and before only on sequences of at most this many frames")
    parser.add_argument("--configs", nargs="+", choices=CONFIGS, default=list(CONFIGS))
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--keep", type=Path, help="build the sequences here and keep them")
    parser.add_argument("--baseline-tree", type=Path, help="also run 'ours' of this other checkout, as 'baseline'")
    parser.add_argument("--worker", choices=CONFIGS, help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--dump", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        print(json.dumps(_worker(args.worker, args.folder, args.batch_size, args.dump)))
        return

    print(f"machine: {machine()}")
    print(f"naive and before run on sequences of at most {args.naive_max_frames} frames "
          f"(--naive-max-frames); longer ones run ours only")
    root = args.keep or Path(tempfile.mkdtemp(prefix="facebench_"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        start = time.perf_counter()
        folders = build_sequences(root, sorted(set(args.lengths)))
        print(f"built {', '.join(str(n) for n in folders)}-frame 640x480 sequences in {root} "
              f"({time.perf_counter() - start:.0f} s)\n")
        results: dict[int, dict[str, dict]] = {}
        shortest = min(folders)
        for length, folder in sorted(folders.items()):
            print(f"{length} frames:")
            results[length] = {}
            for config in args.configs:
                if config != "ours" and length > args.naive_max_frames:
                    print(f"  {config:<6} skipped (longer than --naive-max-frames {args.naive_max_frames})")
                    continue
                dump = root / f"out_{config}_{length}.npz" if length == shortest else None
                result = run_config(config, folder, args.batch_size, dump)
                results[length][config] = result
                print(report_line(result), flush=True)
            if args.baseline_tree:
                dump = root / f"out_baseline_{length}.npz" if length == shortest else None
                result = run_config("ours", folder, args.batch_size, dump, args.baseline_tree.resolve())
                results[length]["baseline"] = {**result, "config": "base"}
                print(report_line(results[length]["baseline"]), flush=True)
            row = results[length]
            if "ours" in row and "baseline" in row:
                ours, base = (row[name]["frames"] / row[name]["wall_s"] for name in ("ours", "baseline"))
                ratio = ours / base
                cpu = row["ours"]["cpu_s"] / row["baseline"].get("cpu_s", float("nan"))
                print(f"  ours vs baseline ({args.baseline_tree}): {ratio:.3f}x frames/s, {cpu:.3f}x CPU time")
            for base in ("naive", "before"):
                if "ours" in row and base in row:
                    ratio = ((row["ours"]["frames"] / row["ours"]["wall_s"])
                             / (row[base]["frames"] / row[base]["wall_s"]))
                    print(f"  speed-up ours vs {base}: {ratio:.2f}x")
            print()
        for base in ("baseline", "before", "naive"):
            ours, other = root / f"out_ours_{shortest}.npz", root / f"out_{base}_{shortest}.npz"
            if ours.exists() and other.exists():
                print(f"outputs on the {shortest}-frame sequence, ours vs {base}: "
                      f"max |diff| {compare_outputs(ours, other)}")
        print("\nsummary (frames/s, end to end incl. decoding; peak RSS per configuration):")
        print(f"  {'frames':>6} | {'naive':>16} | {'before':>16} | {'ours':>16} | ours/naive | ours/before")
        for length, row in sorted(results.items()):
            cells = []
            for config in CONFIGS:
                r = row.get(config)
                cells.append(f"{r['frames'] / r['wall_s']:5.1f} fps {r['peak_rss_mb']:5.0f} MB" if r else f"{'-':>16}")
            ratios = []
            for base in ("naive", "before"):
                if "ours" in row and base in row:
                    ratio = ((row["ours"]["frames"] / row["ours"]["wall_s"])
                             / (row[base]["frames"] / row[base]["wall_s"]))
                    ratios.append(f"{ratio:9.2f}x")
                else:
                    ratios.append(f"{'-':>10}")
            print(f"  {length:>6} | {' | '.join(cells)} | {ratios[0]} | {ratios[1]}")
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
