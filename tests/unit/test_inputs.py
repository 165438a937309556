"""API v2 requests into a source and options (faceanalysis/service/analysis_request.py; README "API v2", "Limits and
errors"): each option at both ends of its range, one input and only one, uploads named and kept by the service
and removed whatever happens, each refusal with its code, status and message."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import cv2
import flask
import numpy as np
import pytest

from faceanalysis.pipeline.sources import FolderSource, ImageFilesSource, VideoSource, ZipSource
from faceanalysis.service import analysis_request
from faceanalysis.service.analysis_request import parse_options, parse_request
from faceanalysis.service.contract import Input, Limits, Options
from facecore.errors import AnalysisError

APP = flask.Flask(__name__)
TINY = cv2.imencode(".png", np.zeros((4, 4, 3), np.uint8))[1].tobytes()


@pytest.fixture()
def sample(tmp_path):
    folder = tmp_path / "samples" / "seqA"
    folder.mkdir(parents=True)
    for index in range(5):
        (folder / f"frame_{index}.png").write_bytes(TINY)
    return folder


def parse(query: str = "", limits: Limits = Limits(), folder: Path | None = None, **request):
    """``folder`` is what the sample name resolves to, and only the name of that folder does."""
    def resolve(name: str) -> Path:
        assert folder is not None and name == folder.name, name
        return folder
    with APP.test_request_context(f"/api/v2/analyze{query}", method="POST", **request):
        return parse_request(flask.request, resolve, limits)


def refused(code: str, status: int, *args, **kwargs) -> str:
    with pytest.raises(AnalysisError) as caught:
        parse(*args, **kwargs)
    assert (caught.value.code, caught.value.status) == (code, status), caught.value.message
    return caught.value.message


def files(field: str, *named: tuple[str, bytes], **form):
    return {"data": {field: [(io.BytesIO(data), name) for name, data in named], **form},
            "content_type": "multipart/form-data"}


def names_read(request) -> list[str]:
    with request.source.open(8) as stream:
        return [frame.name for batch in stream for frame in batch]


# --- options --------------------------------------------------------------------------------------------------

def test_defaults():
    assert parse_options({}, Limits()) == Options(timeline=False, max_frames=3000, stride=1, fps=25.0)


UNKNOWN = "the options are timeline, max_frames, stride, fps, keep_upload (and, as a body field, sample)"


@pytest.mark.parametrize("query", ["?stride=2&timeline=true", "?max_frames=3", ""])
def test_known_options_in_the_query_pass(sample, query):
    request = parse(query, json={"sample": "seqA"}, folder=sample)
    assert request.options.stride == (2 if "stride" in query else 1)


def test_misspelled_options_in_the_query_are_refused_by_name(sample):
    message = refused("unknown_option", 400, "?strde=2&timelin=true", json={"sample": "seqA"}, folder=sample)
    assert message == f"unknown options 'strde', 'timelin'; {UNKNOWN}"


def test_a_misspelled_option_in_a_json_body_is_refused(sample):
    assert parse(json={"sample": "seqA", "stride": 2}, folder=sample).options.stride == 2
    message = refused("unknown_option", 400, json={"sample": "seqA", "strde": 2}, folder=sample)
    assert message == f"unknown option 'strde'; {UNKNOWN}"


def test_a_misspelled_form_field_is_refused_and_nothing_is_left(temp_root):
    accepted = parse(**files("frames", ("a.png", TINY), stride="1"))
    accepted.cleanup()
    assert accepted.options.stride == 1
    message = refused("unknown_option", 400, **files("frames", ("a.png", TINY), max_frame="1"))
    assert message == f"unknown option 'max_frame'; {UNKNOWN}"
    assert not any(temp_root.iterdir())


def test_a_misspelled_sample_field_is_an_unknown_option_not_a_missing_input(sample):
    assert "'sampel'" in refused("unknown_option", 400, json={"sampel": "seqA"}, folder=sample)


@pytest.mark.parametrize("value, parsed", [("0", None), ("0.0009", None), ("0.001", 0.001), ("12.5", 12.5), (25, 25.0),
                                           ("1000", 1000.0), ("1000.5", None), ("-25", None), ("nan", None),
                                           ("inf", None), ("1e2", 100.0), ("1e-3", 0.001), ("1e400", None),
                                           ("25 fps", None),
                                           (True, None)])
def test_the_fps_option_is_a_number_from_a_thousandth_to_1000(value, parsed):
    if parsed is None:
        with pytest.raises(AnalysisError) as caught:
            parse_options({"fps": value}, Limits())
        assert caught.value.message == f"fps must be a number from 0.001 to 1000, not {value!r}"
    else:
        assert parse_options({"fps": value}, Limits()).fps == parsed


def test_a_frame_input_takes_the_fps_option_and_a_video_keeps_its_own(temp_root):
    request = parse("?fps=12.5", **files("frames", ("a.png", TINY)))
    assert request.input.fps == 12.5
    request.cleanup()
    request = parse("?fps=12.5", **{"data": {"video": (io.BytesIO(mjpeg()), "clip.avi")},
                                    "content_type": "multipart/form-data"})
    assert request.input.fps == 25.0            # the container's rate, not the option
    request.cleanup()


@pytest.mark.parametrize("name, value, parsed", [
    ("stride", "0", None), ("stride", "1", 1), ("stride", "1000", 1000), ("stride", "1001", None),
    ("max_frames", "0", None), ("max_frames", "1", 1), ("max_frames", "10000", 10000), ("max_frames", "10001", None),
])
def test_option_bounds(name, value, parsed):
    if parsed is None:
        with pytest.raises(AnalysisError) as caught:
            parse_options({name: value}, Limits())
        high = 1000 if name == "stride" else 10000
        assert caught.value.message == f"{name} must be from 1 to {high}, not {value}"
        assert (caught.value.code, caught.value.status) == ("invalid_option", 400)
    else:
        assert getattr(parse_options({name: value}, Limits()), name) == parsed


def test_option_bounds_and_defaults_follow_the_configured_limits():
    limits = Limits(max_frames=50, default_max_frames=20, max_stride=7)
    assert parse_options({}, limits).max_frames == 20
    assert parse_options({"max_frames": 50, "stride": 7}, limits) == Options(timeline=False, max_frames=50, stride=7,
                                                                             fps=25.0)
    for bad in ({"max_frames": 51}, {"stride": 8}):
        with pytest.raises(AnalysisError, match="must be from 1 to"):
            parse_options(bad, limits)


@pytest.mark.parametrize("value, parsed", [
    ("", True), ("1", True), ("true", True), ("YES", True), (" on ", True), (True, True),
    ("0", False), ("false", False), ("No", False), ("off", False), (False, False),
])
def test_timeline_spellings(value, parsed):
    assert parse_options({"timeline": value}, Limits()).timeline is parsed


@pytest.mark.parametrize("value", ["maybe", "2", 1, None])
def test_timeline_refuses_anything_else(value):
    with pytest.raises(AnalysisError) as caught:
        parse_options({"timeline": value}, Limits())
    assert caught.value.message == f"timeline must be true or false, not {value!r}"
    assert caught.value.code == "invalid_option"


@pytest.mark.parametrize("value, parsed", [(" 7 ", 7), ("+3", 3), ("007", 7), (12, 12)])
def test_whole_numbers(value, parsed):
    assert parse_options({"stride": value}, Limits()).stride == parsed


@pytest.mark.parametrize("value", ["1_0", "\u0661", "0x10", "1e3", "", " ", "1.0", "ten", 1.5, True, None, [1]])
def test_anything_but_plain_digits_is_refused(value):
    with pytest.raises(AnalysisError) as caught:
        parse_options({"stride": value}, Limits())
    assert caught.value.message == f"stride must be a whole number from 1 to 1000, not {value!r}"
    assert caught.value.code == "invalid_option"


def test_a_huge_number_is_refused_with_a_short_message():
    with pytest.raises(AnalysisError) as caught:
        parse_options({"stride": "9" * 5000}, Limits())
    # The value is cut to 60 characters of its repr: "'999...".
    assert caught.value.message == "stride must be a whole number from 1 to 1000, not '" + "9" * 59


def test_a_negative_number_is_out_of_range():
    with pytest.raises(AnalysisError, match="^stride must be from 1 to 1000, not -1$"):
        parse_options({"stride": "-1"}, Limits())


# --- which input ----------------------------------------------------------------------------------------------

def test_a_sample_with_options_from_the_query_and_the_body(sample):
    # The body's stride wins over the query's; timeline comes from the query.
    request = parse("?stride=3&timeline=1&max_frames=9", folder=sample, json={"sample": "seqA", "stride": 2})
    assert request.input == Input(kind="sample", name="seqA", fps=25.0)
    assert request.options == Options(timeline=True, max_frames=9, stride=2, fps=25.0)
    assert isinstance(request.source, FolderSource) and request.workdir is None
    assert names_read(request) == ["frame_0.png", "frame_2.png", "frame_4.png"]


@pytest.mark.parametrize("max_frames, truncated", [(5, False), (4, True)])
def test_truncated_only_when_max_frames_leaves_frames_unread(sample, max_frames, truncated):
    request = parse(f"?max_frames={max_frames}", folder=sample, json={"sample": "seqA"})
    assert len(names_read(request)) == max_frames and request.source.truncated is truncated
    assert request.source.listed == 5


def test_a_sample_in_a_form_field(sample):
    request = parse(folder=sample, data={"sample": "seqA", "max_frames": "2"}, content_type="multipart/form-data")
    assert request.options.max_frames == 2 and names_read(request) == ["frame_0.png", "frame_1.png"]


@pytest.mark.parametrize("body", [["seqA"], "seqA", 3])
def test_a_json_body_must_be_an_object(body):
    message = refused("invalid_request", 400, json=body)
    assert message == 'the JSON body must be an object such as {"sample": "seqA"}'


def test_broken_json_is_refused():
    refused("invalid_request", 400, data=b"{not json", content_type="application/json")


def test_a_sample_must_be_a_string():
    assert refused("invalid_request", 400, json={"sample": 3}).startswith('"sample" must be a string')


def test_neither_json_nor_a_form_is_415():
    message = refused("unsupported_media_type", 415, data=b"sample=seqA", content_type="text/plain")
    assert message == 'send JSON {"sample": NAME}, or multipart/form-data with a video, zip or frames part'


def test_an_url_encoded_form_names_a_sample(sample):
    request = parse(folder=sample, data=b"sample=seqA&stride=2", content_type="application/x-www-form-urlencoded")
    assert request.input.name == "seqA" and request.options.stride == 2


def test_no_input_says_how_to_send_one():
    message = refused("invalid_request", 400, json={"stride": 2})
    assert message == ("give exactly one input of sample, video, zip, frames; got none "
                       "(a JSON body needs Content-Type: application/json)")


def test_two_inputs_are_named():
    message = refused("invalid_request", 400, **files("zip", ("a.zip", b"PK"), sample="seqA"))
    assert message == "give exactly one input of sample, video, zip, frames; got 2 (sample, zip)"


def test_an_empty_file_field_is_no_input(sample):
    # A browser sends a part without a file name for a file input left empty.
    request = parse(folder=sample, **files("video", ("", b""), sample="seqA"))
    assert request.input.kind == "sample"


# --- uploads --------------------------------------------------------------------------------------------------

def test_frames_are_kept_under_names_of_our_own_in_the_order_sent(temp_root):
    request = parse(**files("frames", ("../../etc/b.png", TINY), ("/home/me/a.png", TINY), ("a.png", TINY),
                            ("notes", TINY)))
    assert isinstance(request.source, ImageFilesSource)
    assert request.input == Input(kind="frames", name="4 files", fps=25.0)
    # The client's names are labels only: the last part of a path, made unique.
    assert names_read(request) == ["b.png", "a.png", "a.png (2)", "notes"]
    # Named so that an operator can tell whose folders these are in the temporary folder.
    assert request.workdir.parent == temp_root and request.workdir.name.startswith("faceanalysis-")
    assert request.source.label == "4 files"
    # A known extension is kept (a hint for decoders); "a.png (2)" and "notes" have none.
    assert sorted(path.name for path in request.workdir.iterdir()) == ["00000.png", "00001.png", "00002", "00003"]
    request.cleanup()
    assert request.workdir is None and list(temp_root.iterdir()) == []
    request.cleanup()                       # twice is harmless


def test_one_frame_is_labelled_with_its_name(temp_root):
    request = parse(**files("frames", ("/", TINY)))
    assert request.input.name == "upload"        # a name with no last part
    request.cleanup()
    long = "a" * 300 + ".png"
    request = parse(**files("frames", (long, TINY)))
    assert request.input.name == "a" * 200
    request.cleanup()


def test_a_windows_path_keeps_its_last_part():
    # (The multipart parser of Flask's test client eats backslashes, so this one is checked directly.)
    assert analysis_request._base_name("C:\\Users\\me\\a.png") == "a.png"


def test_the_same_name_three_times():
    assert analysis_request._unique(["a", "b", "a", "a"]) == ["a", "b", "a (2)", "a (3)"]


@pytest.mark.parametrize("count, refused_", [(2, False), (3, True)])
def test_frames_up_to_max_entries(temp_root, count, refused_):
    form = files("frames", *[(f"{index}.png", TINY) for index in range(count)])
    if refused_:
        message = refused("too_many_frames", 413, limits=Limits(max_entries=2), **form)
        assert message == "3 files, more than 2; send a zip or fewer frames"
    else:
        parse(limits=Limits(max_entries=2), **form).cleanup()
    assert list(temp_root.iterdir()) == []


@pytest.mark.parametrize("field", ["video", "zip"])
def test_one_video_or_zip_at_a_time(temp_root, field):
    message = refused("invalid_request", 400, **files(field, ("a.mp4", b"x"), ("b.mp4", b"x")))
    assert message == f"send one {field} file, not 2"


def test_an_empty_upload_is_422_and_removed(temp_root):
    message = refused("empty_upload", 422, **files("frames", ("a.png", b""), ("b.png", b"")))
    assert message == "the uploaded frames is empty (0 bytes)"
    assert list(temp_root.iterdir()) == []
    # One byte in all is not empty: the frames are taken (and the empty one is skipped when read).
    parse(**files("frames", ("a.png", b""), ("b.png", b"x"))).cleanup()


def mjpeg(count: int = 2) -> bytes:
    """Concatenated JPEGs: a video FFmpeg reads, with no frame count in any header."""
    frame = cv2.imencode(".jpg", np.zeros((48, 64, 3), np.uint8))[1].tobytes()
    return frame * count


@pytest.mark.parametrize("name, mimetype, accepted", [
    ("clip.mp4", "application/octet-stream", True), ("CLIP.MOV", "application/octet-stream", True),
    ("clip.bin", "video/mp4", True), ("clip.bin", "application/octet-stream", False),
    ("notes.txt", "text/plain", False),
])
def test_a_video_needs_a_video_extension_or_type(temp_root, name, mimetype, accepted):
    form = {"data": {"video": (io.BytesIO(mjpeg()), name, mimetype)}, "content_type": "multipart/form-data"}
    if accepted:
        request = parse(**form)
        assert isinstance(request.source, VideoSource)
        assert request.input == Input(kind="video", name=name, fps=25.0)
        assert request.source.expected is None                # no frame count: progress says null
        assert names_read(request) == ["frame_000000", "frame_000001"]
        request.cleanup()
    else:
        message = refused("unsupported_media_type", 415, **form)
        assert message == (f"{name!r} is not a video file: use one of .3gp, .avi, .flv, .gif, .m4v, .mkv, .mov, .mp4, "
                           ".mpeg, .mpg, .ts, .webm, .wmv")
    assert list(temp_root.iterdir()) == []


def test_an_undecodable_video_is_422_and_removed(temp_root):
    refused("invalid_video", 422, **files("video", ("clip.mp4", b"not a video at all" * 50)))
    assert list(temp_root.iterdir()) == []


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


ZIP = zip_bytes({"f10.png": TINY, "f2.png": TINY, "f1.png": TINY})


def test_a_zip_is_read_in_natural_order(temp_root):
    request = parse(**files("zip", ("frames.zip", ZIP)))
    assert isinstance(request.source, ZipSource) and request.input == Input(kind="zip", name="frames.zip", fps=25.0)
    assert names_read(request) == ["f1.png", "f2.png", "f10.png"]
    request.cleanup()


@pytest.mark.parametrize("limits, code", [
    (Limits(max_entries=3), None), (Limits(max_entries=2), "too_many_frames"),
    (Limits(max_unpacked_bytes=3 * len(TINY)), None),
    (Limits(max_unpacked_bytes=3 * len(TINY) - 1), "archive_too_large"),
])
def test_zip_limits_at_their_bounds(temp_root, limits, code):
    form = files("zip", ("frames.zip", ZIP))
    if code is None:
        parse(limits=limits, **form).cleanup()
    else:
        refused(code, 413, limits=limits, **form)
    assert list(temp_root.iterdir()) == []


# --- a request kept for a job, and read back ------------------------------------------------------------------

def restored(request, limits: Limits = Limits()):
    """The request as a job keeps it (JSON, its uploads moved elsewhere), read back."""
    record = json.loads(json.dumps(request.record()))
    assert all(str(request.workdir or "/nowhere") not in json.dumps(item) for item in record.values())
    if request.workdir is None:
        return analysis_request.restore_request(record, None, limits)
    moved = request.workdir.parent / "moved"
    request.workdir.rename(moved)
    request.workdir = None
    return analysis_request.restore_request(record, moved, limits)


def test_a_sample_request_is_restored(sample):
    request = parse("?stride=2&max_frames=2", folder=sample, json={"sample": "seqA", "timeline": True})
    again = restored(request)
    assert (again.input, again.options, again.sample) == (request.input, request.options, sample)
    assert names_read(again) == ["frame_0.png", "frame_2.png"] and again.source.truncated


def test_cleanup_after_a_job_took_the_uploads_over(temp_root):
    # The job renames the folder into its own; the request's cleanup then has nothing left to remove.
    request = parse(**files("frames", ("a.png", TINY)))
    request.workdir.rename(temp_root / "the-jobs-now")
    request.cleanup()
    assert request.workdir is None and (temp_root / "the-jobs-now" / "00000.png").exists()


def test_a_sample_gone_since_is_not_found(sample, tmp_path):
    request = parse(folder=sample, json={"sample": "seqA"})
    record = request.record()
    sample.rename(tmp_path / "elsewhere")
    with pytest.raises(AnalysisError) as caught:
        analysis_request.restore_request(record, None, Limits())
    assert caught.value.code == "sequence_not_found"


FIVE_FRAMES = [(f"f{index}.png", TINY) for index in range(5)]


@pytest.mark.parametrize("field, uploads, label, names", [
    ("frames", FIVE_FRAMES, "5 files", ["f0.png", "f2.png"]),
    ("zip", [("frames.zip", zip_bytes(dict(FIVE_FRAMES)))], "frames.zip", ["f0.png", "f2.png"]),
    ("video", [("clip.mp4", mjpeg(5))], "clip.mp4", ["frame_000000", "frame_000002"]),
])
def test_an_upload_request_is_restored_from_the_folder_its_files_moved_to(temp_root, field, uploads, label, names):
    # Every 2nd frame, at most 2: the restored source reads what the first would have, under the same label.
    request = parse("?stride=2&max_frames=2", **files(field, *uploads))
    assert request.source.label == label
    again = restored(request)
    assert (again.input, again.options) == (request.input, request.options)
    assert again.files == request.files and len(again.files) == len(uploads)
    assert again.source.label == label
    assert names_read(again) == names and again.source.truncated


def test_uploads_without_their_folder_are_refused(temp_root):
    request = parse(**files("frames", ("a.png", TINY)))
    with pytest.raises(ValueError, match="^a request with uploads needs the folder holding them$"):
        analysis_request.restore_request(request.record(), None, Limits())
    request.cleanup()


def test_uploads_go_to_the_folder_the_caller_makes(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    with APP.test_request_context("/", method="POST", **files("frames", ("a.png", TINY))):
        request = parse_request(flask.request, lambda name: None, Limits(), lambda: folder)
    assert request.workdir == folder and request.files == (("a.png", "00000.png"),)
    assert (folder / "00000.png").read_bytes() == TINY


# --- kind_of: what a path on disk is (the command line's and batch's side of the input registry) ------------

AVI_HEAD = b"RIFF\x00\x00\x00\x00AVI LIST"
ZIP_HEAD = b"PK\x03\x04" + b"\x00" * 26


@pytest.mark.parametrize("name, content, kind", [
    # The content decides, whatever the name says.
    ("clip.bin", AVI_HEAD, "video"),
    ("frames.mp4", ZIP_HEAD, "zip"),
    ("photo.avi", TINY, "frames"),
    ("movie.GIF", b"GIF89a" + b"\x00" * 20, "video"),
    # Content we do not know: the extension decides, in any case.
    ("clip.MKV", b"\x00" * 32, "video"),
    ("frames.Zip", b"\x00" * 32, "zip"),
    ("photo.JPG", b"\x00" * 32, "frames"),
    ("photo.bmp", b"\x00" * 32, "frames"),
    # Neither: not an input.
    ("notes.txt", b"hello, world" * 3, None),
    ("noext", b"\x00" * 32, None),
])
def test_a_file_is_known_by_its_content_first_then_by_its_extension(tmp_path, name, content, kind):
    path = tmp_path / name
    path.write_bytes(content)
    assert analysis_request.kind_of(path) == kind


def test_a_folder_is_a_folder_of_frames_whatever_its_name(tmp_path):
    folder = tmp_path / "clip.mp4"
    folder.mkdir()
    assert analysis_request.kind_of(folder) == "folder"
    # By its name; opening it then says it is missing.
    assert analysis_request.kind_of(tmp_path / "missing.mp4") == "video"


def test_every_kind_of_the_registry_opens_its_source(tmp_path, sample):
    assert set(analysis_request.SOURCE_KINDS) == {"sample", "folder", "video", "zip", "frames"}
    assert isinstance(analysis_request.open_source("folder", [sample], "seqA"), FolderSource)
    assert isinstance(analysis_request.open_source("sample", [sample], "seqA"), FolderSource)
    image = tmp_path / "a.png"
    image.write_bytes(TINY)
    source = analysis_request.open_source("frames", [image, image], "2 files")
    assert isinstance(source, ImageFilesSource)
    with pytest.raises(ValueError, match="unknown input kind 'movie'"):
        analysis_request.open_source("movie", [image], "x")
