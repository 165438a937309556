"""Whether a shutdown left an analysis running (then the server process leaves with os._exit,
faceanalysis/server_setup.py, rather than race the native threads still running it against the libraries'
destructors)."""

from __future__ import annotations

import threading

from faceanalysis.service.runtime import Runtime


def test_an_idle_runtime_leaves_nothing_running():
    runtime = Runtime()
    runtime.shutdown(0.0)
    assert runtime.left_running is False


def request_in_flight(runtime: Runtime) -> tuple[threading.Thread, threading.Event]:
    """A request under way (counted by the lifecycle) until the returned event is set."""
    started, release = threading.Event(), threading.Event()

    def request():
        with runtime.lifecycle.work():
            started.set()
            release.wait(10)
    worker = threading.Thread(target=request)
    worker.start()
    started.wait(10)
    return worker, release


def test_work_that_outlives_the_grace_period_is_left_running():
    runtime = Runtime()
    worker, release = request_in_flight(runtime)
    runtime.shutdown(0.05)
    assert runtime.left_running is True
    release.set()
    worker.join(10)


def test_work_that_ends_within_the_grace_period_is_not():
    runtime = Runtime()
    worker, release = request_in_flight(runtime)
    threading.Timer(0.1, release.set).start()             # ends while the shutdown waits
    runtime.shutdown(5.0)
    assert runtime.left_running is False
    worker.join(10)
