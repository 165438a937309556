"""Concurrent clients against a real server (flaskMain.py, waitress): no 5xx, every answer as when alone, and
background jobs mixed in: none lost, 429 only when the queue is full.

A short version of ``bench/loadtest.py`` and ``bench/jobload.py``, run at the same time on one server: LOAD_CLIENTS
clients (default 20), half asking the legacy and v2 endpoints and half submitting jobs and polling them, for
LOAD_SECONDS (default 15), on samples cut to LOAD_FRAMES frames (default 5) so that one analysis takes a fraction
of a second on a small CPU and many requests overlap. The full runs are ``python -m bench.loadtest`` and
``python -m bench.jobload`` (20 clients, 60 s).
"""

from __future__ import annotations

import os
import shutil
import threading
import urllib.request

import pytest

from bench.jobload import private_server, run_job_load
from bench.loadtest import LEGACY_CALLS, V2_CALL, run_load
from conftest import SAMPLES

CLIENTS = int(os.environ.get("LOAD_CLIENTS", "20"))
SECONDS = float(os.environ.get("LOAD_SECONDS", "15"))
FRAMES = int(os.environ.get("LOAD_FRAMES", "5"))
QUEUE_SIZE = 8                  # the server's default FACE_JOB_QUEUE_SIZE
# Enough job clients to fill the queue (one job running, QUEUE_SIZE waiting), so that 429s are seen.
JOB_CLIENTS = max(CLIENTS // 2, QUEUE_SIZE + 2)


@pytest.fixture(scope="module")
def small_samples(tmp_path_factory):
    root = tmp_path_factory.mktemp("load") / "samples"
    for name in ("seqA", "seqB"):
        (root / name).mkdir(parents=True)
        for frame in sorted((SAMPLES / name).glob("*.jpg"))[:FRAMES]:
            shutil.copy(frame, root / name / frame.name)
    return root


def test_concurrent_clients_and_jobs_get_no_5xx_identical_answers_and_lose_no_job(small_samples, tmp_path):
    log_path = tmp_path / "server.log"
    with private_server(threads=8, samples=small_samples, log_path=log_path) as server:
        jobs = {}
        submitting = threading.Thread(target=lambda: jobs.update(stats=run_job_load(
            server.url, clients=JOB_CLIENTS, seconds=SECONDS, queue_size=QUEUE_SIZE, max_frames=FRAMES, timeout=300)))
        submitting.start()
        stats = run_load(server.url, LEGACY_CALLS + (V2_CALL,), clients=CLIENTS - JOB_CLIENTS, seconds=SECONDS,
                         max_requests=5000, timeout=300)
        submitting.join()
        summary, job_summary = stats.summary(), jobs["stats"].summary()
        print(summary, job_summary)
        assert stats.server_errors == 0, summary
        assert stats.connection_errors == 0, summary
        assert stats.mismatches == [], summary
        # Every client got answers, and every kind of request was made.
        assert stats.done >= CLIENTS - JOB_CLIENTS, summary
        assert set(summary["per_request"]) == {call.label for call in (*LEGACY_CALLS, V2_CALL)}
        assert job_summary["server_errors"] == 0 and job_summary["connection_errors"] == 0, job_summary
        assert job_summary["jobs_lost"] == 0, jobs["stats"].lost
        assert job_summary["unjustified_429"] == 0, job_summary
        assert job_summary["jobs_done"] == job_summary["jobs_accepted"] >= QUEUE_SIZE, job_summary
        with urllib.request.urlopen(f"{server.url}/healthz", timeout=30) as response:
            assert response.status == 200
    log = log_path.read_text()
    assert log.count("Traceback") == log.count("--- Logging error ---"), log[-3000:]
