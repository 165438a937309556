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
