"""The server's own concerns beyond the app: its data folder, its API token, and stopping gracefully on a signal.

``add_service_arguments`` adds ``--data-dir``, ``--api-token-file`` and ``--shutdown-grace`` (defaults from the
environment, read through ``cli.environment``). ``open_data_folder`` and ``api_token`` run before any model is
loaded, so a folder that cannot be used or a missing token ends the start-up at once with a JSON error and exit
status 2. ``serve_until_signalled`` runs the HTTP server until SIGTERM or SIGINT, then shuts the app down
gracefully (``Runtime.shutdown``) and returns, so the process exits with 0.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import signal
import stat
import sys
import threading
from pathlib import Path
from typing import Callable

from faceanalysis.cli import environment, exit_with
from faceanalysis.service.datafolder import DataFolder, DataFolderError, default_data_dir
from faceanalysis.service.runtime import Runtime
from faceanalysis.service.security import check_token
from faceanalysis.service.store import JobStore
from facecore.errors import AnalysisError

log = logging.getLogger("faceanalysis.server")

DEFAULT_GRACE_S = 30.0
LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost"})


def add_service_arguments(parser: argparse.ArgumentParser) -> None:
    env = environment()
    group = parser.add_argument_group("data, access and shutdown")
    group.add_argument("--data-dir", type=Path,
                       default=Path(env["FACE_DATA_DIR"]) if "FACE_DATA_DIR" in env
                       else default_data_dir(env.get("XDG_STATE_HOME")),
                       help="where jobs and their uploads are kept ($FACE_DATA_DIR; default "
                            "$XDG_STATE_HOME/faceanalysis, i.e. ~/.local/state/faceanalysis)")
    group.add_argument("--api-token-file", type=Path,
                       help="file holding the API token requests must send as 'Authorization: Bearer <token>' "
                            "($FACE_API_TOKEN holds the token itself); required off the loopback interface")
    group.add_argument("--shutdown-grace", type=float,
                       default=float(env.get("FACE_SHUTDOWN_GRACE", DEFAULT_GRACE_S)),
                       help="seconds the running analysis may take to finish on SIGTERM/SIGINT before it goes "
                            "back to the queue ($FACE_SHUTDOWN_GRACE, default 30)")


def api_token(args: argparse.Namespace) -> str | None:
    """The token from ``--api-token-file``, else ``$FACE_API_TOKEN``; refuses to go on (exit 2) without one when
    ``args.host`` is not a loopback address, or when the token cannot serve."""
    token = None
    if args.api_token_file is not None:
        path = args.api_token_file
        try:
            token = path.read_text(encoding="utf-8").strip()
            if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
                log.warning("the API token file %s can be read by other users: chmod 600 it", path)
        except (OSError, UnicodeDecodeError) as error:
            exit_with(AnalysisError("invalid_token", f"cannot read the API token file {path}: {error}", 2))
    else:
        token = environment().get("FACE_API_TOKEN")
    if token is not None:
        try:
            return check_token(token)
        except ValueError as error:
            exit_with(AnalysisError("invalid_token", str(error), 2))
    if not is_loopback(args.host):
        exit_with(AnalysisError(
            "token_required",
            f"refusing to listen on {args.host!r} without an API token: anyone who can reach the port could use "
            "the service and read every job. Give one with --api-token-file FILE (or $FACE_API_TOKEN), or "
            "listen on 127.0.0.1", 2))
    return None


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False            # a name other than localhost, or "" (every interface)


def open_data_folder(path: Path) -> JobStore:
    """The job store in ``path``, the folder made and checked; exit 2 with the reason when it cannot be used."""
    folder = None
    try:
        folder = DataFolder.open(path)
        return JobStore.open(folder)
    except DataFolderError as error:
        if folder is not None:
            folder.close()
        exit_with(error)


def serve_until_signalled(run: Callable[[], None], runtime: Runtime, grace_s: float) -> None:
    """Run ``run`` (the HTTP server's loop) in this, the main thread, until SIGTERM or SIGINT; then shut the app
    down within ``grace_s`` while the server still answers (status polls, 503 for new work), and return.
    A second signal cuts the grace period short."""
    main = threading.main_thread().ident
    stopping, hurry, drained = threading.Event(), threading.Event(), threading.Event()

    def drain() -> None:
        try:
            runtime.shutdown(grace_s, hurry)
        except Exception:
            log.exception("the shutdown did not complete cleanly")
        finally:
            drained.set()
            # The server's loop can only be left from the main thread: this signal's handler does it.
            signal.pthread_kill(main, signal.SIGTERM)

    def on_signal(number: int, frame) -> None:
        if drained.is_set():
            # waitress leaves its loop on SystemExit (and so does Flask's server); it does not exit the process.
            raise SystemExit(0)
        if stopping.is_set():
            log.warning("%s again: not waiting any longer for the running analysis", signal.Signals(number).name)
            hurry.set()
            return
        stopping.set()
        log.info("%s: shutting down, giving running work up to %g s", signal.Signals(number).name, grace_s)
        threading.Thread(target=drain, name="shutdown", daemon=True).start()

    previous = {number: signal.signal(number, on_signal) for number in (signal.SIGTERM, signal.SIGINT)}
    try:
        run()
    except SystemExit:
        pass
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    if not drained.is_set():        # the loop ended some other way: still leave nothing behind
        runtime.shutdown(0)
    log.info("shut down")
    if runtime.left_running:
        # The analysis left running is inside onnxruntime, TensorFlow or dlib, on this process's threads. A normal
        # interpreter exit races those threads against the libraries' static destructors (seen: "terminate called
        # without an active exception", SIGABRT). Its job is back in the queue and the store is closed: leave now.
        log.info("an analysis was still running: leaving without waiting for it")
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
