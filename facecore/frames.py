"""Read a folder of frames as a stream of decoded RGB batches.

Frames are taken in natural order (frame_2 before frame_10). Files that are not
images by extension are ignored and counted; images that cannot be decoded, or
that declare more pixels than ``MAX_PIXELS`` (decompression bombs), are skipped
and counted, never fatal. Decoding runs in a small thread pool because OpenCV
releases the GIL while it decodes, so the next batch is ready sooner.
"""

from __future__ import annotations

import io
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import cv2
import numpy as np
from PIL import Image

from facecore.errors import no_images, not_found

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp"})
MAX_PIXELS = 40_000_000          # a 8K frame is 33 MP; more is a bomb or a mistake
MAX_FILE_BYTES = 64 * 1024 * 1024


def natural_key(name: str) -> list:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


@dataclass
class FrameListing:
    folder: Path
    images: list[Path]
    ignored: list[str] = field(default_factory=list)   # not images by extension


@dataclass
class Frame:
    index: int          # position in the natural-sorted listing of images
    name: str
    rgb: np.ndarray     # H x W x 3 uint8


@dataclass
class SkippedFrame:
    index: int
    name: str
    reason: str


def list_frames(folder: Path) -> FrameListing:
    if not folder.is_dir():
        raise not_found(f"sequence folder {folder.name!r} does not exist")
    images, ignored = [], []
    root = folder.resolve()
    for entry in sorted(folder.iterdir(), key=lambda p: natural_key(p.name)):
        if entry.name.startswith(".") or not entry.is_file():
            continue
        if entry.suffix.lower() not in IMAGE_EXTENSIONS:
            ignored.append(entry.name)
            continue
        if entry.resolve().parent != root:
            # A frame that is a link to somewhere else is not part of this sequence.
            ignored.append(entry.name)
            continue
        images.append(entry)
    if not images:
        extra = f" ({len(ignored)} other file{'' if len(ignored) == 1 else 's'} ignored)" if ignored else ""
        raise no_images(f"sequence folder {folder.name!r} holds no .jpg/.jpeg/.png/.bmp frames{extra}")
    return FrameListing(folder=folder, images=images, ignored=ignored)


def check_pixels(width: int, height: int) -> None:
    """Refuse a frame that declares more than ``MAX_PIXELS`` before any memory is spent on it."""
    if width * height > MAX_PIXELS:
        raise ValueError(f"{width}x{height} is more than {MAX_PIXELS} pixels")


def decode_frame(path: Path) -> np.ndarray:
    """Decode one file to RGB, raising ValueError with the reason when it cannot be used."""
    size = path.stat().st_size
    # Checked before reading, so a huge file is never loaded just to be refused.
    if size > MAX_FILE_BYTES:
        raise ValueError(f"file is {size} bytes, more than {MAX_FILE_BYTES}")
    return decode_bytes(path.read_bytes())


def decode_bytes(data: bytes) -> np.ndarray:
    """Decode an encoded image (JPEG, PNG, BMP...) to RGB with the same checks as a frame file."""
    if len(data) == 0:
        raise ValueError("empty file")
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"file is {len(data)} bytes, more than {MAX_FILE_BYTES}")
    try:
        # Reading only the header tells the pixel count before any memory is spent on it.
        with Image.open(io.BytesIO(data)) as header:
            width, height = header.size
    except Image.DecompressionBombError:
        # PIL refuses headers of more than twice its own limit before we see the size; ours is lower anyway.
        raise ValueError(f"the header declares more than {MAX_PIXELS} pixels (decompression bomb)") from None
    except Exception as error:  # PIL raises many types for broken headers
        raise ValueError(f"not a readable image ({type(error).__name__})") from None
    check_pixels(width, height)
    bgr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if bgr is None or bgr.size == 0:
        raise ValueError("image data is corrupt")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


# One frame to decode: its index in the stream, its name, and how to get its RGB pixels.
FrameItem = tuple[int, str, Callable[[], np.ndarray]]


def iter_decoded_batches(items: Sequence[FrameItem], batch_size: int, skipped: list[SkippedFrame],
                         workers: int = 2) -> Iterator[list[Frame]]:
    """Decode ``items`` in order, ``batch_size`` at a time; failures go to ``skipped``.

    Only one batch is held decoded at a time (plus the one being decoded), so
    memory does not grow with the length of the sequence.
    """
    def load(item: FrameItem) -> Frame | SkippedFrame:
        index, name, decode = item
        try:
            return Frame(index, name, decode())
        except (ValueError, OSError) as error:
            return SkippedFrame(index, name, str(error))

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") as pool:
        chunks = [items[start:start + batch_size] for start in range(0, len(items), batch_size)]
        pending = pool.map(load, chunks[0]) if chunks else iter(())
        for number in range(len(chunks)):
            results = list(pending)
            if number + 1 < len(chunks):
                pending = pool.map(load, chunks[number + 1])   # decode ahead while the caller works
            batch = []
            for result in results:
                if isinstance(result, SkippedFrame):
                    log.warning("skipping frame %s: %s", result.name, result.reason)
                    skipped.append(result)
                else:
                    batch.append(result)
            if batch:
                yield batch
