"""Turn an API v2 request into a frame source plus options, checking every limit up front.

Four inputs, exactly one per request:

* ``{"sample": "<name>"}`` as JSON (or a ``sample`` form field): a folder in samples/;
* ``video``: one file (mp4, avi, mov, webm), decoded by OpenCV from a temporary file;
* ``zip``: one zip of frames, read in place (never extracted);
* ``frames``: several image files, analysed in the order they were sent.

Options ``timeline``, ``max_frames`` and ``stride`` come from the query string
or from the JSON / form fields (these win); any other name there is refused
(400 ``unknown_option``, naming the options), so a misspelling never runs with
the defaults. Uploads are saved to a private
temporary folder (in the data folder's ``tmp/``, so a crash leaves nothing the
next sweep does not find), because a job outlives its request; ``cleanup()``
removes it, unless a job took the files over. Whatever can be checked before
decoding is checked here, so a bad input is refused at once with a JSON error,
even for a job. ``record()`` is what a job stores to make the same request again
after a restart (``restore_request``), from wherever its files then are.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, fields
from pathlib import Path, PurePosixPath
from typing import Callable, get_type_hints

from flask import Request

from faceanalysis.pipeline.sources import (
    IMAGE,
    VIDEO,
    VIDEO_EXTENSIONS,
    ZIP,
    FolderSource,
    FrameSource,
    ImageFilesSource,
    VideoSource,
    ZipSource,
    sniff,
)
from faceanalysis.service.contract import DEFAULT_FPS, INPUT_KINDS, Input, Limits, Options
from faceanalysis.service.schema import keywords, to_json
from faceanalysis.service.videoprobe import PROBES, declared_frame_size
from facecore.errors import AnalysisError
from facecore.frames import IMAGE_EXTENSIONS, check_pixels, list_frames

log = logging.getLogger(__name__)

KNOWN_EXTENSIONS = VIDEO_EXTENSIONS | IMAGE_EXTENSIONS | {".zip"}
TRUE = frozenset({"", "1", "true", "yes", "on"})     # "" so that a bare "?timeline" switches it on
FALSE = frozenset({"0", "false", "no", "off"})
WHOLE_NUMBER = re.compile(r"\s*[+-]?[0-9]+\s*")
DECIMAL = re.compile(r"\s*[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?\s*")     # no inf, nan


@dataclass
class AnalysisRequest:
    input: Input
    options: Options
    source: FrameSource
    workdir: Path | None = None      # uploads live here until cleanup()
    sample: Path | None = None       # the sample folder, for a sample
    files: tuple[tuple[str, str], ...] = ()     # the uploads: (the client's name, our file name in workdir)

    def cleanup(self) -> None:
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def record(self) -> dict:
        """This request as JSON, without any absolute path to its uploads (they move to the job's folder)."""
        return {"input": to_json(self.input), "options": to_json(self.options),
                "sample": str(self.sample) if self.sample is not None else None,
                "files": [list(item) for item in self.files]}


def restore_request(record: dict, uploads: Path | None, limits: Limits) -> AnalysisRequest:
    """The request ``record()`` described, its uploads read from ``uploads``. The sources check their input
    again, so a sample folder that went away since is ``sequence_not_found``, as it would have been then."""
    # A job recorded before the fps option existed ran at the default rate.
    options = Options(**{"fps": DEFAULT_FPS, **record["options"]})
    given = Input(**{"fps": options.fps, **record["input"]})
    if record["sample"] is not None:
        source = open_source("sample", [Path(record["sample"])], given.name, stride=options.stride,
                             max_frames=options.max_frames)
        return AnalysisRequest(given, options, source, sample=Path(record["sample"]))
    if uploads is None:
        raise ValueError("a request with uploads needs the folder holding them")
    files = tuple((name, file_name) for name, file_name in record["files"])
    paths = [uploads / file_name for _, file_name in files]
    source = _source(given.kind, [name for name, _ in files], paths, given.name, options, limits)
    return AnalysisRequest(given, options, source, files=files)


def invalid(message: str, code: str = "invalid_request") -> AnalysisError:
    return AnalysisError(code, message)


def parse_request(request: Request, resolve_sample: Callable[[str], Path], limits: Limits,
                  new_workdir: Callable[[], Path] | None = None) -> AnalysisRequest:
    """Read one request into an ``AnalysisRequest``; raises ``AnalysisError`` for anything wrong with it.
    ``new_workdir`` makes the private folder for uploads (default: one in the system's temporary folder)."""
    if request.is_json:
        try:
            body = request.get_json(silent=True)
        except RecursionError:
            raise invalid("the JSON body is nested too deeply", "invalid_json") from None
        if not isinstance(body, dict):
            raise invalid('the JSON body must be an object such as {"sample": "seqA"}')
        fields, files = body, {}
    elif request.mimetype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        fields = request.form.to_dict()
        # A browser sends an empty part, without a file name, for a file input left empty.
        files = {key: [item for item in request.files.getlist(key) if item.filename]
                 for key in request.files}
        files = {key: items for key, items in files.items() if items}
    else:
        raise invalid("send JSON {\"sample\": NAME}, or multipart/form-data with a video, zip or frames part",
                      "unsupported_media_type")
    check_known(request.args, fields)
    given = [key for key in INPUT_KINDS if key in files or (key == "sample" and "sample" in fields)]
    if len(given) != 1:
        hint = " (a JSON body needs Content-Type: application/json)" if not given else f" ({', '.join(given)})"
        raise invalid(f"give exactly one input of {', '.join(INPUT_KINDS)}; got {len(given) or 'none'}{hint}")
    options = parse_options({**request.args.to_dict(), **fields}, limits)
    kind = given[0]
    if kind == "sample":
        return _sample(fields["sample"], options, resolve_sample)
    uploads = files[kind]
    if kind != "frames" and len(uploads) > 1:
        raise invalid(f"send one {kind} file, not {len(uploads)}")
    if len(uploads) > limits.max_entries:
        raise invalid(f"{len(uploads)} files, more than {limits.max_entries}; send a zip or fewer frames",
                      "too_many_frames")
    workdir = new_workdir() if new_workdir is not None else Path(tempfile.mkdtemp(prefix="faceanalysis-"))
    try:
        return _upload(kind, uploads, options, workdir, limits)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise


def check_known(query, body) -> None:
    """Refuse a query parameter or a body field that is not an option (or, in the body, the sample): a
    misspelled option would otherwise run with its default without a word."""
    known = option_names()
    unknown = [name for name in query if name not in known]
    unknown += [name for name in body if name not in known and name != "sample" and name not in unknown]
    if unknown:
        raise unknown_option(unknown)


def option_names() -> tuple[str, ...]:
    return tuple(option.name for option in fields(Options))


def unknown_option(names: list[str]) -> AnalysisError:
    listed = ", ".join(repr(str(name)[:60]) for name in names[:5])
    return invalid(f"unknown option{'s' if len(names) > 1 else ''} {listed}; the options are "
                   f"{', '.join(option_names())} (and, as a body field, sample)", "unknown_option")


def parse_options(values: dict, limits: Limits) -> Options:
    """The declared options, each from ``values`` or its declared default, within its declared bounds."""
    hints = get_type_hints(Options)
    parsed = {}
    for option in fields(Options):
        rules = keywords(option, limits)
        value = values.get(option.name, rules["default"])
        if hints[option.name] is bool:
            parsed[option.name] = _boolean(value, option.name)
        elif hints[option.name] is float:
            parsed[option.name] = _decimal(value, option.name, rules["minimum"], rules["maximum"])
        else:
            parsed[option.name] = _integer(value, option.name, rules["minimum"], rules["maximum"])
    return Options(**parsed)


def _sample(name, options: Options, resolve_sample: Callable[[str], Path]) -> AnalysisRequest:
    if not isinstance(name, str):
        raise invalid('"sample" must be a string: the name of a folder in samples/')
    folder = resolve_sample(name)
    source = open_source("sample", [folder], folder.name, stride=options.stride, max_frames=options.max_frames)
    return AnalysisRequest(Input(kind="sample", name=folder.name, fps=options.fps), options, source,
                           sample=folder.absolute())


def _upload(kind: str, uploads: list, options: Options, workdir: Path, limits: Limits) -> AnalysisRequest:
    names = _unique([_base_name(item.filename) for item in uploads])
    paths = []
    for number, (item, name) in enumerate(zip(uploads, names)):
        # Our own file names: the client's name is only a label, never part of a path. A known
        # extension is kept because FFmpeg uses it as a hint for the container.
        suffix = PurePosixPath(name).suffix.lower()
        path = workdir / f"{number:05d}{suffix if suffix in KNOWN_EXTENSIONS else ''}"
        _save_private(item, path)
        paths.append(path)
    if sum(path.stat().st_size for path in paths) == 0:
        raise invalid(f"the uploaded {kind} is empty (0 bytes)", "empty_upload")
    if kind == "video" and PurePosixPath(names[0]).suffix.lower() not in VIDEO_EXTENSIONS \
            and not (uploads[0].mimetype or "").startswith("video/") and sniff(paths[0]) != VIDEO:
        # Known by its content too: a clip renamed .bin, or sent without a name, is still a video.
        raise invalid(f"{names[0]!r} is not a video file: use one of {', '.join(sorted(VIDEO_EXTENSIONS))}",
                      "unsupported_media_type")
    label = names[0] if len(names) == 1 else f"{len(names)} files"
    source = _source(kind, names, paths, label, options, limits)
    given = Input(kind=kind, name=label, fps=input_fps(source, options))
    return AnalysisRequest(given, options, source, workdir=workdir,
                           files=tuple((name, path.name) for name, path in zip(names, paths)))


def _source(kind: str, names: list[str], paths: list[Path], label: str, options: Options,
            limits: Limits) -> FrameSource:
    return open_source(kind, paths, label, names=names, stride=options.stride, max_frames=options.max_frames,
                       limits=limits)


# --- the input registry ---------------------------------------------------------------------------------------
# Every kind of input the project reads, and the source that reads it: the service, the batch runner and the
# command line all open their inputs through ``open_source``, so a kind means the same thing everywhere.
SOURCE_KINDS = {
    "sample": "a folder of frames in the server's samples/, by name",
    "folder": "a folder of frames on disk (.jpg/.jpeg/.png/.bmp, natural order of their names)",
    "video": "one video file (" + ", ".join(sorted(VIDEO_EXTENSIONS)) + ", or any file whose content is one)",
    "zip": "one zip of frames, read in place",
    "frames": "image files, each one frame, in the order given",
}


def open_source(kind: str, paths: list[Path], label: str, *, names: list[str] | None = None, stride: int = 1,
                max_frames: int | None = None, limits: Limits = Limits()) -> FrameSource:
    """The frame source for ``kind`` (a ``SOURCE_KINDS`` key) reading ``paths``: one folder or file, or for
    ``frames`` the image files in order (``names`` label them; default their file names)."""
    if kind not in SOURCE_KINDS:
        raise ValueError(f"unknown input kind {kind!r}")
    if kind in ("sample", "folder"):
        return FolderSource(list_frames(paths[0]), stride=stride, max_frames=max_frames)
    if kind == "video":
        _check_declared_size(paths[0], label)
        # A header that declares no size leaves the first frame to be decoded to learn it: few at once.
        with PROBES:
            return VideoSource(paths[0], label, stride=stride, max_frames=max_frames)
    if kind == "zip":
        return ZipSource(paths[0], label, limits.max_entries, limits.max_unpacked_bytes,
                         stride=stride, max_frames=max_frames)
    names = names if names is not None else [path.name for path in paths]
    return ImageFilesSource(list(zip(names, paths)), label, stride=stride, max_frames=max_frames)


def _check_declared_size(path: Path, label: str) -> None:
    try:
        size = declared_frame_size(path)
        if size is not None:
            check_pixels(*size)
    except ValueError as error:
        raise AnalysisError("frame_too_large", f"{label!r}: {error}") from None


def _save_private(item, path: Path) -> None:
    # Uploads are face pictures: readable by this user alone (0600). A full disk is the storage's fault, not
    # the request's: 503 storage_unavailable, which a client may retry.
    try:
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as file:
            item.save(file)
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise AnalysisError("storage_unavailable",
                                "the server has no room left for this upload; retry later") from None
        raise


def kind_of(path: Path) -> str | None:
    """The kind of a path on disk: ``folder``, ``video``, ``zip``, ``frames`` (one image), or None. A file is
    known by its content first, its extension only where the content says nothing (``sources.sniff``)."""
    if path.is_dir():
        return "folder"
    found = sniff(path)
    if found is None:
        suffix = path.suffix.lower()
        found = (VIDEO if suffix in VIDEO_EXTENSIONS else ZIP if suffix == ".zip"
                 else IMAGE if suffix in IMAGE_EXTENSIONS else None)
    return {VIDEO: "video", ZIP: "zip", IMAGE: "frames"}.get(found)


def input_fps(source: FrameSource, options: Options) -> float:
    """The frame rate an input's times are in: a video's own, else the fps option."""
    return getattr(source, "fps", None) or options.fps


def _base_name(filename: str) -> str:
    # Some clients send a full path; keep the last part, bounded, as the frame's name.
    return PurePosixPath(filename.replace("\\", "/")).name[:200] or "upload"


def _unique(names: list[str]) -> list[str]:
    # Frame names key the answer (frames without a face, the timeline), so "blob", "blob" must differ.
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    return out


def _boolean(value, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in TRUE | FALSE:
        return value.strip().lower() in TRUE
    raise invalid(f"{name} must be true or false, not {value!r}", "invalid_option")


def _decimal(value, name: str, low: float, high: float) -> float:
    """A number from ``low`` to ``high``: 25, 12.5, "29.97", "1e2" (no inf, no nan)."""
    wrong = invalid(f"{name} must be a number from {low:g} to {high:g}, not {value!r:.60}", "invalid_option")
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise wrong
    try:
        number = float(value) if not isinstance(value, str) or DECIMAL.fullmatch(value) else None
    except (ValueError, OverflowError):
        number = None
    if number is None or not low <= number <= high:     # NaN fails both comparisons
        raise wrong
    return number


def _integer(value, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise invalid(f"{name} must be a whole number from {low} to {high}, not {value!r}", "invalid_option")
    try:
        # Plain ASCII digits only: int() alone would also take "1_000" and other scripts' digits ("\u0661").
        if isinstance(value, str) and not WHOLE_NUMBER.fullmatch(value):
            raise ValueError(value)
        number = int(value)     # ValueError beyond 4,300 digits
    except ValueError:
        raise invalid(f"{name} must be a whole number from {low} to {high}, not {value!r:.60}",
                      "invalid_option") from None
    if not low <= number <= high:
        raise invalid(f"{name} must be from {low} to {high}, not {number}", "invalid_option")
    return number
