"""Every kind of bad input gets a clear JSON error with the right status, and loses nothing."""

from __future__ import annotations

import os
import shutil
import struct
import zlib

import cv2
import numpy as np
import pytest


def error_of(response, status, code):
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code
    return body["error"]["message"]


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels but carries almost no data."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + chunk(b"IEND", b""))


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
