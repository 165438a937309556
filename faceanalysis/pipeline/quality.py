"""Per-face quality: size, sharpness, pose and brightness, and the weight a face gets in its person's answer.

Everything here is plain numpy on what the detector already gives (box, 5 landmarks) and on the 48 px grey crop
the tracker already cuts for every face, so it costs next to nothing per face.

- **size**: the shorter side of the box, pixels.
- **sharpness**: variance of the Laplacian of the 48 px grey crop. The crop has one size whatever the face's,
  so the figure compares faces of any size: a blurred or blown-up face has little detail left at 48 px.
- **pose**: from the 5 landmarks, after turning the eye line level (roll). ``yaw`` is the nose's sideways
  offset from the eyes' midpoint over half the eye distance (0 frontal, +-1 with the nose over one eye, beyond
  1 a profile); ``pitch`` is the nose's height between the eye line and the mouth line (about 0.5 facing the
  camera, smaller looking up, larger looking down). Both are shown also as rough angles (``degrees``):
  the arcsine of the yaw ratio, and of the pitch offset over 0.5, which read as degrees only near frontal.
- **brightness**: mean of the grey crop, 0..1.

``weight`` turns them into one number in [``FLOOR``, 1]: the product of four ramps, each 1 on the good side
of its ``good`` end and falling linearly to ``FLOOR`` at its ``bad`` end. A person's age, gender and expression
are averages over their faces with this weight times the detection confidence (``aggregate``), so a small,
blurred, turned or dark face counts a tenth of a good one but a person seen only badly still gets an answer.
The ramps' ends are in ``QualityRules`` (docs/real-footage.md, "How persons are formed", says where each comes
from).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

FLOOR = 0.1          # the weight of the worst face: a tenth of a good one, never nothing


@dataclass(frozen=True)
class QualityRules:
    # (bad, good) ends of each ramp
    size: tuple[float, float] = (20.0, 60.0)            # pixels, shorter box side
    sharpness: tuple[float, float] = (25.0, 150.0)      # Laplacian variance of the 48 px grey crop
    yaw: tuple[float, float] = (1.0, 0.35)              # |yaw ratio|
    dark: tuple[float, float] = (0.08, 0.25)            # brightness
    bright: tuple[float, float] = (0.95, 0.85)

    def describe(self) -> dict:
        return {"size": list(self.size), "sharpness": list(self.sharpness), "yaw": list(self.yaw),
                "dark": list(self.dark), "bright": list(self.bright), "floor": FLOOR}


@dataclass(frozen=True)
class FaceQuality:
    """One row per face."""
    size: np.ndarray          # (n,) pixels
    sharpness: np.ndarray     # (n,) Laplacian variance of the 48 px grey crop
    yaw: np.ndarray           # (n,) ratio, 0 frontal
    pitch: np.ndarray         # (n,) ratio, about 0.5 facing the camera
    brightness: np.ndarray    # (n,) 0..1
    weight: np.ndarray        # (n,) FLOOR..1

    def __len__(self) -> int:
        return len(self.size)

    @classmethod
    def empty(cls) -> "FaceQuality":
        return cls(*(np.zeros(0) for _ in range(6)))

    @classmethod
    def concat(cls, parts: list["FaceQuality"]) -> "FaceQuality":
        return cls(*(np.concatenate([getattr(part, name) for part in parts]) if parts else np.zeros(0)
                     for name in cls.__dataclass_fields__))

    def take(self, rows) -> "FaceQuality":
        return FaceQuality(*(getattr(self, name)[rows] for name in self.__dataclass_fields__))

    def table(self) -> np.ndarray:
        return table(self)


def ramp(value: np.ndarray, bad: float, good: float) -> np.ndarray:
    """FLOOR at or beyond ``bad``, 1 at or beyond ``good``, linear between (either end may be the larger)."""
    share = np.clip((np.asarray(value, np.float64) - bad) / (good - bad), 0.0, 1.0)
    return FLOOR + (1 - FLOOR) * share


def pose(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(yaw ratio, pitch ratio, eye distance, eye-to-mouth height) per face from (n, 5, 2) landmarks (eyes, nose,
    mouth corners), measured with the eye line turned level. NaN landmarks (given crops) give NaN."""
    points = np.asarray(landmarks, np.float64).reshape(-1, 5, 2)
    left, right, nose = points[:, 0], points[:, 1], points[:, 2]
    mouth = (points[:, 3] + points[:, 4]) / 2
    centre = (left + right) / 2
    across = right - left
    distance = np.linalg.norm(across, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        unit = across / distance[:, None]
        down = np.stack([-unit[:, 1], unit[:, 0]], axis=1)       # the eye line turned 90 degrees, image y down
        nose_x = ((nose - centre) * unit).sum(1)
        nose_y = ((nose - centre) * down).sum(1)
        height = ((mouth - centre) * down).sum(1)
        yaw = nose_x / (distance / 2)
        pitch = nose_y / height
    return yaw, pitch, distance, height


def degrees(yaw: np.ndarray, pitch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rough angles for people: arcsine of the yaw ratio and of the pitch offset from 0.5 over 0.5."""
    yaw_degrees = np.degrees(np.arcsin(np.clip(yaw, -1, 1)))
    pitch_degrees = np.degrees(np.arcsin(np.clip((np.asarray(pitch) - 0.5) / 0.5, -1, 1)))
    return yaw_degrees, pitch_degrees


def sharpness(grey_crops: np.ndarray) -> np.ndarray:
    """Variance of the Laplacian of each (48, 48) uint8 crop."""
    crops = np.asarray(grey_crops)
    if not len(crops):
        return np.zeros(0)
    return np.asarray([cv2.Laplacian(crop, cv2.CV_64F).var() for crop in crops])


def measure(boxes: np.ndarray, landmarks: np.ndarray, grey_crops: np.ndarray,
            rules: QualityRules = QualityRules()) -> FaceQuality:
    """The quality of every face from its box, landmarks and 48 px grey crop."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    size = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    yaw, pitch, _, _ = pose(landmarks)
    sharp = sharpness(grey_crops)
    brightness = (np.asarray(grey_crops, np.float64).reshape(len(boxes), -1).mean(1) / 255
                  if len(boxes) else np.zeros(0))
    return FaceQuality(size=size, sharpness=sharp, yaw=yaw, pitch=pitch, brightness=brightness,
                       weight=weight(size, sharp, yaw, brightness, rules))


def weight(size, sharp, yaw, brightness, rules: QualityRules = QualityRules()) -> np.ndarray:
    """The product of the four ramps, FLOOR..1 (a face without landmarks is not marked down for pose)."""
    yaw = np.nan_to_num(np.abs(np.asarray(yaw, np.float64)), nan=0.0)
    product = (ramp(size, *rules.size) * ramp(sharp, *rules.sharpness) * ramp(yaw, *rules.yaw)
               * np.minimum(ramp(brightness, *rules.dark), ramp(brightness, *rules.bright)))
    return np.maximum(product, FLOOR)


def table(quality: FaceQuality) -> np.ndarray:
    """(n, 6) columns in ``result.QUALITY_COLUMNS`` order: size, sharpness, yaw, pitch, brightness, weight."""
    return np.stack([quality.size, quality.sharpness, quality.yaw, quality.pitch, quality.brightness,
                     quality.weight], axis=1).reshape(-1, 6)
