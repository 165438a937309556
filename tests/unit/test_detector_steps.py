"""How many frames a detector part takes through the pyramid at once (``mtcnn_fast.frames_per_step``): as
many as fit in ``MAX_PIXELS_PER_STEP`` pixels, at least one. Arithmetic only; that the steps find the same
rows as one call is tests/models/test_detector_equivalence.py's."""

from faceanalysis.pipeline import mtcnn_fast
from faceanalysis.pipeline.mtcnn_fast import frames_per_step


def test_the_default_is_four_720p_frames():
    assert mtcnn_fast.MAX_PIXELS_PER_STEP == 4 * 1280 * 720 == 3_686_400
    assert frames_per_step(720, 1280) == 4
    # 1080p on full frames (detect_max_side 0): 2,073,600 pixels a frame, one fits.
    assert frames_per_step(1080, 1920) == 1
    # 640x480 (307,200 pixels): 12 fit, so a part of 8 sample frames is one step, as before.
    assert frames_per_step(480, 640) == 12


def test_frames_that_just_fit_and_just_do_not():
    # 10 x 10 frames, 100 pixels each: 300 pixels take 3, 299 take 2.
    assert frames_per_step(10, 10, max_pixels=300) == 3
    assert frames_per_step(10, 10, max_pixels=299) == 2


def test_a_frame_larger_than_the_step_is_still_detected_alone():
    assert frames_per_step(10, 10, max_pixels=99) == 1
    assert frames_per_step(10, 10, max_pixels=100) == 1
    assert frames_per_step(4000, 4000) == 1


def row(image: int, x1: float, y1: float, x2: float, y2: float, score: float):
    """A detector row: image, box, score (the landmark columns are left out: the rule reads none)."""
    return [image, x1, y1, x2, y2, score]


def test_boxes_added_below_the_package_thresholds_never_remove_one_it_found():
    """Kept: A (0,0)-(10,10) at 0.85. Extra: B (1,1)-(11,11) at 0.95, overlapping A by 81/100 of the smaller box
    (over 0.7): dropped, although it scores higher; C far away at 0.7: added; D (51,51)-(61,61) at 0.65 overlaps C
    (50,50)-(60,60) by 0.81: dropped for C."""
    import numpy as np
    kept = np.array([row(0, 0, 0, 10, 10, 0.85)])
    extra = np.array([row(0, 1, 1, 11, 11, 0.95), row(0, 50, 50, 60, 60, 0.7), row(0, 51, 51, 61, 61, 0.65)])
    out = mtcnn_fast.with_added(kept, extra, 0.7, "min")
    assert out.tolist() == [row(0, 0, 0, 10, 10, 0.85), row(0, 50, 50, 60, 60, 0.7)]


def test_an_added_box_overlapping_by_just_under_the_threshold_stays():
    """B (0,3)-(10,13) over A (0,0)-(10,10): 70/100 = 0.7, not over 0.7: added; at (0,2.9) 71/100: dropped."""
    import numpy as np
    kept = np.array([row(0, 0, 0, 10, 10, 0.9)])
    assert len(mtcnn_fast.with_added(kept, np.array([row(0, 0, 3, 10, 13, 0.8)]), 0.7, "min")) == 2
    assert len(mtcnn_fast.with_added(kept, np.array([row(0, 0, 2.9, 10, 12.9, 0.8)]), 0.7, "min")) == 1


def test_added_boxes_are_judged_per_image_and_follow_the_kept_ones():
    """The same box in image 1 is no overlap for image 0's A; rows stay grouped by image, kept first."""
    import numpy as np
    kept = np.array([row(0, 0, 0, 10, 10, 0.9), row(1, 30, 30, 40, 40, 0.9)])
    extra = np.array([row(1, 0, 0, 10, 10, 0.61)])
    out = mtcnn_fast.with_added(kept, extra, 0.7, "min")
    assert out[:, 0].tolist() == [0, 1, 1] and out[2].tolist() == row(1, 0, 0, 10, 10, 0.61)
    assert mtcnn_fast.with_added(kept, np.empty((0, 6)), 0.7, "min") is kept
