"""Shared fixtures: one prepared analyzer for the whole run (model loading is the slow part)."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
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
    from bench.loadtest import serve
    with serve(log_path=tmp_path_factory.mktemp("server") / "server.log") as running:
        yield running.url


# Test files that load no model, start no server and read no research data: the fast selection
# (`pytest -m pure`, a few seconds), which tests/mutation.py runs against every mutant.
PURE_FILES = frozenset({"test_aggregate.py", "test_age_interval.py", "test_frames.py", "test_inputs.py",
                        "test_formats.py", "test_service_rules.py", "test_metrics.py", "test_tracking.py",
                        "test_tracking_rules.py", "test_tracking_metrics.py", "test_lifespan.py",
                        "test_lifespan_metrics.py", "test_batch_rules.py",
                        "test_person_head.py", "test_runtime_shutdown.py",
                        "test_frame_limit.py", "test_referrer_policy.py", "test_shutdown_refusal.py",
                        "test_hostile_rules.py",
                        "test_working_resolution_rules.py", "test_ferplus_rules.py",
                        "test_person_rules.py", "test_real_footage_metrics.py", "test_real_footage_truth.py"})
HEAVY_FIXTURES = frozenset({"analyzer", "sample_results", "client", "server"})


def pytest_collection_modifyitems(items):
    for item in items:
        if item.path.name in PURE_FILES:
            heavy = HEAVY_FIXTURES & set(item.fixturenames)
            if heavy:
                raise pytest.UsageError(f"{item.nodeid} is in a pure file but uses {', '.join(sorted(heavy))}")
            item.add_marker(pytest.mark.pure)


def pytest_terminal_summary(terminalreporter, config):
    # pytest-randomly says its seed in the header, which -q (CI's setting) hides: say it again at the end, where a
    # failure is read, so that the order can be repeated.
    if config.pluginmanager.hasplugin("randomly"):
        seed = config.getoption("randomly_seed")
        terminalreporter.write_line(f"test order: --randomly-seed={seed} repeats it, -p no:randomly runs the files' "
                                    "order")
