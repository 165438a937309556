"""The working resolution's rules (which frames are scaled, how boxes come back), its setting's validation, and
the video decode thread's order, errors and closing. Pure: no model is loaded."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from faceanalysis.cli import add_model_arguments, settings_from
from faceanalysis.pipeline.detector import map_back, working_size
from faceanalysis.pipeline.settings import MIN_DETECT_SIDE, Settings
from faceanalysis.pipeline.sources import read_ahead

# --------------------------------------------------------------------------- which frames are scaled

def test_a_frame_whose_long_side_is_the_limit_is_not_scaled():
    assert working_size(1280, 720, 1280) is None
    assert working_size(720, 1280, 1280) is None        # portrait: the long side is the height


def test_one_pixel_more_is_scaled_to_the_limit():
    # 1281 x 721 at 1280: scale 1280/1281, so 721 * 0.99922 = 720.44 -> 720.
    assert working_size(1281, 721, 1280) == (1280, 720)
    assert working_size(721, 1281, 1280) == (720, 1280)


def test_1080p_at_960_keeps_the_aspect():
    assert working_size(1920, 1080, 960) == (960, 540)
    assert working_size(1920, 1080, 1280) == (1280, 720)


def test_zero_means_full_frames_whatever_the_size():
    assert working_size(7680, 4320, 0) is None


# --------------------------------------------------------------------------- boxes and landmarks mapped back

def _row(box, landmarks_x, landmarks_y, confidence=0.99):
    return np.array([[0, *box, confidence, *landmarks_x, *landmarks_y]], dtype=np.float64)


def test_boxes_and_landmarks_are_scaled_back_by_each_axis():
    # Found at 960x540 on a 1920x1080 frame: every coordinate doubles.
    rows = _row([100, 50, 140, 100], [110, 130, 120, 112, 128], [70, 70, 80, 90, 90])
    back = map_back(rows, 2.0, 2.0, 1920, 1080)
    np.testing.assert_allclose(back[0, 1:5], [200, 100, 280, 200])
    np.testing.assert_allclose(back[0, 6:11], [220, 260, 240, 224, 256])
    np.testing.assert_allclose(back[0, 11:16], [140, 140, 160, 180, 180])
    assert back[0, 0] == 0 and back[0, 5] == 0.99          # frame index and confidence untouched
    assert rows[0, 1] == 100                                # the input rows are not changed


def test_unequal_scales_map_x_and_y_separately():
    # 1281x721 detected at 1280x720: x by 1281/1280, y by 721/720.
    rows = _row([640, 360, 700, 420], [650] * 5, [370] * 5)
    back = map_back(rows, 1281 / 1280, 721 / 720, 1281, 721)
    np.testing.assert_allclose(back[0, 1:5], [640.5, 360.5, 700.546875, 420.58333333])
    np.testing.assert_allclose(back[0, 6:11], [650.5078125] * 5)
    np.testing.assert_allclose(back[0, 11:16], [370.51388889] * 5)


def test_boxes_are_clipped_to_the_full_frame_landmarks_are_not():
    # The detector clips boxes to [0, size - 1]; a box at the scaled frame's last pixel maps past the full
    # frame's last pixel (959 * 2 = 1918 < 1919 stays, 539.9 * 2 = 1079.8 -> 1079).
    rows = _row([-3, 0, 959, 539.9], [958] * 5, [539.95] * 5)
    back = map_back(rows, 2.0, 2.0, 1920, 1080)
    np.testing.assert_allclose(back[0, 1:5], [0, 0, 1918, 1079])
    np.testing.assert_allclose(back[0, 6:11], [1916] * 5)
    np.testing.assert_allclose(back[0, 11:16], [1079.9] * 5)


def test_no_rows_map_to_no_rows():
    assert map_back(np.empty((0, 16)), 2.0, 2.0, 1920, 1080).shape == (0, 16)


# --------------------------------------------------------------------------- the setting

def test_default_and_off_are_valid():
    assert Settings().detect_max_side == 1280
    assert Settings(detect_max_side=0).detect_max_side == 0


def test_smallest_working_resolution_is_accepted_one_less_is_not():
    assert Settings(detect_max_side=MIN_DETECT_SIDE).detect_max_side == MIN_DETECT_SIDE
    with pytest.raises(ValueError, match="detect_max_side must be 0 .* or at least 128, not 127"):
        Settings(detect_max_side=MIN_DETECT_SIDE - 1)
    with pytest.raises(ValueError, match="not -1"):
        Settings(detect_max_side=-1)


@pytest.mark.parametrize("value", [960.0, "960", True])
def test_the_setting_is_a_whole_number(value):
    with pytest.raises(ValueError, match="detect_max_side must be int"):
        Settings(detect_max_side=value)


def test_the_flag_sets_it_and_a_bad_value_exits_2(capsys):
    import argparse
    parser = argparse.ArgumentParser()
    add_model_arguments(parser)
    assert settings_from(parser.parse_args(["--detect-max-side", "0"]), environ={}).detect_max_side == 0
    assert settings_from(parser.parse_args(["--detect-max-side", "960"]), environ={}).detect_max_side == 960
    assert settings_from(parser.parse_args([]), environ={}).detect_max_side == 1280
    assert settings_from(parser.parse_args([]), environ={}).blazeface_proposals is True
    assert settings_from(parser.parse_args(["--no-blazeface-proposals"]), environ={}).blazeface_proposals is False
    assert settings_from(parser.parse_args(["--blazeface-proposals"]), environ={}).blazeface_proposals is True
    with pytest.raises(SystemExit) as exited:
        settings_from(parser.parse_args(["--detect-max-side", "100"]), environ={})
    assert exited.value.code == 2
    assert '"invalid_option"' in capsys.readouterr().err


# --------------------------------------------------------------------------- the decode thread

def _numbers(count, fail_at=None, closed=None, delay=0.0):
    try:
        for number in range(count):
            if number == fail_at:
                raise ValueError(f"broken at {number}")
            time.sleep(delay)
            yield number
    finally:
        if closed is not None:
            closed.append(threading.current_thread().name)


def test_items_arrive_in_order_from_another_thread():
    closed = []
    assert list(read_ahead(_numbers(50, closed=closed), name="decode test")) == list(range(50))
    assert closed == ["decode test"]          # the generator ran, and was closed, in the decode thread


def test_an_error_comes_after_the_items_before_it():
    closed, seen = [], []
    with pytest.raises(ValueError, match="broken at 3"):
        for item in read_ahead(_numbers(10, fail_at=3, closed=closed)):
            seen.append(item)
    assert seen == [0, 1, 2]
    assert len(closed) == 1


def test_an_error_at_the_first_item_is_raised_at_once():
    with pytest.raises(ValueError, match="broken at 0"):
        next(read_ahead(_numbers(10, fail_at=0)))


def test_closing_midway_stops_the_thread_and_closes_the_source():
    closed = []
    reader = read_ahead(_numbers(10_000, closed=closed))
    assert [next(reader), next(reader)] == [0, 1]
    reader.close()
    assert len(closed) == 1 and not reader._thread.is_alive()
    assert list(reader) == []                  # nothing more after close


def test_closing_before_reading_stops_the_thread():
    closed = []
    reader = read_ahead(_numbers(10_000, closed=closed))
    time.sleep(0.05)
    reader.close()
    assert len(closed) == 1 and not reader._thread.is_alive()


def test_it_reads_at_most_depth_items_ahead():
    produced = []

    def counting():
        for number in range(100):
            produced.append(number)
            yield number

    reader = read_ahead(counting(), depth=1)
    assert next(reader) == 0
    time.sleep(0.2)
    # One item handed over, one waiting in the queue, one made and waiting to be put: never the whole stream.
    assert len(produced) <= 3
    reader.close()
