"""Start the service: load every model once, then serve ``GET /seqPath/<name>`` on 127.0.0.1:6009.

    python flaskMain.py [--host H] [--port P] [--samples DIR] [--dev] [model flags: --age-gender, --expression,
                        --aggregator, --device, --batch-size]

By default a production WSGI server (waitress) serves the app; ``--dev`` uses
Flask's development server instead. ``--port 0`` lets the system choose a free port; ``--port-file PATH``
writes the port actually bound to PATH once the socket listens (tests and benchmarks start servers that way,
so no other process can take the port between choosing and binding it). FACE_HOST / FACE_PORT set host and
port too, FACE_AGE_GENDER / FACE_EXPRESSION the models (flags win). ``--data-dir``, ``--api-token-file`` and
``--shutdown-grace`` (``faceanalysis/serving.py``): where jobs are kept, the token required off loopback, and how
long SIGTERM/SIGINT waits for the running analysis before the server exits 0.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from faceanalysis.cli import add_model_arguments, environment, exit_with, settings_from, setup_logging
from faceanalysis.serving import (StartupGuard, add_service_arguments, api_token, connection_limits, open_data_folder,
                                  serve_until_signalled)
from facecore.errors import ModelFileError

REPO = Path(__file__).resolve().parents[1]
log = logging.getLogger("flaskMain")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    env = environment()
    parser.add_argument("--host", default=env.get("FACE_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(env.get("FACE_PORT", "6009")))
    parser.add_argument("--samples", type=Path, default=REPO / "samples", help="folder holding the sequences")
    parser.add_argument("--threads", type=int, default=4, help="waitress worker threads")
    parser.add_argument("--dev", action="store_true", help="use Flask's development server")
    parser.add_argument("--port-file", type=Path,
                        help="once listening, write the bound port to this file (waitress only; with --port 0)")
    add_model_arguments(parser)
    add_service_arguments(parser)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    setup_logging()
    settings = settings_from(args)
    # Token and data folder first: a refusal to start comes at once, not after the models have loaded.
    token = api_token(args)
    limits = connection_limits(args)
    store = open_data_folder(args.data_dir)
    with StartupGuard(store) as guard:
        from faceanalysis.pipeline.analyzer import FaceAnalyzer
        from faceanalysis.service.web import create_app, runtime_of, start_jobs

        try:
            analyzer = FaceAnalyzer(settings).prepare()
        except ModelFileError as error:
            store.close()
            store.folder.close()
            exit_with(error)
        app = create_app(analyzer, args.samples, store=store, api_token=token)
        guard.runtime = runtime_of(app)
        start_jobs(app)
        if args.dev:
            log.info("serving on http://%s:%d/seqPath/test", args.host, args.port)
            serve = lambda: app.run(host=args.host, port=args.port, threaded=True)  # noqa: E731
        else:
            import waitress
            from faceanalysis.service import frontdoor
            # waitress.serve, split in two so that the port is known (and reported) before requests are served.
            server = waitress.create_server(app, host=args.host, port=args.port, threads=args.threads,
                                            **frontdoor.waitress_settings(limits, app.config["MAX_CONTENT_LENGTH"]))
            frontdoor.install(server, token, limits, app.config["MAX_CONTENT_LENGTH"])
            # A host name with several addresses gets one socket each (a MultiSocketServer); the first is reported.
            listening = getattr(server, "effective_listen", None) or [(server.effective_host, server.effective_port)]
            port = int(listening[0][1])         # waitress gives it as getnameinfo's string
            log.info("serving on http://%s:%d/seqPath/test", args.host, port)
            if args.port_file is not None:
                write_port_file(args.port_file, port)
            server.print_listen("Serving on http://{}:{}")
            serve = server.run
    serve_until_signalled(serve, runtime_of(app), args.shutdown_grace)


def write_port_file(path: Path, port: int) -> None:
    # Written whole, then renamed, so that a reader polling for the file never sees it half written.
    partial = path.with_name(path.name + ".partial")
    partial.write_text(f"{port}\n")
    os.replace(partial, path)
