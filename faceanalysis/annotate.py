"""Draw an analysis on its input: every frame of the input, each person's box with their id, age, gender and
expression, written as a video (``faceanalysis analyse --annotate OUT``).

The labels are the person's answer over the whole input (what the v2 answer's ``persons`` say), so they do not
flicker from frame to frame; the boxes are where the face was found in that frame. Frames between analysed ones
(``--stride``) show the boxes of the last analysed frame; frames after ``--max-frames`` show none. Every
readable frame of the input is written, at the input's frame rate, resized to the first frame's size where
frames differ (images).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from faceanalysis.pipeline.result import SequenceResult
from faceanalysis.pipeline.sources import FrameSource
from facecore.errors import AnalysisError
from facecore.labels import GENDERS

# BGR, distinct on skin and on most backgrounds; person n gets PALETTE[(n - 1) % len].
PALETTE = ((0, 200, 0), (255, 128, 0), (0, 128, 255), (255, 0, 255), (0, 255, 255), (128, 0, 255),
           (255, 255, 0), (0, 0, 255))
FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}
BATCH = 16


def colour(person: int) -> tuple[int, int, int]:
    return PALETTE[(person - 1) % len(PALETTE)]


def labels(result: SequenceResult) -> dict[int, str]:
    """Person id -> "1 F 34 happy": id, gender, age in years, expression."""
    out = {}
    for person in result.persons:
        summary = person.summary
        gender = GENDERS[int(np.argmax(summary.gender))][0].upper()
        out[person.id] = f"{person.id} {gender} {summary.age:.0f} {summary.dominant_expression}"
    return out


def boxes_by_frame(result: SequenceResult) -> dict[int, list[tuple[int, np.ndarray]]]:
    """Frame index -> [(person id, box x1 y1 x2 y2)] of the faces found in it."""
    faces = result.faces
    out: dict[int, list[tuple[int, np.ndarray]]] = {}
    for row in range(len(faces)):
        out.setdefault(int(faces.frame[row]), []).append((int(faces.person[row]), faces.boxes[row]))
    return out


def annotate(result: SequenceResult, source: FrameSource, out: Path, fps: float) -> int:
    """Write ``source`` (the input read again, every frame) to ``out`` with ``result`` drawn on it; the frames
    written. Raises ``AnalysisError`` (``invalid_output``) when no writer opens for ``out``."""
    text = labels(result)
    found = boxes_by_frame(result)
    analysed = {index for index, _ in result.source.read}
    last_analysed = max(analysed, default=-1)
    truncated = result.source.truncated
    writer, size, written = None, None, 0
    held: list[tuple[int, np.ndarray]] = []
    try:
        with source.open(BATCH) as stream:
            for batch in stream:
                for frame in batch:
                    bgr = cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2BGR)
                    if writer is None:
                        size = (bgr.shape[1], bgr.shape[0])
                        writer = _writer(out, fps, size)
                    scale = (size[0] / bgr.shape[1], size[1] / bgr.shape[0])
                    if (bgr.shape[1], bgr.shape[0]) != size:
                        bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
                    if frame.index in analysed:
                        held = found.get(frame.index, [])
                    elif truncated and frame.index > last_analysed:
                        held = []       # past max_frames: not analysed, nothing to show
                    for person, box in held:
                        draw(bgr, box * np.array([scale[0], scale[1]] * 2), text.get(person, f"{person}"),
                             colour(person))
                    writer.write(bgr)
                    written += 1
    finally:
        if writer is not None:
            writer.release()
    return written


def _writer(out: Path, fps: float, size: tuple[int, int]) -> cv2.VideoWriter:
    fourcc = cv2.VideoWriter_fourcc(*FOURCC.get(out.suffix.lower(), "mp4v"))
    writer = cv2.VideoWriter(str(out), fourcc, float(fps), size)
    if not writer.isOpened():
        raise AnalysisError("invalid_output", f"cannot write a video to {str(out)!r}")
    return writer


def draw(bgr: np.ndarray, box: np.ndarray, label: str, bgr_colour: tuple[int, int, int]) -> None:
    """A 2-pixel box and its label on a filled strip above it (below it at the top edge)."""
    x1, y1, x2, y2 = (int(round(value)) for value in box)
    cv2.rectangle(bgr, (x1, y1), (x2, y2), bgr_colour, 2)
    scale = max(0.4, min(1.0, (x2 - x1) / 160))
    (width, height), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    top = y1 - height - base - 4 if y1 - height - base - 4 >= 0 else y2 + 2
    cv2.rectangle(bgr, (x1, top), (x1 + width + 4, top + height + base + 4), bgr_colour, -1)
    cv2.putText(bgr, label, (x1 + 2, top + height + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1,
                cv2.LINE_AA)
