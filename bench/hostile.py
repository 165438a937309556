"""Hostile clients against a real server: what each probe gets, how long it takes, and what it costs the server.

    python -m bench.hostile [--repo PATH] [--only NAME ...] [--body-mb 1000] [--slow-clients 200]

Starts ``flaskMain.py`` of ``--repo`` (default: this checkout; point it at an older checkout to measure that one)
on a free loopback port with an API token, a data folder and a temporary folder of its own, runs the probes
one after the other, and prints one row each: probe, answer (status and error code), time, the server's peak
RSS during the probe, and the peak disk it used (its data and temporary folders, and the deleted temporary
files it held open). Loopback only; every probe ends by itself (bounded by its own time limit), and the server
is stopped at the end.

Probes:
  body-no-token      POST of --body-mb MB without a token (declared Content-Length, zeros streamed until the
                     server answers or closes): how much it reads before refusing. The default, 1000 MB, is
                     under waitress's own default limit (1 GB), which refuses larger ones from the header
  body-too-large     with the token, a body declared 300 MB (over the 256 MB limit)
  slow-clients       --slow-clients connections sending one header line a second for --slow-seconds, while
                     /healthz is asked once a second: its slowest answer, and how many slow connections the
                     server closed
  frame-16000        a 16000x16000 PNG sent as a video (a 30 KB file), one alone
  frame-16000-x4     four at once
  healthz-busy       20 concurrent analyses of a 40-frame sample and 12 /healthz probes meanwhile: the slowest
  json-deep          a JSON body nested 100,000 deep
  long-filename      a file name of 1 MB
  bad-request-line   a request line waitress cannot parse: answer's Content-Type and security headers
  header-431         300 KB of headers
  store-immutable    the store made immutable (chattr +i; root): /readyz, and a job submission
  signal-at-start    a second server sent SIGTERM while its models load: exit status, files left behind
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TOKEN = "hostile-bench-token-0123456789abcdef"
START_TIMEOUT_S = 300


@dataclass
class Row:
    probe: str
    answer: str
    seconds: float
    rss_mb: float
    disk_mb: float
    note: str = ""


class Server:
    def __init__(self, repo: Path, root: Path, name: str = "server") -> None:
        self.repo, self.root, self.name = repo, root, name
        self.data = root / f"{name}-data"
        self.tmp = root / f"{name}-tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)
        (root / "token").write_text(TOKEN)
        (root / "token").chmod(0o600)
        self.port_file = root / f"{name}.port"
        self.log = root / f"{name}.log"
        self.process: subprocess.Popen | None = None
        self.port = 0

    def launch(self, samples: Path) -> None:
        self.port_file.unlink(missing_ok=True)
        env = {**os.environ, "TMPDIR": str(self.tmp), "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(self.repo)}
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(self.repo / "flaskMain.py"), "--port", "0", "--port-file", str(self.port_file),
                 "--data-dir", str(self.data), "--api-token-file", str(self.root / "token"), "--threads", "4",
                 "--samples", str(samples)], cwd=self.repo, env=env, stdout=log, stderr=subprocess.STDOUT)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"server exited {self.process.returncode}: {self.log.read_text()[-2000:]}")
            if self.port_file.exists():
                self.port = int(self.port_file.read_text())
                try:
                    if http(self.port, "GET", "/readyz", timeout=5)[0] == 200:
                        return
                except OSError:
                    pass
            time.sleep(0.5)
        raise SystemExit("server not ready in time")

    def rss_mb(self) -> float:
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0

    def disk_mb(self) -> float:
        """Its data and temporary folders, plus the deleted files it holds open (waitress buffers a body in an
        anonymous temporary file, which no folder listing shows)."""
        total = 0
        for folder in (self.data, self.tmp):
            for base, _, files in os.walk(folder):
                for name in files:
                    try:
                        total += os.lstat(os.path.join(base, name)).st_blocks * 512
                    except OSError:
                        pass
        fds = Path(f"/proc/{self.process.pid}/fd")
        try:
            for fd in fds.iterdir():
                try:
                    if os.readlink(fd).endswith(" (deleted)"):
                        total += os.stat(fd).st_blocks * 512
                except OSError:
                    pass
        except OSError:
            pass
        return total / 1024 ** 2

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()


class Peaks:
    """Samples the server's RSS and disk use every 0.2 s while a probe runs."""

    def __init__(self, server: Server) -> None:
        self.server, self.rss, self.disk = server, 0.0, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            self.rss = max(self.rss, self.server.rss_mb())
            self.disk = max(self.disk, self.server.disk_mb())
            if self._stop.wait(0.2):
                return

    def __enter__(self) -> "Peaks":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def http(port: int, method: str, path: str, body: bytes = b"", headers: dict | None = None,
         timeout: float = 60, raw: bytes | None = None) -> tuple[int, dict, bytes]:
    """One request on a fresh connection; (status, headers, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        if raw is None:
            lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close",
                     f"Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in (headers or {}).items())]
            raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        sock.sendall(raw)
        return read_answer(sock)


def read_answer(sock: socket.socket) -> tuple[int, dict, bytes]:
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, socket.timeout):
            break
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    if not lines or not lines[0].startswith("HTTP/"):
        return 0, {}, data
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


def code_of(body: bytes) -> str:
    try:
        return json.loads(body)["error"]["code"]
    except Exception:
        return "(not JSON)" if body else ""


def auth() -> dict:
    return {"Authorization": f"Bearer {TOKEN}"}


def multipart(field: str, name: str, data: bytes) -> tuple[bytes, dict]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{name}\"\r\n"
            "Content-Type: video/mp4\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


# --- probes -----------------------------------------------------------------------------------------------------

def streamed_body(server: Server, megabytes: int, headers: dict, limit_s: float = 120) -> tuple[str, float, str]:
    """POST a declared body of ``megabytes`` MB, streaming zeros until the server answers or closes."""
    total = megabytes * 1024 ** 2
    started = time.monotonic()
    sent = 0
    with socket.create_connection(("127.0.0.1", server.port), timeout=limit_s) as sock:
        head = ["POST /api/v2/jobs HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/octet-stream",
                f"Content-Length: {total}", *(f"{k}: {v}" for k, v in headers.items())]
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        chunk = b"\0" * (1024 * 1024)
        sock.setblocking(False)
        answer = b""
        while time.monotonic() - started < limit_s:
            try:
                answer += sock.recv(65536)
                if answer:
                    break
            except BlockingIOError:
                pass
            except OSError:
                break
            if sent < total:
                try:
                    sent += sock.send(chunk[:min(len(chunk), total - sent)])
                except BlockingIOError:
                    time.sleep(0.001)
                except OSError:
                    break
            else:
                time.sleep(0.01)
        sock.setblocking(True)
        sock.settimeout(10)
        status, _, body = (read_answer_prefixed(sock, answer))
    return f"{status} {code_of(body)}", time.monotonic() - started, f"{sent / 1024 ** 2:.0f} MB sent before the answer"


def read_answer_prefixed(sock: socket.socket, prefix: bytes) -> tuple[int, dict, bytes]:
    class Prefixed:
        def __init__(self) -> None:
            self.first = prefix

        def recv(self, size: int) -> bytes:
            if self.first:
                first, self.first = self.first, b""
                return first
            return sock.recv(size)
    return read_answer(Prefixed())  # type: ignore[arg-type]


def slow_clients(server: Server, count: int, seconds: float) -> tuple[str, float, str]:
    sockets, closed = [], 0
    started = time.monotonic()
    for _ in range(count):
        try:
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=2)
            sock.sendall(b"POST /api/v2/jobs HTTP/1.1\r\nHost: x\r\n")
            sockets.append(sock)
        except OSError:
            break
    worst, failures, line = 0.0, 0, 0
    while time.monotonic() - started < seconds:
        line += 1
        for sock in sockets:
            if sock.fileno() < 0:
                continue
            try:
                sock.sendall(f"X-Slow-{line}: {line}\r\n".encode())
            except OSError:
                sock.close()
                closed += 1
        probe = time.monotonic()
        try:
            status = http(server.port, "GET", "/healthz", timeout=5)[0]
            if status != 200:
                failures += 1
        except OSError:
            failures += 1
        worst = max(worst, time.monotonic() - probe)
        time.sleep(max(0.0, 1 - (time.monotonic() - probe)))
    for sock in sockets:
        sock.close()
    return (f"/healthz worst {worst:.2f} s, {failures} failed", time.monotonic() - started,
            f"{len(sockets)} connected, {closed} closed by the server within {seconds:g} s")


def big_png() -> bytes:
    from PIL import Image
    buffer = io.BytesIO()
    Image.new("1", (16000, 16000)).save(buffer, "PNG")
    return buffer.getvalue()


def frames_too_large(server: Server, copies: int) -> tuple[str, float, str]:
    body, headers = multipart("video", "huge.mp4", big_png())
    started = time.monotonic()
    with ThreadPoolExecutor(copies) as pool:
        answers = list(pool.map(lambda _: http(server.port, "POST", "/api/v2/analyze", body,
                                               {**headers, **auth()}, timeout=300), range(copies)))
    return ", ".join(sorted({f"{status} {code_of(body)}" for status, _, body in answers})), \
        time.monotonic() - started, f"{len(body) // 1024} KB file"


def healthz_busy(server: Server) -> tuple[str, float, str]:
    payload = json.dumps({"sample": "busy", "max_frames": 40}).encode()
    started = time.monotonic()
    worst, failures = 0.0, 0
    with ThreadPoolExecutor(20) as pool:
        futures = [pool.submit(http, server.port, "POST", "/api/v2/analyze", payload,
                               {"Content-Type": "application/json", **auth()}, 600) for _ in range(20)]
        time.sleep(2)
        for _ in range(12):
            probe = time.monotonic()
            try:
                if http(server.port, "GET", "/healthz", timeout=30)[0] != 200:
                    failures += 1
            except OSError:
                failures += 1
            worst = max(worst, time.monotonic() - probe)
            time.sleep(max(0.0, 1 - (time.monotonic() - probe)))
        statuses = sorted({future.result()[0] for future in futures})
    return f"/healthz worst {worst:.2f} s, {failures} failed", time.monotonic() - started, \
        f"analyses answered {statuses}"


def one(server: Server, *args, **kwargs) -> tuple[str, float, str]:
    started = time.monotonic()
    status, headers, body = http(server.port, *args, **kwargs)
    secure = "security headers" if "content-security-policy" in headers else "no security headers"
    return f"{status} {code_of(body)}", time.monotonic() - started, \
        f"{headers.get('content-type', '-')}; {secure}; {body[:70]!r}"


def store_immutable(server: Server) -> tuple[str, float, str]:
    store = server.data / "jobs.sqlite3"
    started = time.monotonic()
    if subprocess.run(["chattr", "+i", str(store)], capture_output=True).returncode:
        return "skipped (chattr +i not possible)", 0.0, ""
    try:
        ready = http(server.port, "GET", "/readyz")
        payload = json.dumps({"sample": "busy", "max_frames": 1}).encode()
        job = http(server.port, "POST", "/api/v2/jobs", payload, {"Content-Type": "application/json", **auth()})
    finally:
        subprocess.run(["chattr", "-i", str(store)])
    return f"/readyz {ready[0]} {code_of(ready[2])}", time.monotonic() - started, \
        f"job submission {job[0]} {code_of(job[2])}"


def signal_at_start(repo: Path, root: Path, samples: Path) -> tuple[str, float, str]:
    other = Server(repo, root, "interrupted")
    other.launch(samples)
    started = time.monotonic()
    locks = other.data / "instances"
    while time.monotonic() - started < 60 and not (locks.is_dir() and any(locks.glob("*.lock"))):
        time.sleep(0.05)
    time.sleep(1.0)                 # inside the model loading
    other.process.send_signal(signal.SIGTERM)
    code = other.process.wait(120)
    left = [str(path.relative_to(other.data)) for path in other.data.rglob("*")
            if path.parent.name in ("instances", "tmp")]
    traceback = "Traceback" in other.log.read_text()
    return f"exit {code}", time.monotonic() - started, \
        f"left: {left or 'nothing'}; traceback in log: {traceback}"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, default=REPO)
    parser.add_argument("--body-mb", type=int, default=1000)
    parser.add_argument("--slow-clients", type=int, default=200)
    parser.add_argument("--slow-seconds", type=float, default=25)
    parser.add_argument("--only", nargs="*")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="hostile-"))
    samples = root / "samples"
    (samples / "busy").mkdir(parents=True)
    frames = sorted((REPO / "samples" / "seqA").glob("*.jpg"))
    for number in range(40):
        shutil.copy(frames[number % len(frames)], samples / "busy" / f"{number:04d}.jpg")
    server = Server(args.repo.resolve(), root)
    print(f"server from {args.repo.resolve()}; load {open('/proc/loadavg').read().split()[:3]}", flush=True)
    server.launch(samples)
    server.wait_ready()
    probes = {
        "body-no-token": lambda: streamed_body(server, args.body_mb, {}),
        "body-too-large": lambda: streamed_body(server, 300, auth()),
        "slow-clients": lambda: slow_clients(server, args.slow_clients, args.slow_seconds),
        "frame-16000": lambda: frames_too_large(server, 1),
        "frame-16000-x4": lambda: frames_too_large(server, 4),
        "healthz-busy": lambda: healthz_busy(server),
        "json-deep": lambda: one(server, "POST", "/api/v2/analyze", b"[" * 100_000 + b"]" * 100_000,
                                 {"Content-Type": "application/json", **auth()}),
        "long-filename": lambda: one(server, "POST", "/api/v2/analyze", *_long_filename()),
        "bad-request-line": lambda: one(server, "", "", raw=b"GARBAGE\x01 / HTTP/1.1\r\nHost: x\r\n\r\n"),
        "header-431": lambda: one(server, "GET", "/api/v2/samples", headers={"X-Big": "a" * 300_000, **auth()}),
        "store-immutable": lambda: store_immutable(server),
        "signal-at-start": lambda: signal_at_start(args.repo.resolve(), root, samples),
    }
    rows = []
    try:
        for name, probe in probes.items():
            if args.only and name not in args.only:
                continue
            with Peaks(server) as peaks:
                try:
                    answer, seconds, note = probe()
                except Exception as error:           # a probe that breaks is a row, not the end of the run
                    answer, seconds, note = f"probe failed: {type(error).__name__}", 0.0, str(error)[:80]
            rows.append(Row(name, answer, seconds, peaks.rss, peaks.disk, note))
            print(f"  {name}: {answer} ({seconds:.1f} s)", flush=True)
            time.sleep(1)
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
    print()
    print("| probe | answer | time | peak RSS | peak disk | note |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row.probe} | {row.answer} | {row.seconds:.1f} s | {row.rss_mb:.0f} MB | {row.disk_mb:.0f} MB "
              f"| {row.note} |")


def _long_filename() -> tuple[bytes, dict]:
    body, headers = multipart("video", "a" * 1_000_000 + ".mp4", b"x" * 100)
    return body, {**headers, **auth()}


if __name__ == "__main__":
    main()
