"""A video's frame size from its header, before any frame is decoded.

FFmpeg (behind OpenCV) decodes the first frame to tell a video's size, and a frame of 16000x16000 pixels costs
768 MB once decoded. ``declared_frame_size`` reads what the file declares instead, from its first bytes and
headers only: an image sent as a video (FFmpeg takes PNG, JPEG, BMP, GIF... as one-frame videos) through
PIL's header reader; MP4 and QuickTime (``tkhd`` and the video sample entries of ``stsd``); AVI (``avih`` and
the video streams' ``strf``); Matroska and WebM (``PixelWidth``/``PixelHeight`` of the video tracks). The
largest size declared anywhere counts. ``None`` when the container is none of these or says nothing; the
caller then falls back to decoding the first frame, with at most ``MAX_PROBES`` of those at once.
"""

from __future__ import annotations

import struct
import threading
import warnings
from pathlib import Path
from typing import BinaryIO

from PIL import Image

MAX_PROBES = 2                      # first frames decoded at once to learn a size no header declared
PROBES = threading.BoundedSemaphore(MAX_PROBES)
_MAX_BOXES = 10_000                 # header elements looked at, at most: a crafted file cannot make this loop


def declared_frame_size(path: Path) -> tuple[int, int] | None:
    """(width, height) of the largest frame the file's header declares, or None when it declares none.
    ``ValueError`` for an image header so large that PIL refuses to read it (a decompression bomb)."""
    with open(path, "rb") as file:
        head = file.read(24)
        file.seek(0)
        try:
            if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
                return struct.unpack(">II", head[16:24])
            if head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"):
                return _largest(_mp4_sizes(file, 0, _end(file), depth=0))
            if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
                return _largest(_avi_sizes(file))
            if head[:4] == b"\x1a\x45\xdf\xa3":
                return _largest(_matroska_sizes(file))
        except (struct.error, ValueError, OSError):
            return None
        return _image_size(path)


def _largest(sizes: list[tuple[int, int]]) -> tuple[int, int] | None:
    sizes = [(width, height) for width, height in sizes if width > 0 and height > 0]
    return max(sizes, key=lambda size: size[0] * size[1]) if sizes else None


def _end(file: BinaryIO) -> int:
    file.seek(0, 2)
    end = file.tell()
    file.seek(0)
    return end


def _image_size(path: Path) -> tuple[int, int] | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:      # reads the header only
                return image.size
    except Image.DecompressionBombError:
        raise ValueError(f"the header declares more than {2 * Image.MAX_IMAGE_PIXELS} pixels "
                         "(decompression bomb)") from None
    except Exception:                            # PIL raises many types for what is not an image it knows
        return None


# --- MP4 / QuickTime: boxes of (size, type) ---------------------------------------------------------------

_MP4_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl"}


def _mp4_sizes(file: BinaryIO, start: int, end: int, depth: int, handler: list | None = None) -> list:
    sizes: list[tuple[int, int]] = []
    handler = handler if handler is not None else [None]
    position = start
    for _ in range(_MAX_BOXES):
        if position + 8 > end:
            break
        file.seek(position)
        size, kind = struct.unpack(">I4s", file.read(8))
        header = 8
        if size == 1:
            size = struct.unpack(">Q", file.read(8))[0]
            header = 16
        elif size == 0:
            size = end - position
        if size < header:
            break
        body, box_end = position + header, min(position + size, end)
        if kind in _MP4_CONTAINERS and depth < 8:
            if kind == b"trak":
                handler = [None]
            sizes += _mp4_sizes(file, body, box_end, depth + 1, handler)
        elif kind == b"tkhd":
            version = file.read(1)[0]
            file.seek(body + (88 if version == 1 else 76))
            width, height = struct.unpack(">II", file.read(8))
            sizes.append((width >> 16, height >> 16))           # 16.16 fixed point
        elif kind == b"hdlr":
            file.seek(body + 8)
            handler[0] = file.read(4)
        elif kind == b"stsd" and handler[0] == b"vide":
            file.seek(body + 4)
            count = struct.unpack(">I", file.read(4))[0]
            entry = body + 8
            for _ in range(min(count, 16)):
                file.seek(entry)
                entry_size = struct.unpack(">I", file.read(4))[0]
                file.seek(entry + 32)                        # size, format, 6 reserved, index, 16 reserved
                sizes.append(struct.unpack(">HH", file.read(4)))
                if entry_size < 8:
                    break
                entry += entry_size
        position = position + size
    return sizes


# --- AVI: RIFF chunks -----------------------------------------------------------------------------------------

def _avi_sizes(file: BinaryIO) -> list:
    sizes = []
    file.seek(12)
    kind, size = struct.unpack("<4sI", file.read(8))
    if kind != b"LIST" or file.read(4) != b"hdrl":
        return sizes
    end, position, stream = 12 + 8 + size, 24, None
    for _ in range(_MAX_BOXES):
        if position + 8 > end:
            break
        file.seek(position)
        kind, size = struct.unpack("<4sI", file.read(8))
        body = position + 8
        if kind == b"avih":
            file.seek(body + 32)
            sizes.append(struct.unpack("<II", file.read(8)))
        elif kind == b"LIST":
            if file.read(4) == b"strl":
                position = body + 4                         # walk into the stream's list
                continue
        elif kind == b"strh":
            stream = file.read(4)
        elif kind == b"strf" and stream == b"vids":
            file.seek(body + 4)
            width, height = struct.unpack("<ii", file.read(8))
            sizes.append((abs(width), abs(height)))         # a negative height means top-down rows
        position = body + size + (size & 1)
    return sizes


# --- Matroska / WebM: EBML elements ---------------------------------------------------------------------------

_SEGMENT, _TRACKS, _TRACK_ENTRY, _VIDEO = 0x18538067, 0x1654AE6B, 0xAE, 0xE0
_PIXEL_WIDTH, _PIXEL_HEIGHT, _CLUSTER = 0xB0, 0xBA, 0x1F43B675


def _vint(file: BinaryIO, keep_marker: bool) -> tuple[int, int, bool]:
    """An EBML variable-length integer: (value, its length, whether it is the 'unknown' value)."""
    first = file.read(1)
    if not first:
        raise ValueError("end of file")
    length = 1
    while length <= 8 and not first[0] & (0x80 >> (length - 1)):
        length += 1
    if length > 8:
        raise ValueError("invalid EBML number")
    value = first[0] if keep_marker else first[0] & (0xFF >> length)
    for byte in file.read(length - 1):
        value = (value << 8) | byte
    unknown = not keep_marker and value == (1 << (7 * length)) - 1
    return value, length, unknown


def _matroska_sizes(file: BinaryIO) -> list:
    sizes: list[tuple[int, int]] = []
    end = _end(file)
    budget = [_MAX_BOXES]

    def walk(start: int, stop: int, track: dict | None) -> None:
        position = start
        while position < stop and budget[0] > 0:
            budget[0] -= 1
            file.seek(position)
            element, id_length, _ = _vint(file, keep_marker=True)
            size, size_length, unknown = _vint(file, keep_marker=False)
            body = position + id_length + size_length
            element_end = stop if unknown else min(body + size, stop)
            if element == _CLUSTER:
                return                                      # frames start: every header is behind
            if element in (_SEGMENT, _TRACKS, _VIDEO):
                walk(body, element_end, track)
            elif element == _TRACK_ENTRY:
                found: dict = {}
                walk(body, element_end, found)
                sizes.append((found.get(_PIXEL_WIDTH, 0), found.get(_PIXEL_HEIGHT, 0)))
            elif element in (_PIXEL_WIDTH, _PIXEL_HEIGHT) and track is not None and size <= 8:
                track[element] = int.from_bytes(file.read(size), "big")
            if unknown:
                return
            position = element_end

    walk(0, end, None)
    return sizes
