"""MTCNN face detection over batches of frames, keeping boxes, confidences and 5 landmarks.

Uses the ``mtcnn`` package's networks and stages, with one change: its P-Net
stage builds the image pyramid without accounting for ``min_face_size``, so
with a larger minimum face the smallest level falls under P-Net's 12 px input,
TensorFlow raises, and the package reports "no faces" for the whole batch.
``GuardedPNet`` drops pyramid levels under 12 px instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from mtcnn import MTCNN
from mtcnn.stages import StageONet, StagePNet, StageRNet
from mtcnn.utils.bboxes import generate_bounding_box, resize_to_square, smart_nms_from_bboxes, upscale_bboxes
from mtcnn.utils.images import apply_scales

from .device import Device
from .weights import WeightFile

PNET_INPUT = 12   # P-Net's receptive field: a pyramid level smaller than this cannot be run


def pyramid_scales(width: int, height: int, min_face_size: int, scale_factor: float) -> np.ndarray:
    """Scales from the one that maps ``min_face_size`` to 12 px down to the last level still >= 12 px."""
    first = PNET_INPUT / min_face_size
    smallest_side = min(width, height)
    scales = []
    scale = first
    while smallest_side * scale >= PNET_INPUT:
        scales.append(scale)
        scale *= scale_factor
    return np.asarray(scales)


class GuardedPNet(StagePNet):
    def __call__(self, images_normalized, images_oshapes, min_face_size=20, min_size=12, scale_factor=0.709,
                 threshold_pnet=0.6, nms_pnet1=0.5, nms_pnet2=0.7, **kwargs):
        groups = [pyramid_scales(int(shape[1]), int(shape[0]), min_face_size, scale_factor) for shape in images_oshapes]
        if not len(groups[0]):
            return np.empty((0, 16))
        scaled, scales_index = apply_scales(images_normalized, groups)
        batch = images_normalized.shape[0]
        outputs = [self._model(level) for level in scaled]
        proposals = [generate_bounding_box(out[0], out[1], threshold_pnet) for out in outputs]
        upscaled = [upscale_bboxes(boxes, np.asarray([scale] * batch)) for boxes, scale in zip(proposals, scales_index)]
        per_scale = [smart_nms_from_bboxes(boxes, threshold=nms_pnet1, method="union", initial_sort=False)
                     for boxes in upscaled]
        merged = np.concatenate(per_scale, axis=0) if per_scale else np.empty((0, 6))
        merged = smart_nms_from_bboxes(merged, threshold=nms_pnet2, method="union", initial_sort=True)
        return resize_to_square(merged)


@dataclass
class Detections:
    """Every face found in a batch of frames, one row per face, in frame order."""
    frame: np.ndarray        # (n,) index of the frame within the batch
    boxes: np.ndarray        # (n, 4) x1, y1, x2, y2 in pixels
    confidence: np.ndarray   # (n,)
    landmarks: np.ndarray    # (n, 5, 2) left eye, right eye, nose, mouth left, mouth right

    def __len__(self) -> int:
        return len(self.frame)


class FaceDetector:
    name = "mtcnn"

    def __init__(self, pnet: WeightFile, rnet: WeightFile, onet: WeightFile,
                 min_face_size: int = 20, min_confidence: float = 0.9) -> None:
        self.files = (pnet, rnet, onet)
        self.min_face_size = min_face_size
        self.min_confidence = min_confidence
        self._mtcnn: MTCNN | None = None

    def prepare(self, device: Device) -> None:
        pnet, rnet, onet = (str(weight.path) for weight in self.files)
        stages = [GuardedPNet(weights=pnet), StageRNet(weights=rnet), StageONet(weights=onet)]
        self._mtcnn = MTCNN(stages=stages, device=device.tf_device)

    def run(self, frames: list[np.ndarray]) -> Detections:
        """Detect faces in frames of one size or of several (the package pads them to one batch)."""
        rows = self._mtcnn.detect_faces(list(frames), box_format="xyxy", output_type="numpy",
                                        min_face_size=self.min_face_size)
        rows = np.asarray(rows, dtype=np.float64).reshape(-1, 16)
        rows = rows[rows[:, 5] >= self.min_confidence]
        order = np.lexsort((-rows[:, 5], rows[:, 0]))   # frame order, most confident first
        rows = rows[order]
        return Detections(frame=rows[:, 0].astype(np.int64), boxes=rows[:, 1:5].copy(),
                          confidence=rows[:, 5].copy(), landmarks=rows[:, 6:16].reshape(-1, 5, 2).copy())
