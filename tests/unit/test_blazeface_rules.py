"""BlazeFace's decoding and the rule that adds its faces to MTCNN's (blazeface.py, mtcnn_fast._overlapping),
on hand-made network outputs and boxes; that the network and O-Net find real faces with it is
tests/models/test_detector_proposals.py's."""

import numpy as np

from faceanalysis.pipeline import blazeface, mtcnn_fast
from faceanalysis.pipeline.blazeface import GRID, INPUT, anchor_centres, decode, letterbox, suppress


def outputs(scored: dict[int, tuple[float, list[float]]]):
    """Raw outputs with every anchor far below any threshold but ``scored``: anchor -> (logit, 4 offsets)."""
    offsets = np.zeros((GRID * GRID, 16), np.float32)
    logits = np.full(GRID * GRID, -20.0, np.float32)
    for anchor, (logit, box) in scored.items():
        logits[anchor] = logit
        offsets[anchor, :4] = box
    return offsets, logits


def test_anchors_are_cell_centres_row_by_row():
    centres = anchor_centres()
    assert centres.shape == (2304, 2)
    # Cell side 1/48: the first centre is half a cell in, the next one a cell to the right, row 2 starts at 48.
    assert np.allclose(centres[0], [0.5 / 48, 0.5 / 48])
    assert np.allclose(centres[1], [1.5 / 48, 0.5 / 48])
    assert np.allclose(centres[48], [0.5 / 48, 1.5 / 48])
    assert np.allclose(centres[-1], [47.5 / 48, 47.5 / 48])


def test_a_box_is_its_anchor_plus_the_offsets_in_input_pixels_then_in_frame_pixels():
    # Anchor 49 (row 1, column 1) has its centre at 6 px of the 192-px input. Offsets: centre +10 px right,
    # -2 px down, 40 wide, 20 high -> input box (16 - 20, 4 - 10, 16 + 20, 4 + 10) = (-4, -6, 36, 14).
    offsets, logits = outputs({49: (0.0, [10, -2, 40, 20])})
    boxes, scores = decode(offsets, logits, side=INPUT, left=0, top=0)
    assert np.allclose(boxes, [[-4, -6, 36, 14]])
    assert np.allclose(scores, [0.5])
    # A frame letterboxed into a 384-px square (twice the input) with 100 px of border on the left: every
    # coordinate doubles, then x moves back by 100.
    boxes, _ = decode(offsets, logits, side=384, left=100, top=0)
    assert np.allclose(boxes, [[-8 - 100, -12, 72 - 100, 28]])


def test_the_score_threshold_keeps_a_score_of_exactly_min_score():
    # logit 0 is a score of exactly 0.5 (kept at 0.5); logit -0.01 is 0.4975 (dropped).
    offsets, logits = outputs({0: (0.0, [0, 0, 10, 10]), 1: (-0.01, [0, 0, 10, 10])})
    _, scores = decode(offsets, logits, side=INPUT, left=0, top=0, min_score=0.5)
    assert np.allclose(scores, [0.5])
    _, scores = decode(offsets, logits, side=INPUT, left=0, top=0, min_score=0.49)
    assert len(scores) == 2


def test_letterbox_centres_the_frame_in_a_square():
    frame = np.full((50, 100, 3), 255, np.uint8)           # 100 wide, 50 high
    square, side, left, top = letterbox(frame)
    assert (side, left, top) == (100, 0, 25)
    assert square.shape == (INPUT, INPUT, 3)
    # Scaled to [-1, 1]: white is 1, the black border -1 (rows 0-47 of 192 are border: 25/100 of the square).
    assert square[INPUT // 2, INPUT // 2, 0] == 1.0
    assert square[0, 0, 0] == -1.0
    assert square[47, 10, 0] == -1.0 and square[48, 10, 0] == 1.0


def test_suppression_drops_a_box_only_above_the_iou_threshold():
    # A (0,0)-(10,10), area 100. B inside it, 10 x 3: IoU 30/100 = 0.3, not above 0.3: kept. C 10 x 4: 0.4: dropped.
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 3], [0, 0, 10, 4]], float)
    scores = np.array([0.9, 0.8, 0.7])
    assert suppress(boxes, scores, 0.3).tolist() == [0, 1]


def test_suppression_keeps_the_best_scored_box_and_the_earlier_one_on_a_tie():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60]], float)
    assert suppress(boxes, np.array([0.6, 0.9, 0.7])).tolist() == [1, 2]
    assert suppress(boxes, np.array([0.8, 0.8, 0.7])).tolist() == [0, 2]


def test_a_proposal_is_mtcnns_face_only_above_the_overlap_and_in_the_same_frame():
    assert mtcnn_fast.PROPOSAL_OVERLAP == 0.3
    found = np.array([[0, 0, 0, 10, 10, 0.9]])
    proposals = np.array([[0, 0, 0, 10, 3, 0.7],       # IoU 0.3: not above, a face of its own
                          [0, 0, 0, 10, 4, 0.7],       # IoU 0.4: MTCNN's face
                          [1, 0, 0, 10, 10, 0.7]])     # the same box in another frame
    assert mtcnn_fast._overlapping(proposals, found, 0.3).tolist() == [False, True, False]
    assert mtcnn_fast._overlapping(proposals, found[:0], 0.3).tolist() == [False, False, False]


def test_min_score_and_nms_are_mediapipes():
    assert (blazeface.MIN_SCORE, blazeface.NMS_IOU) == (0.5, 0.3)


def test_a_pyramid_level_is_scaled_to_fit_and_renormalised():
    """MTCNN's 0.3 level of a 640x480 frame is 193x144 (TensorFlow truncates 192.x and 144), normalised as
    (x - 127.5) / 128. It is scaled to fit 192: 192x143, centred 24 px down ((192 - 143) // 2). In frame pixels
    that square is 640 wide (192 / 0.3) and the frame starts 80 px down (24 / 0.3). Black (-127.5 / 128) becomes
    -1 and white (127.5 / 128) 1, as ``letterbox`` scales them."""
    from faceanalysis.pipeline.blazeface import from_level

    level = np.full((144, 193, 3), 127.5 / 128, np.float32)
    level[:, :10] = -127.5 / 128
    square, side, left, top = from_level(level, 640, 480)
    assert (side, left, top) == (640, 0, 80)
    assert square.shape == (INPUT, INPUT, 3)
    assert np.allclose(square[INPUT // 2, INPUT // 2], 1.0)
    assert np.allclose(square[INPUT // 2, 2], -1.0)
    assert square[23, 100, 0] == -1.0 and np.isclose(square[24, 100, 0], 1.0)      # the border above
    assert square[24 + 143, 100, 0] == -1.0 and np.isclose(square[24 + 142, 100, 0], 1.0)
