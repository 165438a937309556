"""The table writer (faceanalysis/writers/table.py) and the writers' registry (faceanalysis/writers/__init__.py) on
a hand-made ``SequenceResult``, every column against a value worked out by hand here. The legacy and v2 JSON
writers' fields are checked the same way in tests/unit/test_formats.py.

Rules: values are the analyzer's own, unrounded; times are frame / fps; a landmark not known is None (a known one
is its float); every writer only reads the result."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from faceanalysis.pipeline.result import (
    FaceSummary,
    FaceTable,
    Person,
    Provenance,
    SequenceResult,
    SourceSummary,
)
from faceanalysis.pipeline.settings import Settings
from faceanalysis.service.contract import Input, Options
from faceanalysis.writers import JSON_FORMATS
from faceanalysis.writers.legacy import legacy_json
from faceanalysis.writers.table import (
    FACE_COLUMNS,
    PERSON_COLUMNS,
    SOURCE_COLUMNS,
    face_columns,
    person_rows,
    source_row,
)
from faceanalysis.writers.v2 import v2_json
from facecore.frames import SkippedFrame
from facecore.labels import EXPRESSIONS, GENDERS

# angry disgust fear happy sad surprise neutral
EXPRESSION = np.array([0.0000031, 0.01, 0.02, 0.1234567, 0.8, 0.04, 0.0065402])


def one_hot_age(years: int) -> np.ndarray:
    # Every face exactly `years`: the bin spreads evenly over [years - 0.5, years + 0.5], so the central 80%
    # is [years - 0.4, years + 0.4].
    distribution = np.zeros(101)
    distribution[years] = 1.0
    return distribution


def faces() -> FaceTable:
    """Person 1 in frames 0 and 10, person 2 in frame 10; the last face's landmarks are not known."""
    landmarks = np.arange(30, dtype=float).reshape(3, 5, 2) + 0.25
    landmarks[2] = np.nan
    return FaceTable(frame=np.array([0, 10, 10]), frame_name=["a.jpg", "b.jpg", "b.jpg"],
                     boxes=np.array([[1.5, 2.0, 101.5, 102.0], [3.0, 4.0, 103.0, 104.0], [200.0, 10.0, 260.0, 70.0]]),
                     confidence=np.array([0.9999996, 0.98, 0.91]), landmarks=landmarks,
                     primary=np.array([True, True, False]),
                     age=np.stack([one_hot_age(30), one_hot_age(31), one_hot_age(64)]),
                     age_years=np.array([30.0000004, 31.0, 64.0]),
                     gender=np.array([[0.25, 0.75], [0.2, 0.8], [0.9, 0.1]]),
                     expression=np.stack([EXPRESSION, np.eye(7)[3], np.eye(7)[6]]), person=np.array([1, 1, 2]))


def none() -> FaceTable:
    return FaceTable(frame=np.zeros(0, np.int64), frame_name=[], boxes=np.zeros((0, 4)), confidence=np.zeros(0),
                     landmarks=np.zeros((0, 5, 2)), primary=np.zeros(0, bool), age=np.zeros((0, 101)),
                     age_years=np.zeros(0), gender=np.zeros((0, 2)), expression=np.zeros((0, 7)))


def sequence() -> SequenceResult:
    first = FaceSummary(expression=EXPRESSION, gender=np.array([0.2222222, 0.7777778]),
                        age_distribution=one_hot_age(30), age=30.5, age_interval=(29.6, 31.4))
    second = FaceSummary(expression=np.eye(7)[6], gender=np.array([0.9, 0.1]), age_distribution=one_hot_age(64),
                         age=64.0, age_interval=(63.6, 64.4))
    persons = (Person(id=1, primary=True, summary=first, frames_seen=2, mean_confidence=0.9899998,
                      spans=((0, 0), (10, 10))),
               Person(id=2, primary=False, summary=second, frames_seen=1, mean_confidence=0.91, spans=((10, 10),)))
    source = SourceSummary(label="seq", listed=25, read=((0, "a.jpg"), (5, "c.jpg"), (10, "b.jpg")),
                           skipped=(SkippedFrame(15, "d.jpg", "empty file"),), ignored=("notes.txt", "x.csv"),
                           truncated=True)
    provenance = Provenance(settings=Settings(), models={}, device={"kind": "CPU"}, aggregator="mean", tracker={})
    return SequenceResult(source=source, faces=faces(), summary=first, persons=persons,
                          frames_without_face=("c.jpg",), provenance=provenance)


# --- the input's row ----------------------------------------------------------------------------------------------

def test_the_source_row_counts_what_was_read_and_lasts_listed_frames_over_fps():
    row = source_row(sequence(), fps=10.0)
    assert tuple(row) == SOURCE_COLUMNS
    assert row == {"frames_listed": 25, "frames_read": 3, "frames_skipped": 1, "frames_without_face": 1,
                   "frames_ignored": 2, "truncated": True, "persons": 2, "fps": 10.0,
                   "duration": 2.5}                 # 25 frames listed at 10 a second
    assert source_row(sequence(), fps=25.0)["duration"] == 1.0


# --- persons ------------------------------------------------------------------------------------------------------

def test_a_person_row_has_every_column_unrounded_with_spans_in_frames_and_seconds():
    first, second = person_rows(sequence(), fps=10.0)
    assert tuple(first) == PERSON_COLUMNS
    assert first == {
        "person": 1, "primary": True, "frames_seen": 2, "first_frame": 0, "last_frame": 10,
        "first_seconds": 0.0, "last_seconds": 1.0,
        "spans": [{"first": 0, "last": 0, "first_seconds": 0.0, "last_seconds": 0.0},
                  {"first": 10, "last": 10, "first_seconds": 1.0, "last_seconds": 1.0}],
        "age": 30.5, "age_low": 29.6, "age_high": 31.4, "male": 0.2222222, "female": 0.7777778,
        "angry": 0.0000031, "disgust": 0.01, "fear": 0.02, "happy": 0.1234567, "sad": 0.8, "surprise": 0.04,
        "neutral": 0.0065402, "dominant_expression": "sad", "mean_confidence": 0.9899998}
    assert (second["person"], second["primary"], second["first_frame"], second["last_frame"]) == (2, False, 10, 10)
    assert (second["first_seconds"], second["last_seconds"]) == (1.0, 1.0)
    assert second["dominant_expression"] == "neutral" and (second["male"], second["female"]) == (0.9, 0.1)


def test_person_seconds_follow_the_fps():
    (first, _) = person_rows(sequence(), fps=4.0)
    assert (first["first_seconds"], first["last_seconds"]) == (0.0, 2.5)        # frame 10 at 4 a second
    assert first["spans"][1] == {"first": 10, "last": 10, "first_seconds": 2.5, "last_seconds": 2.5}


def test_person_columns_are_python_values_not_numpy():
    for row in person_rows(sequence(), fps=10.0):
        assert {type(row[key]) for key in ("person", "frames_seen", "first_frame", "last_frame")} == {int}
        assert {type(row[key]) for key in ("age", "age_low", "male", "happy", "mean_confidence")} == {float}


# --- faces --------------------------------------------------------------------------------------------------------

def test_face_columns_have_every_face_in_every_column():
    columns = face_columns(sequence(), fps=10.0)
    assert tuple(columns) == FACE_COLUMNS
    assert columns["frame"].tolist() == [0, 10, 10] and columns["frame"].dtype == np.int64
    assert columns["time"].tolist() == [0.0, 1.0, 1.0]                        # frame / 10 a second
    assert columns["frame_name"] == ["a.jpg", "b.jpg", "b.jpg"]
    assert columns["person"].tolist() == [1, 1, 2] and columns["person"].dtype == np.int64
    assert columns["primary"].tolist() == [True, True, False]
    assert [columns[key].tolist() for key in ("x1", "y1", "x2", "y2")] == [
        [1.5, 3.0, 200.0], [2.0, 4.0, 10.0], [101.5, 103.0, 260.0], [102.0, 104.0, 70.0]]
    assert columns["confidence"].tolist() == [0.9999996, 0.98, 0.91]          # unrounded
    assert columns["age"].tolist() == [30.0000004, 31.0, 64.0]
    assert columns["age_low"].tolist() == [29.6, 30.6, 63.6]
    assert columns["age_high"].tolist() == [30.4, 31.4, 64.4]
    assert columns["male"].tolist() == [0.25, 0.2, 0.9] and columns["female"].tolist() == [0.75, 0.8, 0.1]
    assert columns["happy"].tolist() == [0.1234567, 1.0, 0.0] and columns["neutral"].tolist() == [0.0065402, 0.0, 1.0]
    assert columns["angry"].tolist() == [0.0000031, 0.0, 0.0]


def test_known_landmarks_are_their_floats_and_unknown_ones_none():
    landmarks = face_columns(sequence(), fps=10.0)["landmarks"]
    assert landmarks[0] == [{"x": 0.25, "y": 1.25}, {"x": 2.25, "y": 3.25}, {"x": 4.25, "y": 5.25},
                            {"x": 6.25, "y": 7.25}, {"x": 8.25, "y": 9.25}]
    assert landmarks[2] == [{"x": None, "y": None}] * 5
    assert all(type(point["x"]) is float for point in landmarks[1])


def test_face_times_follow_the_fps():
    assert face_columns(sequence(), fps=4.0)["time"].tolist() == [0.0, 2.5, 2.5]


def test_a_result_without_faces_has_empty_columns():
    result = sequence()
    empty = SequenceResult(source=result.source, faces=none(), summary=result.summary,
                           persons=(), frames_without_face=(), provenance=result.provenance)
    columns = face_columns(empty, fps=10.0)
    assert {len(values) for values in columns.values()} == {0}
    assert columns["age_low"].dtype == np.float64 and columns["frame"].dtype == np.int64
    assert person_rows(empty, fps=10.0) == [] and source_row(empty, fps=10.0)["persons"] == 0


# --- the registry, and what every writer may do -------------------------------------------------------------------

GIVEN = Input(kind="sample", name="seq", fps=10.0)
OPTIONS = Options(timeline=True, max_frames=25, stride=5, fps=25.0)


def test_the_json_formats_are_v2_and_legacy_each_its_writer():
    assert tuple(JSON_FORMATS) == ("v2", "legacy")
    assert JSON_FORMATS["v2"](sequence(), GIVEN, OPTIONS) == v2_json(sequence(), GIVEN, OPTIONS)
    # The legacy answer does not depend on the input's name or the options.
    other = Options(timeline=False, max_frames=1, stride=1, fps=1.0)
    assert JSON_FORMATS["legacy"](sequence(), GIVEN, OPTIONS) == legacy_json(sequence())
    assert JSON_FORMATS["legacy"](sequence(), Input(kind="video", name="x.mp4", fps=None), other) == \
        legacy_json(sequence())


def same(a, b) -> bool:
    """Equal values, arrays and dataclasses compared field by field (NaN equal to NaN)."""
    if hasattr(a, "__dataclass_fields__"):
        return type(a) is type(b) and all(same(getattr(a, key), getattr(b, key)) for key in a.__dataclass_fields__)
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


@pytest.mark.parametrize("write", [
    lambda result: source_row(result, 10.0), lambda result: person_rows(result, 10.0),
    lambda result: face_columns(result, 10.0), legacy_json, lambda result: v2_json(result, GIVEN, OPTIONS)])
def test_a_writer_only_reads_the_result(write):
    result = sequence()
    before = copy.deepcopy(result)
    write(result)
    assert same(result, before)


def test_the_comparison_sees_a_changed_column():
    result = sequence()
    changed = copy.deepcopy(result)
    changed.faces.person[0] = 2
    assert same(result, copy.deepcopy(result)) and not same(result, changed)


# --- the columns' types, whatever the table holds -----------------------------------------------------------------

def test_face_columns_have_their_documented_types_from_narrow_inputs():
    # A table of int32 frames and ids, 0/1 bytes for primary and float32 values: every column still comes out
    # int64, bool or float64, and the values are the same numbers.
    table = faces()
    narrow = FaceTable(frame=table.frame.astype(np.int32), frame_name=table.frame_name,
                       boxes=table.boxes.astype(np.float32), confidence=np.array([0.5, 0.25, 0.75], np.float32),
                       landmarks=table.landmarks, primary=table.primary.astype(np.uint8), age=table.age,
                       age_years=table.age_years.astype(np.float32), gender=table.gender.astype(np.float32),
                       expression=table.expression.astype(np.float32), person=table.person.astype(np.int32))
    result = sequence()
    columns = face_columns(SequenceResult(source=result.source, faces=narrow, summary=result.summary,
                                          persons=result.persons, frames_without_face=(),
                                          provenance=result.provenance), fps=10.0)
    assert columns["frame"].dtype == np.int64 and columns["person"].dtype == np.int64
    assert columns["primary"].dtype == bool and columns["primary"].tolist() == [True, True, False]
    floats = ("x1", "y1", "x2", "y2", "confidence", "age", *GENDERS, *EXPRESSIONS)
    assert {name: columns[name].dtype for name in floats} == {name: np.float64 for name in floats}
    assert columns["confidence"].tolist() == [0.5, 0.25, 0.75] and columns["x1"].tolist() == [1.5, 3.0, 200.0]


def test_a_person_row_spans_from_the_first_spans_start_to_the_last_spans_end():
    result = sequence()
    person = result.persons[0]
    spread = Person(id=1, primary=True, summary=person.summary, frames_seen=14, mean_confidence=0.9,
                    spans=((3, 7), (12, 20)))
    row, = person_rows(SequenceResult(source=result.source, faces=result.faces, summary=result.summary,
                                      persons=(spread,), frames_without_face=(), provenance=result.provenance),
                       fps=10.0)
    assert (row["first_frame"], row["last_frame"]) == (3, 20)
    assert (row["first_seconds"], row["last_seconds"]) == (0.3, 2.0)
