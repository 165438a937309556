"""API v2: analyse a sample, a video, a zip or a set of images, now or as a background job.

    POST /api/v2/analyze          the answer in the response
    POST /api/v2/jobs             202 with a job id at once; GET /api/v2/jobs/<id> for progress and the answer
    DELETE /api/v2/jobs/<id>      cancel a queued or running job (it ends as failed, code "cancelled")
    GET  /api/v2/samples          the sample names, for {"sample": NAME}
    GET  /api/v2/openapi.json     the contract (openapi.py, generated from contract.py)
    GET  /healthz, /readyz        liveness, and readiness (models loaded and warmed, not shutting down)

Jobs live in the app's data folder (``runtime.py``, ``jobs.py``, ``job_store.py``), so they outlive the process. The
runtime's queue runs each job with ``job_runner``'s function, which the app hands the runtime when it makes it.
Requests that start work are counted by the runtime's lifecycle, which a graceful shutdown waits for and which
refuses them (503 ``shutting_down``) once the shutdown began. Limits come from the Flask config
(``contract.Limits`` fills in the keys that are not set), so a deployment or a test can change them. Every answer is a
``contract`` declaration; errors keep the service's one shape, ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

from flask import Blueprint, current_app, jsonify, request, url_for
from werkzeug.exceptions import RequestEntityTooLarge

from faceanalysis.pipeline.analyzer import FaceAnalyzer
from faceanalysis.service.analysis_request import AnalysisRequest, parse_request, restore_request
from faceanalysis.service.contract import Health, Limits, QueuedJob, Readiness, SampleList, error_json
from faceanalysis.service.openapi import openapi_spec
from faceanalysis.service.runtime import JobRun, Runtime, ShuttingDown
from faceanalysis.service.schema import to_json
from faceanalysis.writers.v2 import v2_json
from facecore.errors import AnalysisError

log = logging.getLogger(__name__)


def analyse(analyzer: FaceAnalyzer, job: AnalysisRequest, progress=None) -> dict:
    """The v2 answer to ``job``; its uploads are removed however the analysis ends."""
    try:
        result = analyzer.analyse_source(job.source, progress)
        log.info("analysed %s %r: %d frames read, %d skipped, %.0f ms", job.input.kind, job.input.name,
                 result.frames_read, len(result.source.skipped), result.timings_ms["total"])
        return v2_json(result, job.input, job.options)
    finally:
        job.cleanup()


def job_runner(analyzer: FaceAnalyzer) -> JobRun:
    """The function that runs a stored job (``Runtime``'s ``run_job``): the request restored from its record
    and uploads, then analysed as ``POST /api/v2/analyze`` would."""
    def run_job(record: dict, uploads: Path | None, progress, limits: Limits) -> dict:
        return analyse(analyzer, restore_request(record, uploads, limits), progress)
    return run_job


def create_api_v2(analyzer: FaceAnalyzer, resolve_sample: Callable[[str], Path],
                  samples: Callable[[], list[str]], runtime: Runtime) -> Blueprint:
    """The v2 routes for one prepared analyzer; ``resolve_sample`` maps a sample name to its folder, ``samples``
    lists the names it accepts, ``runtime`` holds the data folder, the jobs and the lifecycle."""
    api = Blueprint("api_v2", __name__)

    @api.record_once
    def apply_defaults(state) -> None:
        config = state.app.config
        for key, value in Limits.config_defaults().items():
            if config.get(key) is None:      # Flask itself defines MAX_CONTENT_LENGTH as None
                config[key] = value

    def limits() -> Limits:
        return Limits.from_config(current_app.config)

    def job_queue():
        # Made on first use (the server makes it at start-up), so limits set in the app config after
        # create_app() still apply.
        return runtime.jobs(limits())

    def parse() -> AnalysisRequest:
        return parse_request(request, resolve_sample, limits(), runtime.new_workdir)

    @api.post("/api/v2/analyze")
    def analyze():
        with runtime.lifecycle.work():
            return jsonify(analyse(analyzer, parse()))

    @api.post("/api/v2/jobs")
    def submit_job():
        with runtime.lifecycle.work():
            queue = job_queue()
            job_request = parse()
            try:
                job = queue.submit(job_request.record(), job_request.workdir)
            finally:
                job_request.cleanup()           # nothing left to remove once the job took the uploads over
        location = url_for(".get_job", job_id=job.id)
        return jsonify(to_json(QueuedJob(id=job.id, status=job.status, url=location))), 202, {"Location": location}

    @api.get("/api/v2/jobs/<job_id>")
    def get_job(job_id: str):
        return jsonify(job_queue().get(job_id))

    @api.delete("/api/v2/jobs/<job_id>")
    def cancel_job(job_id: str):
        return jsonify(job_queue().cancel(job_id))

    @api.get("/api/v2/samples")
    def sample_list():
        return jsonify(to_json(SampleList(samples=samples())))

    @api.get("/api/v2/openapi.json")
    def openapi():
        return jsonify(openapi_spec(limits()))

    @api.get("/healthz")
    def healthz():
        return jsonify(to_json(Health(status="ok")))

    @api.get("/readyz")
    def readyz():
        if runtime.lifecycle.stopping:
            raise ShuttingDown()
        if not analyzer.ready:
            raise AnalysisError("not_ready", "the models are still loading")
        problem = runtime.storage_problem()
        if problem is not None:
            raise AnalysisError("storage_unavailable", f"jobs cannot be stored: {problem}")
        return jsonify(to_json(Readiness(status="ready", device=analyzer.device.kind)))

    @api.errorhandler(RequestEntityTooLarge)
    def too_large(error: RequestEntityTooLarge):
        limit = limits().max_content_length
        if request.content_length is not None and request.content_length > limit:
            message = f"the request body is {request.content_length} bytes, more than the limit of {limit}"
        else:
            config = current_app.config
            message = (f"the request's form is too large: a form field or a part's headers (a file name) over "
                       f"{config.get('MAX_FORM_MEMORY_SIZE')} bytes, or more than {config.get('MAX_FORM_PARTS')} "
                       "parts (send a zip)")
        return jsonify(error_json("request_too_large", message)), 413

    return api
