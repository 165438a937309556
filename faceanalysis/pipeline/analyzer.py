"""``FaceAnalyzer``: owns every loaded model and turns a stream of frames into a ``SequenceResult``.

One instance per process. Models are keyed by task and each sits behind the
same two calls, ``prepare(device)`` once and ``run(faces)`` per batch; which
model answers a task is the ``Settings``' choice, resolved by ``registry``, so
adding a per-face model is one file plus one registry line. Every
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
from typing import Callable, NamedTuple

import numpy as np

from facecore.device import Device, select_device
from facecore.errors import no_face
from facecore.faces import Aligner, Detections, FaceBatch
from facecore.frames import Frame, decode_frame, list_frames
from facecore.memory import release_memory
from facecore.weights import load_manifest, resolve

from . import persons as person_rules
from .aggregate import AGGREGATORS
from .detector import FaceDetector
from .gate import BLANK, GEOMETRY, PASSED, CnnOpinion, FaceGate, HogOpinion, SecondLook
from .quality import measure
from .registry import SharedModels, build_person_head, build_task_models, face_embedder
from .result import FaceSummary, FaceTable, Person, Provenance, SequenceResult, SourceSummary, Unlisted
from .settings import Settings
from .sources import FolderSource, FrameSource
from .tracking import SIGNATURE_CROP, Tracker, TrackingRun

log = logging.getLogger(__name__)

# A copy of samples/seqA/frame_0001.jpg (public-domain photo, see samples/README.md).
WARMUP_FACE = Path(__file__).resolve().parents[2] / "weights" / "warmup_face.jpg"
STAGES = ("read", "detect", "gate", "align", "age", "gender", "expression", "aggregate")
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
    def __init__(self, settings: Settings | None = None, **overrides) -> None:
        """``FaceAnalyzer(Settings(...))``, or ``FaceAnalyzer(device="cpu", batch_size=64)`` for the defaults
        with some fields changed."""
        settings = settings or Settings()
        self.settings = settings.replace(**overrides) if overrides else settings
        manifest = load_manifest()
        self.weights = {key: resolve(key, manifest) for key in manifest}
        self.detector = FaceDetector(self.weights["detector_pnet"], self.weights["detector_rnet"],
                                     self.weights["detector_onet"], min_face_size=self.settings.min_face_size,
                                     min_confidence=self.settings.min_confidence,
                                     max_side=self.settings.detect_max_side,
                                     proposals=(self.weights["face_detector_blazeface"]
                                                if self.settings.blazeface_proposals else None))
        self.aligner = Aligner(self.weights["aligner"])
        shared = SharedModels()
        self.models = build_task_models(self.weights, self.settings, shared)
        # The tracker's identity step reads the dlib face embedding: one network with the heads that use it.
        self.embedder = face_embedder(self.weights, shared)
        # Persons answered from the faces the tracker embeds (None: from all their frames).
        self.person_head = build_person_head(self.weights, self.settings, shared)
        self.aggregator = AGGREGATORS[self.settings.aggregator]()
        s = self.settings
        self.tracker = Tracker(min_iou=s.tracker_min_iou, max_gap=s.tracker_max_gap,
                               cut_threshold=s.tracker_cut_threshold,
                               appearance_threshold=s.tracker_appearance_threshold,
                               identity_distance=s.tracker_identity_distance)
        self.gate = FaceGate() if s.face_gate else None
        self._second_opinion: HogOpinion | None = None
        self._second_look: CnnOpinion | None = None
        self.device: Device | None = None
        self.load_seconds = 0.0
        self.ready = False          # True once every model is loaded and warmed
        # One analysis at a time. dlib's DNN (the face embedding: the tracker's identity step, and the "heads" /
        # "ensemble" choices) keeps its activations inside the network object, so two calls at once would
        # overwrite each other's. TensorFlow
        # functions and Keras models, and onnxruntime sessions, may be called from several threads (each
        # analysis does: the TensorFlow pyramid and onnxruntime detection run in a worker thread while Keras
        # and onnxruntime run the per-face networks in this one). On two cores, a second analysis would
        # only compete with the first for them.
        self._lock = threading.Lock()

    @property
    def batch_size(self) -> int:
        return self.settings.batch_size

    @property
    def model_choice(self) -> dict:
        return self.settings.model_choice

    def prepare(self) -> "FaceAnalyzer":
        """Load every model on the chosen device and run each once, so the first request is not slower."""
        start = time.perf_counter()
        self.device = select_device(self.settings.device)
        parts = (self.detector, self.aligner, self.embedder, *self.models.values(), self.person_head)
        for part in parts:
            if part is not None:
                part.prepare(self.device)
        if self.gate is not None and self.gate.second_opinion:
            self._second_opinion = HogOpinion()
            self._second_look = CnnOpinion(str(self.weights["face_detector_cnn"].path))
        self._warm_up()
        self.load_seconds = time.perf_counter() - start
        self.ready = True
        log.info("models loaded and warmed in %.1f s on %s (age/gender: %s, expression: %s)", self.load_seconds,
                 self.device.kind, self.settings.age_gender, self.settings.expression)
        return self

    def model_info(self) -> dict:
        return {key: weight.describe() for key, weight in self.weights.items()}

    def analyse_folder(self, folder: Path, stride: int = 1) -> SequenceResult:
        return self.analyse_source(FolderSource(list_frames(Path(folder)), stride=stride))

    def analyse_source(self, source: FrameSource, progress: Progress | None = None) -> SequenceResult:
        """Analyse any ordered stream of frames; ``progress`` hears about every batch. The memory the
        analysis freed (frames, pyramids, activations) is handed back to the system before it returns."""
        with self._lock:
            try:
                return self._analyse(source, progress)
            finally:
                release_memory()

    def summarise(self, faces: FaceTable, chosen: np.ndarray, by_quality: bool = False) -> FaceSummary:
        """Combine the ``chosen`` rows of ``faces`` into one answer with this analyzer's aggregator, each face
        weighted by its detection confidence, and with ``by_quality`` also by its quality weight."""
        weights = faces.confidence[chosen] * (faces.weight[chosen] if by_quality else 1.0)
        combine = self.aggregator.combine
        age_distribution = combine(faces.age[chosen], weights)
        age_model = self.models["age"]
        return FaceSummary(
            expression=combine(faces.expression[chosen], weights),
            gender=combine(faces.gender[chosen], weights),
            age_distribution=age_distribution,
            age=float(age_model.expected_age(age_distribution)),
            age_interval=age_model.interval(age_distribution))

    def analyse_images(self, images: list[np.ndarray], faces_given: bool = False, as_persons: bool = False
                       ) -> FaceTable:
        """Per-face results for a batch of RGB images (no aggregation).

        With ``faces_given`` each image already is a face crop (as in FER2013
        or UTKFace): detection is skipped and the whole image is the face box.
        Without, MTCNN runs as in a sequence. ``frame`` in the table is the
        index into ``images``. With ``as_persons`` every face is a person seen
        once, so its age and gender are what a one-frame sequence of it answers
        (the person head's, where the settings have one): what ``evaluate.py``
        scores.
        """
        batch = [Frame(index, str(index), image) for index, image in enumerate(images)]
        given = Detections.whole_images(images) if faces_given else None
        with self._lock:
            columns = self._analyse_batch(batch, StageTimer(), given, whole_image_faces=faces_given,
                                          as_persons=as_persons).columns
        return FaceTable(**columns, primary=_primary_faces(columns["frame"], columns["boxes"]))

    def _analyse(self, source: FrameSource, progress: Progress | None) -> SequenceResult:
        """Batches flow through two stages: detection of batch k+1 overlaps the rest of batch k.

        Detection (onnxruntime, TensorFlow, numpy) runs in a worker thread while
        this thread aligns batch k and runs the per-face networks on it; all of
        them release the GIL, so the two stages share the cores. At most two
        batches are decoded at a time, plus the one the source reads ahead.
        Stage timings are each stage's own time, so with the overlap they add up
        to more than ``total``, which is the wall-clock time of the request.
        The source is closed however the analysis ends (zip file, video capture and decode threads).
        """
        timer = StageTimer()
        parts: list[_BatchFaces] = []
        tracking = self.tracker.start()
        if self._second_opinion is not None and self._second_look is not None:
            tracking.second_look = self._looks()
        chip_inputs: dict[int, np.ndarray] = {}      # face number -> the person head's inputs of a face kept as chip
        sizes: set[tuple[int, int]] = set()          # frame sizes read, for meta.detection
        started = time.perf_counter()
        with source.open(self.batch_size) as stream, ThreadPoolExecutor(1, thread_name_prefix="detect") as worker:
            if progress is not None:
                progress(0, stream.expected)
            pending = None                           # (batch, detection running in the worker)
            while True:
                with timer("read"):
                    batch = next(stream, None)
                if batch is not None:
                    sizes.update((frame.rgb.shape[1], frame.rgb.shape[0]) for frame in batch)
                    detection = worker.submit(self._detect, batch, timer)
                if pending is not None:
                    done, done_detection = pending
                    parts.append(self._analyse_batch(done, timer, done_detection.result(), tracking, chip_inputs))
                    if progress is not None:
                        progress(stream.tried - (len(batch) if batch is not None else 0), stream.expected)
                if batch is None:
                    break
                pending = (batch, detection)
            read = stream.summary()
        with timer("aggregate"):
            faces, summary, persons, without_face, unlisted, rejected = self._combine(read, parts, tracking,
                                                                                      chip_inputs)
        timings = {stage: round(timer.ms.get(stage, 0.0), 2) for stage in STAGES}
        timings["total"] = round((time.perf_counter() - started) * 1000, 2)
        return SequenceResult(source=read, faces=faces, summary=summary, persons=persons,
                              frames_without_face=without_face, provenance=self.provenance(sizes),
                              timings_ms=timings, unlisted=unlisted, faces_rejected=rejected)

    def provenance(self, sizes: set | None = None) -> Provenance:
        """How answers are made; ``sizes``: the (width, height) of the frames read, for the detection entry."""
        tracker = self.tracker.describe()
        if self.gate is not None:
            tracker["face_gate"] = self.gate.describe()
        tracker["min_frames"] = self.settings.min_frames
        return Provenance(settings=self.settings, models=self.model_info(),
                          device={"kind": self.device.kind, **self.device.describe()},
                          aggregator=self.aggregator.name, tracker=tracker,
                          detection=self.detector.describe(sizes if sizes is not None else set()))

    def _detect(self, batch, timer: StageTimer) -> Detections:
        with timer("detect"):
            return self.detector.run([frame.rgb for frame in batch])

    def _analyse_batch(self, batch, timer: StageTimer, detections: Detections | None = None,
                       tracking: TrackingRun | None = None, chip_inputs: dict | None = None,
                       whole_image_faces: bool = False, as_persons: bool = False) -> "_BatchFaces":
        """Every face of ``batch``, answered by the per-face models; with ``tracking``, the tracklet of each,
        and in ``chip_inputs`` the person head's inputs of every face the tracker kept as a chip."""
        frames = [frame.rgb for frame in batch]
        if detections is None:
            detections = self._detect(batch, timer)
        faces = FaceBatch(frames=frames, detections=detections, whole_image_faces=whole_image_faces)
        with timer("gate"):
            grey = faces.square_grey_crops(SIGNATURE_CROP, 0.0)
            quality = measure(detections.boxes, detections.landmarks, grey)
            sure = np.ones(len(detections), bool)
            if self.gate is not None and not whole_image_faces and len(detections):
                faces, quality, sure = self._gate(faces, quality, grey, tracking)
                detections = faces.detections
        with timer("align"):
            faces.shapes = self.aligner.run(frames, detections)
        outputs = {}
        for task, model in self.models.items():
            with timer(task):
                outputs[task] = model.run(faces)
        tracklets = np.zeros(len(detections), np.int64)
        if tracking is not None:
            with timer("aggregate"):
                tracked = tracking.add(faces, quality.weight)
                tracklets = tracked.tracklets
                if self.person_head is not None and chip_inputs is not None and len(tracked.chip_rows):
                    inputs = self.person_head.face_inputs(faces)
                    chip_inputs.update(zip(tracked.chip_faces.tolist(), inputs[tracked.chip_rows]))
            if tracking.second_look is not None and len(detections):
                with timer("gate"):
                    sure = self._look_again(faces, tracklets, sure, tracking.second_look)
        if as_persons and self.person_head is not None and len(detections):
            with timer("aggregate"):
                outputs["age"], outputs["gender"] = self.person_head.run_each(
                    self.person_head.face_inputs(faces), self.embedder.run(faces))
        columns = dict(
            frame=np.asarray([batch[i].index for i in detections.frame], dtype=np.int64),
            frame_name=[batch[i].name for i in detections.frame],
            boxes=detections.boxes, confidence=detections.confidence, landmarks=detections.landmarks,
            age=outputs["age"], age_years=self.models["age"].expected_age(outputs["age"]),
            gender=outputs["gender"], expression=outputs["expression"], quality=quality.table(), sure=sure)
        return _BatchFaces(columns, tracklets)

    def _gate(self, faces: FaceBatch, quality, grey: np.ndarray, tracking: TrackingRun | None):
        """The batch without the detections whose geometry or detail rules out a face (counted on ``tracking``,
        when given), their quality, and whether the gate is sure each kept one is a face (``persons.listed``
        lists a person only with a sure face)."""
        detections = faces.detections
        agrees = None
        doubtful = self.gate.doubtful(detections.confidence)
        # With tracking the second opinions are asked after it, per tracklet (``_look_again``): here only without.
        later = tracking is not None and tracking.second_look is not None
        if doubtful.any() and self._second_opinion is not None and not later:
            agrees = np.zeros(len(detections), bool)
            agrees[doubtful] = self._second_opinion(faces.frames, detections.frame[doubtful],
                                                    detections.boxes[doubtful], detections.landmarks[doubtful])
        reason = self.gate.check(detections.boxes, detections.confidence, detections.landmarks,
                                 quality.sharpness, agrees)
        dropped = (reason == GEOMETRY) | (reason == BLANK)
        keep = np.flatnonzero(~dropped)
        sure = reason[keep] == PASSED
        if tracking is not None:
            for why in reason[dropped]:
                tracking.rejected[why] = tracking.rejected.get(why, 0) + 1
        if len(keep) == len(detections):
            return faces, quality, sure
        kept = Detections(frame=detections.frame[keep], boxes=detections.boxes[keep],
                          confidence=detections.confidence[keep], landmarks=detections.landmarks[keep])
        gated = FaceBatch(frames=faces.frames, detections=kept, whole_image_faces=faces.whole_image_faces)
        gated.cached(("grey", SIGNATURE_CROP, 0.0), lambda: grey[keep])
        return gated, quality.take(keep), sure

    def _looks(self) -> tuple[SecondLook, SecondLook]:
        """One analysis's second opinions, asked per tracklet after tracking, and only about tracklets with no
        sure face yet: a person is listed on one sure face (``persons.MIN_SURE``), so once a tracklet has one,
        asking about its other faces changes no answer. HOG (a few ms a crop) reads every doubtful face of such a
        tracklet; the CNN (about 0.19 s) a few, from the tracklet's ``min_frames``-th face on, as a shorter
        tracklet cannot make a person by itself and most tracklets of hands and hair are 1-3 faces long."""
        sure: set[int] = set()
        return (SecondLook(max_asks=None, ask_every=1, sure=sure),
                SecondLook(self.gate.max_asks, self.gate.ask_every, first_ask=max(0, self.settings.min_frames - 1),
                           sure=sure))

    def _look_again(self, faces: FaceBatch, tracklets: np.ndarray, sure: np.ndarray,
                    looks: tuple[SecondLook, SecondLook]) -> np.ndarray:
        """``sure`` with the second opinions' answers for the doubtful faces the looks choose: HOG's, then the
        CNN's (faces looking down or turned, which HOG does not find)."""
        detections = faces.detections
        sure = sure.copy()
        for look, opinion in zip(looks, (self._second_opinion, self._second_look)):
            rows = look.choose(tracklets, sure)
            if not len(rows):
                continue
            agrees = opinion(faces.frames, detections.frame[rows], detections.boxes[rows], detections.landmarks[rows])
            look.record(tracklets[rows], agrees)
            sure[rows[agrees]] = True
        return sure

    def _combine(self, read: SourceSummary, parts: list["_BatchFaces"], tracking: TrackingRun,
                 chip_inputs: dict[int, np.ndarray]):
        """The face table of the listed persons, their answers, the legacy answer, frames without a face, the
        unlisted tracks and the face gate's rejections."""
        columns = _concat([part.columns for part in parts])
        if not parts or not len(columns["frame"]):
            skipped = read.skipped
            first = f"; first: {skipped[0].name}: {skipped[0].reason}" if skipped and not read.read else ""
            raise no_face(f"no face found in any of the {len(read.read)} frames read "
                          f"({len(skipped)} unreadable) in sequence {read.label!r}{first}")
        found = tracking.finish(self.embedder.embed_chips, every_chip=self.person_head is not None)
        tracked = np.asarray([found.of_tracklet[int(tracklet)]
                              for tracklet in np.concatenate([part.tracklets for part in parts])], np.int64)
        samples = {pid: (np.stack([chip_inputs[number] for number in numbers]), embeddings)
                   for pid, (numbers, embeddings) in found.chips.items()}
        faces, persons, unlisted, primary = self._persons(columns, tracked, read, samples, found.pictures)
        with_face = set(faces.frame_name)
        without_face = tuple(name for _, name in read.read if name not in with_face)
        # The legacy answer is about one person: the one seen in most frames, all of their faces, weighted by
        # detection confidence only (the legacy contract's answer does not change with the quality weights).
        legacy = self.summarise(faces, faces.primary)
        if primary in samples:
            legacy = self._person_answer(legacy, *samples[primary])
        return faces, legacy, persons, without_face, unlisted, dict(tracking.rejected)

    def _persons(self, columns: dict, tracked: np.ndarray, read: SourceSummary,
                 samples: dict[int, tuple[np.ndarray, np.ndarray]], pictures: dict[int, np.ndarray]
                 ) -> tuple[FaceTable, tuple[Person, ...], Unlisted, int]:
        """From the faces' columns and each face's tracked person: the face table of the listed persons (built
        here, once, with each face's listed person and primary flag), their answers (persons.py: evidence,
        confidence, quality; the person head's over ``samples``, person -> (inputs, embeddings)), the unlisted
        tracks, and the tracked id of the primary person."""
        listing = self._listing(columns, tracked, read)
        person = np.asarray([listing.renumber.get(int(pid), 0) for pid in tracked], np.int64)
        # Short tracks are counted, not answered: their faces are not in the table (nor in the timeline).
        rows = np.flatnonzero(person != 0)
        faces = FaceTable(frame_name=[columns["frame_name"][row] for row in rows],
                          **{key: value[rows] for key, value in columns.items() if key != "frame_name"},
                          person=person[rows], primary=person[rows] == listing.renumber[listing.primary])
        persons = []
        for pid in listing.kept:
            chosen = faces.person == listing.renumber[pid]
            positions = listing.seen[pid]
            spans = tuple((read.read[first][0], read.read[last][0]) for first, last in _runs(positions))
            summary = self.summarise(faces, chosen, by_quality=True)
            if pid in samples:
                summary = self._person_answer(summary, *samples[pid])
            persons.append(Person(id=listing.renumber[pid], primary=pid == listing.primary, summary=summary,
                                  frames_seen=len(positions), mean_confidence=float(faces.confidence[chosen].mean()),
                                  spans=spans, picture=pictures.get(pid),
                                  confidence=person_rules.confidence(faces.weight[chosen]),
                                  quality=person_rules.quality_summary(faces.quality[chosen]),
                                  gender_uncertain=person_rules.gender_uncertain(summary.gender)))
        return faces, tuple(persons), listing.unlisted, listing.primary

    def _listing(self, columns: dict, tracked: np.ndarray, read: SourceSummary) -> "_Listing":
        """Which tracked persons are listed (persons.py: enough frames, a sure face), numbered 1, 2, ... in order
        of first appearance; the primary among them; the positions each was seen at; the unlisted tracks."""
        frame, sure_faces = columns["frame"], columns["sure"]
        position = {index: number for number, (index, _) in enumerate(read.read)}
        ids = sorted(set(tracked.tolist()))
        seen = {pid: sorted({position[int(index)] for index in frame[tracked == pid]}) for pid in ids}
        required = person_rules.required_frames(self.settings.min_frames, len(read.read))
        sure = {pid: len({int(index) for index in frame[(tracked == pid) & sure_faces]}) for pid in ids}
        kept = person_rules.listed({pid: len(seen[pid]) for pid in ids}, sure, required)
        if not kept:
            raise no_face(f"no person in sequence {read.label!r}: {len(tracked)} detections in "
                          f"{len({int(index) for index in frame})} of the {len(read.read)} frames read, none a face "
                          f"the gate is sure of and no track in {required} frames")
        short = [pid for pid in ids if pid not in kept]
        # The primary person is the one seen in most frames; a tie goes to the one who appeared first.
        return _Listing(kept=tuple(kept), renumber={pid: number for number, pid in enumerate(kept, start=1)},
                        primary=min(kept, key=lambda pid: (-len(seen[pid]), pid)), seen=seen,
                        unlisted=Unlisted(tracks=len(short), frames=int(np.isin(tracked, short).sum())))

    def _person_answer(self, frames: FaceSummary, inputs: np.ndarray, embeddings: np.ndarray) -> FaceSummary:
        """The person head's age and gender over the person's embedded faces; expression stays the frames'."""
        age_distribution, gender = self.person_head.run(inputs, embeddings)
        return FaceSummary(expression=frames.expression, gender=gender,
                           age_distribution=age_distribution,
                           age=float(self.person_head.expected_age(age_distribution)),
                           age_interval=self.person_head.interval(age_distribution))

    def _warm_up(self) -> None:
        # A real face at the full batch size, through the whole per-batch path: P-Net
        # proposals reach R-Net and O-Net, every network sees a full batch of faces and
        # onnxruntime / Keras allocate for the shapes a request uses, so the first request
        # runs as fast as the second. A grey frame would warm P-Net only.
        face = decode_frame(WARMUP_FACE)
        batch = [Frame(index, f"warmup_{index}", face) for index in range(self.batch_size)]
        faces = self._analyse_batch(batch, StageTimer())
        if not len(faces.tracklets):
            log.warning("warm-up frame %s gave no face; the first request may be slower", WARMUP_FACE.name)
        self._analyse_batch(batch[:1], StageTimer())   # the last, partial batch of a sequence


class _BatchFaces(NamedTuple):
    """One batch's faces: every ``FaceTable`` column but who each face is (``person``, ``primary``: the whole
    sequence decides that), and the tracklet of each face (0 when not tracked)."""
    columns: dict
    tracklets: np.ndarray


class _Listing(NamedTuple):
    kept: tuple[int, ...]              # tracked person ids listed, in order of first appearance
    renumber: dict[int, int]           # tracked person id -> listed person id (1, 2, ...)
    primary: int                       # the tracked person id of the primary person
    seen: dict[int, list[int]]         # tracked person id -> positions (in the frames read) seen at
    unlisted: Unlisted


def _concat(columns: list[dict]) -> dict:
    """Batches' columns as one set of columns, in batch order."""
    if not columns:
        return {"frame": np.zeros(0, np.int64)}
    return {key: [name for part in columns for name in part[key]] if key == "frame_name"
            else np.concatenate([part[key] for part in columns]) for key in columns[0]}


def _runs(positions: list[int]) -> list[tuple[int, int]]:
    """Sorted positions as runs of consecutive ones: [0, 1, 2, 5, 6] -> [(0, 2), (5, 6)]."""
    runs = []
    for position in positions:
        if runs and position == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], position)
        else:
            runs.append((position, position))
    return runs


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
