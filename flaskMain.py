"""Start the service: load every model once, then serve ``GET /seqPath/<name>`` on 127.0.0.1:6009.

    python flaskMain.py [--host H] [--port P] [--samples DIR] [--device auto|cpu|gpu] [--dev]

By default a production WSGI server (waitress) serves the app; ``--dev`` uses
Flask's development server instead. FACE_HOST / FACE_PORT set host and port too.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from faceanalysis.cli import exit_with, setup_logging
from facecore.errors import ModelFileError

HERE = Path(__file__).resolve().parent
log = logging.getLogger("flaskMain")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default=os.environ.get("FACE_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("FACE_PORT", "6009")))
    parser.add_argument("--samples", type=Path, default=HERE / "samples", help="folder holding the sequences")
    parser.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto")
    parser.add_argument("--threads", type=int, default=4, help="waitress worker threads")
    parser.add_argument("--dev", action="store_true", help="use Flask's development server")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    setup_logging()
    from faceanalysis.pipeline.analyzer import FaceAnalyzer
    from faceanalysis.service.web import create_app

    try:
        analyzer = FaceAnalyzer(device=args.device).prepare()
    except ModelFileError as error:
        exit_with(error)
    app = create_app(analyzer, args.samples)
    log.info("serving on http://%s:%d/seqPath/test", args.host, args.port)
    if args.dev:
        app.run(host=args.host, port=args.port, threaded=True)
    else:
        import waitress
        waitress.serve(app, host=args.host, port=args.port, threads=args.threads)


if __name__ == "__main__":
    main()
