"""API v2: analyse a sample, a video, a zip or a set of images, now or as a background job.

    POST /api/v2/analyze          the answer in the response
    POST /api/v2/jobs             202 with a job id at once; GET /api/v2/jobs/<id> for progress and the answer
    GET  /api/v2/openapi.json     the contract (openapi.py)
    GET  /healthz, /readyz        liveness, and readiness (models loaded and warmed)

Limits come from the Flask config (``DEFAULT_CONFIG`` fills what is not set),
so a deployment or a test can change them. Errors keep the service's one
shape, ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Callable

from flask import Blueprint, current_app, jsonify, request, url_for
from werkzeug.exceptions import RequestEntityTooLarge

from faceanalysis.pipeline.analyzer import FaceAnalyzer
from facecore.errors import AnalysisError
from faceanalysis.service.inputs import AnalysisRequest, Limits, parse_request
from faceanalysis.service.jobs import JobQueue
from faceanalysis.service.openapi import openapi_spec
from faceanalysis.service.report import build_report

log = logging.getLogger(__name__)

DEFAULT_CONFIG = {
    "MAX_CONTENT_LENGTH": 256 * 1024 ** 2,     # whole request body, bytes
    "FACE_DEFAULT_MAX_FRAMES": 3000,
    "FACE_MAX_FRAMES": 10000,                  # hard cap on the max_frames option
    "FACE_MAX_STRIDE": 1000,
    "FACE_MAX_ENTRIES": 10000,                 # zip entries, or uploaded image files
    "FACE_MAX_UNPACKED_BYTES": 2 * 1024 ** 3,  # total uncompressed size of a zip
    "FACE_JOB_QUEUE_SIZE": 8,                  # jobs waiting, besides the one running
    "FACE_JOB_TTL_SECONDS": 600,               # how long a finished job's answer is kept
    "FACE_JOBS_KEPT": 100,                     # finished jobs kept at most
}


def create_api_v2(analyzer: FaceAnalyzer, resolve_sample: Callable[[str], Path]) -> Blueprint:
    """The v2 routes for one prepared analyzer; ``resolve_sample`` maps a sample name to its folder."""
    api = Blueprint("api_v2", __name__)
    jobs: JobQueue | None = None
    jobs_lock = threading.Lock()

    @api.record_once
    def apply_defaults(state) -> None:
        config = state.app.config
        for key, value in DEFAULT_CONFIG.items():
            if config.get(key) is None:      # Flask itself defines MAX_CONTENT_LENGTH as None
                config[key] = value

    def analyse(job: AnalysisRequest, progress=None) -> dict:
        try:
            result = analyzer.analyse_source(job.source, progress)
            log.info("analysed %s %r: %d frames read, %d skipped, %.0f ms", job.kind, job.name,
                     result.frames_read, len(result.source.skipped), result.timings_ms["total"])
            return build_report(result, job.options.timeline, job.describe())
        finally:
            job.cleanup()

    def job_queue() -> JobQueue:
        # Made on first use, so that limits set in the app config after create_app() still apply.
        nonlocal jobs
        with jobs_lock:
            if jobs is None:
                config = current_app.config
                jobs = JobQueue(analyse, max_queued=config["FACE_JOB_QUEUE_SIZE"],
                                ttl_s=config["FACE_JOB_TTL_SECONDS"], max_kept=config["FACE_JOBS_KEPT"])
            return jobs

    def parse() -> AnalysisRequest:
        return parse_request(request, resolve_sample, Limits.from_config(current_app.config))

    @api.post("/api/v2/analyze")
    def analyze():
        return jsonify(analyse(parse()))

    @api.post("/api/v2/jobs")
    def submit_job():
        job_request = parse()
        try:
            job = job_queue().submit(job_request)
        except AnalysisError:
            job_request.cleanup()
            raise
        location = url_for(".get_job", job_id=job.id)
        return jsonify({"id": job.id, "status": job.status, "url": location}), 202, {"Location": location}

    @api.get("/api/v2/jobs/<job_id>")
    def get_job(job_id: str):
        state = job_queue().get(job_id)
        if state is None:
            raise AnalysisError("job_not_found", f"no job {job_id!r}: it never existed or its result expired", 404)
        return jsonify(state)

    @api.get("/api/v2/openapi.json")
    def openapi():
        return jsonify(openapi_spec(current_app.config))

    @api.get("/healthz")
    def healthz():
        return jsonify({"status": "ok"})

    @api.get("/readyz")
    def readyz():
        if not analyzer.ready:
            raise AnalysisError("not_ready", "the models are still loading", 503)
        return jsonify({"status": "ready", "device": analyzer.device.kind})

    @api.errorhandler(RequestEntityTooLarge)
    def too_large(error: RequestEntityTooLarge):
        limit = current_app.config["MAX_CONTENT_LENGTH"]
        if request.content_length is not None and request.content_length > limit:
            message = f"the request body is {request.content_length} bytes, more than the limit of {limit}"
        else:
            message = f"the request is too large: over {limit} bytes, or too many form parts (send a zip)"
        return jsonify({"error": {"code": "request_too_large", "message": message}}), 413

    return api
