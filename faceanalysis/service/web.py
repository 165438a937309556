"""The HTTP service: the legacy ``GET /seqPath/<name>`` endpoint, API v2 (``api_v2.py``), the browser page
(``page.py``), JSON errors.

The app gets an already prepared ``FaceAnalyzer``; nothing here loads a model.
"""

from __future__ import annotations

import logging
from pathlib import Path

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException
from werkzeug.routing import PathConverter

from faceanalysis.pipeline.analyzer import FaceAnalyzer
from faceanalysis.service.api_v2 import create_api_v2
from facecore.errors import AnalysisError, bad_name, not_found
from faceanalysis.service.legacy import legacy_result
from faceanalysis.service.page import create_page, list_samples

log = logging.getLogger(__name__)

LEGACY_ALIASES = {"test": "seqA"}
MAX_NAME_LENGTH = 255       # longest file name on common file systems


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


class AnyPathConverter(PathConverter):
    """Like ``path`` but also matches a leading slash, so "/seqPath//etc" is refused as a name, not a 404."""
    regex = ".*"
    part_isolating = False   # werkzeug would infer True from a regex without "/"


def create_app(analyzer: FaceAnalyzer, samples_dir: Path) -> Flask:
    app = Flask(__name__)
    app.json.sort_keys = False   # keep the legacy order: Video_Emo, Video_Gen, Video_Age
    # "//etc" must reach resolve_sample and be refused, not be redirected to "/etc".
    app.url_map.merge_slashes = False
    app.url_map.converters["anypath"] = AnyPathConverter
    samples_dir = Path(samples_dir)

    @app.get("/seqPath/<anypath:name>")
    def sequence(name: str):
        folder = resolve_sample(samples_dir, name)
        result = analyzer.analyse_folder(folder)
        log.info("analysed %s: %d frames read, %d skipped, %d without face, %.0f ms",
                 folder.name, result.frames_read, len(result.source.skipped), len(result.frames_without_face),
                 result.timings_ms["total"])
        return jsonify(legacy_result(result))

    app.register_blueprint(create_api_v2(analyzer, lambda name: resolve_sample(samples_dir, name)))
    app.register_blueprint(create_page(lambda name: resolve_sample(samples_dir, name),
                                       lambda: list_samples(samples_dir)))

    @app.errorhandler(AnalysisError)
    def analysis_error(error: AnalysisError):
        return jsonify(error.to_json()), error.status

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        code = (error.name or "error").lower().replace(" ", "_")
        return jsonify({"error": {"code": code, "message": error.description}}), error.code

    @app.errorhandler(Exception)
    def unexpected(error: Exception):
        log.exception("unexpected error")
        return jsonify({"error": {"code": "internal_error", "message": "the analysis failed unexpectedly"}}), 500

    return app
