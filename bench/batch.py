"""The batch runner on Ray against the in-process analyzer, on the same inputs, in one run.

    python -m bench.batch [--inputs 20] [--frames 300] [--workers N]

Builds ``--inputs`` videos of ``--frames`` frames each (640x480, one face, bench/sequences.py's frames, each video
starting at another frame), then, each in a fresh process:
- in-process: one ``FaceAnalyzer`` analyses the videos one after another, read as the batch runner reads them;
- batch: ``python -m faceanalysis batch VIDEOS --out DIR``, Ray started locally by the command.

Printed: frames/s of each, the ratio, the local Ray start-up time, and the load average before and after each
part (the 2-core machine this was written on is shared). The in-process rate includes its model loading, and the
batch rate includes its worker's, so the ratio is what Ray costs besides its own start-up, which is reported on
its own (and included in a second ratio). The answers are compared too: every video's persons rows must equal
the in-process result.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

from bench.sequences import benchmark_frame

REPO = Path(__file__).resolve().parents[1]
SUMMARY = re.compile(r"([\d,]+) frames in ([\d.]+) s, Ray ready in ([\d.]+) s")


def write_videos(folder: Path, count: int, frames: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number in range(count):
        path = folder / f"clip_{number:03d}.mp4"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (640, 480))
        for index in range(frames):
            writer.write(benchmark_frame(number * 7 + index))
        writer.release()
        paths.append(path)
    return paths


def in_process(paths: list[str], max_frames: int) -> dict:
    """Run in its own process: load one analyzer, analyse the videos one after another."""
    from faceanalysis.batch.inputs import BatchInput
    from faceanalysis.batch.spec import RunSpec
    from faceanalysis.batch.worker import source_for
    from faceanalysis.cli import settings_from, setup_logging
    from faceanalysis.pipeline.analyzer import FaceAnalyzer

    setup_logging("WARNING")
    settings = settings_from()
    spec = RunSpec.create(settings, 1, max_frames, False)
    start = time.perf_counter()
    analyzer = FaceAnalyzer(settings).prepare()
    load_s = time.perf_counter() - start
    frames, persons = 0, {}
    start = time.perf_counter()
    for path in paths:
        result = analyzer.analyse_source(source_for(BatchInput(path, "video"), spec))
        frames += result.frames_read
        persons[path] = [[person.id, person.frames_seen, float(person.summary.age)] for person in result.persons]
    return {"load_s": load_s, "analyse_s": time.perf_counter() - start, "frames": frames, "persons": persons}


def batch(paths: list[Path], out: Path, workers: int | None, max_frames: int) -> dict:
    command = [sys.executable, "-m", "faceanalysis", "batch", *map(str, paths), "--out", str(out),
               "--max-frames", str(max_frames)] + (["--workers", str(workers)] if workers else [])
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"batch failed ({done.returncode}):\n{done.stderr[-3000:]}")
    found = SUMMARY.search(done.stdout)
    if not found:
        raise SystemExit(f"no timing in the summary:\n{done.stdout}")
    import pyarrow.parquet as pq
    persons = {}
    for row in pq.read_table(out / "persons.parquet").to_pylist():
        persons.setdefault(row["input"], []).append([row["person"], row["frames_seen"], row["age"]])
    return {"wall_s": wall, "frames": int(found.group(1).replace(",", "")), "elapsed_s": float(found.group(2)),
            "ray_startup_s": float(found.group(3)), "summary": done.stdout.strip(), "persons": persons}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inputs", type=int, default=20)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--workers", type=int, help="batch workers (default: the command's own default)")
    parser.add_argument("--in-process", nargs="+", help=argparse.SUPPRESS)    # the in-process part's own run
    args = parser.parse_args(argv)
    if args.in_process:
        json.dump(in_process(args.in_process, args.frames), sys.stdout)
        return
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        started = time.perf_counter()
        paths = write_videos(Path(tmp) / "videos", args.inputs, args.frames)
        print(f"{args.inputs} videos of {args.frames} frames written in {time.perf_counter() - started:.0f} s")
        load = [os.getloadavg()[0]]
        cpu = _children_cpu_s()
        command = [sys.executable, "-m", "bench.batch", "--frames", str(args.frames), "--in-process",
                   *map(str, paths)]
        alone = json.loads(subprocess.run(command, capture_output=True, text=True, check=True, cwd=REPO).stdout)
        alone["cpu_s"], cpu = _children_cpu_s() - cpu, _children_cpu_s()
        load.append(os.getloadavg()[0])
        ray = batch(paths, Path(tmp) / "out", args.workers, args.frames)
        ray["cpu_s"] = _children_cpu_s() - cpu
        load.append(os.getloadavg()[0])
    report(alone, ray, load)


def _children_cpu_s() -> float:
    # CPU seconds of the finished child processes and the descendants they waited for (Ray's processes are
    # reaped by the batch command): comparable when other jobs on a shared machine disturb the wall clock.
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def report(alone: dict, ray: dict, load: list[float]) -> None:
    frames = alone["frames"]
    if ray["frames"] != frames:
        raise SystemExit(f"the batch read {ray['frames']} frames, the in-process analyzer {frames}")
    different = [path for path, persons in alone["persons"].items()
                 if len(persons) != len(ray["persons"].get(path, []))
                 or any(a[:2] != b[:2] or abs(a[2] - b[2]) > 1e-6 for a, b in zip(persons, ray["persons"][path]))]
    steady = frames / alone["analyse_s"]
    inproc = frames / (alone["load_s"] + alone["analyse_s"])
    without_startup = frames / (ray["elapsed_s"] - ray["ray_startup_s"])
    with_startup = frames / ray["elapsed_s"]
    rows = [("in-process, analysis only", alone["analyse_s"], steady, ""),
            ("in-process, with model loading", alone["load_s"] + alone["analyse_s"], inproc, "1.00"),
            ("batch on Ray, without Ray's start-up", ray["elapsed_s"] - ray["ray_startup_s"], without_startup,
             f"{without_startup / inproc:.2f}"),
            ("batch on Ray, everything", ray["elapsed_s"], with_startup, f"{with_startup / inproc:.2f}")]
    print(f"\n{frames} frames; load average {load[0]:.1f} -> {load[1]:.1f} (in-process) -> {load[2]:.1f} (batch)")
    print(f"{'':40} {'seconds':>8} {'frames/s':>9} {'ratio':>6}")
    for name, seconds, rate, ratio in rows:
        print(f"{name:40} {seconds:8.1f} {rate:9.1f} {ratio:>6}")
    print(f"local Ray start-up: {ray['ray_startup_s']:.1f} s; in-process model loading: {alone['load_s']:.1f} s; "
          f"batch command wall clock: {ray['wall_s']:.1f} s")
    print(f"CPU seconds per frame, all processes: in-process {alone['cpu_s'] / frames * 1000:.1f} ms, batch "
          f"{ray['cpu_s'] / frames * 1000:.1f} ms (both with model loading, the batch with Ray's start-up)")
    print(f"answers: {len(alone['persons']) - len(different)} of {len(alone['persons'])} videos give the same "
          f"persons (id, frames seen, age within 1e-6)" + (f"; different: {different}" if different else ""))
    print(ray["summary"])


if __name__ == "__main__":
    main()
