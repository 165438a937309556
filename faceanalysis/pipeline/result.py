"""What an analysis returns: one table of faces plus the sequence-level answer."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field

import numpy as np

from emotion import EXPRESSIONS
from gender.network import LABELS as GENDERS


@dataclass
class FaceTable:
    """Every face detected in the sequence, one row each (batch-first, Py-Feat style)."""
    frame: np.ndarray         # (n,) frame index in the folder's natural order
    frame_name: list[str]
    boxes: np.ndarray         # (n, 4) x1, y1, x2, y2
    confidence: np.ndarray    # (n,)
    landmarks: np.ndarray     # (n, 5, 2) MTCNN landmarks
    primary: np.ndarray       # (n,) bool: the face analysed for the sequence answer in its frame
    age: np.ndarray           # (n, 81) age-bin distribution
    age_years: np.ndarray     # (n,) expected age
    gender: np.ndarray        # (n, 2) male, female
    expression: np.ndarray    # (n, 7) in EXPRESSIONS order

    def __len__(self) -> int:
        return len(self.frame)

    @classmethod
    def concat(cls, parts: list["FaceTable"]) -> "FaceTable":
        names = [name for part in parts for name in part.frame_name]
        arrays = {key: np.concatenate([getattr(part, key) for part in parts])
                  for key in cls.__dataclass_fields__ if key != "frame_name"}
        return cls(frame_name=names, **arrays)

    def rows(self) -> list[dict]:
        """One plain dict per face, ready for csv, JSON or a DataFrame."""
        out = []
        for i in range(len(self)):
            row = {"frame": int(self.frame[i]), "frame_name": self.frame_name[i], "primary": bool(self.primary[i]),
                   "x1": float(self.boxes[i, 0]), "y1": float(self.boxes[i, 1]),
                   "x2": float(self.boxes[i, 2]), "y2": float(self.boxes[i, 3]),
                   "confidence": float(self.confidence[i]), "age": float(self.age_years[i])}
            row.update({label: float(p) for label, p in zip(GENDERS, self.gender[i])})
            row.update({label: float(p) for label, p in zip(EXPRESSIONS, self.expression[i])})
            out.append(row)
        return out

    def save_csv(self, path) -> None:
        rows = self.rows()
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["frame"])
            writer.writeheader()
            writer.writerows(rows)


@dataclass
class FaceSummary:
    """Several faces (one person, or the primary face of every frame) combined into one answer."""
    expression: np.ndarray               # (7,)
    gender: np.ndarray                   # (2,) male, female
    age_distribution: np.ndarray         # (81,)
    age: float                           # expected age of the combined distribution
    age_interval: tuple[float, float]    # central 80%

    @property
    def dominant_expression(self) -> str:
        return EXPRESSIONS[int(np.argmax(self.expression))]


@dataclass
class SequenceResult:
    sequence: str
    frames_listed: int                   # frames in the source (image files in the folder)
    frames_read: int                     # decoded successfully
    skipped: list                        # [(name, reason)] unreadable frames
    ignored_files: list[str]             # not images
    frames_without_face: list[str]
    faces: FaceTable
    expression: np.ndarray               # (7,) sequence-level probabilities
    gender: np.ndarray                   # (2,) male, female
    age_distribution: np.ndarray         # (81,)
    age: float                           # expected age of the sequence-level distribution
    age_interval: tuple[float, float]    # central 80%
    aggregator: str
    device: str
    timings_ms: dict = field(default_factory=dict)
    read_frames: list = field(default_factory=list)   # [(index, name)] of every decoded frame, in order
    truncated: bool = False              # max_frames stopped the analysis before the end of the source

    @property
    def dominant_expression(self) -> str:
        return EXPRESSIONS[int(np.argmax(self.expression))]
