"""Job load test: many clients submitting background jobs and polling them, against a real server.

    python -m bench.jobload [--clients 20] [--seconds 60] [--queue-size 8] [--url http://127.0.0.1:PORT]

Without ``--url`` it starts ``flaskMain.py`` (``bench.loadtest.serve``) on a free loopback port with a data
folder of its own, so no other server's jobs share its queue, and stops it afterwards.

Each client, until the window closes: submits a job (``POST /api/v2/jobs``, a sample cut to ``--max-frames``
frames), and on 202 polls it every ``--poll`` s until it ends; on 429 it waits ``--backoff`` s and submits again.
Every accepted job must finish ``done`` with the answer a direct analysis gives (``timings_ms`` aside), however
long after the window that takes: a job that never ends, fails or answers differently is *lost*.

A 429 must mean the queue was full. The server decides at some moment between the request being sent and its
answer arriving; the jobs waiting then were all submitted before that moment and seen finished after it. So
for every 429 at least ``--queue-size`` jobs must be *outstanding* over its interval (sent before its answer
came, seen finished after it was sent); a 429 with fewer is reported as unjustified.

It prints jobs accepted, done, lost, 429s (and unjustified ones), statuses, job latency (accepted to seen
done) p50/p95/max and throughput, and exits non-zero on any 5xx, connection error, lost job or unjustified 429.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.loadtest import Call, Stats, check_loopback, load_parser, normalise, parse_load_arguments, request, serve

SAMPLES = ("seqA", "seqB")


@dataclass
class JobRecord:
    sample: str
    sent: float                         # when the submission was sent (monotonic)
    accepted: float                     # when its 202 arrived
    finished_seen: float | None = None  # when a poll first saw it done or failed
    status: str | None = None
    same_answer: bool | None = None


@dataclass
class JobStats(Stats):
    """``Stats``' status counts (every answer's status, or the exception's name), and the jobs."""
    jobs: dict[str, JobRecord] = field(default_factory=dict)
    refusals: list[tuple[float, float]] = field(default_factory=list)    # (sent, answered) of each 429
    queue_size: int = 8

    @property
    def lost(self) -> list[str]:
        return [job_id for job_id, job in self.jobs.items() if job.status != "done" or not job.same_answer]

    def unjustified_refusals(self) -> int:
        """429s with fewer than ``queue_size`` jobs outstanding over their interval (see the module doc)."""
        wrong = 0
        for sent, answered in self.refusals:
            outstanding = sum(1 for job in self.jobs.values() if job.sent < answered
                              and (job.finished_seen is None or job.finished_seen > sent))
            wrong += outstanding < self.queue_size
        return wrong

    @property
    def ok(self) -> bool:
        return (not self.server_errors and not self.connection_errors and not self.lost
                and not self.unjustified_refusals() and bool(self.jobs))

    def summary(self) -> dict:
        waits = sorted(job.finished_seen - job.accepted for job in self.jobs.values() if job.finished_seen)

        def rank(q: float) -> float:
            return round(waits[min(len(waits) - 1, int(q / 100 * len(waits)))], 2) if waits else float("nan")
        return {
            "jobs_accepted": len(self.jobs), "jobs_done": sum(job.status == "done" for job in self.jobs.values()),
            "jobs_lost": len(self.lost), "refused_429": len(self.refusals),
            "unjustified_429": self.unjustified_refusals(),
            "statuses": {str(status): count for status, count in sorted(self.statuses.items(), key=str)},
            "server_errors": self.server_errors, "connection_errors": self.connection_errors,
            "job_latency_s": {"p50": rank(50), "p95": rank(95), "max": round(waits[-1], 2) if waits else None},
            "elapsed_s": round(self.elapsed, 1),
            "jobs_per_s": round(len(waits) / self.elapsed, 3) if self.elapsed else 0.0,
        }


def references(base_url: str, max_frames: int, timeout: float) -> dict[str, object]:
    """Each sample's direct answer (``POST /api/v2/analyze``), as a job must answer it."""
    answers = {}
    for sample in SAMPLES:
        call = Call("POST", "/api/v2/analyze", {"sample": sample, "max_frames": max_frames})
        status, body = request(base_url, call, timeout)
        if status != 200:
            raise SystemExit(f"{call.label} answered {status}: {body[:300]!r}")
        answers[sample] = normalise(call, body)
    return answers


def run_job_load(base_url: str, clients: int = 20, seconds: float = 60.0, queue_size: int = 8,
                 max_frames: int = 3, poll: float = 0.2, backoff: float = 0.5, timeout: float = 600.0,
                 reference: dict | None = None) -> JobStats:
    base_url = check_loopback(base_url)
    reference = reference or references(base_url, max_frames, timeout)
    stats = JobStats(queue_size=queue_size)
    lock = threading.Lock()
    start = time.monotonic()
    deadline = start + seconds

    def answer(call: Call) -> tuple[int | None, bytes]:
        try:
            status, body = request(base_url, call, timeout)
        except OSError as error:             # refused, reset, timed out
            with lock:
                stats.statuses[type(error).__name__] += 1
            return None, b""
        with lock:
            stats.statuses[status] += 1
        return status, body

    def follow(job_id: str, sample: str) -> None:
        """Poll until the job ends; a poll that fails is retried until ``timeout``."""
        give_up = time.monotonic() + timeout
        while time.monotonic() < give_up:
            status, body = answer(Call("GET", f"/api/v2/jobs/{job_id}"))
            state = json.loads(body) if status == 200 else None
            if state is not None and state["status"] in ("done", "failed"):
                seen = time.monotonic()
                same = state["status"] == "done" and normalise(V2, json.dumps(state["result"]).encode()) \
                    == reference[sample]
                with lock:
                    job = stats.jobs[job_id]
                    job.finished_seen, job.status, job.same_answer = seen, state["status"], same
                return
            time.sleep(poll)

    def client(number: int) -> None:
        turn = number
        while time.monotonic() < deadline:
            sample = SAMPLES[turn % len(SAMPLES)]
            turn += 1
            sent = time.monotonic()
            status, body = answer(Call("POST", "/api/v2/jobs", {"sample": sample, "max_frames": max_frames}))
            answered = time.monotonic()
            if status == 202:
                job_id = json.loads(body)["id"]
                with lock:
                    stats.jobs[job_id] = JobRecord(sample, sent, answered)
                follow(job_id, sample)
            elif status == 429:
                with lock:
                    stats.refusals.append((sent, answered))
                time.sleep(backoff)
            else:
                time.sleep(backoff)

    threads = [threading.Thread(target=client, args=(number,), name=f"job-client-{number}", daemon=True)
               for number in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=max(0.0, deadline + 2 * timeout - time.monotonic()))
    stats.elapsed = time.monotonic() - start
    hung = sum(thread.is_alive() for thread in threads)
    if hung:
        stats.statuses["hung_client"] += hung
    return stats


V2 = Call("POST", "/api/v2/analyze")         # how a job's result is normalised: as a v2 answer


@contextlib.contextmanager
def private_server(threads: int, samples: Path | None, log_path: Path | None = None):
    """``bench.loadtest.serve`` with a data folder of its own (``FACE_DATA_DIR``, removed afterwards)."""
    with tempfile.TemporaryDirectory(prefix="jobload-") as data:
        previous = os.environ.get("FACE_DATA_DIR")
        os.environ["FACE_DATA_DIR"] = data
        try:
            with serve(samples, threads, log_path=log_path) as server:
                yield server
        finally:
            if previous is None:
                os.environ.pop("FACE_DATA_DIR", None)
            else:
                os.environ["FACE_DATA_DIR"] = previous


def main(argv=None) -> int:
    parser = load_parser(__doc__, "how long clients submit new jobs", threads=8)
    parser.add_argument("--queue-size", type=int, default=8, help="the server's FACE_JOB_QUEUE_SIZE")
    parser.add_argument("--max-frames", type=int, default=3, help="frames per job")
    args = parse_load_arguments(parser, argv)
    with contextlib.ExitStack() as stack:
        url = args.url or stack.enter_context(private_server(args.threads, args.samples)).url
        stats = run_job_load(url, args.clients, args.seconds, args.queue_size, args.max_frames)
    summary = {"clients": args.clients, "seconds": args.seconds, **stats.summary()}
    print(json.dumps(summary, indent=1))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0 if stats.ok else 1


if __name__ == "__main__":
    sys.exit(main())
