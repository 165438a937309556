"""What the batch tests share: the inputs, running the command, a two-node Ray cluster on loopback, and a watch on
every TCP socket of the processes a run starts (read from /proc, so nothing extra is needed to see them)."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from conftest import REPO, SAMPLES

MAX_FRAMES = 6          # every input is cut to this many frames: the tests are about the runner, not the models
HEAD_IP, WORKER_IP = "127.0.0.2", "127.0.0.3"
# The two-node cluster's own environment: no token (the set-up for a test cluster), no usage report.
CLUSTER_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


# --------------------------------------------------------------------------- inputs

@dataclass
class Inputs:
    """The test inputs in one folder; ``samples`` is the folder the API's sample inputs resolve in."""
    root: Path
    samples: Path
    arguments: list[str]                               # what the command is given
    expected: dict[str, str | None] = field(default_factory=dict)    # input path -> error code (None: done)
    api: dict[str, tuple] = field(default_factory=dict)   # input path -> the API's input: (kind, name or file)


def write_video(path: Path, frames: list[np.ndarray], fourcc: str = "mp4v", fps: float = 5.0) -> Path:
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def sample_bgr(name: str, count: int) -> list[np.ndarray]:
    return [cv2.imread(str(path)) for path in sorted((SAMPLES / name).glob("*.jpg"))[:count]]


def make_inputs(root: Path, clip: Path | None) -> Inputs:
    """About ten inputs of every kind: the two samples, videos and a zip made from them, a real clip, a corrupt
    video, a video without a face, an empty folder, a file of no known kind; some named through a manifest."""
    samples = root / "samples"
    for name in ("seqA", "seqB"):
        shutil.copytree(SAMPLES / name, samples / name)
    media = root / "media"
    media.mkdir(parents=True)
    videos = {"seqA.mp4": write_video(media / "seqA.mp4", sample_bgr("seqA", MAX_FRAMES + 2)),
              "seqB.avi": write_video(media / "seqB.avi", sample_bgr("seqB", MAX_FRAMES), "MJPG")}
    zipped = media / "seqB_frames.zip"
    with zipfile.ZipFile(zipped, "w") as archive:
        for path in sorted((SAMPLES / "seqB").glob("*.jpg"))[:MAX_FRAMES]:
            archive.write(path, path.name)
    corrupt = media / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 20_000, dtype=np.uint8).tobytes())
    grey = np.full((240, 320, 3), 128, np.uint8)
    no_face = write_video(media / "no_face.mp4", [grey + np.uint8(i) for i in range(MAX_FRAMES)])
    notes = media / "notes.json"
    notes.write_text("{}")
    empty = samples / "empty"         # also a sample, so that the API can be asked about it
    empty.mkdir()
    manifest = root / "list.txt"
    manifest.write_text("# made by the tests\nmedia/seqA.mp4\nmedia/seqB.avi\n\nmedia/seqB_frames.zip\n")
    inputs = Inputs(root, samples, [str(samples), str(manifest), str(corrupt), str(no_face), str(notes), str(empty)])
    for name in ("seqA", "seqB"):
        inputs.expected[str((samples / name).resolve())] = None
        inputs.api[str((samples / name).resolve())] = ("sample", name)
    for path in (*videos.values(), zipped):
        inputs.expected[str(path.resolve())] = None
        inputs.api[str(path.resolve())] = ("zip" if path.suffix == ".zip" else "video", path)
    inputs.expected.update({str(corrupt.resolve()): "invalid_video", str(no_face.resolve()): "no_face",
                            str(notes.resolve()): "unsupported_media_type", str(empty.resolve()): "no_images"})
    inputs.api.update({str(corrupt.resolve()): ("video", corrupt), str(no_face.resolve()): ("video", no_face),
                       str(notes.resolve()): ("video", notes), str(empty.resolve()): ("sample", "empty")})
    if clip is not None:
        real = shutil.copy(clip, media / clip.name)
        inputs.arguments.append(str(real))
        inputs.expected[str(Path(real).resolve())] = None
        inputs.api[str(Path(real).resolve())] = ("video", Path(real))
    return inputs


def write_frame_folders(root, count: int):
    """``count`` folders of MAX_FRAMES sample frames each, every one a different stretch of seqA and seqB."""
    frames = sorted((SAMPLES / "seqA").glob("*.jpg")) + sorted((SAMPLES / "seqB").glob("*.jpg"))
    for number in range(count):
        folder = root / f"part{number}"
        folder.mkdir(parents=True)
        for offset in range(MAX_FRAMES):
            shutil.copy(frames[(number * 7 + offset) % len(frames)], folder / f"frame_{offset:02d}.jpg")
    return root


# --------------------------------------------------------------------------- running the command

def batch_command(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "faceanalysis", "batch", *arguments]


def run_batch(*arguments: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(batch_command(*arguments), capture_output=True, text=True, cwd=REPO, timeout=timeout,
                          env={**os.environ, **(env or {})})


def error_of(done: subprocess.CompletedProcess) -> dict:
    """The JSON error a failed command printed as its last line on stderr."""
    return json.loads(done.stderr.strip().splitlines()[-1])["error"]


# --------------------------------------------------------------------------- processes and their sockets

def descendants(roots: set[int]) -> set[int]:
    """``roots`` and every living process below them."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found = set(roots) & set(parents)
    grew = True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in found} - found
        found |= more
        grew = bool(more)
    return found


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    host, port = text.split(":")
    raw = bytes.fromhex(host)
    if len(raw) == 4:
        return ipaddress.IPv4Address(raw[::-1])
    # /proc writes an IPv6 address as four 32-bit words, each in the machine's byte order.
    return ipaddress.IPv6Address(b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))


def is_loopback(address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def sockets_of(pids: set[int]) -> list[dict]:
    """Every TCP socket the processes hold: process, local and remote address, and whether it listens."""
    owners = {}
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    owners[target[8:-1]] = pid
        except OSError:
            continue            # the process ended meanwhile
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in owners:
                found.append({"pid": owners[fields[9]], "local": _address(fields[1]), "remote": _address(fields[2]),
                              "listening": fields[3] == "0A"})
    return found


class SocketWatch:
    """Samples, while it runs, the TCP sockets of the processes under ``roots`` (a callable: pids change)."""

    def __init__(self, roots, every: float = 0.25) -> None:
        self.roots = roots
        self.every = every
        self.connections: list[dict] = []
        self.listening: list[dict] = []
        self.processes: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> "SocketWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._stop.is_set():
            pids = descendants(set(self.roots()))
            self.processes |= pids
            for socket in sockets_of(pids):
                (self.listening if socket["listening"] else self.connections).append(socket)
            self._stop.wait(self.every)

    def off_loopback(self) -> list[dict]:
        return [socket for socket in self.connections
                if not (is_loopback(socket["local"]) and is_loopback(socket["remote"]))]


def stop_group(process: subprocess.Popen, grace: float = 3) -> None:
    """End a process we started in its own session, and everything in its process group."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(grace)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def started_at(pids: set[int]) -> dict[int, str]:
    """Each running process's start time (clock ticks since boot): with the pid, it names one process for good.
    A zombie (ended, not yet reaped by whoever inherited it) is not running."""
    found = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            found[pid] = fields[19]
    return found


def kill_leftovers(seen: dict[int, str]) -> None:
    """SIGKILL the processes of ``seen`` (``started_at``) that still run; a pid since reused is left alone."""
    for pid, start in started_at(set(seen)).items():
        if seen[pid] == start:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


# --------------------------------------------------------------------------- a two-node cluster on loopback

class TwoNodeCluster:
    """``ray start --head`` (one CPU, 127.0.0.2) and a second node (one CPU, 127.0.0.3) joined to it, both in the
    foreground (``--block``) in sessions of their own, with a private temporary folder: stopping them stops exactly
    what they started, never another Ray on the machine."""

    def __init__(self) -> None:
        # Short: Ray puts Unix sockets under it, whose paths are limited to about 100 characters.
        self.temp = Path(tempfile.mkdtemp(prefix="fa-ray-", dir="/tmp"))
        self.env = {**os.environ, **CLUSTER_ENV}
        self.nodes: list[subprocess.Popen] = []
        self.address: str | None = None
        self.ray = str(Path(sys.executable).with_name("ray"))

    def start(self) -> "TwoNodeCluster":
        common = ["--num-cpus=1", "--block", f"--temp-dir={self.temp}", "--dashboard-agent-listen-port=0",
                  "--object-store-memory=200000000", "--disable-usage-stats"]
        port_file = self.temp / "head.log"
        self._start([self.ray, "start", "--head", f"--node-ip-address={HEAD_IP}", "--port=0",
                     "--include-dashboard=false", *common], port_file)
        self.address = self._address_from(port_file)
        self._start([self.ray, "start", f"--address={self.address}", f"--node-ip-address={WORKER_IP}", *common],
                    self.temp / "worker.log")
        self._wait_for_nodes(2)
        return self

    def _start(self, command: list[str], log: Path) -> None:
        with open(log, "w") as handle:
            self.nodes.append(subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=self.env,
                                               start_new_session=True))

    def _address_from(self, log: Path, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in log.read_text().splitlines():
                if "ray start --address='" in line:
                    return line.split("--address='")[1].split("'")[0]
            if self.nodes[-1].poll() is not None:
                break
            time.sleep(0.5)
        raise RuntimeError(f"the head node did not start:\n{log.read_text()[-3000:]}")

    def _wait_for_nodes(self, count: int, timeout: float = 120) -> None:
        status = [self.ray, "status", f"--address={self.address}"]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = subprocess.run(status, capture_output=True, text=True, env=self.env)
            if done.stdout.count("node_") >= count:
                return
            time.sleep(1)
        raise RuntimeError(f"{count} nodes did not join:\n{done.stdout}\n{done.stderr}")

    def worker_processes(self, node: int) -> set[int]:
        """The analyzer actors' processes below node ``node`` (0: the head)."""
        found = set()
        for pid in descendants({self.nodes[node].pid}):
            try:
                if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::MapWorker"):
                    found.add(pid)
            except OSError:
                continue
        return found

    def stop(self) -> None:
        seen = started_at(descendants({node.pid for node in self.nodes}))
        for node in reversed(self.nodes):
            stop_group(node)
        kill_leftovers(seen)            # anything that left the process groups
        shutil.rmtree(self.temp, ignore_errors=True)
