"""The two answer formats of a hand-made ``SequenceResult`` (faceanalysis/writers/legacy.py, v2.py), compared
with literal answers written out here, so a change of format cannot pass by changing its own expectation.

Legacy (README "The legacy API"): numeric codes, probabilities as fixed-point strings with 6 places ("0.000003",
never "3e-06"), the age as a whole number. v2 (README "API v2"): plain numbers rounded to 6 places, named labels,
null for what is not known, one timeline entry per frame read."""

from __future__ import annotations

import base64
import json

import cv2
import numpy as np
import pytest

from faceanalysis.pipeline.result import (
    FaceSummary,
    FaceTable,
    Person,
    Provenance,
    SequenceResult,
    SourceSummary,
    Unlisted,
)
from faceanalysis.pipeline.settings import Settings
from faceanalysis.service.contract import Input, Options
from faceanalysis.writers import v2 as report_module
from faceanalysis.writers.legacy import legacy_json
from faceanalysis.writers.v2 import v2_json
from facecore.frames import SkippedFrame

# angry disgust fear happy sad surprise neutral: values whose 6-place form is easy to get wrong.
EXPRESSION = np.array([3e-06, 4e-07, 0.1234567, 0.5, 0.9999996, 1 / 3, 0.0])
GENDER = np.array([0.4681524, 0.5318476])


def summary(age: float = 29.4, expression=EXPRESSION, gender=GENDER, interval=(19.8, 40.7)) -> FaceSummary:
    return FaceSummary(expression=np.asarray(expression, float), gender=np.asarray(gender, float),
                       age_distribution=np.full(81, 1 / 81), age=age, age_interval=interval)


def faces() -> FaceTable:
    """Three faces: person 1 in frame 0, persons 1 and 2 in frame 2; frame 1 has none."""
    landmarks = np.arange(30, dtype=float).reshape(3, 5, 2) + 0.1234567
    landmarks[2] = np.nan                     # a face given as a whole image has no landmarks
    expression = np.tile(np.eye(7)[3] * 0.94 + 0.01, (3, 1))
    expression[2] = np.eye(7)[6] * 0.94 + 0.01
    return FaceTable(frame=np.array([0, 2, 2]), frame_name=["f0", "f2", "f2"],
                     boxes=np.array([[10.1234567, 20.0, 110.0, 120.5], [12.0, 22.0, 112.0, 122.0],
                                     [300.0, 20.0, 360.0, 80.0]]),
                     confidence=np.array([0.99999951, 0.98, 0.5]), landmarks=landmarks,
                     primary=np.array([True, True, False]), age=np.full((3, 81), 1 / 81),
                     age_years=np.array([30.0000004, 31.5, 64.25]),
                     gender=np.array([[0.25, 0.75], [0.3, 0.7], [0.9, 0.1]]), expression=expression,
                     person=np.array([1, 1, 2]))


PICTURE = np.zeros((64, 64, 3), np.uint8)
PICTURE[:, :32] = (255, 0, 0)


def sequence(age: float = 29.4) -> SequenceResult:
    persons = (Person(id=1, primary=True, summary=summary(age), frames_seen=2, mean_confidence=0.98999975,
                      spans=((0, 0), (2, 2)), picture=None),
               Person(id=2, primary=False, summary=summary(64.25, np.eye(7)[6], [0.9, 0.1], (60.1, 70.0)),
                      frames_seen=1, mean_confidence=0.5, spans=((2, 2),), picture=PICTURE))
    source = SourceSummary(label="seqX", listed=5, read=((0, "f0"), (1, "f1"), (2, "f2")),
                           skipped=(SkippedFrame(3, "f3.jpg", "empty file"),), ignored=("notes.txt",),
                           truncated=True)
    provenance = Provenance(settings=Settings(expression="mini-xception"),
                            models={"age": {"model": "dnn_age_predictor_v1", "sha256": "ab" * 32}},
                            device={"kind": "CPU", "onnxruntime": ["CPUExecutionProvider"]},
                            aggregator="confidence_weighted_mean", tracker={"name": "tracklets_identity"})
    return SequenceResult(source=source, faces=faces(), summary=summary(age), persons=persons,
                          frames_without_face=("f1",), provenance=provenance, timings_ms={"read": 1.5, "total": 9.25})


# --- legacy ---------------------------------------------------------------------------------------------------

def test_legacy_answer_is_the_original_format():
    assert legacy_json(sequence()) == {
        "Video_Emo": {10001: "0.000003", 10002: "0.000000", 10003: "0.123457", 10004: "0.500000",
                      10005: "1.000000", 10006: "0.333333", 10007: "0.000000"},
        "Video_Gen": {30001: "0.468152", 30002: "0.531848"},
        "Video_Age": {20000: "29"},
    }


def test_legacy_keys_keep_the_original_order():
    answer = legacy_json(sequence())
    assert list(answer) == ["Video_Emo", "Video_Gen", "Video_Age"]
    assert list(answer["Video_Emo"]) == [10001, 10002, 10003, 10004, 10005, 10006, 10007]
    assert list(answer["Video_Gen"]) == [30001, 30002]


@pytest.mark.parametrize("age, said", [(29.4, "29"), (29.6, "30"), (80.0, "80"), (0.25, "0"), (4.49, "4")])
def test_legacy_age_is_whole_years_to_the_nearest(age, said):
    assert legacy_json(sequence(age))["Video_Age"] == {20000: said}


def test_legacy_answer_is_about_the_sequence_summary_not_a_person():
    result = sequence()
    other = summary(55.0, np.eye(7)[0], [1.0, 0.0])
    answer = legacy_json(SequenceResult(source=result.source, faces=result.faces, summary=other,
                                          persons=result.persons, frames_without_face=(),
                                          provenance=result.provenance))
    assert answer["Video_Age"] == {20000: "55"} and answer["Video_Gen"] == {30001: "1.000000", 30002: "0.000000"}
    assert answer["Video_Emo"][10001] == "1.000000"


# --- v2 -------------------------------------------------------------------------------------------------------

def report(timeline: bool = True) -> dict:
    # The input's own rate (10 a second) wins over the fps option's (25).
    answer = v2_json(sequence(), Input(kind="sample", name="seqX", fps=10.0),
                          Options(timeline=timeline, max_frames=3, stride=1, fps=25.0))
    return json.loads(json.dumps(answer))          # what a client gets: tuples become lists


EXPRESSION_JSON = {"angry": 3e-06, "disgust": 0.0, "fear": 0.123457, "happy": 0.5, "sad": 1.0,
                   "surprise": 0.333333, "neutral": 0.0, "dominant": "sad"}


def test_persons_are_plain_numbers_rounded_to_6_places():
    first, second = report()["persons"]
    assert first == {"id": 1, "primary": True, "age": {"value": 29.4, "interval": [19.8, 40.7]},
                     "gender": {"male": 0.468152, "female": 0.531848}, "expression": EXPRESSION_JSON,
                     "frames_seen": 2, "mean_confidence": 0.99, "spans": [[0, 0], [2, 2]],
                     "spans_seconds": [[0.0, 0.0], [0.2, 0.2]], "picture": None,
                     # a Person made without quality: weight 1, nothing measured
                     "confidence": 1.0, "quality": {"weight": 1.0, "size": None, "sharpness": None, "yaw": None,
                                                    "brightness": None, "frontal": None},
                     "gender_uncertain": False}
    assert {key: second[key] for key in ("id", "primary", "age", "gender", "frames_seen", "mean_confidence",
                                         "spans", "spans_seconds")} == {
        "id": 2, "primary": False, "age": {"value": 64.25, "interval": [60.1, 70.0]},
        "gender": {"male": 0.9, "female": 0.1}, "frames_seen": 1, "mean_confidence": 0.5, "spans": [[2, 2]],
        "spans_seconds": [[0.2, 0.2]]}
    assert second["expression"]["dominant"] == "neutral" and second["expression"]["neutral"] == 1.0


def test_a_persons_picture_is_a_jpeg_data_url():
    picture = report()["persons"][1]["picture"]
    prefix = "data:image/jpeg;base64,"
    assert picture.startswith(prefix)
    decoded = cv2.imdecode(np.frombuffer(base64.b64decode(picture[len(prefix):]), np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == (64, 64, 3)
    # Left half red, right half black, in OpenCV's BGR once decoded (JPEG is lossy: within a few levels).
    assert np.abs(decoded[32, 8].astype(int) - [0, 0, 255]).max() < 8
    assert np.abs(decoded[32, 56].astype(int) - [0, 0, 0]).max() < 8


def test_a_picture_is_encoded_at_quality_85(monkeypatch):
    # About 2 KB per person: the quality is a size budget for answers with many persons.
    assert report_module.PICTURE_QUALITY == 85
    seen = []
    real = cv2.imencode

    def imencode(extension, image, params=None):
        seen.append((extension.lower(), image.shape, list(params or [])))
        return real(extension, image, params or [])
    monkeypatch.setattr(report_module.cv2, "imencode", imencode)
    report()
    assert seen == [(".jpg", (64, 64, 3), [cv2.IMWRITE_JPEG_QUALITY, 85])]


def test_a_picture_that_cannot_be_encoded_is_null(monkeypatch):
    monkeypatch.setattr(report_module.cv2, "imencode", lambda *args: (False, np.zeros(0, np.uint8)))
    assert [person["picture"] for person in report()["persons"]] == [None, None]


def test_timeline_has_every_frame_read_with_its_faces():
    timeline = report()["timeline"]
    assert [entry["time"] for entry in timeline] == [0.0, 0.1, 0.2]          # frame / 10 a second
    assert [(entry["frame"], entry["name"], len(entry["faces"])) for entry in timeline] == [
        (0, "f0", 1), (1, "f1", 0), (2, "f2", 2)]
    face = timeline[0]["faces"][0]
    assert face["person"] == 1 and face["box"] == [10.123457, 20.0, 110.0, 120.5]
    assert face["confidence"] == 1.0 and face["age"] == 30.0
    assert face["landmarks"][0] == [0.123457, 1.123457] and len(face["landmarks"]) == 5
    assert face["gender"] == {"male": 0.25, "female": 0.75}
    assert face["expression"]["happy"] == 0.95 and face["expression"]["dominant"] == "happy"
    assert [face["person"] for face in timeline[2]["faces"]] == [1, 2]
    # Not known is null, never NaN (which JSON does not have).
    assert timeline[2]["faces"][1]["landmarks"] == [[None, None]] * 5


def test_without_timeline_the_key_is_absent():
    assert "timeline" not in report(timeline=False)


def test_meta_says_what_was_read_and_how():
    meta = report()["meta"]
    assert meta["input"] == {"kind": "sample", "name": "seqX", "fps": 10.0}
    assert meta["options"] == {"timeline": True, "max_frames": 3, "stride": 1, "fps": 25.0, "keep_upload": False}
    assert meta["frames"] == {"listed": 5, "read": 3, "skipped": [{"name": "f3.jpg", "reason": "empty file"}],
                              "ignored": ["notes.txt"], "without_face": ["f1"], "truncated": True,
                              "duration": 0.5}          # 5 frames listed at 10 a second
    assert meta["models"] == {"age": {"model": "dnn_age_predictor_v1", "sha256": "ab" * 32}}
    assert meta["model_choice"] == {"age_gender": "lifespan", "expression": "mini-xception"}
    assert meta["timings_ms"] == {"read": 1.5, "total": 9.25}
    assert meta["device"] == {"kind": "CPU", "onnxruntime": ["CPUExecutionProvider"]}
    assert meta["aggregator"] == "confidence_weighted_mean" and meta["tracker"] == {"name": "tracklets_identity"}
    assert meta["settings"] == Settings(expression="mini-xception").to_json()


def test_a_video_input_carries_its_frame_rate():
    answer = v2_json(sequence(), Input(kind="video", name="clip.mp4", fps=None),
                          Options(timeline=True, max_frames=3, stride=1, fps=25.0))
    assert answer["meta"]["input"] == {"kind": "video", "name": "clip.mp4", "fps": None}
    # A container without a rate: the times are at the fps option's.
    assert [entry["time"] for entry in answer["timeline"]] == [0.0, 0.04, 0.08]
    assert answer["meta"]["frames"]["duration"] == 0.2


def test_person_quality_confidence_and_meta_counts_of_short_tracks_and_rejected_faces():
    result = sequence()
    measured = Person(id=1, primary=True, summary=summary(30.0, gender=[0.35, 0.65]), frames_seen=2,
                      mean_confidence=0.9, confidence=0.123456789, gender_uncertain=True,
                      quality={"weight": 0.5, "size": 41.5, "sharpness": 123.4567891, "yaw": 12.0,
                               "brightness": 0.4, "frontal": 0.75})
    with_counts = SequenceResult(source=result.source, faces=result.faces, summary=result.summary, persons=(measured,),
                                 frames_without_face=(), provenance=result.provenance,
                                 unlisted=Unlisted(tracks=3, frames=7), faces_rejected={"geometry": 2, "blank": 1})
    answer = json.loads(json.dumps(v2_json(with_counts, Input(kind="sample", name="seqX", fps=None),
                                                Options(timeline=False, max_frames=3, stride=1, fps=25.0))))
    (person,) = answer["persons"]
    assert person["confidence"] == 0.123457 and person["gender_uncertain"] is True
    assert person["quality"] == {"weight": 0.5, "size": 41.5, "sharpness": 123.456789, "yaw": 12.0,
                                 "brightness": 0.4, "frontal": 0.75}
    assert answer["meta"]["persons_unlisted"] == {"tracks": 3, "frames": 7}
    assert answer["meta"]["faces_rejected"] == {"blank": 1, "geometry": 2}
