"""The fast detector (mtcnn_fast on onnxruntime) finds what the ``mtcnn`` package finds.

Reference: ``mtcnn.MTCNN().detect_faces(frame)`` (package defaults, its own
weights, one frame per call), on every frame of samples/seqA and samples/seqB
and on a few benchmark frames (mirrored / exposure-shifted). Ours: the
``FaceDetector`` the service uses, in batches of 16 like the analyzer. The
package rounds boxes and landmarks to whole pixels in its JSON output, which
the tolerances below absorb.

Also: the per-face network outputs of the pipeline are unchanged (1e-4)
when the package detector is swapped for the fast one, and the pyramid guard
finds a face where the package finds none.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import SAMPLES
from faceanalysis.pipeline.detector import FaceDetector, PackageFaceDetector
from faceanalysis.pipeline.mtcnn_fast import PNET_INPUT, pyramid_scales
from facecore.device import select_device
from facecore.weights import load_manifest, resolve

MIN_IOU, CONF_TOL, LANDMARK_TOL_PX, OUTPUT_TOL = 0.9, 0.02, 2.0, 1e-4
# Boxes differ from the package's by <= ~2e-3 px (onnxruntime's vs oneDNN's float32 P-Net
# convolutions). Age and gender see the box rounded to whole pixels (dlib) and come out
# identical; the expression crop is a cv2.warpAffine of the float box, whose fixed-point
# (1/32 px) sampling turns such a shift into up to ~1.3e-4 on one sample face of 60 with the
# mini-Xception alone, and up to ~5.4e-4 on two seqB faces with the default ensemble (the project's
# 48-px network samples the same box more coarsely, so a sub-pixel shift moves more of each input pixel).
EXPRESSION_TOL = 1e-3
BATCH = 16
BENCHMARK_FRAMES = (60, 75, 131, 299)     # mirrored and exposure-shifted passes over the samples
KEYPOINTS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


def _rgb(path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def frames() -> dict[str, np.ndarray]:
    from bench.sequences import benchmark_frame

    out = {f"{seq}/{path.name}": _rgb(path) for seq in ("seqA", "seqB")
           for path in sorted((SAMPLES / seq).glob("*.jpg"))}
    out.update({f"bench/{i}": cv2.cvtColor(benchmark_frame(i), cv2.COLOR_BGR2RGB) for i in BENCHMARK_FRAMES})
    return out


@pytest.fixture(scope="module")
def weights():
    manifest = load_manifest()
    return [resolve(key, manifest) for key in ("detector_pnet", "detector_rnet", "detector_onet")]


@pytest.fixture(scope="module")
def fast(weights) -> FaceDetector:
    detector = FaceDetector(*weights)
    detector.prepare(select_device("cpu"))
    return detector


@pytest.fixture(scope="module")
def reference():
    from mtcnn import MTCNN
    return MTCNN()


def _iou(a, b) -> float:
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def test_same_faces_as_the_mtcnn_package(frames, fast, reference):
    names = list(frames)
    checked = 0
    for start in range(0, len(names), BATCH):
        chunk = names[start:start + BATCH]
        ours = fast.run([frames[name] for name in chunk])
        for position, name in enumerate(chunk):
            mine = np.flatnonzero(ours.frame == position)
            theirs = [face for face in reference.detect_faces(frames[name]) if face["confidence"] >= 0.9]
            assert len(mine) == len(theirs), f"{name}: {len(mine)} faces, package {len(theirs)}"
            for face in theirs:
                x, y, w, h = face["box"]
                box = (x, y, x + w, y + h)
                ious = [_iou(box, ours.boxes[i]) for i in mine]
                best = mine[int(np.argmax(ious))]
                assert max(ious) >= MIN_IOU, f"{name}: package face {box} not found (IoU {max(ious):.3f})"
                assert abs(ours.confidence[best] - face["confidence"]) <= CONF_TOL, name
                expected = np.asarray([face["keypoints"][key] for key in KEYPOINTS], dtype=float)
                assert np.abs(ours.landmarks[best] - expected).max() <= LANDMARK_TOL_PX, name
                checked += 1
    assert checked >= 60            # every sample frame holds one face


def test_pipeline_outputs_unchanged(analyzer, weights):
    """Age, gender and expression per face: package detector (before) vs fast detector (after), both at the
    package's thresholds (the service's 0.6 adds boxes the package does not give: the test above checks those)."""
    from faceanalysis.pipeline.analyzer import StageTimer
    from facecore.frames import Frame

    before_detector = PackageFaceDetector(*weights)
    before_detector.prepare(analyzer.device)
    fast_detector = FaceDetector(*weights, min_face_size=before_detector.min_face_size,
                                 min_confidence=before_detector.min_confidence)
    fast_detector.prepare(analyzer.device)
    compared = 0
    for seq in ("seqA", "seqB"):
        paths = sorted((SAMPLES / seq).glob("*.jpg"))
        for start in range(0, len(paths), BATCH):
            batch = [Frame(start + i, p.name, _rgb(p)) for i, p in enumerate(paths[start:start + BATCH])]
            before = analyzer._analyse_batch(batch, StageTimer(), before_detector.run([f.rgb for f in batch])).columns
            after = analyzer._analyse_batch(batch, StageTimer(), fast_detector.run([f.rgb for f in batch])).columns
            assert list(before["frame_name"]) == list(after["frame_name"])
            np.testing.assert_allclose(after["boxes"], before["boxes"], atol=0.005)
            for field, tolerance in (("age", OUTPUT_TOL), ("gender", OUTPUT_TOL), ("expression", EXPRESSION_TOL)):
                np.testing.assert_allclose(after[field], before[field], atol=tolerance,
                                           rtol=0, err_msg=f"{seq} {field}")
            compared += len(after["frame"])
    assert compared == 60


def test_pyramid_guard_keeps_large_minimum_faces(frames, fast, weights, reference):
    frame = frames["seqA/frame_0001.jpg"]                 # 640x480, face ~150-200 px
    scales = pyramid_scales(640, 480, 60)
    assert len(scales) and (480 * scales).min() >= PNET_INPUT
    # Documented package behaviour (mtcnn 1.0.0): its pyramid ignores min_face_size, the last
    # level is under 12 px, TensorFlow raises inside the package and it reports no face at all.
    assert reference.detect_faces(frame, min_face_size=60) == []
    large = FaceDetector(*weights, min_face_size=60)
    large._mtcnn = fast._mtcnn                            # same sessions, different minimum face
    found = large.run([frame])
    assert len(found) == 1 and found.confidence[0] >= 0.99
    default = fast.run([frame])
    assert _iou(found.boxes[0], default.boxes[0]) >= MIN_IOU


def test_prelu_rewrite_is_bit_exact(weights):
    """The graphs' max/min/mul/add PRelu gives exactly onnxruntime's PRelu."""
    import onnxruntime as ort
    from mtcnn.utils.tensorflow import load_weights

    from faceanalysis.pipeline import mtcnn_fast

    def plain_prelu(builder, x, alpha):
        return builder.node("PRelu", [x, builder._const(alpha)])

    pnet = load_weights(str(weights[0].path))
    ours = mtcnn_fast.pnet_onnx(pnet)
    original = mtcnn_fast._GraphBuilder.prelu
    mtcnn_fast._GraphBuilder.prelu = plain_prelu
    try:
        reference = mtcnn_fast.pnet_onnx(pnet)
    finally:
        mtcnn_fast._GraphBuilder.prelu = original
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    images = np.random.default_rng(0).uniform(-1, 1, (2, 3, 61, 83)).astype(np.float32)
    got, want = (ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"]).run(None, {"input": images})
                 for graph in (ours, reference))
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


def test_parallel_parts_give_the_same_rows(frames, fast):
    """A batch cut into parts run in parallel finds exactly what one part finds."""
    from faceanalysis.pipeline.mtcnn_fast import FastMTCNN

    batch = [frames[name] for name in list(frames)[:BATCH]]
    assert fast._mtcnn.workers >= 1
    whole = FastMTCNN.__new__(FastMTCNN)
    whole.__dict__.update(fast._mtcnn.__dict__)
    whole.workers = 1
    np.testing.assert_array_equal(fast._mtcnn.detect(batch), whole.detect(batch))
    parts = FastMTCNN.__new__(FastMTCNN)
    parts.__dict__.update(fast._mtcnn.__dict__)
    parts.workers = 3
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(2) as pool:
        parts._pool = pool
        np.testing.assert_array_equal(parts.detect(batch), whole.detect(batch))


def test_steps_of_a_part_give_the_same_rows(frames, fast, monkeypatch):
    """A part detected a few frames at a time (MAX_PIXELS_PER_STEP) finds exactly what one call finds, with the
    frame numbers of the whole part."""
    from faceanalysis.pipeline import mtcnn_fast

    batch = [frames[name] for name in list(frames) if name.startswith("seqA/")][:BATCH]
    height, width = batch[0].shape[:2]
    whole = fast._mtcnn._detect_step(batch, 20)
    monkeypatch.setattr(mtcnn_fast, "MAX_PIXELS_PER_STEP", 3 * height * width)      # steps of 3, 3, ..., rest
    assert mtcnn_fast.frames_per_step(height, width) == 3
    stepped = fast._mtcnn._detect(batch, 20)
    assert len(batch) > 3 and len(set(whole[:, 0].astype(int))) > 3
    np.testing.assert_array_equal(stepped, whole)


def test_a_lower_min_confidence_adds_boxes_and_moves_none(weights, frames):
    """With min_confidence 0.6 R-Net's and O-Net's thresholds come down to 0.6 (detector.stage_thresholds), but
    only to add boxes: every row the detector gives at 0.9 is among the 0.6 rows, bit for bit, on every sample and
    benchmark frame."""
    strict, low = FaceDetector(*weights, min_confidence=0.9), FaceDetector(*weights, min_confidence=0.6)
    for detector in (strict, low):
        detector.prepare(select_device("cpu"))
    names = sorted(frames)
    for start in range(0, len(names), BATCH):
        batch = [frames[name] for name in names[start:start + BATCH]]
        found, more = strict.run(batch), low.run(batch)
        assert len(more) >= len(found)
        for index in range(len(found)):
            same = ((more.frame == found.frame[index]) & (more.boxes == found.boxes[index]).all(axis=1)
                    & (more.landmarks == found.landmarks[index]).reshape(len(more), -1).all(axis=1)
                    & (more.confidence == found.confidence[index]))
            assert same.sum() == 1, f"{names[start + int(found.frame[index])]}: a 0.9 face moved at 0.6"
