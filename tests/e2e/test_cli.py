"""``faceanalysis analyse`` on every kind of input (faceanalysis/analyse.py; docs/cli.md), the annotated video,
the CSV tables, and the command's manners: help, unknown commands, a busy port and a GPU that is not there.

The analyses run in this process with the session's analyzer (the command's ``analyzer`` argument), on videos,
zips and images made here from samples/seqA's real face; the manners run the installed command as a user does.
"""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import REPO, SAMPLES
from faceanalysis import analyse
from faceanalysis.annotate import PALETTE

FRAMES = sorted((SAMPLES / "seqA").glob("*.jpg"))[:8]
COMMAND = [str(Path(sys.executable).with_name("faceanalysis"))]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def video(path: Path, fourcc: str, fps: float = 10.0) -> Path:
    first = cv2.imread(str(FRAMES[0]))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (first.shape[1], first.shape[0]))
    for frame in FRAMES:
        writer.write(cv2.imread(str(frame)))
    writer.release()
    return path


def gif(path: Path) -> Path:
    # 80 ms a frame: 12.5 frames a second, as the shared clips' GIFs.
    images = [Image.open(frame).convert("RGB").resize((320, 240)) for frame in FRAMES]
    images[0].save(path, save_all=True, append_images=images[1:], duration=80, loop=0)
    return path


def run(capsys, analyzer, *argv) -> dict:
    analyse.main([str(item) for item in argv], analyzer=analyzer)
    return json.loads(capsys.readouterr().out)


def refused(capsys, *argv, analyzer=None) -> dict:
    with pytest.raises(SystemExit) as leaving:
        analyse.main([str(item) for item in argv], analyzer=analyzer)
    assert leaving.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return json.loads(lines[0])["error"]


@pytest.fixture()
def no_models(monkeypatch):
    """Loading a model fails the test: what is refused must be refused before."""
    from faceanalysis.pipeline import analyzer as module

    def refuse(*args, **kwargs):
        raise AssertionError("models were loaded")
    monkeypatch.setattr(module.FaceAnalyzer, "__init__", refuse)


# --- every input kind -------------------------------------------------------------------------------------------

TEN_A_SECOND = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
TWENTY_FIVE_A_SECOND = [0.0, 0.04, 0.08, 0.12, 0.16, 0.2, 0.24, 0.28]


@pytest.mark.parametrize("name, fourcc, fps, times", [
    ("clip.mkv", "MJPG", 10.0, TEN_A_SECOND), ("clip.avi", "MJPG", 10.0, TEN_A_SECOND),
    ("clip.m4v", "mp4v", 10.0, TEN_A_SECOND), ("clip.flv", "FLV1", 10.0, TEN_A_SECOND),
    ("clip.mpg", "MPG1", 25.0, TWENTY_FIVE_A_SECOND),        # MPEG-1 has no 10 frames a second
])
def test_a_video_in_any_container_ffmpeg_reads(capsys, analyzer, tmp_path, name, fourcc, fps, times):
    answer = run(capsys, analyzer, video(tmp_path / name, fourcc, fps), "--timeline")
    meta = answer["meta"]
    assert meta["input"] == {"kind": "video", "name": name, "fps": fps}
    assert meta["frames"]["read"] == 8 and meta["frames"]["duration"] == {10.0: 0.8, 25.0: 0.32}[fps]
    assert [frame["time"] for frame in answer["timeline"]] == times
    assert len(answer["persons"]) == 1 and answer["persons"][0]["spans"] == [[0, 7]]
    assert answer["persons"][0]["spans_seconds"] == [[0.0, times[-1]]]


def test_a_gif_is_a_video_at_its_own_rate(capsys, analyzer, tmp_path):
    answer = run(capsys, analyzer, gif(tmp_path / "anim.gif"))
    assert answer["meta"]["input"] == {"kind": "video", "name": "anim.gif", "fps": 12.5}
    assert answer["meta"]["frames"]["read"] == 8 and len(answer["persons"]) == 1


def test_a_video_is_known_by_its_content_whatever_its_name(capsys, analyzer, tmp_path):
    clip = video(tmp_path / "clip.mkv", "MJPG")
    renamed = clip.rename(tmp_path / "upload.bin")
    answer = run(capsys, analyzer, renamed)
    assert answer["meta"]["input"]["kind"] == "video" and answer["meta"]["frames"]["read"] == 8


def test_a_folder_of_frames_at_the_fps_option(capsys, analyzer, tmp_path):
    answer = run(capsys, analyzer, SAMPLES / "seqA", "--stride", "10", "--fps", "10", "--timeline")
    assert answer["meta"]["input"] == {"kind": "folder", "name": "seqA", "fps": 10.0}
    assert [(frame["frame"], frame["time"]) for frame in answer["timeline"]] == [(0, 0.0), (10, 1.0), (20, 2.0)]
    assert answer["meta"]["frames"]["duration"] == 3.0          # 30 frames listed at 10 a second
    assert answer["meta"]["options"] == {"timeline": True, "max_frames": 3, "stride": 10, "fps": 10.0,
                                         "keep_upload": False}


def test_a_folder_without_fps_is_at_25_frames_a_second(capsys, analyzer):
    answer = run(capsys, analyzer, SAMPLES / "seqA", "--max-frames", "2", "--timeline")
    assert [frame["time"] for frame in answer["timeline"]] == [0.0, 0.04]
    assert answer["meta"]["frames"]["truncated"] is True


def test_a_zip_of_frames(capsys, analyzer, tmp_path):
    with zipfile.ZipFile(tmp_path / "frames.zip", "w") as archive:
        for frame in FRAMES[:3]:
            archive.write(frame, f"clip/{frame.name}")
    answer = run(capsys, analyzer, tmp_path / "frames.zip")
    assert answer["meta"]["input"] == {"kind": "zip", "name": "frames.zip", "fps": 25.0}
    assert answer["meta"]["frames"]["read"] == 3


def test_images_in_the_order_given(capsys, analyzer):
    answer = run(capsys, analyzer, FRAMES[2], FRAMES[0], "--timeline")
    assert answer["meta"]["input"] == {"kind": "frames", "name": "2 files", "fps": 25.0}
    assert [frame["name"] for frame in answer["timeline"]] == [FRAMES[2].name, FRAMES[0].name]


def test_one_image(capsys, analyzer):
    answer = run(capsys, analyzer, FRAMES[0], "--format", "legacy")
    assert list(answer) == ["Video_Emo", "Video_Gen", "Video_Age"]


# --- refused before any model loads, naming the full path ---------------------------------------------------------

def test_a_missing_path_is_named_in_full(capsys, no_models, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    error = refused(capsys, "clip.mp4")
    assert error == {"code": "input_not_found", "message": f"no such file or folder: {str(tmp_path / 'clip.mp4')!r}"}


def test_a_file_of_no_known_kind_is_refused(capsys, no_models, tmp_path):
    (tmp_path / "notes.txt").write_text("not a video")
    error = refused(capsys, tmp_path / "notes.txt")
    assert error["code"] == "unsupported_media_type" and str(tmp_path / "notes.txt") in error["message"]


def test_an_undecodable_video_is_refused_with_its_path(capsys, no_models, tmp_path):
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(200))
    error = refused(capsys, tmp_path / "broken.mp4")
    assert error == {"code": "invalid_video",
                     "message": f"{str(tmp_path / 'broken.mp4')!r} has no frame that can be decoded"}


def test_a_folder_without_frames_is_refused_with_its_path(capsys, no_models, tmp_path):
    (tmp_path / "empty").mkdir()
    error = refused(capsys, tmp_path / "empty")
    assert error["code"] == "no_images" and repr(str(tmp_path / "empty")) in error["message"]


def test_several_paths_must_all_be_images(capsys, no_models, tmp_path):
    error = refused(capsys, FRAMES[0], SAMPLES / "seqB")
    assert error["code"] == "invalid_request" and repr(str(SAMPLES / "seqB")) in error["message"]


@pytest.mark.parametrize("flags, accepted", [(["--stride", "1000"], True), (["--stride", "1001"], False),
                                             (["--max-frames", "1"], True), (["--max-frames", "0"], False),
                                             (["--fps", "1000"], True), (["--fps", "1000.1"], False),
                                             (["--fps", "0.001"], True), (["--fps", "0"], False)])
def test_options_have_the_services_bounds(capsys, no_models, flags, accepted):
    if accepted:
        # Past the checks, the models are the next step: the stand-in refuses to load them.
        with pytest.raises(AssertionError, match="models were loaded"):
            analyse.main([str(FRAMES[0]), *flags])
    else:
        assert refused(capsys, FRAMES[0], *flags)["code"] == "invalid_option"


# --- --csv and --annotate ------------------------------------------------------------------------------------------

def test_csv_writes_the_batch_tables_of_the_input(capsys, analyzer, tmp_path):
    run(capsys, analyzer, video(tmp_path / "clip.mkv", "MJPG"), "--csv", tmp_path / "tables")
    read = {name: list(csv.DictReader(open(tmp_path / "tables" / f"{name}.csv", encoding="utf-8")))
            for name in ("persons", "inputs", "frames")}
    assert len(read["persons"]) == 1 and len(read["inputs"]) == 1 and len(read["frames"]) == 8
    inputs = read["inputs"][0]
    assert (inputs["kind"], inputs["status"], inputs["fps"], inputs["duration"]) == ("video", "done", "10", "0.8")
    person = read["persons"][0]
    assert json.loads(person["spans"]) == [{"first": 0, "last": 7, "first_seconds": 0.0, "last_seconds": 0.7}]
    assert [row["time"] for row in read["frames"]] == ["0", "0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7"]
    assert len(json.loads(read["frames"][0]["landmarks"])) == 5


def test_annotate_draws_each_persons_box_on_every_frame(capsys, analyzer, tmp_path):
    clip = video(tmp_path / "clip.avi", "MJPG")
    out = tmp_path / "annotated.mp4"
    answer = run(capsys, analyzer, clip, "--annotate", out, "--stride", "3", "--timeline")
    capture = cv2.VideoCapture(str(out))
    written = []
    while True:
        ok, bgr = capture.read()
        if not ok:
            break
        written.append(bgr)
    assert len(written) == 8                                  # every frame, not only the 3 analysed
    assert capture.get(cv2.CAP_PROP_FPS) == 10.0
    boxes = {frame["frame"]: frame["faces"][0]["box"] for frame in answer["timeline"]}
    assert sorted(boxes) == [0, 3, 6]
    green = np.array(PALETTE[0], float)                       # person 1
    for index, bgr in enumerate(written):
        x1, y1, x2, y2 = (int(round(value)) for value in boxes[index - index % 3])
        left_edge = bgr[y1 + 5:y2 - 5, x1].astype(float)      # the box's left side, drawn 2 pixels wide
        assert np.median(np.abs(left_edge - green).sum(axis=1)) < 60, index
        original = cv2.imread(str(FRAMES[index]))
        assert np.abs(original[y1 + 5:y2 - 5, x1].astype(float) - green).sum(axis=1).min() > 60   # not there before


# --- manners -------------------------------------------------------------------------------------------------------

def command(*argv, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([*COMMAND, *argv], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=timeout)


def test_help_goes_to_stdout_and_an_unknown_command_is_named():
    asked = command("--help")
    assert asked.returncode == 0 and asked.stdout.startswith("usage: faceanalysis COMMAND") and asked.stderr == ""
    wrong = command("analyze-this")
    assert wrong.returncode == 2 and "unknown command 'analyze-this'" in wrong.stderr


def test_serve_help_names_the_command():
    result = command("serve", "--help")
    assert result.returncode == 0 and result.stdout.startswith("usage: faceanalysis serve")


def test_a_busy_port_is_one_line_of_json_before_any_model_loads(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = command("serve", "--port", str(port), "--data-dir", str(tmp_path / "data"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["error"]["code"] == "port_busy", result.stderr
    assert f"127.0.0.1:{port} is already in use" in lines[0]


def test_a_free_port_passes_the_check():
    from faceanalysis.server_main import check_port
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    check_port("127.0.0.1", port)          # no exit


def test_device_gpu_without_a_gpu_is_refused(tmp_path):
    import tensorflow as tf
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU: --device gpu is accepted here")
    result = command("analyse", str(FRAMES[0]), "--device", "gpu")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["error"]["code"] == "no_gpu", result.stderr
