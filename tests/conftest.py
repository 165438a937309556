"""Shared fixtures: one prepared analyzer for the whole run (model loading is the slow part)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SAMPLES = REPO / "samples"
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def analyzer():
    from faceanalysis.pipeline.analyzer import FaceAnalyzer
    return FaceAnalyzer().prepare()


@pytest.fixture(scope="session")
def sample_results(analyzer):
    return {name: analyzer.analyse_folder(SAMPLES / name) for name in ("seqA", "seqB")}


@pytest.fixture()
def samples_dir(tmp_path):
    """A private samples/ holding seqA's first frames, to add broken sequences to."""
    root = tmp_path / "samples"
    (root / "seqA").mkdir(parents=True)
    for frame in sorted((SAMPLES / "seqA").glob("*.jpg"))[:4]:
        shutil.copy(frame, root / "seqA" / frame.name)
    return root


@pytest.fixture()
def client(analyzer, samples_dir):
    from faceanalysis.service.web import create_app
    return create_app(analyzer, samples_dir).test_client()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    """flaskMain.py as a user starts it, on a free loopback port; yields its base URL."""
    port = free_port()
    # The log goes to a file: a pipe nobody reads would block the server once it fills.
    log = tempfile.TemporaryFile("w+")
    process = subprocess.Popen([sys.executable, "flaskMain.py", "--port", str(port)], cwd=REPO,
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"},
                               stdout=log, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    while time.time() < deadline:
        if process.poll() is not None:
            log.seek(0)
            pytest.fail(f"server exited: {log.read()[-4000:]}")
        try:
            urllib.request.urlopen(f"{url}/seqPath/nope", timeout=2)
        except urllib.error.HTTPError as error:
            if error.code == 404:
                break
        except OSError:
            time.sleep(0.5)
    else:
        process.kill()
        pytest.fail("server did not start in 180 s")
    yield url
    process.terminate()
    process.wait(timeout=30)
    log.close()
