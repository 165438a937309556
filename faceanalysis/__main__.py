"""The ``faceanalysis`` command (also ``python -m faceanalysis``).

    faceanalysis serve [flaskMain.py's options]        the HTTP service (as python flaskMain.py)
    faceanalysis analyse PATH [PATH ...] [--json | --format legacy] [--timeline] [--csv DIR] [--annotate OUT]
                         [--stride N] [--max-frames N] [--fps F] [model flags]
                                                        one video, zip, folder of frames, or images: JSON on stdout
    faceanalysis batch INPUT [INPUT ...] --out DIR [--address ADDR] [--timeline] [--csv] [--workers N]
                       [--gpus-per-worker G] [--max-frames N] [--stride N] [--fps F] [--retry-failed]
                       [model flags]
                                                        many videos and folders on Ray, Parquet tables in DIR

Errors are the service's JSON error on stderr, one line, with exit status 2. ``--help`` goes to stdout.
"""

from __future__ import annotations

import sys

COMMANDS = {"serve": "the HTTP service",
            "analyse": "one video, zip, folder of frames or set of images; the v2 answer as JSON on stdout",
            "batch": "many videos and folders on Ray; Parquet tables out"}


def usage() -> str:
    listing = "\n".join(f"  {name:8} {what}" for name, what in COMMANDS.items())
    return (f"usage: faceanalysis COMMAND [options]\n\ncommands:\n{listing}\n\n"
            "faceanalysis COMMAND --help says more about each.")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        # Asked for, help is the answer (stdout, status 0); without a command it explains the refusal (stderr, 2).
        print(usage(), file=sys.stdout if argv else sys.stderr)
        sys.exit(0 if argv else 2)
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"faceanalysis: unknown command {command!r}\n\n{usage()}", file=sys.stderr)
        sys.exit(2)
    if command == "serve":
        from faceanalysis.server_main import main as serve
        serve(rest, prog="faceanalysis serve")
    elif command == "batch":
        # Imported only here: the other commands, and the service, never load Ray.
        from faceanalysis.batch.command import main as batch
        batch(rest)
    else:
        from faceanalysis.analyse import main as analyse
        analyse(rest)


if __name__ == "__main__":
    main()
