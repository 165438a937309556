"""The batch runner's rules without models or Ray: what the arguments expand to, the output folder's parts (whole or
absent, one per input, recovered after a kill), the option bounds, the pool size and the closing paragraph."""

from __future__ import annotations

import fcntl
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from faceanalysis.batch.command import check_options, parse_args
from faceanalysis.batch.discovery import BatchInput, content_sha256, discover, stat_signature
from faceanalysis.batch.engine import Cluster
from faceanalysis.batch.output_folder import OLD, TMP, OutputFolder
from faceanalysis.batch.progress import Tally, summary
from faceanalysis.batch.run import _check_capacity
from faceanalysis.batch.spec import RunSpec
from faceanalysis.batch.tables import failed_rows
from faceanalysis.pipeline.settings import Settings
from facecore.errors import AnalysisError


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def kinds(items) -> list[tuple[str, str]]:
    return [(Path(item.path).name, item.kind) for item in items]


# --------------------------------------------------------------------------- inputs

def test_a_folder_is_searched_for_videos_zips_and_frame_folders(tmp_path):
    touch(tmp_path / "a" / "clip.MP4")
    touch(tmp_path / "a" / "frames" / "f_10.jpg")
    touch(tmp_path / "a" / "frames" / "f_2.png")
    touch(tmp_path / "a" / "frames.zip")
    touch(tmp_path / "a" / "notes.txt")                 # not an input inside a folder
    touch(tmp_path / "a" / ".hidden" / "clip.mp4")      # hidden folders are not searched
    touch(tmp_path / "a" / "empty" / "readme.md")
    assert kinds(discover([str(tmp_path / "a")])) == [("clip.MP4", "video"), ("frames.zip", "zip"),
                                                      ("frames", "folder")]


def test_a_folder_with_nothing_in_it_is_one_input_and_a_file_of_no_known_kind_too(tmp_path):
    (tmp_path / "empty").mkdir()
    touch(tmp_path / "notes.md")
    touch(tmp_path / "photo.jpg")           # one image: an input of one frame, as the service's "frames"
    assert kinds(discover([str(tmp_path / "empty"), str(tmp_path / "notes.md"), str(tmp_path / "photo.jpg")])) == [
        ("empty", "folder"), ("notes.md", "unsupported"), ("photo.jpg", "frames")]


def test_files_are_known_by_their_content_before_their_extension(tmp_path):
    touch(tmp_path / "a" / "clip", b"\x1a\x45\xdf\xa3" + bytes(60))            # Matroska, no extension
    touch(tmp_path / "a" / "zipped.bin", b"PK\x03\x04" + bytes(60))              # a zip under another name
    touch(tmp_path / "a" / "anim.gif", b"GIF89a" + bytes(60))
    touch(tmp_path / "a" / "notes.txt", b"GIF is a format")                     # no signature, no known extension
    assert kinds(discover([str(tmp_path / "a")])) == [("anim.gif", "video"), ("clip", "video"),
                                                      ("zipped.bin", "zip")]


def test_manifests_list_paths_relative_to_themselves(tmp_path):
    touch(tmp_path / "v" / "one.mp4")
    touch(tmp_path / "v" / "two.avi")
    (tmp_path / "list.txt").write_text("# videos\nv/one.mp4\n\n  v/two.avi  \n")
    (tmp_path / "list.csv").write_text("name,path\nfirst,v/two.avi\nsecond,v/one.mp4\n")
    (tmp_path / "plain.csv").write_text("v/one.mp4,x\n")
    assert kinds(discover([str(tmp_path / "list.txt")])) == [("one.mp4", "video"), ("two.avi", "video")]
    assert kinds(discover([str(tmp_path / "list.csv")])) == [("two.avi", "video"), ("one.mp4", "video")]
    assert kinds(discover([str(tmp_path / "plain.csv")])) == [("one.mp4", "video")]


def test_an_input_named_twice_is_one_input(tmp_path):
    video = touch(tmp_path / "v" / "one.mp4")
    (tmp_path / "list.txt").write_text("v/one.mp4\n")
    (tmp_path / "link.mp4").symlink_to(video)
    found = discover([str(video), str(tmp_path / "list.txt"), str(tmp_path / "link.mp4"), str(tmp_path / "v")])
    assert found == [BatchInput(str(video.resolve()), "video")]


def test_every_missing_path_is_named_up_to_five(tmp_path):
    (tmp_path / "list.txt").write_text("".join(f"gone{i}.mp4\n" for i in range(7)))
    with pytest.raises(AnalysisError) as raised:
        discover([str(tmp_path / "list.txt"), str(tmp_path / "nowhere")])
    assert raised.value.code == "input_not_found"
    assert "'gone4.mp4' and 3 more" in raised.value.message and "gone5" not in raised.value.message


def test_a_frame_folder_changes_with_its_frames_not_with_other_files(tmp_path):
    frames = BatchInput(str(tmp_path), "folder")
    touch(tmp_path / "f1.jpg", b"one")
    stat, sha = stat_signature(frames), content_sha256(frames)
    touch(tmp_path / "notes.txt", b"not a frame")
    assert (stat_signature(frames), content_sha256(frames)) == (stat, sha)
    touch(tmp_path / "f1.jpg", b"two")
    assert content_sha256(frames) != sha


# --------------------------------------------------------------------------- the output folder

SPEC = RunSpec.create(Settings(), stride=1, max_frames=5, timeline=False)


def rows_for(item: BatchInput, code: str):
    return failed_rows(item, "sha", "stat", AnalysisError(code, code), SPEC, 0.0, None, None)


def test_a_new_result_replaces_the_old_one_whole(tmp_path):
    item = BatchInput("/data/a.mp4", "video")
    with OutputFolder(tmp_path / "out") as out:
        out.write(item, rows_for(item, "invalid_video"))
        out.write(item, rows_for(item, "no_face"))
        assert out.part_row(item)["error_code"] == "no_face"
        assert [path.name for path in out.parts.iterdir()] == [item.part_id]


def test_a_part_moved_aside_by_a_killed_run_comes_back(tmp_path):
    item = BatchInput("/data/a.mp4", "video")
    with OutputFolder(tmp_path / "out") as out:
        out.write(item, rows_for(item, "invalid_video"))
        (out.parts / item.part_id).rename(out.parts / f"{OLD}{item.part_id}-1234abcd")   # killed mid-swap
        (out.parts / f"{TMP}{item.part_id}-5678abcd").mkdir()                            # killed mid-write
    with OutputFolder(tmp_path / "out") as out:
        assert out.part_row(item)["error_code"] == "invalid_video"
        assert [path.name for path in out.parts.iterdir()] == [item.part_id]


def test_the_tables_hold_the_runs_inputs_and_no_stale_copy(tmp_path):
    first, second = BatchInput("/data/a.mp4", "video"), BatchInput("/data/b.mp4", "video")
    with OutputFolder(tmp_path / "out") as out:
        for item in (first, second):
            out.write(item, rows_for(item, "no_face"))
        assert out.merge([second, first], timeline=False, csv=True) == {"persons": 0, "inputs": 2}
        assert (out.path / "inputs.csv").is_file()
        assert out.merge([first], timeline=False, csv=False) == {"persons": 0, "inputs": 1}
    table = pq.read_table(tmp_path / "out" / "inputs.parquet")
    assert table.column("input").to_pylist() == ["/data/a.mp4"] and "stat_signature" not in table.column_names
    assert not (tmp_path / "out" / "inputs.csv").exists()


def test_an_output_folder_in_use_or_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(AnalysisError, match="is a file") as raised:
        OutputFolder(tmp_path / "file").__enter__()
    assert raised.value.code == "invalid_output"
    with OutputFolder(tmp_path / "out"), open(tmp_path / "out" / ".lock") as again:
        with pytest.raises(OSError):
            fcntl.flock(again, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(AnalysisError) as busy:
            OutputFolder(tmp_path / "out").__enter__()
        assert busy.value.code == "output_busy"


# --------------------------------------------------------------------------- options, pool, key, summary

@pytest.mark.parametrize("flags, wrong", [(["--max-frames", "10000"], None), (["--max-frames", "10001"], "max-frames"),
                                          (["--max-frames", "0"], "max-frames"), (["--stride", "1000"], None),
                                          (["--stride", "1001"], "stride"), (["--workers", "1"], None),
                                          (["--workers", "0"], "workers"), (["--gpus-per-worker", "-1"], "gpus"),
                                          (["--fps", "0.001"], None), (["--fps", "0"], "fps"),
                                          (["--fps", "1000"], None), (["--fps", "1000.5"], "fps")])
def test_options_have_the_services_bounds(flags, wrong):
    args = parse_args(["in", "--out", "out", *flags])
    if wrong is None:
        check_options(args)
    else:
        with pytest.raises(AnalysisError, match=f"--{wrong}") as raised:
            check_options(args)
        assert raised.value.code == "invalid_option"


def test_the_pool_is_one_analyzer_per_node_or_per_two_cpus_and_must_fit():
    assert Cluster(None, 0.0, nodes=1, cpus=2, gpus=0).default_workers(0) == 1
    assert Cluster(None, 0.0, nodes=2, cpus=2, gpus=0).default_workers(0) == 2
    assert Cluster(None, 0.0, nodes=2, cpus=32, gpus=0).default_workers(0) == 16
    assert Cluster(None, 0.0, nodes=2, cpus=32, gpus=4).default_workers(0.5) == 8
    _check_capacity(Cluster(None, 0.0, nodes=1, cpus=2, gpus=0), 2, 0)
    for workers, gpus in ((3, 0), (1, 1)):
        with pytest.raises(AnalysisError) as raised:
            _check_capacity(Cluster(None, 0.0, nodes=1, cpus=2, gpus=0), workers, gpus)
        assert raised.value.code == "invalid_option"


def test_the_settings_key_follows_what_changes_an_answer():
    key = SPEC.settings_key
    assert RunSpec.create(Settings(), 1, 5, timeline=True).settings_key == key
    assert RunSpec.create(Settings(), 2, 5, False).settings_key != key
    assert RunSpec.create(Settings(), 1, 6, False).settings_key != key
    assert RunSpec.create(Settings(min_face_size=40), 1, 5, False).settings_key != key


def test_the_summary_counts_in_words():
    tally = Tally(total=3, skipped=1, done=1, frames=1200, workers=1, where="locally", startup_seconds=2.0)
    tally.failed["no_face"] += 1
    text = summary(tally, "/out", {"persons": 1, "inputs": 3}, csv=False)
    assert text.startswith("3 inputs: 1 done, 1 failed (no_face 1), 1 already done and not analysed again. "
                           "Analysed 2 locally with 1 worker: 1,200 frames in ")
    assert text.endswith("Tables in /out: persons.parquet (1 row), inputs.parquet (3 rows).")


# --------------------------------------------------------------------------- failed inputs on the next run

def a_run_over(item: BatchInput, out_path: Path, retry_failed: bool, monkeypatch) -> tuple[Tally, list]:
    """``run.execute`` with Ray replaced: what it would send to the workers."""
    from faceanalysis.batch import run
    sent = []
    monkeypatch.setattr(run, "_analyse", lambda request, todo, out, progress: sent.extend(todo))
    request = run.Request(items=[item], out=out_path, spec=SPEC, retry_failed=retry_failed)
    with OutputFolder(out_path) as out:
        tally, _ = run.execute(request, out)
    return tally, sent


@pytest.mark.parametrize("code, retry_failed, skipped", [("no_face", False, True), ("invalid_video", False, True),
                                                          ("no_face", True, False), ("worker_lost", False, False),
                                                          ("unreadable_input", False, False)])
def test_an_input_that_failed_for_good_is_skipped_unless_asked(tmp_path, monkeypatch, code, retry_failed, skipped):
    video = touch(tmp_path / "clip.mp4", b"\x1a\x45\xdf\xa3 not really")
    item = BatchInput(str(video), "video")
    with OutputFolder(tmp_path / "out") as out:
        out.write(item, failed_rows(item, content_sha256(item), stat_signature(item),
                                    AnalysisError(code, code), SPEC, 0.0, None, None))
    tally, sent = a_run_over(item, tmp_path / "out", retry_failed, monkeypatch)
    assert (tally.skipped, tally.skipped_failed, len(sent)) == ((1, 1, 0) if skipped else (0, 0, 1))


def test_a_changed_file_that_failed_for_good_goes_to_a_worker_to_compare_its_content(tmp_path, monkeypatch):
    video = touch(tmp_path / "clip.mp4", b"first")
    item = BatchInput(str(video), "video")
    sha = content_sha256(item)
    with OutputFolder(tmp_path / "out") as out:
        out.write(item, failed_rows(item, sha, stat_signature(item), AnalysisError("no_face", "none"), SPEC,
                                    0.0, None, None))
    touch(video, b"second")
    tally, sent = a_run_over(item, tmp_path / "out", False, monkeypatch)
    # The worker analyses it only if its sha256 is no longer the one that failed.
    assert tally.skipped == 0 and [task["previous_sha"] for _, task in sent] == [sha]


def test_the_summary_says_how_to_retry_failed_inputs():
    tally = Tally(total=2, skipped=2, skipped_failed=1)
    assert "1 of them failed before with the same content (no face, not a video...): --retry-failed tries them " \
           "again" in summary(tally, "/out", {"persons": 0, "inputs": 2}, csv=False)


# --------------------------------------------------------------------------- the tables' types and seconds

def test_failed_rows_have_typed_nested_columns_and_no_null_counts(tmp_path):
    import pyarrow as pa
    item = BatchInput("/data/a.mp4", "video")
    with OutputFolder(tmp_path / "out") as out:
        out.write(item, failed_rows(item, "sha", "stat", AnalysisError("no_face", "none"), SPEC, 0.0, None,
                                    {"age": {"model": "m", "package": "p", "file": "f", "sha256": "s",
                                             "license": "l"}}))
        out.merge([item], timeline=True, csv=True)
    table = pq.read_table(tmp_path / "out" / "inputs.parquet")
    row = table.to_pylist()[0]
    assert (row["frames_read"], row["persons"], row["worker_pid"], row["truncated"]) == (0, 0, 0, False)
    assert row["options"] == {"timeline": False, "max_frames": 5, "stride": 1, "fps": 25.0}
    assert row["settings"]["age_gender"] == Settings().age_gender and row["settings"]["min_face_size"] == 20
    assert row["models"] == [{"key": "age", "model": "m", "package": "p", "file": "f", "sha256": "s", "license": "l"}]
    assert table.schema.field("options").type == pa.struct([("timeline", pa.bool_()), ("max_frames", pa.int64()),
                                                            ("stride", pa.int64()), ("fps", pa.float64())])
    frame = table.to_pandas()
    assert str(frame["frames_read"].dtype) == "int64" and str(frame["worker_pid"].dtype) == "int64"
    copy = (tmp_path / "out" / "inputs.csv").read_text().splitlines()
    assert '"{""timeline"": false, ""max_frames"": 5, ""stride"": 1, ""fps"": 25.0}"' in copy[1]


def test_done_rows_carry_seconds_at_the_inputs_rate():
    import numpy as np

    from faceanalysis.batch.tables import Where, done_rows
    from faceanalysis.pipeline.result import FaceSummary, FaceTable, Person, Provenance, SequenceResult, SourceSummary
    from facecore.labels import EXPRESSIONS
    count = 3
    distribution = np.zeros(101)
    # Every face exactly 30: the bin spreads evenly over [29.5, 30.5], so its central 80% is [29.6, 30.4].
    distribution[30] = 1.0
    faces = FaceTable(frame=np.array([0, 10, 20]), frame_name=["a", "b", "c"], boxes=np.ones((count, 4)),
                      confidence=np.ones(count), landmarks=np.full((count, 5, 2), np.nan), primary=np.ones(count, bool),
                      age=np.tile(distribution, (count, 1)), age_years=np.full(count, 30.0),
                      gender=np.tile([0.25, 0.75], (count, 1)),
                      expression=np.tile(np.eye(len(EXPRESSIONS))[3], (count, 1)),
                      person=np.ones(count, np.int64))
    summary_ = FaceSummary(expression=np.eye(len(EXPRESSIONS))[3], gender=np.array([0.25, 0.75]),
                           age_distribution=distribution, age=30.0, age_interval=(29.5, 30.5))
    person = Person(id=1, primary=True, summary=summary_, frames_seen=2, mean_confidence=1.0,
                    spans=((0, 10), (20, 20)))
    result = SequenceResult(source=SourceSummary(label="x", listed=25, read=((0, "a"), (10, "b"), (20, "c")),
                                                 skipped=(), ignored=(), truncated=False),
                            faces=faces, summary=summary_, persons=(person,), frames_without_face=(),
                            provenance=Provenance(settings=Settings(), models={}, device={}, aggregator="",
                                                  tracker={}))
    spec = RunSpec.create(Settings(), stride=10, max_frames=5, timeline=True)
    rows = done_rows(BatchInput("/data/a.mp4", "video"), "sha", "stat", result, spec, 1.0,
                     Where("n", "id", 7, "CPU"), fps=10.0)
    inputs = rows.inputs.to_pylist()[0]
    assert (inputs["fps"], inputs["duration"]) == (10.0, 2.5)            # 25 frames at 10 a second
    row = rows.persons.to_pylist()[0]
    assert (row["first_frame"], row["last_frame"], row["first_seconds"], row["last_seconds"]) == (0, 20, 0.0, 2.0)
    assert row["spans"] == [{"first": 0, "last": 10, "first_seconds": 0.0, "last_seconds": 1.0},
                            {"first": 20, "last": 20, "first_seconds": 2.0, "last_seconds": 2.0}]
    frames = rows.frames.to_pylist()
    assert [frame["time"] for frame in frames] == [0.0, 1.0, 2.0]
    assert frames[0]["landmarks"] == [{"x": None, "y": None}] * 5
    assert (frames[0]["age_low"], frames[0]["age_high"]) == (29.6, 30.4)
    folder = done_rows(BatchInput("/data/seq", "folder"), "sha", "stat", result, spec, 1.0, Where("n", "id", 7, "CPU"))
    assert folder.inputs.to_pylist()[0]["duration"] == 1.0              # the run's --fps, 25: 25 frames, 1 s


def test_rays_constructor_argument_line_is_dropped_and_everything_else_passes():
    import subprocess
    import sys

    from conftest import REPO
    script = (
        "import os, sys, time\n"
        "from faceanalysis.batch.engine import quiet_native_stderr\n"
        "with quiet_native_stderr():\n"
        "    os.write(2, b'[2026-12-03 08:43:52,012 E 1 1] core_worker.cc:2465: Actor with class name: '\n"
        "                b\"'MapWorker' has constructor arguments in the object store and max_restarts > 0.\\n\")\n"
        "    os.write(2, b'[2026-12-03 08:43:53,000 E 1 1] raylet: a real error\\n')\n"
        "    sys.stderr.write('\\r[#####.....] 1/2 inputs')\n"
        "    sys.stderr.flush()\n"
        "    time.sleep(0.5)\n"
        "    print('[2/2] done', file=sys.stderr)\n"
        "print('after', file=sys.stderr)\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, timeout=60,
                            env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert result.stderr == (b"[2026-12-03 08:43:53,000 E 1 1] raylet: a real error\n\r[#####.....] 1/2 inputs"
                             b"[2/2] done\nafter\n")
