"""API v2 on real models: every input kind, the answer's shape, limits, jobs, health and the OpenAPI document.

Inputs are kept to 3-5 frames each so the file stays fast on a small CPU.
"""

from __future__ import annotations

import io
import re
import time
import types
import zipfile

import cv2
import numpy as np
import pytest

from conftest import SAMPLES
from faceanalysis.pipeline.analyzer import STAGES
from faceanalysis.service.web import create_app
from test_bad_input import error_of

SEQ_A = sorted((SAMPLES / "seqA").glob("*.jpg"))
SAMPLE_REQUEST = ("/api/v2/analyze?timeline=true", {"sample": "seqA", "max_frames": 5})
EXPRESSIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


@pytest.fixture(scope="module")
def v2(analyzer):
    return create_app(analyzer, SAMPLES).test_client()


@pytest.fixture(scope="module")
def sample_answer(v2):
    path, body = SAMPLE_REQUEST
    response = v2.post(path, json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def make_client(analyzer, **config):
    app = create_app(analyzer, SAMPLES)
    app.config.update(config)
    return app.test_client()


def zip_of(entries: dict[str, bytes]) -> io.BytesIO:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    buffer.seek(0)
    return buffer


def upload(client, field, files, query=""):
    return client.post(f"/api/v2/analyze{query}", data={field: files}, content_type="multipart/form-data")


def primary(answer) -> dict:
    chosen = [person for person in answer["persons"] if person["primary"]]
    assert len(chosen) == 1
    return chosen[0]


def check_probabilities(person_or_face):
    assert sum(person_or_face["gender"].values()) == pytest.approx(1, abs=1e-4)
    expression = {label: person_or_face["expression"][label] for label in EXPRESSIONS}
    assert sum(expression.values()) == pytest.approx(1, abs=1e-4)
    assert person_or_face["expression"]["dominant"] == max(expression, key=expression.get)


def wait_for(client, url, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = client.get(url).get_json()
        if state["status"] in ("done", "failed"):
            return state
        time.sleep(0.2)
    pytest.fail(f"job {url} did not finish in {timeout} s")


# --- the answer ---------------------------------------------------------------------------------------------

def test_sample_gives_a_primary_person_with_plausible_answers(sample_answer):
    person = primary(sample_answer)
    assert person["id"] >= 1 and person["frames_seen"] == 5
    low, high = person["age"]["interval"]
    # The interval's ends are whole-year bins, so the expected age may lie just outside (79.99 vs [80, 80]).
    assert low - 1 <= person["age"]["value"] <= high + 1
    assert 20 <= person["age"]["value"] <= 60 and high - low < 40
    assert person["gender"]["female"] > 0.5
    assert person["expression"]["dominant"] == "happy"
    assert 0.9 < person["mean_confidence"] <= 1
    for candidate in sample_answer["persons"]:
        check_probabilities(candidate)


def test_timeline_has_one_entry_per_frame(sample_answer):
    timeline = sample_answer["timeline"]
    assert [entry["name"] for entry in timeline] == [path.name for path in SEQ_A[:5]]
    assert [entry["frame"] for entry in timeline] == list(range(5))
    ids = {person["id"] for person in sample_answer["persons"]}
    for entry in timeline:
        for face in entry["faces"]:
            assert face["person"] in ids
            assert len(face["box"]) == 4 and np.shape(face["landmarks"]) == (5, 2)
            check_probabilities(face)


def test_person_answer_is_the_aggregator_over_its_faces(sample_answer, analyzer):
    # The default aggregator weights each face by its detection confidence.
    person = primary(sample_answer)
    faces = [face for entry in sample_answer["timeline"] for face in entry["faces"] if face["person"] == person["id"]]
    weights = np.array([face["confidence"] for face in faces])
    happy = np.array([face["expression"]["happy"] for face in faces])
    assert analyzer.aggregator.name == "confidence_weighted_mean"
    assert person["expression"]["happy"] == pytest.approx(weights @ happy / weights.sum(), abs=1e-4)


def test_meta_names_models_frames_timings_and_device(sample_answer, analyzer):
    meta = sample_answer["meta"]
    assert meta["input"] == {"kind": "sample", "name": "seqA"}
    assert meta["options"] == {"timeline": True, "max_frames": 5, "stride": 1}
    assert meta["frames"] == {"listed": 30, "read": 5, "skipped": [], "ignored": [], "without_face": [],
                              "truncated": True}
    assert meta["models"] == analyzer.model_info()
    assert meta["model_choice"] == analyzer.model_choice == {"age_gender": "tuned", "expression": "ensemble"}
    assert all(len(model["sha256"]) == 64 for model in meta["models"].values())
    assert set(meta["timings_ms"]) == {*STAGES, "total"}
    assert meta["device"]["kind"] in ("CPU", "GPU")
    assert meta["aggregator"] == analyzer.aggregator.name
    assert meta["tracker"]["name"] == "greedy_iou"


def test_stride_takes_every_nth_frame(v2):
    response = v2.post("/api/v2/analyze", query_string={"stride": "10", "timeline": "1"}, json={"sample": "seqA"})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert [entry["frame"] for entry in response.get_json()["timeline"]] == [0, 10, 20]


# --- uploads ------------------------------------------------------------------------------------------------

def test_zip_of_frames(v2):
    entries = {f"clip/{path.name}": path.read_bytes() for path in SEQ_A[:5]}
    entries["clip/notes.txt"] = b"not a frame"
    answer = upload(v2, "zip", (zip_of(entries), "clip.zip")).get_json()
    assert primary(answer)["frames_seen"] == 5
    assert answer["meta"]["input"] == {"kind": "zip", "name": "clip.zip"}
    assert answer["meta"]["frames"]["read"] == 5
    assert answer["meta"]["frames"]["ignored"] == ["clip/notes.txt"]


def test_zip_slip_and_nested_archives_are_skipped(v2):
    good = {path.name: path.read_bytes() for path in SEQ_A[:3]}
    bad = {"../escape.jpg": SEQ_A[3].read_bytes(), "/etc/abs.jpg": SEQ_A[3].read_bytes(),
           "inner.zip": zip_of(good).getvalue()}
    response = upload(v2, "zip", (zip_of({**good, **bad}), "frames.zip"))
    assert response.status_code == 200, response.get_data(as_text=True)
    frames = response.get_json()["meta"]["frames"]
    assert frames["read"] == 3
    reasons = {item["name"]: item["reason"] for item in frames["skipped"]}
    assert set(reasons) == set(bad)
    assert "nested archive" in reasons["inner.zip"] and ".." in reasons["../escape.jpg"]


def test_zip_limits_are_413(analyzer):
    entries = {path.name: path.read_bytes() for path in SEQ_A[:5]}
    few_entries = make_client(analyzer, FACE_MAX_ENTRIES=3)
    assert "5 entries" in error_of(upload(few_entries, "zip", (zip_of(entries), "a.zip")), 413, "too_many_frames")
    small = make_client(analyzer, FACE_MAX_UNPACKED_BYTES=1000)
    error_of(upload(small, "zip", (zip_of(entries), "a.zip")), 413, "archive_too_large")


def test_not_a_zip_is_422(v2):
    error_of(upload(v2, "zip", (io.BytesIO(b"PK but not really" * 50), "a.zip")), 422, "invalid_archive")


def test_several_images_in_the_order_sent(v2):
    chosen = [SEQ_A[4], SEQ_A[0], SEQ_A[2]]
    files = [(io.BytesIO(path.read_bytes()), path.name) for path in chosen]
    response = upload(v2, "frames", files, "?timeline=true")
    assert response.status_code == 200, response.get_data(as_text=True)
    answer = response.get_json()
    assert [entry["name"] for entry in answer["timeline"]] == [path.name for path in chosen]
    assert primary(answer)["frames_seen"] == 3
    assert answer["meta"]["input"] == {"kind": "frames", "name": "3 files"}


def test_an_unreadable_image_among_frames_is_skipped(v2):
    files = [(io.BytesIO(SEQ_A[0].read_bytes()), "a.jpg"), (io.BytesIO(b"not an image"), "b.jpg")]
    frames = upload(v2, "frames", files).get_json()["meta"]["frames"]
    assert frames["read"] == 1 and [item["name"] for item in frames["skipped"]] == ["b.jpg"]


def test_short_mp4_video(v2, tmp_path):
    path = tmp_path / "clip.mp4"
    first = cv2.imread(str(SEQ_A[0]))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 5.0, (first.shape[1], first.shape[0]))
    for frame in SEQ_A[:5]:
        writer.write(cv2.imread(str(frame)))
    writer.release()
    response = upload(v2, "video", (io.BytesIO(path.read_bytes()), "clip.mp4"), "?timeline=1")
    assert response.status_code == 200, response.get_data(as_text=True)
    answer = response.get_json()
    assert answer["meta"]["input"]["kind"] == "video" and answer["meta"]["input"]["fps"] == pytest.approx(5)
    assert answer["meta"]["frames"]["read"] == len(answer["timeline"]) == 5
    assert primary(answer)["frames_seen"] == 5


def test_video_of_garbage_is_422(v2):
    garbage = np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8).tobytes()
    error_of(upload(v2, "video", (io.BytesIO(garbage), "clip.mp4")), 422, "invalid_video")


@pytest.mark.parametrize("field, name", [("video", "clip.mp4"), ("zip", "a.zip"), ("frames", "a.jpg")])
def test_empty_upload_is_422(v2, field, name):
    error_of(upload(v2, field, (io.BytesIO(b""), name)), 422, "empty_upload")


def test_too_large_upload_is_413(analyzer):
    client = make_client(analyzer, MAX_CONTENT_LENGTH=10_000)
    response = upload(client, "video", (io.BytesIO(b"\x00" * 20_000), "clip.mp4"))
    assert "more than the limit of 10000" in error_of(response, 413, "request_too_large")


@pytest.mark.parametrize("query, body, status, code", [
    ("?stride=0", {"sample": "seqA"}, 400, "invalid_option"),
    ("?max_frames=99999999", {"sample": "seqA"}, 400, "invalid_option"),
    ("", {"sample": "seqA", "timeline": "maybe"}, 400, "invalid_option"),
    ("", {"sample": "seqA", "stride": 1.5}, 400, "invalid_option"),
    ("", {}, 400, "invalid_request"),
    ("", ["seqA"], 400, "invalid_request"),
    ("", {"sample": 3}, 400, "invalid_request"),
    ("", {"sample": "../seqA"}, 400, "invalid_sequence_name"),
    ("", {"sample": "nope"}, 404, "sequence_not_found"),
])
def test_bad_json_requests(v2, query, body, status, code):
    error_of(v2.post(f"/api/v2/analyze{query}", json=body), status, code)


def test_bad_multipart_requests(v2):
    error_of(v2.post("/api/v2/analyze", data=b"seqA", content_type="text/plain"), 415, "unsupported_media_type")
    error_of(upload(v2, "video", (io.BytesIO(b"abc"), "notes.txt")), 415, "unsupported_media_type")
    both = {"sample": "seqA", "zip": (zip_of({"a.jpg": b"x"}), "a.zip")}
    error_of(v2.post("/api/v2/analyze", data=both, content_type="multipart/form-data"), 400, "invalid_request")


# --- jobs ---------------------------------------------------------------------------------------------------

def test_job_result_equals_the_synchronous_answer(v2, sample_answer):
    path, body = SAMPLE_REQUEST
    response = v2.post(path.replace("/analyze", "/jobs"), json=body)
    assert response.status_code == 202, response.get_data(as_text=True)
    job = response.get_json()
    assert job["status"] in ("queued", "running") and response.headers["Location"] == job["url"]
    state = wait_for(v2, job["url"])
    assert state["status"] == "done", state
    assert state["progress"] == {"frames_done": 5, "frames_total": 5}
    result = state["result"]
    assert result["persons"] == sample_answer["persons"]
    assert result["timeline"] == sample_answer["timeline"]
    assert {**result["meta"], "timings_ms": None} == {**sample_answer["meta"], "timings_ms": None}


def test_failed_job_reports_the_error(analyzer, samples_dir):
    wall = samples_dir / "wall"
    wall.mkdir()
    cv2.imwrite(str(wall / "wall.jpg"), np.full((120, 160, 3), 128, np.uint8))
    client = create_app(analyzer, samples_dir).test_client()
    url = client.post("/api/v2/jobs", json={"sample": "wall"}).get_json()["url"]
    state = wait_for(client, url)
    assert state["status"] == "failed" and state["error"]["code"] == "no_face" and state["error"]["status"] == 422
    assert "result" not in state


def test_bad_job_input_is_refused_at_once(v2):
    error_of(v2.post("/api/v2/jobs", json={"sample": "nope"}), 404, "sequence_not_found")
    error_of(v2.get("/api/v2/jobs/no-such-job"), 404, "job_not_found")


def test_full_queue_is_429(analyzer):
    client = make_client(analyzer, FACE_JOB_QUEUE_SIZE=1)
    # The first job is queued or running; while it runs (seconds), the queue holds one more at most.
    responses = [client.post("/api/v2/jobs", json={"sample": "seqA", "max_frames": 3}) for _ in range(3)]
    assert responses[0].status_code == 202
    assert 429 in [response.status_code for response in responses[1:]]
    for response in responses[1:]:
        if response.status_code == 429:
            error_of(response, 429, "queue_full")
    for response in responses:
        if response.status_code == 202:
            assert wait_for(client, response.get_json()["url"])["status"] == "done"


# --- health and contract ------------------------------------------------------------------------------------

def test_health_and_readiness(v2, samples_dir):
    assert v2.get("/healthz").get_json() == {"status": "ok"}
    ready = v2.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["status"] == "ready"
    loading = create_app(types.SimpleNamespace(ready=False), samples_dir).test_client()
    assert loading.get("/healthz").status_code == 200
    error_of(loading.get("/readyz"), 503, "not_ready")


def test_openapi_describes_every_route(v2):
    response = v2.get("/api/v2/openapi.json")
    assert response.status_code == 200
    spec = response.get_json()
    assert spec["openapi"].startswith("3.")
    # Flask's "<converter:name>" is OpenAPI's "{name}".
    routes = {re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
              for rule in v2.application.url_map.iter_rules() if rule.endpoint != "static"}
    assert routes == set(spec["paths"])
    for path, methods in spec["paths"].items():
        for operation in methods.values():
            assert "200" in operation["responses"] or "202" in operation["responses"], path
    analyze = spec["paths"]["/api/v2/analyze"]["post"]["responses"]
    assert {"400", "404", "413", "415", "422", "500"} <= set(analyze)
    assert "429" in spec["paths"]["/api/v2/jobs"]["post"]["responses"]
