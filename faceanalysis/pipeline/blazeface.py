"""BlazeFace full-range (MediaPipe's face detector) as a second source of face proposals for MTCNN's O-Net.

Why: on real footage MTCNN misses faces that look down, are half out of the frame or are blurred, and lowering
its thresholds does not bring them back without a flood of non-faces (on the labelled frames of
``../shared/clips``, the detections O-Net scores 0.3-0.6 are 11 faces and 203 non-faces): most of them P-Net
and R-Net never propose. BlazeFace was trained on other data with
another design (one 192x192 look at the whole frame, SSD anchors), so it fails elsewhere: it proposed 17 of
the 37 faces of the arm-wrestling teen, and 40 of the 54 of the bedroom children, several of which MTCNN
missed. Its proposals go through MTCNN's own O-Net (``mtcnn_fast.FastMTCNN``), which scores them, refines
their box to MTCNN's framing and gives the five landmarks every later step reads; so a face it adds looks to the
rest of the service like any MTCNN face, and O-Net's score keeps out what BlazeFace mistakes for a face.

The weights are ``face_detection_full_range_sparse.tflite`` from the ``mediapipe`` wheel (Apache-2.0,
``weights/manifest.json``), run by TensorFlow's TFLite interpreter; ``mediapipe`` itself is never imported.
Input: the frame letterboxed (centred, black borders) to a 192x192 RGB square scaled to [-1, 1] (from MTCNN's
pyramid level when the detector has one, ``from_level``). Output: for
each of 48x48 anchors (one per 4-px cell, centre ((x + 0.5) / 48, (y + 0.5) / 48) of the square), a score
logit and 16 offsets, of which the first four are the box centre's offset and the box's width and height in
input pixels (MediaPipe's ``face_detection_full_range.pbtxt``: one anchor per cell, fixed size 1, scales 192).
"""

from __future__ import annotations

import threading
import warnings

import cv2
import numpy as np

from .tracking import iou

INPUT = 192                 # the network's input side, pixels
GRID = 48                   # anchors per side (stride 4)
# A proposal needs this BlazeFace score (MediaPipe's own default minimum detection confidence). O-Net decides
# after it; a lower one only gives O-Net more non-faces to read.
MIN_SCORE = 0.5
# Proposals overlapping a higher-scored one by more than this IoU are the same face (MediaPipe's 0.3).
NMS_IOU = 0.3


def anchor_centres() -> np.ndarray:
    """(GRID * GRID, 2) anchor centres (x, y) in units of the input square, row by row."""
    cells = (np.arange(GRID) + 0.5) / GRID
    x, y = np.meshgrid(cells, cells)
    return np.stack([x.ravel(), y.ravel()], axis=1)


ANCHORS = anchor_centres()


def letterbox(frame: np.ndarray) -> tuple[np.ndarray, float, float, float]:
    """The network input for an RGB uint8 frame: the frame scaled (area) to fit 192 px, centred on black, in
    [-1, 1]; and, in frame pixels, the side of the square the input stands for and the frame's offsets in it.
    (Scaling the frame, not a padded copy of it, keeps a 720p frame's cost to the pixels it has.)"""
    return _centred(frame, cv2.INTER_AREA, 1 / 127.5, -1.0, frame.shape[1], frame.shape[0])


def from_level(level: np.ndarray, frame_width: int, frame_height: int) -> tuple[np.ndarray, float, float, float]:
    """``letterbox`` from a pyramid level of the frame that MTCNN has already made (float, normalised as
    ``(x - 127.5) / 128``, long side at least 192): the level scaled (linear; it is at most 1/0.709 times too
    large) and renormalised to ``x / 127.5 - 1``. On a 720p frame this is a tenth of ``letterbox``'s cost."""
    return _centred(np.asarray(level, np.float32), cv2.INTER_LINEAR, 128 / 127.5, 0.0, frame_width, frame_height)


def _centred(image: np.ndarray, interpolation: int, gain: float, offset: float, frame_width: int,
             frame_height: int) -> tuple[np.ndarray, float, float, float]:
    """``image`` (the frame or a scaled copy of it) scaled to fit the input, times ``gain`` plus ``offset``,
    centred on -1 (black); with the input square's side and the frame's offsets in it, in frame pixels."""
    height, width = image.shape[:2]
    fit = INPUT / max(height, width)
    inner_w, inner_h = max(1, round(width * fit)), max(1, round(height * fit))
    left, top = (INPUT - inner_w) // 2, (INPUT - inner_h) // 2
    square = np.full((INPUT, INPUT, 3), -1.0, np.float32)
    small = cv2.resize(image, (inner_w, inner_h), interpolation=interpolation)
    square[top:top + inner_h, left:left + inner_w] = small.astype(np.float32) * np.float32(gain) + np.float32(offset)
    scale = max(inner_w, inner_h) / max(frame_width, frame_height)      # input pixels per frame pixel
    return square, INPUT / scale, left / scale, top / scale


def decode(offsets: np.ndarray, logits: np.ndarray, side: float, left: float, top: float,
           min_score: float = MIN_SCORE) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (k, 4: x1, y1, x2, y2 in frame pixels) and scores (k,) of the anchors scoring at least
    ``min_score``, from one frame's raw outputs: ``offsets`` (GRID * GRID, 16), ``logits`` (GRID * GRID,)."""
    scores = 1.0 / (1.0 + np.exp(-np.clip(np.asarray(logits, np.float64).ravel(), -80, 80)))
    chosen = np.flatnonzero(scores >= min_score)
    raw = np.asarray(offsets, np.float64)[chosen, :4] / INPUT
    centre_x = ANCHORS[chosen, 0] + raw[:, 0]
    centre_y = ANCHORS[chosen, 1] + raw[:, 1]
    half_w, half_h = raw[:, 2] / 2, raw[:, 3] / 2
    boxes = np.stack([centre_x - half_w, centre_y - half_h, centre_x + half_w, centre_y + half_h], axis=1) * side
    return boxes - np.array([left, top, left, top], np.float64), scores[chosen]


def suppress(boxes: np.ndarray, scores: np.ndarray, threshold: float = NMS_IOU) -> np.ndarray:
    """Indices kept by greedy NMS, best score first (ties: the earlier anchor): a box is dropped when a kept
    one overlaps it by more than ``threshold`` IoU."""
    order = np.argsort(-scores, kind="stable")
    kept: list[int] = []
    for index in order.tolist():
        if kept and iou(boxes[index:index + 1], boxes[kept]).max() > threshold:
            continue
        kept.append(index)
    return np.asarray(kept, np.int64)


class BlazeFace:
    """``propose(frames)``: package-layout rows ``[image, x1, y1, x2, y2, score]`` of every face BlazeFace sees.

    The network takes one frame per call (its graph is built for a batch of one); each calling thread gets
    its own single-threaded interpreter, as the detector's parts run in parallel."""

    def __init__(self, path: str, min_score: float = MIN_SCORE) -> None:
        self.path = path
        self.min_score = min_score
        self._local = threading.local()

    def _interpreter(self):
        interpreter = getattr(self._local, "interpreter", None)
        if interpreter is None:
            import tensorflow as tf

            # TensorFlow 2.21 (pinned) still has it, and warns that it will move to the ai_edge_litert package.
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated.*")
                interpreter = tf.lite.Interpreter(model_path=self.path, num_threads=1)
            interpreter.allocate_tensors()
            outputs = sorted(interpreter.get_output_details(), key=lambda detail: -int(detail["shape"][-1]))
            self._local.interpreter = interpreter
            self._local.indices = (interpreter.get_input_details()[0]["index"],
                                   outputs[0]["index"], outputs[1]["index"])      # offsets (16), logits (1)
        return interpreter, self._local.indices

    def propose(self, frames: list[np.ndarray], level: np.ndarray | None = None) -> np.ndarray:
        """``level``: the frames' pyramid level (n, h, w, 3) with a long side of at least 192 px, when the caller
        has one (``from_level``); without, each frame is letterboxed."""
        interpreter, (source, offsets_out, logits_out) = self._interpreter()
        rows = []
        for image, frame in enumerate(frames):
            height, width = frame.shape[:2]
            square, side, left, top = letterbox(frame) if level is None else from_level(level[image], width, height)
            interpreter.set_tensor(source, square[None])
            interpreter.invoke()
            boxes, scores = decode(interpreter.get_tensor(offsets_out)[0], interpreter.get_tensor(logits_out)[0],
                                   side, left, top, self.min_score)
            for index in suppress(boxes, scores):
                rows.append([image, *boxes[index], scores[index]])
        return np.asarray(rows, np.float64).reshape(-1, 6)
