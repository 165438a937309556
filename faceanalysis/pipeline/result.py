"""What an analysis returns: one table of faces, the persons in it, the sequence answer, and how it was made.

The result carries everything the answer formats need (the writers in ``faceanalysis.writers`` only read it):
the faces with their person, every person's combined answer, the legacy answer, what the source read, skipped
and ignored, and the settings, models and device that produced it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from facecore.frames import SkippedFrame
from facecore.labels import dominant

from .settings import Settings

QUALITY_COLUMNS = ("size", "sharpness", "yaw", "pitch", "brightness", "weight")


@dataclass
class FaceTable:
    """Every face of the persons listed in the sequence, one row each (batch-first, Py-Feat style), built once
    the persons are known; for stills (``FaceAnalyzer.analyse_images``), every face detected."""
    frame: np.ndarray         # (n,) frame index in the source's order
    frame_name: list[str]
    boxes: np.ndarray         # (n, 4) x1, y1, x2, y2
    confidence: np.ndarray    # (n,)
    landmarks: np.ndarray     # (n, 5, 2) MTCNN landmarks
    primary: np.ndarray       # (n,) bool: the face is the primary person's (stills: the largest face of its image)
    age: np.ndarray           # (n, 101) age distribution over the lifespan bins (age.distribution)
    age_years: np.ndarray     # (n,) expected age
    gender: np.ndarray        # (n, 2) male, female
    expression: np.ndarray    # (n, 7) in EXPRESSIONS order
    person: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))   # (n,) person id, 0 = not tracked
    # (n, 6) per-face quality (quality.py): QUALITY_COLUMNS; a table made without it has NaN and weight 1
    quality: np.ndarray = field(default_factory=lambda: np.zeros((0, 6)))
    # (n,) bool: the face gate is sure it is a face (confidence, or the second opinion); True where not gated
    sure: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))

    def __post_init__(self) -> None:
        if len(self.person) != len(self.frame):
            self.person = np.zeros(len(self.frame), np.int64)
        if len(self.quality) != len(self.frame):
            self.quality = np.full((len(self.frame), len(QUALITY_COLUMNS)), np.nan)
            self.quality[:, QUALITY_COLUMNS.index("weight")] = 1.0
        if len(self.sure) != len(self.frame):
            self.sure = np.ones(len(self.frame), bool)

    @property
    def weight(self) -> np.ndarray:
        """(n,) quality weight of every face (quality.weight), 1 where not measured."""
        return self.quality[:, QUALITY_COLUMNS.index("weight")]

    def __len__(self) -> int:
        return len(self.frame)


@dataclass(frozen=True)
class FaceSummary:
    """Several faces combined into one answer: one person's (the legacy answer: the primary person's)."""
    expression: np.ndarray               # (7,)
    gender: np.ndarray                   # (2,) male, female
    age_distribution: np.ndarray         # (101,) over the lifespan bins
    age: float                           # expected age of the combined distribution
    age_interval: tuple[float, float]    # central 80%

    @property
    def dominant_expression(self) -> str:
        return dominant(self.expression)


@dataclass(frozen=True)
class Person:
    """One identity (tracking.py): their faces combined with the analyzer's aggregator."""
    id: int                    # 1, 2, ... in order of first appearance
    primary: bool              # seen in most frames (a tie goes to the one who appeared first)
    summary: FaceSummary
    frames_seen: int
    mean_confidence: float
    spans: tuple[tuple[int, int], ...] = ()     # (first, last) frame index of each run of analysed frames seen
    picture: np.ndarray | None = None           # the most confident face, 64x64 RGB
    confidence: float = 1.0                     # how far the answer can be trusted (analyzer.person_confidence)
    quality: dict = field(default_factory=dict)     # summary of the faces' quality (analyzer.quality_summary)
    gender_uncertain: bool = False              # the more likely gender is below GENDER_SURE


@dataclass(frozen=True)
class Unlisted:
    """Short tracks: persons with fewer usable face frames than ``min_frames``, not listed."""
    tracks: int = 0
    frames: int = 0                             # face frames they hold together


@dataclass(frozen=True)
class SourceSummary:
    """What a frame source read, skipped and ignored (``FrameSource.open(...).summary()``)."""
    label: str                                  # names the input in messages: folder or file name
    listed: int                                 # frames found, before stride and max_frames
    read: tuple[tuple[int, str], ...]           # (index, name) of every decoded frame, in order
    skipped: tuple[SkippedFrame, ...]           # unreadable frames, and refused archive entries
    ignored: tuple[str, ...]                    # entries that are not frames at all
    truncated: bool                             # max_frames stopped the analysis before the end of the source


@dataclass(frozen=True)
class Provenance:
    """How the answer was made: settings, model files, device, and the rules that combined the faces."""
    settings: Settings
    models: dict               # manifest key -> model, package==version, file, sha256, license
    device: dict               # {"kind": "CPU" | "GPU", "tensorflow": ..., "onnxruntime": [...]}
    aggregator: str
    tracker: dict
    # The detector, its working resolution (max_side, 0: full frames) and the size each frame size was detected at.
    detection: dict = field(default_factory=dict)


@dataclass(frozen=True)
class SequenceResult:
    source: SourceSummary
    faces: FaceTable
    summary: FaceSummary                 # the legacy answer: the primary person's (seen in most frames) faces
    persons: tuple[Person, ...]
    frames_without_face: tuple[str, ...]
    provenance: Provenance
    timings_ms: dict = field(default_factory=dict)
    unlisted: Unlisted = Unlisted()
    faces_rejected: dict = field(default_factory=dict)     # the face gate's reason -> detections rejected

    @property
    def frames_read(self) -> int:
        return len(self.source.read)
