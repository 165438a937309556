"""The greedy IoU tracker on hand-made boxes: matching, new persons, gap tolerance."""

from __future__ import annotations

import numpy as np
import pytest

from faceanalysis.pipeline.tracking import Tracker, iou


def box(x: float, y: float, size: float = 100) -> list[float]:
    return [x, y, x + size, y + size]


def test_iou_of_identical_disjoint_and_half_overlapping_boxes():
    a = np.array([box(0, 0)])
    b = np.array([box(0, 0), box(500, 500), box(50, 0)])
    assert iou(a, b)[0] == pytest.approx([1, 0, 1 / 3])


def test_two_people_keep_their_ids_while_moving():
    position = [0, 0, 1, 1, 2, 2]
    # Listed in a different order in each frame: matching must follow the boxes, not the order.
    boxes = [box(0, 0), box(300, 0), box(310, 5), box(10, 5), box(20, 10), box(320, 10)]
    assert Tracker().assign(position, boxes).tolist() == [1, 2, 2, 1, 1, 2]


def test_a_face_missed_for_a_few_frames_keeps_its_id():
    tracker = Tracker(max_gap=2)
    assert tracker.assign([0, 3], [box(0, 0), box(5, 5)]).tolist() == [1, 1]     # 2 frames missed
    assert tracker.assign([0, 4], [box(0, 0), box(5, 5)]).tolist() == [1, 2]     # 3 frames missed


def test_a_face_elsewhere_is_a_new_person():
    assert Tracker().assign([0, 1], [box(0, 0), box(400, 400)]).tolist() == [1, 2]


def test_each_track_takes_at_most_one_face_per_frame():
    # Two faces overlap the one track; the better overlap keeps the id, the other is new.
    ids = Tracker().assign([0, 1, 1], [box(0, 0), box(40, 0), box(5, 0)])
    assert ids.tolist() == [1, 2, 1]


def test_no_faces():
    assert Tracker().assign([], np.zeros((0, 4))).tolist() == []
