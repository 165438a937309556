"""What a hostile or unlucky client meets below the HTTP server (docs/hardening.md), with a stand-in analyzer and
stand-in runners, so no model loads: a video's frame size read from its header before any decoding, the job
outcome that cannot be written, the store file that cannot be used, the data folder's modes, the token's
characters, and the smaller refusals (a full disk during an upload, JSON nested too deeply, a long file name).
"""

from __future__ import annotations

import errno
import io
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from checks import error_of, png_header_only
from faceanalysis.pipeline import sources
from faceanalysis.service import jobs as jobs_module
from faceanalysis.service import videoprobe
from faceanalysis.service.datafolder import DataFolder, DataFolderError
from faceanalysis.service.job_store import JobStore
from faceanalysis.service.jobs import JobPolicy, JobQueue
from faceanalysis.service.security import check_token, token_matches
from faceanalysis.service.videoprobe import declared_frame_size
from test_inputs import sample  # noqa: F401  (a fixture)
from test_service_rules import StandIn, app_for, files_holding


@pytest.fixture()
def samples(sample):  # noqa: F811  (the fixture imported above)
    return sample.parent


def post_video(client, data: bytes, name: str):
    return client.post("/api/v2/analyze", data={"video": (io.BytesIO(data), name)},
                       content_type="multipart/form-data")


# --- 3. a video's frame size from its header ------------------------------------------------------------------

def written_video(path: Path, fourcc: str, width: int, height: int) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 5.0, (width, height))
    assert writer.isOpened(), f"OpenCV cannot write {fourcc}"
    writer.write(np.zeros((height, width, 3), np.uint8))
    writer.release()
    return path


@pytest.mark.parametrize("name, fourcc", [("a.mp4", "mp4v"), ("a.mov", "mp4v"), ("a.avi", "MJPG")])
def test_the_header_of_each_container_tells_the_frame_size(tmp_path, name, fourcc):
    assert declared_frame_size(written_video(tmp_path / name, fourcc, 96, 64)) == (96, 64)


def ebml(element: int, payload: bytes) -> bytes:
    """One Matroska element: its id as written, an 8-byte size, its payload."""
    size = (1 << 56) | len(payload)                      # the length marker of an 8-byte size
    return element.to_bytes((element.bit_length() + 7) // 8, "big") + size.to_bytes(8, "big") + payload


def test_a_matroska_header_tells_the_frame_size_before_any_cluster(tmp_path):
    video = ebml(0xE0, ebml(0xB0, (16000).to_bytes(2, "big")) + ebml(0xBA, (16000).to_bytes(2, "big")))
    tracks = ebml(0x1654AE6B, ebml(0xAE, ebml(0xD7, b"\x01") + video))
    path = tmp_path / "a.webm"
    path.write_bytes(ebml(0x1A45DFA3, b"") + ebml(0x18538067, ebml(0x1549A966, b"") + tracks + ebml(0x1F43B675, b"")))
    assert declared_frame_size(path) == (16000, 16000)


def test_an_image_sent_as_a_video_is_sized_by_its_header(tmp_path):
    (tmp_path / "a.mp4").write_bytes(png_header_only(7000, 5000))
    assert declared_frame_size(tmp_path / "a.mp4") == (7000, 5000)
    (tmp_path / "b.mp4").write_bytes(b"\0" * 100)
    assert declared_frame_size(tmp_path / "b.mp4") is None          # nothing declared: the first frame tells


@pytest.mark.parametrize("width, height, refused", [(8000, 5000, False), (8000, 5001, True), (16000, 16000, True)])
def test_a_frame_over_40_megapixels_is_refused_from_the_header_before_any_decoding(samples, temp_root, monkeypatch,
                                                                                    width, height, refused):
    opened = []
    real = sources.cv2.VideoCapture
    monkeypatch.setattr(sources.cv2, "VideoCapture", lambda *args: opened.append(args) or real(*args))
    data = png_header_only(width, height)
    response = post_video(app_for(StandIn(), samples), data, "huge.mp4")
    if refused:
        message = error_of(response, 413, "frame_too_large")
        assert message == f"'huge.mp4': {width}x{height} is more than 40000000 pixels"
        assert opened == []                              # never given to FFmpeg
    else:
        # Under the limit the header passes and FFmpeg gets the file (this one has no decodable frame).
        error_of(response, 422, "invalid_video")
        assert len(opened) == 1
    assert files_holding(temp_root, data) == []


def test_at_most_max_probes_first_frames_are_decoded_at_once(samples, temp_root, monkeypatch):
    inside, most, lock = [0], [0], threading.Lock()
    real = sources.cv2.VideoCapture

    def counting(*args):
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        time.sleep(0.2)
        with lock:
            inside[0] -= 1
        return real(*args)
    monkeypatch.setattr(sources.cv2, "VideoCapture", counting)
    client = app_for(StandIn(), samples)
    data = b"\0" * 64                                    # declares nothing: its first frame must be decoded
    threads = [threading.Thread(target=post_video, args=(client, data, "x.mp4")) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most[0] == videoprobe.MAX_PROBES == 2


# --- 4. a job whose outcome cannot be written -----------------------------------------------------------------

def disk_full_store(store: JobStore, fail_results: int, fail_errors: int) -> list:
    """``store.finish`` fails like a full disk the first ``fail_results`` times it writes an answer and the first
    ``fail_errors`` times it writes an error; returns the list of what was tried."""
    real, tried = store.finish, []
    left = {"result": fail_results, "error": fail_errors}

    def finish(job_id, owner, result=None, error=None, keep_uploads=False):
        kind = "result" if error is None else "error"
        tried.append(kind)
        if left[kind] > 0:
            left[kind] -= 1
            raise sqlite3.OperationalError("database or disk is full")
        return real(job_id, owner, result=result, error=error, keep_uploads=keep_uploads)
    store.finish = finish
    return tried


def wait_for_status(queue: JobQueue, job_id: str, timeout: float = 10) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = queue.get(job_id)
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still {job['status']} after {timeout} s")


def queue_with(tmp_path: Path, fail_results: int, fail_errors: int, monkeypatch) -> tuple[JobQueue, list]:
    monkeypatch.setattr(jobs_module, "RECORD_PAUSES_S", (0.05, 0.05, 0.05, 0.05))
    monkeypatch.setattr(jobs_module, "RECORD_PAUSE_MAX_S", 0.05)
    store = JobStore.open(DataFolder.open(tmp_path / "data", min_free=0))
    tried = disk_full_store(store, fail_results, fail_errors)
    queue = JobQueue(store, lambda request, uploads, progress: {"n": request["n"]}, "models",
                     JobPolicy(sweep_s=3600))
    return queue, tried


def test_an_answer_that_could_not_be_written_at_first_is_written_on_a_later_try(tmp_path, monkeypatch):
    queue, tried = queue_with(tmp_path, fail_results=jobs_module.RESULT_TRIES - 1, fail_errors=0,
                              monkeypatch=monkeypatch)
    job = wait_for_status(queue, queue.submit({"n": 7}, None).id)
    assert job["status"] == "done" and job["result"] == {"n": 7}
    assert tried == ["result"] * jobs_module.RESULT_TRIES             # the error was never needed
    queue.shutdown(time.monotonic())


def test_an_answer_that_cannot_be_written_ends_the_job_storage_unavailable(tmp_path, monkeypatch):
    # The answer never fits; the error fails once too (at try RESULT_TRIES), then fits at the next try.
    queue, tried = queue_with(tmp_path, fail_results=10 ** 6, fail_errors=1, monkeypatch=monkeypatch)
    job = wait_for_status(queue, queue.submit({"n": 7}, None).id)
    assert job["status"] == "failed"
    assert job["error"]["code"] == "storage_unavailable" and job["error"]["status"] == 503
    first_error = tried.index("error")
    assert tried[:first_error] == ["result"] * jobs_module.RESULT_TRIES
    assert tried[first_error:] == ["error", "result", "error"]
    queue.shutdown(time.monotonic())


# --- 5 and 7. the store file ----------------------------------------------------------------------------------

def open_store(root: Path) -> JobStore:
    folder = DataFolder.open(root, min_free=0)
    try:
        return JobStore.open(folder)
    except BaseException:
        folder.close()
        raise


def test_a_store_that_is_a_folder_is_named_as_one(tmp_path):
    (tmp_path / "jobs.sqlite3").mkdir()
    with pytest.raises(DataFolderError) as raised:
        open_store(tmp_path)
    assert raised.value.message.endswith(f"the job store {tmp_path / 'jobs.sqlite3'} is a folder, not a file: "
                                         "move it away")


def test_a_store_that_is_a_dangling_link_is_named_as_one(tmp_path):
    (tmp_path / "jobs.sqlite3").symlink_to(tmp_path / "gone" / "jobs.sqlite3")
    with pytest.raises(DataFolderError) as raised:
        open_store(tmp_path)
    assert f"is a link to {tmp_path / 'gone' / 'jobs.sqlite3'}, which does not exist" in raised.value.message
    assert "read-only" not in raised.value.message


def test_a_link_to_a_store_that_exists_is_used(tmp_path):
    (tmp_path / "real").mkdir()
    open_store(tmp_path / "real").close()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "jobs.sqlite3").symlink_to(tmp_path / "real" / "jobs.sqlite3")
    open_store(tmp_path / "data").close()


def test_an_empty_store_file_is_moved_aside_with_a_warning(tmp_path, caplog):
    (tmp_path / "jobs.sqlite3").write_bytes(b"")
    with caplog.at_level(logging.WARNING):
        store = open_store(tmp_path)
    store.close()
    assert "the file is empty (0 bytes)" in caplog.text and "moved aside" in caplog.text
    assert [path.stat().st_size for path in tmp_path.glob("jobs.sqlite3.damaged-*")] == [0]
    assert (tmp_path / "jobs.sqlite3").stat().st_size > 0


def test_a_store_with_jobs_is_not_moved_aside(tmp_path, caplog):
    open_store(tmp_path).close()
    with caplog.at_level(logging.WARNING):
        open_store(tmp_path).close()
    assert "moved aside" not in caplog.text and list(tmp_path.glob("*.damaged-*")) == []


def immutable(path: Path) -> bool:
    import subprocess
    return subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0


def test_an_immutable_store_file_is_refused_naming_it(tmp_path):
    # chattr +i stops root too (chmod does not); skipped where the file system or the user cannot set it.
    open_store(tmp_path).close()
    store_file = tmp_path / "jobs.sqlite3"
    if not immutable(store_file):
        pytest.skip("chattr +i is not possible here (not root, or not supported by this file system)")
    try:
        with pytest.raises(DataFolderError) as raised:
            open_store(tmp_path)
        assert f"the job store file {store_file} cannot be written: it is read-only" in raised.value.message
    finally:
        os.system(f"chattr -i '{store_file}'")
    open_store(tmp_path).close()


def test_readyz_reports_a_store_that_became_unwritable(samples, tmp_path):
    from faceanalysis.service.web import create_app
    store = open_store(tmp_path / "data")
    client = create_app(StandIn(), samples, store=store).test_client()
    assert client.get("/readyz").status_code == 200
    store_file = tmp_path / "data" / "jobs.sqlite3"
    if not immutable(store_file):
        pytest.skip("chattr +i is not possible here (not root, or not supported by this file system)")
    try:
        message = error_of(client.get("/readyz"), 503, "storage_unavailable")
        assert str(store_file) in message
    finally:
        os.system(f"chattr -i '{store_file}'")
    assert client.get("/readyz").status_code == 200


# --- 7. the data folder's modes -------------------------------------------------------------------------------

def test_the_data_folder_is_private_and_so_are_its_files(samples, tmp_path):
    from faceanalysis.service.web import create_app
    store = open_store(tmp_path / "data")
    analyzer = StandIn()
    analyzer.gate = threading.Event()
    client = create_app(analyzer, samples, store=store).test_client()
    response = client.post("/api/v2/jobs", data={"frames": [(io.BytesIO(png_header_only(8, 8)), "a.png")]},
                           content_type="multipart/form-data")
    try:
        assert response.status_code == 202, response.get_data(as_text=True)
        root = tmp_path / "data"
        folders = [root, *[path for path in root.rglob("*") if path.is_dir()]]
        files = [path for path in root.rglob("*") if path.is_file()]
        assert {oct(path.stat().st_mode & 0o777) for path in folders} == {"0o700"}
        assert {oct(path.stat().st_mode & 0o777) for path in files} == {"0o600"}
        assert {path.name for path in files} >= {"jobs.sqlite3", "jobs.sqlite3-wal", "00000.png"}
    finally:
        analyzer.gate.set()


# --- 7. the token ---------------------------------------------------------------------------------------------

def test_a_token_beyond_ascii_is_refused_at_start():
    assert check_token("a" * 16) == "a" * 16
    assert check_token("~!#$%&'*+-.^_`|" + "z") == "~!#$%&'*+-.^_`|z"
    with pytest.raises(ValueError, match="must be ASCII"):
        check_token("a" * 15 + "é")
    with pytest.raises(ValueError, match="must be ASCII"):
        check_token("ключ-ключ-ключ-ключ")


def test_a_header_beyond_ascii_never_matches():
    assert token_matches("Bearer abcdefghijklmnop", b"abcdefghijklmnop")
    assert token_matches("bearer  abcdefghijklmnop ", b"abcdefghijklmnop")
    assert not token_matches("Bearer abcdefghijklmnoé", b"abcdefghijklmnop")
    assert not token_matches("Basic abcdefghijklmnop", b"abcdefghijklmnop")


# --- 7. smaller refusals --------------------------------------------------------------------------------------

def test_a_full_disk_during_an_upload_is_storage_unavailable(samples, temp_root, monkeypatch):
    from werkzeug.datastructures import FileStorage

    def no_room(self, destination, buffer_size=16384):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(FileStorage, "save", no_room)
    response = post_video(app_for(StandIn(), samples), b"\0" * 64, "a.mp4")
    assert "no room left" in error_of(response, 503, "storage_unavailable")


def test_another_write_error_during_an_upload_stays_internal(samples, temp_root, monkeypatch):
    from werkzeug.datastructures import FileStorage

    def broken(self, destination, buffer_size=16384):
        raise OSError(errno.EIO, "Input/output error")
    monkeypatch.setattr(FileStorage, "save", broken)
    error_of(post_video(app_for(StandIn(), samples), b"\0" * 64, "a.mp4"), 500, "internal_error")


@pytest.mark.parametrize("depth, status", [(100, 400), (100_000, 400)])
def test_json_nested_too_deeply_is_invalid_json(samples, depth, status):
    body = "[" * depth + "]" * depth
    response = app_for(StandIn(), samples).post("/api/v2/analyze", data=body, content_type="application/json")
    # A shallow array is valid JSON but not an object; a deep one cannot be parsed at all.
    error_of(response, 400, "invalid_request" if depth == 100 else "invalid_json")


def test_a_file_name_of_a_megabyte_is_not_called_too_many_parts(samples):
    data = {"video": (io.BytesIO(b"\0" * 64), "a" * 1_000_000 + ".mp4")}
    message = error_of(app_for(StandIn(), samples).post("/api/v2/analyze", data=data,
                                                        content_type="multipart/form-data"), 413, "request_too_large")
    assert "a part's headers (a file name) over 500000 bytes" in message
