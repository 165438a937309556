"""A batch run killed after some inputs are done, then the same command again: the output is complete, no row is
there twice, and the inputs finished before the kill were not analysed again (their rows are the first run's,
to the worker process). A third run finds everything done and does not even start Ray."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from batch_support import (
    MAX_FRAMES,
    batch_command,
    descendants,
    kill_leftovers,
    run_batch,
    started_at,
    write_frame_folders,
)
from conftest import REPO

INPUTS = 6
KILL_AFTER = 2          # inputs done


def finished_parts(out) -> dict[str, dict]:
    """The inputs row of every part in place: input path -> row."""
    rows = {}
    for part in (out / "parts").glob("*"):
        if not part.name.startswith(".") and (part / "inputs.parquet").is_file():
            row = pq.read_table(part / "inputs.parquet").to_pylist()[0]
            rows[row["input"]] = row
    return rows


def kill_when_done(process: subprocess.Popen, out, count: int, timeout: float = 600) -> dict[str, dict]:
    """SIGKILL the command and every process it started once ``count`` inputs have their part."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if (out / "parts").is_dir() and len(finished_parts(out)) >= count:
            tree = started_at(descendants({process.pid}))
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            kill_leftovers(tree)        # Ray's processes, wherever they were
            return finished_parts(out)
        time.sleep(0.05)
    pytest.fail(f"the run ended before {count} inputs were done:\n{process.communicate()[1][-2000:]}")


@pytest.fixture(scope="module")
def resumed(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    folders = write_frame_folders(root / "in", INPUTS)
    out = root / "out"
    arguments = [str(folders), "--out", str(out), "--max-frames", str(MAX_FRAMES)]
    first = subprocess.Popen(batch_command(*arguments), cwd=REPO, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, start_new_session=True)
    before_kill = kill_when_done(first, out, KILL_AFTER)
    tables_after_kill = sorted(path.name for path in out.glob("*.parquet"))
    # One finished input's files are touched: its signature changes, its content does not.
    touched = sorted(before_kill)[0]
    os.utime(min(Path(touched).iterdir()))
    second = run_batch(*arguments)
    third = run_batch(*arguments)
    return {"out": out, "before_kill": before_kill, "tables_after_kill": tables_after_kill, "touched": touched,
            "second": second, "third": third, "parts_after": finished_parts(out)}


def test_the_kill_came_in_the_middle_of_the_run(resumed):
    assert KILL_AFTER <= len(resumed["before_kill"]) < INPUTS
    assert resumed["tables_after_kill"] == []          # the tables come at the end; the parts were kept


def test_the_second_run_completes_the_output_without_duplicates(resumed):
    second = resumed["second"]
    assert second.returncode == 0, second.stderr
    inputs = pq.read_table(resumed["out"] / "inputs.parquet").to_pylist()
    assert len(inputs) == len({row["input"] for row in inputs}) == INPUTS
    assert {row["status"] for row in inputs} == {"done"}
    persons = pq.read_table(resumed["out"] / "persons.parquet").to_pylist()
    keys = [(row["input"], row["person"]) for row in persons]
    assert len(keys) == len(set(keys)) and {row["input"] for row in persons} == {row["input"] for row in inputs}


def test_inputs_done_before_the_kill_were_not_analysed_again(resumed):
    rows = {row["input"]: row for row in pq.read_table(resumed["out"] / "inputs.parquet").to_pylist()}
    for path, before in resumed["before_kill"].items():
        assert (rows[path]["finished_at"], rows[path]["worker_pid"]) == (before["finished_at"], before["worker_pid"])
    done = len(resumed["before_kill"])
    assert f"{INPUTS - done} done, {done} already done and not analysed again" in resumed["second"].stdout


def test_a_touched_input_with_the_same_content_is_recognised_by_its_hash(resumed):
    touched = resumed["touched"]
    before, after = resumed["before_kill"][touched], resumed["parts_after"][touched]
    assert after["stat_signature"] != before["stat_signature"]           # remembered for the next run
    assert (after["finished_at"], after["input_sha256"]) == (before["finished_at"], before["input_sha256"])


def test_a_run_with_everything_done_starts_nothing(resumed):
    third = resumed["third"]
    assert third.returncode == 0, third.stderr
    assert f"{INPUTS} inputs: 0 done, {INPUTS} already done and not analysed again." in third.stdout
    assert "Ray" not in third.stdout + third.stderr
