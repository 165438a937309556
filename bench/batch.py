"""The batch runner on Ray against the in-process analyzer, on the same inputs, in one run.

    python -m bench.batch [--inputs 20] [--frames 300] [--workers N]

Builds ``--inputs`` videos of ``--frames`` frames each (640x480, one face, bench/sequences.py's frames, each video
starting at another frame), then, each in a fresh process:
- in-process: one ``FaceAnalyzer`` analyses the videos one after another, read as the batch runner reads them;
- batch: ``python -m faceanalysis batch VIDEOS --out DIR``, Ray started locally by the command.

Printed: frames/s of each, the ratio, the local Ray start-up time, the CPU time per frame of every process each
part ran (Ray's included), and the load average before and after each part (the 2-core machine this was written
on is shared: frames/s move with the other jobs, CPU time much less). The in-process rate includes its model
loading, and the batch rate includes its worker's, so the ratio is what Ray costs besides its own start-up, which
is reported on its own (and included in a second ratio). The answers are compared too: every video's persons
rows must equal the in-process result.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
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
    from faceanalysis.batch.discovery import BatchInput
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
    done = measured(command)
    wall = time.perf_counter() - start
    if done["returncode"]:
        raise SystemExit(f"batch failed ({done['returncode']}):\n{done['stderr'][-3000:]}")
    found = SUMMARY.search(done["stdout"])
    if not found:
        raise SystemExit(f"no timing in the summary:\n{done['stdout']}")
    import pyarrow.parquet as pq
    persons = {}
    for row in pq.read_table(out / "persons.parquet").to_pylist():
        persons.setdefault(row["input"], []).append([row["person"], row["frames_seen"], row["age"]])
    return {"wall_s": wall, "frames": int(found.group(1).replace(",", "")), "elapsed_s": float(found.group(2)),
            "ray_startup_s": float(found.group(3)), "summary": done["stdout"].strip(), "persons": persons,
            "cpu_s": done["cpu_s"]}


def measured(command: list[str]) -> dict:
    """Run ``command``; its output, and the CPU seconds of it and of every process below it (Ray's included).

    The CPU time of each process is read from /proc every half second while the command runs, so a process that
    ends loses at most its last half second. On a shared machine, CPU seconds per frame are what other jobs do not
    disturb much; frames/s are.
    """
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    cpu: dict[tuple[int, str], float] = {}
    tick = os.sysconf("SC_CLK_TCK")

    def sample() -> None:
        while process.poll() is None:
            for pid, (start, seconds) in _cpu_of_tree(process.pid, tick).items():
                cpu[(pid, start)] = max(cpu.get((pid, start), 0.0), seconds)
            time.sleep(0.5)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    stdout, stderr = process.communicate()
    watcher.join()
    return {"returncode": process.returncode, "stdout": stdout, "stderr": stderr, "cpu_s": sum(cpu.values())}


def _cpu_of_tree(root: int, tick: int) -> dict[int, tuple[str, float]]:
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            # ppid, start time, user + system CPU ticks
            stats[int(entry.name)] = (int(fields[1]), fields[19], (int(fields[11]) + int(fields[12])) / tick)
    tree, grew = {root}, True
    while grew:
        more = {pid for pid, (parent, _, _) in stats.items() if parent in tree} - tree
        tree |= more
        grew = bool(more)
    return {pid: stats[pid][1:] for pid in tree if pid in stats}


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
        done = measured([sys.executable, "-m", "bench.batch", "--frames", str(args.frames), "--in-process",
                         *map(str, paths)])
        if done["returncode"]:
            raise SystemExit(f"in-process part failed:\n{done['stderr'][-3000:]}")
        alone = {**json.loads(done["stdout"]), "cpu_s": done["cpu_s"]}
        load.append(os.getloadavg()[0])
        ray = batch(paths, Path(tmp) / "out", args.workers, args.frames)
        load.append(os.getloadavg()[0])
    report(alone, ray, load)


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
    print(f"CPU time per frame, every process: in-process {alone['cpu_s'] / frames * 1000:.1f} ms, batch "
          f"{ray['cpu_s'] / frames * 1000:.1f} ms, ratio {alone['cpu_s'] / ray['cpu_s']:.2f} (both with model "
          "loading, the batch with Ray's start-up and its own processes)")
    print(f"answers: {len(alone['persons']) - len(different)} of {len(alone['persons'])} videos give the same "
          f"persons (id, frames seen, age within 1e-6)" + (f"; different: {different}" if different else ""))
    print(ray["summary"])


if __name__ == "__main__":
    main()
