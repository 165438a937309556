"""Link faces across frames into persons: greedy IoU matching from frame to frame, with a gap tolerance.

Frames are visited in order. Each open track remembers the box it was last
seen with. In every frame, all (track, face) pairs whose boxes overlap by at
least ``min_iou`` are taken best first, each track and each face at most
once; faces left over start new tracks. A track that has not been matched for
more than ``max_gap`` analysed frames is closed, so a face that reappears
later, or elsewhere, becomes a new person.

This is deliberately simple: there is no motion model and no appearance
(face-embedding) matching, so two people who cross paths can swap ids, and a
person who leaves the picture for long comes back under a new id. On the
single-person sequences and slow camera motion this service is built for,
the overlap of consecutive boxes is high (IoU > 0.5) and the tracks are stable.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_IOU = 0.3
MAX_GAP = 5


@dataclass
class Tracker:
    min_iou: float = MIN_IOU
    max_gap: int = MAX_GAP       # analysed frames a person may be missed (no face, or detection missed)

    def describe(self) -> dict:
        return {"name": "greedy_iou", "min_iou": self.min_iou, "max_gap": self.max_gap}

    def assign(self, position: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Person id (1, 2, ... in order of first appearance) for each face.

        ``position`` is each face's frame as its rank among the analysed frames
        (0, 1, 2, ... with no holes for stride), so that gaps count frames that
        were analysed and showed no matching face; ``boxes`` is (n, 4) x1, y1, x2, y2.
        """
        position = np.asarray(position, dtype=np.int64)
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        person = np.zeros(len(position), dtype=np.int64)
        last_box: dict[int, np.ndarray] = {}    # open tracks: id -> box when last seen
        last_seen: dict[int, int] = {}
        next_id = 1
        for frame in np.unique(position):
            for track in [track for track, seen in last_seen.items() if frame - seen - 1 > self.max_gap]:
                del last_box[track], last_seen[track]
            faces = np.flatnonzero(position == frame)
            tracks = list(last_box)
            taken_faces, taken_tracks = set(), set()
            if tracks:
                overlap = iou(np.stack([last_box[track] for track in tracks]), boxes[faces])
                # Best overlaps first; ties keep the older track and the earlier face (stable sort).
                for flat in np.argsort(-overlap, axis=None, kind="stable"):
                    row, col = divmod(int(flat), len(faces))
                    if overlap[row, col] < self.min_iou:
                        break
                    if row in taken_tracks or col in taken_faces:
                        continue
                    taken_tracks.add(row)
                    taken_faces.add(col)
                    person[faces[col]] = tracks[row]
            for col, face in enumerate(faces):
                if col not in taken_faces:
                    person[face] = next_id
                    next_id += 1
            for face in faces:
                last_box[int(person[face])] = boxes[face]
                last_seen[int(person[face])] = int(frame)
        return person


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box in ``a`` (m, 4) with every box in ``b`` (n, 4): (m, n)."""
    a = np.asarray(a, dtype=np.float64)[:, None, :]
    b = np.asarray(b, dtype=np.float64)[None, :, :]
    width = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    height = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = width * height
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    union = area_a + area_b - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
