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

When the faces are tracked (videos, folders), the second opinions are asked after tracking, per tracklet
(``SecondLook``; ``FaceAnalyzer._looks``), and only about tracklets with no sure face yet: a person is listed on
one sure face, so asking about the rest of a sure tracklet would change no answer. HOG then reads every doubtful
face of such a tracklet. A **second look** follows: dlib's CNN face detector (``CnnOpinion``, the MMOD model of
``face-recognition-models``), trained on faces in many poses, where HOG, a frontal detector, misses faces looking
down or turned. It costs about 0.19 s a crop on a CPU core, so it reads at most ``max_asks`` faces of a tracklet,
``ask_every`` of its faces apart, from its ``min_frames``-th face on. Without tracking (single photos) HOG is
asked about every doubtful detection at once, and the CNN is not asked.

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
CNN_CROP = 160            # pixels: the crop the CNN opinion reads (same crop as HOG's; its window is 80 px)


@dataclass(frozen=True)
class FaceGate:
    min_mouth_height: float = 0.5       # eye-to-mouth height over eye distance
    max_mouth_height: float = 2.5
    eye_share: tuple[float, float] = (0.18, 0.7)     # eye distance over box width
    max_yaw: float = 1.6                # |nose offset| over half the eye distance
    min_sharpness: float = 15.0         # Laplacian variance of the 48 px grey crop
    sure_confidence: float = 0.99       # at or above: no second opinion needed
    second_opinion: bool = True
    max_asks: int = 3                   # the CNN's second look: doubtful faces read per tracklet, at most
    ask_every: int = 5                  # ... this many of the tracklet's faces apart

    def describe(self) -> dict:
        return {"min_mouth_height": self.min_mouth_height, "max_mouth_height": self.max_mouth_height,
                "eye_share": list(self.eye_share), "max_yaw": self.max_yaw, "min_sharpness": self.min_sharpness,
                "sure_confidence": self.sure_confidence, "second_opinion": self.second_opinion,
                "second_look": {"max_asks": self.max_asks, "ask_every": self.ask_every} if self.second_opinion
                else None}

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


class _CropOpinion:
    """A second opinion read on the crop around each box, turned so that the eyes are level: ``_finds`` says
    whether the detector finds a face in one crop of ``crop_size`` pixels."""
    crop_size = HOG_CROP

    def __call__(self, frames: list[np.ndarray], frame_of: np.ndarray, boxes: np.ndarray,
                 landmarks: np.ndarray | None = None) -> np.ndarray:
        """True per box where a face is found in the crop around it."""
        out = np.zeros(len(boxes), bool)
        rolls = roll(landmarks) if landmarks is not None else np.zeros(len(boxes))
        for row, (index, box) in enumerate(zip(frame_of, boxes)):
            out[row] = self._finds(crop_around(frames[int(index)], box, HOG_MARGIN, self.crop_size, rolls[row]))
        return out

    def _finds(self, crop: np.ndarray) -> bool:
        raise NotImplementedError


class HogOpinion(_CropOpinion):
    """dlib's HOG frontal face detector (``dlib.get_frontal_face_detector()``: the model is inside dlib): the
    second opinion on doubtful detections."""

    def __init__(self) -> None:
        import dlib

        self._detector = dlib.get_frontal_face_detector()

    def _finds(self, crop: np.ndarray) -> bool:
        return len(self._detector(crop, 0)) > 0


class CnnOpinion(_CropOpinion):
    """dlib's CNN (MMOD) face detector, of ``face-recognition-models``, on the same level crop as ``HogOpinion``:
    the second look at doubtful faces HOG did not find (faces looking down or turned)."""
    crop_size = CNN_CROP

    def __init__(self, model_path: str) -> None:
        import dlib

        self._detector = dlib.cnn_face_detection_model_v1(model_path)

    def _finds(self, crop: np.ndarray) -> bool:
        return len(self._detector(crop, 0)) > 0


class SecondLook:
    """Which doubtful faces of one analysis the CNN opinion reads: per tracklet, while it has no sure face, its
    first doubtful face from its ``first_ask``-th face on (counted from 0: a tracklet shorter than that is never
    asked about, as a person needs ``min_frames`` faces anyway, and most tracklets of hands and hair are 1-3
    faces long), then one at least ``ask_every`` of its faces later, at most ``max_asks`` in all (None: no cap).
    Feed the batches in order (``choose``, then ``record`` with the answers)."""

    def __init__(self, max_asks: int | None, ask_every: int, first_ask: int = 0, sure: set[int] | None = None) -> None:
        self.max_asks = max_asks
        self.ask_every = ask_every
        self.first_ask = first_ask
        self.asked = 0                              # faces read in this analysis
        self._faces: dict[int, int] = {}            # tracklet -> its faces so far
        self._next: dict[int, int] = {}             # tracklet -> the face count from which it may be asked again
        self._asks: dict[int, int] = {}             # tracklet -> faces asked about
        # Tracklets with a sure face; two looks given the same set skip what either made sure.
        self._sure: set[int] = sure if sure is not None else set()

    def choose(self, tracklets: np.ndarray, sure: np.ndarray) -> np.ndarray:
        """The rows (faces of this batch, in order) to ask about."""
        chosen = []
        for row, (tracklet, is_sure) in enumerate(zip(np.asarray(tracklets).tolist(), np.asarray(sure).tolist())):
            count = self._faces.get(tracklet, 0)
            self._faces[tracklet] = count + 1
            if is_sure:
                self._sure.add(tracklet)
                continue
            capped = self.max_asks is not None and self._asks.get(tracklet, 0) >= self.max_asks
            if (tracklet in self._sure or capped
                    or count < self._next.get(tracklet, self.first_ask)):
                continue
            chosen.append(row)
            self._asks[tracklet] = self._asks.get(tracklet, 0) + 1
            self._next[tracklet] = count + self.ask_every
        self.asked += len(chosen)
        return np.asarray(chosen, np.int64)

    def record(self, tracklets: np.ndarray, agrees: np.ndarray) -> None:
        """The CNN's answers for the chosen faces' tracklets: a face found makes its tracklet sure."""
        self._sure.update(int(t) for t, yes in zip(np.asarray(tracklets).tolist(), np.asarray(agrees).tolist())
                          if yes)


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
