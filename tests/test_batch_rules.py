"""The batch runner's rules without models or Ray: what the arguments expand to, the output folder's parts (whole or
absent, one per input, recovered after a kill), the option bounds, the pool size and the closing paragraph."""

from __future__ import annotations

import fcntl
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from faceanalysis.batch.command import check_options, parse_args
from faceanalysis.batch.engine import Cluster
from faceanalysis.batch.inputs import BatchInput, content_sha256, discover, stat_signature
from faceanalysis.batch.progress import Tally, summary
from faceanalysis.batch.run import _check_capacity
from faceanalysis.batch.spec import RunSpec
from faceanalysis.batch.store import OLD, TMP, OutputFolder
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
    return failed_rows(item, "sha", "stat", AnalysisError(code, code, 422), SPEC, 0.0, None, None)


def test_a_new_result_replaces_the_old_one_whole(tmp_path):
    item = BatchInput("/data/a.mp4", "video")
    with OutputFolder(tmp_path / "out") as out:
        out.write(item, rows_for(item, "first"))
        out.write(item, rows_for(item, "second"))
        assert out.part_row(item)["error_code"] == "second"
        assert [path.name for path in out.parts.iterdir()] == [item.part_id]


def test_a_part_moved_aside_by_a_killed_run_comes_back(tmp_path):
    item = BatchInput("/data/a.mp4", "video")
    with OutputFolder(tmp_path / "out") as out:
        out.write(item, rows_for(item, "kept"))
        (out.parts / item.part_id).rename(out.parts / f"{OLD}{item.part_id}-1234abcd")   # killed mid-swap
        (out.parts / f"{TMP}{item.part_id}-5678abcd").mkdir()                            # killed mid-write
    with OutputFolder(tmp_path / "out") as out:
        assert out.part_row(item)["error_code"] == "kept"
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
                                          (["--workers", "0"], "workers"), (["--gpus-per-worker", "-1"], "gpus")])
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
