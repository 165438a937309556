"""The durable job store and queue (service/datafolder.py, job_store.py, jobs.py) with a stand-in runner, so no model
loads: restarts and crashes of a process (its instance lock let go), order, expiry, the sweep of orphan files,
a job that keeps killing its process, a damaged store, a read-only or full data folder, and the start-up
refusals of a real process (exit 2, the folder named) before any model loads.

A second process is played by a second ``DataFolder`` on the same folder: ``flock`` locks belong to open files,
so two handles in one process exclude each other exactly as two processes do; "dying" is letting go of the
instance lock without any of the clean-up a shutdown does.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import REPO
from faceanalysis.service.datafolder import DataFolder, DataFolderError
from faceanalysis.service.job_store import JobStore
from faceanalysis.service.jobs import MAX_ATTEMPTS, JobPolicy, JobQueue
from facecore.errors import AnalysisError
from service_process import Server, tiny_samples

MODELS_KEY = "models-a"


class Recorder:
    """A runner that answers ``{"n": request["n"]}``, in the order asked; ``gate`` holds it after its first
    progress report until set."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.ran: list[int] = []
        self.gate = gate
        self.running = threading.Event()

    def __call__(self, request: dict, uploads: Path | None, progress) -> dict:
        self.ran.append(request["n"])
        if uploads is not None:
            assert (uploads / "frame.bin").read_bytes() == b"frame"
        progress(0, 2)
        self.running.set()
        if self.gate is not None:
            assert self.gate.wait(30)
            progress(1, 2)              # raises Interrupted when the job was handed back or taken over
        return {"n": request["n"]}


def open_queue(root: Path, run, models_key: str = MODELS_KEY, **policy) -> JobQueue:
    return JobQueue(JobStore.open(DataFolder.open(root, min_free=0)), run, models_key,
                    JobPolicy(**{"sweep_s": 3600, **policy}))


def die(queue: JobQueue) -> None:
    """The process ends without a word: its worker stops claiming and its instance lock goes, nothing else."""
    queue._stopping.set()
    folder = queue._store.folder
    os.close(folder._lock_fd)
    folder._lock_fd = None


def upload(folder: DataFolder) -> Path:
    workdir = folder.new_workdir()
    (workdir / "frame.bin").write_bytes(b"frame")
    return workdir


def wait_until(condition, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def status(queue: JobQueue, job_id: str) -> str:
    return queue.get(job_id)["status"]


# --- restarts and crashes -------------------------------------------------------------------------------------

def test_a_crash_loses_no_job_and_the_next_start_runs_them_in_order(tmp_path):
    gate = threading.Event()
    first = Recorder(gate)
    before = open_queue(tmp_path, first)
    folder = before._store.folder
    ids = [before.submit({"n": n}, upload(folder) if n % 2 else None).id for n in range(4)]
    assert first.running.wait(10) and first.ran == [0]
    die(before)

    second = Recorder()
    after = open_queue(tmp_path, second)
    wait_until(lambda: all(status(after, job_id) == "done" for job_id in ids))
    assert second.ran == [0, 1, 2, 3]                   # the one cut short first, then in submission order
    assert [after.get(job_id)["result"] for job_id in ids] == [{"n": n} for n in range(4)]
    # The dead process's worker wakes up late: it may no longer write to the job it lost.
    gate.set()
    time.sleep(0.2)
    assert after.get(ids[0])["result"] == {"n": 0}
    assert list((tmp_path / "uploads").iterdir()) == []


def test_a_clean_shutdown_hands_the_running_job_back(tmp_path):
    gate = threading.Event()
    runner = Recorder(gate)
    queue = open_queue(tmp_path, runner)
    ids = [queue.submit({"n": n}, None).id for n in range(2)]
    assert runner.running.wait(10)
    assert queue.shutdown(time.monotonic() + 0.1) == ids[0]
    gate.set()
    store = queue._store
    wait_until(lambda: queue._current is None)
    assert [store.get(job_id).status for job_id in ids] == ["queued", "queued"]
    # Handed back at a shutdown is not a crash: it does not count towards MAX_ATTEMPTS.
    attempts = store._db.execute("SELECT attempts FROM jobs WHERE id = ?", (ids[0],)).fetchone()[0]
    assert attempts == 0


def test_a_job_that_keeps_killing_its_process_fails_after_max_attempts(tmp_path):
    ids = None
    for attempt in range(MAX_ATTEMPTS):
        runner = Recorder(threading.Event())
        queue = open_queue(tmp_path, runner)
        if ids is None:
            ids = [queue.submit({"n": 7}, None).id]
        assert runner.running.wait(10)
        die(queue)
    survivor = open_queue(tmp_path, Recorder())
    state = survivor.get(ids[0])
    assert state["status"] == "failed" and state["error"]["code"] == "internal_error"
    assert f"stopped {MAX_ATTEMPTS} times" in state["error"]["message"]


def test_servers_with_other_models_leave_each_others_jobs_alone(tmp_path):
    mine, theirs = Recorder(), Recorder()
    a = open_queue(tmp_path, mine, models_key="models-a")
    b = open_queue(tmp_path, theirs, models_key="models-b")
    job_a = a.submit({"n": 1}, None).id
    job_b = b.submit({"n": 2}, None).id
    wait_until(lambda: status(a, job_a) == "done" and status(b, job_b) == "done")
    assert (mine.ran, theirs.ran) == ([1], [2])
    assert b.get(job_a)["result"] == {"n": 1}           # either answers for any job


def test_the_queue_bound_counts_waiting_jobs(tmp_path):
    gate = threading.Event()
    runner = Recorder(gate)
    queue = open_queue(tmp_path, runner, max_queued=2)
    queue.submit({"n": 0}, None)
    assert runner.running.wait(10)                      # running: not waiting any more
    queue.submit({"n": 1}, None)
    workdir = upload(queue._store.folder)
    queue.submit({"n": 2}, workdir)
    refused = upload(queue._store.folder)
    with pytest.raises(AnalysisError) as raised:
        queue.submit({"n": 3}, refused)
    assert (raised.value.code, raised.value.status) == ("queue_full", 429)
    assert refused.exists()                             # still the request's, which removes it
    gate.set()


# --- expiry ---------------------------------------------------------------------------------------------------

def test_expired_ids_are_told_apart_from_unknown_ones(tmp_path):
    queue = open_queue(tmp_path, Recorder(), ttl_s=0.3, max_kept=2, remember_s=3600)
    ids = [queue.submit({"n": n}, None).id for n in range(3)]
    wait_until(lambda: all(queue._store.get(job_id) is None or queue._store.get(job_id).status == "done"
                           for job_id in ids) and queue._current is None)
    # Three finished, two kept: the oldest is gone already.
    with pytest.raises(AnalysisError) as gone:
        queue.get(ids[0])
    assert (gone.value.code, gone.value.status) == ("job_expired", 410)
    assert queue.get(ids[2])["expires"] is not None
    time.sleep(0.4)
    for job_id in ids[1:]:                              # past the TTL: expired before the sweep deletes them
        with pytest.raises(AnalysisError, match="finished more than"):
            queue.get(job_id)
    queue.sweep()
    assert queue._store.get(ids[1]) is None
    with pytest.raises(AnalysisError) as still:
        queue.get(ids[1])
    assert still.value.code == "job_expired"
    with pytest.raises(AnalysisError) as unknown:
        queue.get("never-was")
    assert (unknown.value.code, unknown.value.status) == ("job_not_found", 404)


def test_expired_ids_are_forgotten_after_a_while(tmp_path):
    queue = open_queue(tmp_path, Recorder(), ttl_s=0, remember_s=0.2)
    job_id = queue.submit({"n": 1}, None).id
    wait_until(lambda: queue._store.get(job_id) is None or queue._store.get(job_id).status == "done")
    queue.sweep()
    assert queue._store.was_expired(job_id)
    time.sleep(0.3)
    queue.sweep()
    with pytest.raises(AnalysisError, match="check the id"):
        queue.get(job_id)


# --- files ----------------------------------------------------------------------------------------------------

def test_the_sweep_removes_what_no_live_job_or_process_owns(tmp_path):
    queue = open_queue(tmp_path, Recorder(threading.Event()))
    other = DataFolder.open(tmp_path, min_free=0)       # another live server
    waiting = queue.submit({"n": 0}, upload(queue._store.folder)).id
    queued = queue.submit({"n": 1}, upload(queue._store.folder)).id
    (tmp_path / "uploads" / "never-accepted").mkdir()
    (tmp_path / "uploads" / "never-accepted" / "0.mp4").write_bytes(b"x")
    (tmp_path / "tmp" / "deadbeefdeadbeef" / "request-x").mkdir(parents=True)
    (tmp_path / "instances" / "deadbeefdeadbeef.lock").write_text("1\n")
    (tmp_path / "instances" / ".new-0123456789abcdef").write_text("")
    live_request = other.new_workdir()
    queue.sweep()
    assert sorted(path.name for path in (tmp_path / "uploads").iterdir()) == sorted([waiting, queued])
    assert sorted(path.name for path in (tmp_path / "tmp").iterdir()) == sorted([queue._store.folder.instance,
                                                                                  other.instance])
    assert live_request.exists()
    assert sorted(path.name for path in (tmp_path / "instances").iterdir()) == sorted(
        [f"{queue._store.folder.instance}.lock", f"{other.instance}.lock"])
    other.close()
    assert not (tmp_path / "tmp" / other.instance).exists()


# --- a damaged store ------------------------------------------------------------------------------------------

def test_a_damaged_store_is_moved_aside_once_and_a_fresh_one_started(tmp_path, caplog):
    (tmp_path / "jobs.sqlite3").write_bytes(b"this is not a database" * 500)
    with caplog.at_level(logging.WARNING):
        store = JobStore.open(DataFolder.open(tmp_path, min_free=0))
    assert "is damaged" in caplog.text and "moved aside" in caplog.text
    aside = list(tmp_path.glob("jobs.sqlite3.damaged-*"))
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not")
    assert store.counts() == {"queued": 0, "running": 0, "done": 0, "failed": 0}
    store.close()
    store.folder.close()
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        again = JobStore.open(DataFolder.open(tmp_path, min_free=0))
    assert "damaged" not in caplog.text                 # the fresh store is fine: no second move, no loop
    again.close()


def test_damaged_pages_inside_a_real_store_are_found(tmp_path):
    queue = open_queue(tmp_path, Recorder(), max_queued=100)
    ids = [queue.submit({"n": n, "pad": "x" * 3000}, None).id for n in range(40)]
    wait_until(lambda: all(queue._store.get(job_id).status == "done" for job_id in ids))
    queue.shutdown(time.monotonic())
    queue._store.close()
    queue._store.folder.close()
    with sqlite3.connect(tmp_path / "jobs.sqlite3") as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray((tmp_path / "jobs.sqlite3").read_bytes())
    data[4096 * 2:4096 * 6] = os.urandom(4096 * 4)      # pages 3 to 6: table b-tree pages
    (tmp_path / "jobs.sqlite3").write_bytes(bytes(data))
    store = JobStore.open(DataFolder.open(tmp_path, min_free=0))
    assert list(tmp_path.glob("jobs.sqlite3.damaged-*"))
    assert store.counts()["done"] == 0


def test_a_damaged_store_in_use_by_another_server_is_left_alone(tmp_path):
    other = DataFolder.open(tmp_path, min_free=0)
    (tmp_path / "jobs.sqlite3").write_bytes(b"garbage" * 1000)
    with pytest.raises(DataFolderError, match="other server process"):
        JobStore.open(DataFolder.open(tmp_path, min_free=0))
    assert (tmp_path / "jobs.sqlite3").exists()
    other.close()


# --- read-only and full folders -------------------------------------------------------------------------------

@contextlib.contextmanager
def read_only(path: Path):
    """``path`` read-only for this process: a read-only bind mount as root (whom permissions do not stop),
    otherwise no write permission."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        path.chmod(0o555)
        try:
            yield path
        finally:
            path.chmod(0o755)
        return
    mounted = subprocess.run(["mount", "--bind", str(path), str(path)], capture_output=True)
    if mounted.returncode:
        pytest.skip(f"cannot bind-mount as root here: {mounted.stderr.decode().strip()}")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(path)], check=True, capture_output=True)
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


@contextlib.contextmanager
def full_disk(path: Path):
    """A 2 MB file system at ``path``, filled to the last byte (root only)."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(path)], capture_output=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        with open(path / "filler", "wb") as filler:
            with contextlib.suppress(OSError):
                while True:
                    filler.write(b"\0" * 65536)
                    filler.flush()
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


def test_a_read_only_data_folder_is_named_and_refused(tmp_path):
    with read_only(tmp_path / "data") as data:
        with pytest.raises(DataFolderError) as raised:
            DataFolder.open(data / "jobs")          # cannot even be made
        assert str(data / "jobs") in raised.value.message and "read-only" in raised.value.message
        with pytest.raises(DataFolderError, match="read-only"):
            DataFolder.open(data)


def test_a_full_disk_is_named_and_refused(tmp_path):
    with full_disk(tmp_path / "full") as data:
        with pytest.raises(DataFolderError) as raised:
            DataFolder.open(data)
        assert str(data) in raised.value.message and "full" in raised.value.message
    # Free space but less than the minimum: refused before it runs out in the middle of an upload.
    with pytest.raises(DataFolderError, match="is full: .* bytes free"):
        DataFolder.open(tmp_path / "roomy", min_free=2 ** 62)


def test_the_reason_of_any_write_failure_is_put_in_words(tmp_path):
    folder = DataFolder(tmp_path)
    assert "the disk is full" in folder.error("x", OSError(errno.ENOSPC, "No space left")).message
    assert "read-only" in folder.error("x", OSError(errno.EROFS, "Read-only")).message
    assert str(tmp_path) in folder.error("x", OSError(errno.EIO, "I/O error")).message


# --- a real process at start-up -------------------------------------------------------------------------------

def start_refused(data_dir: Path) -> dict:
    finished = subprocess.run([sys.executable, str(REPO / "flaskMain.py"), "--port", "0", "--data-dir",
                               str(data_dir)], cwd=REPO, capture_output=True, text=True, timeout=120,
                              env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert finished.returncode == 2, finished.stderr[-2000:]
    error = json.loads(finished.stderr.strip().splitlines()[-1])["error"]
    assert error["code"] == "data_folder_unusable"
    return error


def test_the_server_exits_2_naming_a_read_only_data_folder(tmp_path):
    with read_only(tmp_path / "data") as data:
        error = start_refused(data)
    assert str(data) in error["message"] and "read-only" in error["message"]


def test_the_server_exits_2_naming_a_full_data_folder(tmp_path):
    with full_disk(tmp_path / "full") as data:
        error = start_refused(data)
    assert str(data) in error["message"] and "full" in error["message"]


def test_the_server_starts_on_a_fresh_store_when_its_store_is_damaged(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "jobs.sqlite3").write_bytes(b"\x00garbage" * 4096)
    server = Server(data, tmp_path, tiny_samples(tmp_path / "samples")).start()
    try:
        assert "is damaged" in server.log() and "moved aside" in server.log()
        job = server.post_json("/api/v2/jobs", {"sample": "seqA"})
        assert job.status == 202 and server.wait_for(job.json["id"])["status"] == "done"
    finally:
        assert server.stop() == 0
    assert len(list(data.glob("jobs.sqlite3.damaged-*"))) == 1
