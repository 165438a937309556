"""The three output tables: their Arrow schemas, and one input's rows, from its analysis or from its error.

``persons``: one row per (input, person), the v2 answer's persons flattened. ``inputs``: one row per input, done
or failed, with what was read, where and how it ran. ``frames`` (``--timeline``): one row per face per frame, the
columns of ``FaceTable.rows()``. Probabilities are named by the label vocabulary (``male``, ``female``, the seven
expressions), as everywhere in the project. Values are the analyzer's own, unrounded (the v2 JSON rounds them to
6 decimals).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa

from faceanalysis.pipeline.result import SequenceResult
from facecore.errors import AnalysisError
from facecore.labels import EXPRESSIONS, GENDERS

from .inputs import BatchInput
from .spec import RunSpec

DONE, FAILED = "done", "failed"


def _fields(kind: pa.DataType, names) -> list[pa.Field]:
    return [pa.field(name, kind) for name in names]


PERSONS = pa.schema([
    pa.field("input", pa.string()), pa.field("input_sha256", pa.string()),
    pa.field("person", pa.int32()), pa.field("primary", pa.bool_()), pa.field("frames_seen", pa.int32()),
    pa.field("first_frame", pa.int64()), pa.field("last_frame", pa.int64()),
    pa.field("spans", pa.string()),          # JSON [[first, last], ...], as the v2 answer's spans
    *_fields(pa.float64(), ("age", "age_low", "age_high", *GENDERS, *EXPRESSIONS)),
    pa.field("dominant_expression", pa.string()), pa.field("mean_confidence", pa.float64()),
])

INPUTS = pa.schema([
    pa.field("input", pa.string()), pa.field("kind", pa.string()), pa.field("input_sha256", pa.string()),
    pa.field("status", pa.string()), pa.field("error_code", pa.string()), pa.field("error_message", pa.string()),
    *_fields(pa.int64(), ("frames_listed", "frames_read", "frames_skipped", "frames_without_face",
                          "frames_ignored")),
    pa.field("truncated", pa.bool_()), pa.field("persons", pa.int32()), pa.field("seconds", pa.float64()),
    pa.field("node", pa.string()), pa.field("node_id", pa.string()), pa.field("worker_pid", pa.int64()),
    pa.field("device", pa.string()), pa.field("finished_at", pa.timestamp("ms", tz="UTC")),
    pa.field("settings_key", pa.string()), pa.field("settings", pa.string()), pa.field("options", pa.string()),
    pa.field("models", pa.string()),
    # How the next run tells, without reading the content, that the input has not changed (inputs.py).
    pa.field("stat_signature", pa.string()),
])

FRAMES = pa.schema([
    pa.field("input", pa.string()), pa.field("input_sha256", pa.string()),
    pa.field("frame", pa.int64()), pa.field("frame_name", pa.string()), pa.field("person", pa.int32()),
    pa.field("primary", pa.bool_()),
    *_fields(pa.float64(), ("x1", "y1", "x2", "y2", "confidence", "age", *GENDERS, *EXPRESSIONS)),
])


@dataclass(frozen=True)
class Where:
    """Where an input ran: the Ray node's address and id, the worker process, the analyzer's device."""
    node: str
    node_id: str
    worker_pid: int
    device: str


@dataclass
class InputRows:
    """One input's rows in the three tables (``frames`` only with ``--timeline``)."""
    inputs: pa.Table
    persons: pa.Table
    frames: pa.Table | None

    @property
    def row(self) -> dict:
        return self.inputs.to_pylist()[0]


def done_rows(item: BatchInput, sha: str, stat: str | None, result: SequenceResult, spec: RunSpec,
              seconds: float, where: Where) -> InputRows:
    read = result.source
    row = _input_row(item, sha, stat, spec, seconds, where, result.provenance.models, status=DONE)
    row.update(frames_listed=read.listed, frames_read=len(read.read), frames_skipped=len(read.skipped),
               frames_without_face=len(result.frames_without_face), frames_ignored=len(read.ignored),
               truncated=read.truncated, persons=len(result.persons))
    persons = []
    for person in result.persons:
        summary = person.summary
        persons.append({
            "input": item.path, "input_sha256": sha, "person": person.id, "primary": person.primary,
            "frames_seen": person.frames_seen, "first_frame": int(person.spans[0][0]),
            "last_frame": int(person.spans[-1][1]),
            "spans": json.dumps([[int(first), int(last)] for first, last in person.spans]),
            "age": float(summary.age), "age_low": float(summary.age_interval[0]),
            "age_high": float(summary.age_interval[1]),
            **_named(GENDERS, summary.gender), **_named(EXPRESSIONS, summary.expression),
            "dominant_expression": summary.dominant_expression, "mean_confidence": float(person.mean_confidence)})
    frames = _frame_rows(item, sha, result) if spec.timeline else None
    return InputRows(pa.Table.from_pylist([row], INPUTS), pa.Table.from_pylist(persons, PERSONS), frames)


def failed_rows(item: BatchInput, sha: str | None, stat: str | None, error: AnalysisError, spec: RunSpec,
                seconds: float, where: Where | None, models: dict | None) -> InputRows:
    row = _input_row(item, sha, stat, spec, seconds, where, models, status=FAILED)
    row.update(error_code=error.code, error_message=error.message)
    return InputRows(pa.Table.from_pylist([row], INPUTS), PERSONS.empty_table(),
                     FRAMES.empty_table() if spec.timeline else None)


def _input_row(item: BatchInput, sha: str | None, stat: str | None, spec: RunSpec, seconds: float,
               where: Where | None, models: dict | None, status: str) -> dict:
    row = dict.fromkeys(INPUTS.names)
    row.update(input=item.path, kind=item.kind, input_sha256=sha, status=status, seconds=round(seconds, 3),
               finished_at=datetime.now(timezone.utc), settings_key=spec.settings_key,
               settings=json.dumps(spec.settings, sort_keys=True), options=json.dumps(spec.options, sort_keys=True),
               models=json.dumps(models, sort_keys=True) if models is not None else None, stat_signature=stat)
    if where is not None:
        row.update(node=where.node, node_id=where.node_id, worker_pid=where.worker_pid, device=where.device)
    return row


def _frame_rows(item: BatchInput, sha: str, result: SequenceResult) -> pa.Table:
    faces = result.faces
    count = len(faces)
    columns = {"input": pa.array([item.path] * count, pa.string()),
               "input_sha256": pa.array([sha] * count, pa.string()),
               "frame": pa.array(faces.frame, pa.int64()), "frame_name": pa.array(faces.frame_name, pa.string()),
               "person": pa.array(faces.person, pa.int32()), "primary": pa.array(faces.primary, pa.bool_())}
    for column, name in enumerate(("x1", "y1", "x2", "y2")):
        columns[name] = pa.array(np.asarray(faces.boxes[:, column], np.float64))
    columns["confidence"] = pa.array(np.asarray(faces.confidence, np.float64))
    columns["age"] = pa.array(np.asarray(faces.age_years, np.float64))
    for labels, values in ((GENDERS, faces.gender), (EXPRESSIONS, faces.expression)):
        for column, label in enumerate(labels):
            columns[label] = pa.array(np.asarray(values[:, column], np.float64))
    return pa.table(columns, schema=FRAMES)


def _named(labels, values) -> dict:
    return {label: float(value) for label, value in zip(labels, values)}


def to_bytes(rows: InputRows) -> dict[str, bytes | None]:
    """An input's rows as Arrow IPC streams: how they travel from a worker to the driver."""
    return {name: _ipc(getattr(rows, name)) for name in ("inputs", "persons", "frames")}


def from_bytes(data: dict) -> InputRows:
    return InputRows(*(pa.ipc.open_stream(data[name]).read_all() if data.get(name) is not None else None
                       for name in ("inputs", "persons", "frames")))


def _ipc(table: pa.Table | None) -> bytes | None:
    if table is None:
        return None
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()
