"""Speed and memory at real resolutions: the shared clips at native size, 1280x720 and 1920x1080.

    python -m bench.resolution [--frames 60] [--naive-frames 10] [--resolutions native 720p 1080p]
                               [--clips office_three walking_three ...] [--baseline-tree DIR] [--json FILE]
    python -m bench.resolution --loop 10000 --clips office_three --resolutions 720p --configs ours   # memory

Inputs are the clips in ``../shared/clips`` (beside the checkout; the benchmark says so and stops when they are
absent), cut to their first ``--frames`` frames and written as MJPEG AVI files in a temporary folder: at native
size, and scaled to cover 1280x720 and 1920x1080 (aspect kept, the overflow cropped about the centre, so every
pixel is footage and faces keep their shape). ``samples/seqA`` (640x480, one face) is added at native size.

Configurations, each resolution in a fresh child process (so its peak RSS is its own):

- ``ours``: ``FaceAnalyzer.analyse_source(VideoSource(...))``, what ``POST /api/v2/analyze`` runs: decode, detect,
  align, the per-face models, tracking and persons. Frames/s are frames over the analysis's wall time; the stage
  times are the analyzer's own (each stage's own time: with the overlap they add up to more than the total).
- ``naive``: the ``mtcnn`` package's ``MTCNN().detect_faces`` per frame, then dlib alignment and one call of each
  per-face model per face, on the first ``--naive-frames`` frames of the same files.
- ``baseline`` (``--baseline-tree DIR``): ``ours`` of another checkout (e.g. ``/work/wt-base``), run by this
  script with that checkout first on the path, on the same files in the same run.

The ratio ours/naive compares frames/s. Peak RSS is the child's ``VmHWM``; "after" is its RSS once the last
analysis returned and its result was dropped. ``--loop N`` instead makes one video of N frames by looping each
chosen clip (for the memory target: a 10,000-frame 720p video with several faces). The load average is printed
before and after: the machine may be shared.
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
CLIPS = REPO.parent / "shared" / "clips"
SAMPLE = REPO / "samples" / "seqA"
RESOLUTIONS = {"native": None, "720p": (1280, 720), "1080p": (1920, 1080)}
STAGES = ("read", "detect", "align", "age", "gender", "expression", "aggregate")
CONFIGS = ("ours", "naive", "baseline")


# --------------------------------------------------------------------------- inputs

def read_clip(path: Path, frames: int | None):
    """RGB frames of a clip (video or GIF), at most ``frames`` of them."""
    import cv2
    import numpy as np
    out = []
    if path.suffix.lower() == ".gif":
        from PIL import Image, ImageSequence
        with Image.open(path) as image:
            for frame in ImageSequence.Iterator(image):
                out.append(np.asarray(frame.convert("RGB")))
                if frames is not None and len(out) >= frames:
                    break
        return out
    capture = cv2.VideoCapture(str(path))
    try:
        while frames is None or len(out) < frames:
            ok, bgr = capture.read()
            if not ok:
                break
            out.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    finally:
        capture.release()
    return out


def cover(rgb, size: tuple[int, int] | None):
    """Scale to cover ``size`` (width, height) with the aspect kept, then crop the overflow about the centre."""
    import cv2
    if size is None:
        return rgb
    width, height = size
    h, w = rgb.shape[:2]
    scale = max(width / w, height / h)
    new_w, new_h = max(width, round(w * scale)), max(height, round(h * scale))
    resized = cv2.resize(rgb, (new_w, new_h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    x0, y0 = (new_w - width) // 2, (new_h - height) // 2
    return resized[y0:y0 + height, x0:x0 + width]


def write_video(frames, path: Path, fps: float = 25.0) -> None:
    """MJPEG in AVI at quality 95: every frame an intra frame, so what is decoded is the footage at that size."""
    import cv2
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    writer.set(cv2.VIDEOWRITER_PROP_QUALITY, 95)
    try:
        for rgb in frames:
            writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()


def build_inputs(root: Path, clips: list[str], resolutions: list[str], frames: int, loop: int | None,
                 with_sample: bool) -> dict[str, list[dict]]:
    """{resolution: [{"name", "path", "size"}]}: the videos every configuration reads."""
    import cv2
    out: dict[str, list[dict]] = {resolution: [] for resolution in resolutions}
    for name in clips:
        found = sorted(CLIPS.glob(f"{name}.*"))
        if not found:
            raise SystemExit(f"clip {name!r} not found in {CLIPS}")
        source = read_clip(found[0], None if loop else frames)
        for resolution in resolutions:
            scaled = [cover(rgb, RESOLUTIONS[resolution]) for rgb in source]
            if loop:
                # Forward then backward, so the loop has no jump the tracker would see as a cut.
                cycle = scaled + scaled[-2:0:-1]
                scaled = [cycle[i % len(cycle)] for i in range(loop)]
            path = root / f"{name}_{resolution}.avi"
            write_video(scaled, path)
            h, w = scaled[0].shape[:2]
            out[resolution].append({"name": name, "path": str(path), "size": f"{w}x{h}", "frames": len(scaled)})
            del scaled
    if with_sample and "native" in resolutions and not loop:
        images = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in sorted(SAMPLE.glob("*.jpg"))]
        path = root / "seqA_native.avi"
        write_video(images[:frames], path)
        out["native"].insert(0, {"name": "seqA", "path": str(path), "size": "640x480",
                                 "frames": min(frames, len(images))})
    return out


# --------------------------------------------------------------------------- workers (one child per run)

def rss_mb(field: str = "VmRSS") -> float:
    """This process's resident set now (``VmRSS``) or its peak (``VmHWM``), in MB."""
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb() -> float:
    """This process's peak resident set, in MB. ``VmHWM``, not ``ru_maxrss``: Linux carries ``ru_maxrss`` over
    ``exec`` from the forked copy of the parent, so a child started by a parent that held the decoded clips
    reported the parent's size (3,167 MB for a child that never went over 1,655 MB)."""
    return rss_mb("VmHWM")


def _worker(config: str, inputs: list[dict], naive_frames: int, overrides: dict) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import logging
    logging.basicConfig(level="WARNING")
    start = time.perf_counter()
    run = _naive_runner(naive_frames) if config == "naive" else _ours_runner(overrides)
    load_s = time.perf_counter() - start
    rows = []
    for item in inputs:
        load_before = os.getloadavg()[0]
        cpu = _cpu_seconds()
        wall = time.perf_counter()
        row = run(Path(item["path"]), item["name"])
        row.update(name=item["name"], size=item["size"], wall_s=time.perf_counter() - wall,
                   cpu_s=_cpu_seconds() - cpu, load_avg=(load_before, os.getloadavg()[0]))
        rows.append(row)
    import gc
    gc.collect()
    return {"config": config, "load_s": load_s, "rows": rows, "rss_after_mb": rss_mb(),
            "peak_rss_mb": peak_rss_mb()}


def _cpu_seconds() -> float:
    # CPU time of every thread of this process: on a shared machine it moves much less than the wall clock.
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _ours_runner(overrides: dict):
    from faceanalysis.pipeline.analyzer import FaceAnalyzer
    from faceanalysis.pipeline.sources import VideoSource

    analyzer = FaceAnalyzer(**{"device": "cpu", **overrides}).prepare()

    def run(path: Path, name: str) -> dict:
        result = analyzer.analyse_source(VideoSource(path, name, max_frames=10_000))
        persons = [{"id": p.id, "frames": p.frames_seen, "age": round(p.summary.age, 2),
                    "male": round(float(p.summary.gender[0]), 3),
                    "dominant": _dominant(p.summary.expression)} for p in result.persons]
        faces = result.faces
        small = int(((faces.boxes[:, 2] - faces.boxes[:, 0]) < 40).sum()) if len(faces) else 0
        settings = result.provenance.settings
        # A --baseline-tree from before the writers rework keeps the settings as a dict.
        detect_max_side = settings["detect_max_side"] if isinstance(settings, dict) else settings.detect_max_side
        return {"frames": result.frames_read, "faces": len(faces), "faces_under_40": small,
                "total_ms": result.timings_ms["total"], "stages_ms": {s: result.timings_ms.get(s, 0.0) for s in STAGES},
                "persons": persons, "detection": detect_max_side}

    return run


def _dominant(expression) -> str:
    import numpy as np

    from facecore.labels import EXPRESSIONS
    return EXPRESSIONS[int(np.argmax(expression))]


def _naive_runner(naive_frames: int):
    """Frame by frame, face by face, with the package API as documented (bench/benchmark.py's naive pipeline)."""
    import cv2

    from bench.benchmark import naive_pipeline
    from faceanalysis.pipeline.analyzer import StageTimer

    one_frame = naive_pipeline()

    def run(path: Path, name: str) -> dict:
        timer = StageTimer()
        frames = faces = 0
        capture = cv2.VideoCapture(str(path))
        try:
            while frames < naive_frames:
                with timer("read"):
                    ok, bgr = capture.read()
                    if not ok:
                        break
                    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                frames += 1
                faces += len(one_frame(rgb, timer))
        finally:
            capture.release()
        return {"frames": frames, "faces": faces, "faces_under_40": None, "total_ms": None,
                "stages_ms": {s: timer.ms.get(s, 0.0) for s in STAGES}, "persons": None}

    return run


# --------------------------------------------------------------------------- faces lost at a working resolution

SIZE_BINS = (0, 20, 30, 40, 60, 100, 10 ** 6)


def lost_faces(clips: list[str], resolutions: list[str], frames: int, every: int, limits: list[int]) -> dict:
    """Detector only: the faces found on full frames that a working resolution misses, by their width.

    A full-frame face counts as kept when a face found at the working resolution overlaps it by IoU >= 0.5.
    Faces found only at the working resolution are counted too ("new").
    """
    import numpy as np

    from faceanalysis.pipeline.analyzer import FaceAnalyzer
    from faceanalysis.pipeline.detector import FaceDetector
    from faceanalysis.pipeline.tracking import iou
    from facecore.device import select_device

    analyzer = FaceAnalyzer(device="cpu")
    device = select_device("cpu")
    detectors = {}
    for limit in [0, *limits]:
        detectors[limit] = FaceDetector(*analyzer.detector.files, max_side=limit)
        detectors[limit].prepare(device)
    table = {}
    for name in clips:
        source = read_clip(sorted(CLIPS.glob(f"{name}.*"))[0], frames)[::every]
        for resolution in resolutions:
            scaled = [cover(rgb, RESOLUTIONS[resolution]) for rgb in source]
            found = {limit: detector.run(scaled) for limit, detector in detectors.items()}
            full = found[0]
            widths = full.boxes[:, 2] - full.boxes[:, 0]
            for limit in limits:
                other = found[limit]
                lost = np.zeros(len(full), bool)
                matched_other = np.zeros(len(other), bool)
                for frame in range(len(scaled)):
                    a, b = np.flatnonzero(full.frame == frame), np.flatnonzero(other.frame == frame)
                    if not len(a):
                        continue
                    if not len(b):
                        lost[a] = True
                        continue
                    overlap = iou(full.boxes[a], other.boxes[b])
                    lost[a] = overlap.max(axis=1) < 0.5
                    matched_other[b] = overlap.max(axis=0) >= 0.5
                for frame in range(len(scaled)):
                    b = np.flatnonzero(other.frame == frame)
                    if len(b) and not (full.frame == frame).any():
                        matched_other[b] = False
                bins = np.digitize(widths, SIZE_BINS) - 1
                row = {"frames": len(scaled), "size": f"{scaled[0].shape[1]}x{scaled[0].shape[0]}",
                       "faces": len(full), "lost": int(lost.sum()), "new": int((~matched_other).sum()),
                       "faces_by_width": [int((bins == k).sum()) for k in range(len(SIZE_BINS) - 1)],
                       "lost_by_width": [int((lost & (bins == k)).sum()) for k in range(len(SIZE_BINS) - 1)]}
                table.setdefault(str(limit), {})[f"{name} {resolution}"] = row
    return table


def print_lost(table: dict) -> None:
    labels = [f"{low}-{high}" if high < 10 ** 6 else f">={low}" for low, high in zip(SIZE_BINS, SIZE_BINS[1:])]
    print("faces found on full frames / lost at the working resolution, by face width in full-frame pixels "
          f"({', '.join(labels)} px); new: found only at the working resolution")
    for limit, rows in table.items():
        totals = [0] * (len(SIZE_BINS) - 1)
        lost_totals = [0] * (len(SIZE_BINS) - 1)
        for clip, row in rows.items():
            cells = " ".join(f"{lost}/{faces}" for lost, faces in zip(row["lost_by_width"], row["faces_by_width"]))
            print(f"  max side {limit:>5} {clip:<32} {row['size']:>9} {row['frames']:>4} frames: lost {row['lost']:>3} "
                  f"of {row['faces']:>4}, new {row['new']:>3} | lost/found by width: {cells}")
            totals = [t + f for t, f in zip(totals, row["faces_by_width"])]
            lost_totals = [t + f for t, f in zip(lost_totals, row["lost_by_width"])]
        print(f"  max side {limit:>5} ALL: lost/found by width "
              + ", ".join(f"{label} px {lost}/{faces}" for label, lost, faces in zip(labels, lost_totals, totals)))


# --------------------------------------------------------------------------- driver

def machine() -> str:
    model = platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            model = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}"


def run_child(config: str, inputs: list[dict], naive_frames: int, overrides: dict, tree: Path = REPO) -> dict:
    """One child process: this file run as a script with ``tree`` first on the path (its faceanalysis)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", "naive" if config == "naive" else "ours",
               "--worker-inputs", json.dumps(inputs), "--naive-frames", str(naive_frames),
               "--worker-overrides", json.dumps(overrides)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=tree, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{config} failed:\n{done.stderr[-4000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["config"] = config
    return result


def fps(row: dict) -> float:
    return row["frames"] / row["wall_s"] if row["wall_s"] else float("nan")


def print_table(results: dict) -> None:
    print(f"\n{'resolution':<10} {'clip':<24} {'size':>9} {'config':<8} {'frames':>6} {'faces/fr':>8} "
          f"{'fps':>6} {'x naive':>7} | ms/frame: CPU    " + " ".join(f"{s[:6]:>6}" for s in STAGES)
          + " | peak/after RSS MB")
    for resolution, by_config in results.items():
        naive = {row["name"]: row for row in by_config.get("naive", {}).get("rows", [])}
        for config, result in by_config.items():
            for row in result["rows"]:
                stages = " ".join(f"{row['stages_ms'][s] / max(row['frames'], 1):6.1f}" for s in STAGES)
                ratio = ""
                if config != "naive" and row["name"] in naive:
                    ratio = f"{fps(row) / fps(naive[row['name']]):6.1f}x"
                print(f"{resolution:<10} {row['name']:<24} {row['size']:>9} {config:<8} {row['frames']:>6} "
                      f"{row['faces'] / max(row['frames'], 1):8.2f} {fps(row):6.1f} {ratio:>7} | {' ' * 10}{stages} | "
                      f"{result['peak_rss_mb']:5.0f}/{result['rss_after_mb']:5.0f}")
    print()
    for resolution, by_config in results.items():
        for config, result in by_config.items():
            frames = sum(row["frames"] for row in result["rows"])
            wall = sum(row["wall_s"] for row in result["rows"])
            cpu = sum(row["cpu_s"] for row in result["rows"])
            print(f"{resolution:<10} {config:<8} all clips: {frames} frames in {wall:.1f} s, "
                  f"{frames / wall:.1f} frames/s, "
                  f"CPU {cpu * 1000 / max(frames, 1):.1f} ms/frame, "
                  f"peak RSS {result['peak_rss_mb']:.0f} MB, after {result['rss_after_mb']:.0f} MB, "
                  f"models loaded in {result['load_s']:.1f} s")


def compare_persons(results: dict, a: str, b: str) -> None:
    """Persons of two configurations on each clip: same count, ages within 1 year, same dominant expression."""
    for resolution, by_config in results.items():
        if a not in by_config or b not in by_config:
            continue
        for row_a, row_b in zip(by_config[a]["rows"], by_config[b]["rows"]):
            pa, pb = row_a["persons"], row_b["persons"]
            same = len(pa) == len(pb) and all(
                x["frames"] == y["frames"] and abs(x["age"] - y["age"]) <= 1 and x["dominant"] == y["dominant"]
                for x, y in zip(pa, pb))
            print(f"persons {a} vs {b} {resolution} {row_a['name']}: {'same' if same else 'DIFFERENT'}: "
                  + "; ".join(f"{x['id']}: {x['frames']} fr {x['age']:.1f} y m{x['male']:.2f} {x['dominant']}"
                              for x in pa) + "  |  "
                  + "; ".join(f"{y['id']}: {y['frames']} fr {y['age']:.1f} y m{y['male']:.2f} {y['dominant']}"
                              for y in pb))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=60, help="frames per clip (default 60)")
    parser.add_argument("--naive-frames", type=int, default=10, help="frames per clip for naive (default 10)")
    parser.add_argument("--resolutions", nargs="+", choices=tuple(RESOLUTIONS), default=list(RESOLUTIONS))
    parser.add_argument("--clips", nargs="+", default=["office_three", "walking_three", "bedroom_two_children",
                                                       "headpose_two", "armwrestling"])
    parser.add_argument("--configs", nargs="+", choices=CONFIGS, default=["ours", "naive"])
    parser.add_argument("--baseline-tree", type=Path, help="also run 'ours' of this other checkout as 'baseline'")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="a Settings field for 'ours' (e.g. detect_max_side=0); JSON values")
    parser.add_argument("--loop", type=int, help="one video per clip of this many frames, looped (memory)")
    parser.add_argument("--lost", type=int, nargs="*", metavar="MAX_SIDE",
                        help="instead: count the faces each working resolution loses (detector only)")
    parser.add_argument("--every", type=int, default=3, help="with --lost: every n-th frame (default 3)")
    parser.add_argument("--json", type=Path, help="also write every figure as JSON")
    parser.add_argument("--keep", type=Path, help="build the videos here and keep them")
    parser.add_argument("--worker", choices=("ours", "naive"), help=argparse.SUPPRESS)
    parser.add_argument("--worker-inputs", help=argparse.SUPPRESS)
    parser.add_argument("--worker-overrides", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        print(json.dumps(_worker(args.worker, json.loads(args.worker_inputs), args.naive_frames,
                                 json.loads(args.worker_overrides))))
        return
    if not CLIPS.is_dir():
        print(f"no clips at {CLIPS}: nothing to measure")
        return
    if args.lost is not None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        table = lost_faces(args.clips, args.resolutions, args.frames, args.every, args.lost or [1280, 960, 640])
        print_lost(table)
        if args.json:
            args.json.write_text(json.dumps(table, indent=1))
        return
    overrides = {}
    for item in args.set:
        field, _, value = item.partition("=")
        overrides[field] = json.loads(value)
    configs = list(args.configs) + (["baseline"] if args.baseline_tree and "baseline" not in args.configs else [])
    print(f"machine: {machine()}; load average {open('/proc/loadavg').read().strip()}")
    root = args.keep or Path(tempfile.mkdtemp(prefix="resbench_"))
    root.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        inputs = build_inputs(root, args.clips, args.resolutions, args.frames, args.loop, with_sample=True)
        print(f"built {sum(len(v) for v in inputs.values())} videos in {time.perf_counter() - started:.0f} s")
        results: dict[str, dict] = {}
        for resolution, items in inputs.items():
            results[resolution] = {}
            for config in configs:
                if config == "baseline":
                    if not args.baseline_tree:
                        continue
                    result = run_child(config, items, args.naive_frames, {}, args.baseline_tree.resolve())
                else:
                    result = run_child(config, items, args.naive_frames, overrides if config == "ours" else {})
                results[resolution][config] = result
                print(f"{resolution} {config}: done ({time.perf_counter() - started:.0f} s so far; load average "
                      f"{open('/proc/loadavg').read().split()[0]})", flush=True)
        print_table(results)
        if "baseline" in configs:
            compare_persons(results, "ours", "baseline")
        print(f"\nload average at the end {open('/proc/loadavg').read().strip()}; "
              f"{time.perf_counter() - started:.0f} s in all")
        if args.json:
            args.json.write_text(json.dumps({"machine": machine(), "options": vars(args) | {"json": str(args.json),
                                             "keep": str(args.keep), "baseline_tree": str(args.baseline_tree)},
                                             "results": results}, indent=1, default=str))
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    # Run as a script (the children): bench/ itself must not shadow top-level modules.
    if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
        sys.path.pop(0)
    main()
