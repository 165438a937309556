"""Every kind of bad input gets a clear JSON error with the right status, and loses nothing: missing or empty
folders, non-image files, unreadable, huge or truncated images and videos, frames without a face, path tricks
(``..``, absolute paths, symbolic links, percent encoding, zip slip) on both APIs. Each gets a clear JSON error,
or an answer that counts what was skipped; a bad frame never costs the good frames around it (seqA frames are
mixed in and must still be analysed)."""

from __future__ import annotations

import io
import os
import shutil
import stat
import time
import zipfile

import cv2
import numpy as np
import pytest

from checks import error_of, png_header_only
from conftest import SAMPLES
from test_api_v2 import primary, upload, zip_of


def test_unknown_sequence_is_404(client):
    assert "nope" in error_of(client.get("/seqPath/nope"), 404, "sequence_not_found")


@pytest.mark.parametrize("path", ["/seqPath/..", "/seqPath/%2e%2e", "/seqPath/seqA/..", "/seqPath/a/b",
                                  "/seqPath/..%2fseqA", "/seqPath/%2Fetc", "/seqPath/.hidden"])
def test_path_tricks_are_400(client, path):
    error_of(client.get(path), 400, "invalid_sequence_name")


def test_symlink_leading_out_of_samples_is_400(client, samples_dir, tmp_path):
    outside = tmp_path / "outside"
    shutil.copytree(samples_dir / "seqA", outside)
    os.symlink(outside, samples_dir / "escape")
    assert "outside" in error_of(client.get("/seqPath/escape"), 400, "invalid_sequence_name")


def test_empty_folder_is_422(client, samples_dir):
    (samples_dir / "empty").mkdir()
    error_of(client.get("/seqPath/empty"), 422, "no_images")


def test_folder_of_non_images_is_422_and_counts_them(client, samples_dir):
    folder = samples_dir / "texts"
    folder.mkdir()
    for name in ("notes.txt", "clip.mp4", "README"):
        (folder / name).write_text("not a frame")
    assert "3 other files" in error_of(client.get("/seqPath/texts"), 422, "no_images")


def test_frames_without_any_face_are_422_with_frame_count(client, samples_dir):
    folder = samples_dir / "wall"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for index in range(3):
        wall = cv2.GaussianBlur(rng.integers(90, 160, (480, 640, 3), dtype=np.uint8), (0, 0), 8)
        cv2.imwrite(str(folder / f"wall_{index}.jpg"), wall)
    message = error_of(client.get("/seqPath/wall"), 422, "no_face")
    assert "3 frames" in message


def test_broken_frames_are_skipped_and_counted(analyzer, samples_dir):
    folder = samples_dir / "seqA"
    good = sorted(folder.glob("*.jpg"))
    truncated = good[0].read_bytes()[:2000]
    (folder / "frame_0000_truncated.jpg").write_bytes(truncated)
    (folder / "frame_0001_empty.jpg").write_bytes(b"")
    (folder / "frame_0002_text.jpg").write_text("this is not a jpeg")
    (folder / "frame_0003_bomb.png").write_bytes(png_header_only(40000, 40000))
    (folder / "thumbs.db").write_bytes(b"\x00\x01")
    result = analyzer.analyse_folder(folder)
    skipped = {item.name for item in result.source.skipped}
    assert {"frame_0001_empty.jpg", "frame_0002_text.jpg", "frame_0003_bomb.png"} <= skipped
    assert result.source.ignored == ("thumbs.db",)
    # The good frames still all count; a truncated JPEG may decode partially, and is then analysed.
    assert result.frames_read + len(result.source.skipped) == result.source.listed == len(good) + 4
    assert set(result.faces.frame_name) >= {frame.name for frame in good}


def test_broken_frames_do_not_break_the_request(client, samples_dir):
    (samples_dir / "seqA" / "frame_0009.jpg").write_text("garbage")
    assert client.get("/seqPath/seqA").status_code == 200


def test_unknown_route_and_method_are_json(client):
    error_of(client.get("/nothing/here"), 404, "not_found")
    error_of(client.post("/seqPath/seqA"), 405, "method_not_allowed")


SEQ_A = sorted((SAMPLES / "seqA").glob("*.jpg"))
GOOD = {path.name: path.read_bytes() for path in SEQ_A[:3]}      # three frames with a face


def wall_jpeg(seed: int = 0) -> bytes:
    """A 160x120 frame of blurred noise: a readable image with no face."""
    noise = np.random.default_rng(seed).integers(90, 160, (120, 160, 3), dtype=np.uint8)
    return cv2.imencode(".jpg", cv2.GaussianBlur(noise, (0, 0), 4))[1].tobytes()


def tiny_png(value: int) -> bytes:
    return cv2.imencode(".png", np.full((16, 16, 3), value % 256, np.uint8))[1].tobytes()


def as_files(entries: dict[str, bytes]) -> list:
    return [(io.BytesIO(data), name) for name, data in entries.items()]


def analysed(response, good=GOOD) -> dict:
    """The answer's frame counts, after checking that every good frame was read and had its face found."""
    assert response.status_code == 200, response.get_data(as_text=True)
    answer = response.get_json()
    frames = answer["meta"]["frames"]
    named = {entry["name"] for entry in answer.get("timeline", []) if entry["faces"]}
    assert set(good) <= named, (set(good) - named, frames)
    assert primary(answer)["frames_seen"] == len(good)
    return frames


def skipped_reasons(frames) -> dict:
    return {item["name"]: item["reason"] for item in frames["skipped"]}


# --- names: the legacy path and v2's {"sample": ...} --------------------------------------------------------

@pytest.mark.parametrize("path", ["/seqPath/.%2e", "/seqPath/%2e", "/seqPath/%2E%2E", "/seqPath//etc/passwd",
                                  "/seqPath/%2Fetc%2Fpasswd", "/seqPath/..%5CseqA", "/seqPath/%5Cetc",
                                  "/seqPath/seqA%00", "/seqPath/C:%5CWindows"])
def test_more_legacy_path_tricks_are_400(client, path):
    error_of(client.get(path), 400, "invalid_sequence_name")


def test_legacy_absolute_path_to_a_real_folder_is_400(client, samples_dir):
    error_of(client.get(f"/seqPath/{samples_dir / 'seqA'}"), 400, "invalid_sequence_name")


def test_double_encoded_dots_are_just_an_unknown_name(client):
    # "%252e%252e" decodes once, to the literal name "%2e%2e": no such folder, nothing is decoded twice.
    assert "%2e%2e" in error_of(client.get("/seqPath/%252e%252e"), 404, "sequence_not_found")


@pytest.mark.parametrize("name", ["..", ".", "", "seqA/..", "../seqA", "..\\seqA", "/etc", "/etc/passwd",
                                  "C:\\Windows", "seqA\x00", ".hidden", "//etc"])
def test_v2_sample_path_tricks_are_400(client, name):
    error_of(client.post("/api/v2/analyze", json={"sample": name}), 400, "invalid_sequence_name")
    error_of(client.post("/api/v2/jobs", json={"sample": name}), 400, "invalid_sequence_name")


def test_v2_sample_absolute_path_to_a_real_folder_is_400(client, samples_dir):
    error_of(client.post("/api/v2/analyze", json={"sample": str(samples_dir / "seqA")}), 400,
             "invalid_sequence_name")


def test_v2_sample_percent_encoding_is_not_decoded(client):
    # JSON is not URL-encoded: "%2e%2e" is a (missing) folder name, not "..".
    error_of(client.post("/api/v2/analyze", json={"sample": "%2e%2e"}), 404, "sequence_not_found")


@pytest.mark.parametrize("name", ["a" * 256, "a" * 5000, "\u00e9" * 200])    # the last is 200 characters, 400 bytes
def test_names_too_long_for_the_file_system_are_400(client, name):
    # Found by hand after fuzzing: the file system's ENAMETOOLONG used to surface as a 500.
    error_of(client.get(f"/seqPath/{name}"), 400, "invalid_sequence_name")
    error_of(client.post("/api/v2/analyze", json={"sample": name}), 400, "invalid_sequence_name")
    response = client.post("/api/v2/jobs", data={"sample": name}, content_type="multipart/form-data")
    message = error_of(response, 400, "invalid_sequence_name")
    assert len(message) < 1000


@pytest.mark.parametrize("value", ["1_0", "\u0661", "0x10", "1e3", " ", "9" * 5000])
def test_options_are_plain_whole_numbers(client, value):
    response = client.post("/api/v2/analyze", json={"sample": "seqA", "max_frames": value})
    assert len(error_of(response, 400, "invalid_option")) < 200


def test_v2_sample_in_a_form_field_gets_the_same_checks(client):
    response = client.post("/api/v2/analyze", data={"sample": "../seqA"}, content_type="multipart/form-data")
    error_of(response, 400, "invalid_sequence_name")


@pytest.mark.parametrize("target", ["outside", "parent"])
def test_v2_sample_symlink_out_of_samples_is_400(client, samples_dir, tmp_path, target):
    if target == "outside":
        shutil.copytree(samples_dir / "seqA", tmp_path / "outside")
        os.symlink(tmp_path / "outside", samples_dir / "escape")
    else:
        os.symlink("..", samples_dir / "escape")
    error_of(client.post("/api/v2/analyze", json={"sample": "escape"}), 400, "invalid_sequence_name")
    error_of(client.post("/api/v2/jobs", json={"sample": "escape"}), 400, "invalid_sequence_name")
    error_of(client.get("/seqPath/escape"), 400, "invalid_sequence_name")


def test_frames_that_link_out_of_their_folder_are_ignored(client, samples_dir, tmp_path):
    # A real folder inside samples/, but some "frames" are links to files elsewhere: never read.
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(SEQ_A[5].read_bytes())
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the client")
    folder = samples_dir / "seqA"
    os.symlink(outside, folder / "frame_0000_link.jpg")
    os.symlink(secret, folder / "frame_0000_secret.jpg")
    os.symlink("/etc/passwd", folder / "frame_0000_passwd.png")
    response = client.post("/api/v2/analyze?timeline=true", json={"sample": "seqA"})
    frames = analysed(response, {path.name for path in SEQ_A[:4]})
    assert sorted(frames["ignored"]) == ["frame_0000_link.jpg", "frame_0000_passwd.png", "frame_0000_secret.jpg"]
    assert frames["read"] == 4 and frames["skipped"] == []
    assert client.get("/seqPath/seqA").status_code == 200


# --- zip archives -------------------------------------------------------------------------------------------

def test_more_zip_slip_names_are_refused(client):
    image = SEQ_A[5].read_bytes()
    bad = {"..\\evil.jpg": image, "a/../../evil.jpg": image, "./../evil.jpg": image, "C:/evil.jpg": image,
           "C:\\Windows\\evil.jpg": image, "\\\\server\\share\\evil.jpg": image, "frames/inner.tar.gz": b"x"}
    response = upload(client, "zip", (zip_of({**GOOD, **bad}), "slip.zip"), "?timeline=true")
    frames = analysed(response)
    reasons = skipped_reasons(frames)
    assert set(reasons) == set(bad), reasons
    assert frames["read"] == 3


def test_symlink_entries_in_a_zip_are_never_followed(client):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in GOOD.items():
            archive.writestr(name, data)
        link = zipfile.ZipInfo("passwd.jpg")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16      # a unix symlink whose target is its data
        archive.writestr(link, "/etc/passwd")
    buffer.seek(0)
    frames = analysed(upload(client, "zip", (buffer, "links.zip"), "?timeline=true"))
    # The entry is read as what it holds (the text "/etc/passwd"), which is not an image.
    assert list(skipped_reasons(frames)) == ["passwd.jpg"]
    assert frames["read"] == 3


# --- broken frames, as uploads and inside a zip: skipped and counted, the good ones still analysed ---------

BROKEN = {
    "bomb.png": (png_header_only(40000, 40000), "40000000 pixels"),
    "truncated.jpg": (SEQ_A[6].read_bytes()[:600], None),      # may decode partially (then it is read)
    "empty.jpg": (b"", "empty"),
    "text.jpg": (b"this is not a jpeg, only text\n" * 10, "not a readable image"),
}


@pytest.mark.parametrize("kind", ["frames", "zip"])
@pytest.mark.parametrize("broken", sorted(BROKEN))
def test_one_broken_frame_among_good_ones(client, kind, broken):
    data, reason = BROKEN[broken]
    names = list(GOOD)
    entries = {names[0]: GOOD[names[0]], broken: data, **{name: GOOD[name] for name in names[1:]}}
    if kind == "frames":
        response = upload(client, "frames", as_files(entries), "?timeline=true")
    else:
        response = upload(client, "zip", (zip_of(entries), "mixed.zip"), "?timeline=true")
    frames = analysed(response)
    reasons = skipped_reasons(frames)
    assert frames["read"] + len(frames["skipped"]) == 4
    if reason is not None:
        assert list(reasons) == [broken] and reason in reasons[broken], reasons
        assert frames["read"] == 3


def test_every_kind_of_broken_frame_at_once(client):
    entries = {**GOOD, **{name: data for name, (data, _) in BROKEN.items()}}
    frames = analysed(upload(client, "zip", (zip_of(entries), "all.zip"), "?timeline=true"))
    assert {"bomb.png", "empty.jpg", "text.jpg"} <= set(skipped_reasons(frames))
    assert frames["read"] + len(frames["skipped"]) == len(entries)


@pytest.mark.parametrize("name", ["bomb.png", "text.jpg", "truncated.jpg"])
def test_only_broken_frames_is_a_clear_422(client, name):
    data, _ = BROKEN[name]
    message = error_of(upload(client, "frames", as_files({name: data, "other.jpg": data})), 422, "no_face")
    assert "frames read" in message


def test_a_bomb_among_frames_in_a_folder_via_v2(client, samples_dir):
    (samples_dir / "seqA" / "frame_0000_bomb.png").write_bytes(png_header_only(40000, 40000))
    frames = analysed(client.post("/api/v2/analyze?timeline=true", json={"sample": "seqA"}),
                      {path.name for path in SEQ_A[:4]})
    assert list(skipped_reasons(frames)) == ["frame_0000_bomb.png"]


# --- videos -------------------------------------------------------------------------------------------------

def write_mp4(path, frames) -> None:
    first = cv2.imread(str(SEQ_A[0]))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 5.0, (first.shape[1], first.shape[0]))
    for frame in frames:
        writer.write(cv2.imread(str(frame)))
    writer.release()


def test_text_named_mp4_is_422(client):
    text = b"this is not a video\n" * 100
    error_of(upload(client, "video", (io.BytesIO(text), "clip.mp4")), 422, "invalid_video")
    error_of(client.post("/api/v2/jobs", data={"video": (io.BytesIO(text), "clip.mp4")},
                         content_type="multipart/form-data"), 422, "invalid_video")


def test_video_container_without_frames_is_422(client, tmp_path):
    path = tmp_path / "empty.mp4"
    write_mp4(path, [])
    data = path.read_bytes() if path.exists() else b""
    response = upload(client, "video", (io.BytesIO(data), "empty.mp4"))
    # OpenCV writes either nothing (an empty upload) or a container with no frame: both are clear 422s.
    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.get_json()["error"]["code"] in ("empty_upload", "invalid_video")


def test_truncated_video_is_422(client, tmp_path):
    path = tmp_path / "clip.mp4"
    write_mp4(path, SEQ_A[:3])
    data = path.read_bytes()
    # mp4v writes its index (moov) at the end: without it no frame can be found.
    error_of(upload(client, "video", (io.BytesIO(data[:len(data) // 2]), "clip.mp4")), 422, "invalid_video")


# --- frames without a face ----------------------------------------------------------------------------------

def test_frames_without_a_face_are_listed_and_the_rest_analysed(client):
    names = list(GOOD)
    entries = {names[0]: GOOD[names[0]], "wall_1.jpg": wall_jpeg(1), names[1]: GOOD[names[1]],
               "wall_2.jpg": wall_jpeg(2), names[2]: GOOD[names[2]]}
    frames = analysed(upload(client, "frames", as_files(entries), "?timeline=true"))
    assert frames["read"] == 5 and frames["skipped"] == []
    assert frames["without_face"] == ["wall_1.jpg", "wall_2.jpg"]


def test_one_frame_without_a_face_is_422(client):
    message = error_of(upload(client, "frames", as_files({"wall.jpg": wall_jpeg()})), 422, "no_face")
    assert "1 frames" in message


def test_wall_frames_in_a_sample_are_listed(client, samples_dir):
    cv2.imwrite(str(samples_dir / "seqA" / "frame_0000_wall.jpg"), np.full((120, 160, 3), 128, np.uint8))
    frames = analysed(client.post("/api/v2/analyze?timeline=true", json={"sample": "seqA"}),
                      {path.name for path in SEQ_A[:4]})
    assert frames["without_face"] == ["frame_0000_wall.jpg"]
    assert client.get("/seqPath/seqA").status_code == 200


# --- 10,000 tiny frames ---------------------------------------------------------------------------------------

TINY = 10_000


@pytest.fixture(scope="module")
def tiny_zip() -> bytes:
    """10,000 entries: 9,997 16x16 PNGs and, among them, three seqA frames."""
    names = list(GOOD)
    entries = {f"tiny_{number:05d}.png": tiny_png(number) for number in range(TINY - len(names))}
    for position, name in zip((0, 5000, 9000), names):
        entries[f"tiny_{position:05d}a_{name}"] = GOOD[name]
    assert len(entries) == TINY
    return zip_of(entries).getvalue()


def test_ten_thousand_tiny_frames_are_all_counted(client, tiny_zip):
    started = time.monotonic()
    response = upload(client, "zip", (io.BytesIO(tiny_zip), "tiny.zip"), "?max_frames=10000")
    elapsed = time.monotonic() - started
    assert response.status_code == 200, response.get_data(as_text=True)
    answer = response.get_json()
    frames = answer["meta"]["frames"]
    assert frames["listed"] == frames["read"] == TINY and not frames["truncated"]
    assert frames["skipped"] == [] and frames["ignored"] == []
    assert len(frames["without_face"]) == TINY - len(GOOD)
    assert not any(name.endswith(tuple(GOOD)) for name in frames["without_face"])
    # The three faces are thousands of frames apart, in three tracklets; they are one identity (the same seqA
    # photo), so the identity step makes them one person.
    assert [person["frames_seen"] for person in answer["persons"]] == [3]
    assert elapsed < 120, f"10,000 tiny frames took {elapsed:.0f} s"


def test_ten_thousand_tiny_frames_stop_at_the_default_max_frames(client, tiny_zip):
    response = upload(client, "zip", (io.BytesIO(tiny_zip), "tiny.zip"))
    answer = response.get_json()
    assert response.status_code == 200, answer
    frames = answer["meta"]["frames"]
    assert frames["listed"] == TINY and frames["read"] == 3000 and frames["truncated"]
    assert answer["meta"]["options"]["max_frames"] == 3000
    assert primary(answer)["frames_seen"] == 1          # only the first seqA frame lies in the first 3,000


def test_ten_thousand_tiny_frames_without_any_face_is_a_clear_422(client):
    entries = {f"t{number}.png": tiny_png(number) for number in range(TINY)}
    response = upload(client, "zip", (zip_of(entries), "tiny.zip"), "?max_frames=10000")
    assert "10000 frames read (0 unreadable)" in error_of(response, 422, "no_face")


def test_more_image_parts_than_a_form_may_hold_is_a_clear_413(client):
    # Flask parses at most 1,000 form parts; the answer says to send a zip instead.
    files = [(io.BytesIO(tiny_png(number)), f"t{number}.png") for number in range(1500)]
    message = error_of(upload(client, "frames", files), 413, "request_too_large")
    assert "zip" in message
