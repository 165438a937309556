"""The ``faceanalysis`` command (also ``python -m faceanalysis``).

    faceanalysis serve [flaskMain.py's options]        the HTTP service (as python flaskMain.py)
    faceanalysis analyse FOLDER [--format v2|legacy] [--timeline] [model flags]
                                                        one folder of frames, the answer as JSON on stdout
    faceanalysis batch INPUT [INPUT ...] --out DIR [--address ADDR] [--timeline] [--csv] [--workers N]
                       [--gpus-per-worker G] [--max-frames N] [--stride N] [model flags]
                                                        many videos and folders on Ray, Parquet tables in DIR

Errors are the service's JSON error on stderr, with exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from faceanalysis.cli import add_model_arguments, exit_with, settings_from, setup_logging
from facecore.errors import AnalysisError, ModelFileError


def analyse(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="faceanalysis analyse", description="Analyse one folder of frames.")
    parser.add_argument("folder", type=Path)
    parser.add_argument("--format", choices=("v2", "legacy"), default="v2")
    parser.add_argument("--timeline", action="store_true", help="v2: per-frame results too")
    add_model_arguments(parser)
    args = parser.parse_args(argv)
    setup_logging("WARNING")
    settings = settings_from(args)
    from faceanalysis.pipeline.analyzer import FaceAnalyzer
    from faceanalysis.service import contract
    from faceanalysis.service.legacy import legacy_result
    from faceanalysis.service.report import build_report

    try:
        result = FaceAnalyzer(settings).prepare().analyse_folder(args.folder)
    except (AnalysisError, ModelFileError) as error:
        exit_with(error)
    if args.format == "legacy":
        answer = {section: {str(code): value for code, value in values.items()}
                  for section, values in legacy_result(result).items()}
    else:
        # The folder is read whole, as the legacy endpoint reads a sample (no frame limit, every frame).
        options = contract.Options(timeline=args.timeline, max_frames=result.frames_read, stride=1)
        answer = build_report(result, contract.Input(kind="sample", name=args.folder.name), options)
    json.dump(answer, sys.stdout, indent=1)
    sys.stdout.write("\n")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    commands = {"serve": "the HTTP service", "analyse": "one folder of frames, JSON on stdout",
                "batch": "many videos and folders on Ray, Parquet tables out"}
    if not argv or argv[0] not in commands:
        listing = "\n".join(f"  {name:8} {what}" for name, what in commands.items())
        print(f"usage: faceanalysis COMMAND [options]\n\ncommands:\n{listing}", file=sys.stderr)
        sys.exit(0 if argv and argv[0] in ("-h", "--help") else 2)
    command, rest = argv[0], argv[1:]
    if command == "serve":
        from faceanalysis.server import main as serve
        serve(rest)
    elif command == "batch":
        # Imported only here: the other commands, and the service, never load Ray.
        from faceanalysis.batch.command import main as batch
        batch(rest)
    else:
        analyse(rest)


if __name__ == "__main__":
    main()
