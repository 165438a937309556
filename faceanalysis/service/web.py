"""The HTTP service: the legacy ``GET /seqPath/<name>`` endpoint, API v2 (``api_v2.py``), the browser page
(``page.py``), JSON errors, the samples folder both APIs read, the API token and security headers
(``security.py``), and the runtime (``runtime.py``: data folder, jobs, graceful shutdown).

The app gets an already prepared ``FaceAnalyzer`` and, from the server, an opened job store; nothing here
loads a model or reads the environment.
"""

from __future__ import annotations

import errno
import logging
from pathlib import Path

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException
from werkzeug.routing import PathConverter

from faceanalysis.pipeline.analyzer import FaceAnalyzer
from faceanalysis.service.api_v2 import create_api_v2, job_runner
from faceanalysis.service.contract import MAX_NAME_LENGTH, Limits, error_json
from faceanalysis.service.job_store import JobStore, StoreClosed
from faceanalysis.service.page import create_page
from faceanalysis.service.runtime import Runtime, ShuttingDown, models_key_of
from faceanalysis.service.security import install_security
from faceanalysis.writers.legacy import legacy_json
from facecore.errors import AnalysisError, bad_name, not_found
from facecore.frames import natural_key

log = logging.getLogger(__name__)

LEGACY_ALIASES = {"test": "seqA"}
RUNTIME = "faceanalysis.runtime"         # app.extensions: the app's Runtime


def resolve_sample(samples_dir: Path, name: str) -> Path:
    """Map a request name to a folder directly inside ``samples_dir``, refusing every way out."""
    name = LEGACY_ALIASES.get(name, name)
    if (not name or name in (".", "..") or "/" in name or "\\" in name or "\x00" in name
            or name.startswith(".")):
        raise bad_name(f"{name!r} is not a sequence name: use a folder name inside samples/, with no path parts")
    if len(name) > MAX_NAME_LENGTH:
        raise bad_name(f"{name[:40]!r}... is {len(name)} characters long; a folder name has at most "
                       f"{MAX_NAME_LENGTH}")
    folder = samples_dir / name
    try:
        if folder.is_symlink() or (folder.exists() and folder.resolve().parent != samples_dir.resolve()):
            raise bad_name(f"{name!r} leads outside samples/")
        if not folder.is_dir():
            raise not_found(f"no sequence named {name!r} in samples/")
    except OSError as error:
        # The file system refuses the name itself, e.g. over 255 bytes once encoded (ENAMETOOLONG).
        raise bad_name(f"{name!r} is not a sequence name: {error.strerror or error}") from None
    return folder


def list_samples(samples_dir: Path) -> list[str]:
    """Folder names directly inside ``samples_dir`` that ``resolve_sample`` would accept, in natural order."""
    if not samples_dir.is_dir():
        return []
    return sorted((entry.name for entry in samples_dir.iterdir()
                   if entry.is_dir() and not entry.is_symlink() and not entry.name.startswith(".")),
                  key=natural_key)


class AnyPathConverter(PathConverter):
    """Like ``path`` but also matches a leading slash, so "/seqPath//etc" is refused as a name, not a 404."""
    regex = ".*"
    part_isolating = False   # werkzeug would infer True from a regex without "/"


def create_app(analyzer: FaceAnalyzer, samples_dir: Path, store: JobStore | None = None,
               api_token: str | None = None) -> Flask:
    """The app for one prepared analyzer. ``store``: the job store in the server's data folder (None: a
    temporary one, made on first use); ``api_token``: required of every request but the open ones."""
    app = Flask(__name__)
    app.json.sort_keys = False   # keep the legacy order: Video_Emo, Video_Gen, Video_Age
    # "//etc" must reach resolve_sample and be refused, not be redirected to "/etc".
    app.url_map.merge_slashes = False
    app.url_map.converters["anypath"] = AnyPathConverter
    samples_dir = Path(samples_dir)
    # Stand-in analyzers (tests) have no settings: they all count as one set of models.
    settings = getattr(analyzer, "settings", None)
    runtime = app.extensions[RUNTIME] = Runtime(store, job_runner(analyzer),
                                                models_key_of(settings.to_json() if settings is not None else {}))
    install_security(app, api_token)

    def sample_folder(name: str) -> Path:
        return resolve_sample(samples_dir, name)

    @app.get("/seqPath/<anypath:name>")
    def sequence(name: str):
        folder = sample_folder(name)
        with runtime.lifecycle.work():
            result = analyzer.analyse_folder(folder)
        log.info("analysed %s: %d frames read, %d skipped, %d without face, %.0f ms",
                 folder.name, result.frames_read, len(result.source.skipped), len(result.frames_without_face),
                 result.timings_ms["total"])
        return jsonify(legacy_json(result))

    app.register_blueprint(create_api_v2(analyzer, sample_folder, lambda: list_samples(samples_dir), runtime))
    app.register_blueprint(create_page(sample_folder, lambda: runtime.jobs(Limits.from_config(app.config))))

    @app.errorhandler(AnalysisError)
    def analysis_error(error: AnalysisError):
        return jsonify(error_json(error.code, error.message)), error.status

    @app.errorhandler(ShuttingDown)
    @app.errorhandler(StoreClosed)
    def shutting_down(error: Exception):
        return (jsonify(error_json("shutting_down", "the server is shutting down and takes no new work; retry "
                                                    "shortly (another instance, or this one once restarted)")),
                503, {"Retry-After": str(runtime.retry_after_s)})

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        code = (error.name or "error").lower().replace(" ", "_")
        return jsonify(error_json(code, error.description)), error.code

    @app.errorhandler(OSError)
    def storage_error(error: OSError):
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            # Werkzeug spools large form parts to temporary files: a full disk there is the same refusal.
            log.warning("no room left on a disk: %s", error)
            return (jsonify(error_json("storage_unavailable", "the server has no room left for this request; "
                                                              "retry later")), 503)
        return unexpected(error)

    @app.errorhandler(Exception)
    def unexpected(error: Exception):
        log.exception("unexpected error")
        return jsonify(error_json("internal_error", "the analysis failed unexpectedly")), 500

    return app


def runtime_of(app: Flask) -> Runtime:
    return app.extensions[RUNTIME]


def start_jobs(app: Flask) -> None:
    """Make the job queue now rather than on first use: the jobs of the last run are recovered and start
    running at once (the server calls this at start-up)."""
    runtime_of(app).jobs(Limits.from_config(app.config))
