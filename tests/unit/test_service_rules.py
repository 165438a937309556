"""The HTTP service's documented rules (README "Errors", "API v2", "Limits and errors", "Browser page") on both
sides of each bound, against a stand-in analyzer: the web layer, the inputs, the jobs and the formats are the
real ones, only the networks are replaced by a hand-made answer (tests/unit/test_formats.py), so no model loads."""

from __future__ import annotations

import io
import json
import logging
import threading
import time
import types
import zipfile

import cv2
import numpy as np
import pytest

from checks import error_of
from faceanalysis.pipeline.settings import Settings
from faceanalysis.service.contract import Limits
from faceanalysis.service.web import create_app, runtime_of
from facecore.errors import no_face
from test_formats import sequence
from test_inputs import TINY, mjpeg, sample  # noqa: F401  (sample is a fixture)

SECRET = "secret-detail-of-the-failure /etc/shadow"


class StandIn:
    """What the service asks of a FaceAnalyzer; each analysis answers ``test_formats.sequence()`` or raises
    ``fail``. ``gate`` (an Event), when set up, holds an analysis after its first progress report."""
    ready = True
    device = types.SimpleNamespace(kind="CPU")
    settings = Settings()

    def __init__(self, fail: BaseException | None = None) -> None:
        self.fail = fail
        self.asked: list = []
        self.gate: threading.Event | None = None
        self.paths_during: list[bool] = []

    def analyse_folder(self, folder):
        self.asked.append(folder)
        if self.fail is not None:
            raise self.fail
        return sequence()

    def analyse_source(self, source, progress=None):
        self.asked.append(source)
        self.paths_during.append(getattr(source, "_path", None) is not None and source._path.exists())
        if progress is not None:
            progress(0, source.expected)
        if self.gate is not None:
            assert self.gate.wait(30), "the test never opened the gate"
        if self.fail is not None:
            raise self.fail
        return sequence()


@pytest.fixture()
def samples(sample):
    """samples/ holding seqA: five tiny frames."""
    return sample.parent


def files_holding(root, data: bytes) -> list:
    """Files under ``root`` whose content is ``data``: wherever the service keeps temp_root, a kept one shows."""
    return [path for path in root.rglob("*") if path.is_file() and path.stat().st_size == len(data)
            and path.read_bytes() == data]


def app_for(analyzer: StandIn, samples, **config):
    app = create_app(analyzer, samples)
    app.config.update(config)
    return app.test_client()


def wait_for_job(client, url: str, until=("done", "failed"), timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = client.get(url).get_json()
        if state["status"] in until:
            return state
        time.sleep(0.02)
    pytest.fail(f"job {url} not {until} in {timeout} s")


# --- the legacy endpoint --------------------------------------------------------------------------------------

def test_legacy_answer_as_sent(samples):
    analyzer = StandIn()
    response = app_for(analyzer, samples).get("/seqPath/test")
    assert response.status_code == 200 and response.mimetype == "application/json"
    # Pairs keep the order of the text: the original's key order, string codes, string values.
    pairs = json.loads(response.get_data(as_text=True), object_pairs_hook=lambda items: [list(i) for i in items])
    assert pairs == [
        ["Video_Emo", [["10001", "0.000003"], ["10002", "0.000000"], ["10003", "0.123457"], ["10004", "0.500000"],
                       ["10005", "1.000000"], ["10006", "0.333333"], ["10007", "0.000000"]]],
        ["Video_Gen", [["30001", "0.468152"], ["30002", "0.531848"]]],
        ["Video_Age", [["20000", "29"]]]]
    assert analyzer.asked == [samples / "seqA"]          # "test" means seqA


@pytest.mark.parametrize("name, status, code", [
    ("a" * 255, 404, "sequence_not_found"),     # the longest name a file system takes: looked for
    ("a" * 256, 400, "invalid_sequence_name"),
    ("x.y", 404, "sequence_not_found"),         # a dot inside a name is fine
    (".y", 400, "invalid_sequence_name"),       # a leading one is not
    ("seqA", 200, None),
])
def test_name_rules_at_their_bounds(samples, name, status, code):
    response = app_for(StandIn(), samples).get(f"/seqPath/{name}")
    if code is None:
        assert response.status_code == status
    else:
        error_of(response, status, code)


def test_a_bug_is_a_500_without_its_traceback(samples, caplog):
    caplog.set_level(logging.ERROR)
    response = app_for(StandIn(RuntimeError(SECRET)), samples).get("/seqPath/seqA")
    assert response.status_code == 500
    assert response.get_json() == {"error": {"code": "internal_error", "message": "the analysis failed unexpectedly"}}
    text = response.get_data(as_text=True)
    assert "Traceback" not in text and "RuntimeError" not in text and SECRET not in text
    # The traceback is in the log, for the operator.
    assert any(record.exc_info and SECRET in str(record.exc_info[1]) for record in caplog.records)


def test_an_analysis_error_keeps_its_own_status_and_message(samples):
    message = error_of(app_for(StandIn(no_face("no face in 3 frames")), samples).get("/seqPath/seqA"), 422, "no_face")
    assert message == "no face in 3 frames"


def test_a_bug_in_v2_is_a_500_too(samples):
    response = app_for(StandIn(KeyError(SECRET)), samples).post("/api/v2/analyze", json={"sample": "seqA"})
    assert error_of(response, 500, "internal_error") == "the analysis failed unexpectedly"
    assert SECRET not in response.get_data(as_text=True)


@pytest.mark.parametrize("method, path, status, code", [
    ("get", "/nothing", 404, "not_found"), ("get", "/api/v2/nothing", 404, "not_found"),
    ("post", "/seqPath/seqA", 405, "method_not_allowed"), ("get", "/api/v2/analyze", 405, "method_not_allowed"),
])
def test_unknown_urls_and_methods_are_json(samples, method, path, status, code):
    error_of(getattr(app_for(StandIn(), samples), method)(path), status, code)


# --- request size and form parts ------------------------------------------------------------------------------

def video_body() -> tuple[bytes, str]:
    """A multipart body with one 5,000-byte "video", with a fixed boundary so that its length is known."""
    boundary = "fixed-boundary-for-an-exact-length"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"video\"; filename=\"clip.mp4\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n")
    body = head.encode() + b"\0" * 5000 + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def test_a_body_of_exactly_the_limit_is_read_and_one_byte_more_is_413(samples, temp_root):
    body, content_type = video_body()
    size = len(body)
    at_limit = app_for(StandIn(), samples, MAX_CONTENT_LENGTH=size)
    error_of(at_limit.post("/api/v2/analyze", data=body, content_type=content_type), 422, "invalid_video")
    below = app_for(StandIn(), samples, MAX_CONTENT_LENGTH=size - 1)
    message = error_of(below.post("/api/v2/analyze", data=body, content_type=content_type), 413, "request_too_large")
    assert message == f"the request body is {size} bytes, more than the limit of {size - 1}"


def test_the_documented_limits_are_the_defaults(samples):
    config = create_app(StandIn(), samples).config
    assert config["MAX_CONTENT_LENGTH"] == 256 * 1024 ** 2
    assert (config["FACE_DEFAULT_MAX_FRAMES"], config["FACE_MAX_FRAMES"]) == (3000, 10000)
    assert (config["FACE_MAX_ENTRIES"], config["FACE_MAX_UNPACKED_BYTES"]) == (10000, 2 * 1024 ** 3)
    assert (config["FACE_JOB_QUEUE_SIZE"], config["FACE_JOB_TTL_SECONDS"]) == (8, 600)
    assert config["MAX_FORM_PARTS"] == 1000


@pytest.mark.parametrize("parts, status", [(1000, 200), (1001, 413)])
def test_at_most_1000_form_parts(samples, temp_root, parts, status):
    files = [(io.BytesIO(TINY), f"{number}.png") for number in range(parts)]
    response = app_for(StandIn(), samples).post("/api/v2/analyze", data={"frames": files},
                                                content_type="multipart/form-data")
    if status == 413:
        assert "send a zip" in error_of(response, 413, "request_too_large")
    else:
        assert response.status_code == 200, response.get_data(as_text=True)


# --- videos over 40 megapixels --------------------------------------------------------------------------------

def blank_video(path, width: int, height: int) -> bytes:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (width, height))
    writer.write(np.zeros((height, width, 3), np.uint8))
    writer.release()
    return path.read_bytes()


@pytest.mark.parametrize("width, height, refused", [(8000, 5000, False), (6400, 6400, True)])
def test_video_frames_over_40_megapixels_are_413(samples, temp_root, tmp_path, width, height, refused):
    data = blank_video(tmp_path / "big.avi", width, height)
    response = app_for(StandIn(), samples).post("/api/v2/analyze", data={"video": (io.BytesIO(data), "big.avi")},
                                                content_type="multipart/form-data")
    if refused:
        message = error_of(response, 413, "frame_too_large")
        assert message == "'big.avi': 6400x6400 is more than 40000000 pixels"
    else:
        assert response.status_code == 200, response.get_data(as_text=True)
    assert files_holding(temp_root, data) == []


# --- jobs -----------------------------------------------------------------------------------------------------

def submit(client, data: bytes, name: str = "clip.mp4") -> str:
    response = client.post("/api/v2/jobs", data={"video": (io.BytesIO(data), name)},
                           content_type="multipart/form-data")
    assert response.status_code == 202, response.get_data(as_text=True)
    return response.get_json()["url"]


def test_a_video_without_a_frame_count_has_progress_null(samples, temp_root):
    analyzer = StandIn()
    analyzer.gate = threading.Event()
    client = app_for(analyzer, samples)
    url = submit(client, mjpeg(3))
    try:
        running = wait_for_job(client, url, until=("running",))
        deadline = time.monotonic() + 10
        while running["progress"] == {"frames_done": 0, "frames_total": 0} and time.monotonic() < deadline:
            running = client.get(url).get_json()      # between "running" and the first progress report
        assert running["progress"] == {"frames_done": 0, "frames_total": None}
    finally:
        analyzer.gate.set()
    assert wait_for_job(client, url)["status"] == "done"


def test_a_video_with_a_frame_count_has_a_total(samples, temp_root, tmp_path):
    analyzer = StandIn()
    analyzer.gate = threading.Event()
    writer = cv2.VideoWriter(str(tmp_path / "c.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (64, 48))
    for _ in range(4):
        writer.write(np.zeros((48, 64, 3), np.uint8))
    writer.release()
    client = app_for(analyzer, samples)
    url = submit(client, (tmp_path / "c.avi").read_bytes(), "c.avi")
    try:
        deadline = time.monotonic() + 10
        state = wait_for_job(client, url, until=("running",))
        while state["progress"]["frames_total"] != 4 and time.monotonic() < deadline:
            state = client.get(url).get_json()
        assert state["progress"] == {"frames_done": 0, "frames_total": 4}
    finally:
        analyzer.gate.set()
    wait_for_job(client, url)


def test_a_bug_fails_the_job_with_internal_error_and_no_traceback(samples, temp_root):
    client = app_for(StandIn(RuntimeError(SECRET)), samples)
    state = wait_for_job(client, submit(client, mjpeg()))
    assert state["status"] == "failed"
    assert state["error"] == {"code": "internal_error", "status": 500, "message": "the analysis failed unexpectedly"}
    assert "result" not in state and SECRET not in json.dumps(state)


@pytest.mark.parametrize("fail", [None, no_face("no face"), RuntimeError("bug")])
def test_uploads_are_deleted_after_their_job(samples, temp_root, fail):
    analyzer = StandIn(fail)
    client = app_for(analyzer, samples)
    state = wait_for_job(client, submit(client, mjpeg(5)))
    assert state["status"] == ("done" if fail is None else "failed")
    assert analyzer.paths_during == [True]          # the upload was there while the job ran
    deadline = time.monotonic() + 10                # the worker removes it just after recording the end
    while files_holding(temp_root, mjpeg(5)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert files_holding(temp_root, mjpeg(5)) == []   # and is gone once it ended


def test_uploads_are_deleted_after_a_synchronous_analysis(samples, temp_root):
    analyzer = StandIn()
    response = app_for(analyzer, samples).post("/api/v2/analyze", data={"video": (io.BytesIO(mjpeg(5)), "c.mp4")},
                                               content_type="multipart/form-data")
    assert response.status_code == 200 and analyzer.paths_during == [True]
    assert files_holding(temp_root, mjpeg(5)) == []


# --- the page's thumbnails ------------------------------------------------------------------------------------

@pytest.mark.parametrize("width, status", [("15", 400), ("16", 200), ("640", 200), ("641", 400)])
def test_thumbnail_width_from_16_to_640(samples, width, status):
    response = app_for(StandIn(), samples).get(f"/api/v2/samples/seqA/frames/0.jpg?width={width}")
    if status == 400:
        error_of(response, 400, "invalid_option")
    else:
        assert response.status_code == 200 and response.mimetype == "image/jpeg"


# --- a job's kept upload (keep_upload), for the page's player, and cancelling a job -----------------------------

def grey_frames(count: int) -> list[bytes]:
    """JPEG frames whose grey level says which they are: frame i is 20 * i + 10."""
    return [cv2.imencode(".jpg", np.full((48, 64, 3), 20 * index + 10, np.uint8))[1].tobytes()
            for index in range(count)]


def grey_of(response) -> float:
    assert response.status_code == 200 and response.mimetype == "image/jpeg", response.get_data(as_text=True)
    return float(cv2.imdecode(np.frombuffer(response.data, np.uint8), cv2.IMREAD_GRAYSCALE).mean())


def submit_kept(client, kind: str, data: bytes, name: str, keep: str = "true") -> str:
    response = client.post("/api/v2/jobs", data={kind: (io.BytesIO(data), name), "keep_upload": keep},
                           content_type="multipart/form-data")
    assert response.status_code == 202, response.get_data(as_text=True)
    return response.get_json()["id"]


def sweep(client) -> None:
    app = client.application
    runtime_of(app).jobs(Limits.from_config(app.config)).sweep()


def test_a_kept_video_is_served_whole_and_in_ranges_and_its_frames_by_number(samples, temp_root):
    video = b"".join(grey_frames(6))                 # concatenated JPEGs: a video FFmpeg reads
    client = app_for(StandIn(), samples)
    job = submit_kept(client, "video", video, "clip.avi")
    assert wait_for_job(client, f"/api/v2/jobs/{job}")["status"] == "done"
    whole = client.get(f"/api/v2/jobs/{job}/upload")
    assert whole.status_code == 200 and whole.data == video and whole.mimetype == "video/x-msvideo"
    part = client.get(f"/api/v2/jobs/{job}/upload", headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.data == video[10:20]
    # Frame i is the i-th frame of the file, whatever the seek had to decode before it (JPEG blurs by a level or 2).
    for index in (0, 3, 5):
        assert abs(grey_of(client.get(f"/api/v2/jobs/{job}/frames/{index}.jpg")) - (20 * index + 10)) < 3
    picture = client.get(f"/api/v2/jobs/{job}/frames/2.jpg?width=32")
    assert (picture.headers["X-Frame-Width"], picture.headers["X-Frame-Height"]) == ("64", "48")
    assert cv2.imdecode(np.frombuffer(picture.data, np.uint8), 1).shape == (24, 32, 3)
    error_of(client.get(f"/api/v2/jobs/{job}/frames/6.jpg"), 404, "frame_not_found")
    error_of(client.get(f"/api/v2/jobs/{job}/frames/0.jpg?width=15"), 400, "invalid_option")


def test_a_kept_zip_serves_its_frames_in_natural_order_and_no_video(samples, temp_root):
    frames = grey_frames(4)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as writer:
        # Natural order: f2 before f10; written in another order on purpose.
        for number, data in ((10, frames[3]), (2, frames[1]), (1, frames[0]), (3, frames[2])):
            writer.writestr(f"f{number}.jpg", data)
        writer.writestr("f11.jpg", b"not a picture")
    client = app_for(StandIn(), samples)
    job = submit_kept(client, "zip", archive.getvalue(), "frames.zip")
    assert wait_for_job(client, f"/api/v2/jobs/{job}")["status"] == "done"
    for index in range(4):
        assert abs(grey_of(client.get(f"/api/v2/jobs/{job}/frames/{index}.jpg")) - (20 * index + 10)) < 3
    error_of(client.get(f"/api/v2/jobs/{job}/frames/4.jpg"), 422, "unreadable_frame")
    error_of(client.get(f"/api/v2/jobs/{job}/frames/5.jpg"), 404, "frame_not_found")
    error_of(client.get(f"/api/v2/jobs/{job}/upload"), 404, "not_a_video")


def test_an_upload_is_kept_only_when_asked_and_goes_with_its_job(samples, temp_root):
    video, other = b"".join(grey_frames(3)), b"".join(grey_frames(2))
    client = app_for(StandIn(), samples, FACE_JOBS_KEPT=1)
    plain = submit_kept(client, "video", mjpeg(4), "plain.mp4", keep="false")
    assert wait_for_job(client, f"/api/v2/jobs/{plain}")["status"] == "done"
    error_of(client.get(f"/api/v2/jobs/{plain}/upload"), 404, "upload_not_kept")
    error_of(client.get(f"/api/v2/jobs/{plain}/frames/0.jpg"), 404, "upload_not_kept")
    sample = client.post("/api/v2/jobs", json={"sample": "seqA", "keep_upload": True}).get_json()["id"]
    assert wait_for_job(client, f"/api/v2/jobs/{sample}")["status"] == "done"
    error_of(client.get(f"/api/v2/jobs/{sample}/upload"), 404, "upload_not_kept")
    error_of(client.get("/api/v2/jobs/nope/upload"), 404, "job_not_found")

    kept = submit_kept(client, "video", video, "kept.mp4")
    assert wait_for_job(client, f"/api/v2/jobs/{kept}")["status"] == "done"
    assert len(files_holding(temp_root, video)) == 1
    sweep(client)                                     # a finished job's kept files stay
    assert client.get(f"/api/v2/jobs/{kept}/upload").data == video
    # FACE_JOBS_KEPT=1: the next job to finish makes this one expire, and its files go with it.
    after = submit_kept(client, "video", other, "after.mp4")
    assert wait_for_job(client, f"/api/v2/jobs/{after}")["status"] == "done"
    # The worker expires the older jobs just after it records this one as done: wait for that, within bounds.
    deadline = time.monotonic() + 30
    while client.get(f"/api/v2/jobs/{kept}/upload").status_code != 410 or files_holding(temp_root, video):
        assert time.monotonic() < deadline, "the older job's kept upload was not removed"
        time.sleep(0.05)
    error_of(client.get(f"/api/v2/jobs/{kept}/upload"), 410, "job_expired")
    assert files_holding(temp_root, video) == []


def test_cancel_a_queued_and_a_running_job(samples, temp_root):
    analyzer = StandIn()
    analyzer.gate = threading.Event()
    client = app_for(analyzer, samples)
    running = submit_kept(client, "video", mjpeg(3), "a.mp4")
    queued = submit_kept(client, "video", mjpeg(4), "b.mp4", keep="false")
    try:
        wait_for_job(client, f"/api/v2/jobs/{running}", until=("running",))
        for job in (queued, running):
            response = client.delete(f"/api/v2/jobs/{job}")
            assert response.status_code == 200
            state = response.get_json()
            assert state["status"] == "failed" and state["finished"] is not None
            assert state["error"] == {"code": "cancelled", "status": 409,
                                      "message": "the job was cancelled before it finished"}
    finally:
        analyzer.gate.set()
    # The running analysis ends on its own; it may not overwrite the cancellation, and the worker goes on.
    after = submit(client, mjpeg(2))
    assert wait_for_job(client, after)["status"] == "done"
    assert client.get(f"/api/v2/jobs/{running}").get_json()["error"]["code"] == "cancelled"
    sweep(client)                                     # a cancelled job's files go as an ended job's do
    assert files_holding(temp_root, mjpeg(4)) == []
    error_of(client.delete(f"/api/v2/jobs/{running}"), 409, "job_finished")
    error_of(client.delete(after), 409, "job_finished")
    error_of(client.delete("/api/v2/jobs/nope"), 404, "job_not_found")
