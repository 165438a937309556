"""API v2 on real models: every input kind, the answer's shape, limits, jobs, health and the OpenAPI document,
which is generated from the contract's declarations and must describe every real answer.

Inputs are kept to 3-5 frames each so the file stays fast on a small CPU.
"""

from __future__ import annotations

import dataclasses
import io
import re
import time
import types
import zipfile
from dataclasses import dataclass, fields

import cv2
import numpy as np
import pytest

from checks import error_of
from conftest import SAMPLES
from faceanalysis.pipeline.analyzer import STAGES
from faceanalysis.service import contract
from faceanalysis.service.schema import prop
from faceanalysis.service.web import create_app

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


def write_mp4(path, frames, fps=5.0):
    first = cv2.imread(str(frames[0]))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (first.shape[1], first.shape[0]))
    for frame in frames:
        writer.write(cv2.imread(str(frame)))
    writer.release()
    return path


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
    # The interval is widened to the estimate and rounded outwards (age/distribution.py): never outside it.
    assert low <= person["age"]["value"] <= high
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


def test_the_default_aggregator_weights_real_faces_by_hand_made_confidences(sample_results, analyzer):
    # seqA's detection confidences are all about 0.99, too alike to tell a weighted mean from a plain one. Here
    # its real faces get made-up confidences: 1 for the five oldest-looking faces, 0.01 for the others.
    faces = sample_results["seqA"].faces
    confidence = np.full(len(faces), 0.01)
    confidence[np.argsort(faces.age_years)[-5:]] = 1.0
    chosen = np.ones(len(faces), bool)
    summary = analyzer.summarise(dataclasses.replace(faces, confidence=confidence), chosen)
    weighted = confidence @ faces.age / confidence.sum()
    weighted /= weighted.sum()              # the networks' float32 rows sum to 1 within 1e-7
    plain = faces.age.mean(axis=0)
    assert summary.age == pytest.approx(float(weighted @ analyzer.models["age"].bin_ages), abs=1e-9)
    expression = confidence @ faces.expression
    assert summary.expression == pytest.approx(expression / expression.sum(), abs=1e-9)
    # ...and the two means are far enough apart for the check to tell them.
    assert abs(summary.age - float(plain @ analyzer.models["age"].bin_ages)) > 0.5


def test_meta_names_models_frames_timings_and_device(sample_answer, analyzer):
    meta = sample_answer["meta"]
    assert meta["input"] == {"kind": "sample", "name": "seqA", "fps": 25.0}
    assert meta["options"] == {"timeline": True, "max_frames": 5, "stride": 1, "fps": 25.0, "keep_upload": False}
    assert meta["frames"] == {"listed": 30, "read": 5, "skipped": [], "ignored": [], "without_face": [],
                              "truncated": True, "duration": 1.2}         # 30 frames at 25 a second
    assert meta["models"] == analyzer.model_info()
    assert meta["model_choice"] == analyzer.model_choice == {"age_gender": "lifespan", "expression": "ferplus-trio"}
    assert all(len(model["sha256"]) == 64 for model in meta["models"].values())
    assert set(meta["timings_ms"]) == {*STAGES, "total"}
    assert meta["device"]["kind"] in ("CPU", "GPU")
    assert meta["aggregator"] == analyzer.aggregator.name
    assert meta["tracker"]["name"] == "tracklets_identity"


def test_stride_takes_every_nth_frame(v2):
    response = v2.post("/api/v2/analyze", query_string={"stride": "10", "timeline": "1", "fps": "12.5"},
                       json={"sample": "seqA"})
    assert response.status_code == 200, response.get_data(as_text=True)
    answer = response.get_json()
    assert [(entry["frame"], entry["time"]) for entry in answer["timeline"]] == [(0, 0.0), (10, 0.8), (20, 1.6)]
    assert answer["persons"][0]["spans_seconds"] == [[0.0, 1.6]]


def test_a_misspelled_option_is_refused_and_a_known_one_passes(v2):
    refused = v2.post("/api/v2/analyze", query_string={"strde": "2", "timelin": "true"}, json={"sample": "seqA"})
    assert refused.status_code == 400
    assert refused.get_json()["error"] == {
        "code": "unknown_option", "message": "unknown options 'strde', 'timelin'; the options are timeline, "
                                             "max_frames, stride, fps, keep_upload (and, as a body field, sample)"}
    refused = v2.post("/api/v2/analyze", json={"sample": "seqA", "strde": 2})
    assert refused.status_code == 400 and refused.get_json()["error"]["code"] == "unknown_option"
    accepted = v2.post("/api/v2/analyze", json={"sample": "seqA", "stride": 15, "max_frames": 1})
    assert accepted.status_code == 200 and accepted.get_json()["meta"]["options"]["stride"] == 15


# --- uploads ------------------------------------------------------------------------------------------------

def test_zip_of_frames(v2):
    entries = {f"clip/{path.name}": path.read_bytes() for path in SEQ_A[:5]}
    entries["clip/notes.txt"] = b"not a frame"
    answer = upload(v2, "zip", (zip_of(entries), "clip.zip")).get_json()
    assert primary(answer)["frames_seen"] == 5
    assert answer["meta"]["input"] == {"kind": "zip", "name": "clip.zip", "fps": 25.0}
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
    assert answer["meta"]["input"] == {"kind": "frames", "name": "3 files", "fps": 25.0}


def test_an_unreadable_image_among_frames_is_skipped(v2):
    files = [(io.BytesIO(SEQ_A[0].read_bytes()), "a.jpg"), (io.BytesIO(b"not an image"), "b.jpg")]
    frames = upload(v2, "frames", files).get_json()["meta"]["frames"]
    assert frames["read"] == 1 and [item["name"] for item in frames["skipped"]] == ["b.jpg"]


def test_short_mp4_video(v2, tmp_path):
    path = write_mp4(tmp_path / "clip.mp4", SEQ_A[:5])
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


def test_upload_jobs_equal_the_synchronous_answer(v2):
    # The job stores its request and moves the uploads into the data folder; the answer must not change.
    entries = {path.name: path.read_bytes() for path in SEQ_A[:3]}
    for field, files in (("zip", lambda: (zip_of(entries), "clip.zip")),
                         ("frames", lambda: [(io.BytesIO(data), name) for name, data in entries.items()])):
        direct = upload(v2, field, files(), "?timeline=1")
        assert direct.status_code == 200, direct.get_data(as_text=True)
        queued = v2.post("/api/v2/jobs?timeline=1", data={field: files()}, content_type="multipart/form-data")
        assert queued.status_code == 202, queued.get_data(as_text=True)
        state = wait_for(v2, queued.get_json()["url"])
        assert state["status"] == "done", state
        expected = direct.get_json()
        assert {**state["result"]["meta"], "timings_ms": None} == {**expected["meta"], "timings_ms": None}
        assert state["result"]["persons"] == expected["persons"]
        assert state["result"]["timeline"] == expected["timeline"]


def test_a_finished_job_expires_with_410_and_an_unknown_id_is_404(analyzer):
    client = make_client(analyzer, FACE_JOB_TTL_SECONDS=1)
    url = client.post("/api/v2/jobs", json={"sample": "seqA", "max_frames": 2}).get_json()["url"]
    state = wait_for(client, url)
    finished = time.mktime(time.strptime(state["finished"], "%Y-%m-%dT%H:%M:%SZ"))
    assert time.mktime(time.strptime(state["expires"], "%Y-%m-%dT%H:%M:%SZ")) == finished + 1
    time.sleep(2.1)
    assert "finished more than 1 s ago" in error_of(client.get(url), 410, "job_expired")
    error_of(client.get(url.rsplit("/", 1)[0] + "/never-was"), 404, "job_not_found")


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


def spec_of(client) -> dict:
    response = client.get("/api/v2/openapi.json")
    assert response.status_code == 200
    return response.get_json()


def test_components_are_generated_from_the_declarations(v2):
    schemas = spec_of(v2)["components"]["schemas"]
    declared = [contract.Analysis, contract.Person, contract.Age, contract.Gender, contract.Expression,
                contract.Face, contract.TimelineFrame, contract.Meta, contract.Input, contract.Frames,
                contract.Options, contract.Job, contract.QueuedJob, contract.Error, contract.SampleList]
    for declaration in declared:
        assert list(schemas[declaration.__name__]["properties"]) == [item.name for item in fields(declaration)]
    assert list(schemas["Expression"]["properties"]) == [*EXPRESSIONS, "dominant"]
    assert schemas["Meta"]["properties"]["settings"]["allOf"] == [{"$ref": "#/components/schemas/Settings"}]


def test_a_field_added_to_a_declaration_appears_in_the_served_document(v2, monkeypatch):
    @dataclass(frozen=True, kw_only=True)
    class Person(contract.Person):
        height: float = prop("Centimetres.", minimum=0)

    monkeypatch.setattr(contract, "Person", Person)
    person = spec_of(v2)["components"]["schemas"]["Person"]
    assert person["properties"]["height"] == {"type": "number", "minimum": 0, "description": "Centimetres."}
    assert person["required"][-1] == "height"


def test_option_bounds_come_from_the_configured_limits(analyzer):
    client = make_client(analyzer, FACE_MAX_FRAMES=50, FACE_DEFAULT_MAX_FRAMES=20, FACE_MAX_STRIDE=7)
    spec = spec_of(client)
    analyze = spec["paths"]["/api/v2/analyze"]["post"]
    query = {parameter["name"]: parameter["schema"] for parameter in analyze["parameters"]}
    assert query == {"timeline": {"type": "boolean", "default": False},
                     "max_frames": {"type": "integer", "minimum": 1, "maximum": 50, "default": 20},
                     "stride": {"type": "integer", "minimum": 1, "maximum": 7, "default": 1},
                     "fps": {"type": "number", "minimum": 0.001, "maximum": 1000.0, "default": 25.0},
                     "keep_upload": {"type": "boolean", "default": False}}
    body = analyze["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert body["max_frames"]["maximum"] == 50 and body["stride"]["maximum"] == 7
    assert spec["components"]["schemas"]["Options"]["properties"]["max_frames"]["default"] == 20
    # The service enforces the bound it documents.
    error_of(client.post("/api/v2/analyze?max_frames=51", json={"sample": "seqA"}), 400, "invalid_option")
    error_of(client.post("/api/v2/analyze", json={"sample": "seqA", "stride": 8}), 400, "invalid_option")


def test_every_limit_has_one_default_in_the_config(analyzer):
    config = create_app(analyzer, SAMPLES).config
    defaults = contract.Limits.config_defaults()
    assert {key: config[key] for key in defaults} == defaults
    assert contract.Limits.from_config(config) == contract.Limits()


# --- real answers against the served document ---------------------------------------------------------------

def strict(node):
    """OpenAPI 3.0 schemas as JSON Schema (``nullable`` as a null type), with no undeclared keys allowed, so an
    answer key missing from its declaration fails too."""
    if isinstance(node, list):
        return [strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: strict(value) for key, value in node.items()}
    if node.pop("nullable", False):
        node["type"] = [node["type"], "null"]
    if "properties" in node and "additionalProperties" not in node:
        node["additionalProperties"] = False
    return node


@pytest.fixture(scope="module")
def conforms(v2):
    jsonschema_rs = pytest.importorskip("jsonschema_rs")
    components = strict(spec_of(v2)["components"])

    def check(answer, name):
        validator = jsonschema_rs.Draft4Validator({"$ref": f"#/components/schemas/{name}", "components": components})
        errors = [str(error) for error in validator.iter_errors(answer)]
        assert errors == [], errors[:3]
    return check


def test_analysis_answers_conform(v2, sample_answer, conforms, tmp_path):
    conforms(sample_answer, "Analysis")
    video = upload(v2, "video", (io.BytesIO(write_mp4(tmp_path / "clip.mp4", SEQ_A[:2]).read_bytes()), "clip.mp4"),
                   "?timeline=1").get_json()
    assert "fps" in video["meta"]["input"]
    conforms(video, "Analysis")
    entries = {"a.jpg": SEQ_A[0].read_bytes(), "b.jpg": b"not an image", "notes.txt": b"x"}
    archive = upload(v2, "zip", (zip_of(entries), "a.zip")).get_json()
    assert archive["meta"]["frames"]["skipped"] and archive["meta"]["frames"]["ignored"]
    conforms(archive, "Analysis")


def test_job_answers_conform(analyzer, samples_dir, conforms):
    wall = samples_dir / "wall"
    wall.mkdir()
    cv2.imwrite(str(wall / "wall.jpg"), np.full((120, 160, 3), 128, np.uint8))
    client = create_app(analyzer, samples_dir).test_client()
    for sample, status in (("seqA", "done"), ("wall", "failed")):
        queued = client.post("/api/v2/jobs", json={"sample": sample, "max_frames": 2})
        conforms(queued.get_json(), "QueuedJob")
        state = wait_for(client, queued.get_json()["url"])
        assert state["status"] == status
        conforms(state, "Job")


def test_small_answers_and_errors_conform(v2, analyzer, conforms):
    conforms(v2.get("/api/v2/samples").get_json(), "SampleList")
    conforms(v2.get("/healthz").get_json(), "Health")
    conforms(v2.get("/readyz").get_json(), "Readiness")
    errors = [v2.post("/api/v2/analyze", json={"sample": "nope"}), v2.get("/api/v2/jobs/nope"),
              v2.post("/api/v2/analyze?stride=0", json={"sample": "seqA"}), v2.get("/api/v2/nowhere"),
              upload(make_client(analyzer, MAX_CONTENT_LENGTH=100), "video", (io.BytesIO(b"0" * 200), "a.mp4"))]
    for response in errors:
        assert response.status_code >= 400
        conforms(response.get_json(), "Error")
