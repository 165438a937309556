"""The three output tables: their Arrow schemas, and one input's rows, from its analysis or from its error.

``persons``: one row per (input, person), the v2 answer's persons flattened. ``inputs``: one row per input, done
or failed, with what was read, where and how it ran. ``frames`` (``--timeline``): one row per face per frame, with
the face's age interval and landmarks. The values of an analysed input come from the table writer
(``faceanalysis.writers.table``), which the v2 JSON's writer stands beside; this module adds the input's name,
sha256 and where it ran, and gives each column its Arrow type. Probabilities are named by the label
vocabulary (``male``, ``female``, the seven expressions), as everywhere in the project. Values are the analyzer's
own, unrounded (the v2 JSON rounds them to 6 decimals).

Made for analysis in pandas, polars or DuckDB: every frame number, id and count is int64, and never null (a
failed input counts 0 frames read, 0 persons; an unknown worker is pid 0), so no integer column turns into
floats; times are seconds from the start of the input (frame / the input's fps) beside the frame numbers;
``spans``, ``landmarks``, ``settings``, ``options`` and ``models`` are nested Arrow types (list<struct>, struct),
not JSON strings. CSV copies write the nested columns as JSON.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv

from faceanalysis.pipeline.result import SequenceResult
from faceanalysis.pipeline.settings import Settings
from faceanalysis.service.contract import DONE, FAILED
from faceanalysis.writers import table
from facecore.errors import AnalysisError
from facecore.labels import EXPRESSIONS, GENDERS

from .discovery import BatchInput
from .spec import RunSpec

COUNT = pa.int64()          # the one integer type of frame numbers, ids and counts
ARROW_TYPES = {"str": pa.string(), "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_()}


def _fields(kind: pa.DataType, names) -> list[pa.Field]:
    return [pa.field(name, kind) for name in names]


SPAN = pa.struct([pa.field("first", COUNT), pa.field("last", COUNT), pa.field("first_seconds", pa.float64()),
                  pa.field("last_seconds", pa.float64())])
POINT = pa.struct([pa.field("x", pa.float64()), pa.field("y", pa.float64())])
SETTINGS = pa.struct([pa.field(item.name, ARROW_TYPES[str(item.type)]) for item in fields(Settings)])
OPTIONS = pa.struct([pa.field("timeline", pa.bool_()), pa.field("max_frames", COUNT), pa.field("stride", COUNT),
                     pa.field("fps", pa.float64())])
MODEL = pa.struct(_fields(pa.string(), ("key", "model", "package", "file", "sha256", "license")))

PERSONS = pa.schema([
    pa.field("input", pa.string()), pa.field("input_sha256", pa.string()),
    pa.field("person", COUNT), pa.field("primary", pa.bool_()), pa.field("frames_seen", COUNT),
    pa.field("first_frame", COUNT), pa.field("last_frame", COUNT),
    pa.field("first_seconds", pa.float64()), pa.field("last_seconds", pa.float64()),
    pa.field("spans", pa.list_(SPAN)),      # as the v2 answer's spans and spans_seconds
    *_fields(pa.float64(), ("age", "age_low", "age_high", *GENDERS, *EXPRESSIONS)),
    pa.field("dominant_expression", pa.string()), pa.field("mean_confidence", pa.float64()),
])

INPUTS = pa.schema([
    pa.field("input", pa.string()), pa.field("kind", pa.string()), pa.field("input_sha256", pa.string()),
    pa.field("status", pa.string()), pa.field("error_code", pa.string()), pa.field("error_message", pa.string()),
    *_fields(COUNT, ("frames_listed", "frames_read", "frames_skipped", "frames_without_face", "frames_ignored")),
    pa.field("truncated", pa.bool_()), pa.field("persons", COUNT),
    # The input's frame rate (a video's own, else --fps) and the seconds of it gone through; null when failed.
    pa.field("fps", pa.float64()), pa.field("duration", pa.float64()),
    pa.field("seconds", pa.float64()),       # wall-clock seconds the analysis took
    pa.field("node", pa.string()), pa.field("node_id", pa.string()), pa.field("worker_pid", COUNT),
    pa.field("device", pa.string()), pa.field("finished_at", pa.timestamp("ms", tz="UTC")),
    pa.field("settings_key", pa.string()), pa.field("settings", SETTINGS), pa.field("options", OPTIONS),
    pa.field("models", pa.list_(MODEL)),
    # How the next run tells, without reading the content, that the input has not changed (discovery.py).
    pa.field("stat_signature", pa.string()),
])

FRAMES = pa.schema([
    pa.field("input", pa.string()), pa.field("input_sha256", pa.string()),
    pa.field("frame", COUNT), pa.field("time", pa.float64()), pa.field("frame_name", pa.string()),
    pa.field("person", COUNT), pa.field("primary", pa.bool_()),
    *_fields(pa.float64(), ("x1", "y1", "x2", "y2", "confidence")),
    pa.field("landmarks", pa.list_(POINT)),    # 5 points: eyes, nose, mouth corners; null x, y where not known
    *_fields(pa.float64(), ("age", "age_low", "age_high", *GENDERS, *EXPRESSIONS)),
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


def done_rows(item: BatchInput, sha: str | None, stat: str | None, result: SequenceResult, spec: RunSpec,
              seconds: float, where: Where, fps: float | None = None) -> InputRows:
    """``fps``: the input's own frame rate (a video's), None to take the run's ``--fps``."""
    fps = fps or spec.fps
    row = _input_row(item, sha, stat, spec, seconds, where, result.provenance.models, status=DONE)
    row.update(table.source_row(result, fps))
    persons = [{"input": item.path, "input_sha256": sha, **person} for person in table.person_rows(result, fps)]
    frames = _frame_rows(item, sha, result, fps) if spec.timeline else None
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
    # Counts of a failed input are 0 (nothing was analysed), never null: a null would make them floats in pandas.
    row.update(dict.fromkeys(("frames_listed", "frames_read", "frames_skipped", "frames_without_face",
                              "frames_ignored", "persons", "worker_pid"), 0), truncated=False)
    row.update(input=item.path, kind=item.kind, input_sha256=sha, status=status, seconds=round(seconds, 3),
               finished_at=datetime.now(timezone.utc), settings_key=spec.settings_key,
               settings=spec.settings, options=spec.options,
               models=[{"key": key, **value} for key, value in sorted(models.items())] if models is not None
               else None, stat_signature=stat)
    if where is not None:
        row.update(node=where.node, node_id=where.node_id, worker_pid=where.worker_pid, device=where.device)
    return row


def _frame_rows(item: BatchInput, sha: str | None, result: SequenceResult, fps: float) -> pa.Table:
    columns = table.face_columns(result, fps)
    count = len(columns["frame"])
    typed = {"input": pa.array([item.path] * count, pa.string()), "input_sha256": pa.array([sha] * count, pa.string())}
    for name in table.FACE_COLUMNS:
        typed[name] = pa.array(columns[name], FRAMES.field(name).type)
    return pa.table(typed, schema=FRAMES)


def write_csv(table: pa.Table, path: Path) -> None:
    """``table`` as CSV at ``path``; nested columns (spans, landmarks, settings, options, models) as JSON."""
    with pa_csv.CSVWriter(path, flat(table).schema) as writer:
        writer.write_table(flat(table))


def flat(table: pa.Table) -> pa.Table:
    """The table with each nested column as a JSON string column (CSV has no nested types)."""
    for index, field in enumerate(table.schema):
        if pa.types.is_nested(field.type):
            values = [None if value is None else json.dumps(value, default=str)
                      for value in table.column(index).to_pylist()]
            table = table.set_column(index, pa.field(field.name, pa.string()), pa.array(values, pa.string()))
    return table


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
