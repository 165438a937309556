"""The three legacy scripts, run as a user runs them, against a real server on a free port."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}


def run(*args, timeout=300):
    return subprocess.run([sys.executable, *args], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=timeout)


def test_testapi_reads_testinput_and_prints_the_legacy_dict():
    assert (REPO / "testInput").read_text().strip() == "samples/seqA"
    result = run("TestAPI.py")
    assert result.returncode == 0, result.stderr
    printed = ast.literal_eval(result.stdout.strip().splitlines()[-1])
    assert list(printed) == ["Video_Emo", "Video_Gen", "Video_Age"]
    assert list(printed["Video_Emo"]) == list(range(10001, 10008))   # integer keys, as the original printed
    assert list(printed["Video_Gen"]) == [30001, 30002] and list(printed["Video_Age"]) == [20000]


def test_testapi_error_is_json_and_non_zero(tmp_path):
    (tmp_path / "empty").mkdir()
    result = run("TestAPI.py", str(tmp_path / "empty"))
    assert result.returncode != 0
    assert json.loads(result.stderr.strip().splitlines()[-1])["error"]["code"] == "no_images"


def test_testflask_against_a_running_server(server):
    result = run("TestFlask.py", "--url", server)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert f"input: {server}/seqPath/test" in lines and f"input: {server}/seqPath/seqB" in lines
    outputs = [ast.literal_eval(line.removeprefix("output: ")) for line in lines if line.startswith("output: ")]
    assert len(outputs) == 2 and all(set(out) == {"Video_Emo", "Video_Gen", "Video_Age"} for out in outputs)


def test_server_answers_errors_as_json(server):
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(f"{server}/seqPath/%2e%2e", timeout=30)
    assert caught.value.code == 400
    assert json.loads(caught.value.read())["error"]["code"] == "invalid_sequence_name"


def test_time_measure_reports_every_stage():
    result = run("testForTimeMeasure.py", "--repeat", "1")
    assert result.returncode == 0, result.stderr
    for word in ("model load", "read", "detect", "align", "age", "gender", "expression", "aggregate", "frames/s"):
        assert word in result.stdout


def test_console_script_analyses_a_folder_as_the_server_does(tmp_path):
    from golden import GOLDEN, differences
    # The golden answers are the "tuned" and "ensemble" models' (tests/e2e/test_golden.py): the same models here.
    command = [str(Path(sys.executable).with_name("faceanalysis")), "analyse", "samples/seqA", "--format", "legacy",
               "--age-gender", "tuned", "--expression", "ensemble"]
    result = subprocess.run(command, cwd=tmp_path.parent, env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2          # run from elsewhere: the relative folder does not exist there
    error = json.loads(result.stderr.strip().splitlines()[-1])["error"]
    assert error == {"code": "input_not_found",
                     "message": f"no such file or folder: {str(tmp_path.parent / 'samples' / 'seqA')!r}"}
    command[2] = str(REPO / "samples" / "seqA")
    result = subprocess.run(command, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert differences(json.loads(GOLDEN.read_text())["legacy_test"]["body"], json.loads(result.stdout)) == []


def test_console_script_without_a_command_says_how_to_use_it():
    result = subprocess.run([str(Path(sys.executable).with_name("faceanalysis"))], env=ENV, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2 and "serve" in result.stderr and "analyse" in result.stderr
