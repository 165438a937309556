"""Benchmark sequences of any length, built from the committed sample frames (no download).

Frame ``i`` is sample frame ``i % 60`` of seqA + seqB (640x480, one face). Every
other pass through the 60 frames is mirrored left-right, and each pass shifts
the exposure a little, so a long sequence is not the same 60 images over and
over (a detector cannot cache its way through it). Frames are written as JPEG
(quality 90) one at a time, so building 3000 frames needs no more memory than one.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
SOURCES = sorted((REPO / "samples" / "seqA").glob("*.jpg")) + sorted((REPO / "samples" / "seqB").glob("*.jpg"))
JPEG = [cv2.IMWRITE_JPEG_QUALITY, 90]


def benchmark_frame(index: int) -> np.ndarray:
    """BGR frame ``index`` of the benchmark sequence."""
    frame = cv2.imread(str(SOURCES[index % len(SOURCES)]), cv2.IMREAD_COLOR)
    cycle = index // len(SOURCES)
    if cycle % 2:
        frame = cv2.flip(frame, 1)
    gain = 1.0 + 0.04 * ((cycle % 5) - 2)            # 0.92 .. 1.08
    return cv2.convertScaleAbs(frame, alpha=gain, beta=0)


def write_sequence(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        cv2.imwrite(str(folder / f"frame_{index + 1:05d}.jpg"), benchmark_frame(index), JPEG)
    return folder
