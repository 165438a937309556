"""Who is who: faces linked into tracklets by geometry, tracklets merged into persons by identity.

Two steps, so that the expensive part (the face embedding, ~75 ms per face on a CPU core) runs only where it
can change the answer:

1. **Tracklets, online, batch by batch** (``TrackingRun.add``). In each analysed frame, every open tracklet
   predicts its box (its last box moved by its last velocity) and faces are matched to predictions best
   overlap first (IoU >= ``min_iou``). A tracklet is cut, so that no tracklet ever holds two people, when:
   - a **shot cut** is seen: the 16x12 colour thumbnail of the frame differs from the previous analysed frame's
     by more than ``cut_threshold`` (mean absolute difference, 0..1): at a cut, geometry says nothing;
   - the face's **appearance jumps**: the normalised 16x16 grey face crop correlates with the tracklet's last
     one below ``appearance_threshold`` (an interview cut at the same framing, with the same background);
   - the match is **ambiguous**: a face overlaps two tracklets' predictions, or a prediction two faces (people
     crossing); those tracklets end and the faces start new ones;
   - the tracklet was missed for more than ``max_gap`` analysed frames.
   Each tracklet keeps up to ``samples`` aligned face chips (at its birth, then every ``sample_every`` analysed
   frames) from faces at least ``min_embed_side`` pixels wide: dlib's embedding is unreliable below that.
   ``add`` returns what it decided (``Tracked``): each face's tracklet, and which faces it kept as chips.
2. **Persons, at the end** (``TrackingRun.finish``). With one tracklet there is nothing to decide and nothing
   is embedded. With more than one tracklet the kept chips are embedded in one batched call and tracklets are
   merged by agglomerative clustering, average linkage over their chips' embeddings, while the linkage
   distance is at most ``identity_distance`` and the two never appear in the same frame (one person is in one
   place at a time). A tracklet without a chip (only faces under ``min_embed_side``) stays a person of its own.
   With ``finish(embed, every_chip=True)`` (for the person head, ``age.person``) the chips are embedded even
   with one tracklet, and each person's chips are handed back by face number, with their embeddings.

Thresholds come from the composed real-face videos of ``training/tracking_data.py`` (README, "Persons").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import cv2
import numpy as np

from facecore.embedding import CHIP_PADDING, CHIP_SIZE

THUMBNAIL = (16, 12)        # frame thumbnail for shot cuts (width, height)
SIGNATURE = 16              # face crop side for the appearance check
SIGNATURE_CROP = 48         # the grey crop it is taken from (the expression networks' 48 px crop, cached)
FACE_THUMBNAIL = 64         # the person's picture in the answer


@dataclass(frozen=True)
class Tracker:
    min_iou: float = 0.3
    max_gap: int = 5                     # analysed frames a tracklet may be missed
    cut_threshold: float = 0.15
    appearance_threshold: float = 0.55
    identity_distance: float = 0.5
    samples: int = 3                     # chips kept per tracklet for its embedding
    sample_every: int = 15               # analysed frames between two chips of a tracklet
    min_embed_side: int = 40             # pixels
    # Hand-over within a shot (``handovers``): a tracklet that starts at most ``handover_gap`` analysed frames
    # after another ended, with no cut between, its first box's centre within ``handover_distance`` box sides
    # of the other's last box and its side within ``handover_size`` times the other's, continues it unless
    # their faces clearly differ: both have embeddings, on average farther apart than ``handover_differ``, and
    # no pair of them within ``handover_alike``.
    handover_gap: int = 45
    handover_distance: float = 1.0
    handover_size: float = 1.6
    handover_differ: float = 0.65
    handover_alike: float = 0.6

    def describe(self) -> dict:
        return {"name": "tracklets_identity", "min_iou": self.min_iou, "max_gap": self.max_gap,
                "cut_threshold": self.cut_threshold, "appearance_threshold": self.appearance_threshold,
                "identity_distance": self.identity_distance, "min_embed_side": self.min_embed_side,
                "handover_gap": self.handover_gap, "handover_distance": self.handover_distance,
                "handover_size": self.handover_size, "handover_differ": self.handover_differ,
                "handover_alike": self.handover_alike}

    def start(self) -> "TrackingRun":
        return TrackingRun(self)


@dataclass
class Tracklet:
    id: int
    box: np.ndarray                       # last box
    position: int                         # last analysed frame seen
    signature: np.ndarray
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4))     # box change per analysed frame
    positions: list[int] = field(default_factory=list)
    chips: list[np.ndarray] = field(default_factory=list)
    chip_faces: list[int] = field(default_factory=list)           # the face number of each chip (``Tracked``)
    chip_quality: list[float] = field(default_factory=list)       # each chip's face quality (quality.weight)
    last_sample: int = -10 ** 9
    first_box: np.ndarray | None = None   # box at birth
    shot: int = 0                         # shot cuts seen before its birth
    best_confidence: float = -1.0
    picture: np.ndarray | None = None     # the most confident face, FACE_THUMBNAIL square, RGB

    def predicted(self, position: int) -> np.ndarray:
        return self.box + self.velocity * (position - self.position)


@dataclass(frozen=True)
class Tracked:
    """What ``add`` decides for one batch. A face's number is its place among all the faces given to ``add``
    in this run (0, 1, ...: its row in the run's face table)."""
    tracklets: np.ndarray                 # (n,) the tracklet id of each face of the batch
    chip_rows: np.ndarray                 # (k,) the batch's faces kept as a chip (a tracklet's gallery), in order
    chip_faces: np.ndarray                # (k,) their face numbers


@dataclass(frozen=True)
class Persons:
    """What ``finish`` decides: the person of every tracklet, and each person's picture."""
    of_tracklet: dict[int, int]           # tracklet id -> person id (1, 2, ... in order of first appearance)
    pictures: dict[int, np.ndarray]       # person id -> RGB face picture
    tracklets: int
    embedded: int                          # chips embedded (0 with only one tracklet, unless every chip was asked)
    # person id -> (face numbers (k,), embeddings (k, 128)) of their chips; only with ``finish(every_chip=True)``
    chips: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)


class TrackingRun:
    """The tracking state of one analysis: feed batches in frame order with ``add``, then ``finish`` once."""

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker
        self.tracklets: list[Tracklet] = []
        self._open: dict[int, Tracklet] = {}
        self._previous_thumbnail: np.ndarray | None = None
        self._position = 0                 # analysed frames so far: gaps count frames that were analysed
        self.cuts: list[int] = []          # positions where a shot cut was seen
        self._quality: np.ndarray | None = None    # the current batch's face quality (``add``)
        self._faces = 0                    # faces given to ``add`` so far: the number of the batch's first face
        self._kept: list[int] = []         # rows of the current batch kept as chips (``add``)
        self.rejected: dict[str, int] = {}          # the face gate's reason -> detections it rejected
        self.second_look = None            # the face gate's second look of this analysis (gate.SecondLook), if any

    def add(self, faces, quality: np.ndarray | None = None) -> Tracked:
        """The tracklet of each face of the next batch of analysed frames (a ``FaceBatch`` with its shapes), and
        the faces kept as chips. ``quality`` (one weight per face, ``quality.weight``): the gallery keeps each
        tracklet's best faces; without it every face counts as 1 and the first ones are kept."""
        self._quality = quality
        self._kept = []
        detections = faces.detections
        ids = np.zeros(len(detections), np.int64)
        grey = faces.square_grey_crops(SIGNATURE_CROP, 0.0) if len(detections) else None
        for index in range(len(faces.frames)):
            position = self._position
            self._position += 1
            self._frame(position, faces.frames[index])
            rows = np.flatnonzero(detections.frame == index)
            if len(rows):
                ids[rows] = self._match(position, rows, faces, grey)
        kept = np.asarray(self._kept, np.int64)
        first, self._faces = self._faces, self._faces + len(detections)
        return Tracked(tracklets=ids, chip_rows=kept, chip_faces=kept + first)

    def _frame(self, position: int, rgb: np.ndarray) -> None:
        thumbnail = cv2.resize(rgb, THUMBNAIL, interpolation=cv2.INTER_AREA).astype(np.float32) / 255
        previous, self._previous_thumbnail = self._previous_thumbnail, thumbnail
        if previous is not None and float(np.abs(thumbnail - previous).mean()) > self.tracker.cut_threshold:
            self.cuts.append(position)
            self._open.clear()
        for tracklet_id in [key for key, tracklet in self._open.items()
                            if position - tracklet.position - 1 > self.tracker.max_gap]:
            del self._open[tracklet_id]

    def _match(self, position: int, rows: np.ndarray, faces, grey: np.ndarray) -> list[int]:
        boxes = faces.detections.boxes[rows]
        signatures = [signature(grey[row]) for row in rows]
        open_tracklets = list(self._open.values())
        chosen: dict[int, Tracklet] = {}
        if open_tracklets:
            overlap = iou(np.stack([tracklet.predicted(position) for tracklet in open_tracklets]), boxes)
            candidate = overlap >= self.tracker.min_iou
            ambiguous_faces = candidate.sum(axis=0) > 1
            ambiguous_tracklets = candidate.sum(axis=1) > 1
            for number, tracklet in enumerate(open_tracklets):
                if ambiguous_tracklets[number] or (candidate[number] & ambiguous_faces).any():
                    del self._open[tracklet.id]          # crossing: identity decides at the end
                    candidate[number] = False
            candidate[:, ambiguous_faces] = False
            scores = np.where(candidate, overlap, -1.0)
            # Best overlaps first; ties keep the older tracklet and the earlier face (stable sort).
            for flat in np.argsort(-scores, axis=None, kind="stable"):
                number, face = divmod(int(flat), len(rows))
                if scores[number, face] < 0:
                    break
                if not candidate[number, face]:
                    continue
                tracklet = open_tracklets[number]
                if float(signatures[face] @ tracklet.signature) < self.tracker.appearance_threshold:
                    del self._open[tracklet.id]          # someone else at the same place
                    candidate[number] = False
                    continue
                chosen[face] = tracklet
                candidate[number] = False
                candidate[:, face] = False
        out = []
        for face, row in enumerate(rows):
            tracklet = chosen.get(face)
            if tracklet is None:
                tracklet = Tracklet(id=len(self.tracklets) + 1, box=boxes[face], position=position,
                                    signature=signatures[face], first_box=boxes[face], shot=len(self.cuts))
                self.tracklets.append(tracklet)
                self._open[tracklet.id] = tracklet
            else:
                tracklet.velocity = (boxes[face] - tracklet.box) / max(position - tracklet.position, 1)
                tracklet.box, tracklet.position, tracklet.signature = boxes[face], position, signatures[face]
            tracklet.positions.append(position)
            self._keep(tracklet, position, int(row), faces)
            out.append(tracklet.id)
        return out

    def _keep(self, tracklet: Tracklet, position: int, row: int, faces) -> None:
        """Keep the most confident face as the picture, and the tracklet's best faces as its gallery: a chip
        when one is due (``sample_every`` analysed frames after the last), in a free place or instead of the
        gallery's worst chip when this face's quality is higher."""
        x1, y1, x2, y2 = faces.detections.boxes[row]
        confidence = float(faces.detections.confidence[row])
        if confidence > tracklet.best_confidence:
            tracklet.best_confidence = confidence
            tracklet.picture = faces.square_rgb_crop(row, FACE_THUMBNAIL)
        big_enough = min(x2 - x1, y2 - y1) >= self.tracker.min_embed_side
        if not big_enough or position - tracklet.last_sample < self.tracker.sample_every:
            return
        quality = float(self._quality[row]) if self._quality is not None else 1.0
        if len(tracklet.chips) < self.tracker.samples:
            place = len(tracklet.chips)
            tracklet.chips.append(None)
            tracklet.chip_faces.append(-1)
            tracklet.chip_quality.append(quality)
        else:
            place = int(np.argmin(tracklet.chip_quality))
            if quality <= tracklet.chip_quality[place]:
                return
            tracklet.chip_quality[place] = quality
        tracklet.chips[place] = faces.aligned_chip(row, CHIP_SIZE, CHIP_PADDING)
        tracklet.chip_faces[place] = self._faces + row
        self._kept.append(row)
        tracklet.last_sample = position

    def finish(self, embed: Callable[[np.ndarray], np.ndarray], every_chip: bool = False) -> Persons:
        """Merge tracklets into persons; ``embed`` maps (n, 150, 150, 3) chips to (n, 128) embeddings. With
        ``every_chip`` the chips are embedded even when there is nothing to decide, and handed back per person."""
        tracklets = self.tracklets
        embedded = 0
        owners = [number for number, tracklet in enumerate(tracklets) for _ in tracklet.chips]
        every_chip = every_chip and bool(owners)
        if len(tracklets) > 1 or every_chip:
            chips = [chip for tracklet in tracklets for chip in tracklet.chips]
            embeddings = embed(np.stack(chips)) if chips else np.zeros((0, 128), np.float32)
            embedded = len(chips)
        if len(tracklets) > 1:
            chip_sets = [embeddings[[i for i, owner in enumerate(owners) if owner == number]]
                         for number in range(len(tracklets))]
            chain = handovers([Span(tracklet.positions[0], tracklet.positions[-1], tracklet.first_box, tracklet.box)
                               for tracklet in tracklets], chip_sets, self.cuts, self.tracker)
            units = sorted(set(chain.tolist()))
            unit_groups = merge_tracklets(
                [np.concatenate([chip_sets[n] for n in range(len(tracklets)) if chain[n] == unit])
                 for unit in units],
                [set().union(*(tracklet.positions for n, tracklet in enumerate(tracklets) if chain[n] == unit))
                 for unit in units],
                self.tracker.identity_distance)
            groups = np.asarray([units[int(unit_groups[units.index(int(chain[n]))])]
                                 for n in range(len(tracklets))], np.int64)
        else:
            groups = np.zeros(len(tracklets), np.int64)
        # Persons are numbered by first appearance; tracklets are already in that order.
        numbering: dict[int, int] = {}
        of_tracklet, pictures, best = {}, {}, {}
        for tracklet, group in zip(tracklets, groups):
            person = numbering.setdefault(int(group), len(numbering) + 1)
            of_tracklet[tracklet.id] = person
            if tracklet.picture is not None and tracklet.best_confidence > best.get(person, -1):
                best[person], pictures[person] = tracklet.best_confidence, tracklet.picture
        chips = {}
        if every_chip:
            numbers = np.asarray([number for tracklet in tracklets for number in tracklet.chip_faces], np.int64)
            person_of_chip = np.asarray([of_tracklet[tracklets[owner].id] for owner in owners])
            for person in sorted(set(person_of_chip.tolist())):
                mine = person_of_chip == person
                chips[person] = (numbers[mine], embeddings[mine])
        return Persons(of_tracklet=of_tracklet, pictures=pictures, tracklets=len(tracklets), embedded=embedded,
                       chips=chips)


@dataclass(frozen=True)
class Span:
    """Where and when a tracklet was: first and last analysed frame, first and last box."""
    first: int
    last: int
    first_box: np.ndarray
    last_box: np.ndarray


def handovers(spans: list[Span], embeddings: list[np.ndarray], cuts: list[int], tracker: Tracker) -> np.ndarray:
    """Chain label per tracklet (the label of its chain's first tracklet): tracklet B continues tracklet A when
    B starts after A ended, at most ``handover_gap`` analysed frames later, with no shot cut between, where A
    was (centres at most ``handover_distance`` times the larger box side apart, sides within ``handover_size``
    times each other), unless their faces clearly differ (``_differ``: on average farther apart than
    ``handover_differ`` and no pair within ``handover_alike``).
    A tracklet continues at most one and is continued by at most one: among several, the nearest in time,
    then in place (then the earlier tracklet)."""
    count = len(spans)
    label = np.arange(count)
    successor = np.full(count, -1)
    cuts = np.asarray(sorted(cuts), np.int64)
    lasts = np.asarray([span.last for span in spans], np.int64)
    for b in sorted(range(count), key=lambda n: (spans[n].first, n)):
        later = spans[b]
        best, best_key = -1, None
        # Only tracklets that ended in the gap before this one started (a long video has many tracklets).
        for a in np.flatnonzero((lasts < later.first) & (lasts >= later.first - tracker.handover_gap)).tolist():
            earlier = spans[a]
            gap = later.first - earlier.last
            if a == b or successor[a] >= 0:
                continue
            if ((cuts > earlier.last) & (cuts <= later.first)).any():
                continue
            side_a = _side(earlier.last_box)
            side_b = _side(later.first_box)
            if max(side_a, side_b) > tracker.handover_size * max(min(side_a, side_b), 1e-9):
                continue
            distance = float(np.linalg.norm(_centre(earlier.last_box) - _centre(later.first_box)))
            if distance > tracker.handover_distance * max(side_a, side_b):
                continue
            if _differ(embeddings[a], embeddings[b], tracker):
                continue
            key = (gap, distance, a)
            if best_key is None or key < best_key:
                best, best_key = a, key
        if best >= 0:
            successor[best] = b
            label[b] = label[best]
    return label


def _differ(a: np.ndarray, b: np.ndarray, tracker: Tracker) -> bool:
    """Whether two tracklets' faces clearly differ: both have embeddings, their average distance is above
    ``handover_differ`` and even their closest pair is farther apart than ``handover_alike``. One person's
    chips spread widely when the head turns or blurs (on ``office_three`` a man's own chips are up to 0.72
    apart, and his tracklets on either side of a one-frame break average 0.68), but some view of him stays
    close to some view of the other (closest pairs 0.48-0.55 there); two people's closest pair on the composed
    videos is 0.65."""
    if not (len(a) and len(b)):
        return False
    distances = _distances(a, b)
    return float(distances.mean()) > tracker.handover_differ and float(distances.min()) > tracker.handover_alike


def _side(box) -> float:
    x1, y1, x2, y2 = (float(value) for value in box)
    return max(x2 - x1, y2 - y1)


def _centre(box) -> np.ndarray:
    x1, y1, x2, y2 = (float(value) for value in box)
    return np.array([(x1 + x2) / 2, (y1 + y2) / 2])


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) Euclidean distances between two sets of embeddings."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.linalg.norm(a[:, None, :] - b[None, :, :], axis=2)



def merge_tracklets(embeddings: list[np.ndarray], positions: list[set[int]], threshold: float) -> np.ndarray:
    """Group label per tracklet: agglomerative, average linkage over the tracklets' embeddings, merging the
    closest pair of groups while their linkage is at most ``threshold`` and they share no frame. A tracklet
    without embeddings is never merged."""
    count = len(embeddings)
    label = np.arange(count)
    with_samples = [number for number in range(count) if len(embeddings[number])]
    if len(with_samples) < 2:
        return label
    # Sums and counts of pairwise distances between groups: average linkage = sum / count, updated per merge.
    vectors = np.concatenate([embeddings[number] for number in with_samples]).astype(np.float64)
    owner = np.concatenate([[index] * len(embeddings[number]) for index, number in enumerate(with_samples)])
    pairwise = pairwise_distances(vectors)
    size = len(with_samples)
    one_hot = np.zeros((len(vectors), size))
    one_hot[np.arange(len(vectors)), owner] = 1
    sums = one_hot.T @ pairwise @ one_hot
    counts = np.outer(one_hot.sum(0), one_hot.sum(0))
    frames = [set(positions[number]) for number in with_samples]
    alive = np.ones(size, bool)
    blocked = np.array([[bool(frames[i] & frames[j]) or i == j for j in range(size)] for i in range(size)])
    while True:
        linkage = np.where(blocked | ~alive[:, None] | ~alive[None, :], np.inf, sums / counts)
        flat = int(np.argmin(linkage))
        i, j = divmod(flat, size)
        if not np.isfinite(linkage[i, j]) or linkage[i, j] > threshold:
            break
        keep, gone = min(i, j), max(i, j)
        sums[keep] += sums[gone]
        sums[:, keep] += sums[:, gone]
        counts[keep] += counts[gone]
        counts[:, keep] += counts[:, gone]
        blocked[keep] |= blocked[gone]
        blocked[:, keep] |= blocked[:, gone]
        blocked[keep, keep] = True
        alive[gone] = False
        label[[number for number in range(count) if label[number] == with_samples[gone]]] = with_samples[keep]
    return label


# The largest (rows, n, d) float64 difference block ``pairwise_distances`` makes at once. Unchunked, a long
# video's chips (1,500 of them: 500 tracklets) would need 1,500 x 1,500 x 128 x 8 bytes = 2.3 GB at once.
PAIRWISE_BLOCK_BYTES = 64 * 2 ** 20


def pairwise_rows(count: int, dims: int, block_bytes: int = PAIRWISE_BLOCK_BYTES) -> int:
    """Rows of the (count, count) distance matrix computed per block: as many as keep a (rows, count, dims)
    float64 block within ``block_bytes``, at least one."""
    return max(1, block_bytes // max(count * dims * 8, 1))


def pairwise_distances(vectors: np.ndarray, block_bytes: int = PAIRWISE_BLOCK_BYTES) -> np.ndarray:
    """(n, n) Euclidean distances between the rows of ``vectors`` (n, d), computed a block of rows at a time:
    every entry is the same number as one ``norm(v[:, None] - v[None], axis=2)`` call gives, with memory
    bounded by ``block_bytes`` instead of n * n * d floats."""
    vectors = np.asarray(vectors, np.float64)
    count = len(vectors)
    out = np.empty((count, count))
    step = pairwise_rows(count, vectors.shape[1], block_bytes)
    for start in range(0, count, step):
        out[start:start + step] = _distances(vectors[start:start + step], vectors)
    return out


def signature(grey: np.ndarray) -> np.ndarray:
    """A face crop as a unit vector of its 16x16 grey thumbnail minus its mean (correlation by dot product)."""
    small = cv2.resize(grey, (SIGNATURE, SIGNATURE), interpolation=cv2.INTER_AREA).astype(np.float64).ravel()
    small -= small.mean()
    norm = np.linalg.norm(small)
    return small / norm if norm > 0 else small


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
