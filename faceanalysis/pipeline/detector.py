"""MTCNN face detection over batches of frames, keeping boxes, confidences and 5 landmarks.

``FaceDetector`` (the default) runs mtcnn 1.0.0's three networks, with the
package's own weight files, on onnxruntime through ``faceanalysis.pipeline.mtcnn_fast``:
same maths, several times faster (see bench/benchmark.py). ``PackageFaceDetector``
is the previous implementation, the ``mtcnn`` package itself; it is kept as the
reference for tests and the benchmark.

``FaceDetector`` can detect at a working resolution (``max_side``): a frame whose long side is more than
``max_side`` pixels is scaled down (``cv2.INTER_AREA``) so that its long side is ``max_side``, MTCNN runs on
that, and boxes and landmarks are mapped back to the full frame, from which every model then crops. The
pyramid's first level, and so most of the detector's time, is proportional to the pixels it sees; the price is
that faces smaller than ``min_face_size`` at the working resolution, i.e. ``min_face_size * long side /
max_side`` pixels at full resolution, are not found (docs/performance.md counts them on real clips).

Both drop pyramid levels under P-Net's 12 px input. The package builds its
pyramid without accounting for ``min_face_size``, so with a larger minimum
face the smallest level falls under 12 px, TensorFlow raises, and
``mtcnn.MTCNN().detect_faces`` reports "no faces" for the whole batch (e.g.
``min_face_size=60`` on a 640x480 frame). ``GuardedPNet`` fixes that for the
package; ``mtcnn_fast.pyramid_scales`` does the same for the fast path.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

from faceanalysis.pipeline import mtcnn_fast
from faceanalysis.pipeline.blazeface import BlazeFace
from faceanalysis.pipeline.mtcnn_fast import PNET_INPUT, FastMTCNN, pyramid_scales
from facecore.device import Device
from facecore.faces import Detections
from facecore.weights import WeightFile

log = logging.getLogger(__name__)

__all__ = ["Detections", "FaceDetector", "PackageFaceDetector", "pyramid_scales", "PNET_INPUT"]


def _guarded_pnet_class():
    """The package's P-Net stage with the pyramid guard (built lazily: importing mtcnn imports TensorFlow)."""
    from mtcnn.stages import StagePNet
    from mtcnn.utils.bboxes import generate_bounding_box, resize_to_square, smart_nms_from_bboxes, upscale_bboxes
    from mtcnn.utils.images import apply_scales

    class GuardedPNet(StagePNet):
        def __call__(self, images_normalized, images_oshapes, min_face_size=20, min_size=12, scale_factor=0.709,
                     threshold_pnet=0.6, nms_pnet1=0.5, nms_pnet2=0.7, **kwargs):
            groups = [pyramid_scales(int(shape[1]), int(shape[0]), min_face_size, scale_factor)
                      for shape in images_oshapes]
            if not len(groups[0]):
                return np.empty((0, 16))
            scaled, scales_index = apply_scales(images_normalized, groups)
            batch = images_normalized.shape[0]
            outputs = [self._model(level) for level in scaled]
            proposals = [generate_bounding_box(out[0], out[1], threshold_pnet) for out in outputs]
            upscaled = [upscale_bboxes(boxes, np.asarray([scale] * batch))
                        for boxes, scale in zip(proposals, scales_index)]
            per_scale = [smart_nms_from_bboxes(boxes, threshold=nms_pnet1, method="union", initial_sort=False)
                         for boxes in upscaled]
            merged = np.concatenate(per_scale, axis=0) if per_scale else np.empty((0, 6))
            merged = smart_nms_from_bboxes(merged, threshold=nms_pnet2, method="union", initial_sort=True)
            return resize_to_square(merged)

    return GuardedPNet


def _rows_to_detections(rows: np.ndarray, min_confidence: float) -> Detections:
    """Package-layout rows (n, 16) to Detections: frame order, most confident first."""
    rows = np.asarray(rows, dtype=np.float64).reshape(-1, 16)
    rows = rows[rows[:, 5] >= min_confidence]
    order = np.lexsort((-rows[:, 5], rows[:, 0]))
    rows = rows[order]
    # The package stores the five x coordinates, then the five y coordinates.
    landmarks = np.stack([rows[:, 6:11], rows[:, 11:16]], axis=-1)
    return Detections(frame=rows[:, 0].astype(np.int64), boxes=rows[:, 1:5].copy(),
                      confidence=rows[:, 5].copy(), landmarks=landmarks)


def working_size(width: int, height: int, max_side: int) -> tuple[int, int] | None:
    """(width, height) to detect a frame at, or None when it is detected as it is (``max_side`` 0: always)."""
    long_side = max(width, height)
    if not max_side or long_side <= max_side:
        return None
    scale = max_side / long_side
    return max(1, round(width * scale)), max(1, round(height * scale))


def map_back(rows: np.ndarray, scale_x: float, scale_y: float, width: int, height: int) -> np.ndarray:
    """Package-layout rows found on a scaled frame, in the full frame's pixels (boxes clipped to it as the
    detector clips them). Box corners and landmarks are scaled as points of the frame's continuous plane."""
    rows = rows.copy()
    rows[:, [1, 3]] = np.clip(rows[:, [1, 3]] * scale_x, 0, width - 1)
    rows[:, [2, 4]] = np.clip(rows[:, [2, 4]] * scale_y, 0, height - 1)
    rows[:, 6:11] *= scale_x
    rows[:, 11:16] *= scale_y
    return rows


def stage_thresholds(min_confidence: float) -> tuple[float, float, float]:
    """MTCNN's P-Net, R-Net and O-Net thresholds for a final ``min_confidence``: the package's (0.6, 0.7, 0.8),
    with R-Net's and O-Net's lowered to ``min_confidence`` when it is below them, so that a face the caller
    would keep can get through the stages before it (O-Net's score is the detection's confidence). P-Net's
    stays: lowering it multiplies the proposals R-Net must read."""
    return (mtcnn_fast.THRESHOLD_PNET, min(mtcnn_fast.THRESHOLD_RNET, min_confidence),
            min(mtcnn_fast.THRESHOLD_ONET, min_confidence))


class FaceDetector:
    """MTCNN on onnxruntime (``mtcnn_fast``): the package's networks and weights, batched and compiled."""
    name = "mtcnn"

    def __init__(self, pnet: WeightFile, rnet: WeightFile, onet: WeightFile,
                 min_face_size: int = 20, min_confidence: float = 0.9, max_side: int = 0,
                 proposals: WeightFile | None = None) -> None:
        self.files = (pnet, rnet, onet)
        self.proposals = proposals       # BlazeFace's weights: its faces are proposed to O-Net (blazeface.py)
        self.min_face_size = min_face_size
        self.min_confidence = min_confidence
        self.max_side = max_side         # detect at a long side of at most this many pixels (0: full frames)
        self._mtcnn: FastMTCNN | None = None

    def describe(self, sizes: "set[tuple[int, int]] | None" = None) -> dict:
        """What detection used: the limit and, for each frame size seen, the size it was detected at."""
        out = {"name": self.name, "min_face_size": self.min_face_size, "min_confidence": self.min_confidence,
               "stage_thresholds": list(stage_thresholds(self.min_confidence)), "max_side": self.max_side,
               "proposals": "blazeface_full_range" if self.proposals is not None else None}
        if sizes is not None:
            out["sizes"] = [{"frame": [width, height],
                             "detected_at": list(working_size(width, height, self.max_side) or (width, height))}
                            for width, height in sorted(sizes)]
        return out

    def prepare(self, device: Device) -> None:
        # The weight files are the manifest-verified ones; load_weights only unpickles them (joblib + lz4).
        from mtcnn.utils.tensorflow import load_weights

        weights = [load_weights(str(weight.path)) for weight in self.files]
        proposer = BlazeFace(str(self.proposals.path)).propose if self.proposals is not None else None
        self._mtcnn = FastMTCNN(*weights, providers=device.ort_providers, tf_device=device.tf_device,
                                thresholds=stage_thresholds(self.min_confidence), proposer=proposer)
        log.info("MTCNN runs on onnxruntime %s", self._mtcnn.providers)

    def run(self, frames: list[np.ndarray]) -> Detections:
        """Detect faces in frames of one size or of several (each size is run as its own group)."""
        frames = list(frames)
        groups: dict[tuple, list[int]] = {}
        for index, frame in enumerate(frames):
            groups.setdefault(frame.shape, []).append(index)
        parts = []
        for shape, indices in groups.items():
            height, width = shape[:2]
            chosen = [frames[i] for i in indices]
            size = working_size(width, height, self.max_side)
            if size is not None:
                # The models crop from the full frames: only the detector sees the scaled copies.
                chosen = [cv2.resize(frame, size, interpolation=cv2.INTER_AREA) for frame in chosen]
            rows = self._mtcnn.detect(chosen, min_face_size=self.min_face_size)
            if size is not None:
                rows = map_back(rows, width / size[0], height / size[1], width, height)
            rows[:, 0] = np.asarray(indices)[rows[:, 0].astype(np.int64)]
            parts.append(rows)
        rows = np.concatenate(parts, axis=0) if parts else np.empty((0, 16))
        return _rows_to_detections(rows, self.min_confidence)


class PackageFaceDetector(FaceDetector):
    """The ``mtcnn`` package's own pipeline (eager Keras) with the pyramid guard: the reference."""
    name = "mtcnn-package"

    def prepare(self, device: Device) -> None:
        from mtcnn import MTCNN
        from mtcnn.stages import StageONet, StageRNet

        pnet, rnet, onet = (str(weight.path) for weight in self.files)
        stages = [_guarded_pnet_class()(weights=pnet), StageRNet(weights=rnet), StageONet(weights=onet)]
        self._mtcnn = MTCNN(stages=stages, device=device.tf_device)

    def run(self, frames: list[np.ndarray]) -> Detections:
        """Detect faces in frames of one size or of several (the package pads them to one batch)."""
        rows = self._mtcnn.detect_faces(list(frames), box_format="xyxy", output_type="numpy",
                                        min_face_size=self.min_face_size)
        return _rows_to_detections(rows, self.min_confidence)
