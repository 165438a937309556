"""The durable job store: one SQLite database (WAL mode) in the data folder, the queue and the answers.

Every change is one SQLite transaction, so a process killed at any moment leaves the store as it was before
or after that change, never between; ``synchronous=FULL`` makes a committed change survive a power cut too.
In this process one connection serves every thread, behind one lock (one writer); other processes sharing
the folder take turns through SQLite's own file locks (``BEGIN IMMEDIATE`` waits up to ``BUSY_TIMEOUT_S``).

The table *is* the queue: a job waits as a ``queued`` row and the next one to run is the oldest (lowest
``seq``, the submission order), so jobs that wait or were interrupted by a restart run in their original
order. A ``running`` row names its owner, the instance (``datafolder``) running it; a row whose owner is no
longer alive is queued again (``recover``). Every write a worker makes to its job is conditional on it still
being the owner, so a worker that lost its job (requeued at shutdown, taken over after a stall) cannot
overwrite what happened since. A job's ``models_key`` (the column ``runner``, named so in
stores already written) is a fingerprint of the models it was submitted to: a process only runs the jobs its own
models were asked for, so servers with different models may share a folder without answering for each other.

Expired jobs are deleted and their ids kept in ``expired`` for a while, so that a late poll can be told
``job_expired`` rather than ``job_not_found``.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from faceanalysis.service.contract import DONE, FAILED, QUEUED, RUNNING
from faceanalysis.service.datafolder import DataFolder, DataFolderError
from facecore.errors import AnalysisError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 30.0
EXPIRED_IDS_KEPT = 10_000       # at most this many expired ids are remembered, however short the TTL
DAMAGED = ("SQLITE_CORRUPT", "SQLITE_NOTADB")
SCHEMA = (
    """CREATE TABLE jobs (
        seq          INTEGER PRIMARY KEY AUTOINCREMENT,  -- submission order, the queue's order: never reused
        id           TEXT NOT NULL UNIQUE,
        status       TEXT NOT NULL,
        runner       TEXT NOT NULL,                      -- fingerprint of the models the job was submitted to
        request      TEXT NOT NULL,                      -- JSON: what to analyse (AnalysisRequest.record)
        has_uploads  INTEGER NOT NULL,                   -- its files are in uploads/<id>/ until it ends
        owner        TEXT,                               -- the instance running it
        attempts     INTEGER NOT NULL DEFAULT 0,         -- starts cut short by a crash, plus the current one
        frames_done  INTEGER NOT NULL DEFAULT 0,
        frames_total INTEGER,
        created      REAL NOT NULL,
        started      REAL,
        finished     REAL,
        result       TEXT,
        error        TEXT)""",
    "CREATE INDEX jobs_queue ON jobs (status, runner, seq)",
    "CREATE INDEX jobs_finished ON jobs (finished) WHERE finished IS NOT NULL",
    "CREATE TABLE expired (id TEXT PRIMARY KEY, expired REAL NOT NULL)",
    "CREATE INDEX expired_time ON expired (expired)",
)
_COLUMNS = "id, status, created, started, finished, frames_done, frames_total, result, error"
# A job whose request asked to keep its uploads until it expires (the option keep_upload), read from the stored
# request so the schema stays as it is.
_KEEPS = "coalesce(json_extract(request, '$.options.keep_upload'), 0) = 1"


class QueueFull(Exception):
    """As many jobs as allowed already wait."""


class StoreClosed(Exception):
    """The store was closed (the server is shutting down)."""


class _Damaged(Exception):
    """The database file is not a healthy SQLite database."""


@dataclass(frozen=True)
class JobRow:
    id: str
    status: str
    created: float
    started: float | None
    finished: float | None
    frames_done: int
    frames_total: int | None
    result: dict | None
    error: dict | None


@dataclass(frozen=True)
class Claim:
    """A job this process has just taken to run."""
    id: str
    request: dict
    uploads: Path | None


class JobStore:
    def __init__(self, folder: DataFolder, clock: Callable[[], float] = time.time) -> None:
        self.folder = folder
        self._clock = clock
        self._lock = threading.RLock()
        self._db: sqlite3.Connection | None = None
        db = sqlite3.connect(folder.store_path, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                             check_same_thread=False)
        try:
            _prepare(db)
        except BaseException:
            db.close()
            raise
        self._db = db

    @classmethod
    def open(cls, folder: DataFolder, clock: Callable[[], float] = time.time) -> "JobStore":
        """Open the folder's store, creating it on first use. A damaged store file (an empty one included) is
        moved aside (with a warning) and a fresh store started, once: if that fails too, ``DataFolderError``,
        never a loop. A store file that cannot be written, is a folder or a dangling link: ``DataFolderError``
        naming it."""
        problem = store_problem(folder.store_path)
        if problem is not None:
            raise DataFolderError(f"the data folder {folder.root} cannot be used: {problem}")
        try:
            if _is_empty_file(folder.store_path) and not folder.other_instances():
                # SQLite would take an empty file for a new database and fill it: the jobs it held are gone.
                # (With another server running, the file may be the new store it is making this instant.)
                raise _Damaged("the file is empty (0 bytes)")
            return cls._opened(folder, clock)
        except _Damaged as error:
            damage = str(error)
        except sqlite3.DatabaseError as error:
            if getattr(error, "sqlite_errorname", "") not in DAMAGED:
                raise _unusable(folder, error) from None
            damage = str(error)
        others = folder.other_instances()
        if others:
            raise DataFolderError(f"the job store {folder.store_path} is damaged ({damage}), and {len(others)} other "
                                  "server process(es) use this data folder: stop them, then start again")
        aside = _move_aside(folder.store_path, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
        log.warning("the job store %s is damaged (%s): moved aside to %s and started a fresh, empty store; the "
                    "jobs it held are lost", folder.store_path, damage, aside)
        try:
            return cls._opened(folder, clock)
        except (_Damaged, sqlite3.DatabaseError) as error:
            raise _unusable(folder, error) from None

    @classmethod
    def _opened(cls, folder: DataFolder, clock: Callable[[], float]) -> "JobStore":
        store = cls(folder, clock)
        # The store holds where the uploads (face pictures) are and every answer: for this user alone. SQLite
        # gives its -wal and -shm files the database file's mode.
        for suffix in ("", "-wal", "-shm"):
            try:
                os.chmod(folder.store_path.with_name(folder.store_path.name + suffix), 0o600)
            except FileNotFoundError:
                pass
            except OSError as error:
                log.warning("could not make the job store file private (chmod 600): %s", error)
        return store

    def problem(self) -> str | None:
        """Why the store cannot be written now (its file replaced, made read-only or immutable), or None."""
        return store_problem(self.folder.store_path)

    # --- transactions ---------------------------------------------------------------------------------------

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._db is None:
                raise StoreClosed()
            yield self._db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One transaction that holds the database's write lock from its start, so what it reads stays true
        until it commits, in this process and every other."""
        with self._read() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

    # --- a job's life ---------------------------------------------------------------------------------------

    def add(self, job_id: str, models_key: str, request: dict, workdir: Path | None, max_queued: int) -> JobRow:
        """Accept a job: its row, and its uploads moved from ``workdir`` to ``uploads/<id>/``, in one transaction.
        Raises ``QueueFull`` when ``max_queued`` jobs of the same models already wait."""
        target = self.folder.upload_dir(job_id)
        moved = False
        try:
            with self._write() as db:
                waiting = db.execute("SELECT count(*) FROM jobs WHERE status = ? AND runner = ?",
                                     (QUEUED, models_key)).fetchone()[0]
                if waiting >= max_queued:
                    raise QueueFull(waiting)
                now = self._clock()
                db.execute("INSERT INTO jobs (id, status, runner, request, has_uploads, created) "
                           "VALUES (?, ?, ?, ?, ?, ?)",
                           (job_id, QUEUED, models_key, json.dumps(request), workdir is not None, now))
                if workdir is not None:
                    # Inside the transaction: the file sweep takes the same lock, so it never sees these
                    # files without their row. A crash before the commit leaves them without one, for the
                    # next sweep to remove; the client got no 202 for them.
                    workdir.rename(target)
                    moved = True
        except BaseException:
            if moved:
                shutil.rmtree(target, ignore_errors=True)
            raise
        return JobRow(job_id, QUEUED, now, None, None, 0, None, None, None)

    def claim(self, owner: str, models_key: str) -> Claim | None:
        """Take the oldest queued job of the models ``models_key`` names for ``owner`` to run, or None."""
        with self._write() as db:
            row = db.execute("SELECT id, request, has_uploads FROM jobs WHERE status = ? AND runner = ? "
                             "ORDER BY seq LIMIT 1", (QUEUED, models_key)).fetchone()
            if row is None:
                return None
            db.execute("UPDATE jobs SET status = ?, owner = ?, started = ?, attempts = attempts + 1, "
                       "frames_done = 0, frames_total = NULL WHERE id = ?", (RUNNING, owner, self._clock(), row[0]))
        return Claim(row[0], json.loads(row[1]), self.folder.upload_dir(row[0]) if row[2] else None)

    def progress(self, job_id: str, owner: str, done: int, total: int | None) -> bool:
        """Record frames done; False when ``owner`` no longer runs the job."""
        with self._write() as db:
            return db.execute("UPDATE jobs SET frames_done = ?, frames_total = ? "
                              "WHERE id = ? AND owner = ? AND status = ?",
                              (done, total, job_id, owner, RUNNING)).rowcount == 1

    def finish(self, job_id: str, owner: str, result: dict | None = None, error: dict | None = None,
               keep_uploads: bool = False) -> bool:
        """The job's answer (``result``) or its error; its uploads go, unless ``keep_uploads`` (they then go when
        the job expires). False when ``owner`` no longer runs it."""
        status = DONE if error is None else FAILED
        with self._write() as db:
            changed = db.execute(
                "UPDATE jobs SET status = ?, owner = NULL, finished = ?, result = ?, error = ?, "
                "frames_total = CASE WHEN ? = 'done' THEN frames_done ELSE frames_total END "
                "WHERE id = ? AND owner = ? AND status = ?",
                (status, self._clock(), _dumps(result), _dumps(error), status, job_id, owner, RUNNING)).rowcount
        if changed and not keep_uploads:
            # After the commit: a crash before this leaves the files to the sweep, never a job without them.
            shutil.rmtree(self.folder.upload_dir(job_id), ignore_errors=True)
        return changed == 1

    def cancel(self, job_id: str, error: dict) -> bool:
        """End a queued or running job as failed with ``error``. A worker running it notices at its next
        progress report (which then finds the job no longer running) and stops. False when the job is not
        queued or running. Its uploads go with the next sweep, or when it expires if it keeps them."""
        with self._write() as db:
            return db.execute(
                "UPDATE jobs SET status = ?, owner = NULL, finished = ?, error = ? WHERE id = ? AND status IN (?, ?)",
                (FAILED, self._clock(), _dumps(error), job_id, QUEUED, RUNNING)).rowcount == 1

    def kept_upload(self, job_id: str) -> tuple[dict, Path] | None:
        """The request of a job that keeps its uploads and the folder holding them, or None (no such job, no
        uploads, or not kept)."""
        with self._read() as db:
            row = db.execute(f"SELECT request FROM jobs WHERE id = ? AND has_uploads AND {_KEEPS}",
                             (job_id,)).fetchone()
        return (json.loads(row[0]), self.folder.upload_dir(job_id)) if row is not None else None

    def requeue(self, job_id: str, owner: str) -> bool:
        """Put a job this process was running back at its place in the queue (a shutdown that could not
        wait for it); this start does not count as one cut short by a crash."""
        with self._write() as db:
            return db.execute(
                "UPDATE jobs SET status = ?, owner = NULL, started = NULL, frames_done = 0, frames_total = NULL, "
                "attempts = max(attempts - 1, 0) WHERE id = ? AND owner = ? AND status = ?",
                (QUEUED, job_id, owner, RUNNING)).rowcount == 1

    # --- reading --------------------------------------------------------------------------------------------

    def get(self, job_id: str) -> JobRow | None:
        with self._read() as db:
            row = db.execute(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            return None
        return JobRow(*row[:7], result=_loads(row[7]), error=_loads(row[8]))

    def was_expired(self, job_id: str) -> bool:
        with self._read() as db:
            return db.execute("SELECT 1 FROM expired WHERE id = ?", (job_id,)).fetchone() is not None

    def counts(self) -> dict[str, int]:
        with self._read() as db:
            found = dict(db.execute("SELECT status, count(*) FROM jobs GROUP BY status").fetchall())
        return {state: found.get(state, 0) for state in (QUEUED, RUNNING, DONE, FAILED)}

    # --- upkeep ---------------------------------------------------------------------------------------------

    def expire(self, ttl_s: float, max_kept: int, remember_s: float) -> list[str]:
        """Forget finished jobs past ``ttl_s``, and the oldest beyond ``max_kept``; remember their ids for
        ``remember_s``. Returns the ids forgotten now."""
        now = self._clock()
        with self._write() as db:
            gone = [job_id for (job_id,) in db.execute(
                "SELECT id FROM jobs WHERE finished IS NOT NULL AND (finished < ? OR id IN "
                "(SELECT id FROM jobs WHERE finished IS NOT NULL ORDER BY finished DESC, seq DESC "
                "LIMIT -1 OFFSET ?))", (now - ttl_s, max_kept))]
            db.executemany("INSERT OR REPLACE INTO expired (id, expired) VALUES (?, ?)",
                           [(job_id, now) for job_id in gone])
            db.executemany("DELETE FROM jobs WHERE id = ?", [(job_id,) for job_id in gone])
            db.execute("DELETE FROM expired WHERE expired < ? OR id IN "
                       "(SELECT id FROM expired ORDER BY expired DESC LIMIT -1 OFFSET ?)",
                       (now - remember_s, EXPIRED_IDS_KEPT))
            # Inside the transaction, like the sweep: uploads kept for playback go with their job.
            moved = self.folder.discard([path for path in map(self.folder.upload_dir, gone) if path.exists()])
        self.folder.remove(moved)
        if gone:
            log.info("%d finished job(s) expired", len(gone))
        return gone

    def recover(self, max_attempts: int) -> tuple[list[str], list[str]]:
        """Queue again, at their old place, the running jobs whose process died; a job that was cut short
        ``max_attempts`` times fails instead, so one input that kills the process cannot do so forever.
        Returns (requeued ids, failed ids)."""
        requeued, failed = [], []
        with self._write() as db:
            for job_id, owner, attempts in db.execute("SELECT id, owner, attempts FROM jobs WHERE status = ? "
                                                      "ORDER BY seq", (RUNNING,)).fetchall():
                if self.folder.alive(owner):
                    continue
                if attempts >= max_attempts:
                    error = AnalysisError("internal_error", f"the server stopped {attempts} times while running "
                                                            "this job; it is not tried again").to_record()
                    db.execute("UPDATE jobs SET status = ?, owner = NULL, finished = ?, error = ? WHERE id = ?",
                               (FAILED, self._clock(), json.dumps(error), job_id))
                    failed.append(job_id)
                else:
                    db.execute("UPDATE jobs SET status = ?, owner = NULL, started = NULL, frames_done = 0, "
                               "frames_total = NULL WHERE id = ?", (QUEUED, job_id))
                    requeued.append(job_id)
        if requeued:
            log.warning("%d job(s) whose server stopped while running them are queued again: %s",
                        len(requeued), ", ".join(requeued))
        if failed:
            log.error("%d job(s) failed after cutting their server short %d times: %s", len(failed),
                      max_attempts, ", ".join(failed))
        return requeued, failed

    def sweep_files(self) -> int:
        """Remove every file no live job or process owns (``DataFolder.orphans``); returns how many."""
        with self._write() as db:
            live = {job_id for (job_id,) in db.execute(f"SELECT id FROM jobs WHERE status IN (?, ?) OR {_KEEPS}",
                                                         (QUEUED, RUNNING))}
            moved = self.folder.discard(self.folder.orphans(live))
        self.folder.remove(moved)
        if moved:
            log.info("removed %d orphan file(s) from %s", len(moved), self.folder.root)
        return len(moved)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


def _prepare(db: sqlite3.Connection) -> None:
    """Settings, a health check, and the schema (made on first use)."""
    mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if mode.lower() != "wal":
        raise sqlite3.OperationalError(f"cannot use write-ahead logging (journal mode {mode})")
    db.execute("PRAGMA synchronous = FULL")
    check = [row[0] for row in db.execute("PRAGMA quick_check").fetchall()]
    if check != ["ok"]:
        raise _Damaged("; ".join(check[:3]))
    db.execute("BEGIN IMMEDIATE")
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            # executescript would commit the transaction first; statement by statement keeps it atomic.
            for statement in SCHEMA:
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        elif version != SCHEMA_VERSION:
            raise sqlite3.OperationalError(f"the store has schema version {version}; this server reads "
                                           f"version {SCHEMA_VERSION}")
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def store_problem(path: Path) -> str | None:
    """Why the store file at ``path`` (and its -wal and -shm files) cannot be written, in words naming the file;
    None when it can, or does not exist yet. Opening for writing is the test: ``chmod`` does not stop root, but
    an immutable file (``chattr +i``) or a read-only mount stops everyone."""
    if path.is_symlink() and not path.exists():
        return f"the job store {path} is a link to {os.readlink(path)}, which does not exist"
    if path.is_dir():
        return f"the job store {path} is a folder, not a file: move it away"
    for suffix in ("", "-wal", "-shm"):
        file = path.with_name(path.name + suffix)
        try:
            fd = os.open(file, os.O_RDWR)
        except FileNotFoundError:
            continue
        except OSError as error:
            why = ("it is read-only or not writable by this user" if error.errno in (errno.EACCES, errno.EPERM,
                                                                                       errno.EROFS)
                   else error.strerror or str(error))
            return f"the job store file {file} cannot be written: {why}"
        os.close(fd)
    return None


def _is_empty_file(path: Path) -> bool:
    try:
        return path.stat().st_size == 0
    except FileNotFoundError:
        return False


def _move_aside(path: Path, stamp: str) -> Path:
    aside = path.with_name(f"{path.name}.damaged-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        source = path.with_name(path.name + suffix)
        if source.exists():
            os.replace(source, aside.with_name(aside.name + suffix))
    return aside


def _unusable(folder: DataFolder, error: Exception) -> DataFolderError:
    name = getattr(error, "sqlite_errorname", "")
    if name in ("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM"):
        why = "it is read-only or not writable by this user"
    elif name == "SQLITE_FULL":
        why = "the disk is full"
    else:
        why = str(error)
    return DataFolderError(f"the data folder {folder.root} cannot be used: the job store {folder.store_path}: {why}")


def _dumps(value) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))


def _loads(text: str | None):
    return None if text is None else json.loads(text)
