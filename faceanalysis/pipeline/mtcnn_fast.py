"""MTCNN (P-Net, R-Net, O-Net) re-run batched on onnxruntime, with the maths of ``mtcnn`` 1.0.0.

Why this file exists: the ``mtcnn`` package runs every network eagerly in
Keras, one call per pyramid level, and spends as much time again in glue
(``tf.image.resize`` per level, ``tf.image.crop_and_resize``, and NMS that
builds several N x N float64 matrices). On a 2-core CPU that is ~65-120 ms per
640x480 frame. Here the same three networks, with the same weights read from
the same verified files, are written out as small ONNX graphs (no converter,
no file written) and run by onnxruntime; the pyramid is built by one compiled
TensorFlow function per batch (its AREA resize, see ``_pyramid``); patches
are cut with a numpy copy of TensorFlow's ``crop_and_resize`` kernel; NMS is the package's own variant, computed per
image. Every step follows the package's arithmetic (same thresholds, same
float64 box maths, same sort order), so detections agree with
``mtcnn.MTCNN().detect_faces`` to float round-off: boxes within ~2e-3 px,
confidences within ~2e-6 (see tests/models/test_detector_equivalence.py). What is
left is onnxruntime's vs oneDNN's float32 convolution order in P-Net.

Speed on a 2-core CPU: a batch is cut in one part per core and each part runs
the whole detector on single-threaded sessions (``FastMTCNN.detect``); PRelu
is written as max/min/mul/add and inputs are transposed with numpy, both bit
for bit the same numbers as before (tests/models/test_detector_equivalence.py).

Two deliberate differences, both documented in ``faceanalysis.pipeline.detector``:

- pyramid levels smaller than P-Net's 12 px input are dropped (the package
  raises inside TensorFlow for those and reports no face for the whole batch);
- a batch of frames of different sizes is run as one group per size, not
  padded to the largest one (the package's offset correction for padding
  pairs pads with the wrong frames when a frame has no face).

Row layout everywhere is the package's: ``[image, x1, y1, x2, y2, confidence,
x_le, x_re, x_n, x_ml, x_mr, y_le, y_re, y_n, y_ml, y_mr]``.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from typing import Callable

import numpy as np

from .tracking import iou

log = logging.getLogger(__name__)

PNET_INPUT = 12        # P-Net's receptive field: a pyramid level smaller than this cannot be run
PNET_STRIDE = 2
# Thresholds of mtcnn 1.0.0's stages (StagePNet / StageRNet / StageONet defaults).
THRESHOLD_PNET, NMS_PNET_LEVEL, NMS_PNET_ALL = 0.6, 0.5, 0.7
THRESHOLD_RNET, NMS_RNET = 0.7, 0.7
THRESHOLD_ONET, NMS_ONET = 0.8, 0.7
SCALE_FACTOR = 0.709
# A proposal from another detector overlapping one of MTCNN's faces by more than this IoU is that face.
PROPOSAL_OVERLAP = 0.3
PROPOSER_INPUT = 192        # the proposer's input side (blazeface.INPUT): the pyramid level it is given is this long
# Bounded calls keep onnxruntime's activations small (peak RSS) at no measurable cost in speed; they
# matter twice over because the two halves of a batch are detected at the same time.
MAX_PIXELS_PER_CALL = 2 * 288 * 384     # P-Net: 2 frames of the largest 640x480 level
MAX_PATCHES_PER_CALL = 128              # R-Net / O-Net: 128 patches need ~40 MB of activations, 512 ~150 MB
# Frames a part takes through the pyramid and the three networks at once, by their pixels: the normalised
# float copy of a frame and its levels are ~7 float32 values a pixel (8 frames of 1280x720: ~200 MB, and both
# parts of a batch hold theirs at the same time). Four 1280x720 frames; a 640x480 part (8 frames) is one step.
MAX_PIXELS_PER_STEP = 4 * 1280 * 720
# Compiled pyramid functions kept, one per frame size (least recently used dropped first). A video or a folder
# of frames has one size; an upload of images of many sizes would otherwise keep one compiled TensorFlow graph
# per size for the life of the process (tests/models/test_resources.py: RSS stays flat over 200 sizes).
MAX_PYRAMID_FUNCTIONS = 8


# --------------------------------------------------------------------------- networks as ONNX graphs

class _GraphBuilder:
    """Just enough of ONNX to write the three MTCNN networks from their Keras weight lists.

    Keras keeps activations NHWC and conv kernels as (kh, kw, in, out); ONNX
    wants NCHW and (out, in, kh, kw). The graphs take NCHW input: callers
    transpose the NHWC arrays they would feed the Keras models with numpy
    (``_run_chunked``), which is several times faster than onnxruntime's
    Transpose for three channels.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.nodes, self.initializers = [], []
        self._count = 0

    def _const(self, array: np.ndarray) -> str:
        from onnx import numpy_helper
        self._count += 1
        name = f"{self.name}_w{self._count}"
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array, dtype=np.float32), name))
        return name

    def node(self, op: str, inputs: list[str], output: str | None = None, **attributes) -> str:
        from onnx import helper
        self._count += 1
        output = output or f"{self.name}_t{self._count}"
        self.nodes.append(helper.make_node(op, inputs, [output], **attributes))
        return output

    def prelu(self, x: str, alpha: np.ndarray) -> str:
        """PRelu as max(x, 0) + alpha * min(x, 0): the same numbers, bit for bit, in a quarter less time.

        onnxruntime's PRelu with a per-channel slope is a slow broadcast loop (about
        5 ns per element); these four element-wise ops run vectorised. One of the
        two terms is exactly 0 and alpha * x is rounded once either way, so the
        result equals PRelu's exactly.
        """
        zero = self._const(np.zeros(1))
        negative = self.node("Mul", [self.node("Min", [x, zero]), self._const(alpha)])
        return self.node("Add", [self.node("Max", [x, zero]), negative])

    def conv_prelu(self, x: str, kernel, bias, alpha) -> str:
        x = self.node("Conv", [x, self._const(kernel.transpose(3, 2, 0, 1)), self._const(bias)])
        return self.prelu(x, alpha.reshape(-1, 1, 1))   # alpha shared over H, W

    def max_pool(self, x: str, size: int, same: bool) -> str:
        # TF "same" pooling pads the extra row/column at the end, as ONNX SAME_UPPER does.
        return self.node("MaxPool", [x], kernel_shape=[size, size], strides=[2, 2],
                         auto_pad="SAME_UPPER" if same else "VALID")

    def dense(self, x: str, kernel, bias, output: str | None = None) -> str:
        return self.node("Add", [self.node("MatMul", [x, self._const(kernel)]), self._const(bias)], output)

    def flatten_like_keras(self, x: str) -> str:
        # Keras: Permute((2, 1, 3)) on NHWC then Flatten, i.e. flatten in (W, H, C) order.
        return self.node("Flatten", [self.node("Transpose", [x], perm=[0, 3, 2, 1])], axis=1)

    def model(self, input_hw: tuple, outputs: dict) -> bytes:
        from onnx import TensorProto, checker, helper
        graph = helper.make_graph(
            self.nodes, self.name,
            [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 3, *input_hw])],
            [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape) for name, shape in outputs.items()],
            self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
        checker.check_model(model)
        return model.SerializeToString()


def pnet_onnx(weights: list) -> bytes:
    c1k, c1b, a1, c2k, c2b, a2, c3k, c3b, a3, regk, regb, clsk, clsb = weights
    g = _GraphBuilder("pnet")
    x = "input"
    x = g.max_pool(g.conv_prelu(x, c1k, c1b, a1), 2, same=True)
    x = g.conv_prelu(g.conv_prelu(x, c2k, c2b, a2), c3k, c3b, a3)
    g.node("Conv", [x, g._const(regk.transpose(3, 2, 0, 1)), g._const(regb)], "reg")
    logits = g.node("Conv", [x, g._const(clsk.transpose(3, 2, 0, 1)), g._const(clsb)])
    g.node("Softmax", [logits], "prob", axis=1)
    return g.model(("h", "w"), {"reg": ["n", 4, "a", "b"], "prob": ["n", 2, "a", "b"]})


def rnet_onnx(weights: list) -> bytes:
    c1k, c1b, a1, c2k, c2b, a2, c3k, c3b, a3, f4k, f4b, a4, regk, regb, clsk, clsb = weights
    g = _GraphBuilder("rnet")
    x = "input"
    x = g.max_pool(g.conv_prelu(x, c1k, c1b, a1), 3, same=True)
    x = g.max_pool(g.conv_prelu(x, c2k, c2b, a2), 3, same=False)
    x = g.flatten_like_keras(g.conv_prelu(x, c3k, c3b, a3))
    x = g.prelu(g.dense(x, f4k, f4b), a4)
    g.dense(x, regk, regb, "reg")
    g.node("Softmax", [g.dense(x, clsk, clsb)], "prob", axis=-1)
    return g.model((24, 24), {"reg": ["n", 4], "prob": ["n", 2]})


def onet_onnx(weights: list) -> bytes:
    (c1k, c1b, a1, c2k, c2b, a2, c3k, c3b, a3, c4k, c4b, a4,
     f5k, f5b, a5, regk, regb, lmk, lmb, clsk, clsb) = weights
    g = _GraphBuilder("onet")
    x = "input"
    x = g.max_pool(g.conv_prelu(x, c1k, c1b, a1), 3, same=True)
    x = g.max_pool(g.conv_prelu(x, c2k, c2b, a2), 3, same=False)
    x = g.max_pool(g.conv_prelu(x, c3k, c3b, a3), 2, same=True)
    x = g.flatten_like_keras(g.conv_prelu(x, c4k, c4b, a4))
    x = g.prelu(g.dense(x, f5k, f5b), a5)
    g.dense(x, regk, regb, "reg")
    g.dense(x, lmk, lmb, "landmarks")
    g.node("Softmax", [g.dense(x, clsk, clsb)], "prob", axis=-1)
    return g.model((48, 48), {"reg": ["n", 4], "landmarks": ["n", 10], "prob": ["n", 2]})


# --------------------------------------------------------------------------- box maths (package semantics)

def pyramid_scales(width: int, height: int, min_face_size: int, scale_factor: float = SCALE_FACTOR) -> np.ndarray:
    """Scales from the one that maps ``min_face_size`` to 12 px down to the last level still >= 12 px."""
    first = PNET_INPUT / min_face_size
    smallest_side = min(width, height)
    scales = []
    scale = first
    while smallest_side * scale >= PNET_INPUT:
        scales.append(scale)
        scale *= scale_factor
    return np.asarray(scales)


def sort_by_score(rows: np.ndarray) -> np.ndarray:
    # The package's order (np.argsort reversed), kept so that ties break the same way.
    return rows[np.argsort(rows[:, 5])[::-1]]


def _suppressed(boxes: np.ndarray, threshold: float, method: str) -> np.ndarray:
    """mtcnn's NMS: drop a box when ANY higher-scored box (kept or not) overlaps it by more than threshold.

    That is not greedy NMS; it is what ``mtcnn.utils.bboxes.nms`` computes from
    its full IoU matrix. ``boxes`` are x1, y1, x2, y2 in score order. The IoU
    expressions are the package's, term for term, so decisions are identical.
    """
    n = len(boxes)
    if n < 2:
        return np.zeros(n, dtype=bool)
    x1, y1, x2, y2 = boxes.T
    area = (x2 - x1) * (y2 - y1)
    inter = (np.maximum(0, np.minimum(x2[:, None], x2[None, :]) - np.maximum(x1[:, None], x1[None, :]))
             * np.maximum(0, np.minimum(y2[:, None], y2[None, :]) - np.maximum(y1[:, None], y1[None, :])))
    with np.errstate(invalid="ignore", divide="ignore"):
        if method == "union":
            overlap = inter / (area[:, None] + area[None, :] - inter)
        else:
            overlap = inter / np.minimum(area[:, None], area[None, :])
    failed = np.triu(overlap > threshold, k=1)        # [i, j]: earlier box i overlaps later box j
    return failed.any(axis=0)


def nms_per_image(rows: np.ndarray, threshold: float, method: str = "union", initial_sort: bool = True) -> np.ndarray:
    """``smart_nms_from_bboxes``: per image, in score order; result grouped by image, ascending."""
    if not len(rows):
        return rows
    if initial_sort:
        rows = sort_by_score(rows)
    ids = rows[:, 0]
    kept = []
    for image_id in np.unique(ids):
        subset = rows[ids == image_id]
        kept.append(subset[~_suppressed(subset[:, 1:5], threshold, method)])
    return np.concatenate(kept, axis=0)


def with_added(kept: np.ndarray, extra: np.ndarray, threshold: float, method: str) -> np.ndarray:
    """``kept`` rows (already suppressed among themselves) as they are, plus the ``extra`` rows that neither a kept
    row nor a higher-scored extra row overlaps by more than ``threshold``; per image the kept rows first."""
    if not len(extra):
        return kept
    # Kept boxes do not overlap one another, so putting them first and suppressing in that order drops none of
    # them, whatever the extra boxes' scores.
    return nms_per_image(np.concatenate([kept, sort_by_score(extra)]), threshold, method=method, initial_sort=False)


def _overlapping(rows: np.ndarray, others: np.ndarray, threshold: float) -> np.ndarray:
    """Per row, whether a row of ``others`` in the same image overlaps it by more than ``threshold`` IoU."""
    out = np.zeros(len(rows), bool)
    for image in np.unique(rows[:, 0]) if len(others) else ():
        mine, theirs = rows[:, 0] == image, others[others[:, 0] == image]
        if len(theirs):
            out[mine] = iou(rows[mine, 1:5], theirs[:, 1:5]).max(axis=1) > threshold
    return out


def to_square(rows: np.ndarray) -> np.ndarray:
    """``resize_to_square``: grow the short side about the centre."""
    rows = rows.copy()
    h = rows[:, 4] - rows[:, 2]
    w = rows[:, 3] - rows[:, 1]
    side = np.maximum(w, h)
    rows[:, 1] = rows[:, 1] + w * 0.5 - side * 0.5
    rows[:, 2] = rows[:, 2] + h * 0.5 - side * 0.5
    rows[:, 3] = rows[:, 1] + side
    rows[:, 4] = rows[:, 2] + side
    return rows


def refine(rows: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """``adjust_bboxes``: offsets are fractions of the (inclusive) box size."""
    rows = rows.copy()
    w = rows[:, 3] - rows[:, 1] + 1
    h = rows[:, 4] - rows[:, 2] + 1
    rows[:, 1:5] += offsets * np.stack([w, h, w, h], axis=-1)
    return rows


def pnet_proposals(reg: np.ndarray, prob: np.ndarray, scale: float, threshold: float) -> np.ndarray:
    """``generate_bounding_box`` + ``upscale_bboxes`` for one level (NCHW outputs), sorted by score."""
    score = prob[:, 1]
    image, y, x = np.nonzero(score > threshold)
    if not len(image):
        return np.empty((0, 6))
    r = reg[image, :, y, x].astype(np.float64)       # float32 -> float64, as numpy promotes it there
    left, top = x * PNET_STRIDE + 1, y * PNET_STRIDE + 1
    right, bottom = x * PNET_STRIDE + PNET_INPUT, y * PNET_STRIDE + PNET_INPUT
    w, h = right - left, bottom - top
    rows = np.stack([image, left + r[:, 0] * w, top + r[:, 1] * h, right + r[:, 2] * w, bottom + r[:, 3] * h,
                     score[image, y, x]], axis=0).T
    rows = sort_by_score(rows)
    rows[:, 1:5] = rows[:, 1:5] / scale
    return rows


def crop_and_resize(images: np.ndarray, rows: np.ndarray, size: int) -> np.ndarray:
    """A numpy copy of ``tf.image.crop_and_resize`` (bilinear, extrapolation 0) as mtcnn calls it.

    The package normalises box corners by the image size (not size - 1) and
    TensorFlow maps them back with (size - 1); both are kept. Arithmetic is
    float32, like the TensorFlow CPU kernel, so patches match it to round-off.
    """
    height, width = images.shape[1], images.shape[2]
    boxes = (rows[:, [2, 1, 4, 3]] / np.asarray([height, width, height, width])).astype(np.float32)
    y1, x1, y2, x2 = boxes.T
    steps = np.arange(size, dtype=np.float32)
    in_y = (y1 * np.float32(height - 1))[:, None] + steps[None, :] * ((y2 - y1) * np.float32(height - 1)
                                                                     / np.float32(size - 1))[:, None]
    in_x = (x1 * np.float32(width - 1))[:, None] + steps[None, :] * ((x2 - x1) * np.float32(width - 1)
                                                                    / np.float32(size - 1))[:, None]
    valid = (((in_y >= 0) & (in_y <= height - 1))[:, :, None] & ((in_x >= 0) & (in_x <= width - 1))[:, None, :])
    top = np.floor(in_y)
    left = np.floor(in_x)
    y_lerp = (in_y - top)[:, :, None, None]
    x_lerp = (in_x - left)[:, None, :, None]
    top_i = np.clip(top, 0, height - 1).astype(np.intp)
    bottom_i = np.clip(np.ceil(in_y), 0, height - 1).astype(np.intp)
    left_i = np.clip(left, 0, width - 1).astype(np.intp)
    right_i = np.clip(np.ceil(in_x), 0, width - 1).astype(np.intp)
    # Gather from the flattened (pixels, 3) image with one linear index per corner: much
    # faster than three-array fancy indexing.
    pixels = images.reshape(-1, 3)
    base = rows[:, 0].astype(np.intp)[:, None] * (height * width)
    top_row = (base + top_i * width)[:, :, None]
    bottom_row = (base + bottom_i * width)[:, :, None]
    left_col, right_col = left_i[:, None, :], right_i[:, None, :]
    top_left = pixels.take(top_row + left_col, axis=0)
    top_right = pixels.take(top_row + right_col, axis=0)
    bottom_left = pixels.take(bottom_row + left_col, axis=0)
    bottom_right = pixels.take(bottom_row + right_col, axis=0)
    upper = top_left + (top_right - top_left) * x_lerp
    lower = bottom_left + (bottom_right - bottom_left) * x_lerp
    patches = upper + (lower - upper) * y_lerp
    patches[~valid] = 0.0
    return patches


# --------------------------------------------------------------------------- the detector

def _run_chunked(session, names: list[str], inputs: np.ndarray, step: int) -> list[np.ndarray]:
    """Run NHWC ``inputs`` through a graph (NCHW input) in calls of at most ``step`` images."""
    def run(chunk: np.ndarray) -> list[np.ndarray]:
        return session.run(names, {"input": np.ascontiguousarray(chunk.transpose(0, 3, 1, 2))})

    if len(inputs) <= step:
        return run(inputs)
    parts = [run(inputs[start:start + step]) for start in range(0, len(inputs), step)]
    return [np.concatenate(outputs, axis=0) for outputs in zip(*parts)]


def frames_per_step(height: int, width: int, max_pixels: int | None = None) -> int:
    """Frames of this size a part detects at once: as many as fit in ``max_pixels`` (default
    ``MAX_PIXELS_PER_STEP``), at least one."""
    return max(1, (max_pixels or MAX_PIXELS_PER_STEP) // max(height * width, 1))


def _pyramid_function(height: int, width: int, scales: np.ndarray, device: str):
    """A compiled uint8 batch -> (normalised batch, level 0, level 1, ...) for one frame size."""
    import tensorflow as tf

    # The package resizes to (shape * scale) and TensorFlow truncates that to int.
    sizes = [(int(height * scale), int(width * scale)) for scale in scales]

    @tf.function(input_signature=[tf.TensorSpec([None, height, width, 3], tf.uint8)])
    def pyramid(frames):
        with tf.device(device):
            normalized = (tf.cast(frames, tf.float32) - 127.5) / 128.0
            return [normalized] + [tf.image.resize(normalized, size, method="area") for size in sizes]

    return pyramid


_ARENA_LOCK = threading.Lock()
_arena_registered = False


def _share_exact_arena(ort, options) -> None:
    """Let the sessions share one CPU arena that grows by exactly what a call asks for.

    The default arena grows in powers of two and each session has its own; over
    1200 frames the shared, exact one kept the peak RSS ~70 MB lower. Process-wide
    (onnxruntime's environment), registered once; without it the default arena is used.
    """
    global _arena_registered
    with _ARENA_LOCK:
        if not _arena_registered:
            try:
                info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
                # max_mem 0 (no limit), extend strategy 1 = kSameAsRequested, default chunk sizes.
                ort.create_and_register_allocator(info, ort.OrtArenaCfg(0, 1, -1, -1))
                _arena_registered = True
            except Exception as error:      # an older onnxruntime, or another user registered one
                log.info("shared onnxruntime CPU arena not registered (%s); using the default arena", error)
                return
    options.add_session_config_entry("session.use_env_allocators", "1")


class FastMTCNN:
    """The three stages over one batch of same-sized frames; ``detect`` returns package-layout rows."""

    def __init__(self, pnet_weights: list, rnet_weights: list, onet_weights: list,
                 providers: tuple = ("CPUExecutionProvider",), tf_device: str = "CPU:0",
                 threads: int | None = None, workers: int | None = None,
                 thresholds: tuple[float, float, float] | None = None,
                 proposer: "Callable[[list[np.ndarray], np.ndarray | None], np.ndarray] | None" = None) -> None:
        import onnxruntime as ort

        # P-Net, R-Net and O-Net's score thresholds: the package's unless given (read here, not at import, so
        # that the labelling tool's permissive detector can lower the module's values first).
        self.thresholds = tuple(thresholds) if thresholds is not None else (
            THRESHOLD_PNET, THRESHOLD_RNET, THRESHOLD_ONET)
        # Another detector's proposals for O-Net (``blazeface.BlazeFace.propose``): (frames, a pyramid level at
        # least PROPOSER_INPUT long or None) -> [image, x1, y1, x2, y2, score] rows; O-Net reads those where
        # MTCNN found no face (``_stage_proposals``).
        self.proposer = proposer

        on_cpu = list(providers)[0] == "CPUExecutionProvider"
        cores = os.cpu_count() or 1
        # On the CPU a batch is cut into one part per core, each run start to end (pyramid,
        # P-Net, R-Net, O-Net, NMS) by its own thread on single-threaded sessions: that keeps
        # both cores busy through the numpy glue between the networks too, which intra-op
        # threads cannot. On a GPU one part is best.
        self.workers = workers or (cores if on_cpu else 1)
        self.threads = threads or max(1, cores // self.workers)
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle intra-op threads would otherwise spin and take CPU from the other stages.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # With calls bounded (MAX_PIXELS_PER_CALL, MAX_PATCHES_PER_CALL) the arena holds ~100 MB
        # for good and reuses it. Without it every call's activations come fresh from malloc:
        # page faults on each call (~10% more CPU) and, with several threads, glibc heaps that
        # fragment: the peak RSS over 320 frames was ~100 MB higher without the arena.
        options.enable_cpu_mem_arena = True
        # onnxruntime keeps one memory plan per input shape it has seen; P-Net sees a new shape for every
        # frame size, so an upload of images of many sizes would grow the process for good.
        options.enable_mem_pattern = False
        if on_cpu:
            _share_exact_arena(ort, options)
        self._pnet = ort.InferenceSession(pnet_onnx(pnet_weights), options, providers=list(providers))
        self._rnet = ort.InferenceSession(rnet_onnx(rnet_weights), options, providers=list(providers))
        self._onet = ort.InferenceSession(onet_onnx(onet_weights), options, providers=list(providers))
        self.providers = self._pnet.get_providers()
        self.tf_device = tf_device
        self._pyramids: OrderedDict[tuple, object] = OrderedDict()
        self._lock = threading.Lock()
        self._pool = None
        if self.workers > 1:
            from concurrent.futures import ThreadPoolExecutor
            self._pool = ThreadPoolExecutor(self.workers - 1, thread_name_prefix="mtcnn")

    def detect(self, frames: list[np.ndarray], min_face_size: int = 20) -> np.ndarray:
        """All faces of same-sized RGB uint8 frames as (n, 16) rows, clipped to the frame like the package.

        Every step is per image (P-Net, patches, NMS), so cutting the batch into
        parts changes no result; the parts run in parallel and their rows are
        put back in frame order.
        """
        parts = min(self.workers, len(frames))
        if parts < 2:
            return self._detect(frames, min_face_size)
        bounds = np.linspace(0, len(frames), parts + 1).round().astype(int)
        futures = [self._pool.submit(self._detect, frames[start:stop], min_face_size)
                   for start, stop in zip(bounds[1:-1], bounds[2:])]
        results = [self._detect(frames[:bounds[1]], min_face_size)] + [future.result() for future in futures]
        for start, rows in zip(bounds[:-1], results):
            rows[:, 0] += start
        return np.concatenate(results, axis=0)

    def _detect(self, frames: list[np.ndarray], min_face_size: int) -> np.ndarray:
        """``detect`` of one part, in steps of at most ``MAX_PIXELS_PER_STEP`` pixels (per image, so the same
        rows)."""
        height, width = frames[0].shape[:2]
        step = frames_per_step(height, width)
        if len(frames) <= step:
            return self._detect_step(frames, min_face_size)
        results = []
        for start in range(0, len(frames), step):
            rows = self._detect_step(frames[start:start + step], min_face_size)
            rows[:, 0] += start
            results.append(rows)
        return np.concatenate(results, axis=0)

    def _detect_step(self, frames: list[np.ndarray], min_face_size: int) -> np.ndarray:
        height, width = frames[0].shape[:2]
        scales = pyramid_scales(width, height, min_face_size)
        if not len(scales):
            return np.empty((0, 16))
        normalized, levels = self._pyramid(frames, scales)
        proposals = None
        if self.proposer is not None:
            # The smallest level still 192 px long serves as the proposer's input, before P-Net frees the levels.
            fit = [number for number, level in enumerate(levels) if max(level.shape[1:3]) >= PROPOSER_INPUT]
            proposals = self.proposer(frames, levels[fit[-1]] if fit else None)
        rows = self._stage_pnet(levels, scales)
        if len(rows):
            rows = self._stage_rnet(normalized, rows)
        if len(rows):
            rows = self._stage_onet(normalized, rows, rows[:, 5] > THRESHOLD_RNET)
        if proposals is not None:
            rows = self._stage_proposals(proposals, normalized, rows.reshape(-1, 16))
        if not len(rows):
            return np.empty((0, 16))
        # limit_bboxes(fit_to_image=True, limit_landmarks=False)
        rows[:, [1, 3]] = np.clip(rows[:, [1, 3]], 0, width - 1)
        rows[:, [2, 4]] = np.clip(rows[:, [2, 4]], 0, height - 1)
        return rows

    def _pyramid(self, frames: list[np.ndarray], scales: np.ndarray):
        """Normalised frames and every pyramid level, from one compiled TensorFlow call per batch.

        The levels must be TensorFlow's own AREA resize: it computes its area
        weights in float32, which differs from an exact area resize (cv2
        INTER_AREA) by up to 3e-5; that moved final boxes by ~2e-3 px and the
        expression network's output by more than 1e-4. In one graph the ten
        independent resizes also run in parallel on TensorFlow's inter-op threads.
        """
        height, width = frames[0].shape[:2]
        key = (height, width, tuple(scales))
        with self._lock:        # the parts of a batch ask for the same function at the same time
            if key in self._pyramids:
                self._pyramids.move_to_end(key)
            else:
                self._pyramids[key] = _pyramid_function(height, width, scales, self.tf_device)
                if len(self._pyramids) > MAX_PYRAMID_FUNCTIONS:
                    self._pyramids.popitem(last=False)
            pyramid = self._pyramids[key]
        normalized, *levels = pyramid(np.stack(frames))
        return normalized.numpy(), [level.numpy() for level in levels]

    def _stage_pnet(self, levels: list[np.ndarray], scales: np.ndarray) -> np.ndarray:
        """P-Net over every level; empties ``levels`` as it goes, so each level is freed once seen."""
        per_level = []
        for scale in scales:
            level = levels.pop(0)
            step = max(1, MAX_PIXELS_PER_CALL // (level.shape[1] * level.shape[2]))
            reg, prob = _run_chunked(self._pnet, ["reg", "prob"], level, step)
            rows = pnet_proposals(reg, prob, scale, self.thresholds[0])
            per_level.append(nms_per_image(rows, NMS_PNET_LEVEL, initial_sort=False))
        rows = np.concatenate(per_level, axis=0)
        return to_square(nms_per_image(rows, NMS_PNET_ALL))

    def _stage_rnet(self, normalized: np.ndarray, rows: np.ndarray) -> np.ndarray:
        reg, prob = _run_chunked(self._rnet, ["reg", "prob"], crop_and_resize(normalized, rows, 24),
                                 MAX_PATCHES_PER_CALL)
        rows = rows.copy()
        rows[:, 5] = prob[:, 1]
        rows = refine(rows, reg)
        rows = rows[rows[:, 5] > self.thresholds[1]]
        return to_square(nms_per_image(rows, NMS_RNET))

    def _stage_onet(self, normalized: np.ndarray, rows: np.ndarray, standard: np.ndarray) -> np.ndarray:
        """O-Net over R-Net's boxes. ``standard``: the boxes that passed R-Net's own threshold. With the package's
        thresholds that is every box. With lower ones, the boxes that pass both stages' own thresholds are
        suppressed among themselves exactly as the package does, and the others are added only where none of
        those overlaps them: lowering the thresholds adds faces and never moves one the package finds.
        (R-Net's suppression needs no such care: a box is dropped only for a higher-scored one, and every box
        scored above R-Net's own threshold is higher than every box added below it.)"""
        rows = self._onet_rows(normalized, rows)
        found = standard & (rows[:, 5] > THRESHOLD_ONET)
        kept = nms_per_image(rows[found], NMS_ONET, method="min")
        return with_added(kept, rows[~found & (rows[:, 5] > self.thresholds[2])], NMS_ONET, "min")

    def _stage_proposals(self, proposals: np.ndarray, normalized: np.ndarray, found: np.ndarray) -> np.ndarray:
        """``found`` (MTCNN's faces, as they are) plus the proposer's faces that O-Net passes (its threshold)
        where no found face is: a proposal, before and after O-Net's refinement, overlaps no found face by more
        than ``PROPOSAL_OVERLAP`` IoU. The added faces are suppressed among themselves as O-Net's are."""
        fresh = proposals[~_overlapping(proposals, found, PROPOSAL_OVERLAP)] if len(proposals) else proposals
        if not len(fresh):
            return found
        rows = self._onet_rows(normalized, to_square(fresh))
        rows = rows[rows[:, 5] > self.thresholds[2]]
        rows = rows[~_overlapping(rows, found, PROPOSAL_OVERLAP)]
        if not len(rows):
            return found
        return np.concatenate([found, nms_per_image(rows, NMS_ONET, method="min")])

    def _onet_rows(self, normalized: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """O-Net on square boxes: rows with O-Net's score, its refined box and its five landmarks."""
        reg, landmarks, prob = _run_chunked(self._onet, ["reg", "landmarks", "prob"],
                                            crop_and_resize(normalized, rows, 48), MAX_PATCHES_PER_CALL)
        # adjust_landmarks writes float64 results back into the float32 network output: keep that rounding.
        w = rows[:, 3:4] - rows[:, 1:2] + 1
        h = rows[:, 4:5] - rows[:, 2:3] + 1
        landmarks = landmarks.copy()
        landmarks[:, 0:5] = w * landmarks[:, 0:5] + rows[:, 1:2] - 1
        landmarks[:, 5:10] = h * landmarks[:, 5:10] + rows[:, 2:3] - 1
        rows = rows.copy()
        rows[:, 5] = prob[:, 1]
        return np.concatenate([refine(rows, reg), landmarks], axis=-1)
