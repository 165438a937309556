"""Frame sources: any ordered stream of frames the analyzer can take, decoded one batch at a time.

A source is read once, through ``source.open(batch_size)``: a ``FrameStream``
that yields batches of ``Frame``, is closed however the reading ends (``with``:
zip handles, video captures and decode threads are released at once, not when
garbage is collected), and hands back an immutable ``SourceSummary`` of what
was read, skipped (unreadable frames, with the reason) and ignored (entries
that are not frames at all). ``expected`` is how many frames it will try, for
progress; ``listed`` is what it found before stride and ``max_frames``.
No source ever holds more than about two batches decoded.
"""

from __future__ import annotations

import logging
import queue
import threading
import zipfile
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Iterator

import cv2

from facecore.errors import AnalysisError
from facecore.frames import (
    IMAGE_EXTENSIONS,
    MAX_FILE_BYTES,
    Frame,
    FrameItem,
    FrameListing,
    SkippedFrame,
    check_pixels,
    decode_bytes,
    decode_frame,
    iter_decoded_batches,
    natural_key,
)

from .result import SourceSummary

log = logging.getLogger(__name__)

ARCHIVE_EXTENSIONS = frozenset({".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar"})
# The containers VideoSource is offered (OpenCV's FFmpeg reads them). A file is taken as a video by one of these
# extensions or, whatever its name, by its first bytes (``sniff``): the service, the batch runner and the
# command line all decide that way.
VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".avi", ".webm", ".mkv", ".flv", ".mpg", ".mpeg", ".ts",
                              ".wmv", ".3gp", ".gif"})
VIDEO, ZIP, IMAGE = "video", "zip", "image"
SNIFF_BYTES = 512       # enough for every signature below (MPEG-TS needs its second sync byte at 188)


def sniff(path: Path) -> str | None:
    """What a file holds by its first bytes: ``"video"``, ``"zip"``, ``"image"`` (a still OpenCV decodes) or None.
    Extensions lie (a phone's .mp4 named .bin, a .gif that is an animation); signatures do not."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(SNIFF_BYTES)
    except OSError:
        return None
    return sniff_bytes(head)


def sniff_bytes(head: bytes) -> str | None:
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):          # a zip (the second: an empty one)
        return ZIP
    if head[:3] == b"\xff\xd8\xff" or head[:8] == b"\x89PNG\r\n\x1a\n" or (head[:2] == b"BM" and len(head) > 26):
        return IMAGE
    if (head[:6] in (b"GIF87a", b"GIF89a")                       # GIF, animated or not: FFmpeg reads it
            or head[:4] == b"\x1a\x45\xdf\xa3"                   # Matroska, WebM
            or head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip")   # MP4, MOV, M4V, 3GP
            or (head[:4] == b"RIFF" and head[8:12] == b"AVI ")    # AVI
            or head[:3] == b"FLV"                                 # Flash video
            or head[:4] in (b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3")   # MPEG program stream, MPEG-1/2 video
            or head[:4] == b"\x30\x26\xb2\x75"                   # ASF, WMV
            or (len(head) > 188 and head[0] == 0x47 and head[188] == 0x47)):   # MPEG transport stream
        return VIDEO
    return None


def is_video(path: Path) -> bool:
    """A video by its content, or, where the content says nothing we know, by its extension."""
    found = sniff(path)
    return found == VIDEO or (found is None and path.suffix.lower() in VIDEO_EXTENSIONS)


class FrameSource:
    """Base of every source; subclasses fill ``listed`` / ``expected`` and implement ``batches``."""
    label = "frames"              # names the input in messages, e.g. the sequence folder or the file name

    def __init__(self, stride: int = 1, max_frames: int | None = None) -> None:
        self.stride = stride
        self.max_frames = max_frames
        self.listed: int | None = None      # frames found, before stride and max_frames (None: not known yet)
        self.expected: int | None = None    # frames that will be tried (None: not known, e.g. a video)
        self.truncated = False              # True when max_frames cut the stream short
        self.skipped: list[SkippedFrame] = []
        self.ignored: list[str] = []

    def batches(self, batch_size: int) -> Iterator[list[Frame]]:
        raise NotImplementedError

    def open(self, batch_size: int) -> "FrameStream":
        return FrameStream(self, batch_size)

    def _select(self, items: list[FrameItem]) -> list[FrameItem]:
        """Apply stride, then max_frames, to an indexable list of frames."""
        self.listed = len(items)
        chosen = items[::self.stride]
        if self.max_frames is not None and len(chosen) > self.max_frames:
            chosen = chosen[:self.max_frames]
            self.truncated = True
        self.expected = len(chosen)
        return chosen


class FrameStream:
    """One pass over a source: an iterator of batches and a context manager that closes the source's reader."""

    def __init__(self, source: FrameSource, batch_size: int) -> None:
        self._source = source
        self._refused_up_front = len(source.skipped)   # entries refused before reading are not frames tried
        self._batches = source.batches(batch_size)
        self._read: list[tuple[int, str]] = []

    def __enter__(self) -> "FrameStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._batches.close()

    def __iter__(self) -> "FrameStream":
        return self

    def __next__(self) -> list[Frame]:
        batch = next(self._batches)
        self._read.extend((frame.index, frame.name) for frame in batch)
        return batch

    @property
    def expected(self) -> int | None:
        """Frames the source will try (None while not known, e.g. a video without a frame count)."""
        return self._source.expected

    @property
    def tried(self) -> int:
        """Frames read or found unreadable so far."""
        return len(self._read) + len(self._source.skipped) - self._refused_up_front

    def summary(self) -> SourceSummary:
        source = self._source
        return SourceSummary(label=source.label,
                             listed=source.listed if source.listed is not None else len(self._read),
                             read=tuple(self._read), skipped=tuple(source.skipped), ignored=tuple(source.ignored),
                             truncated=source.truncated)


class FolderSource(FrameSource):
    """The image files of one folder, in natural order (what the legacy endpoint analyses)."""

    def __init__(self, listing: FrameListing, stride: int = 1, max_frames: int | None = None) -> None:
        super().__init__(stride, max_frames)
        self.label = listing.folder.name
        self.ignored = list(listing.ignored)
        items = [(index, path.name, partial(decode_frame, path)) for index, path in enumerate(listing.images)]
        self._items = self._select(items)

    def batches(self, batch_size: int) -> Iterator[list[Frame]]:
        return iter_decoded_batches(self._items, batch_size, self.skipped)


class ImageFilesSource(FrameSource):
    """Uploaded image files, in the order given; each is decoded whatever its name says."""

    def __init__(self, files: list[tuple[str, Path]], label: str,
                 stride: int = 1, max_frames: int | None = None) -> None:
        super().__init__(stride, max_frames)
        self.label = label
        items = [(index, name, partial(decode_frame, path)) for index, (name, path) in enumerate(files)]
        self._items = self._select(items)

    def batches(self, batch_size: int) -> Iterator[list[Frame]]:
        return iter_decoded_batches(self._items, batch_size, self.skipped)


class ZipSource(FrameSource):
    """Image entries of a zip archive, in natural order of their names, decoded straight from the archive.

    Nothing is extracted to disk, so a zip-slip name could do no harm, but such
    entries (absolute paths, ``..``) are still refused: skipped and counted, as
    are nested archives. Entry count and total uncompressed size are checked
    from the central directory before anything is decompressed.
    """

    def __init__(self, path: Path, label: str, max_entries: int, max_total_bytes: int,
                 stride: int = 1, max_frames: int | None = None) -> None:
        super().__init__(stride, max_frames)
        self.label = label
        self._path = path
        try:
            with zipfile.ZipFile(path) as archive:
                entries = archive.infolist()
        except (zipfile.BadZipFile, OSError, ValueError) as error:
            raise AnalysisError("invalid_archive", f"{label!r} is not a readable zip archive ({error})") from None
        if len(entries) > max_entries:
            raise AnalysisError("too_many_frames",
                                f"{label!r} has {len(entries)} entries, more than {max_entries}")
        total = sum(entry.file_size for entry in entries)
        if total > max_total_bytes:
            raise AnalysisError("archive_too_large",
                                f"{label!r} unpacks to {total} bytes, more than {max_total_bytes}")
        images = []
        for entry in entries:
            if entry.is_dir():
                continue
            name = entry.filename
            reason = _refuse_entry(name)
            if reason:
                log.warning("refusing zip entry %r: %s", name, reason)
                self.skipped.append(SkippedFrame(-1, name, reason))
            elif _is_hidden(name) or PurePosixPath(name).suffix.lower() not in IMAGE_EXTENSIONS:
                self.ignored.append(name)
            else:
                images.append(entry)
        images.sort(key=lambda entry: natural_key(entry.filename))
        self._archive: zipfile.ZipFile | None = None
        self._items = self._select([(index, entry.filename, partial(self._read, entry))
                                    for index, entry in enumerate(images)])

    def _read(self, entry: zipfile.ZipInfo):
        if entry.file_size > MAX_FILE_BYTES:
            raise ValueError(f"file is {entry.file_size} bytes, more than {MAX_FILE_BYTES}")
        try:
            # zipfile serialises reads of one archive internally, so the decode threads may share it.
            with self._archive.open(entry) as member:
                data = member.read(MAX_FILE_BYTES + 1)
        except (zipfile.BadZipFile, RuntimeError, NotImplementedError, EOFError) as error:
            # Corrupt, encrypted or oddly compressed entries are one unreadable frame, not a failed request.
            raise ValueError(f"archive entry cannot be read ({error})") from None
        return decode_bytes(data)

    def batches(self, batch_size: int) -> Iterator[list[Frame]]:
        with zipfile.ZipFile(self._path) as archive:
            self._archive = archive
            yield from iter_decoded_batches(self._items, batch_size, self.skipped)


class VideoSource(FrameSource):
    """A video file decoded with OpenCV, frame by frame; frame names are their position in the video."""

    def __init__(self, path: Path, label: str, stride: int = 1, max_frames: int | None = None) -> None:
        super().__init__(stride, max_frames)
        self.label = label
        self._path = path
        capture = cv2.VideoCapture(str(path))
        try:
            # Reading the first frame is the only reliable proof that the container and codec are usable.
            if not capture.isOpened() or not capture.read()[0]:
                raise AnalysisError("invalid_video", f"{label!r} has no frame that can be decoded")
            width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
            height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
            try:
                check_pixels(width, height)
            except ValueError as error:
                raise AnalysisError("frame_too_large", f"{label!r}: {error}") from None
            self.fps = float(capture.get(cv2.CAP_PROP_FPS)) or None
            # The container's frame count is an estimate (some formats do not store it): for progress only.
            count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        finally:
            capture.release()
        if count > 0:
            planned = -(-count // stride)
            self.expected = min(planned, max_frames) if max_frames is not None else planned

    def batches(self, batch_size: int) -> Iterator[list[Frame]]:
        # Decoding (FFmpeg, and the colour conversion) releases the GIL: in a thread of its own it overlaps
        # detection and the per-face networks instead of waiting for them.
        return read_ahead(self._decode(batch_size), name=f"decode {self.label}")

    def _decode(self, batch_size: int) -> Iterator[list[Frame]]:
        capture = cv2.VideoCapture(str(self._path))
        try:
            index, taken, batch = 0, 0, []
            while True:
                if index % self.stride:
                    # grab() advances without converting the frame: cheaper for frames that are not analysed.
                    if not capture.grab():
                        break
                    index += 1
                    continue
                if self.max_frames is not None and taken >= self.max_frames:
                    self.truncated = capture.grab()
                    break
                ok, bgr = capture.read()
                if not ok:
                    break
                # In place: the decoder hands over a fresh array per frame, so no second frame-sized copy.
                batch.append(Frame(index, f"frame_{index:06d}", cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB, dst=bgr)))
                index += 1
                taken += 1
                if len(batch) == batch_size:
                    yield batch
                    batch = []
            if batch:
                yield batch
            self.listed = index         # frames gone through; with truncated, the video holds more
            self.expected = taken
        finally:
            capture.release()


_DONE = object()


class read_ahead:
    """Run ``batches`` in a thread of its own, at most ``depth`` items ahead of the consumer, in order.

    An iterator with ``close()``. An exception raised by ``batches`` is raised to the consumer at the item
    where it happened, after the items before it. ``close()`` (also when the iteration was never started)
    stops the thread, which closes ``batches`` itself (its ``finally`` runs there: a video capture is
    released) before ``close()`` returns.
    """

    def __init__(self, batches: Iterator, depth: int = 1, name: str = "decode") -> None:
        self._batches = batches
        self._items: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._finished = False
        self._thread = threading.Thread(target=self._produce, name=name, daemon=True)
        self._thread.start()

    def _produce(self) -> None:
        try:
            for item in self._batches:
                if not self._put((item, None)):
                    return
            self._put((_DONE, None))
        except BaseException as error:         # handed to the consumer, raised there
            self._put((_DONE, error))
        finally:
            self._batches.close()

    def _put(self, entry) -> bool:
        while not self._stop.is_set():
            try:
                self._items.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> "read_ahead":
        return self

    def __next__(self):
        if self._finished:
            raise StopIteration
        item, error = self._items.get()
        if item is _DONE:
            self._finished = True
            self._thread.join()
            if error is not None:
                raise error
            raise StopIteration
        return item

    def close(self) -> None:
        self._finished = True
        self._stop.set()
        self._thread.join()


def _refuse_entry(name: str) -> str | None:
    """Why a zip entry is refused, or None. Zip names use "/", but some tools write "\\"."""
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or (len(parts[0]) == 2 and parts[0][1] == ":"):
        return "absolute path in archive"
    if ".." in parts:
        return "path leaves the archive (..)"
    if PurePosixPath(parts[-1]).suffix.lower() in ARCHIVE_EXTENSIONS:
        return "nested archive"
    return None


def _is_hidden(name: str) -> bool:
    # macOS and editors add "__MACOSX/._frame.jpg" and ".DS_Store": not frames.
    return any(part.startswith((".", "__MACOSX")) for part in name.split("/") if part)
