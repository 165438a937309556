"""The data path of the runtime (faceanalysis/service/runtime.py) goes one way: a request analysed at once gets an
upload folder in the data folder without the job store being opened; the app hands the runtime the function that
runs a job, and the runtime builds the queue with it and the limits of its first use. No model, no server."""

from __future__ import annotations

import threading

import pytest

from faceanalysis.service.contract import Limits
from faceanalysis.service.datafolder import STORE_NAME
from faceanalysis.service.runtime import Runtime


def test_an_upload_folder_does_not_open_the_job_store():
    runtime = Runtime()
    workdir = runtime.new_workdir()
    root = runtime.folder().root
    assert workdir.is_dir() and workdir.is_relative_to(root)
    assert not (root / STORE_NAME).exists()             # no SQLite file: the store was never opened
    runtime.shutdown(0.0)


def test_the_job_store_is_opened_in_the_same_data_folder_on_first_use():
    runtime = Runtime()
    root = runtime.folder().root
    assert runtime.store().folder.root == root and (root / STORE_NAME).exists()
    runtime.shutdown(0.0)


def test_a_runtime_made_without_a_job_function_takes_no_jobs():
    runtime = Runtime()
    with pytest.raises(RuntimeError, match="without a function that runs a job"):
        runtime.jobs(Limits())
    runtime.shutdown(0.0)


def test_the_queue_runs_each_job_with_the_function_handed_in_and_the_limits_of_its_first_use():
    seen, done = [], threading.Event()

    def run_job(record, uploads, progress, limits):
        seen.append((record, uploads, limits.max_frames))
        done.set()
        return {"answer": record["n"]}
    runtime = Runtime(run_job=run_job, models_key="models-a")
    queue = runtime.jobs(Limits(max_frames=7))
    assert runtime.jobs(Limits(max_frames=99)) is queue                 # made once: later limits do not apply
    job = queue.submit({"n": 1}, None)
    assert done.wait(20)
    for _ in range(200):
        if queue.get(job.id)["status"] == "done":
            break
        threading.Event().wait(0.05)
    assert seen == [({"n": 1}, None, 7)]
    assert queue.get(job.id)["result"] == {"answer": 1}
    runtime.shutdown(5.0)
