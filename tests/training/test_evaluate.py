"""evaluate.py end to end: on a small labelled subset of the shared data (skipped when it is absent), and on
what it cannot score (samples/seqA, a blank frame and a broken file; no research data needed)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import needs_data
from training.data import FER2013, SHARED_DATA, UTKFACE, missing_labels

REPO = Path(__file__).resolve().parents[2]
SEQ_A = REPO / "samples" / "seqA"
needs_labels = needs_data(None if missing_labels(FER2013) is None and missing_labels(UTKFACE) is None
                          else f"labelled data not found at {SHARED_DATA}")

COLUMNS = ["file", "age", "gender", "emotion", "split"]


def spread(rows: list[dict], count: int) -> list[dict]:
    """``count`` rows evenly spaced over the file, so every class and age range shows up."""
    return rows[::max(1, len(rows) // count)][:count]


def read_rows(name: str) -> list[dict]:
    with open(SHARED_DATA / name / "labels.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def write_labels(folder: Path, rows: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "labels.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows({key: row.get(key, "") for key in COLUMNS} for row in rows)
    return folder


def run_evaluate(data: Path, out: Path, *extra: str) -> dict:
    command = [sys.executable, str(REPO / "evaluate.py"), "--data", str(data), "--out", str(out), *extra]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def crops_report(tmp_path_factory):
    """40 FER2013 dev + 40 UTKFace crops in one labels.csv, with absolute paths into the shared data."""
    fer = read_rows("fer2013")
    dev = [{"file": str(FER2013 / row["file"]), "emotion": row["emotion"], "split": "dev"}
           for row in fer if row["split"] == "dev"]
    train = [{"file": str(FER2013 / row["file"]), "emotion": row["emotion"], "split": "train"}
             for row in fer if row["split"] == "train"]
    utk = [{"file": str(UTKFACE / row["file"]), "age": row["age"], "gender": row["gender"], "split": "dev"}
           for row in read_rows("utkface")]
    # Train rows are there to be filtered out by --split dev.
    folder = write_labels(tmp_path_factory.mktemp("crops"), spread(dev, 40) + spread(utk, 40) + spread(train, 5))
    out = folder / "out" / "report.json"
    return run_evaluate(folder, out, "--faces-given", "--split", "dev", "--batch-size", "32"), out


@needs_labels
def test_report_counts_and_provenance(crops_report):
    report, out = crops_report
    assert report["n"] == 80 and report["counts"] == {"rows": 80, "sequences": 0, "images": 80}
    assert report["no_face"] == 0 and report["unreadable"] == 0       # faces given: nothing to miss
    assert report["age_n"] == report["gender_n"] == report["emotion_n"] == 40
    assert report["faces_given"] is True and report["split"] == "dev"
    assert "evaluate.py" in report["command"] and report["date"][:2] == "20"
    assert {"age", "gender", "expression", "detector_pnet"} <= set(report["models"])
    assert all(len(model["sha256"]) == 64 for model in report["models"].values())


@needs_labels
def test_report_metrics_are_plausible(crops_report):
    report, _ = crops_report
    # Bounds far below the full-set baselines (docs/evaluation.md) but far above chance.
    assert 0.35 <= report["emotion_acc"] <= 1            # chance is ~0.25 (always "happy")
    assert 0 < report["emotion_macro_f1"] <= report["emotion_acc"] + 0.2
    assert report["gender_acc"] >= 0.7
    assert 0 < report["age_mae"] < 15
    assert 0.2 <= report["age_within5"] <= 1
    assert [band["band"] for band in report["age_bands"]] == ["0-12", "13-19", "20-39", "40-59", "60+"]
    assert sum(band["n"] for band in report["age_bands"]) == 40
    assert sum(band["n"] for band in report["gender_acc_by_age_band"]) == 40


@needs_labels
def test_confusion_matrix_agrees_with_accuracy(crops_report):
    report, _ = crops_report
    matrix = np.asarray(report["emotion_confusion"])
    assert report["emotion_labels"] == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert matrix.shape == (7, 7) and matrix.sum() == 40
    assert np.trace(matrix) / 40 == pytest.approx(report["emotion_acc"])
    supports = [report["emotion_per_class"][label]["support"] for label in report["emotion_labels"]]
    assert supports == matrix.sum(axis=1).tolist()


@needs_labels
def test_plots_and_predictions_are_written(crops_report):
    report, out = crops_report
    for name in ("report_confusion.png", "report_age.png"):
        path = out.parent / name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
    with open(out.parent / "report_predictions.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 80 and all(row["status"] == "ok" for row in rows)
    assert sum(row["emotion"] == row["pred_emotion"] for row in rows) == round(report["emotion_acc"] * 40)


def test_full_pipeline_reports_what_it_cannot_score(tmp_path):
    """Without --faces-given: a sequence folder, a frame with no face and a broken file."""
    import cv2
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((240, 320, 3), 128, np.uint8))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    rows = [{"file": str(SEQ_A), "gender": "female", "emotion": "happy"},   # the smiling astronaut
            {"file": "blank.png", "gender": "male", "emotion": "neutral"},
            {"file": "broken.jpg", "age": "30"}]
    report = run_evaluate(write_labels(tmp_path, rows), tmp_path / "full.json")
    assert report["n"] == 3 and report["counts"]["sequences"] == 1
    assert report["no_face"] == 1 and report["unreadable"] == 1
    assert {(item["file"], item["status"]) for item in report["failed_examples"]} == {
        ("blank.png", "no_face"), ("broken.jpg", "unreadable")}
    # seqA is right on both; the blank frame counts as wrong, not as left out
    assert report["gender_acc"] == 0.5 and report["emotion_acc"] == 0.5
    assert report["age_n"] == 1 and report["age_mae"] is None and report["age_within5"] == 0.0
    assert (tmp_path / "full_confusion.png").is_file()
