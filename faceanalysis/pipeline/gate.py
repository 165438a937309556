"""The face gate: which detections are faces. MTCNN on real footage also boxes hands, hair, mugs and dark wall.

``FaceGate.check`` gives each detection a verdict (each threshold is a field below; docs/real-footage.md, "How
persons are formed", says on which labelled detections it was chosen):

- ``geometry``: rejected, the 5 landmarks, with the eye line turned level (``quality.pose``), cannot be a face:
  the mouth is not ``min_mouth_height`` to ``max_mouth_height`` eye distances below the eyes, the eye distance
  is not a plausible share of the box width (``eye_share``), or the nose is far outside the eyes (``max_yaw``;
  a profile keeps its nose near one eye). The bounds are wide: on the labelled clips MTCNN's landmarks look
  like a face's even on a hand, so this only removes the impossible;
- ``blank``: rejected, the 48 px grey crop has no detail (``min_sharpness``: a flat patch of wall);
- ``face``: the gate is **sure**: detection confidence at least ``sure_confidence``, or, below it, a **second
  opinion** agrees: dlib's HOG frontal face detector (its model is built into dlib) finds a face in the crop
  around the box, turned so that the eyes are level. Only the doubtful detections pay for the second opinion;
- ``doubtful``: neither. On the labelled clips every hand, watch, mug and wall MTCNN boxed is doubtful, and so
  are some real faces (blurred, looking down, small).

Rejected detections are dropped before tracking (``meta.faces_rejected`` counts them). Doubtful ones are tracked
and answered like the others (a face blurred by motion in the middle of a track is still that person's), but a
person is listed only with at least one sure face (``persons.listed``): a track that is doubtful in every frame
is a hand or a wall. ``check`` is pure numpy on arrays, so every rule is tested on both sides of its threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .quality import pose

# Why a detection was rejected (the first failed rule, in this order).
PASSED, GEOMETRY, BLANK, DOUBTFUL = "face", "geometry", "blank", "doubtful"
HOG_CROP = 160            # pixels: the crop the second opinion reads (dlib's HOG window is 80 px)
HOG_MARGIN = 0.25         # share of the box side added around it, so the HOG window sees the whole face


@dataclass(frozen=True)
class FaceGate:
    min_mouth_height: float = 0.5       # eye-to-mouth height over eye distance
    max_mouth_height: float = 2.5
    eye_share: tuple[float, float] = (0.18, 0.7)     # eye distance over box width
    max_yaw: float = 1.6                # |nose offset| over half the eye distance
    min_sharpness: float = 15.0         # Laplacian variance of the 48 px grey crop
    sure_confidence: float = 0.99       # at or above: no second opinion needed
    second_opinion: bool = True

    def describe(self) -> dict:
        return {"min_mouth_height": self.min_mouth_height, "max_mouth_height": self.max_mouth_height,
                "eye_share": list(self.eye_share), "max_yaw": self.max_yaw, "min_sharpness": self.min_sharpness,
                "sure_confidence": self.sure_confidence, "second_opinion": self.second_opinion}

    def check(self, boxes: np.ndarray, confidence: np.ndarray, landmarks: np.ndarray, sharpness: np.ndarray,
              agrees: np.ndarray | None = None) -> np.ndarray:
        """The reason per detection (``PASSED`` or the first rule it fails). ``agrees``: the second opinion per
        detection (True: a face found there); None means not asked, which rejects every doubtful one when the
        gate asks for a second opinion."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        count = len(boxes)
        yaw, _, eyes, height = pose(landmarks)
        width = boxes[:, 2] - boxes[:, 0]
        with np.errstate(invalid="ignore", divide="ignore"):
            mouth = height / eyes
            share = eyes / width
        known = ~np.isnan(mouth)           # given crops have no landmarks: geometry cannot be judged
        geometry_ok = ~known | ((mouth >= self.min_mouth_height) & (mouth <= self.max_mouth_height)
                                & (share >= self.eye_share[0]) & (share <= self.eye_share[1])
                                & (np.abs(yaw) <= self.max_yaw))
        sharp_ok = np.asarray(sharpness, np.float64) >= self.min_sharpness
        sure = np.asarray(confidence, np.float64) >= self.sure_confidence
        if not self.second_opinion:
            second = np.ones(count, bool)
        elif agrees is None:
            second = np.zeros(count, bool)
        else:
            second = np.asarray(agrees, bool)
        reason = np.full(count, PASSED, dtype=object)
        reason[~(sure | second)] = DOUBTFUL
        reason[~sharp_ok] = BLANK
        reason[~geometry_ok] = GEOMETRY
        return reason

    def doubtful(self, confidence: np.ndarray) -> np.ndarray:
        """Which detections the second opinion must be asked about."""
        return self.second_opinion & (np.asarray(confidence, np.float64) < self.sure_confidence)


class HogOpinion:
    """dlib's HOG frontal face detector (``dlib.get_frontal_face_detector()``: the model is inside dlib) on the
    crop around a box, turned so that the eyes are level: the second opinion on doubtful detections."""

    def __init__(self) -> None:
        import dlib

        self._detector = dlib.get_frontal_face_detector()

    def __call__(self, frames: list[np.ndarray], frame_of: np.ndarray, boxes: np.ndarray,
                 landmarks: np.ndarray | None = None) -> np.ndarray:
        """True per box where a HOG face is found in the crop around it."""
        out = np.zeros(len(boxes), bool)
        rolls = roll(landmarks) if landmarks is not None else np.zeros(len(boxes))
        for row, (index, box) in enumerate(zip(frame_of, boxes)):
            crop = crop_around(frames[int(index)], box, HOG_MARGIN, HOG_CROP, rolls[row])
            out[row] = len(self._detector(crop, 0)) > 0
        return out


def roll(landmarks: np.ndarray) -> np.ndarray:
    """The eye line's angle per face, degrees (0 where the landmarks are not known)."""
    points = np.asarray(landmarks, np.float64).reshape(-1, 5, 2)
    across = points[:, 1] - points[:, 0]
    return np.nan_to_num(np.degrees(np.arctan2(across[:, 1], across[:, 0])))


def crop_around(rgb: np.ndarray, box, margin: float, size: int, angle: float = 0.0) -> np.ndarray:
    """The square around ``box`` grown by ``margin`` of its side per side, turned by ``angle`` degrees about the
    box centre (so that a line at that angle becomes level), resized to ``size``; outside the frame is black."""
    x1, y1, x2, y2 = (float(value) for value in box)
    side = max(x2 - x1, y2 - y1) * (1 + 2 * margin)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    scale = size / max(side, 1.0)
    # One affine warp: turn, crop, pad and resize together.
    matrix = cv2.getRotationMatrix2D((cx, cy), angle, scale)
    matrix[:, 2] += (size / 2 - cx, size / 2 - cy)
    return cv2.warpAffine(rgb, matrix, (size, size), flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
