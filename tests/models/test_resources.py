"""Resources the pipeline holds: bounded per frame size, loaded once per analyzer, released when an analysis fails."""

from __future__ import annotations

import os
import random

import cv2
import pytest

from conftest import SAMPLES
from faceanalysis.pipeline import mtcnn_fast
from faceanalysis.pipeline.analyzer import FaceAnalyzer
from faceanalysis.pipeline.sources import FrameSource
from facecore.frames import Frame, decode_frame


def rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def test_memory_stays_flat_over_200_frame_sizes(analyzer):
    # An upload of images of many sizes: each size used to keep a compiled TensorFlow pyramid and an
    # onnxruntime memory plan for good (measured: +94 MB from the 50th to the 200th size; now under +10 MB).
    face = decode_frame(SAMPLES / "seqA" / "frame_0001.jpg")
    sizes = [(200 + 2 * step, 150 + step) for step in range(200)]
    random.Random(0).shuffle(sizes)       # shuffled, so the arena's high-water mark is reached early
    found = 0
    for number, size in enumerate(sizes, start=1):
        found += len(analyzer.detector.run([cv2.resize(face, size)]))
        if number == 50:
            after_50 = rss_mb()
    grown = rss_mb() - after_50
    assert found >= 190                   # the frames are real faces, so every stage ran
    assert len(analyzer.detector._mtcnn._pyramids) <= mtcnn_fast.MAX_PYRAMID_FUNCTIONS
    assert grown < 25, f"RSS grew {grown:.0f} MB from the 50th to the 200th frame size"


def test_least_recently_used_pyramid_is_dropped_first(analyzer):
    mtcnn = analyzer.detector._mtcnn
    face = decode_frame(SAMPLES / "seqA" / "frame_0001.jpg")
    sizes = [(160 + 8 * step, 120 + 6 * step) for step in range(mtcnn_fast.MAX_PYRAMID_FUNCTIONS + 1)]
    for width, height in sizes[:-1]:
        mtcnn.detect([cv2.resize(face, (width, height))])
    first = sizes[0]
    mtcnn.detect([cv2.resize(face, first)])            # used again: now the most recent
    mtcnn.detect([cv2.resize(face, sizes[-1])])        # one size too many
    kept = {(key[1], key[0]) for key in mtcnn._pyramids}
    assert first in kept and sizes[1] not in kept and sizes[-1] in kept
    assert len(kept) == mtcnn_fast.MAX_PYRAMID_FUNCTIONS


@pytest.mark.parametrize("choice", ["heads", "ensemble"])
def test_the_face_embedding_is_one_network_for_both_tasks(choice):
    models = FaceAnalyzer(age_gender=choice).models        # built, not loaded: cheap
    assert models["age"].features is models["gender"].features
    assert type(models["age"].features).__name__ == "FaceEmbedder"


def test_tuned_heads_share_the_two_networks():
    models = FaceAnalyzer(age_gender="tuned").models
    features = models["age"].features
    assert features is models["gender"].features
    assert models["age"].network is features.age and models["gender"].network is features.gender


class RecordingSource(FrameSource):
    """Three one-frame batches of real faces; records whether its reader was closed."""
    label = "recording"

    def __init__(self) -> None:
        super().__init__()
        self.closed = False
        self.expected = 3

    def batches(self, batch_size):
        try:
            for index in range(3):
                yield [Frame(index, f"frame_{index}", decode_frame(SAMPLES / "seqA" / f"frame_000{index + 1}.jpg"))]
        finally:
            self.closed = True


def test_the_source_is_closed_when_the_analysis_fails(analyzer):
    source = RecordingSource()

    def progress(done, total):     # a failure while the source is mid-stream (a job cancelled, a bug)
        if done:
            raise RuntimeError("stop")
    with pytest.raises(RuntimeError, match="stop"):
        analyzer.analyse_source(source, progress)
    assert source.closed           # at once, not when the generator is garbage collected


def test_a_good_analysis_hands_back_what_was_read(analyzer):
    source = RecordingSource()
    result = analyzer.analyse_source(source)
    assert source.closed
    assert result.source.read == ((0, "frame_0"), (1, "frame_1"), (2, "frame_2"))
    assert result.frames_read == 3 and result.source.label == "recording" and result.source.listed == 3
