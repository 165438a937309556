"""The faces of one batch of frames, and the crops each network needs from them.

Age and gender were trained on dlib-aligned chips: dlib's 5-point shape
predictor is run on the *whole frame* inside the detector's box, then
``get_face_chip_details`` / ``extract_image_chip`` cut a rotated, scaled chip
with 20% padding. Doing this on a tight crop instead changes the landmarks
and so every prediction. The expression network was trained on FER2013
crops, which are squared, unrotated face boxes in grey; we cut those from the
same frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import dlib
import numpy as np

from facecore.weights import WeightFile

DLIB_CHIP_PADDING = 0.2


@dataclass
class Detections:
    """Every face found in a batch of frames, one row per face, in frame order."""
    frame: np.ndarray        # (n,) index of the frame within the batch
    boxes: np.ndarray        # (n, 4) x1, y1, x2, y2 in pixels
    confidence: np.ndarray   # (n,)
    landmarks: np.ndarray    # (n, 5, 2) left eye, right eye, nose, mouth left, mouth right

    def __len__(self) -> int:
        return len(self.frame)

    @classmethod
    def whole_images(cls, images: list[np.ndarray]) -> "Detections":
        """One face per image whose box is the whole image (face crops: FER2013, UTKFace), no landmarks."""
        n = len(images)
        boxes = np.asarray([[0, 0, image.shape[1], image.shape[0]] for image in images], dtype=np.float64)
        return cls(frame=np.arange(n), boxes=boxes.reshape(-1, 4), confidence=np.ones(n),
                   landmarks=np.full((n, 5, 2), np.nan))


class Aligner:
    """dlib 5-point landmarks for every detected face (stateless once loaded)."""
    name = "dlib-5-point"

    def __init__(self, predictor: WeightFile) -> None:
        self.file = predictor
        self._predictor = None

    def prepare(self, device) -> None:   # dlib-bin runs on the CPU only
        self._predictor = dlib.shape_predictor(str(self.file.path))

    def run(self, frames: list[np.ndarray], detections: Detections) -> list:
        shapes = []
        for frame_index, box in zip(detections.frame, detections.boxes):
            x1, y1, x2, y2 = (int(round(value)) for value in box)
            shapes.append(self._predictor(frames[frame_index], dlib.rectangle(x1, y1, x2, y2)))
        return shapes


@dataclass
class FaceBatch:
    frames: list[np.ndarray]              # RGB frames of the batch
    detections: Detections
    shapes: list = field(default_factory=list)   # dlib 5-point shapes, one per face
    whole_image_faces: bool = False              # each frame already is a face crop (datasets)
    _per_face: dict = field(default_factory=dict)   # what cached() keeps: chips, network outputs, embeddings

    def __len__(self) -> int:
        return len(self.detections)

    def aligned_chips(self, size: int, padding: float = DLIB_CHIP_PADDING) -> np.ndarray:
        """(n, size, size, 3) uint8 RGB chips, dlib-aligned, cached per size and padding."""
        def extract() -> np.ndarray:
            chips = [dlib.extract_image_chip(self.frames[frame_index], dlib.get_face_chip_details(shape, size, padding))
                     for frame_index, shape in zip(self.detections.frame, self.shapes)]
            return np.stack(chips).astype(np.uint8) if chips else np.zeros((0, size, size, 3), np.uint8)
        return self.cached(("chip", size, padding), extract)

    def cached(self, key, compute):
        """``compute()`` once per batch under ``key``: lets several models share one per-face result
        (an aligned chip, or the face embedding that both the age and the gender head read)."""
        if key not in self._per_face:
            self._per_face[key] = compute()
        return self._per_face[key]

    def aligned_chip(self, row: int, size: int, padding: float) -> np.ndarray:
        """One face's dlib-aligned RGB chip (for the few faces the tracker embeds)."""
        details = dlib.get_face_chip_details(self.shapes[row], size, padding)
        return np.asarray(dlib.extract_image_chip(self.frames[self.detections.frame[row]], details), np.uint8)

    def square_rgb_crop(self, row: int, size: int) -> np.ndarray:
        """One face's squared box as a (size, size, 3) RGB picture."""
        return _square_crop(self.frames[self.detections.frame[row]], self.detections.boxes[row], size, 0.0)

    def square_grey_crops(self, size: int, margin: float) -> np.ndarray:
        """(n, size, size) uint8 grey crops of the squared box grown by ``margin`` per side."""
        def crop_all() -> np.ndarray:
            crops = [cv2.cvtColor(_square_crop(self.frames[frame_index], box, size, margin), cv2.COLOR_RGB2GRAY)
                     for frame_index, box in zip(self.detections.frame, self.detections.boxes)]
            return np.stack(crops) if crops else np.zeros((0, size, size), np.uint8)
        return self.cached(("grey", size, margin), crop_all)


def _square_crop(frame: np.ndarray, box, size: int, margin: float) -> np.ndarray:
    """The squared box grown by ``margin`` per side, scaled to (size, size); edges replicated past the frame."""
    x1, y1, x2, y2 = box
    side = max(x2 - x1, y2 - y1) * (1 + 2 * margin)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    scale = size / side
    # One affine warp crops, scales and pads (edge replicate) in a single pass.
    matrix = np.array([[scale, 0, size / 2 - cx * scale], [0, scale, size / 2 - cy * scale]])
    return cv2.warpAffine(frame, matrix, (size, size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)
