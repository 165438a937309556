"""Detection at a working resolution on real faces: a frame at the limit is detected as it is, one pixel more is
scaled and its boxes and landmarks come back onto the full frame; meta says what was used."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import SAMPLES
from faceanalysis.pipeline.detector import FaceDetector
from facecore.device import select_device
from facecore.weights import load_manifest, resolve

FRAMES = sorted((SAMPLES / "seqA").glob("*.jpg"))[:4] + sorted((SAMPLES / "seqB").glob("*.jpg"))[:4]


@pytest.fixture(scope="module")
def detectors():
    manifest = load_manifest()
    files = [resolve(key, manifest) for key in ("detector_pnet", "detector_rnet", "detector_onet")]
    device = select_device("cpu")
    made = {}
    for max_side in (0, 640, 639, 320):
        made[max_side] = FaceDetector(*files, max_side=max_side)
        made[max_side].prepare(device)
    return made


@pytest.fixture(scope="module")
def frames():
    return [cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB) for path in FRAMES]   # 640x480 each


def _same(a, b):
    np.testing.assert_array_equal(a.frame, b.frame)
    np.testing.assert_array_equal(a.boxes, b.boxes)
    np.testing.assert_array_equal(a.landmarks, b.landmarks)
    np.testing.assert_array_equal(a.confidence, b.confidence)


def test_long_side_at_the_limit_is_detected_on_the_frame_itself(detectors, frames):
    _same(detectors[640].run(frames), detectors[0].run(frames))


def test_one_pixel_under_the_long_side_scales_and_maps_back(detectors, frames):
    full, scaled = detectors[0].run(frames), detectors[639].run(frames)
    assert len(full) == len(frames) == len(scaled)           # one face per sample frame, none lost
    np.testing.assert_array_equal(full.frame, scaled.frame)
    assert not np.array_equal(full.boxes, scaled.boxes)      # it did run on other pixels
    # The same faces in full-frame pixels. MTCNN's boxes move by a few pixels whenever the pyramid's levels
    # change size (measured: up to 5.3 px on these ~140 px faces at 639 px, 6.5 px at 320 px), so the bound
    # is a share of the face's width.
    widths = full.boxes[:, 2] - full.boxes[:, 0]
    assert (np.abs(scaled.boxes - full.boxes).max(axis=1) < 0.06 * widths).all()
    assert (np.abs(scaled.landmarks - full.landmarks).max(axis=(1, 2)) < 0.05 * widths).all()


def test_half_size_still_finds_the_sample_faces_in_place(detectors, frames):
    # The sample faces are ~150-250 px wide: at 320x240 they are still far above the 20 px minimum.
    full, half = detectors[0].run(frames), detectors[320].run(frames)
    np.testing.assert_array_equal(full.frame, half.frame)
    widths = full.boxes[:, 2] - full.boxes[:, 0]
    # The same faces, mapped back to full scale (left at the working scale they would be off by half).
    assert (np.abs(half.boxes - full.boxes).max(axis=1) < 0.06 * widths).all()
    assert (np.abs(half.landmarks - full.landmarks).max(axis=(1, 2)) < 0.05 * widths).all()
    assert half.boxes[:, 2].max() > 320        # coordinates are the full frame's, not the working frame's


def test_describe_says_the_size_each_frame_size_was_detected_at(detectors):
    described = detectors[639].describe({(640, 480), (320, 240)})
    assert described["max_side"] == 639
    assert described["sizes"] == [{"frame": [320, 240], "detected_at": [320, 240]},
                                  {"frame": [640, 480], "detected_at": [639, 479]}]
    assert detectors[0].describe({(1920, 1080)})["sizes"] == [{"frame": [1920, 1080], "detected_at": [1920, 1080]}]


def test_meta_detection_of_an_analysis(analyzer):
    result = analyzer.analyse_folder(SAMPLES / "seqA")
    detection = result.provenance.detection
    assert detection["max_side"] == analyzer.settings.detect_max_side == 1280
    assert detection["sizes"] == [{"frame": [640, 480], "detected_at": [640, 480]}]
