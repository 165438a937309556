"""Background analyses: a bounded queue, one worker thread, results kept for a while.

There is one set of models per process and it analyses one sequence at a
time, so one worker is all that can make progress; more threads would only
wait on the analyzer's lock. The queue is bounded so that a burst of
submissions is refused (``queue_full``, 429) instead of piling up uploads on
disk. Finished jobs are forgotten ``ttl_s`` seconds after they end, and at
most ``max_kept`` of them are held, so memory stays bounded however long the
process runs.
"""

from __future__ import annotations

import logging
import queue
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from facecore.errors import AnalysisError

log = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
# run(payload, progress) -> result; progress(frames_done, frames_total_or_None)
Runner = Callable[[Any, Callable[[int, "int | None"], None]], dict]


@dataclass
class Job:
    id: str
    payload: Any
    status: str = QUEUED
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    frames_done: int = 0
    frames_total: int | None = None
    result: dict | None = None
    error: dict | None = None

    def to_json(self) -> dict:
        body = {"id": self.id, "status": self.status,
                "progress": {"frames_done": self.frames_done, "frames_total": self.frames_total},
                "created": _iso(self.created), "started": _iso(self.started), "finished": _iso(self.finished)}
        if self.status == DONE:
            body["result"] = self.result
        elif self.status == FAILED:
            body["error"] = self.error
        return body


class JobQueue:
    def __init__(self, run: Runner, max_queued: int = 8, ttl_s: float = 600.0, max_kept: int = 100) -> None:
        self._run = run
        self.ttl_s = ttl_s
        self.max_kept = max_kept
        self._queue: queue.Queue[Job] = queue.Queue(maxsize=max_queued)
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._worker = threading.Thread(target=self._work, name="analysis-jobs", daemon=True)
        self._worker.start()

    def submit(self, payload: Any) -> Job:
        """Queue ``payload``; raises ``AnalysisError`` 429 when the queue is full."""
        job = Job(id=secrets.token_urlsafe(12), payload=payload)
        with self._lock:
            self._purge()
            try:
                self._queue.put_nowait(job)
            except queue.Full:
                raise AnalysisError("queue_full", f"{self._queue.maxsize} jobs are already waiting; "
                                    "retry when one has finished", 429) from None
            self._jobs[job.id] = job
        log.info("job %s queued (%d waiting)", job.id, self._queue.qsize())
        return job

    def get(self, job_id: str) -> dict | None:
        """The job's state as JSON, or None when it does not exist or has expired."""
        with self._lock:
            self._purge()
            job = self._jobs.get(job_id)
            return job.to_json() if job is not None else None

    def counts(self) -> dict:
        with self._lock:
            states = [job.status for job in self._jobs.values()]
        return {state: states.count(state) for state in (QUEUED, RUNNING, DONE, FAILED)}

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            with self._lock:
                job.status, job.started = RUNNING, time.time()
            try:
                result = self._run(job.payload, lambda done, total: self._progress(job, done, total))
            except AnalysisError as error:
                self._finish(job, FAILED, error={**error.to_json()["error"], "status": error.status})
            except Exception:
                log.exception("job %s failed unexpectedly", job.id)
                self._finish(job, FAILED, error={"code": "internal_error", "status": 500,
                                                 "message": "the analysis failed unexpectedly"})
            else:
                self._finish(job, DONE, result=result)
            finally:
                self._queue.task_done()

    def _progress(self, job: Job, done: int, total: int | None) -> None:
        with self._lock:
            # A video's frame count is an estimate: never report more frames done than expected.
            job.frames_done, job.frames_total = done, (max(total, done) if total is not None else None)

    def _finish(self, job: Job, status: str, result: dict | None = None, error: dict | None = None) -> None:
        with self._lock:
            job.status, job.finished, job.result, job.error = status, time.time(), result, error
            if status == DONE:
                job.frames_total = job.frames_done
            job.payload = None          # the request (and its uploads) is no longer needed
        log.info("job %s %s in %.1f s", job.id, status, job.finished - job.started)

    def _purge(self) -> None:
        """Forget finished jobs past their time, and the oldest ones beyond ``max_kept``. Caller holds the lock."""
        now = time.time()
        finished = sorted((job for job in self._jobs.values() if job.finished is not None),
                          key=lambda job: job.finished)
        excess = len(finished) - self.max_kept
        for number, job in enumerate(finished):
            if number < excess or now - job.finished > self.ttl_s:
                del self._jobs[job.id]


def _iso(stamp: float | None) -> str | None:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp)) if stamp is not None else None
