"""Load test: many concurrent clients against a real server; no 5xx, and every answer the same as alone.

    python -m bench.loadtest [--clients 20] [--seconds 60] [--v2] [--url http://127.0.0.1:PORT]

Without ``--url`` it starts ``flaskMain.py`` on a loopback port it binds itself (``--threads``
waitress threads, ``--samples`` folder) and stops it afterwards. With ``--url``
it targets a server already running, which must be on the loopback interface.

First one client fetches each request alone: that answer is the reference.
Then ``--clients`` threads send requests for ``--seconds``, mixing
``GET /seqPath/test`` and ``GET /seqPath/seqB`` (and ``POST /api/v2/analyze
{"sample": "seqA"}`` with ``--v2``). A client starts no request after the
deadline or after ``--max-requests`` in total; requests already sent are
waited for (each at most ``--timeout`` s), so the run ends by
``seconds + timeout`` at the latest. The v2 answer is compared without
``meta.timings_ms``, which differs on every run by nature.

It prints requests done, errors by status, latency p50/p95/p99/max and
throughput, and exits non-zero on any 5xx, connection error or answer that
differs from the reference. The server analyses one request at a time (the
models are shared, see README), so latency grows with the number of clients:
p95 is about clients x the time of one analysis.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import types
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class Call:
    """One kind of request: method, path and an optional JSON body."""
    method: str
    path: str
    body: dict | None = None

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}" + (f" {json.dumps(self.body)}" if self.body is not None else "")


LEGACY_CALLS = (Call("GET", "/seqPath/test"), Call("GET", "/seqPath/seqB"))
V2_CALL = Call("POST", "/api/v2/analyze", {"sample": "seqA"})


def request(base_url: str, call: Call, timeout: float) -> tuple[int, bytes]:
    """Send one request; an HTTP error status is an answer, not an exception."""
    data, headers = None, {}
    if call.body is not None:
        data, headers = json.dumps(call.body).encode(), {"Content-Type": "application/json"}
    req = urllib.request.Request(base_url + call.path, data=data, headers=headers, method=call.method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def normalise(call: Call, body: bytes):
    """The part of an answer that must not change from one request to the next."""
    try:
        answer = json.loads(body)
    except ValueError:
        return body
    if call.path.startswith("/api/v2/") and isinstance(answer, dict) and isinstance(answer.get("meta"), dict):
        answer["meta"].pop("timings_ms", None)     # wall-clock timings differ on every run
    return answer


def check_loopback(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or parts.hostname not in LOOPBACK:
        raise SystemExit(f"refusing {url!r}: the load test only targets http:// servers on the loopback interface")
    return url.rstrip("/")


@dataclass
class Stats:
    latencies: list[float] = field(default_factory=list)      # seconds, every answered request
    statuses: Counter = field(default_factory=Counter)        # status code (or exception name) -> count
    per_call: Counter = field(default_factory=Counter)
    mismatches: list[str] = field(default_factory=list)
    issued: int = 0
    elapsed: float = 0.0
    server_tracebacks: int = 0                                # counted in the log of a server started here

    @property
    def done(self) -> int:
        return len(self.latencies)

    @property
    def server_errors(self) -> int:
        return sum(count for status, count in self.statuses.items() if isinstance(status, int) and status >= 500)

    @property
    def connection_errors(self) -> int:
        return sum(count for status, count in self.statuses.items() if not isinstance(status, int))

    @property
    def ok(self) -> bool:
        return (not self.server_errors and not self.connection_errors and not self.mismatches
                and not self.server_tracebacks and self.done > 0)

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return float("nan")
        rank = max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))   # nearest rank
        return ordered[rank]

    def summary(self) -> dict:
        return {
            "requests_issued": self.issued, "requests_done": self.done,
            "statuses": {str(status): count for status, count in sorted(self.statuses.items(), key=str)},
            "per_request": dict(self.per_call),
            "server_errors": self.server_errors, "connection_errors": self.connection_errors,
            "mismatches": len(self.mismatches), "first_mismatches": self.mismatches[:5],
            "server_tracebacks": self.server_tracebacks,
            "latency_s": {name: round(self.percentile(q), 3) for name, q in
                          (("p50", 50), ("p95", 95), ("p99", 99))} | {"max": round(max(self.latencies, default=0), 3)},
            "elapsed_s": round(self.elapsed, 1),
            "throughput_rps": round(self.done / self.elapsed, 3) if self.elapsed else 0.0,
        }


def reference_answers(base_url: str, calls, timeout: float) -> dict:
    """Each call's answer with one client: what every later answer must equal."""
    reference = {}
    for call in calls:
        status, body = request(base_url, call, timeout)
        if status != 200:
            raise SystemExit(f"{call.label} answered {status} alone: {body[:300]!r}")
        reference[call.label] = normalise(call, body)
    return reference


def run_load(base_url: str, calls=LEGACY_CALLS, clients: int = 20, seconds: float = 60.0,
             max_requests: int = 10_000, timeout: float = 300.0, reference: dict | None = None) -> Stats:
    """``clients`` threads send ``calls`` in turn for ``seconds``; answers are checked against ``reference``."""
    base_url = check_loopback(base_url)
    calls = tuple(calls)
    if reference is None:
        reference = reference_answers(base_url, calls, timeout)
    stats = Stats()
    lock = threading.Lock()
    start = time.monotonic()
    deadline = start + seconds

    def client(number: int) -> None:
        turn = number        # clients start on different calls, so the mix is even from the first second
        while True:
            with lock:
                if time.monotonic() >= deadline or stats.issued >= max_requests:
                    return
                stats.issued += 1
            call = calls[turn % len(calls)]
            turn += 1
            sent = time.perf_counter()
            try:
                status, body = request(base_url, call, timeout)
            except (OSError, urllib.error.URLError) as error:   # refused, reset, timed out
                with lock:
                    stats.statuses[type(error).__name__] += 1
                continue
            latency = time.perf_counter() - sent
            answer = normalise(call, body)
            with lock:
                stats.latencies.append(latency)
                stats.statuses[status] += 1
                stats.per_call[call.label] += 1
                if status != 200 or answer != reference[call.label]:
                    stats.mismatches.append(f"{call.label}: HTTP {status} {body[:200]!r}")

    threads = [threading.Thread(target=client, args=(number,), name=f"client-{number}", daemon=True)
               for number in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        # Every request is bounded by ``timeout``, so this is too; the margin covers connection set-up.
        thread.join(timeout=max(0.0, deadline + timeout + 30 - time.monotonic()))
    stats.elapsed = time.monotonic() - start
    hung = [thread.name for thread in threads if thread.is_alive()]
    if hung:
        stats.statuses["hung_client"] += len(hung)
    return stats


@contextlib.contextmanager
def serve(samples: Path | None = None, threads: int = 4, start_timeout: float = 180.0, log_path: Path | None = None,
          extra_args: tuple[str, ...] = ()):
    """Start ``flaskMain.py`` on a loopback port of its choosing; yield its URL once /readyz is 200; stop it after.

    The server binds port 0 itself and writes the port it got to a file (``--port-file``): a port chosen
    here and bound there later could be taken by another process in between. The server's output goes to a
    file (``log_path`` or a temporary one), never to a pipe nobody reads, which would block the server once full.
    ``extra_args``: more flaskMain.py flags (a model choice).
    """
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="loadtest-")))
        log_path = log_path or workdir / "server.log"
        port_file = workdir / "port"
        command = [sys.executable, str(REPO / "flaskMain.py"), "--host", "127.0.0.1", "--port", "0",
                   "--port-file", str(port_file), "--threads", str(threads)]
        if samples is not None:
            command += ["--samples", str(samples)]
        command += list(extra_args)
        log_file = stack.enter_context(open(log_path, "w"))
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log_file, stderr=subprocess.STDOUT)
        try:
            url = wait_until_ready(process, port_file, log_path, start_timeout)
            yield types.SimpleNamespace(url=url, process=process, log_path=log_path)
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)


def wait_until_ready(process: subprocess.Popen, port_file: Path, log_path: Path, timeout: float) -> str:
    """The server's URL once its port file exists and /readyz answers 200. Every other outcome of a try (no
    file yet, connection refused, 503 while the models load) waits before the next, a little longer each time."""
    deadline = time.monotonic() + timeout
    url, pause = None, 0.1
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}: {log_path.read_text()[-3000:]}")
        if url is None and port_file.exists():
            url = f"http://127.0.0.1:{int(port_file.read_text())}"
        if url is not None:
            try:
                with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
                    if response.status == 200:
                        return url
            except OSError:          # URLError and HTTPError (503 not_ready) are OSErrors
                pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"server not ready in {timeout} s: {log_path.read_text()[-3000:]}")
        time.sleep(pause)
        pause = min(pause * 1.5, 1.0)


def print_report(stats: Stats, clients: int, seconds: float, calls) -> None:
    summary = stats.summary()
    print(f"clients {clients}, window {seconds:g} s, requests: {', '.join(call.label for call in calls)}")
    print(f"requests issued {summary['requests_issued']}, done {summary['requests_done']} "
          f"in {summary['elapsed_s']} s (window plus requests in flight)")
    print("by request:", ", ".join(f"{label}: {count}" for label, count in summary["per_request"].items()))
    print("statuses:", ", ".join(f"{status}: {count}" for status, count in summary["statuses"].items()))
    print(f"5xx: {summary['server_errors']}, connection errors: {summary['connection_errors']}, "
          f"answers differing from the single-client answer: {summary['mismatches']}")
    for line in summary["first_mismatches"]:
        print("  differs:", line)
    latency = summary["latency_s"]
    print(f"latency s: p50 {latency['p50']}, p95 {latency['p95']}, p99 {latency['p99']}, max {latency['max']}")
    print(f"throughput {summary['throughput_rps']} requests/s")


def load_parser(description: str, seconds_help: str, threads: int) -> argparse.ArgumentParser:
    """The options every load benchmark shares (this one and ``bench.jobload``): the target, the clients, the
    window, the server started here, the JSON copy of the figures."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="target this running server (loopback only) instead of starting one")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60.0, help=seconds_help)
    parser.add_argument("--threads", type=int, default=threads, help="waitress threads of the server started here")
    parser.add_argument("--samples", type=Path, help="samples folder of the server started here")
    parser.add_argument("--json", type=Path, help="also write the figures here as JSON")
    return parser


def parse_load_arguments(parser: argparse.ArgumentParser, argv) -> argparse.Namespace:
    args = parser.parse_args(argv)
    if not 1 <= args.clients <= 1000 or args.seconds <= 0:
        parser.error("--clients must be 1..1000 and --seconds > 0")
    if args.url:
        args.url = check_loopback(args.url)
    return args


def main(argv=None) -> int:
    parser = load_parser(__doc__, "how long clients start new requests", threads=4)
    parser.add_argument("--max-requests", type=int, default=10_000, help="requests in total, at most")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds one request may take")
    parser.add_argument("--v2", action="store_true", help='also POST /api/v2/analyze {"sample": "seqA"}')
    args = parse_load_arguments(parser, argv)
    if args.max_requests < 1:
        parser.error("--max-requests must be >= 1")
    calls = LEGACY_CALLS + ((V2_CALL,) if args.v2 else ())
    with contextlib.ExitStack() as stack:
        if args.url:
            url = args.url
        else:
            server = stack.enter_context(serve(args.samples, args.threads))
            url = server.url
            print(f"server started at {url} (waitress, {args.threads} threads)")
        started = time.perf_counter()
        reference = reference_answers(url, calls, args.timeout)
        alone = time.perf_counter() - started
        print(f"single-client reference: {len(calls)} requests in {alone:.1f} s ({alone / len(calls):.2f} s each)")
        stats = run_load(url, calls, args.clients, args.seconds, args.max_requests, args.timeout, reference)
        print_report(stats, args.clients, args.seconds, calls)
        if not args.url:
            stats.server_tracebacks = server.log_path.read_text().count("Traceback")
            print(f"tracebacks in the server log: {stats.server_tracebacks}")
        if args.json:
            args.json.write_text(json.dumps({"clients": args.clients, "seconds": args.seconds,
                                             "single_request_s": round(alone / len(calls), 3),
                                             **stats.summary()}, indent=2))
    return 0 if stats.ok else 1


if __name__ == "__main__":
    sys.exit(main())
