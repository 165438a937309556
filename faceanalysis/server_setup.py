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
from faceanalysis.service.frontdoor import ConnectionLimits
from faceanalysis.service.job_store import JobStore
from faceanalysis.service.runtime import Runtime
from faceanalysis.service.security import check_token
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
    defaults = ConnectionLimits()
    limits = parser.add_argument_group("connections (waitress; docs/hardening.md)")
    limits.add_argument("--connection-limit", type=int,
                        default=int(env.get("FACE_CONNECTION_LIMIT", defaults.connection_limit)),
                        help="open connections at most; more wait to be accepted ($FACE_CONNECTION_LIMIT, "
                             f"default {defaults.connection_limit})")
    limits.add_argument("--header-timeout", type=float,
                        default=float(env.get("FACE_HEADER_TIMEOUT", defaults.header_timeout_s)),
                        help="seconds a request's headers may take to arrive; a body must then come at "
                             f"--min-body-rate at least ($FACE_HEADER_TIMEOUT, default {defaults.header_timeout_s:g})")
    limits.add_argument("--min-body-rate", type=int,
                        default=int(env.get("FACE_MIN_BODY_RATE", defaults.min_body_rate)),
                        help="bytes/s a request body must average ($FACE_MIN_BODY_RATE, default "
                             f"{defaults.min_body_rate})")
    limits.add_argument("--idle-timeout", type=float,
                        default=float(env.get("FACE_IDLE_TIMEOUT", defaults.idle_timeout_s)),
                        help="seconds a connection may stay open with no request under way ($FACE_IDLE_TIMEOUT, "
                             f"default {defaults.idle_timeout_s:g})")


def connection_limits(args: argparse.Namespace) -> ConnectionLimits:
    """The connection limits the arguments ask for; exit 2 when one cannot serve."""
    limits = ConnectionLimits(connection_limit=args.connection_limit, header_timeout_s=args.header_timeout,
                              min_body_rate=args.min_body_rate, idle_timeout_s=args.idle_timeout,
                              cleanup_interval_s=min(ConnectionLimits.cleanup_interval_s, args.idle_timeout / 2))
    if limits.connection_limit < 1 or limits.header_timeout_s <= 0 or limits.idle_timeout_s <= 0 \
            or limits.min_body_rate < 0:
        exit_with(AnalysisError("invalid_setting", f"connection limits must be positive: {limits}"))
    return limits


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
            exit_with(AnalysisError("invalid_token", f"cannot read the API token file {path}: {error}"))
    else:
        token = environment().get("FACE_API_TOKEN")
    if token is not None:
        try:
            return check_token(token)
        except ValueError as error:
            exit_with(AnalysisError("invalid_token", str(error)))
    if not is_loopback(args.host):
        exit_with(AnalysisError(
            "token_required",
            f"refusing to listen on {args.host!r} without an API token: anyone who can reach the port could use "
            "the service and read every job. Give one with --api-token-file FILE (or $FACE_API_TOKEN), or "
            "listen on 127.0.0.1"))
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


class StartupInterrupted(BaseException):
    """SIGTERM or SIGINT while the server was starting."""


class StartupGuard:
    """Around the start-up (models loading): SIGTERM or SIGINT ends it cleanly, with exit status 0, the data
    folder's temporary files and instance lock removed. ``runtime``, once set, is shut down instead of the
    store alone (its job queue may already run)."""

    def __init__(self, store: JobStore) -> None:
        self.store = store
        self.runtime: Runtime | None = None
        self.signalled: str | None = None

    def __enter__(self) -> "StartupGuard":
        def on_signal(number: int, frame) -> None:
            # Remembered as well as raised: a library can turn the exception into another one (pybind11
            # makes any failure during a module's initialisation an ImportError) or swallow it.
            self.signalled = signal.Signals(number).name
            raise StartupInterrupted(self.signalled)
        self._previous = {number: signal.signal(number, on_signal) for number in (signal.SIGTERM, signal.SIGINT)}
        return self

    def __exit__(self, kind, error, traceback) -> bool:
        if self.signalled is None:
            # serve_until_signalled puts its own handlers in place at once.
            for number, handler in self._previous.items():
                signal.signal(number, handler)
            return False
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, signal.SIG_IGN)       # a second signal must not cut the clean-up short
        log.info("%s while starting: stopping", self.signalled)
        if self.runtime is not None:
            self.runtime.shutdown(0)
        else:
            self.store.close()
            self.store.folder.close()
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        # Model loading may have started library threads (TensorFlow, onnxruntime) that an interpreter exit
        # would race against; nothing of ours is left to finish.
        os._exit(0)


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
