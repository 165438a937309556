"""The tracker on hand-made frames, boxes, face crops and embeddings: every rule on both sides of its bound."""

from __future__ import annotations

import numpy as np
import pytest

from faceanalysis.pipeline.tracking import Tracker, iou, merge_tracklets
from facecore.faces import Detections

RNG = np.random.default_rng(0)
FACE_A = RNG.integers(0, 255, (48, 48), dtype=np.uint8)      # two unrelated "faces" (correlation ~0)
FACE_B = RNG.integers(0, 255, (48, 48), dtype=np.uint8)


def box(x: float, y: float, size: float = 100) -> list[float]:
    return [x, y, x + size, y + size]


class FakeBatch:
    """What the tracker reads of a FaceBatch: frames, detections, grey crops, chips and pictures."""

    def __init__(self, frames: list[np.ndarray], faces: list[tuple[int, list[float], np.ndarray]]) -> None:
        self.frames = frames
        self.detections = Detections(frame=np.asarray([f for f, _, _ in faces], np.int64),
                                     boxes=np.asarray([b for _, b, _ in faces], np.float64).reshape(-1, 4),
                                     confidence=np.linspace(0.95, 0.99, len(faces)),
                                     landmarks=np.zeros((len(faces), 5, 2)))
        self.grey = np.asarray([g for _, _, g in faces], np.uint8).reshape(-1, 48, 48)
        self.chips_cut: list[int] = []

    def square_grey_crops(self, size: int, margin: float) -> np.ndarray:
        return self.grey

    def square_rgb_crop(self, row: int, size: int) -> np.ndarray:
        return np.zeros((size, size, 3), np.uint8)

    def aligned_chip(self, row: int, size: int, padding: float) -> np.ndarray:
        self.chips_cut.append(row)
        return np.full((size, size, 3), row, np.uint8)


def scene(level: int) -> np.ndarray:
    return np.full((120, 160, 3), level, np.uint8)


def run_frames(tracker: Tracker, frames: list[tuple[np.ndarray, list[tuple[list[float], np.ndarray]]]]):
    """One batch per frame; returns the tracklet id of every face, in order, and the run."""
    run = tracker.start()
    ids = []
    for picture, faces in frames:
        ids += run.add(FakeBatch([picture], [(0, b, g) for b, g in faces])).tracklets.tolist()
    return ids, run


def test_iou_of_identical_disjoint_and_half_overlapping_boxes():
    a = np.array([box(0, 0)])
    b = np.array([box(0, 0), box(500, 500), box(50, 0)])
    assert iou(a, b)[0] == pytest.approx([1, 0, 1 / 3])


def test_two_people_keep_their_tracklets_while_moving():
    # Listed in a different order in each frame: matching follows the boxes, not the order.
    frames = [(scene(100), [(box(0, 0), FACE_A), (box(300, 0), FACE_B)]),
              (scene(100), [(box(310, 5), FACE_B), (box(10, 5), FACE_A)]),
              (scene(100), [(box(20, 10), FACE_A), (box(320, 10), FACE_B)])]
    assert run_frames(Tracker(), frames)[0] == [1, 2, 2, 1, 1, 2]


@pytest.mark.parametrize("overlap_x, same", [(49, True), (52, False)])
def test_a_face_continues_a_tracklet_from_min_iou(overlap_x, same):
    # Shift 49: IoU (100-49)/(100+49) = 0.342 >= 0.3; shift 52: 48/152 = 0.316... with min_iou 0.33 below.
    tracker = Tracker(min_iou=0.33)
    ids, _ = run_frames(tracker, [(scene(100), [(box(0, 0), FACE_A)]), (scene(100), [(box(overlap_x, 0), FACE_A)])])
    assert (ids == [1, 1]) == same


def test_the_prediction_follows_a_face_that_moves_fast():
    # 40 px, then 60 px: the third box overlaps the second by 40/160 = 0.25 < 0.3, but the predicted box
    # (second + 40 px) by 80/120 = 0.67.
    frames = [(scene(100), [(box(0, 0), FACE_A)]), (scene(100), [(box(40, 0), FACE_A)]),
              (scene(100), [(box(100, 0), FACE_A)])]
    assert run_frames(Tracker(), frames)[0] == [1, 1, 1]


@pytest.mark.parametrize("missed, same", [(2, True), (3, False)])
def test_a_face_missed_for_up_to_max_gap_frames_keeps_its_tracklet(missed, same):
    frames = [(scene(100), [(box(0, 0), FACE_A)])] + [(scene(100), [])] * missed + [(scene(100), [(box(5, 5), FACE_A)])]
    ids, _ = run_frames(Tracker(max_gap=2), frames)
    assert (ids == [1, 1]) == same


@pytest.mark.parametrize("level, cut", [(100 + 38, False), (100 + 39, True)])
def test_a_shot_cut_ends_every_tracklet(level, cut):
    # Mean absolute thumbnail change: 38/255 = 0.149 is no cut at 0.15; 39/255 = 0.153 is one.
    ids, run = run_frames(Tracker(), [(scene(100), [(box(0, 0), FACE_A)]), (scene(level), [(box(0, 0), FACE_A)])])
    assert ids == ([1, 2] if cut else [1, 1])
    assert run.cuts == ([1] if cut else [])


def test_someone_else_at_the_same_place_starts_a_new_tracklet():
    # Same scene, same box, another face (an interview cut at the same framing): the appearance check.
    frames = [(scene(100), [(box(0, 0), FACE_A)]), (scene(100), [(box(0, 0), FACE_B)]),
              (scene(100), [(box(0, 0), FACE_B)])]
    assert run_frames(Tracker(), frames)[0] == [1, 2, 2]


@pytest.mark.parametrize("threshold, same", [(0.95, True), (0.999, False)])
def test_the_appearance_threshold_bounds_the_correlation(threshold, same):
    noisy = np.clip(FACE_A.astype(int) + RNG.integers(-20, 21, FACE_A.shape), 0, 255).astype(np.uint8)
    frames = [(scene(100), [(box(0, 0), FACE_A)]), (scene(100), [(box(0, 0), noisy)])]
    ids, _ = run_frames(Tracker(appearance_threshold=threshold), frames)   # correlation ~0.98
    assert (ids == [1, 1]) == same


def test_people_crossing_end_their_tracklets_and_identity_decides():
    # Frame 1: both faces overlap tracklet 1's box (IoU 1 and 0.43): ambiguous, both start anew. Frame 2: the
    # face overlaps tracklets 2 and 3: ambiguous again. Geometry never guesses; the identity step decides.
    frames = [(scene(100), [(box(0, 0), FACE_A)]),
              (scene(100), [(box(0, 0), FACE_A), (box(40, 0), FACE_B)]),
              (scene(100), [(box(0, 0), FACE_A)])]
    assert run_frames(Tracker(), frames)[0] == [1, 2, 3, 4]


def test_faces_far_apart_are_not_ambiguous():
    frames = [(scene(100), [(box(0, 0), FACE_A), (box(200, 0), FACE_B)]),
              (scene(100), [(box(0, 0), FACE_A), (box(200, 0), FACE_B)])]
    assert run_frames(Tracker(), frames)[0] == [1, 2, 1, 2]


def test_chips_are_kept_at_birth_then_every_sample_every_frames_up_to_samples():
    frames = [(scene(100), [(box(0, 0), FACE_A)]) for _ in range(40)]
    _, run = run_frames(Tracker(sample_every=15, samples=2), frames)
    assert len(run.tracklets[0].chips) == 2 and run.tracklets[0].positions == list(range(40))
    _, run = run_frames(Tracker(sample_every=15, samples=3), frames)
    assert len(run.tracklets[0].chips) == 3       # positions 0, 15, 30


@pytest.mark.parametrize("side, kept", [(39, 0), (40, 1)])
def test_faces_under_min_embed_side_give_no_chip(side, kept):
    _, run = run_frames(Tracker(), [(scene(100), [(box(0, 0, side), FACE_A)])])
    assert len(run.tracklets[0].chips) == kept


def test_one_tracklet_is_one_person_and_nothing_is_embedded():
    _, run = run_frames(Tracker(), [(scene(100), [(box(0, 0), FACE_A)]) for _ in range(5)])

    def embed(chips):
        raise AssertionError("nothing to decide, nothing to embed")
    persons = run.finish(embed)
    assert persons.of_tracklet == {1: 1} and persons.embedded == 0


def run_noting_chips(tracker: Tracker, frames) -> tuple[list[int], object, list[tuple[int, int]]]:
    """As ``run_frames``, also giving (frame, face in the frame) of every face ``add`` says it kept as a chip, and
    checking that each chip's face number counts the faces given before it."""
    run = tracker.start()
    ids, kept, given = [], [], 0
    for number, (picture, faces) in enumerate(frames):
        tracked = run.add(FakeBatch([picture], [(0, b, g) for b, g in faces]))
        ids += tracked.tracklets.tolist()
        assert tracked.chip_faces.tolist() == [given + row for row in tracked.chip_rows.tolist()]
        kept += [(number, row) for row in tracked.chip_rows.tolist()]
        given += len(faces)
    return ids, run, kept


def test_every_chip_one_tracklet_is_embedded_and_its_chips_handed_back():
    frames = [(scene(100), [(box(0, 0), FACE_A)]) for _ in range(40)]
    _, run, kept = run_noting_chips(Tracker(sample_every=15, samples=3), frames)
    assert kept == [(0, 0), (15, 0), (30, 0)]                       # a chip every 15 analysed frames
    persons = run.finish(lambda chips: np.arange(len(chips), dtype=np.float64)[:, None] * np.ones((1, 128)),
                         every_chip=True)
    assert persons.of_tracklet == {1: 1} and persons.embedded == 3
    numbers, embedded = persons.chips[1]
    assert numbers.tolist() == [0, 15, 30]                           # one face a frame: face number = frame
    assert embedded[:, 0].tolist() == [0, 1, 2]


def test_chips_follow_the_merge_and_skip_small_faces():
    # A (frames 0 and 2, two tracklets across cuts) and B (frame 1) with a small face beside A in frame 2.
    frames = [(scene(100), [(box(0, 0), FACE_A)]), (scene(200), [(box(0, 0), FACE_B)]),
              (scene(100), [(box(0, 0), FACE_A), (box(300, 0, 39), FACE_B)])]
    ids, run, kept = run_noting_chips(Tracker(), frames)
    assert ids == [1, 2, 3, 4] and kept == [(0, 0), (1, 0), (2, 0)]     # the 39 px face (number 3) is no chip
    identity = {1: 0.0, 2: 1.0, 3: 0.05}                             # tracklet 4 (39 px) has no chip
    persons = run.finish(lambda chips: np.asarray([[identity[t.id]] + [0] * 127 for t in run.tracklets[:3]]),
                         every_chip=True)
    assert persons.of_tracklet == {1: 1, 2: 2, 3: 1, 4: 3}
    assert persons.chips[1][0].tolist() == [0, 2] and persons.chips[2][0].tolist() == [1]
    assert persons.chips[1][1][:, 0].tolist() == [0.0, 0.05]
    assert 3 not in persons.chips                                    # answered from its frames


def test_without_every_chip_no_chips_are_handed_back():
    frames = [(scene(100), [(box(0, 0), FACE_A)]) for _ in range(3)]
    _, run = run_frames(Tracker(), frames)
    assert run.finish(lambda chips: np.zeros((len(chips), 128))).chips == {}


def test_every_chip_without_any_chip_embeds_nothing():
    # One tracklet of faces under min_embed_side: nothing to embed, even when every chip is asked for.
    _, run = run_frames(Tracker(), [(scene(100), [(box(0, 0, 30), FACE_A)]) for _ in range(3)])

    def embed(chips):
        raise AssertionError("no chip, nothing to embed")
    persons = run.finish(embed, every_chip=True)
    assert persons.embedded == 0 and persons.chips == {}


def test_tracklets_of_one_identity_across_a_cut_become_one_person():
    frames = [(scene(100), [(box(0, 0), FACE_A)]), (scene(200), [(box(0, 0), FACE_B)]),
              (scene(100), [(box(0, 0), FACE_A)])]
    ids, run = run_frames(Tracker(), frames)
    assert ids == [1, 2, 3]
    # The embedding tells A from B: chip values are the row, so give each tracklet's chip its identity's vector.
    identity = {1: 0.0, 2: 1.0, 3: 0.05}
    persons = run.finish(lambda chips: np.asarray([[identity[t.id]] + [0] * 127 for t in run.tracklets]))
    assert persons.of_tracklet == {1: 1, 2: 2, 3: 1} and persons.embedded == 3


def embeddings(*points: float) -> np.ndarray:
    return np.asarray([[p] + [0.0] * 127 for p in points])


@pytest.mark.parametrize("distance, merged", [(0.5, True), (0.5001, False)])
def test_merge_threshold_is_inclusive(distance, merged):
    labels = merge_tracklets([embeddings(0.0), embeddings(distance)], [{0}, {1}], threshold=0.5)
    assert bool(labels[0] == labels[1]) is merged


def test_tracklets_seen_in_one_frame_never_merge():
    labels = merge_tracklets([embeddings(0.0), embeddings(0.01)], [{0, 1}, {1, 2}], threshold=0.5)
    assert labels.tolist() == [0, 1]


def test_a_tracklet_without_embeddings_stays_alone():
    labels = merge_tracklets([embeddings(0.0), np.zeros((0, 128)), embeddings(0.1)], [{0}, {1}, {2}], 0.5)
    assert labels[0] == labels[2] != labels[1]


def test_linkage_is_the_average_not_the_closest_pair():
    # Group {0, 1} (points 0 and 0.4) to point 0.8: closest pair 0.4, average (0.8 + 0.4) / 2 = 0.6 > 0.5.
    labels = merge_tracklets([embeddings(0.0), embeddings(0.4), embeddings(0.8)], [{0}, {1}, {2}], threshold=0.5)
    assert labels[0] == labels[1] != labels[2]


def test_merging_a_group_inherits_its_frames():
    # 0 and 1 merge first (0.02); 2 shares a frame with 1 only, so it may not join the merged group, though it
    # is 0.05 from tracklet 0.
    labels = merge_tracklets([embeddings(0.0), embeddings(0.02), embeddings(0.05)], [{0}, {5}, {5, 6}], 0.5)
    assert labels[0] == labels[1] != labels[2]
