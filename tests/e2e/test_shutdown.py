"""Graceful shutdown and restarts of a real server process (flaskMain.py on loopback), and two servers sharing one
data folder.

A SIGTERM while the first of three jobs runs: new work is refused (503 shutting_down, Retry-After) and /readyz
says not ready while the process drains; it exits 0 within the grace period, leaving no temporary file. After a
restart on the same data folder all three jobs finish, each with the answer a direct analysis gives. With a
grace period too short for the first job, that job goes back to the queue and runs again after the restart.
"""

from __future__ import annotations

import signal
import time

import cv2
import pytest

from conftest import SAMPLES
from service_process import Server, data_files, tiny_samples, tracebacks, without_timings, zip_of_frames


def mp4_of_frames(path, sample: str = "seqA", count: int = 3) -> bytes:
    frames = sorted((SAMPLES / sample).glob("*.jpg"))[:count]
    first = cv2.imread(str(frames[0]))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 5.0, (first.shape[1], first.shape[0]))
    for frame in frames:
        writer.write(cv2.imread(str(frame)))
    writer.release()
    return path.read_bytes()


def three_inputs(tmp_path):
    """(how to submit it to a path) for: a whole sample (30 frames, the long one), a zip and a video upload."""
    video = mp4_of_frames(tmp_path / "clip.mp4")
    archive = zip_of_frames()
    return [
        lambda server, path: server.post_json(path, {"sample": "seqA_full"}),
        lambda server, path: server.post_file(path, "zip", "frames.zip", archive),
        lambda server, path: server.post_file(path, "video", "clip.mp4", video, {"timeline": "true"}),
    ]


def wait_until_running(server: Server, job_id: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.get(f"/api/v2/jobs/{job_id}").json["status"] == "running":
            return
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} never ran")


@pytest.mark.parametrize("grace, first_finishes", [(30.0, True), (0.2, False)], ids=["finishes", "handed_back"])
def test_sigterm_during_the_first_of_three_jobs(tmp_path, grace, first_finishes):
    samples = tiny_samples(tmp_path / "samples")
    data = tmp_path / "data"
    server = Server(data, tmp_path, samples, "--shutdown-grace", str(grace)).start()
    inputs = three_inputs(tmp_path)
    submitted = [submit(server, "/api/v2/jobs") for submit in inputs]
    assert [answer.status for answer in submitted] == [202] * 3, [answer.raw for answer in submitted]
    ids = [answer.json["id"] for answer in submitted]
    wait_until_running(server, ids[0])

    signalled = time.monotonic()
    server.signal(signal.SIGTERM)
    if first_finishes:
        # While it drains, the server still answers: status as before, no new work, not ready.
        assert server.get(f"/api/v2/jobs/{ids[1]}").json["status"] == "queued"
        refused = server.post_json("/api/v2/jobs", {"sample": "seqA"})
        assert refused.status == 503 and refused.json["error"]["code"] == "shutting_down"
        assert int(refused.headers["Retry-After"]) == 30
        assert server.post_json("/api/v2/analyze", {"sample": "seqA"}).status == 503
        assert server.get("/seqPath/seqA").status == 503
        ready = server.get("/readyz")
        assert ready.status == 503 and ready.json["error"]["code"] == "shutting_down"
    status = server.process.wait(timeout=grace + 30)
    took = time.monotonic() - signalled
    assert status == 0, server.log()[-3000:]
    # The grace period, plus the closing of the store and the HTTP server.
    assert took < grace + 5, took
    log = server.log()
    assert tracebacks(log) == 0, log[-3000:]
    left = data_files(data)
    assert left["tmp"] == [] and left["instances"] == [], left
    # The queued jobs keep their uploads (the sample job has none) for the next start.
    assert left["uploads"] == sorted(ids[1:]), left
    if not first_finishes:
        assert f"job {ids[0]} did not finish within the grace period" in log

    server.start()
    states = [server.wait_for(job_id) for job_id in ids]
    assert [state["status"] for state in states] == ["done"] * 3, states
    ran_again = f"job {ids[0]} running" in server.log()
    assert ran_again is not first_finishes
    for submit, state in zip(inputs, states):
        direct = submit(server, "/api/v2/analyze")
        assert direct.status == 200, direct.raw[:300]
        assert without_timings(state["result"]) == without_timings(direct.json)
    assert server.stop() == 0
    assert data_files(data) == {"uploads": [], "tmp": [], "instances": []}


def test_two_servers_share_one_data_folder(tmp_path):
    """Both run on the same folder: a job accepted by one is answered by either and runs exactly once."""
    samples = tiny_samples(tmp_path / "samples")
    data = tmp_path / "data"
    first = Server(data, tmp_path, samples, name="first")
    second = Server(data, tmp_path, samples, name="second")
    first.launch()
    second.launch()                         # the two load their models side by side
    first.wait_ready()
    second.wait_ready()
    assert len(data_files(data)["instances"]) == 2
    archive = zip_of_frames()
    ids = []
    for number in range(4):
        answer = (first if number % 2 else second).post_file("/api/v2/jobs", "zip", f"{number}.zip", archive)
        assert answer.status == 202, answer.raw
        ids.append(answer.json["id"])
    states = [first.wait_for(job_id) for job_id in ids]
    assert [state["status"] for state in states] == ["done"] * 4
    assert [second.get(f"/api/v2/jobs/{job_id}").json for job_id in ids] == states
    runs = sum(server.log().count(f"job {job_id} running") for server in (first, second) for job_id in ids)
    assert runs == 4
    assert first.stop() == 0
    # The one left still works, and still sees every job.
    assert second.get(f"/api/v2/jobs/{ids[0]}").json == states[0]
    assert second.stop() == 0
    assert data_files(data) == {"uploads": [], "tmp": [], "instances": []}
