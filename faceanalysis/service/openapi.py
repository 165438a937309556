"""The OpenAPI 3 description of the service, written by hand.

Hand-written rather than generated so that it states the contract we mean
(every error code included) rather than whatever the code happens to do. The
limits in descriptions are filled in from the running app's config.
"""

from __future__ import annotations

from facecore.labels import EXPRESSIONS


# A folder name: file systems allow at most 255 bytes, longer names are refused with 400.
SAMPLE_NAME = {"type": "string", "maxLength": 255}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _error(description: str, codes: list[str]) -> dict:
    return {"description": f"{description} Codes: {', '.join(codes)}.",
            "content": {"application/json": {"schema": _ref("Error")}}}


def _probabilities(labels, description: str) -> dict:
    return {"type": "object", "description": description, "required": list(labels),
            "properties": {label: {"type": "number", "minimum": 0, "maximum": 1} for label in labels}}


def _expression() -> dict:
    schema = _probabilities(EXPRESSIONS, "The 7 expression probabilities (sum to 1) and the most likely one.")
    schema["properties"]["dominant"] = {"type": "string", "enum": list(EXPRESSIONS)}
    schema["required"].append("dominant")
    return schema


def openapi_spec(config) -> dict:
    max_body = config["MAX_CONTENT_LENGTH"]
    options = [
        {"name": "timeline", "in": "query", "schema": {"type": "boolean", "default": False},
         "description": "Also return per-frame results. May be given as a JSON or form field instead."},
        {"name": "max_frames", "in": "query",
         "schema": {"type": "integer", "minimum": 1, "maximum": config["FACE_MAX_FRAMES"],
                    "default": config["FACE_DEFAULT_MAX_FRAMES"]},
         "description": "Analyse at most this many frames (after stride); the rest is not read and "
                        "meta.frames.truncated is true."},
        {"name": "stride", "in": "query",
         "schema": {"type": "integer", "minimum": 1, "maximum": config["FACE_MAX_STRIDE"], "default": 1},
         "description": "Analyse every n-th frame."},
    ]
    form_options = {
        "timeline": {"type": "boolean"}, "max_frames": {"type": "integer"}, "stride": {"type": "integer"}}
    request_body = {
        "required": True,
        "content": {
            "application/json": {"schema": {
                "type": "object", "required": ["sample"],
                "properties": {"sample": {**SAMPLE_NAME, "description": "A folder name inside samples/."},
                               **form_options}},
                "example": {"sample": "seqA", "max_frames": 3}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "description": "Exactly one of sample, video, zip, frames.",
                    "properties": {
                        "sample": SAMPLE_NAME,
                        "video": {"type": "string", "format": "binary",
                                  "description": "One video file: .mp4, .avi, .mov or .webm."},
                        "zip": {"type": "string", "format": "binary",
                                "description": f"One zip of .jpg/.jpeg/.png/.bmp frames, taken in natural order "
                                               f"of their names. At most {config['FACE_MAX_ENTRIES']} entries and "
                                               f"{config['FACE_MAX_UNPACKED_BYTES']} bytes unpacked. Entries "
                                               "with absolute paths, '..' or nested archives are skipped and "
                                               "listed in meta.frames.skipped."},
                        "frames": {"type": "array", "items": {"type": "string", "format": "binary"},
                                   "description": "Several image files, analysed in the order sent."},
                        **form_options,
                    },
                },
                "encoding": {"frames": {"contentType": "image/*"}},
            },
        },
    }
    input_errors = {
        "400": _error("The request is malformed.", ["invalid_request", "invalid_option", "invalid_sequence_name"]),
        "404": _error("No such sample.", ["sequence_not_found"]),
        "413": _error(f"Too large: request body over {max_body} bytes, a zip over its limits, too many files, "
                      "or video frames over the pixel limit.",
                      ["request_too_large", "archive_too_large", "too_many_frames", "frame_too_large"]),
        "415": _error("Not JSON or multipart, or not a video file.", ["unsupported_media_type"]),
        "422": _error("Nothing that can be analysed.",
                      ["no_images", "empty_upload", "invalid_video", "invalid_archive", "no_face"]),
        "500": _error("A bug; the traceback is in the server log.", ["internal_error"]),
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": "Video age, gender and expression recognition", "version": "2.0.0",
                 "description": "Analyse a sequence of frames of one or more persons. Probabilities are numbers "
                                "in [0, 1]; ages are years (0 to 80)."},
        "paths": {
            "/api/v2/analyze": {"post": {
                "summary": "Analyse a sample, a video, a zip of frames or several images, and wait for the answer.",
                "parameters": options, "requestBody": request_body,
                "responses": {"200": {"description": "The answer.",
                                      "content": {"application/json": {"schema": _ref("Analysis")}}},
                              **input_errors}}},
            "/api/v2/jobs": {"post": {
                "summary": "Queue the same analysis in the background; answers at once.",
                "parameters": options, "requestBody": request_body,
                "responses": {
                    "202": {"description": "Queued. Poll the URL in Location.",
                            "headers": {"Location": {"schema": {"type": "string"}}},
                            "content": {"application/json": {"schema": {
                                "type": "object", "required": ["id", "status", "url"],
                                "properties": {"id": {"type": "string"}, "status": {"type": "string"},
                                               "url": {"type": "string"}}}}}},
                    "429": _error(f"{config['FACE_JOB_QUEUE_SIZE']} jobs are already waiting.", ["queue_full"]),
                    **input_errors}}},
            "/api/v2/jobs/{job_id}": {"get": {
                "summary": "A job's status and progress, and its answer or error once finished.",
                "parameters": [{"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {
                    "200": {"description": "The job.", "content": {"application/json": {"schema": _ref("Job")}}},
                    "404": _error(f"Unknown, or finished more than {config['FACE_JOB_TTL_SECONDS']} s ago.",
                                  ["job_not_found"])}}},
            "/api/v2/samples": {"get": {
                "summary": "The sample names: the sequence folders in samples/, in natural order.",
                "responses": {"200": {"description": "The names, for {\"sample\": NAME}.",
                                      "content": {"application/json": {"schema": {
                                          "type": "object", "required": ["samples"],
                                          "properties": {"samples": {"type": "array",
                                                                     "items": {"type": "string"}}}}}}}}}},
            "/api/v2/samples/{name}/frames/{index}.jpg": {"get": {
                "summary": "Frame `index` of a sample, downscaled to `width` pixels (never enlarged), as JPEG.",
                "description": "`index` is the position in the sample's natural-order listing, the same number "
                               "as `timeline[].frame` in an answer for that sample. The headers X-Frame-Width "
                               "and X-Frame-Height give the frame's own size, to scale timeline boxes.",
                "parameters": [
                    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
                    {"name": "index", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 0}},
                    {"name": "width", "in": "query",
                     "schema": {"type": "integer", "minimum": 16, "maximum": 640, "default": 160}}],
                "responses": {
                    "200": {"description": "The thumbnail.",
                            "headers": {"X-Frame-Width": {"schema": {"type": "integer"}},
                                        "X-Frame-Height": {"schema": {"type": "integer"}}},
                            "content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}}},
                    "400": _error("A bad name or width.", ["invalid_sequence_name", "invalid_option"]),
                    "404": _error("No such sample, or no such frame in it.", ["sequence_not_found",
                                                                             "frame_not_found"]),
                    "422": _error("The sample has no frames, or this frame cannot be decoded.",
                                  ["no_images", "unreadable_frame"])}}},
            "/api/v2/openapi.json": {"get": {
                "summary": "This document.",
                "responses": {"200": {"description": "OpenAPI 3 JSON.",
                                      "content": {"application/json": {"schema": {"type": "object"}}}}}}},
            "/healthz": {"get": {
                "summary": "Liveness: the process answers.",
                "responses": {"200": {"description": "Up.", "content": {"application/json": {"schema": {
                    "type": "object", "properties": {"status": {"type": "string", "enum": ["ok"]}}}}}}}}},
            "/readyz": {"get": {
                "summary": "Readiness: every model is loaded and warmed.",
                "responses": {
                    "200": {"description": "Ready.", "content": {"application/json": {"schema": {
                        "type": "object", "properties": {"status": {"type": "string", "enum": ["ready"]},
                                                         "device": {"type": "string", "enum": ["CPU", "GPU"]}}}}}},
                    "503": _error("Models are still loading.", ["not_ready"])}}},
            "/": {"get": {
                "summary": "The browser page: pick a sample or upload a video or zip, and see the answer.",
                "responses": {"200": {"description": "HTML.", "content": {"text/html": {}}}}}},
            "/seqPath/{name}": {"get": {
                "summary": "Legacy: analyse samples/<name> ('test' is seqA). Codes as keys, values as strings.",
                "parameters": [{"name": "name", "in": "path", "required": True, "schema": SAMPLE_NAME,
                                "example": "test"}],
                "responses": {
                    "200": {"description": "Video_Emo, Video_Gen, Video_Age; see README.",
                            "content": {"application/json": {"schema": {"type": "object"}}}},
                    "400": input_errors["400"], "404": input_errors["404"],
                    "422": _error("Nothing to analyse.", ["no_images", "no_face"]),
                    "500": input_errors["500"]}}},
        },
        "components": {"schemas": _schemas()},
    }


def _schemas() -> dict:
    number = {"type": "number"}
    box = {"type": "array", "items": number, "minItems": 4, "maxItems": 4, "description": "x1, y1, x2, y2 pixels"}
    gender = _probabilities(("male", "female"), "Gender probabilities (sum to 1).")
    return {
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {
            "type": "object", "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}},
        "Age": {"type": "object", "required": ["value", "interval"], "properties": {
            "value": {**number, "description": "Expected age of the 81-bin distribution, years."},
            "interval": {"type": "array", "items": number, "minItems": 2, "maxItems": 2,
                         "description": "Central 80% range of the distribution, years."}}},
        "Person": {"type": "object",
                   "required": ["id", "primary", "age", "gender", "expression", "frames_seen", "mean_confidence"],
                   "properties": {
                       "id": {"type": "integer", "description": "1, 2, ... in order of first appearance."},
                       "primary": {"type": "boolean", "description": "The person seen in most frames."},
                       "age": _ref("Age"), "gender": gender, "expression": _expression(),
                       "frames_seen": {"type": "integer"},
                       "mean_confidence": {**number, "description": "Mean face-detection confidence."}}},
        "Face": {"type": "object", "required": ["person", "box", "confidence", "landmarks", "age", "gender",
                                                "expression"],
                 "properties": {
                     "person": {"type": "integer"}, "box": box, "confidence": number,
                     "landmarks": {"type": "array", "items": {"type": "array", "items": {**number, "nullable": True}},
                                   "description": "5 points: eyes, nose, mouth corners."},
                     "age": {**number, "description": "Expected age of this face, years."},
                     "gender": gender, "expression": _expression()}},
        "TimelineFrame": {"type": "object", "required": ["frame", "name", "faces"], "properties": {
            "frame": {"type": "integer", "description": "Index in the input (folder order, video frame number)."},
            "name": {"type": "string"}, "faces": {"type": "array", "items": _ref("Face")}}},
        "Meta": {"type": "object", "properties": {
            "input": {"type": "object", "properties": {
                "kind": {"type": "string", "enum": ["sample", "video", "zip", "frames"]},
                "name": {"type": "string"}, "fps": {**number, "nullable": True}}},
            "options": {"type": "object"},
            "frames": {"type": "object", "properties": {
                "listed": {"type": "integer"}, "read": {"type": "integer"},
                "skipped": {"type": "array", "items": {"type": "object", "properties": {
                    "name": {"type": "string"}, "reason": {"type": "string"}}}},
                "ignored": {"type": "array", "items": {"type": "string"}},
                "without_face": {"type": "array", "items": {"type": "string"}},
                "truncated": {"type": "boolean"}}},
            "models": {"type": "object", "description": "Per model file: model, package==version, file, sha256, "
                                                        "license."},
            "model_choice": {"type": "object", "description": "Which models answer: FACE_AGE_GENDER and "
                                                              "FACE_EXPRESSION as the server was started.",
                             "properties": {"age_gender": {"type": "string"}, "expression": {"type": "string"}}},
            "timings_ms": {"type": "object", "additionalProperties": number},
            "device": {"type": "object"}, "aggregator": {"type": "string"}, "tracker": {"type": "object"}}},
        "Analysis": {"type": "object", "required": ["persons", "meta"], "properties": {
            "persons": {"type": "array", "items": _ref("Person")},
            "timeline": {"type": "array", "items": _ref("TimelineFrame"),
                         "description": "Only with timeline=true: one entry per frame read."},
            "meta": _ref("Meta")}},
        "Job": {"type": "object", "required": ["id", "status", "progress"], "properties": {
            "id": {"type": "string"},
            "status": {"type": "string", "enum": ["queued", "running", "done", "failed"]},
            "progress": {"type": "object", "properties": {
                "frames_done": {"type": "integer"},
                "frames_total": {"type": "integer", "nullable": True,
                                 "description": "null while unknown (a video without a frame count)."}}},
            "created": {"type": "string", "format": "date-time"},
            "started": {"type": "string", "format": "date-time", "nullable": True},
            "finished": {"type": "string", "format": "date-time", "nullable": True},
            "result": _ref("Analysis"),
            "error": {"type": "object", "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                                                       "status": {"type": "integer"}}}}},
    }
