"""Start the service: load every model once, then serve ``GET /seqPath/<name>`` on 127.0.0.1:6009.

    python flaskMain.py [--host H] [--port P] [--samples DIR] [--dev] [model flags: --age-gender, --expression,
                        --aggregator, --device, --batch-size]

By default a production WSGI server (waitress) serves the app; ``--dev`` uses
Flask's development server instead. ``--port 0`` lets the system choose a free port; ``--port-file PATH``
writes the port actually bound to PATH once the socket listens (tests and benchmarks start servers that way,
so no other process can take the port between choosing and binding it). FACE_HOST / FACE_PORT set host and
port too, FACE_AGE_GENDER / FACE_EXPRESSION the models (flags win). ``--data-dir``, ``--api-token-file`` and
``--shutdown-grace`` (``faceanalysis/server_setup.py``): where jobs are kept, the token required off loopback, and how
long SIGTERM/SIGINT waits for the running analysis before the server exits 0.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import socket
from pathlib import Path

from faceanalysis.cli import (
    add_model_arguments,
    add_verbose_argument,
    check_device,
    environment,
    exit_with,
    fail,
    settings_from,
    setup_logging,
)
from faceanalysis.server_setup import (
    StartupGuard,
    add_service_arguments,
    api_token,
    connection_limits,
    open_data_folder,
    serve_until_signalled,
)
from facecore.errors import ModelFileError

REPO = Path(__file__).resolve().parents[1]
log = logging.getLogger("flaskMain")


def parse_args(argv=None, prog: str | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
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
    add_verbose_argument(parser)
    return parser.parse_args(argv)


def main(argv=None, prog: str | None = None) -> None:
    """``prog`` names the command in ``--help`` (``faceanalysis serve``; flaskMain.py by default)."""
    args = parse_args(argv, prog)
    setup_logging(verbose=args.verbose)
    settings = settings_from(args)
    # Token, port, device and data folder first: a refusal to start comes at once, not after the models loaded.
    token = api_token(args)
    limits = connection_limits(args)
    check_port(args.host, args.port)
    check_device(settings)
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


def check_port(host: str, port: int) -> None:
    """Exit 2 with a one-line JSON error when ``host:port`` cannot be listened on (another server has it, or the
    address is not this machine's). Bound and released at once, as waitress binds it (SO_REUSEADDR); port 0
    always succeeds."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as error:
        fail("invalid_host", f"--host {host!r} is not an address of this machine ({error})")
    probe = socket.socket(family, kind, proto)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(address)
        probe.listen(1)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            fail("port_busy", f"{host}:{port} is already in use (another server?); stop it, or choose another "
                 "--port (0: any free port)")
        fail("port_unavailable", f"cannot listen on {host}:{port}: {error.strerror or error}")
    finally:
        probe.close()


def write_port_file(path: Path, port: int) -> None:
    # Written whole, then renamed, so that a reader polling for the file never sees it half written.
    partial = path.with_name(path.name + ".partial")
    partial.write_text(f"{port}\n")
    os.replace(partial, path)
