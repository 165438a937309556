"""One batch run: decide what is already done, analyse the rest on Ray, write each input's part as it finishes,
then the tables.

An input is already done when its part says ``done`` with the same settings key (``spec.RunSpec``), holds the
timeline if one is asked for, and its files' signature is unchanged; it is not sent to Ray at all. When only the
signature changed (files touched or copied), the worker hashes the content and, if it is the same, the input is
not analysed again either. An input that failed for a reason its content decides (``PERMANENT``: no face, not a
video...) is skipped the same way while its content is the same, unless ``--retry-failed``; any other failure
(a worker lost, a file that could not be read) is tried again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from facecore.errors import AnalysisError

from . import engine
from .discovery import BatchInput, stat_signature
from .output_folder import OutputFolder
from .progress import ProgressDisplay, Tally
from .spec import RunSpec
from .tables import DONE, failed_rows, from_bytes
from .worker import UNCHANGED, task_for


@dataclass(frozen=True)
class Request:
    items: list[BatchInput]
    out: Path
    spec: RunSpec
    address: str | None = None
    workers: int | None = None          # None: Cluster.default_workers
    gpus_per_worker: float = 0.0
    csv: bool = False
    retry_failed: bool = False          # analyse again inputs that failed for a PERMANENT reason


# Failures the input's content decides: the same content fails the same way with the same settings.
PERMANENT = frozenset({"no_face", "no_images", "invalid_video", "invalid_archive", "unsupported_media_type",
                       "frame_too_large", "too_many_frames", "archive_too_large"})


def worker_lost(item: BatchInput) -> AnalysisError:
    return AnalysisError("worker_lost", f"the worker analysing {Path(item.path).name!r} died {engine.ATTEMPTS} "
                         "times (out of memory, or a crash in a decoder); see the Ray logs")


def execute(request: Request, out: OutputFolder, progress_stream=None) -> tuple[Tally, dict[str, int]]:
    """Run ``request`` into the opened ``out``; the tally of what happened and the rows of each table."""
    spec = request.spec
    tally = Tally(total=len(request.items))
    todo: list[tuple[BatchInput, dict]] = []
    for item in request.items:
        stat = stat_signature(item)
        previous = out.part_row(item)
        same = previous is not None and (_same_result(previous, spec)
                                         or (not request.retry_failed and _failed_for_good(previous, spec)))
        if same and stat is not None and previous["stat_signature"] == stat:
            tally.skipped += 1
            if previous["status"] != DONE:
                tally.skipped_failed += 1
        else:
            todo.append((item, task_for(item, stat, previous["input_sha256"] if same else None)))
    if todo:
        _analyse(request, todo, out, ProgressDisplay(tally, progress_stream))
    return tally, out.merge(request.items, spec.timeline, request.csv)


def _same_result(row: dict, spec: RunSpec) -> bool:
    return (row["status"] == DONE and row["settings_key"] == spec.settings_key
            and (not spec.timeline or row["options"]["timeline"]))


def _failed_for_good(row: dict, spec: RunSpec) -> bool:
    """Failed with these settings for a reason that stays while the content does (a sha256 is needed to tell)."""
    return (row["status"] != DONE and row["settings_key"] == spec.settings_key and row["error_code"] in PERMANENT
            and row["input_sha256"] is not None)


def _analyse(request: Request, todo: list[tuple[BatchInput, dict]], out: OutputFolder,
             progress: ProgressDisplay) -> None:
    with engine.quiet_native_stderr():
        _analyse_on_ray(request, todo, out, progress)


def _analyse_on_ray(request: Request, todo: list[tuple[BatchInput, dict]], out: OutputFolder,
                    progress: ProgressDisplay) -> None:
    tally = progress.tally
    cluster = engine.connect(request.address)
    tally.startup_seconds = cluster.startup_seconds
    tally.where = "locally" if request.address is None else f"on the cluster at {request.address}"
    try:
        workers = request.workers or cluster.default_workers(request.gpus_per_worker)
        _check_capacity(cluster, workers, request.gpus_per_worker)
        tally.workers = min(workers, len(todo))
        pending = {item.path: (item, task) for item, task in todo}
        for result in engine.run([task for _, task in todo], request.spec, tally.workers,
                                 request.gpus_per_worker):
            item, task = pending.pop(result["input"])
            if result["outcome"] == UNCHANGED:
                out.refresh_stat(item, task["stat"])
                progress.finished(item.path, None)
                continue
            rows = from_bytes(result)
            out.write(item, rows)
            progress.finished(item.path, rows.row)
        for item, task in pending.values():
            rows = failed_rows(item, None, task["stat"], worker_lost(item), request.spec, 0.0, None, None)
            out.write(item, rows)
            progress.finished(item.path, rows.row)
    finally:
        progress.close()
        engine.shutdown()


def _check_capacity(cluster: engine.Cluster, workers: int, gpus_per_worker: float) -> None:
    """Refuse a pool the cluster can never place: Ray Data would wait for it for ever."""
    if gpus_per_worker > 0 and cluster.gpus < gpus_per_worker:
        raise AnalysisError("invalid_option", f"--gpus-per-worker {gpus_per_worker:g}, but the cluster has "
                            f"{cluster.gpus:g} GPUs")
    if workers > cluster.cpus or workers * gpus_per_worker > cluster.gpus + 1e-9:
        raise AnalysisError("invalid_option", f"--workers {workers} needs {workers} CPUs"
                            + (f" and {workers * gpus_per_worker:g} GPUs" if gpus_per_worker else "")
                            + f"; the cluster has {cluster.cpus:g} CPUs and {cluster.gpus:g} GPUs")
