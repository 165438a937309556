"""Concurrent clients against a real server (flaskMain.py, waitress): no 5xx, and every answer as when alone.

A short version of ``bench/loadtest.py``: LOAD_CLIENTS clients (default 20) for
LOAD_SECONDS (default 15), on samples cut to LOAD_FRAMES frames (default 5) so
that one analysis takes a fraction of a second on a small CPU and many requests
overlap. The full run is ``python bench/loadtest.py`` (20 clients, 60 s, full samples).
"""

from __future__ import annotations

import os
import shutil
import urllib.request

import pytest

from bench.loadtest import LEGACY_CALLS, V2_CALL, run_load, serve
from conftest import SAMPLES

CLIENTS = int(os.environ.get("LOAD_CLIENTS", "20"))
SECONDS = float(os.environ.get("LOAD_SECONDS", "15"))
FRAMES = int(os.environ.get("LOAD_FRAMES", "5"))


@pytest.fixture(scope="module")
def small_samples(tmp_path_factory):
    root = tmp_path_factory.mktemp("load") / "samples"
    for name in ("seqA", "seqB"):
        (root / name).mkdir(parents=True)
        for frame in sorted((SAMPLES / name).glob("*.jpg"))[:FRAMES]:
            shutil.copy(frame, root / name / frame.name)
    return root


def test_concurrent_clients_get_no_5xx_and_identical_answers(small_samples, tmp_path):
    log_path = tmp_path / "server.log"
    with serve(small_samples, threads=4, log_path=log_path) as server:
        stats = run_load(server.url, LEGACY_CALLS + (V2_CALL,), clients=CLIENTS, seconds=SECONDS,
                         max_requests=5000, timeout=300)
        summary = stats.summary()
        print(summary)
        assert stats.server_errors == 0, summary
        assert stats.connection_errors == 0, summary
        assert stats.mismatches == [], summary
        # Every client got answers, and every kind of request was made.
        assert stats.done >= CLIENTS, summary
        assert set(summary["per_request"]) == {call.label for call in (*LEGACY_CALLS, V2_CALL)}
        with urllib.request.urlopen(f"{server.url}/healthz", timeout=30) as response:
            assert response.status == 200
    log = log_path.read_text()
    assert "Traceback" not in log, log[-3000:]
