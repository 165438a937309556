"""The API v2 answer: persons tracked across frames, an optional per-frame timeline, and metadata.

Plain floats and named labels only (no legacy numeric codes, no strings for
numbers). Everything comes from the ``SequenceResult``: this module only formats it.
"""

from __future__ import annotations

import math

import numpy as np

from facecore.labels import EXPRESSIONS, GENDERS, dominant
from faceanalysis.pipeline.result import FaceSummary, Person, SequenceResult

DECIMALS = 6     # enough for probabilities; keeps answers short and stable across runs


def build_report(result: SequenceResult, timeline: bool, request_meta: dict) -> dict:
    report = {"persons": [_person(person) for person in result.persons]}
    if timeline:
        report["timeline"] = _timeline(result)
    source, provenance = result.source, result.provenance
    report["meta"] = {
        **request_meta,
        "frames": {
            "listed": source.listed,
            "read": len(source.read),
            "skipped": [{"name": item.name, "reason": item.reason} for item in source.skipped],
            "ignored": list(source.ignored),
            "without_face": list(result.frames_without_face),
            "truncated": source.truncated,
        },
        "models": provenance.models,
        "model_choice": {"age_gender": provenance.settings["age_gender"],
                         "expression": provenance.settings["expression"]},
        "timings_ms": dict(result.timings_ms),
        "device": dict(provenance.device),
        "aggregator": provenance.aggregator,
        "tracker": dict(provenance.tracker),
        "settings": dict(provenance.settings),
    }
    return report


def _person(person: Person) -> dict:
    return {"id": person.id, "primary": person.primary, **_answer(person.summary),
            "frames_seen": person.frames_seen, "mean_confidence": _number(person.mean_confidence)}


def _answer(summary: FaceSummary) -> dict:
    low, high = summary.age_interval
    return {
        "age": {"value": _number(summary.age), "interval": [_number(low), _number(high)]},
        "gender": _named(GENDERS, summary.gender),
        "expression": _expression(summary.expression),
    }


def _expression(probabilities: np.ndarray) -> dict:
    return {**_named(EXPRESSIONS, probabilities), "dominant": dominant(probabilities)}


def _timeline(result: SequenceResult) -> list[dict]:
    faces = result.faces
    by_frame: dict[int, list[dict]] = {}
    for row in range(len(faces)):
        by_frame.setdefault(int(faces.frame[row]), []).append({
            "person": int(faces.person[row]),
            "box": [_number(value) for value in faces.boxes[row]],
            "confidence": _number(faces.confidence[row]),
            "landmarks": [[_number(x), _number(y)] for x, y in faces.landmarks[row]],
            "age": _number(faces.age_years[row]),
            "gender": _named(GENDERS, faces.gender[row]),
            "expression": _expression(faces.expression[row]),
        })
    return [{"frame": int(index), "name": name, "faces": by_frame.get(int(index), [])}
            for index, name in result.source.read]


def _named(labels, values) -> dict:
    return {label: _number(value) for label, value in zip(labels, values)}


def _number(value) -> float | None:
    # JSON has no NaN: a value that is not known (e.g. landmarks of a given box) becomes null.
    value = float(value)
    return None if math.isnan(value) else round(value, DECIMALS)
