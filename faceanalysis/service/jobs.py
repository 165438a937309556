"""Background analyses: a durable, bounded queue (job_store.py), one worker thread, answers kept for a while.

There is one set of models per process and it analyses one sequence at a time, so one worker is all that can
make progress; more threads would only wait on the analyzer's lock. The queue is bounded so that a burst of
submissions is refused (``queue_full``, 429) instead of piling up uploads on disk. Finished jobs are forgotten
``ttl_s`` seconds after they end, and at most ``max_kept`` of them are held, so the store stays bounded however
long the service runs; a forgotten id answers ``job_expired`` (410) for a while, an unknown one
``job_not_found`` (404).

Jobs live in the store, not in this process: a job accepted (202) is in the store before the answer is sent,
so it survives a restart, a crash or a shutdown, and any server process sharing the data folder may run it.
A sweeper thread, at start-up and then every ``sweep_s`` seconds, queues again the jobs whose process died,
forgets expired jobs, and removes files nothing owns.
"""

from __future__ import annotations

import logging
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from faceanalysis.pipeline.analyzer import Progress
from faceanalysis.service.contract import DONE, FAILED, Job, JobError, JobProgress, Limits
from faceanalysis.service.job_store import Claim, JobRow, JobStore, QueueFull, StoreClosed
from faceanalysis.service.schema import ABSENT, to_json
from facecore.errors import AnalysisError

log = logging.getLogger(__name__)

# A job whose process died this many times while running it fails instead of running again: an input that
# kills the process (a decoder crash) must not take every restart down with it.
MAX_ATTEMPTS = 3
# How often an idle worker looks for jobs that another process sharing the data folder accepted (a
# submission to this process wakes it at once).
POLL_S = 1.0
# When the store cannot take a job's outcome (a full disk, an I/O error), the worker tries again after these
# pauses (seconds), then every RECORD_PAUSE_MAX_S; from the RESULT_TRIES-th try on, a failed write of the
# answer is followed by a try of the much smaller error storage_unavailable. The job stays running (its
# worker alive, trying) until one is written or the server shuts down.
RECORD_PAUSES_S = (0.25, 0.5, 1.0, 2.0)
RECORD_PAUSE_MAX_S = 10.0
RESULT_TRIES = 3
STORAGE_FAILED = AnalysisError("storage_unavailable", "the analysis ended but its outcome could not be stored "
                               "(see the server log); submit the job again").to_record()
# progress(frames_done, frames_total_or_None); run(request record, its uploads folder, progress) -> answer
Runner = Callable[[dict, "Path | None", Progress], dict]


class Interrupted(Exception):
    """Raised from the progress callback: the job was handed back (shutdown) or taken over; stop working on it."""


@dataclass(frozen=True)
class JobPolicy:
    max_queued: int = 8
    ttl_s: float = 600.0
    max_kept: int = 100
    sweep_s: float = 60.0
    remember_s: float = 7 * 24 * 3600.0

    @classmethod
    def from_limits(cls, limits: Limits) -> "JobPolicy":
        return cls(max_queued=limits.job_queue_size, ttl_s=limits.job_ttl_seconds, max_kept=limits.jobs_kept,
                   sweep_s=limits.job_sweep_seconds, remember_s=limits.expired_jobs_remembered_seconds)


class JobQueue:
    def __init__(self, store: JobStore, run: Runner, models_key: str, policy: JobPolicy = JobPolicy()) -> None:
        """``models_key`` names the models ``run`` answers with: only jobs submitted to the same models are run."""
        self._store = store
        self._run = run
        self._models_key = models_key
        self._owner = store.folder.instance
        self.policy = policy
        self._wake = threading.Condition()          # a submission, a finished job, a shutdown
        self._current: str | None = None            # the job the worker runs; guarded by _wake
        self._claim_lock = threading.Lock()
        self._stopping = threading.Event()
        self._hand_back = threading.Event()         # the running job goes back to the queue: stop it
        # Jobs cut short by a crash are queued again, and a crash's leftovers removed, before anything runs.
        self.sweep()
        self._threads = [threading.Thread(target=self._work, name="analysis-jobs", daemon=True),
                         threading.Thread(target=self._sweep_now_and_then, name="job-sweeper", daemon=True)]
        for thread in self._threads:
            thread.start()

    # --- what the API asks --------------------------------------------------------------------------------

    def submit(self, request: dict, workdir: Path | None) -> JobRow:
        """Accept a job for ``request`` (``AnalysisRequest.record()``), taking over the uploads in ``workdir``.
        Raises ``AnalysisError``: 429 when the queue is full, 503 when the store cannot take it."""
        job_id = secrets.token_urlsafe(12)
        try:
            job = self._store.add(job_id, self._models_key, request, workdir, self.policy.max_queued)
        except QueueFull:
            raise AnalysisError("queue_full", f"{self.policy.max_queued} jobs are already waiting; "
                                "retry when one has finished") from None
        except (sqlite3.Error, OSError, StoreClosed):
            log.exception("could not store job %s", job_id)
            raise AnalysisError("storage_unavailable", "the job could not be stored (see the server log); "
                                "retry later") from None
        with self._wake:
            self._wake.notify_all()
        log.info("job %s queued", job_id)
        return job

    def get(self, job_id: str) -> dict:
        """The job's state as JSON; ``AnalysisError`` 404 ``job_not_found`` or 410 ``job_expired``."""
        job = self._store.get(job_id)
        if job is not None and not self._past_ttl(job):
            return job_json(job, self.policy.ttl_s)
        if job is not None or self._store.was_expired(job_id):
            raise AnalysisError("job_expired", f"job {job_id!r} finished more than {self.policy.ttl_s:g} s ago "
                                "(or more recent jobs took its place) and its answer was deleted")
        raise AnalysisError("job_not_found", f"no job {job_id!r}: check the id (expired ids are remembered "
                            f"for {self.policy.remember_s / 3600:g} h)")

    def cancel(self, job_id: str) -> dict:
        """Cancel a queued or running job: it ends as failed with ``cancelled``. Raises ``AnalysisError``: 409
        ``job_finished`` for a job that already ended, 404/410 as ``get`` for an unknown or forgotten one."""
        state = self.get(job_id)
        error = AnalysisError("cancelled", "the job was cancelled before it finished").to_record()
        if not self._store.cancel(job_id, error):
            state = self.get(job_id)
            if state["status"] in (DONE, FAILED):
                raise AnalysisError("job_finished", f"job {job_id!r} has already ended ({state['status']}): "
                                    "there is nothing to cancel")
        log.info("job %s cancelled (it was %s)", job_id, state["status"])
        return self.get(job_id)

    def kept_upload(self, job_id: str) -> tuple[dict, Path]:
        """The request record and uploads folder of a job that keeps its uploads (``keep_upload``). Raises
        ``AnalysisError`` 404 ``upload_not_kept`` when it does not, 404/410 as ``get`` for an unknown job."""
        self.get(job_id)
        kept = self._store.kept_upload(job_id)
        if kept is None or not kept[1].is_dir():
            raise AnalysisError("upload_not_kept", f"job {job_id!r} did not keep its upload: submit it with "
                                "keep_upload=true (a sample is read from samples/ instead)")
        return kept

    def counts(self) -> dict:
        return self._store.counts()

    # --- the worker ---------------------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            # Claiming and naming the job running happen under one lock that shutdown() takes too, so a
            # shutdown never misses a job claimed at the same moment.
            with self._claim_lock:
                if self._stopping.is_set():
                    return
                try:
                    claim = self._store.claim(self._owner, self._models_key)
                except StoreClosed:
                    return
                except sqlite3.Error:
                    log.exception("could not read the job queue; trying again in %.0f s", POLL_S)
                    claim = None
                if claim is not None:
                    with self._wake:
                        self._current = claim.id
            if claim is None:
                with self._wake:
                    if not self._stopping.is_set():
                        self._wake.wait(POLL_S)
                continue
            self._run_one(claim)

    def _run_one(self, claim: Claim) -> None:
        log.info("job %s running", claim.id)
        started = time.monotonic()
        outcome: dict | None = None
        try:
            outcome = {"result": self._run(claim.request, claim.uploads,
                                           lambda done, total: self._progress(claim.id, done, total))}
        except Interrupted:
            log.info("job %s stopped: it is back in the queue, or was cancelled", claim.id)
        except AnalysisError as error:
            outcome = {"error": error.to_record()}
        except Exception:
            log.exception("job %s failed unexpectedly", claim.id)
            outcome = {"error": AnalysisError("internal_error", "the analysis failed unexpectedly").to_record()}
        # The request is opaque here but for this one option: a job that keeps its uploads for playback.
        keep = bool((claim.request.get("options") or {}).get("keep_upload"))
        try:
            if outcome is not None:
                self._record(claim.id, outcome, started, keep)
        finally:
            with self._wake:
                self._current = None
                self._wake.notify_all()

    def _record(self, job_id: str, outcome: dict, started: float, keep_uploads: bool = False) -> None:
        """Write the job's outcome, trying again while the store cannot take it (see RECORD_PAUSES_S)."""
        tries = 0
        while True:
            tries += 1
            attempts = [outcome]
            if tries >= RESULT_TRIES and "result" in outcome:
                attempts.append({"error": STORAGE_FAILED})
            for attempt in attempts:
                try:
                    if self._store.finish(job_id, self._owner, **attempt, keep_uploads=keep_uploads):
                        log.info("job %s %s in %.1f s", job_id, DONE if "result" in attempt else FAILED,
                                 time.monotonic() - started)
                        self._store.expire(self.policy.ttl_s, self.policy.max_kept, self.policy.remember_s)
                    return
                except StoreClosed:
                    return              # shut down meanwhile: the job was handed back, or runs again at start-up
                except (sqlite3.Error, OSError) as error:
                    log.warning("could not store the outcome of job %s (try %d): %s", job_id, tries, error)
            pause = RECORD_PAUSES_S[tries - 1] if tries <= len(RECORD_PAUSES_S) else RECORD_PAUSE_MAX_S
            if self._stopping.wait(pause):
                log.error("job %s: its outcome could not be stored before the shutdown", job_id)
                return

    def _progress(self, job_id: str, done: int, total: int | None) -> None:
        if self._hand_back.is_set():
            raise Interrupted()
        # A video's frame count is an estimate: never report more frames done than expected.
        total = max(total, done) if total is not None else None
        try:
            mine = self._store.progress(job_id, self._owner, done, total)
        except StoreClosed:
            raise Interrupted() from None
        except sqlite3.Error:
            log.warning("could not record the progress of job %s", job_id, exc_info=True)
            return
        if not mine:
            raise Interrupted()

    # --- upkeep and shutdown ------------------------------------------------------------------------------

    def sweep(self) -> None:
        """Queue again the jobs of processes that died, forget expired jobs, remove files nothing owns."""
        try:
            requeued, _ = self._store.recover(MAX_ATTEMPTS)
            self._store.expire(self.policy.ttl_s, self.policy.max_kept, self.policy.remember_s)
            self._store.sweep_files()
        except StoreClosed:
            return
        except (sqlite3.Error, OSError):
            log.exception("the sweep of the data folder failed; it runs again in %g s", self.policy.sweep_s)
            return
        if requeued:
            with self._wake:
                self._wake.notify_all()

    def _sweep_now_and_then(self) -> None:
        while not self._stopping.wait(self.policy.sweep_s):
            self.sweep()

    def shutdown(self, deadline: float, hurry: threading.Event | None = None) -> str | None:
        """Take no more jobs; give the running one until ``deadline`` (``time.monotonic()``) or until ``hurry``
        is set, then put it back in the queue at its place. Returns the id of the job handed back, if any."""
        self._stopping.set()
        with self._claim_lock:
            pass                        # a claim under way ends first (naming its job); none starts after this
        with self._wake:
            self._wake.notify_all()
            while self._current is not None and not (hurry is not None and hurry.is_set()):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._wake.wait(min(left, 0.2))
            running = self._current
            if running is not None:
                self._hand_back.set()
        if running is not None and self._store.requeue(running, self._owner):
            log.warning("job %s did not finish within the grace period: it is back in the queue and runs again "
                        "from the start", running)
            return running
        return None

    def _past_ttl(self, job: JobRow) -> bool:
        return job.finished is not None and time.time() - job.finished > self.policy.ttl_s


def job_json(job: JobRow, ttl_s: float) -> dict:
    """A stored job as the API's ``Job`` answer."""
    return to_json(Job(
        id=job.id, status=job.status,
        progress=JobProgress(frames_done=job.frames_done, frames_total=job.frames_total),
        created=_iso(job.created), started=_iso(job.started), finished=_iso(job.finished),
        expires=_iso(job.finished + ttl_s) if job.finished is not None else None,
        result=job.result if job.status == DONE else ABSENT,
        error=JobError(**job.error) if job.status == FAILED else ABSENT))


def _iso(stamp: float | None) -> str | None:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp)) if stamp is not None else None
