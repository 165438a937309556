"""The v2 JSON writer: persons tracked across frames, an optional per-frame timeline, and metadata.

Plain floats and named labels only (no legacy numeric codes, no strings for numbers). Everything comes from
the ``SequenceResult``: this module only fills in the ``contract`` declarations, which give the JSON its shape.
Times are in seconds: frame numbers divided by the input's frame rate (a video's own, else the fps option).
"""

from __future__ import annotations

import base64
import math

import cv2
import numpy as np

from faceanalysis.pipeline import result as pipeline
from faceanalysis.service import contract
from faceanalysis.service.schema import ABSENT, to_json
from facecore.labels import EXPRESSIONS, GENDERS, dominant

DECIMALS = 6     # enough for probabilities; keeps answers short and stable across runs
PICTURE_QUALITY = 85     # the person's 64x64 face: ~2 KB of JPEG


def v2_json(result: pipeline.SequenceResult, source: contract.Input, options: contract.Options) -> dict:
    """The answer as JSON-ready data (``contract.Analysis`` through ``schema.to_json``)."""
    return to_json(analysis(result, source, options))


def analysis(result: pipeline.SequenceResult, source: contract.Input,
             options: contract.Options) -> contract.Analysis:
    read, provenance = result.source, result.provenance
    fps = source.fps or options.fps
    meta = contract.Meta(
        input=source,
        options=options,
        frames=contract.Frames(
            listed=read.listed,
            read=len(read.read),
            skipped=[contract.SkippedFrame(name=item.name, reason=item.reason) for item in read.skipped],
            ignored=list(read.ignored),
            without_face=list(result.frames_without_face),
            truncated=read.truncated,
            duration=_number(read.listed / fps)),
        models=provenance.models,
        model_choice=contract.ModelChoice(**provenance.settings.model_choice),
        timings_ms=dict(result.timings_ms),
        device=dict(provenance.device),
        aggregator=provenance.aggregator,
        tracker=dict(provenance.tracker),
        detection=dict(provenance.detection),
        persons_unlisted=contract.Unlisted(tracks=result.unlisted.tracks, frames=result.unlisted.frames),
        faces_rejected={reason: int(count) for reason, count in sorted(result.faces_rejected.items())},
        settings=provenance.settings)
    return contract.Analysis(persons=[_person(person, fps) for person in result.persons],
                             timeline=_timeline(result, fps) if options.timeline else ABSENT,
                             meta=meta)


def _person(person: pipeline.Person, fps: float) -> contract.Person:
    summary = person.summary
    low, high = summary.age_interval
    return contract.Person(
        id=person.id, primary=person.primary,
        age=contract.Age(value=_number(summary.age), interval=(_number(low), _number(high))),
        gender=_gender(summary.gender), expression=_expression(summary.expression),
        frames_seen=person.frames_seen, mean_confidence=_number(person.mean_confidence),
        spans=[(int(first), int(last)) for first, last in person.spans],
        spans_seconds=[(_number(first / fps), _number(last / fps)) for first, last in person.spans],
        picture=_picture(person.picture),
        confidence=_number(person.confidence),
        quality=contract.PersonQuality(**{key: _number(value) for key, value in person.quality.items()})
        if person.quality else _UNKNOWN_QUALITY,
        gender_uncertain=person.gender_uncertain)


_UNKNOWN_QUALITY = contract.PersonQuality(weight=1.0, size=None, sharpness=None, yaw=None, brightness=None,
                                          frontal=None)


def _picture(rgb) -> str | None:
    if rgb is None:
        return None
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, PICTURE_QUALITY])
    return "data:image/jpeg;base64," + base64.b64encode(jpeg.tobytes()).decode("ascii") if ok else None


def _timeline(result: pipeline.SequenceResult, fps: float) -> list[contract.TimelineFrame]:
    faces = result.faces
    by_frame: dict[int, list[contract.Face]] = {}
    for row in range(len(faces)):
        by_frame.setdefault(int(faces.frame[row]), []).append(contract.Face(
            person=int(faces.person[row]),
            box=tuple(_number(value) for value in faces.boxes[row]),
            confidence=_number(faces.confidence[row]),
            landmarks=[(_number(x), _number(y)) for x, y in faces.landmarks[row]],
            age=_number(faces.age_years[row]),
            gender=_gender(faces.gender[row]),
            expression=_expression(faces.expression[row])))
    return [contract.TimelineFrame(frame=int(index), time=_number(index / fps), name=name,
                                   faces=by_frame.get(int(index), []))
            for index, name in result.source.read]


def _gender(probabilities: np.ndarray):
    return contract.Gender(**_named(GENDERS, probabilities))


def _expression(probabilities: np.ndarray):
    return contract.Expression(**_named(EXPRESSIONS, probabilities), dominant=dominant(probabilities))


def _named(labels, values) -> dict:
    return {label: _number(value) for label, value in zip(labels, values)}


def _number(value) -> float | None:
    # JSON has no NaN: a value that is not known (e.g. landmarks of a given box) becomes null.
    value = float(value)
    return None if math.isnan(value) else round(value, DECIMALS)
