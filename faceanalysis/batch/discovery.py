"""What a batch analyses: the paths named on the command line, expanded into inputs, and how each is recognised
again on the next run.

An argument is
- a video file, a zip of frames or one image: one input, known by its content as the service knows it
  (``service.analysis_request.kind_of``: the kinds ``video``, ``zip``, ``frames``);
- a folder: searched recursively; every video and zip in it is an input, and so is every folder that holds
  frames (images, taken as one sequence, as ``samples/seqA``: kind ``folder``). A folder in which nothing is
  found is itself one input, which fails as the service fails it (``no_images``), so that it shows in the tables;
- a manifest (``.txt``: one path a line, ``#`` comments; ``.csv``: the ``path`` column, or the first column),
  whose paths, relative to the manifest's folder, are expanded as arguments are.
Any other file is an input of kind ``unsupported`` that fails with ``unsupported_media_type``. A path that does
not exist stops the run before anything starts, listing what is missing.

An input is known by its absolute path with links resolved. Whether it changed is told first by a cheap
signature of its files' names, sizes and modification times (the driver computes it for every input), then by
the sha256 of its content (the worker computes it, so hashing is spread over the cluster).
"""

from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from faceanalysis.service.analysis_request import kind_of
from facecore.errors import AnalysisError
from facecore.frames import IMAGE_EXTENSIONS, list_frames, natural_key
from facecore.weights import sha256_of

MANIFEST_EXTENSIONS = frozenset({".txt", ".csv"})
MISSING_SHOWN = 5          # missing paths named in the error; the rest are counted


@dataclass(frozen=True)
class BatchInput:
    path: str              # absolute, links resolved: the input's identity in every table
    kind: str              # "video", "zip", "frames" (one image), "folder" (of frames) or "unsupported"

    @property
    def part_id(self) -> str:
        """The name of this input's part folder in the output (one per input, whatever its content)."""
        return hashlib.sha256(self.path.encode("utf-8")).hexdigest()[:24]


def input_not_found(missing: list[str]) -> AnalysisError:
    shown = ", ".join(repr(path) for path in missing[:MISSING_SHOWN])
    more = f" and {len(missing) - MISSING_SHOWN} more" if len(missing) > MISSING_SHOWN else ""
    return AnalysisError("input_not_found", f"no such file or folder: {shown}{more}")


def discover(arguments: list[str]) -> list[BatchInput]:
    """The inputs the arguments name, in the order given, each once. Raises ``input_not_found``."""
    found: list[BatchInput] = []
    missing: list[str] = []
    for argument in arguments:
        path = Path(argument).expanduser()
        if not path.exists():
            missing.append(argument)
        elif path.is_file() and path.suffix.lower() in MANIFEST_EXTENSIONS:
            for entry in read_manifest(path):
                entry_path = (path.parent / entry).expanduser()
                if entry_path.exists():
                    found.extend(_expand(entry_path))
                else:
                    missing.append(entry)
        else:
            found.extend(_expand(path))
    if missing:
        raise input_not_found(missing)
    seen: set[str] = set()
    unique = []
    for item in found:
        if item.path not in seen:
            seen.add(item.path)
            unique.append(item)
    return unique


def read_manifest(path: Path) -> list[str]:
    """The paths a manifest lists. A CSV uses its ``path`` column when its first row names one."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise AnalysisError("invalid_manifest", f"cannot read manifest {str(path)!r}: {error}") from None
    if path.suffix.lower() == ".txt":
        lines = (line.strip() for line in text.splitlines())
        return [line for line in lines if line and not line.startswith("#")]
    rows = [row for row in csv.reader(text.splitlines()) if row and any(cell.strip() for cell in row)]
    header = [cell.strip().lower() for cell in rows[0]] if rows else []
    column = header.index("path") if "path" in header else 0
    if "path" in header:
        rows = rows[1:]
    return [row[column].strip() for row in rows if len(row) > column and row[column].strip()]


def _expand(path: Path) -> list[BatchInput]:
    if path.is_dir():
        return _search(path) or [BatchInput(str(path.resolve()), "folder")]
    # Any other file, a manifest named inside a manifest included (one level keeps a run easy to follow),
    # is an input of its own that fails with a row saying why.
    return [BatchInput(str(path.resolve()), _file_kind(path) or "unsupported")]


def _file_kind(path: Path) -> str | None:
    kind = kind_of(path)
    return kind if kind in ("video", "zip", "frames") else None


def _search(folder: Path) -> list[BatchInput]:
    found = []
    # Links to folders are not followed, so a link loop cannot make the search endless.
    for root, folders, files in os.walk(folder):
        folders[:] = sorted((name for name in folders if not name.startswith(".")), key=natural_key)
        visible = [Path(root) / name for name in sorted(files, key=natural_key) if not name.startswith(".")]
        if any(path.suffix.lower() in IMAGE_EXTENSIONS for path in visible):
            found.append(BatchInput(str(Path(root).resolve()), "folder"))
        # Images are frames of their folder; every other file is read for what it holds (a clip without an
        # extension is still a video).
        kinds = [(path, _file_kind(path)) for path in visible if path.suffix.lower() not in IMAGE_EXTENSIONS]
        found.extend(BatchInput(str(path.resolve()), kind) for path, kind in kinds if kind in ("video", "zip"))
    return found


def _files(item: BatchInput) -> list[Path]:
    """The files whose content is the input: the file itself, or a folder's frames as the service lists them."""
    path = Path(item.path)
    if item.kind != "folder":
        return [path]
    try:
        return list_frames(path).images
    except AnalysisError:
        return []           # no frames (or the folder went away): analysing it gives the service's error


def stat_signature(item: BatchInput) -> str | None:
    """A digest of the input's file names, sizes and modification times; None when it cannot be read now."""
    digest = hashlib.sha256()
    try:
        for path in _files(item):
            status = path.stat()
            digest.update(f"{path.name}\0{status.st_size}\0{status.st_mtime_ns}\n".encode("utf-8"))
    except OSError:
        return None
    return digest.hexdigest()


def content_sha256(item: BatchInput) -> str:
    """The sha256 of a file, or of a frame folder's frame names and their sha256s in order. Raises OSError."""
    files = _files(item)
    if item.kind != "folder":
        return sha256_of(files[0])
    digest = hashlib.sha256()
    for path in files:
        digest.update(f"{path.name}\0{sha256_of(path)}\n".encode("utf-8"))
    return digest.hexdigest()
