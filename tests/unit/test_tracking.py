"""The tracker on hand-made frames, boxes, face crops and embeddings: every rule on both sides of its bound,
the README's defaults (IoU >= 0.3, more than 5 missed analysed frames), each threshold at exact equality, the
motion prediction over gaps, the chips and pictures a tracklet keeps, and the identity merge's bookkeeping over
several merges."""

from __future__ import annotations

import numpy as np
import pytest

from faceanalysis.pipeline import tracking
from faceanalysis.pipeline.tracking import Tracker, iou, merge_tracklets, signature
from facecore.embedding import CHIP_PADDING, CHIP_SIZE
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


# --- the rules at their boundaries ----------------------------------------------------------------------------

def test_the_documented_defaults():
    assert Tracker().describe() == {"name": "tracklets_identity", "min_iou": 0.3, "max_gap": 5,
                                    "cut_threshold": 0.15, "appearance_threshold": 0.55, "identity_distance": 0.5,
                                    "min_embed_side": 40, "handover_gap": 45, "handover_distance": 1.0,
                                    "handover_size": 1.6, "handover_differ": 0.65,
                                    "handover_alike": 0.6}
    assert (Tracker().samples, Tracker().sample_every) == (3, 15)


# --- IoU ------------------------------------------------------------------------------------------------------

def test_iou_of_boxes_apart_on_one_axis_only_is_zero():
    # Apart in x but level in y (and the reverse): no overlap, whatever the other axis says.
    a = np.array([[0.0, 0.0, 10.0, 10.0]])
    assert iou(a, np.array([[20.0, 0.0, 30.0, 10.0], [0.0, 20.0, 10.0, 30.0]]))[0].tolist() == [0.0, 0.0]


def test_iou_of_boxes_away_from_the_origin():
    # [0, 10, 10, 20] and [0, 15, 10, 25]: 50 in common, 150 in all.
    assert iou(np.array([[0.0, 10.0, 10.0, 20.0]]), np.array([[0.0, 15.0, 10.0, 25.0]]))[0, 0] == pytest.approx(1 / 3)
    assert iou(np.array([[10.0, 0.0, 20.0, 10.0]]), np.array([[15.0, 0.0, 25.0, 10.0]]))[0, 0] == pytest.approx(1 / 3)


def test_iou_of_sub_pixel_and_empty_boxes():
    tiny = np.array([[0.0, 0.0, 0.5, 0.5]])
    assert iou(tiny, tiny)[0, 0] == 1.0                        # a union under one pixel is still a union
    empty = np.array([[5.0, 5.0, 5.0, 5.0]])
    with np.errstate(all="raise"):                             # no 0 / 0 on the way
        assert iou(empty, np.vstack([empty, [[0.0, 0.0, 10.0, 10.0]]]))[0].tolist() == [0.0, 0.0]


def test_iou_of_integer_boxes():
    assert iou(np.array([[0, 0, 10, 10]]), np.array([[0, 0, 5, 10]]))[0, 0] == 0.5


# --- README defaults at their bounds --------------------------------------------------------------------------

@pytest.mark.parametrize("width, same", [(30, True), (29, False)])
def test_a_face_continues_a_tracklet_from_iou_0_3(width, same):
    # [0, 0, 100, 100] then [0, 0, 30, 100]: IoU 3000 / 10000 = 0.3 exactly; with width 29, 0.29.
    frames = [(scene(100), [(box(0, 0), FACE_A)]), (scene(100), [([0.0, 0.0, float(width), 100.0], FACE_A)])]
    assert (run_frames(Tracker(), frames)[0] == [1, 1]) is same


@pytest.mark.parametrize("missed, same", [(5, True), (6, False)])
def test_a_tracklet_survives_5_missed_frames_not_6(missed, same):
    frames = [(scene(100), [(box(0, 0), FACE_A)])] + [(scene(100), [])] * missed + [(scene(100), [(box(0, 0), FACE_A)])]
    assert (run_frames(Tracker(), frames)[0] == [1, 1]) is same


def test_a_correlation_equal_to_the_appearance_threshold_keeps_the_tracklet():
    noisy = np.clip(FACE_A.astype(int) + np.random.default_rng(1).integers(-30, 31, FACE_A.shape), 0, 255)
    noisy = noisy.astype(np.uint8)
    correlation = float(signature(noisy) @ signature(FACE_A))
    frames = [(scene(100), [(box(0, 0), FACE_A)]), (scene(100), [(box(0, 0), noisy)])]
    assert run_frames(Tracker(appearance_threshold=correlation), frames)[0] == [1, 1]
    assert run_frames(Tracker(appearance_threshold=np.nextafter(correlation, 1)), frames)[0] == [1, 2]


def half_white() -> np.ndarray:
    frame = np.zeros((120, 160, 3), np.uint8)
    frame[:, :80] = 255
    return frame


def test_a_change_equal_to_the_cut_threshold_is_no_cut():
    # Black, then the left half white: the 16x12 thumbnails differ by 1.0 on half their values, 0.5 on average.
    ids, run = run_frames(Tracker(cut_threshold=0.5), [(scene(0), [(box(0, 0), FACE_A)]),
                                                       (half_white(), [(box(0, 0), FACE_A)])])
    assert ids == [1, 1] and run.cuts == []
    ids, run = run_frames(Tracker(cut_threshold=0.49), [(scene(0), []), (half_white(), [])])
    assert run.cuts == [1]


def test_the_cut_threshold_is_a_share_of_255():
    # Blocks of 10x10 pixels are the thumbnail's pixels. Per channel, 54 blocks change by 39 and 138 by 38:
    # 3 * (54 * 39 + 138 * 38) / (576 * 255) = 0.15012 > 0.15, a cut (as a share of 256 it would be 0.14955).
    after = np.full((12, 16, 3), 100 + 38, np.uint8)
    after.reshape(-1, 3)[:54] = 100 + 39
    after = np.kron(after, np.ones((10, 10, 1), np.uint8))
    _, run = run_frames(Tracker(), [(scene(100), []), (after, [])])
    assert run.cuts == [1]


def test_the_thumbnail_is_an_area_average():
    # White but for two columns in every ten: the area average is 0.8 of white (a cut); a sample between the two
    # dark columns would see black, no change at all.
    frame = np.full((120, 160, 3), 255, np.uint8)
    frame[:, 4::10] = 0
    frame[:, 5::10] = 0
    _, run = run_frames(Tracker(), [(scene(0), []), (frame, [])])
    assert run.cuts == [1]


# --- prediction -----------------------------------------------------------------------------------------------

def test_the_prediction_uses_the_velocity_of_the_last_step():
    # 0 -> 50 -> 150: the prediction 50 + 50 = 100 overlaps 150 by 50 / 150 = 0.33; half the velocity would
    # predict 75 (IoU 0.14).
    frames = [(scene(100), [(box(x, 0), FACE_A)]) for x in (0, 50, 150)]
    assert run_frames(Tracker(), frames)[0] == [1, 1, 1]


def test_velocity_is_per_analysed_frame_across_a_gap():
    # Seen at positions 5 (x 0) and 7 (x 52): 26 px per frame. Missed twice more, it is predicted at
    # 52 + 3 * 26 = 130, where it is. (Velocity per step, or steps counted from 0, would predict 65 or less.)
    frames = ([(scene(100), [])] * 5 + [(scene(100), [(box(0, 0), FACE_A)]), (scene(100), []),
                                        (scene(100), [(box(52, 0), FACE_A)]), (scene(100), []), (scene(100), []),
                                        (scene(100), [(box(130, 0), FACE_A)])])
    assert run_frames(Tracker(), frames)[0] == [1, 1, 1]


# --- ambiguity and appearance ---------------------------------------------------------------------------------

def test_an_appearance_mismatch_does_not_stop_the_other_matches():
    # Two tracklets; in frame 2 someone else stands at A's place (overlap 1.0, examined first) while B moved a
    # little (overlap 0.9): A's tracklet ends, B's still continues.
    frames = [(scene(100), [(box(0, 0), FACE_A), (box(300, 0), FACE_B)]),
              (scene(100), [(box(0, 0), FACE_B), (box(305, 0), FACE_B)])]
    assert run_frames(Tracker(), frames)[0] == [1, 2, 3, 2]


# --- what a tracklet keeps ------------------------------------------------------------------------------------

class RecordingBatch(FakeBatch):
    """A FakeBatch that records what the tracker asks for, with given confidences, and pictures and chips that say
    which face they are (value 10 * tag + row, ``tag`` telling batches apart)."""

    def __init__(self, frames, faces, confidence=None, tag: int = 1) -> None:
        super().__init__(frames, faces)
        self.tag = tag
        if confidence is not None:
            self.detections = Detections(frame=self.detections.frame, boxes=self.detections.boxes,
                                         confidence=np.asarray(confidence, np.float64),
                                         landmarks=self.detections.landmarks)
        self.calls: list[tuple] = []

    def square_grey_crops(self, size: int, margin: float) -> np.ndarray:
        self.calls.append(("grey", size, margin))
        return super().square_grey_crops(size, margin)

    def square_rgb_crop(self, row: int, size: int) -> np.ndarray:
        self.calls.append(("picture", row, size))
        return np.full((size, size, 3), 10 * self.tag + row, np.uint8)

    def aligned_chip(self, row: int, size: int, padding: float) -> np.ndarray:
        self.calls.append(("chip", row, size, padding))
        return np.full((size, size, 3), 10 * self.tag + row, np.uint8)


def test_the_tracker_asks_for_48_px_grey_crops_without_margin_and_150_px_chips():
    run = Tracker().start()
    batch = RecordingBatch([scene(100)], [(0, box(0, 0), FACE_A)])
    ids = run.add(batch).tracklets
    assert ids.dtype == np.int64 and ids.tolist() == [1]
    assert ("grey", 48, 0.0) in batch.calls and ("chip", 0, CHIP_SIZE, CHIP_PADDING) in batch.calls
    assert (tracking.SIGNATURE_CROP, CHIP_SIZE) == (48, 150)
    assert run.tracklets[0].chips[0].shape == (CHIP_SIZE, CHIP_SIZE, 3)


@pytest.mark.parametrize("size, kept", [((39, 60), 0), ((60, 39), 0), ((40, 60), 1)])
def test_the_smaller_side_of_the_box_decides_the_chip(size, kept):
    # Boxes away from the origin, so a side is x2 - x1, whatever x1 is.
    width, height = size
    run = Tracker().start()
    run.add(RecordingBatch([scene(100)], [(0, [100.0, 100.0, 100.0 + width, 100.0 + height], FACE_A)]))
    assert len(run.tracklets[0].chips) == kept


def test_a_second_chip_exactly_sample_every_frames_later():
    run = Tracker(samples=2, sample_every=15).start()
    for _ in range(16):                                           # positions 0 .. 15
        run.add(RecordingBatch([scene(100)], [(0, box(0, 0), FACE_A)]))
    assert len(run.tracklets[0].chips) == 2


def test_the_picture_is_the_first_of_the_most_confident_faces():
    run = Tracker().start()
    for frame, confidence in enumerate((0.9, 0.95, 0.95, 0.8)):  # frames 1 and 2 tie
        run.add(RecordingBatch([scene(100)], [(0, box(0, 0), FACE_A), (0, box(300, 0), FACE_B)],
                               confidence=[confidence, 0.5], tag=frame + 1))
    pictures = [(tracklet.best_confidence, tracklet.picture[0, 0, 0]) for tracklet in run.tracklets]
    # A picture is 10 * (frame + 1) + row: A's is frame 1's (20), B's frame 0's (11, its first of four ties).
    assert pictures == [(0.95, 20), (0.5, 11)]


# --- persons --------------------------------------------------------------------------------------------------

def two_tracklets_of_a(confidences=(0.9, 0.9)):
    """A, then a cut, then A again: two tracklets of one identity."""
    run = Tracker().start()
    for level, confidence in zip((100, 200), confidences):
        run.add(RecordingBatch([scene(level)], [(0, box(0, 0), FACE_A)], confidence=[confidence]))
    return run


def test_two_tracklets_of_one_identity_are_one_person():
    run = two_tracklets_of_a()
    persons = run.finish(lambda chips: np.zeros((len(chips), 128)))
    assert persons.of_tracklet == {1: 1, 2: 1} and persons.tracklets == 2 and persons.embedded == 2


@pytest.mark.parametrize("confidences, picture_of", [((0.9, 0.8), 1), ((0.8, 0.9), 2), ((0.9, 0.9), 1)])
def test_a_persons_picture_is_their_most_confident_tracklets_first(confidences, picture_of):
    run = two_tracklets_of_a(confidences)
    for number, tracklet in enumerate(run.tracklets, 1):
        tracklet.picture = np.full((64, 64, 3), number, np.uint8)       # which tracklet it came from
    persons = run.finish(lambda chips: np.zeros((len(chips), 128)))
    assert list(persons.pictures) == [1] and persons.pictures[1][0, 0, 0] == picture_of


def test_tracklets_without_chips_are_persons_of_their_own_and_nothing_is_embedded():
    run = Tracker().start()
    for level in (100, 200):                                      # a cut between: two tracklets, faces too small
        run.add(RecordingBatch([scene(level)], [(0, box(0, 0, 30), FACE_A)]))

    def embed(chips):
        raise AssertionError("no chip, nothing to embed")
    persons = run.finish(embed)
    assert persons.of_tracklet == {1: 1, 2: 2} and persons.embedded == 0
    assert sorted(persons.pictures) == [1, 2]


# --- signatures -----------------------------------------------------------------------------------------------

def test_a_signature_is_the_unit_vector_of_the_area_averaged_crop():
    # 3x3 blocks whose centre is brighter by 9k: the block's mean is base + k (an area average), its centre
    # base + 9k (what a point sample would read).
    rng = np.random.default_rng(0)
    base, lift = rng.integers(0, 150, (16, 16)), rng.integers(0, 6, (16, 16))
    crop = np.kron(base, np.ones((3, 3), int))
    crop[1::3, 1::3] += 9 * lift
    expected = (base + lift).astype(np.float64).ravel()
    expected -= expected.mean()
    assert signature(crop.astype(np.uint8)) == pytest.approx(expected / np.linalg.norm(expected))


def test_a_flat_crop_has_a_zero_signature_and_a_nearly_flat_one_a_unit_one():
    assert signature(np.full((48, 48), 90, np.uint8)).tolist() == [0.0] * 256
    nearly = np.full((16, 16), 90, np.uint8)
    nearly[0, 0] = 91                                             # norm about 1 before scaling
    assert np.linalg.norm(signature(nearly)) == pytest.approx(1.0, abs=1e-12)


# --- the identity merge's bookkeeping -------------------------------------------------------------------------

def points(*values: float) -> list[np.ndarray]:
    return [embeddings(value) for value in values]


def test_a_group_keeps_merging_by_its_average():
    # 0 and 0.02 merge first; the group is then (0.3 + 0.28) / 2 = 0.29 from 0.3, so it takes it too.
    labels = merge_tracklets(points(0.0, 0.02, 0.3), [{0}, {1}, {2}], 0.5)
    assert labels.tolist() == [0, 0, 0]


def test_identical_embeddings_all_merge():
    # Distance 0 everywhere: after the first merge the group's linkage is 0 / 2 pairs, still 0 (not 0 / 0).
    assert merge_tracklets(points(0.7, 0.7, 0.7), [{0}, {1}, {2}], 0.5).tolist() == [0, 0, 0]


def test_a_merged_group_is_one_and_only_its_average_counts():
    # 0 and 0.3 merge first (0.3); the group is then (0.75 + 0.45) / 2 = 0.6 from 0.75: no more merging, though
    # 0.75 is only 0.45 from one of its members.
    labels = merge_tracklets(points(0.0, 0.3, 0.75), [{0}, {1}, {2}], 0.5)
    assert labels.tolist() == [0, 0, 2]


def test_a_group_keeps_the_frames_of_its_first_member():
    # 0 and 1 merge first (0.02); 2 shares a frame with 0 only (the member that stays), so it may not join.
    labels = merge_tracklets(points(0.0, 0.02, 0.05), [{5}, {0}, {5, 6}], 0.5)
    assert labels.tolist() == [0, 0, 2]


def test_distances_are_differences_not_sums():
    # 1.0 and 1.3 are 0.3 apart (their sum's length, 2.3, would be far).
    assert merge_tracklets(points(1.0, 1.3), [{0}, {1}], 0.5).tolist() == [0, 0]


def test_the_linkage_of_several_chips_is_their_mean_distance():
    # Tracklet 0 has chips at 0 and 0.2, tracklet 1 at 0.4 and 0.6: distances 0.4, 0.6, 0.2, 0.4, mean 0.4.
    two = [np.vstack([embeddings(0.0), embeddings(0.2)]), np.vstack([embeddings(0.4), embeddings(0.6)])]
    assert merge_tracklets(two, [{0}, {1}], 0.4).tolist() == [0, 0]
    assert merge_tracklets(two, [{0}, {1}], 0.39).tolist() == [0, 1]
    # Uneven: 2 chips against 1 (0.5 and 0.3 from 0.8): mean 0.4 over 2 pairs.
    uneven = [np.vstack([embeddings(0.3), embeddings(0.5)]), embeddings(0.8)]
    assert merge_tracklets(uneven, [{0}, {1}], 0.4).tolist() == [0, 0]
    assert merge_tracklets(uneven, [{0}, {1}], 0.39).tolist() == [0, 1]


# --- the distance matrix's memory bound -----------------------------------------------------------------------

def test_pairwise_rows_keep_the_block_within_its_bytes():
    # 10 vectors of 4 dimensions: one row of the block is 10 x 4 x 8 = 320 bytes.
    assert tracking.pairwise_rows(10, 4, block_bytes=640) == 2
    assert tracking.pairwise_rows(10, 4, block_bytes=639) == 1
    assert tracking.pairwise_rows(10, 4, block_bytes=960) == 3
    # Less than one row's bytes still computes one row at a time.
    assert tracking.pairwise_rows(10, 4, block_bytes=319) == 1
    assert tracking.pairwise_rows(10, 4, block_bytes=0) == 1
    # No vectors: no division by zero (the block is then empty whatever its rows).
    assert tracking.pairwise_rows(0, 128, block_bytes=100) == 100
    # The default: 64 MB; 1,500 chips of 128 dimensions (1.5 MB a row) take 43 rows a block.
    assert tracking.PAIRWISE_BLOCK_BYTES == 64 * 2 ** 20
    assert tracking.pairwise_rows(1500, 128) == 43


def test_pairwise_distances_by_blocks_are_the_unblocked_numbers():
    # A 3-4-5 triangle, by hand: |(0,0)-(3,0)| = 3, |(0,0)-(3,4)| = 5, |(3,0)-(3,4)| = 4.
    triangle = np.array([[0.0, 0.0], [3.0, 0.0], [3.0, 4.0]])
    assert tracking.pairwise_distances(triangle, block_bytes=1).tolist() == [[0, 3, 5], [3, 0, 4], [5, 4, 0]]
    vectors = np.random.default_rng(7).normal(size=(37, 128)).astype(np.float32)
    whole = np.linalg.norm(vectors.astype(np.float64)[:, None, :] - vectors.astype(np.float64)[None, :, :], axis=2)
    for block_bytes in (1, 37 * 128 * 8 * 5, 10 ** 9):         # one row, five rows (the last block 2), all at once
        assert np.array_equal(tracking.pairwise_distances(vectors, block_bytes), whole)


def test_pairwise_distances_go_by_blocks_of_the_rows_that_fit(monkeypatch):
    # 10 vectors of 4 dimensions, 320 bytes a row: 640 bytes make 5 blocks of 2 rows; the default, one block.
    shapes = []
    norm = np.linalg.norm

    def spy(x, *args, **kwargs):
        shapes.append(x.shape)
        return norm(x, *args, **kwargs)

    monkeypatch.setattr(np.linalg, "norm", spy)
    vectors = np.arange(40, dtype=np.float64).reshape(10, 4)
    tracking.pairwise_distances(vectors, block_bytes=640)
    assert shapes == [(2, 10, 4)] * 5
    shapes.clear()
    tracking.pairwise_distances(vectors)
    assert shapes == [(10, 10, 4)]
