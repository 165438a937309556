"""``faceanalysis batch INPUT [INPUT ...] --out DIR``: the command line of the batch runner.

Progress goes to stderr, the closing paragraph to stdout. A mistake in the command (a missing input, an output
folder that is a file, a cluster that does not answer, a bad option) is the service's JSON error on stderr with
exit status 2, before any input is analysed. Inputs that cannot be analysed are ``failed`` rows, not errors:
the run goes on and exits 0.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from faceanalysis.cli import (
    add_model_arguments,
    add_verbose_argument,
    environment,
    exit_with,
    settings_from,
    setup_logging,
)
from faceanalysis.service.contract import DEFAULT_FPS, MAX_FPS, MIN_FPS, Limits
from facecore.errors import AnalysisError, ModelFileError
from facecore.weights import load_manifest, resolve

from .discovery import discover
from .output_folder import OutputFolder
from .progress import summary
from .run import Request, execute
from .spec import RunSpec


def parse_args(argv: list[str]) -> argparse.Namespace:
    limits = Limits()
    parser = argparse.ArgumentParser(
        prog="faceanalysis batch", description="Analyse many videos and frame folders on Ray; Parquet tables out.")
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="video file, zip of frames, folder (searched recursively) or .txt/.csv manifest")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder (created if missing)")
    parser.add_argument("--address", help="Ray cluster to run on, HOST:PORT ($RAY_ADDRESS); default: Ray started "
                        "on this machine for the run")
    parser.add_argument("--timeline", action="store_true", help="also frames.parquet: one row per face per frame")
    parser.add_argument("--csv", action="store_true", help="CSV copies of the tables")
    parser.add_argument("--workers", type=int, metavar="N",
                        help="analyzers in all (default: one per node, or per 2 CPUs if more)")
    parser.add_argument("--gpus-per-worker", type=float, default=0.0, metavar="G",
                        help="GPUs each analyzer takes (default 0: CPU; 0.5 puts two on a GPU)")
    options = parser.add_argument_group("options (as the service's)")
    options.add_argument("--max-frames", type=int, default=limits.default_max_frames, metavar="N",
                         help=f"analyse at most N frames of each input (default {limits.default_max_frames}, at "
                         f"most {limits.max_frames})")
    options.add_argument("--stride", type=int, default=1, metavar="N", help="analyse every N-th frame")
    options.add_argument("--fps", type=float, default=DEFAULT_FPS, metavar="F",
                         help=f"frames a second of folders and zips of frames (and of videos that give none), for "
                         f"the times in seconds (default {DEFAULT_FPS:g}, the legacy sequences' rate)")
    parser.add_argument("--retry-failed", action="store_true",
                        help="analyse again inputs that failed for a reason that cannot change while the input "
                        "does not (no_face, invalid_video, ...: skipped by default)")
    add_model_arguments(parser)
    add_verbose_argument(parser)
    return parser.parse_args(argv)


def check_options(args: argparse.Namespace) -> None:
    limits = Limits()
    bounds = {"max_frames": (1, limits.max_frames), "stride": (1, limits.max_stride),
              "workers": (1, None), "gpus_per_worker": (0, None)}
    for name, (low, high) in bounds.items():
        value = getattr(args, name)
        if value is not None and (value < low or (high is not None and value > high)):
            within = f"from {low} to {high}" if high is not None else f"at least {low}"
            raise AnalysisError("invalid_option", f"--{name.replace('_', '-')} must be {within}, not {value:g}")
    if not MIN_FPS <= args.fps <= MAX_FPS:
        raise AnalysisError("invalid_option", f"--fps must be from {MIN_FPS:g} to {MAX_FPS:g}, not {args.fps:g}")


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    setup_logging(None if args.verbose else "WARNING", verbose=args.verbose)
    settings = settings_from(args)
    address = args.address or environment().get("RAY_ADDRESS")
    if address == "local":          # Ray's name for a Ray of one's own: what no address gives
        address = None
    try:
        check_options(args)
        # The model files are checked here as each worker checks them, so a broken install fails at once.
        manifest = load_manifest()
        for key in manifest:
            resolve(key, manifest)
        items = discover(args.inputs)
        spec = RunSpec.create(settings, args.stride, args.max_frames, args.timeline, fps=args.fps)
        request = Request(items=items, out=args.out, spec=spec, address=address, workers=args.workers,
                          gpus_per_worker=args.gpus_per_worker, csv=args.csv, retry_failed=args.retry_failed)
        with OutputFolder(args.out) as out:
            tally, rows = execute(request, out)
    except (AnalysisError, ModelFileError) as error:
        exit_with(error)
    except KeyboardInterrupt:
        print(f"interrupted: the inputs done are kept in {args.out}; run the same command again to go on",
              file=sys.stderr)
        sys.exit(130)
    print(summary(tally, str(out.path), rows, args.csv))
    sys.stdout.flush()
