"""Memory of one long analysis, and of a server left idle after several: the two memory targets at 720p.

    python -m bench.memory video [--frames 10000] [--every 100] [--clip office_three] [--resolution 720p]
    python -m bench.memory server [--clips office_three walking_three ...] [--resolution 720p] [--idle 20]

- ``video``: one video of ``--frames`` frames made by looping the clip forward then backward at the resolution
  (``bench.resolution``'s inputs: scaled to cover it, MJPEG), analysed by ``FaceAnalyzer.analyse_source`` in a
  child process that loaded nothing else. Its resident set (``VmRSS``) is sampled from the analysis's progress
  callback every ``--every`` frames, so the growth per frame can be read; printed: RSS after loading the
  models, every sample, the peak (``VmHWM``, the whole child), and the RSS once the result was dropped.
  Target: peak at most 2,000 MB for 10,000 frames at 720p with several faces.
- ``server``: a real server process (``flaskMain.py``, waitress) analyses each clip, scaled to cover the
  resolution, through ``POST /api/v2/analyze``, one after the other; its ``VmRSS`` is read from
  ``/proc/<pid>/status`` after the models loaded, after each answer, and after ``--idle`` seconds idle.
  Target: at most 1,500 MB idle after the shared clips at 720p.

The clips are ``../shared/clips`` beside the checkout; without them the benchmark says so and stops. The load
average is printed: RSS does not depend on it, time does.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):
    sys.path.insert(0, str(REPO))

from bench.resolution import CLIPS, build_inputs, peak_rss_mb, rss_mb  # noqa: E402

ALL_CLIPS = ["office_three", "walking_three", "bedroom_two_children", "headpose_two", "armwrestling"]


def load() -> str:
    return open("/proc/loadavg").read().split()[0]


# --------------------------------------------------------------------------- one long video

def video_worker(path: str, frames: int, every: int, overrides: dict) -> dict:
    """In the child: load the models, analyse the video, sample RSS every ``every`` frames."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from faceanalysis.pipeline.analyzer import FaceAnalyzer
    from faceanalysis.pipeline.sources import VideoSource
    from facecore.memory import release_memory

    analyzer = FaceAnalyzer(**{"device": "cpu", **overrides}).prepare()
    release_memory()
    loaded = rss_mb()
    watch = PeakWatch().start()
    samples: list[tuple[int, float, float]] = []
    started = time.perf_counter()

    def progress(done: int, expected) -> None:
        if not samples or done - samples[-1][0] >= every or done == expected:
            samples.append((done, round(rss_mb(), 1), round(time.perf_counter() - started, 1)))
            print(f"  {done:>6} frames: RSS {samples[-1][1]:7.0f} MB ({samples[-1][2]:.0f} s, load {load()})",
                  file=sys.stderr, flush=True)

    cpu = resource.getrusage(resource.RUSAGE_SELF)
    result = analyzer.analyse_source(VideoSource(Path(path), Path(path).name, max_frames=frames), progress)
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    summary = {"frames": result.frames_read, "faces": len(result.faces),
               "face_table_mb": sum(getattr(result.faces, key).nbytes for key in
                                    ("frame", "boxes", "confidence", "landmarks", "primary", "age", "age_years",
                                     "gender", "expression", "person", "quality", "sure")) / 2 ** 20,
               "persons": [{"id": p.id, "frames": p.frames_seen, "age": round(p.summary.age, 2)}
                           for p in result.persons],
               "unlisted_tracks": result.unlisted.tracks, "total_s": result.timings_ms["total"] / 1000,
               "cpu_ms_per_frame": 1000 * ((cpu_after.ru_utime + cpu_after.ru_stime)
                                           - (cpu.ru_utime + cpu.ru_stime)) / max(result.frames_read, 1)}
    with_result = rss_mb()
    del result
    release_memory()
    watch.stop()
    return {"loaded_mb": loaded, "samples": samples, "with_result_mb": with_result, "after_mb": rss_mb(),
            "peak_mb": peak_rss_mb(),
            "watched_peak": {"mb": watch.peak_mb, "s": watch.peak_s, "frames_done": samples[-1][0] if samples else 0,
                             "stacks": watch.stacks}, **summary}


class PeakWatch:
    """A thread that reads RSS every ``interval`` s and keeps, at the highest reading, what every thread was
    doing (the innermost frames of each stack): where a peak between two progress samples comes from."""

    def __init__(self, interval: float = 0.05) -> None:
        import threading
        self.interval, self.peak_mb, self.peak_s, self.stacks = interval, 0.0, 0.0, {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="peak-watch", daemon=True)
        self._started = time.perf_counter()

    def start(self) -> "PeakWatch":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        import threading
        import traceback
        names = {}
        while not self._stop.wait(self.interval):
            now = rss_mb()
            if now > self.peak_mb:
                names.update({thread.ident: thread.name for thread in threading.enumerate()})
                self.peak_mb, self.peak_s = now, time.perf_counter() - self._started
                self.stacks = {names.get(ident, str(ident)): [f"{f.name} ({Path(f.filename).name}:{f.lineno})"
                                                              for f in traceback.extract_stack(frame)[-6:]]
                               for ident, frame in sys._current_frames().items()
                               if ident != threading.get_ident()}


def run_video(args) -> dict:
    root = Path(tempfile.mkdtemp(prefix="membench_"))
    try:
        started = time.perf_counter()
        inputs = build_inputs(root, [args.clip], [args.resolution], 0, args.frames, with_sample=False)
        item = inputs[args.resolution][0]
        print(f"built {item['name']} {item['size']} x {item['frames']} frames in {time.perf_counter() - started:.0f} s")
        command = [sys.executable, "-m", "bench.memory", "--worker", json.dumps(
            {"path": item["path"], "frames": args.frames, "every": args.every, "overrides": args.overrides})]
        done = subprocess.run(command, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                              stdout=subprocess.PIPE, text=True)
        if done.returncode != 0:
            raise SystemExit(f"the analysis failed ({done.returncode})")
        result = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(root, ignore_errors=True)
    samples = result["samples"]
    first = next((s for s in samples if s[0] >= min(500, samples[-1][0])), samples[0])
    growth = (samples[-1][1] - first[1]) / max(samples[-1][0] - first[0], 1) * 1000
    print(f"\n{args.clip} {item['size']}: {result['frames']} frames, {result['faces']} faces "
          f"({result['faces'] / max(result['frames'], 1):.2f} a frame), {len(result['persons'])} persons, "
          f"{result['unlisted_tracks']} unlisted tracks; {result['total_s']:.0f} s, "
          f"CPU {result['cpu_ms_per_frame']:.0f} ms/frame")
    peak = result["watched_peak"]
    print(f"highest RSS read (every 50 ms): {peak['mb']:.0f} MB at {peak['s']:.0f} s; the threads then:")
    for name, stack in peak["stacks"].items():
        print(f"  {name}: {' <- '.join(reversed(stack))}")
    print(f"RSS: models loaded {result['loaded_mb']:.0f} MB; peak {result['peak_mb']:.0f} MB (target <= 2000); "
          f"with the result {result['with_result_mb']:.0f} MB (face table {result['face_table_mb']:.1f} MB); "
          f"after {result['after_mb']:.0f} MB; growth from frame {first[0]} on: {growth:.1f} MB per 1,000 frames")
    return result


# --------------------------------------------------------------------------- a server, idle after several clips

def vm_rss(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        return next(int(line.split()[1]) / 1024 for line in handle if line.startswith("VmRSS:"))


def vm_hwm(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        return next(int(line.split()[1]) / 1024 for line in handle if line.startswith("VmHWM:"))


def post_video(url: str, path: Path, timeout: float) -> dict:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"video\"; filename=\"{path.name}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode() + path.read_bytes() \
        + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(f"{url}/api/v2/analyze", data=body, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        return json.loads(answer.read())


def run_server(args) -> dict:
    root = Path(tempfile.mkdtemp(prefix="membench_server_"))
    process = None
    try:
        inputs = build_inputs(root, args.clips, [args.resolution], args.max_frames, None, with_sample=False)
        port_file = root / "port"
        log_path = root / "server.log"
        with open(log_path, "w") as log:
            process = subprocess.Popen(
                [sys.executable, str(REPO / "flaskMain.py"), "--port", "0", "--port-file", str(port_file),
                 "--data-dir", str(root / "data"), *args.server_flags],
                cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"},
                stdout=log, stderr=subprocess.STDOUT)
        url = ""
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SystemExit(f"server exited: {log_path.read_text()[-2000:]}")
            if port_file.exists() and port_file.read_text().strip():
                url = f"http://127.0.0.1:{port_file.read_text().strip()}"
                try:
                    with urllib.request.urlopen(f"{url}/readyz", timeout=2) as answer:
                        if answer.status == 200:
                            break
                except OSError:
                    pass
            time.sleep(0.5)
        rows = [("models loaded", 0, vm_rss(process.pid), vm_hwm(process.pid), 0.0)]
        print(f"server {process.pid} ready: RSS {rows[0][2]:.0f} MB (load {load()})", flush=True)
        for item in inputs[args.resolution]:
            started = time.perf_counter()
            answer = post_video(url, Path(item["path"]), timeout=3600)
            rows.append((f"{item['name']} {item['size']}", item["frames"], vm_rss(process.pid), vm_hwm(process.pid),
                         time.perf_counter() - started))
            print(f"  {rows[-1][0]:<34} {item['frames']:>5} frames, {len(answer.get('persons', []))} persons: "
                  f"RSS {rows[-1][2]:6.0f} MB, peak so far {rows[-1][3]:6.0f} MB ({rows[-1][4]:.0f} s, load {load()})",
                  flush=True)
        time.sleep(args.idle)
        idle = vm_rss(process.pid)
        rows.append((f"idle {args.idle} s", 0, idle, vm_hwm(process.pid), float(args.idle)))
        print(f"idle after {args.idle} s: RSS {idle:.0f} MB (target <= 1500); peak {rows[-1][3]:.0f} MB")
        return {"rows": rows, "idle_mb": idle, "peak_mb": rows[-1][3]}
    finally:
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(root, ignore_errors=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="mode")
    video = sub.add_parser("video", help="one long looped video, RSS sampled as it goes")
    video.add_argument("--frames", type=int, default=10_000)
    video.add_argument("--every", type=int, default=100, help="sample RSS every this many frames (default 100)")
    video.add_argument("--clip", default="office_three")
    video.add_argument("--resolution", default="720p", choices=("native", "720p", "1080p"))
    video.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="a Settings field (JSON)")
    server = sub.add_parser("server", help="a real server analysing the clips in a row, then idle")
    server.add_argument("--clips", nargs="+", default=ALL_CLIPS)
    server.add_argument("--resolution", default="720p", choices=("native", "720p", "1080p"))
    server.add_argument("--max-frames", type=int, default=None, help="cut each clip to this many frames")
    server.add_argument("--idle", type=float, default=20.0, help="seconds idle before the last reading")
    server.add_argument("--server-flags", nargs=argparse.REMAINDER, default=[], help="passed to flaskMain.py")
    for each in (video, server):
        each.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = parser.parse_args(argv)
    if args.worker:
        job = json.loads(args.worker)
        print(json.dumps(video_worker(job["path"], job["frames"], job["every"], job["overrides"])))
        return
    if args.mode is None:
        parser.error("choose video or server")
    if not CLIPS.is_dir():
        print(f"no clips at {CLIPS}: nothing to measure")
        return
    print(f"load average {open('/proc/loadavg').read().strip()}")
    if args.mode == "video":
        args.overrides = {field: json.loads(value) for field, _, value in (item.partition("=") for item in args.set)}
        result = run_video(args)
    else:
        result = run_server(args)
    print(f"load average at the end {open('/proc/loadavg').read().strip()}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
