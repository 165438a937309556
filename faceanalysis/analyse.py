"""``faceanalysis analyse PATH [PATH ...]``: one input, as the service takes it, answered on the command line.

PATH is a video (any container FFmpeg reads, known by its content), a zip of frames, a folder of frames, or one
or more images (taken in the order given). The input is opened and checked before any model is loaded, so a
wrong path or an unreadable file is refused at once, naming the full path. The answer is the API v2 JSON on
stdout (``--format legacy``: the legacy JSON); ``--csv DIR`` also writes the batch tables for this one input
(persons.csv, inputs.csv, frames.csv); ``--annotate OUT`` writes the input as a video with each person's box,
id, age, gender and expression drawn on every frame.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from pathlib import Path

from faceanalysis.cli import add_model_arguments, check_device, exit_with, settings_from, setup_logging
from faceanalysis.service.analysis_request import kind_of, open_source
from faceanalysis.service.contract import DEFAULT_FPS, MAX_FPS, MIN_FPS, Input, Limits, Options
from faceanalysis.writers import JSON_FORMATS
from facecore.errors import AnalysisError, ModelFileError

ANNOTATION_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv")


def parse_args(argv: list[str]) -> argparse.Namespace:
    limits = Limits()
    parser = argparse.ArgumentParser(
        prog="faceanalysis analyse",
        description="Analyse one video, zip of frames, folder of frames, or set of images. "
                    "The API v2 answer goes to stdout as JSON; errors are one line of JSON on stderr (exit 2).")
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH",
                        help="a video, a zip of frames, a folder of frames, or one or more images")
    answer = parser.add_mutually_exclusive_group()
    answer.add_argument("--json", action="store_true", help="the API v2 answer (the default)")
    answer.add_argument("--format", choices=tuple(JSON_FORMATS), default="v2",
                        help="v2 (default) or the legacy {Video_Emo, Video_Gen, Video_Age} answer")
    parser.add_argument("--timeline", action="store_true", help="v2: per-frame results too")
    parser.add_argument("--csv", type=Path, metavar="DIR",
                        help="also write the batch tables for this input (persons, inputs, frames) as CSV in DIR")
    parser.add_argument("--annotate", type=Path, metavar="OUT",
                        help="also write the input as a video (" + ", ".join(ANNOTATION_SUFFIXES) + ") with each "
                        "person's box, id, age, gender and expression drawn on every frame")
    parser.add_argument("--stride", type=int, default=1, metavar="N", help="analyse every N-th frame")
    parser.add_argument("--max-frames", type=int, metavar="N",
                        help=f"analyse at most N frames (default: all; at most {limits.max_frames} as in the service)")
    parser.add_argument("--fps", type=float, metavar="F",
                        help=f"frame rate of frames without one (folder, zip, images; a video whose container "
                        f"gives none), for times in seconds (default {DEFAULT_FPS:g})")
    parser.add_argument("--verbose", action="store_true", help="log progress, and TensorFlow's start-up messages")
    add_model_arguments(parser)
    return parser.parse_args(argv)


def resolve_input(paths: list[Path]) -> tuple[str, list[Path]]:
    """The registry's kind for the paths given, and the paths made absolute; ``AnalysisError`` naming the full
    path of what is missing or of no known kind."""
    absolute = [Path(os.path.abspath(path.expanduser())) for path in paths]
    missing = [str(path) for path in absolute if not path.exists()]
    if missing:
        raise AnalysisError("input_not_found", "no such file or folder: " + ", ".join(map(repr, missing)))
    kinds = [kind_of(path) for path in absolute]
    if len(absolute) == 1:
        if kinds[0] is None:
            raise AnalysisError("unsupported_media_type", f"{str(absolute[0])!r} is not a video, a zip of frames, "
                                "an image or a folder of frames")
        return kinds[0], absolute
    others = [str(path) for path, kind in zip(absolute, kinds) if kind != "frames"]
    if others:
        raise AnalysisError("invalid_request", "several paths are taken as frames, so each must be an image; not: "
                            + ", ".join(map(repr, others[:5])))
    return "frames", absolute


def check_options(args: argparse.Namespace) -> None:
    limits = Limits()
    checks = [("--stride", args.stride, 1, limits.max_stride),
              ("--max-frames", args.max_frames, 1, limits.max_frames)]
    for flag, value, low, high in checks:
        if value is not None and not low <= value <= high:
            raise AnalysisError("invalid_option", f"{flag} must be from {low} to {high}, not {value}")
    if args.fps is not None and not MIN_FPS <= args.fps <= MAX_FPS:
        raise AnalysisError("invalid_option", f"--fps must be from {MIN_FPS:g} to {MAX_FPS:g}, not {args.fps:g}")
    if args.csv is not None and args.csv.exists() and not args.csv.is_dir():
        raise AnalysisError("invalid_output", f"--csv {str(args.csv.absolute())!r} is a file: name a folder")
    if args.annotate is not None:
        target = args.annotate.absolute()
        if target.suffix.lower() not in ANNOTATION_SUFFIXES:
            raise AnalysisError("invalid_output", f"--annotate {str(target)!r}: use one of "
                                + ", ".join(ANNOTATION_SUFFIXES))
        if not target.parent.is_dir():
            raise AnalysisError("invalid_output", f"--annotate {str(target)!r}: no folder {str(target.parent)!r}")


def open_input(kind: str, paths: list[Path], stride: int, max_frames: int | None):
    """The frame source, checked (a video's first frame decoded, a zip's directory read, a folder listed)."""
    label = str(paths[0]) if len(paths) == 1 else f"{len(paths)} files"
    try:
        return open_source(kind, paths, label, stride=stride, max_frames=max_frames, limits=Limits())
    except AnalysisError as error:
        if kind == "folder":
            # The folder's own messages name it as a sample is named; here the user gave a path.
            raise AnalysisError(error.code,
                                error.message.replace(repr(paths[0].name), repr(str(paths[0])))) from None
        raise


def main(argv: list[str], analyzer=None) -> None:
    """Run the command; ``analyzer``: a prepared ``FaceAnalyzer`` to use instead of loading one (tests)."""
    args = parse_args(argv)
    setup_logging(None if args.verbose else "WARNING", verbose=args.verbose)
    settings = settings_from(args)
    try:
        kind, paths = resolve_input(args.paths)
        check_options(args)
        source = open_input(kind, paths, args.stride, args.max_frames)
        if analyzer is None:
            check_device(settings)
            from faceanalysis.pipeline.analyzer import FaceAnalyzer
            analyzer = FaceAnalyzer(settings).prepare()
        started = time.perf_counter()
        result = analyzer.analyse_source(source)
        seconds = time.perf_counter() - started
    except (AnalysisError, ModelFileError) as error:
        exit_with(error)
    fps = getattr(source, "fps", None) or args.fps or DEFAULT_FPS
    name = paths[0].name if len(paths) == 1 else f"{len(paths)} files"
    given = Input(kind=kind, name=name, fps=fps)
    options = Options(timeline=args.timeline, max_frames=args.max_frames or max(result.frames_read, 1),
                      stride=args.stride, fps=args.fps or DEFAULT_FPS)
    if args.csv is not None:
        write_tables(args.csv, kind, paths, result, analyzer, options, fps, seconds)
    if args.annotate is not None:
        from faceanalysis.annotate import annotate
        annotate(result, open_source(kind, paths, given.name), args.annotate, fps)
    json.dump(answer(result, given, options, args.format), sys.stdout, indent=1)
    sys.stdout.write("\n")


def answer(result, given: Input, options: Options, form: str) -> dict:
    """The answer in the ``--format`` named ``form`` (a ``JSON_FORMATS`` key)."""
    return JSON_FORMATS[form](result, given, options)


def write_tables(folder: Path, kind: str, paths: list[Path], result, analyzer, options: Options, fps: float,
                 seconds: float) -> None:
    """The batch tables of this one input, as CSV (the batch runner's columns; nested ones as JSON)."""
    from faceanalysis.batch.discovery import BatchInput, content_sha256, stat_signature
    from faceanalysis.batch.spec import RunSpec
    from faceanalysis.batch.tables import Where, done_rows, write_csv

    item = BatchInput(str(paths[0]) if len(paths) == 1 else str(paths[0].parent), kind)
    sha = content_sha256(item) if len(paths) == 1 else None
    spec = RunSpec.create(analyzer.settings, options.stride, options.max_frames, timeline=True, fps=options.fps)
    where = Where(node=socket.gethostname(), node_id="", worker_pid=os.getpid(), device=analyzer.device.kind)
    rows = done_rows(item, sha, stat_signature(item) if len(paths) == 1 else None, result, spec, seconds, where,
                     fps=fps)
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("persons", "inputs", "frames"):
        write_csv(getattr(rows, name), folder / f"{name}.csv")
