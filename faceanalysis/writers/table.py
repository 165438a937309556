"""The table writer: a result as columns of plain values, one row per person, per face, and one for the input.

These are what the batch tables (``faceanalysis.batch.tables``: Parquet, and CSV copies) and
``faceanalysis analyse --csv`` are written from. Values are the analyzer's own, unrounded (the v2 JSON rounds
them to 6 decimals); probabilities are named by the label vocabulary (``male``, ``female``, the seven
expressions); times are seconds from the start of the input (frame / ``fps``) beside the frame numbers;
frame numbers, ids and counts are ints. A landmark that is not known (a face given as a whole image) is None.
"""

from __future__ import annotations

import math

import numpy as np

from age.distribution import AgeDistribution
from faceanalysis.pipeline.result import SequenceResult
from facecore.labels import EXPRESSIONS, GENDERS

# Column order of each table, as the writers below fill them.
SOURCE_COLUMNS = ("frames_listed", "frames_read", "frames_skipped", "frames_without_face", "frames_ignored",
                  "truncated", "persons", "fps", "duration")
PERSON_COLUMNS = ("person", "primary", "frames_seen", "first_frame", "last_frame", "first_seconds",
                  "last_seconds", "spans", "age", "age_low", "age_high", *GENDERS, *EXPRESSIONS,
                  "dominant_expression", "mean_confidence")
FACE_COLUMNS = ("frame", "time", "frame_name", "person", "primary", "x1", "y1", "x2", "y2", "confidence",
                "landmarks", "age", "age_low", "age_high", *GENDERS, *EXPRESSIONS)


def source_row(result: SequenceResult, fps: float) -> dict:
    """What was read of the input, and how long it lasts at ``fps`` (listed frames / fps)."""
    read = result.source
    return {"frames_listed": read.listed, "frames_read": len(read.read), "frames_skipped": len(read.skipped),
            "frames_without_face": len(result.frames_without_face), "frames_ignored": len(read.ignored),
            "truncated": read.truncated, "persons": len(result.persons), "fps": fps, "duration": read.listed / fps}


def person_rows(result: SequenceResult, fps: float) -> list[dict]:
    """One row per listed person: spans as frames and seconds, the combined age with its interval, gender and
    expression probabilities, the dominant expression and the mean detection confidence."""
    rows = []
    for person in result.persons:
        summary = person.summary
        rows.append({
            "person": person.id, "primary": person.primary, "frames_seen": person.frames_seen,
            "first_frame": int(person.spans[0][0]), "last_frame": int(person.spans[-1][1]),
            "first_seconds": person.spans[0][0] / fps, "last_seconds": person.spans[-1][1] / fps,
            "spans": [{"first": int(first), "last": int(last), "first_seconds": first / fps,
                       "last_seconds": last / fps} for first, last in person.spans],
            "age": float(summary.age), "age_low": float(summary.age_interval[0]),
            "age_high": float(summary.age_interval[1]),
            **_named(GENDERS, summary.gender), **_named(EXPRESSIONS, summary.expression),
            "dominant_expression": summary.dominant_expression, "mean_confidence": float(person.mean_confidence)})
    return rows


def face_columns(result: SequenceResult, fps: float) -> dict:
    """One entry per face in ``FACE_COLUMNS`` order: numpy arrays (int64 frame numbers and ids, float64
    values, bool), lists for names and landmarks (5 points of {"x", "y"})."""
    faces = result.faces
    frame = np.asarray(faces.frame, np.int64)
    columns = {"frame": frame, "time": frame / fps, "frame_name": list(faces.frame_name),
               "person": np.asarray(faces.person, np.int64), "primary": np.asarray(faces.primary, bool)}
    for column, name in enumerate(("x1", "y1", "x2", "y2")):
        columns[name] = np.asarray(faces.boxes[:, column], np.float64)
    columns["confidence"] = np.asarray(faces.confidence, np.float64)
    columns["landmarks"] = [[{"x": _known(x), "y": _known(y)} for x, y in points]
                            for points in np.asarray(faces.landmarks, np.float64)]
    columns["age"] = np.asarray(faces.age_years, np.float64)
    ages = AgeDistribution()
    intervals = [ages.interval(distribution) for distribution in faces.age] if len(faces) else []
    columns["age_low"] = np.asarray([low for low, _ in intervals], np.float64)
    columns["age_high"] = np.asarray([high for _, high in intervals], np.float64)
    for labels, values in ((GENDERS, faces.gender), (EXPRESSIONS, faces.expression)):
        for column, label in enumerate(labels):
            columns[label] = np.asarray(values[:, column], np.float64)
    return columns


def _named(labels, values) -> dict:
    return {label: float(value) for label, value in zip(labels, values)}


def _known(value: float) -> float | None:
    return None if math.isnan(value) else float(value)
