"""``FaceAnalyzer``: owns every loaded model and turns a stream of frames into a ``SequenceResult``.

One instance per process. Models are keyed by task and each sits behind the
same two calls, ``prepare(device)`` once and ``run(faces)`` per batch, so
adding a per-face model is one file plus one line in ``TASK_MODELS``. Every
network sees all faces of a batch in one call; there is no per-face loop
around a network. A folder is one kind of frame source (``sources.py``); an
uploaded video, zip or set of images are others.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import numpy as np

from emotion import expression_model
from emotion.model import choice as expression_choice

from faceanalysis.pipeline.aggregate import AGGREGATORS, DEFAULT_AGGREGATOR
from faceanalysis.pipeline.detector import FaceDetector
from facecore.faces import Detections
from facecore.device import Device, select_device
from facecore.errors import no_face
from facecore.faces import Aligner, FaceBatch
from facecore.frames import Frame, decode_frame, list_frames
from age.heads import age_model, gender_model
from age.heads import choice as age_gender_choice
from faceanalysis.pipeline.result import FaceSummary, FaceTable, SequenceResult
from faceanalysis.pipeline.sources import FolderSource, FrameSource
from facecore.weights import load_manifest, resolve

log = logging.getLogger(__name__)

# task -> (model class, weights manifest key)
TASK_MODELS = {
    "age": (age_model, "age"),              # dlib-models network, tuned or embedding heads, FACE_AGE_GENDER (heads.py)
    "gender": (gender_model, "gender"),
    "expression": (expression_model, "expression"),   # mini-Xception, project VGG or both, FACE_EXPRESSION
}
# A copy of samples/seqA/frame_0001.jpg (public-domain photo, see samples/README.md).
WARMUP_FACE = Path(__file__).resolve().parents[2] / "weights" / "warmup_face.jpg"
STAGES = ("read", "detect", "align", "age", "gender", "expression", "aggregate")
# Called after every batch with (frames done, frames expected or None when the source cannot tell).
Progress = Callable[[int, "int | None"], None]


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
        # Read once here: the environment could change later, the loaded models do not.
        self.model_choice = {"age_gender": age_gender_choice(), "expression": expression_choice()}
        shared = {}         # networks that several tasks read (the "tuned" age and gender heads), loaded once
        self.models = {task: cls(self.weights[key], shared=shared) for task, (cls, key) in TASK_MODELS.items()}
        self.device: Device | None = None
        self.load_seconds = 0.0
        self.ready = False          # True once every model is loaded and warmed
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
        self.ready = True
        log.info("models loaded and warmed in %.1f s on %s (age/gender: %s, expression: %s)", self.load_seconds,
                 self.device.kind, self.model_choice["age_gender"], self.model_choice["expression"])
        return self

    def model_info(self) -> dict:
        return {key: weight.describe() for key, weight in self.weights.items()}

    def analyse_folder(self, folder: Path, stride: int = 1) -> SequenceResult:
        return self.analyse_source(FolderSource(list_frames(Path(folder)), stride=stride))

    def analyse_source(self, source: FrameSource, progress: Progress | None = None) -> SequenceResult:
        """Analyse any ordered stream of frames; ``progress`` hears about every batch."""
        with self._lock:
            return self._analyse(source, progress)

    def summarise(self, faces: FaceTable, chosen: np.ndarray) -> FaceSummary:
        """Combine the ``chosen`` rows of ``faces`` into one answer with this analyzer's aggregator."""
        weights = faces.confidence[chosen]
        combine = self.aggregator.combine
        age_distribution = combine(faces.age[chosen], weights)
        age_model = self.models["age"]
        return FaceSummary(
            expression=combine(faces.expression[chosen], weights),
            gender=combine(faces.gender[chosen], weights),
            age_distribution=age_distribution,
            age=float(age_model.expected_age(age_distribution)),
            age_interval=age_model.interval(age_distribution))

    def analyse_images(self, images: list[np.ndarray], faces_given: bool = False) -> FaceTable:
        """Per-face results for a batch of RGB images (no aggregation).

        With ``faces_given`` each image already is a face crop (as in FER2013
        or UTKFace): detection is skipped and the whole image is the face box.
        Without, MTCNN runs as in a sequence. ``frame`` in the table is the
        index into ``images``.
        """
        batch = [Frame(index, str(index), image) for index, image in enumerate(images)]
        given = Detections.whole_images(images) if faces_given else None
        with self._lock:
            return self._analyse_batch(batch, StageTimer(), given, whole_image_faces=faces_given)

    def _analyse(self, source: FrameSource, progress: Progress | None) -> SequenceResult:
        """Batches flow through two stages: detection of batch k+1 overlaps the rest of batch k.

        Detection (onnxruntime, TensorFlow, numpy) runs in a worker thread while
        this thread aligns batch k and runs the per-face networks on it; all of
        them release the GIL, so the two stages share the cores. At most two
        batches are decoded at a time, plus the one the source reads ahead.
        Stage timings are each stage's own time, so with the overlap they add up
        to more than ``total``, which is the wall-clock time of the request.
        """
        timer = StageTimer()
        tables, read = [], []
        skipped_before = len(source.skipped)     # entries a source refused up front are not frames tried
        started = time.perf_counter()
        batches = source.batches(self.batch_size)
        if progress is not None:
            progress(0, source.expected)
        pending = None                           # (batch, detection running in the worker)
        with ThreadPoolExecutor(1, thread_name_prefix="detect") as worker:
            while True:
                with timer("read"):
                    batch = next(batches, None)
                if batch is not None:
                    read.extend((frame.index, frame.name) for frame in batch)
                    detection = worker.submit(self._detect, batch, timer)
                if pending is not None:
                    done, done_detection = pending
                    tables.append(self._analyse_batch(done, timer, done_detection.result()))
                    if progress is not None:
                        frames_done = len(read) - (len(batch) if batch is not None else 0)
                        progress(frames_done + len(source.skipped) - skipped_before, source.expected)
                if batch is None:
                    break
                pending = (batch, detection)
        with timer("aggregate"):
            result = self._aggregate(source, tables, read)
        result.timings_ms = {stage: round(timer.ms.get(stage, 0.0), 2) for stage in STAGES}
        result.timings_ms["total"] = round((time.perf_counter() - started) * 1000, 2)
        return result

    def _detect(self, batch, timer: StageTimer) -> Detections:
        with timer("detect"):
            return self.detector.run([frame.rgb for frame in batch])

    def _analyse_batch(self, batch, timer: StageTimer, detections: Detections | None = None,
                       whole_image_faces: bool = False) -> FaceTable:
        frames = [frame.rgb for frame in batch]
        if detections is None:
            detections = self._detect(batch, timer)
        faces = FaceBatch(frames=frames, detections=detections, whole_image_faces=whole_image_faces)
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

    def _aggregate(self, source: FrameSource, tables, read: list[tuple[int, str]]) -> SequenceResult:
        faces = FaceTable.concat(tables) if tables else None
        with_face = set(faces.frame_name) if faces is not None else set()
        without_face = [name for _, name in read if name not in with_face]
        skipped = source.skipped
        if faces is None or not len(faces):
            first = f"; first: {skipped[0].name}: {skipped[0].reason}" if skipped and not read else ""
            raise no_face(f"no face found in any of the {len(read)} frames read "
                          f"({len(skipped)} unreadable) in sequence {source.label!r}{first}")
        summary = self.summarise(faces, faces.primary)
        return SequenceResult(
            sequence=source.label, frames_listed=source.listed if source.listed is not None else len(read),
            frames_read=len(read), skipped=[(item.name, item.reason) for item in skipped],
            ignored_files=source.ignored, frames_without_face=without_face, faces=faces,
            expression=summary.expression, gender=summary.gender, age_distribution=summary.age_distribution,
            age=summary.age, age_interval=summary.age_interval,
            aggregator=self.aggregator.name, device=self.device.kind,
            read_frames=read, truncated=source.truncated)

    def _warm_up(self) -> None:
        # A real face at the full batch size, through the whole per-batch path: P-Net
        # proposals reach R-Net and O-Net, every network sees a full batch of faces and
        # onnxruntime / Keras allocate for the shapes a request uses, so the first request
        # runs as fast as the second. A grey frame would warm P-Net only.
        face = decode_frame(WARMUP_FACE)
        batch = [Frame(index, f"warmup_{index}", face) for index in range(self.batch_size)]
        table = self._analyse_batch(batch, StageTimer())
        if not len(table):
            log.warning("warm-up frame %s gave no face; the first request may be slower", WARMUP_FACE.name)
        self._analyse_batch(batch[:1], StageTimer())   # the last, partial batch of a sequence


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
