"""Shared fixtures (one prepared analyzer for the whole run: model loading is the slow part) and the markers each
test folder sets (docs/testing.md):

- ``unit/``      one module's logic on hand-made values: no model, no server process, no research data -> ``pure``
- ``service/``   the HTTP service in process (Flask test client) with the real analyzer -> ``slow``
- ``models/``    the real networks, heads, detector and tracker on real faces, without HTTP -> ``slow``
- ``e2e/``       real server processes, the legacy scripts, the command line, the browser, crash/fuzz/load -> ``slow``
- ``training/``  the trainers and evaluate.py -> ``slow``
- ``batch/``     the batch runner, with Ray -> ``slow``, ``ray``

and, wherever they are, ``browser`` (a test using the ``browser`` fixture: Debian's Chromium) and ``needs_data``
(a test that reads ``../shared``; it skips, saying why, when that is absent).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
FOLDER_MARKERS = {"unit": ("pure",), "service": ("slow",), "models": ("slow",), "e2e": ("slow",),
                  "training": ("slow",), "batch": ("slow", "ray")}
# The repository (its packages) and every test folder are importable: the test helpers in tests/ (golden.py,
# service_process.py, ...) and the helpers one test file takes from another (``from test_api_v2 import
# primary``), across folders, whatever order pytest collects them in.
for folder in (REPO, TESTS, *(TESTS / name for name in FOLDER_MARKERS)):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
SAMPLES = REPO / "samples"
SHARED_DATA = REPO.parent / "shared" / "data"


def needs_data(reason: str | None):
    """Mark a test that reads research data or the shared clips (``../shared``): it carries ``needs_data``, and
    skips with ``reason`` when ``reason`` is not None (what is missing, and where it should be)."""
    def mark(test):
        return pytest.mark.skipif(reason is not None, reason=reason or "")(pytest.mark.needs_data(test))
    return mark


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
def temp_root(tmp_path, monkeypatch):
    """The system's temporary folder for this test alone: the service makes its upload folders (and, without a
    store, its data folder) in it, so a test can see whether anything is left behind."""
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


@pytest.fixture()
def client(analyzer, samples_dir):
    from faceanalysis.service.web import create_app
    return create_app(analyzer, samples_dir).test_client()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """flaskMain.py as a user starts it, on a loopback port it binds itself; yields its base URL once ready."""
    from service_process import Server
    workdir = tmp_path_factory.mktemp("server")
    running = Server(workdir / "data", workdir, None, "--threads", "4").start()
    try:
        yield running.url
    finally:
        running.stop()


HEAVY_FIXTURES = frozenset({"analyzer", "sample_results", "client", "server"})


def folder_of(item) -> str | None:
    relative = item.path.relative_to(TESTS).parts
    return relative[0] if len(relative) > 1 else None


# The files that take minutes (CI's --durations list), run first. Under pytest-xdist's --dist loadfile each worker
# takes whole files in collection order, so one of these collected last kept the other worker idle for minutes
# at the end of the suite. The sort is stable: pytest-randomly's order stays within each group.
LONG_FILES = ("tests/e2e/test_fuzz.py", "tests/models/test_lifespan_heads.py", "tests/training/test_ferplus.py",
              "tests/models/test_expression.py", "tests/batch/test_batch.py", "tests/e2e/test_shutdown.py",
              "tests/e2e/test_crash.py", "tests/e2e/test_load.py", "tests/models/test_heads.py",
              "tests/models/test_detector_equivalence.py")


def long_files_first(items) -> None:
    rank = {name: number for number, name in enumerate(LONG_FILES)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(LONG_FILES)))


def pytest_collection_modifyitems(items):
    long_files_first(items)
    for item in items:
        folder = folder_of(item)
        if folder not in FOLDER_MARKERS:
            raise pytest.UsageError(f"{item.nodeid} is not in one of the test folders {sorted(FOLDER_MARKERS)}")
        for marker in FOLDER_MARKERS[folder]:
            item.add_marker(marker)
        if folder == "unit":
            heavy = HEAVY_FIXTURES & set(item.fixturenames)
            if heavy:
                raise pytest.UsageError(f"{item.nodeid} is a unit test but uses {', '.join(sorted(heavy))}")
        if "browser" in item.fixturenames:
            item.add_marker("browser")


def pytest_terminal_summary(terminalreporter, config):
    # pytest-randomly says its seed in the header, which -q (CI's setting) hides: say it again at the end, where a
    # failure is read, so that the order can be repeated.
    if config.pluginmanager.hasplugin("randomly"):
        seed = config.getoption("randomly_seed")
        terminalreporter.write_line(f"test order: --randomly-seed={seed} repeats it, -p no:randomly runs the files' "
                                    "order")
