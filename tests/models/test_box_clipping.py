"""A face that crosses the frame's edge gets a box clipped inside the frame, as the ``mtcnn`` package clips it
(``limit_bboxes(fit_to_image=True)``: x in [0, width - 1], y in [0, height - 1]), while a face inside the frame
keeps its own box. Real faces: a seqA frame, cut so that its face crosses the left and top edges, then the right
and bottom edges; the same frames go through the ``mtcnn`` package for the reference."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import SAMPLES
from faceanalysis.pipeline.detector import FaceDetector
from facecore.device import select_device
from facecore.weights import load_manifest, resolve

FRAME = SAMPLES / "seqA" / "frame_0001.jpg"
OUTSIDE = 0.25              # the share of the face's width and height cut off by each crop


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    manifest = load_manifest()
    found = FaceDetector(*(resolve(key, manifest) for key in ("detector_pnet", "detector_rnet", "detector_onet")))
    found.prepare(select_device("cpu"))
    return found


@pytest.fixture(scope="module")
def package():
    from mtcnn import MTCNN
    return MTCNN()


@pytest.fixture(scope="module")
def whole() -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(FRAME)), cv2.COLOR_BGR2RGB)


def largest_box(boxes: np.ndarray) -> np.ndarray:
    return boxes[np.argmax((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))]


def package_box(package, frame: np.ndarray) -> np.ndarray:
    rows = package.detect_faces(frame, box_format="xyxy", output_type="numpy")
    rows = np.asarray(rows, np.float64).reshape(-1, 16)
    return largest_box(rows[rows[:, 5] >= 0.9][:, 1:5])


def crops(whole: np.ndarray, box: np.ndarray) -> dict[str, tuple[np.ndarray, tuple[str, ...]]]:
    """The frame cut so the face crosses the left and top edges, then the right and bottom ones; with the edges
    it crosses."""
    x1, y1, x2, y2 = box
    dx, dy = OUTSIDE * (x2 - x1), OUTSIDE * (y2 - y1)
    left, top = int(x1 + dx), int(y1 + dy)
    right, bottom = int(np.ceil(x2 - dx)), int(np.ceil(y2 - dy))
    return {"left and top": (np.ascontiguousarray(whole[top:, left:]), ("left", "top")),
            "right and bottom": (np.ascontiguousarray(whole[:bottom, :right]), ("right", "bottom"))}


def test_a_face_inside_the_frame_keeps_its_box(detector, whole):
    box = largest_box(detector.run([whole]).boxes)
    height, width = whole.shape[:2]
    assert 0 < box[0] < box[2] < width - 1 and 0 < box[1] < box[3] < height - 1


def test_a_face_crossing_the_edge_gets_a_box_clipped_inside_the_frame_like_the_package(detector, package, whole):
    for name, (frame, edges) in crops(whole, largest_box(detector.run([whole]).boxes)).items():
        height, width = frame.shape[:2]
        ours, theirs = largest_box(detector.run([frame]).boxes), package_box(package, frame)
        limits = {"left": (0, 0.0), "top": (1, 0.0), "right": (2, width - 1.0), "bottom": (3, height - 1.0)}
        for box in (ours, theirs):
            assert 0 <= box[0] < box[2] <= width - 1 and 0 <= box[1] < box[3] <= height - 1, name
            for edge in edges:                       # on the crossed edges, exactly on the frame's border
                column, value = limits[edge]
                assert box[column] == value, (name, edge, box)
        assert ours == pytest.approx(theirs, abs=2.0), name
