"""The ``max_frames`` rule on the sources themselves (no model): a source with exactly ``max_frames`` frames to
analyse is read whole and not ``truncated``; one frame more is cut and ``truncated``. Both for a folder of real
frames (samples/seqA) and for a video made of those frames, with and without a stride."""

from __future__ import annotations

import shutil

import cv2
import pytest

from conftest import SAMPLES
from faceanalysis.pipeline.sources import FolderSource, VideoSource
from facecore.frames import list_frames

FRAMES = sorted((SAMPLES / "seqA").glob("*.jpg"))


def read_all(source) -> tuple[list[int], bool]:
    """The indices of the frames read, and whether the source says it was truncated."""
    with source.open(batch_size=4) as stream:
        for _ in stream:
            pass
        summary = stream.summary()
    return [index for index, _ in summary.read], summary.truncated


def folder_of(tmp_path, count: int):
    folder = tmp_path / f"frames_{count}"
    folder.mkdir()
    for path in FRAMES[:count]:
        shutil.copy(path, folder / path.name)
    return folder


def video_of(tmp_path, count: int):
    """An MJPG .avi of the first ``count`` seqA frames (read back with OpenCV, as the service reads videos)."""
    path = tmp_path / f"video_{count}.avi"
    first = cv2.imread(str(FRAMES[0]))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (first.shape[1], first.shape[0]))
    assert writer.isOpened(), "OpenCV cannot write MJPG here"
    for frame in FRAMES[:count]:
        writer.write(cv2.imread(str(frame)))
    writer.release()
    capture = cv2.VideoCapture(str(path))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == count
    capture.release()
    return path


@pytest.mark.parametrize("count, truncated", [(5, False), (6, True)])
def test_a_folder_of_max_frames_frames_is_not_truncated_and_one_more_is(tmp_path, count, truncated):
    read, cut = read_all(FolderSource(list_frames(folder_of(tmp_path, count)), max_frames=5))
    assert read == [0, 1, 2, 3, 4] and cut is truncated


@pytest.mark.parametrize("count, truncated", [(5, False), (6, True)])
def test_a_video_of_max_frames_frames_is_not_truncated_and_one_more_is(tmp_path, count, truncated):
    read, cut = read_all(VideoSource(video_of(tmp_path, count), "clip.avi", max_frames=5))
    assert read == [0, 1, 2, 3, 4] and cut is truncated


@pytest.mark.parametrize("count, truncated", [(5, False), (6, False), (7, True)])
def test_with_a_stride_the_limit_counts_the_frames_analysed(tmp_path, count, truncated):
    # Stride 2, at most 3 frames: 0, 2, 4. A 6th frame (index 5) would be skipped by the stride anyway, so the
    # 6-frame video is whole; a 7th (index 6) would have been analysed, so the 7-frame one is truncated.
    read, cut = read_all(VideoSource(video_of(tmp_path, count), "clip.avi", stride=2, max_frames=3))
    assert read == [0, 2, 4] and cut is truncated
    read, cut = read_all(FolderSource(list_frames(folder_of(tmp_path, count)), stride=2, max_frames=3))
    assert read == [0, 2, 4] and cut is truncated
