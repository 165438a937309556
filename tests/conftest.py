"""Shared fixtures: one prepared analyzer for the whole run (model loading is the slow part)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SAMPLES = REPO / "samples"
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def analyzer():
    from faceanalysis.analyzer import FaceAnalyzer
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
    from faceanalysis.web import create_app
    return create_app(analyzer, samples_dir).test_client()
