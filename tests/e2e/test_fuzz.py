"""Fuzz the served OpenAPI contract with schemathesis against a real server: no 5xx, documented status codes.

Runs the schemathesis CLI (``requirements-dev.txt``) as a subprocess against
``flaskMain.py`` on a free loopback port, with the spec it serves at
/api/v2/openapi.json. Every operation gets up to FUZZ_EXAMPLES generated
cases (default 300; parameterless operations need only a few), valid and
invalid, plus schemathesis' coverage phase (boundary values of every
parameter). Checks: ``not_a_server_error`` and ``status_code_conformance``
(every status is one the spec lists), ``content_type_conformance`` and
``response_schema_conformance``. Afterwards the server must still be healthy
and give the same legacy answer as before. Skipped when schemathesis is not installed.

Generated sample names are almost never real ones, so nearly every case is
refused before any model runs; the samples are cut to a few frames anyway.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request

import pytest

from bench.loadtest import serve
from conftest import REPO, SAMPLES

pytest.importorskip("schemathesis")

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "300"))
MIN_CASES = int(os.environ.get("FUZZ_MIN_CASES", "1000"))
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=120) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.fixture(scope="module")
def small_samples(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz") / "samples"
    for name in ("seqA", "seqB"):
        (root / name).mkdir(parents=True)
        for frame in sorted((SAMPLES / name).glob("*.jpg"))[:3]:
            shutil.copy(frame, root / name / frame.name)
    return root


def test_schemathesis_finds_no_server_error_and_no_undocumented_status(small_samples, tmp_path):
    log_path = tmp_path / "server.log"
    report = tmp_path / "report.json"
    with serve(small_samples, threads=4, log_path=log_path) as server:
        before = fetch(f"{server.url}/seqPath/test")
        assert before[0] == 200, before
        command = [sys.executable, "-m", "schemathesis.cli", "run", f"{server.url}/api/v2/openapi.json",
                   "--checks", CHECKS, "--max-examples", str(EXAMPLES), "--seed", "20261125",
                   "--phases", "examples,coverage,fuzzing", "--workers", "1", "--request-timeout", "120",
                   "--generation-database", "none", "--max-failures", "50", "--no-color",
                   "--report", "json", "--report-json-path", str(report)]
        # cwd is the test's own folder, so nothing (reports, caches) lands in the repository.
        run = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=900,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
        output = run.stdout[-8000:] + run.stderr[-4000:]
        print(output)
        document = json.loads(report.read_text())
        cases = document["test_cases"]
        assert document["complete"] and not document["errors"], output
        assert document["failures"] == [], output
        assert cases["with_failures"] == 0 and cases["errored"] == 0, output
        assert cases["generated"] >= MIN_CASES, cases
        assert document["operations"]["tested"] == document["operations"]["total"], document["operations"]
        assert run.returncode == 0, output
        # Still alive, and still right.
        assert fetch(f"{server.url}/healthz")[0] == 200
        assert fetch(f"{server.url}/readyz")[0] == 200
        assert fetch(f"{server.url}/seqPath/test") == before
    log = log_path.read_text()
    assert "Traceback" not in log, log[-3000:]
