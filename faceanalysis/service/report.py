"""The API v2 answer: persons tracked across frames, an optional per-frame timeline, and metadata.

Plain floats and named labels only (no legacy numeric codes, no strings for
numbers). Each person's answer comes from the analyzer's own aggregator
(``FaceAnalyzer.summarise``), the same rule as the legacy sequence answer.
"""

from __future__ import annotations

import math

import numpy as np

from emotion import EXPRESSIONS
from gender.network import LABELS as GENDERS

from faceanalysis.pipeline.analyzer import FaceAnalyzer
from faceanalysis.pipeline.result import FaceSummary, FaceTable, SequenceResult
from faceanalysis.pipeline.tracking import Tracker

DECIMALS = 6     # enough for probabilities; keeps answers short and stable across runs


def build_report(analyzer: FaceAnalyzer, result: SequenceResult, tracker: Tracker, timeline: bool,
                 request_meta: dict) -> dict:
    faces = result.faces
    rank = {index: position for position, (index, _) in enumerate(result.read_frames)}
    person = tracker.assign(np.asarray([rank[index] for index in faces.frame], dtype=np.int64), faces.boxes)
    report = {"persons": _persons(analyzer, faces, person)}
    if timeline:
        report["timeline"] = _timeline(result, person)
    report["meta"] = {
        **request_meta,
        "frames": {
            "listed": result.frames_listed,
            "read": result.frames_read,
            "skipped": [{"name": name, "reason": reason} for name, reason in result.skipped],
            "ignored": list(result.ignored_files),
            "without_face": list(result.frames_without_face),
            "truncated": result.truncated,
        },
        "models": analyzer.model_info(),
        "model_choice": dict(analyzer.model_choice),
        "timings_ms": dict(result.timings_ms),
        "device": {"kind": result.device, **analyzer.device.describe()},
        "aggregator": result.aggregator,
        "tracker": tracker.describe(),
    }
    return report


def _persons(analyzer: FaceAnalyzer, faces: FaceTable, person: np.ndarray) -> list[dict]:
    ids = np.unique(person)
    seen = {int(pid): len(np.unique(faces.frame[person == pid])) for pid in ids}
    # The primary person is the one seen in most frames; a tie goes to the one who appeared first.
    primary = min(seen, key=lambda pid: (-seen[pid], pid))
    persons = []
    for pid in ids:
        chosen = person == pid
        summary = analyzer.summarise(faces, chosen)
        persons.append({
            "id": int(pid),
            "primary": int(pid) == primary,
            **_answer(summary),
            "frames_seen": seen[int(pid)],
            "mean_confidence": _number(faces.confidence[chosen].mean()),
        })
    return persons


def _answer(summary: FaceSummary) -> dict:
    low, high = summary.age_interval
    return {
        "age": {"value": _number(summary.age), "interval": [_number(low), _number(high)]},
        "gender": _named(GENDERS, summary.gender),
        "expression": {**_named(EXPRESSIONS, summary.expression), "dominant": summary.dominant_expression},
    }


def _timeline(result: SequenceResult, person: np.ndarray) -> list[dict]:
    faces = result.faces
    by_frame: dict[int, list[dict]] = {}
    for row in range(len(faces)):
        by_frame.setdefault(int(faces.frame[row]), []).append({
            "person": int(person[row]),
            "box": [_number(value) for value in faces.boxes[row]],
            "confidence": _number(faces.confidence[row]),
            "landmarks": [[_number(x), _number(y)] for x, y in faces.landmarks[row]],
            "age": _number(faces.age_years[row]),
            "gender": _named(GENDERS, faces.gender[row]),
            "expression": {**_named(EXPRESSIONS, faces.expression[row]),
                           "dominant": EXPRESSIONS[int(np.argmax(faces.expression[row]))]},
        })
    return [{"frame": int(index), "name": name, "faces": by_frame.get(int(index), [])}
            for index, name in result.read_frames]


def _named(labels, values) -> dict:
    return {label: _number(value) for label, value in zip(labels, values)}


def _number(value) -> float | None:
    # JSON has no NaN: a value that is not known (e.g. landmarks of a given box) becomes null.
    value = float(value)
    return None if math.isnan(value) else round(value, DECIMALS)
