"""Frame listing, decoding and its limits (facecore/frames.py; README "Errors": 40 megapixels, 64 MB, natural
order, what is skipped and what is ignored), each on both sides of its bound."""

from __future__ import annotations

import logging
import os
import threading

import cv2
import numpy as np
import pytest

from checks import png_header_only
from facecore import frames
from facecore.errors import AnalysisError
from facecore.frames import (
    MAX_FILE_BYTES,
    MAX_PIXELS,
    SkippedFrame,
    check_pixels,
    decode_bytes,
    decode_frame,
    iter_decoded_batches,
    list_frames,
    natural_key,
)


def png(rgb: np.ndarray) -> bytes:
    return cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes()


RED = np.zeros((4, 6, 3), np.uint8)
RED[..., 0] = 255


def test_the_documented_limits():
    assert MAX_PIXELS == 40_000_000
    assert MAX_FILE_BYTES == 64 * 1024 * 1024


# --- natural order --------------------------------------------------------------------------------------------

def test_numbers_sort_by_value_and_letters_ignore_case():
    names = ["frame_10.jpg", "frame_2.jpg", "Frame_3.jpg", "frame_1.jpg", "a10b10.png", "a10b2.png", "a9.png"]
    assert sorted(names, key=natural_key) == ["a9.png", "a10b2.png", "a10b10.png", "frame_1.jpg", "frame_2.jpg",
                                              "Frame_3.jpg", "frame_10.jpg"]


def test_natural_key_splits_digits_from_text():
    assert natural_key("Frame_0010.JPG") == ["frame_", 10, ".jpg"]


# --- listing a folder -----------------------------------------------------------------------------------------

def test_a_folder_is_listed_in_natural_order_and_non_images_are_ignored(tmp_path):
    for name in ("frame_10.jpg", "frame_2.PNG", "frame_1.jpeg", "frame_3.bmp", "notes.txt", "clip.gif"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / ".hidden.jpg").write_bytes(b"x")          # neither a frame nor counted
    (tmp_path / "sub.jpg").mkdir()                        # a folder named like a frame is not one
    listing = list_frames(tmp_path)
    assert [path.name for path in listing.images] == ["frame_1.jpeg", "frame_2.PNG", "frame_3.bmp", "frame_10.jpg"]
    assert listing.ignored == ["clip.gif", "notes.txt"]
    assert listing.folder == tmp_path


def test_a_frame_linking_out_of_its_folder_is_ignored(tmp_path):
    (tmp_path / "inside").mkdir()
    (tmp_path / "outside.jpg").write_bytes(b"x")
    (tmp_path / "inside" / "frame_1.jpg").write_bytes(b"x")
    os.symlink(tmp_path / "outside.jpg", tmp_path / "inside" / "frame_2.jpg")
    os.symlink(tmp_path / "inside" / "frame_1.jpg", tmp_path / "inside" / "frame_3.jpg")   # inside: a frame
    listing = list_frames(tmp_path / "inside")
    assert [path.name for path in listing.images] == ["frame_1.jpg", "frame_3.jpg"]
    assert listing.ignored == ["frame_2.jpg"]


def test_a_missing_folder_is_404(tmp_path):
    with pytest.raises(AnalysisError) as caught:
        list_frames(tmp_path / "nope")
    assert (caught.value.code, caught.value.status) == ("sequence_not_found", 404)
    assert "'nope'" in caught.value.message


@pytest.mark.parametrize("others, said", [
    ([], "sequence folder 'seq' holds no .jpg/.jpeg/.png/.bmp frames"),
    (["a.txt"], "sequence folder 'seq' holds no .jpg/.jpeg/.png/.bmp frames (1 other file ignored)"),
    (["a.txt", "b.mp4"], "sequence folder 'seq' holds no .jpg/.jpeg/.png/.bmp frames (2 other files ignored)"),
])
def test_a_folder_without_frames_is_422_and_counts_the_other_files(tmp_path, others, said):
    folder = tmp_path / "seq"
    folder.mkdir()
    for name in others:
        (folder / name).write_text("x")
    with pytest.raises(AnalysisError) as caught:
        list_frames(folder)
    assert (caught.value.code, caught.value.status, caught.value.message) == ("no_images", 422, said)


# --- 40 megapixels -------------------------------------------------------------------------------------------

def test_exactly_40_megapixels_pass_the_check_and_one_row_more_does_not():
    check_pixels(8000, 5000)
    with pytest.raises(ValueError, match="^8000x5001 is more than 40000000 pixels$"):
        check_pixels(8000, 5001)


def test_a_header_over_40_megapixels_is_refused_before_decoding():
    # 6400 x 6400 = 40.96 MP: above the project's limit, below Pillow's own (89 MP), so only our check refuses it.
    with pytest.raises(ValueError, match="^6400x6400 is more than 40000000 pixels$"):
        decode_bytes(png_header_only(6400, 6400))


def test_a_header_of_exactly_40_megapixels_gets_to_the_decoder():
    # 8000 x 5000 = 40.0 MP passes the pixel check; the header-only file then fails as corrupt data.
    with pytest.raises(ValueError, match="^image data is corrupt$"):
        decode_bytes(png_header_only(8000, 5000))


def test_a_header_beyond_pillows_limit_is_a_decompression_bomb():
    with pytest.raises(ValueError, match=r"declares more than 40000000 pixels \(decompression bomb\)"):
        decode_bytes(png_header_only(40000, 40000))


# --- 64 MB ---------------------------------------------------------------------------------------------------

def test_bytes_over_64_mb_are_refused_and_64_mb_are_read():
    with pytest.raises(ValueError, match=f"^file is {MAX_FILE_BYTES + 1} bytes, more than {MAX_FILE_BYTES}$"):
        decode_bytes(b"\0" * (MAX_FILE_BYTES + 1))
    with pytest.raises(ValueError, match="^not a readable image"):        # within the limit: looked at
        decode_bytes(b"\0" * MAX_FILE_BYTES)


def test_a_file_over_64_mb_is_refused_without_reading_it(tmp_path, monkeypatch):
    big, limit = tmp_path / "big.jpg", tmp_path / "limit.jpg"
    for path, size in ((big, MAX_FILE_BYTES + 1), (limit, MAX_FILE_BYTES)):
        with open(path, "wb") as handle:
            handle.truncate(size)                 # sparse: no 64 MB written to disk
    reads = []
    monkeypatch.setattr(frames, "decode_bytes", lambda data: reads.append(len(data)) or RED)
    with pytest.raises(ValueError, match=f"^file is {MAX_FILE_BYTES + 1} bytes, more than {MAX_FILE_BYTES}$"):
        decode_frame(big)
    assert reads == []
    assert decode_frame(limit) is RED and reads == [MAX_FILE_BYTES]


# --- decoding ------------------------------------------------------------------------------------------------

def test_a_good_frame_decodes_to_rgb(tmp_path):
    path = tmp_path / "red.png"
    path.write_bytes(png(RED))
    rgb = decode_frame(path)
    assert rgb.shape == (4, 6, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0].tolist() == [255, 0, 0]                # red stays red: OpenCV's BGR is converted


@pytest.mark.parametrize("data, reason", [
    (b"", "^empty file$"),
    (b"this is not an image, only text\n" * 4, r"^not a readable image \(UnidentifiedImageError\)$"),
])
def test_unusable_bytes_say_why(data, reason):
    with pytest.raises(ValueError, match=reason):
        decode_bytes(data)


def test_a_decoder_answer_without_pixels_is_corrupt(monkeypatch):
    # OpenCV may answer an empty array rather than None for data it cannot use.
    monkeypatch.setattr(frames.cv2, "imdecode", lambda data, flags: np.zeros((0, 0, 3), np.uint8))
    with pytest.raises(ValueError, match="^image data is corrupt$"):
        decode_bytes(png(RED))


def test_truncated_data_is_corrupt():
    data = png(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="^image data is corrupt$"):
        decode_bytes(data[:len(data) // 2])


# --- decoding a stream in batches ----------------------------------------------------------------------------

def items(outcomes: list):
    """Frame items whose decoder returns ``outcome`` (an array) or raises it (an exception)."""
    def decoder(outcome):
        def decode():
            if isinstance(outcome, BaseException):
                raise outcome
            return outcome
        return decode
    return [(index, f"f{index}", decoder(outcome)) for index, outcome in enumerate(outcomes)]


def test_batches_keep_order_and_failures_are_skipped_with_their_reason(caplog):
    pixels = [np.full((2, 2, 3), value, np.uint8) for value in range(5)]
    stream = items([pixels[0], ValueError("bad header"), pixels[2], OSError("disk"), pixels[4]])
    skipped: list[SkippedFrame] = []
    with caplog.at_level(logging.WARNING, logger="facecore.frames"):
        batches = list(iter_decoded_batches(stream, batch_size=2, skipped=skipped, workers=2))
    assert [record.getMessage() for record in caplog.records] == ["skipping frame f1: bad header",
                                                                  "skipping frame f3: disk"]
    assert [[(frame.index, frame.name) for frame in batch] for batch in batches] == [[(0, "f0")], [(2, "f2")],
                                                                                      [(4, "f4")]]
    assert batches[2][0].rgb is pixels[4]
    assert skipped == [SkippedFrame(1, "f1", "bad header"), SkippedFrame(3, "f3", "disk")]


def test_a_batch_of_only_failures_is_not_yielded_and_nothing_gives_nothing():
    skipped: list[SkippedFrame] = []
    good = np.zeros((2, 2, 3), np.uint8)
    stream = items([ValueError("a"), ValueError("b"), good, good, good])
    assert [len(batch) for batch in iter_decoded_batches(stream, 2, skipped)] == [2, 1]   # f0-f1 all failed
    assert [item.name for item in skipped] == ["f0", "f1"]
    assert list(iter_decoded_batches([], 4, skipped)) == []


def test_a_bug_in_a_decoder_is_not_mistaken_for_a_bad_frame():
    with pytest.raises(KeyError):
        list(iter_decoded_batches(items([KeyError("bug")]), 4, []))


def test_frames_are_decoded_in_threads_named_decode():
    # The name shows in a profiler or a thread dump: which threads are the decoder's.
    names = []

    def decode():
        names.append(threading.current_thread().name)
        return np.zeros((1, 1, 3), np.uint8)
    list(iter_decoded_batches([(index, str(index), decode) for index in range(6)], 2, []))
    assert len(names) == 6 and all(name.startswith("decode_") for name in names)


def test_batches_hold_batch_size_frames():
    stream = items([np.zeros((1, 1, 3), np.uint8)] * 7)
    assert [len(batch) for batch in iter_decoded_batches(stream, 3, [])] == [3, 3, 1]
