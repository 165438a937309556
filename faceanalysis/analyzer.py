"""``FaceAnalyzer``: owns every loaded model and turns a folder of frames into a ``SequenceResult``.

One instance per process. Models are keyed by task and each sits behind the
same two calls, ``prepare(device)`` once and ``run(faces)`` per batch, so
adding a per-face model is one file plus one line in ``TASK_MODELS``. Every
network sees all faces of a batch in one call; there is no per-face loop
around a network.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from age import AgeModel
from emotion import ExpressionModel
from gender import GenderModel

from .aggregate import AGGREGATORS, DEFAULT_AGGREGATOR
from .detector import Detections, FaceDetector
from .device import Device, select_device
from .errors import no_face
from .faces import Aligner, FaceBatch
from .frames import SkippedFrame, iter_frame_batches, list_frames
from .result import FaceTable, SequenceResult
from .weights import load_manifest, resolve

log = logging.getLogger(__name__)

# task -> (model class, weights manifest key)
TASK_MODELS = {
    "age": (AgeModel, "age"),
    "gender": (GenderModel, "gender"),
    "expression": (ExpressionModel, "expression"),
}
STAGES = ("read", "detect", "align", "age", "gender", "expression", "aggregate")


class StageTimer:
    def __init__(self) -> None:
        self.ms = defaultdict(float)

    @contextmanager
    def __call__(self, stage: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.ms[stage] += (time.perf_counter() - start) * 1000


class FaceAnalyzer:
    def __init__(self, device: str = "auto", batch_size: int = 16, min_face_size: int = 20,
                 aggregator: str = DEFAULT_AGGREGATOR) -> None:
        self.batch_size = batch_size
        self.aggregator = AGGREGATORS[aggregator]()
        self._device_preference = device
        manifest = load_manifest()
        self.weights = {key: resolve(key, manifest) for key in manifest}
        self.detector = FaceDetector(self.weights["detector_pnet"], self.weights["detector_rnet"],
                                     self.weights["detector_onet"], min_face_size=min_face_size)
        self.aligner = Aligner(self.weights["aligner"])
        self.models = {task: cls(self.weights[key]) for task, (cls, key) in TASK_MODELS.items()}
        self.device: Device | None = None
        self.load_seconds = 0.0
        # TensorFlow and dlib objects are not documented as thread-safe: one analysis at a time.
        self._lock = threading.Lock()

    def prepare(self) -> "FaceAnalyzer":
        """Load every model on the chosen device and run each once, so the first request is not slower."""
        start = time.perf_counter()
        self.device = select_device(self._device_preference)
        for part in (self.detector, self.aligner, *self.models.values()):
            part.prepare(self.device)
        self._warm_up()
        self.load_seconds = time.perf_counter() - start
        log.info("models loaded and warmed in %.1f s on %s", self.load_seconds, self.device.kind)
        return self

    def model_info(self) -> dict:
        return {key: weight.describe() for key, weight in self.weights.items()}

    def analyse_folder(self, folder: Path, stride: int = 1) -> SequenceResult:
        listing = list_frames(Path(folder))
        with self._lock:
            return self._analyse(listing, stride)

    def analyse_images(self, images: list[np.ndarray], boxes: np.ndarray | None = None) -> FaceTable:
        """Per-face results for a batch of RGB images (no aggregation).

        With ``boxes`` (one x1, y1, x2, y2 per image) detection is skipped and
        each box is taken as that image's face, e.g. for datasets of face crops.
        Without, MTCNN runs as in a sequence. ``frame`` in the table is the
        index into ``images``.
        """
        from .frames import Frame
        batch = [Frame(index, str(index), image) for index, image in enumerate(images)]
        given = None
        if boxes is not None:
            boxes = np.asarray(boxes, dtype=np.float64).reshape(len(images), 4)
            given = Detections(frame=np.arange(len(images)), boxes=boxes, confidence=np.ones(len(images)),
                               landmarks=np.full((len(images), 5, 2), np.nan))
        with self._lock:
            return self._analyse_batch(batch, StageTimer(), given)

    def _analyse(self, listing, stride: int) -> SequenceResult:
        timer = StageTimer()
        skipped: list[SkippedFrame] = []
        tables, names_read = [], []
        batches = iter_frame_batches(listing, self.batch_size, skipped, stride=stride)
        while True:
            with timer("read"):
                batch = next(batches, None)
            if batch is None:
                break
            names_read.extend(frame.name for frame in batch)
            tables.append(self._analyse_batch(batch, timer))
        with timer("aggregate"):
            result = self._aggregate(listing, tables, names_read, skipped)
        result.timings_ms = {stage: round(timer.ms.get(stage, 0.0), 2) for stage in STAGES}
        result.timings_ms["total"] = round(sum(timer.ms.values()), 2)
        return result

    def _analyse_batch(self, batch, timer: StageTimer, detections: Detections | None = None) -> FaceTable:
        frames = [frame.rgb for frame in batch]
        if detections is None:
            with timer("detect"):
                detections = self.detector.run(frames)
        faces = FaceBatch(frames=frames, detections=detections)
        with timer("align"):
            faces.shapes = self.aligner.run(frames, detections)
        outputs = {}
        for task, model in self.models.items():
            with timer(task):
                outputs[task] = model.run(faces)
        return FaceTable(
            frame=np.asarray([batch[i].index for i in detections.frame], dtype=np.int64),
            frame_name=[batch[i].name for i in detections.frame],
            boxes=detections.boxes, confidence=detections.confidence, landmarks=detections.landmarks,
            primary=_primary_faces(detections.frame, detections.boxes),
            age=outputs["age"], age_years=self.models["age"].expected_age(outputs["age"]),
            gender=outputs["gender"], expression=outputs["expression"])

    def _aggregate(self, listing, tables, names_read, skipped) -> SequenceResult:
        faces = FaceTable.concat(tables) if tables else None
        with_face = set(faces.frame_name) if faces is not None else set()
        without_face = [name for name in names_read if name not in with_face]
        if faces is None or not len(faces):
            raise no_face(f"no face found in any of the {len(names_read)} frames read "
                          f"({len(skipped)} unreadable) in sequence {listing.folder.name!r}")
        chosen = faces.primary
        weights = faces.confidence[chosen]
        combine = self.aggregator.combine
        age_distribution = combine(faces.age[chosen], weights)
        age_model = self.models["age"]
        return SequenceResult(
            sequence=listing.folder.name, frames_listed=len(listing.images), frames_read=len(names_read),
            skipped=[(item.name, item.reason) for item in skipped], ignored_files=listing.ignored,
            frames_without_face=without_face, faces=faces,
            expression=combine(faces.expression[chosen], weights),
            gender=combine(faces.gender[chosen], weights),
            age_distribution=age_distribution,
            age=float(age_model.expected_age(age_distribution)),
            age_interval=age_model.interval(age_distribution),
            aggregator=self.aggregator.name, device=self.device.kind)

    def _warm_up(self) -> None:
        # A real face is not needed to trace every graph: a grey frame exercises the
        # detector, and one synthetic face box exercises the aligner and all networks.
        frame = np.full((480, 640, 3), 128, np.uint8)
        self.detector.run([frame])
        detections = Detections(frame=np.zeros(1, np.int64), boxes=np.array([[270.0, 190, 370, 310]]),
                                confidence=np.ones(1), landmarks=np.zeros((1, 5, 2)))
        faces = FaceBatch(frames=[frame], detections=detections)
        faces.shapes = self.aligner.run([frame], detections)
        for model in self.models.values():
            model.run(faces)


def _primary_faces(frame: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """In each frame the largest face is the one person the legacy answer is about."""
    primary = np.zeros(len(frame), dtype=bool)
    if not len(frame):
        return primary
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    order = np.lexsort((-area, frame))          # by frame, largest first
    first = np.ones(len(order), dtype=bool)
    first[1:] = frame[order][1:] != frame[order][:-1]
    primary[order[first]] = True
    return primary
