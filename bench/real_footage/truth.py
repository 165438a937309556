"""The truth files, made by looking at the clips' sampled frames (``bench/real_footage/truth/``).

- ``<clip>.boxes.csv``: one row per labelled box on a sampled frame: ``frame, identity, x1, y1, x2, y2, kind,
  source``. ``kind`` is ``face`` (identity 1, 2, ... consistent over the clip, across cuts), ``not_face`` (identity
  0: wall, hair, hand, microphone ... that a detector took for a face), ``small`` (a face under ~20 px: not required
  to be found, never to be listed as a person) or ``unsure`` (excluded from scoring; identity given when it is
  probably that person, else 0). ``source`` is ``detector`` (a detector's box) or ``hand`` (a face the detectors
  missed, its box drawn by hand: approximate).
- ``frames.csv``: per clip, its frame size and the labelled frames (space-separated): a labelled frame with no row
  is a frame with no face.
- ``identities.csv``: per clip and identity: gender (male/female/unknown), age band (child under 13, teen, adult,
  unknown), the majority expression seen over the clip (or unknown), and a short description.
- ``<clip>.expressions.csv``: ``frame, identity, expression`` for faces whose expression is evident.
"""

from __future__ import annotations

import csv
from dataclasses import astuple, dataclass, fields
from pathlib import Path

TRUTH = Path(__file__).resolve().parent / "truth"
KINDS = ("face", "not_face", "small", "unsure")
SOURCES = ("detector", "hand")
GENDERS = ("male", "female", "unknown")
AGE_BANDS = ("child", "teen", "adult", "unknown")
EXPRESSIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


@dataclass(frozen=True)
class TruthBox:
    frame: int
    identity: int
    x1: float
    y1: float
    x2: float
    y2: float
    kind: str = "face"
    source: str = "detector"

    @property
    def box(self) -> tuple[float, float, float, float]:
        return (self.x1, self.y1, self.x2, self.y2)


@dataclass(frozen=True)
class Identity:
    clip: str
    identity: int
    gender: str
    age_band: str
    expression: str
    description: str


@dataclass(frozen=True)
class ClipTruth:
    name: str
    width: int
    height: int
    frames: tuple[int, ...]
    boxes: tuple[TruthBox, ...]
    identities: dict[int, Identity]
    expressions: dict[tuple[int, int], str]      # (frame, identity) -> expression


def write_boxes(path: Path, boxes: list[TruthBox]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([field.name for field in fields(TruthBox)])
        for box in boxes:
            row = list(astuple(box))
            row[2:6] = [f"{value:.1f}" for value in row[2:6]]
            writer.writerow(row)


def read_boxes(path: Path) -> list[TruthBox]:
    with open(path, newline="") as handle:
        return [TruthBox(int(row["frame"]), int(row["identity"]), float(row["x1"]), float(row["y1"]),
                         float(row["x2"]), float(row["y2"]), row["kind"], row["source"])
                for row in csv.DictReader(handle)]


def labelled_clips(folder: Path = TRUTH) -> list[str]:
    """The clips that have truth, in the order of ``frames.csv``."""
    if not (folder / "frames.csv").is_file():
        return []
    with open(folder / "frames.csv", newline="") as handle:
        return [row["clip"] for row in csv.DictReader(handle)]


def load(name: str, folder: Path = TRUTH) -> ClipTruth:
    with open(folder / "frames.csv", newline="") as handle:
        row = next(row for row in csv.DictReader(handle) if row["clip"] == name)
    identities = {}
    with open(folder / "identities.csv", newline="") as handle:
        for item in csv.DictReader(handle):
            if item["clip"] == name:
                identities[int(item["identity"])] = Identity(name, int(item["identity"]), item["gender"],
                                                             item["age_band"], item["expression"],
                                                             item["description"])
    expressions = {}
    path = folder / f"{name}.expressions.csv"
    if path.is_file():
        with open(path, newline="") as handle:
            expressions = {(int(r["frame"]), int(r["identity"])): r["expression"] for r in csv.DictReader(handle)}
    return ClipTruth(name, int(row["width"]), int(row["height"]), tuple(int(f) for f in row["frames"].split()),
                     tuple(read_boxes(folder / f"{name}.boxes.csv")), identities, expressions)
