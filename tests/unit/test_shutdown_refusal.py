"""Once a shutdown begins, new work raises ``ShuttingDown`` (runtime.py), checked in this process, without a
server: before it, the same calls are taken; after it, each way new work starts (a request's work, a request's
upload folder, the job queue) raises, and the app answers 503 ``shutting_down`` with ``Retry-After`` without
calling the analyzer. ``tests/e2e/test_shutdown.py`` checks the same on a real server process, with signals."""

from __future__ import annotations

import types

import pytest

from faceanalysis.service.contract import Limits
from faceanalysis.service.runtime import Runtime, ShuttingDown
from faceanalysis.service.web import create_app, runtime_of


def never_run(record, uploads, progress, limits):
    raise AssertionError("no job runs in these tests")


def test_before_the_shutdown_new_work_is_taken():
    runtime = Runtime(run_job=never_run)
    with runtime.lifecycle.work():
        pass
    assert runtime.new_workdir().is_dir()
    assert runtime.jobs(Limits()) is runtime.jobs(Limits())
    runtime.shutdown(0.0)


def test_after_the_shutdown_begins_new_work_raises_shutting_down():
    runtime = Runtime(run_job=never_run)
    runtime.new_workdir()                       # a data folder made before: the shutdown closes it
    runtime.shutdown(0.0)
    with pytest.raises(ShuttingDown):
        with runtime.lifecycle.work():
            pass
    with pytest.raises(ShuttingDown):
        runtime.new_workdir()
    with pytest.raises(ShuttingDown):
        runtime.jobs(Limits())


def test_new_work_is_refused_as_soon_as_the_shutdown_begins_while_work_is_under_way():
    # The shutdown has begun (new work refused) but is still waiting for the request under way.
    runtime = Runtime()
    with runtime.lifecycle.work():
        runtime.lifecycle.stop()
        with pytest.raises(ShuttingDown):
            with runtime.lifecycle.work():
                pass
    assert runtime.lifecycle.wait_idle(deadline=0.0)      # the one under way has ended: nothing is left


class CountingAnalyzer:
    ready = True
    device = types.SimpleNamespace(kind="CPU")

    def __init__(self) -> None:
        self.calls = 0

    def analyse_folder(self, folder):
        self.calls += 1
        raise AssertionError("the analyzer is not called once the shutdown began")


def test_the_app_answers_503_with_retry_after_and_never_calls_the_analyzer(samples_dir):
    analyzer = CountingAnalyzer()
    app = create_app(analyzer, samples_dir)
    client = app.test_client()
    runtime_of(app).shutdown(2.5)
    for response in (client.get("/seqPath/seqA"), client.post("/api/v2/analyze", json={"sample": "seqA"}),
                     client.post("/api/v2/jobs", json={"sample": "seqA"})):
        assert response.status_code == 503, response.get_data(as_text=True)
        assert response.get_json()["error"]["code"] == "shutting_down"
        assert response.headers["Retry-After"] == "3"            # the grace period, rounded up
    assert analyzer.calls == 0
    assert client.get("/readyz").status_code == 503
