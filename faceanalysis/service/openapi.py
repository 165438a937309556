"""The OpenAPI 3 description of the service.

The paths, their summaries and which error codes each can answer are written here: they state the contract
we mean, not whatever the code happens to do. Each code's HTTP status comes from the error catalogue
(``facecore.errors.CATALOGUE``). Every schema, and every option with its bounds, is generated from ``contract``
(the declarations the answers are built as) and the running app's ``Limits``, so shapes and bounds cannot drift
from what the service answers.
"""

from __future__ import annotations

from faceanalysis.service import contract
from faceanalysis.service.analysis_request import VIDEO_EXTENSIONS
from faceanalysis.service.contract import MAX_NAME_LENGTH, Limits
from faceanalysis.service.page import MAX_WIDTH, MIN_WIDTH, THUMBNAIL_WIDTH
from faceanalysis.service.schema import Components
from facecore.errors import API, error_kind
from facecore.frames import IMAGE_EXTENSIONS

# A folder name: file systems allow at most 255 bytes, longer names are refused with 400.
SAMPLE_NAME = {"type": "string", "maxLength": MAX_NAME_LENGTH}
# Open without the API token (security.OPEN_ENDPOINTS): probes, and the page that asks for the token.
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/"})


def openapi_spec(limits: Limits) -> dict:
    components = Components(limits)

    def answer(description: str, declaration: type, **extra) -> dict:
        return {"description": description, **extra,
                "content": {"application/json": {"schema": components.ref(declaration)}}}

    def error(description: str, codes: list[str], **extra) -> dict:
        """{status: the answer} for these codes, which share that status in the catalogue."""
        return {_status(codes): answer(f"{description} Codes: {', '.join(codes)}.", contract.Error, **extra)}

    retry_after = {"Retry-After": {"description": "Seconds to wait before trying again.",
                                   "schema": {"type": "integer"}}}
    shutting_down = error("The server is shutting down: it takes no new work (status polls are still "
                          "answered); retry after Retry-After seconds.", ["shutting_down"], headers=retry_after)

    parameters = _option_parameters(components)
    request_body = _request_body(components, limits)
    malformed = error("The request is malformed.", ["invalid_request", "invalid_json", "invalid_option",
                                                    "unknown_option", "invalid_sequence_name"])
    no_sample = error("No such sample.", ["sequence_not_found"])
    a_bug = error("A bug; the traceback is in the server log.", ["internal_error"])
    input_errors = {
        **malformed, **no_sample,
        **error(f"Too large: request body over {limits.max_content_length} bytes, a zip over its limits, too "
                "many files, or video frames over the pixel limit.",
                ["request_too_large", "archive_too_large", "too_many_frames", "frame_too_large"]),
        **error("Not JSON or multipart, or not a video file.", ["unsupported_media_type"]),
        **error("Nothing that can be analysed.",
                ["no_images", "empty_upload", "invalid_video", "invalid_archive", "no_face"]),
        **a_bug,
    }
    job_id = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}
    job_not_found = error("No such job, and no expired one by that id in the last "
                          f"{limits.expired_jobs_remembered_seconds} s.", ["job_not_found"])
    job_expired = error(f"The job finished more than {limits.job_ttl_seconds} s ago, or more than "
                        f"{limits.jobs_kept} jobs finished since, and its answer was deleted.", ["job_expired"])
    job_errors = {**job_not_found, **job_expired}
    index_parameter = {"name": "index", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 0}}
    width_parameter = {"name": "width", "in": "query",
                       "schema": {"type": "integer", "minimum": MIN_WIDTH, "maximum": MAX_WIDTH,
                                  "default": THUMBNAIL_WIDTH}}
    jpeg_answer = {"description": "The picture.",
                   "headers": {"X-Frame-Width": {"schema": {"type": "integer"}},
                               "X-Frame-Height": {"schema": {"type": "integer"}}},
                   "content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}}}
    spec = {
        "openapi": "3.0.3",
        "info": {"title": "Video age, gender and expression recognition", "version": "2.0.0",
                 "description": "Analyse a sequence of frames of one or more persons. Probabilities are numbers "
                                "in [0, 1]; ages are years (0 to 100)."},
        "paths": {
            "/api/v2/analyze": {"post": {
                "summary": "Analyse a sample, a video, a zip of frames or several images, and wait for the answer.",
                "parameters": parameters, "requestBody": request_body,
                "responses": {"200": answer("The answer.", contract.Analysis), **input_errors,
                              **shutting_down}}},
            "/api/v2/jobs": {"post": {
                "summary": "Queue the same analysis in the background; answers at once.",
                "parameters": parameters, "requestBody": request_body,
                "responses": {
                    "202": answer("Queued. Poll the URL in Location.", contract.QueuedJob,
                                  headers={"Location": {"schema": {"type": "string"}}}),
                    **error(f"{limits.job_queue_size} jobs are already waiting.", ["queue_full"]),
                    **input_errors,
                    **error("The server is shutting down (retry after Retry-After seconds), or the job "
                                 "could not be stored.", ["shutting_down", "storage_unavailable"],
                                 headers=retry_after)}}},
            "/api/v2/jobs/{job_id}": {
                "get": {
                    "summary": "A job's status and progress, and its answer or error once finished.",
                    "parameters": [job_id],
                    "responses": {"200": answer("The job.", contract.Job), **job_errors, **shutting_down}},
                "delete": {
                    "summary": "Cancel a queued or running job: it ends as failed with error code `cancelled` "
                               "(a running one stops at its next batch of frames).",
                    "parameters": [job_id],
                    "responses": {
                        "200": answer("The job, now failed with code cancelled.", contract.Job),
                        **job_not_found, **error("The job has already ended.", ["job_finished"]),
                        **job_expired, **shutting_down}}},
            "/api/v2/jobs/{job_id}/upload": {"get": {
                "summary": "The video a job analysed, as it was uploaded, for playback (Range requests work).",
                "description": "Only for a job submitted with `keep_upload=true`; the file is deleted when the job "
                               "is forgotten (see 410 job_expired).",
                "parameters": [job_id],
                "responses": {
                    "200": {"description": "The file, with the type its name suggests.",
                            "content": {"video/*": {"schema": {"type": "string", "format": "binary"}}}},
                    **error("No such job, the job did not keep its upload, or its input is not a video.",
                                 ["job_not_found", "upload_not_kept", "not_a_video"]),
                    **job_expired}}},
            "/api/v2/jobs/{job_id}/frames/{index}.jpg": {"get": {
                "summary": "Frame `index` of a job's uploaded video, zip or images, downscaled to `width` pixels "
                           "(never enlarged), as JPEG.",
                "description": "`index` is the same number as `timeline[].frame` in the job's answer. Only for a "
                               "job submitted with `keep_upload=true`. X-Frame-Width and X-Frame-Height give the "
                               "frame's own size, to scale timeline boxes.",
                "parameters": [job_id, index_parameter, width_parameter],
                "responses": {
                    "200": jpeg_answer,
                    **error("A bad width.", ["invalid_option"]),
                    **error("No such job, it did not keep its upload, or no such frame in it.",
                                 ["job_not_found", "upload_not_kept", "frame_not_found"]),
                    **job_expired,
                    **error("This frame cannot be decoded.", ["unreadable_frame"])}}},
            "/api/v2/samples": {"get": {
                "summary": "The sample names: the sequence folders in samples/, in natural order.",
                "responses": {"200": answer("The names, for {\"sample\": NAME}.", contract.SampleList)}}},
            "/api/v2/samples/{name}/frames/{index}.jpg": {"get": {
                "summary": "Frame `index` of a sample, downscaled to `width` pixels (never enlarged), as JPEG.",
                "description": "`index` is the position in the sample's natural-order listing, the same number "
                               "as `timeline[].frame` in an answer for that sample. The headers X-Frame-Width "
                               "and X-Frame-Height give the frame's own size, to scale timeline boxes.",
                "parameters": [
                    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
                    index_parameter, width_parameter],
                "responses": {
                    "200": jpeg_answer,
                    **error("A bad name or width.", ["invalid_sequence_name", "invalid_option"]),
                    **error("No such sample, or no such frame in it.", ["sequence_not_found",
                                                                            "frame_not_found"]),
                    **error("The sample has no frames, or this frame cannot be decoded.",
                                 ["no_images", "unreadable_frame"])}}},
            "/api/v2/openapi.json": {"get": {
                "summary": "This document.",
                "responses": {"200": {"description": "OpenAPI 3 JSON.",
                                      "content": {"application/json": {"schema": {"type": "object"}}}}}}},
            "/healthz": {"get": {
                "summary": "Liveness: the process answers.",
                "responses": {"200": answer("Up.", contract.Health)}}},
            "/readyz": {"get": {
                "summary": "Readiness: every model is loaded and warmed, and the server is not shutting down.",
                "responses": {"200": answer("Ready.", contract.Readiness),
                              **error("Models are still loading, or the server is shutting down.",
                                      ["not_ready", "shutting_down"])}}},
            "/": {"get": {
                "summary": "The browser page: pick a sample or upload a video or zip, play it with each person's box, "
                           "and see the answer.",
                "responses": {"200": {"description": "HTML.", "content": {"text/html": {}}}}}},
            "/seqPath/{name}": {"get": {
                "summary": "Legacy: analyse samples/<name> ('test' is seqA). Codes as keys, values as strings.",
                "parameters": [{"name": "name", "in": "path", "required": True, "schema": SAMPLE_NAME,
                                "example": "test"}],
                "responses": {
                    "200": {"description": "Video_Emo, Video_Gen, Video_Age; see README.",
                            "content": {"application/json": {"schema": {"type": "object"}}}},
                    **malformed, **no_sample,
                    **error("Nothing to analyse.", ["no_images", "no_face"]),
                    **a_bug, **shutting_down}}},
        },
        "components": {"schemas": components.schemas, "securitySchemes": {"apiToken": {
            "type": "http", "scheme": "bearer",
            "description": "Required when the server has an API token (always when it listens on anything but "
                           "the loopback interface); /healthz, /readyz and the page are open."}}},
        # The token or nothing: which one depends on how the server was started.
        "security": [{"apiToken": []}, {}],
    }
    unauthorized = error("The server requires its API token (Authorization: Bearer <token>): it was missing or "
                         "wrong.", ["unauthorized"], headers={"WWW-Authenticate": {"schema": {"type": "string"}}})
    for path, methods in spec["paths"].items():
        for operation in methods.values():
            if path in OPEN_PATHS:
                operation["security"] = []
            else:
                operation["responses"].update(unauthorized)
    return spec


def _status(codes: list[str]) -> str:
    """The one HTTP status these codes have in the catalogue, as the document's key."""
    kinds = [error_kind(code) for code in codes]
    wrong = [kind.code for kind in kinds if API not in kind.where]
    statuses = {kind.status for kind in kinds}
    if wrong or len(statuses) != 1:
        raise ValueError(f"one answer of the document needs API codes of one status: {codes} "
                         f"(not API: {wrong}; statuses {sorted(statuses)})")
    return str(statuses.pop())


def _option_parameters(components: Components) -> list[dict]:
    parameters = []
    for name, schema in components.object(contract.Options)["properties"].items():
        description = schema.pop("description")
        parameters.append({"name": name, "in": "query", "schema": schema,
                           "description": f"{description} May be given as a JSON or form field instead."})
    return parameters


def _request_body(components: Components, limits: Limits) -> dict:
    # The options as body fields: the same schemas as the query parameters, none of them required.
    options = components.object(contract.Options)["properties"]
    return {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"type": "object", "required": ["sample"], "additionalProperties": False,
                           "properties": {"sample": {**SAMPLE_NAME, "description": "A folder name inside samples/."},
                                          **options}},
                "example": {"sample": "seqA", "max_frames": 3}},
            "multipart/form-data": {
                "schema": {
                    "type": "object", "additionalProperties": False,
                    "description": f"Exactly one of {', '.join(contract.INPUT_KINDS)}.",
                    "properties": {
                        "sample": SAMPLE_NAME,
                        "video": {"type": "string", "format": "binary",
                                  "description": f"One video file: {_extensions(VIDEO_EXTENSIONS)}."},
                        "zip": {"type": "string", "format": "binary",
                                "description": f"One zip of {_extensions(IMAGE_EXTENSIONS)} frames, taken in natural "
                                               f"order of their names. At most {limits.max_entries} entries and "
                                               f"{limits.max_unpacked_bytes} bytes unpacked. Entries with absolute "
                                               "paths, '..' or nested archives are skipped and listed in "
                                               "meta.frames.skipped."},
                        "frames": {"type": "array", "items": {"type": "string", "format": "binary"},
                                   "description": "Several image files, analysed in the order sent."},
                        **options,
                    },
                },
                "encoding": {"frames": {"contentType": "image/*"}},
            },
        },
    }


def _extensions(extensions) -> str:
    return ", ".join(sorted(extensions))
