"""The Ray side of a batch: an actor holds one ``FaceAnalyzer``, built once from the run's settings, and analyses
the inputs Ray Data hands it, one at a time.

Each input is read the way the service reads the same input (a folder as a sample, a video or zip as an upload,
with the same options and limits), so a ``done`` row is the v2 answer. Nothing an input holds can stop the run:
an ``AnalysisError`` becomes a ``failed`` row with the service's code, and so does a bug (``internal_error``,
its traceback in the worker's log, as the service logs it). What a worker sends back is the input's rows as
Arrow IPC bytes.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from faceanalysis.pipeline.analyzer import FaceAnalyzer
from faceanalysis.pipeline.settings import Settings
from faceanalysis.pipeline.sources import VIDEO_EXTENSIONS, FrameSource
from faceanalysis.service.analysis_request import SOURCE_KINDS, open_source
from faceanalysis.service.contract import Limits
from facecore.errors import AnalysisError

from .discovery import BatchInput, content_sha256
from .spec import RunSpec
from .tables import InputRows, Where, done_rows, failed_rows, to_bytes

log = logging.getLogger(__name__)

ANALYSED, UNCHANGED = "analysed", "unchanged"
# The columns of what a worker returns for each input: its path, what happened, its sha256, its rows.
RESULT_COLUMNS = ("input", "outcome", "input_sha256", "inputs", "persons", "frames")


class Analyser:
    """A Ray Data callable class: Ray builds it once per actor, then calls it with batches of tasks."""

    def __init__(self, spec: dict) -> None:
        import ray

        self.spec = RunSpec(**spec)
        self.analyzer = FaceAnalyzer(Settings(**self.spec.settings)).prepare()
        self.where = Where(node=ray.util.get_node_ip_address(), node_id=ray.get_runtime_context().get_node_id(),
                           worker_pid=os.getpid(), device=self.analyzer.device.kind)

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        results = [analyse_task(self.analyzer, json.loads(str(task)), self.spec, self.where)
                   for task in batch["task"]]
        return pa.table({column: [result[column] for result in results] for column in RESULT_COLUMNS},
                        schema=RESULT_SCHEMA)


RESULT_SCHEMA = pa.schema([pa.field("input", pa.string()), pa.field("outcome", pa.string()),
                           pa.field("input_sha256", pa.string()), pa.field("inputs", pa.binary()),
                           pa.field("persons", pa.binary()), pa.field("frames", pa.binary())])


def task_for(item: BatchInput, stat: str | None, previous_sha: str | None) -> dict:
    """What the driver sends for one input. ``previous_sha``: the content of an earlier result made with the same
    settings, which the worker need not analyse again if the content is still the same."""
    return {"path": item.path, "kind": item.kind, "stat": stat, "previous_sha": previous_sha}


def analyse_task(analyzer: FaceAnalyzer, task: dict, spec: RunSpec, where: Where) -> dict:
    item = BatchInput(task["path"], task["kind"])
    started = time.perf_counter()
    try:
        sha = content_sha256(item)
    except OSError as error:
        code = "input_not_found" if isinstance(error, FileNotFoundError) else "unreadable_input"
        failure = AnalysisError(code, f"{item.path!r} cannot be read: {error.strerror or error}")
        return _result(item, None, ANALYSED, _failed(analyzer, item, None, task, failure, spec, started, where))
    if sha == task["previous_sha"]:
        return _result(item, sha, UNCHANGED, None)
    try:
        source = source_for(item, spec)
        rows = done_rows(item, sha, task["stat"], analyzer.analyse_source(source), spec,
                         time.perf_counter() - started, where, fps=getattr(source, "fps", None))
    except AnalysisError as error:
        rows = _failed(analyzer, item, sha, task, error, spec, started, where)
    except Exception as error:      # a bug must not stop the other inputs; the service answers it the same way
        log.exception("internal error analysing %s", item.path)
        failure = AnalysisError("internal_error", f"{type(error).__name__} (the worker's log has the traceback)")
        rows = _failed(analyzer, item, sha, task, failure, spec, started, where)
    return _result(item, sha, ANALYSED, rows)


def source_for(item: BatchInput, spec: RunSpec) -> FrameSource:
    """The input as the service would read it (``service.analysis_request.open_source``), with the run's options and the
    service's limits."""
    path = Path(item.path)
    if item.kind not in SOURCE_KINDS:
        raise AnalysisError("unsupported_media_type",
                            f"{path.name!r} is not a video ({', '.join(sorted(VIDEO_EXTENSIONS))}), a zip of "
                            "frames, an image or a folder of frames")
    return open_source(item.kind, [path], path.name, stride=spec.stride, max_frames=spec.max_frames,
                       limits=Limits())


def _failed(analyzer: FaceAnalyzer, item: BatchInput, sha: str | None, task: dict, error: AnalysisError,
            spec: RunSpec, started: float, where: Where) -> InputRows:
    return failed_rows(item, sha, task["stat"], error, spec, time.perf_counter() - started, where,
                       analyzer.model_info())


def _result(item: BatchInput, sha: str | None, outcome: str, rows: InputRows | None) -> dict:
    data = to_bytes(rows) if rows is not None else dict.fromkeys(("inputs", "persons", "frames"))
    return {"input": item.path, "outcome": outcome, "input_sha256": sha, **data}
