"""What one app holds beyond a single request: its data folder and job store, its job queue, and whether it still
takes new work; and the graceful shutdown that ends them.

The app hands the runtime the function that runs a job; the runtime builds the job queue with it (on first use,
with the limits of then) and hands the queue out. A request analysed at once only needs a folder for its
uploads: it gets one in the data folder without the job store being opened.

A shutdown (``Runtime.shutdown``, called by the server on SIGTERM/SIGINT) first refuses new work: requests that
would start an analysis or accept a job get 503 ``shutting_down`` with ``Retry-After``, and ``/readyz`` says not
ready, while status polls are still answered. It then gives the requests already analysing and the running job
the grace period to finish; a job still running then goes back to the queue, at its place, for the next start.
Last it closes the store and removes this process's temporary files.

An app made without a store (tests, ``create_app`` from code) gets a private temporary data folder, made on
first use and removed at shutdown or when the interpreter exits; its job store is opened when jobs are first used.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import math
import shutil
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from faceanalysis.service.contract import Limits
from faceanalysis.service.datafolder import DataFolder
from faceanalysis.service.job_store import JobStore
from faceanalysis.service.jobs import JobPolicy, JobQueue, Progress

# run_job(request record, its uploads folder, progress, the limits the queue was made with) -> the answer
JobRun = Callable[[dict, "Path | None", Progress, Limits], dict]


class ShuttingDown(Exception):
    """The service takes no new work."""


class Lifecycle:
    """Whether new work is taken, and how much is under way: a counter that a shutdown waits on."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._busy = 0
        self._stopping = False

    @property
    def stopping(self) -> bool:
        return self._stopping

    @contextmanager
    def work(self) -> Iterator[None]:
        """Count a request that starts work for as long as it lasts; ``ShuttingDown`` once a shutdown began."""
        with self._changed:
            if self._stopping:
                raise ShuttingDown()
            self._busy += 1
        try:
            yield
        finally:
            with self._changed:
                self._busy -= 1
                self._changed.notify_all()

    def stop(self) -> None:
        with self._changed:
            self._stopping = True

    def wait_idle(self, deadline: float, hurry: threading.Event | None = None) -> bool:
        """Wait until no work is under way, ``deadline`` (``time.monotonic()``) passes or ``hurry`` is set."""
        with self._changed:
            while self._busy and not (hurry is not None and hurry.is_set()):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(min(left, 0.2))
            return self._busy == 0


class Runtime:
    def __init__(self, store: JobStore | None = None, run_job: JobRun | None = None, models_key: str = "") -> None:
        """``store`` is the server's opened store; None makes a temporary data folder on first use. ``run_job``
        analyses a job for the models ``models_key`` names (``models_key_of``); None: this runtime takes no jobs."""
        self.lifecycle = Lifecycle()
        self.retry_after_s = 30             # Retry-After of a refusal: the grace period, once a shutdown began
        self._store = store
        self._folder = store.folder if store is not None else None
        self._run_job = run_job
        self._models_key = models_key
        self._jobs: JobQueue | None = None
        self._lock = threading.Lock()
        self._closed = False
        self.left_running = False           # after shutdown: an analysis was still running when it returned

    def folder(self) -> DataFolder:
        """The data folder; a temporary one is made on first use when the server gave none."""
        with self._lock:
            if self._closed:
                raise ShuttingDown()
            if self._folder is None:
                root = Path(tempfile.mkdtemp(prefix="faceanalysis-data-"))
                self._folder = DataFolder.open(root, min_free=0)
                # Tests make many apps and never shut them down: the folder goes with the interpreter at the latest
                # (not with this object, as the queue's threads still use it).
                atexit.register(shutil.rmtree, root, True)
            return self._folder

    def store(self) -> JobStore:
        """The job store, opened in the data folder on first use when the server gave none."""
        folder = self.folder()
        with self._lock:
            if self._closed:
                raise ShuttingDown()
            if self._store is None:
                self._store = JobStore.open(folder)
            return self._store

    def storage_problem(self) -> str | None:
        """Why the job store cannot be written now, or None (also None before a store is made)."""
        with self._lock:
            store = self._store if not self._closed else None
        return store.problem() if store is not None else None

    def new_workdir(self) -> Path:
        """A private folder for one request's uploads, inside the data folder."""
        return self.folder().new_workdir()

    def jobs(self, limits: Limits) -> JobQueue:
        """The job queue, made (and the store recovered) on first use with these limits, running each job with
        the ``run_job`` this runtime was given."""
        if self._run_job is None:
            raise RuntimeError("this runtime was made without a function that runs a job")
        store = self.store()
        with self._lock:
            if self._jobs is None:
                if self.lifecycle.stopping:
                    raise ShuttingDown()
                run_job = self._run_job

                def run(record: dict, uploads: Path | None, progress: Progress) -> dict:
                    # The worker thread has no app context: the job runs with the limits the queue was made with.
                    return run_job(record, uploads, progress, limits)
                self._jobs = JobQueue(store, run, self._models_key, JobPolicy.from_limits(limits))
            return self._jobs

    def shutdown(self, grace_s: float, hurry: threading.Event | None = None) -> None:
        """Refuse new work, let what runs finish within ``grace_s`` (or until ``hurry`` is set), hand a job
        still running back to the queue, close the store and remove this process's temporary files."""
        deadline = time.monotonic() + grace_s
        self.retry_after_s = max(1, math.ceil(grace_s))
        self.lifecycle.stop()
        idle = self.lifecycle.wait_idle(deadline, hurry)
        with self._lock:
            jobs = self._jobs
        handed_back = jobs.shutdown(deadline, hurry) if jobs is not None else None   # polls still answered
        # An analysis that outlived the grace period is still running in native code, which nothing can stop.
        self.left_running = not idle or handed_back is not None
        with self._lock:
            store, folder, self._closed = self._store, self._folder, True
        if store is not None:
            store.close()
        if folder is not None:
            folder.close()


def models_key_of(settings: dict) -> str:
    """A short fingerprint of an analyzer's settings: which models a job was submitted to."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
