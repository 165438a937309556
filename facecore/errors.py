"""Every error code the project answers, in one catalogue (code -> HTTP status -> meaning), and the one error type
that carries them.

``AnalysisError(code, message)`` takes its status from ``CATALOGUE`` and refuses a code that is not there. The web
layer turns it into ``{"error": {"code", "message"}}`` with that status; a failed job keeps code, message and
status; the batch runner writes the code into its ``inputs`` table; the command line prints the same JSON and
exits 2. The OpenAPI document takes each code's status from here, and the error table in the docs is this
catalogue printed by ``python -m facecore.errors --markdown``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

# Where a code can come from.
API = "API"                     # an endpoint's answer, listed in the OpenAPI document under its status
JOB = "job"                     # only as a failed job's error (GET /api/v2/jobs/{id})
HTTP = "HTTP"                   # the HTTP layer, before or besides any endpoint (any URL)
BATCH = "batch table"           # the error_code of a failed row of the batch runner's inputs table
COMMAND = "command line"        # the faceanalysis commands: JSON on stderr, exit status 2
WHERE = (API, JOB, HTTP, BATCH, COMMAND)


@dataclass(frozen=True)
class ErrorKind:
    """One code: its HTTP status (the one the service answers, or would answer, the same mistake with), what it
    means, and where it can come from (``WHERE``)."""
    code: str
    status: int
    meaning: str
    where: tuple[str, ...]


def _catalogue(*kinds: ErrorKind) -> dict[str, ErrorKind]:
    return {kind.code: kind for kind in kinds}


CATALOGUE: dict[str, ErrorKind] = _catalogue(
    # The request
    ErrorKind("invalid_request", 400, "no input or more than one, a JSON body that is not an object, more than one "
              "file for a video or zip, or several paths that are not all images", (API, COMMAND)),
    ErrorKind("invalid_json", 400, "the JSON body is nested too deeply to be read", (API,)),
    ErrorKind("invalid_option", 400, "an option or flag out of its range or not of its type, or more workers or GPUs "
              "than the cluster has", (API, COMMAND)),
    ErrorKind("unknown_option", 400, "a query parameter or body field that is not an option (the message names "
              "the options)", (API,)),
    ErrorKind("invalid_sequence_name", 400, "the sample name has `..` or a slash (also `%2F`, `%2e%2e`), starts with "
              "a dot, is over 255 characters, or is a symlink leading out of `samples/`", (API,)),
    ErrorKind("sequence_not_found", 404, "no such folder in `samples/`", (API,)),
    ErrorKind("unauthorized", 401, "the server has an API token and the request's `Authorization: Bearer` header "
              "is missing or wrong", (API, HTTP)),
    ErrorKind("request_too_large", 413, "the request body is over `MAX_CONTENT_LENGTH` (256 MB), or its form has "
              "too many parts or too large a field", (API, HTTP)),
    ErrorKind("unsupported_media_type", 415, "a body neither JSON nor multipart, or a file that is not a video, a zip "
              "of frames, an image or a folder of frames", (API, BATCH, COMMAND)),
    # The input
    ErrorKind("too_many_frames", 413, "a zip with more entries, or more uploaded images, than `FACE_MAX_ENTRIES` "
              "(10,000)", (API, BATCH)),
    ErrorKind("archive_too_large", 413, "a zip that unpacks to more than `FACE_MAX_UNPACKED_BYTES` (2 GB)",
              (API, BATCH)),
    ErrorKind("frame_too_large", 413, "a video whose frames are over 40 megapixels", (API, BATCH)),
    ErrorKind("empty_upload", 422, "an uploaded file of 0 bytes", (API,)),
    ErrorKind("no_images", 422, "the folder or zip holds no `.jpg/.jpeg/.png/.bmp` frame (the message counts the "
              "other files)", (API, BATCH)),
    ErrorKind("invalid_video", 422, "a video with no frame that can be decoded", (API, BATCH)),
    ErrorKind("invalid_archive", 422, "a file sent or named as a zip that is not a readable zip archive",
              (API, BATCH)),
    ErrorKind("no_face", 422, "no face in any frame read (the message says how many frames were read and how many "
              "were unreadable), or only a few doubtful detections: no track with `min_frames` frames or a face "
              "the gate is sure of (the message says how many)", (API, BATCH)),
    # Jobs and the page's pictures
    ErrorKind("queue_full", 429, "`FACE_JOB_QUEUE_SIZE` (8) jobs are already waiting", (API,)),
    ErrorKind("job_not_found", 404, "no job by that id, and no expired one remembered", (API,)),
    ErrorKind("job_expired", 410, "the job finished more than `FACE_JOB_TTL_SECONDS` (600) ago, or more than "
              "`FACE_JOBS_KEPT` (100) jobs finished since, and its answer was deleted", (API,)),
    ErrorKind("job_finished", 409, "cancelling a job that has already ended", (API,)),
    ErrorKind("cancelled", 409, "the job was cancelled (`DELETE /api/v2/jobs/{id}`) before it finished", (JOB,)),
    ErrorKind("upload_not_kept", 404, "the job was not submitted with `keep_upload=true`, or a sample's job",
              (API,)),
    ErrorKind("not_a_video", 404, "asking for the video of a job whose input is not a video", (API,)),
    ErrorKind("frame_not_found", 404, "no frame with that index in the sample or the job's input", (API,)),
    ErrorKind("unreadable_frame", 422, "the frame asked for cannot be decoded", (API,)),
    # The server
    ErrorKind("not_ready", 503, "the models are still loading (`/readyz`)", (API,)),
    ErrorKind("shutting_down", 503, "the server is shutting down and takes no new work; retry after the "
              "`Retry-After` seconds", (API,)),
    ErrorKind("storage_unavailable", 503, "the server's disk is full, or the job store cannot be written",
              (API, JOB)),
    ErrorKind("internal_error", 500, "a bug: the traceback goes to the log, never to the client", (API, HTTP, BATCH)),
    # The HTTP layer (any URL)
    ErrorKind("bad_request", 400, "a malformed HTTP request", (HTTP,)),
    ErrorKind("not_found", 404, "no such URL", (HTTP,)),
    ErrorKind("method_not_allowed", 405, "a method the URL does not take", (HTTP,)),
    ErrorKind("requested_range_not_satisfiable", 416, "a `Range` header outside the file asked for", (HTTP,)),
    ErrorKind("request_header_fields_too_large", 431, "the request's headers are too large", (HTTP,)),
    ErrorKind("not_implemented", 501, "a transfer encoding the server does not implement", (HTTP,)),
    # The batch runner
    ErrorKind("input_not_found", 404, "a path given does not exist, or went away after the run started (every "
              "missing path is listed, up to 5)", (BATCH, COMMAND)),
    ErrorKind("unreadable_input", 404, "an input that cannot be read after the run started", (BATCH,)),
    ErrorKind("worker_lost", 500, "the worker process died on this input 3 times (out of memory, or a crash in a "
              "decoder)", (BATCH,)),
    ErrorKind("invalid_manifest", 400, "a manifest of inputs that cannot be read", (COMMAND,)),
    ErrorKind("invalid_output", 400, "`--out` or `--csv` is a file or cannot be written, or `--annotate` names no "
              "video a writer can open", (COMMAND,)),
    ErrorKind("output_busy", 409, "another batch run is writing to `--out`", (COMMAND,)),
    ErrorKind("cluster_unreachable", 503, "no Ray cluster answers at `--address` (checked in 5 s)", (COMMAND,)),
    ErrorKind("ray_failed", 500, "Ray could not start, or stopped the run; the parts written so far are kept",
              (COMMAND,)),
    # Starting the server or a command
    ErrorKind("data_folder_unusable", 500, "the data folder (jobs, uploads) cannot be used: not a folder, not "
              "writable, its disk full, or a damaged job store beside other files", (COMMAND,)),
    ErrorKind("model_missing", 500, "a model file is missing or is not the file the manifest names", (COMMAND,)),
    ErrorKind("no_gpu", 400, "`--device gpu` where TensorFlow sees no GPU", (COMMAND,)),
    ErrorKind("token_required", 400, "listening on an address other than loopback without an API token",
              (COMMAND,)),
    ErrorKind("invalid_token", 400, "the API token file cannot be read, or the token is too short or holds spaces, "
              "control or non-ASCII characters", (COMMAND,)),
    ErrorKind("invalid_setting", 400, "a connection limit that is not positive", (COMMAND,)),
    ErrorKind("invalid_host", 400, "`--host` is not an address of this machine", (COMMAND,)),
    ErrorKind("port_busy", 409, "the port is already in use", (COMMAND,)),
    ErrorKind("port_unavailable", 503, "the server cannot listen on the port (permission, or another error)",
              (COMMAND,)),
)


class UnknownErrorCode(ValueError):
    """An error code that is not in ``CATALOGUE``: a bug in the code that raised it."""


def error_kind(code: str) -> ErrorKind:
    """The catalogue's entry for ``code``; ``UnknownErrorCode`` when it has none."""
    try:
        return CATALOGUE[code]
    except KeyError:
        raise UnknownErrorCode(f"error code {code!r} is not in facecore.errors.CATALOGUE: add it there, with "
                               "its status and meaning") from None


class AnalysisError(Exception):
    """A mistake of the caller's (or a failure the caller is told about) with a code from ``CATALOGUE``; its
    status is the catalogue's. ``status``, when given, must be the catalogue's."""

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        kind = error_kind(code)
        if status is not None and status != kind.status:
            raise ValueError(f"error code {code!r} has status {kind.status} in the catalogue, not {status}")
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = kind.status

    def to_json(self) -> dict:
        return {"error": {"code": self.code, "message": self.message}}

    def to_record(self) -> dict:
        """Code, message and status: a failed job's error."""
        return {"code": self.code, "message": self.message, "status": self.status}


def not_found(message: str) -> AnalysisError:
    return AnalysisError("sequence_not_found", message)


def bad_name(message: str) -> AnalysisError:
    return AnalysisError("invalid_sequence_name", message)


def no_images(message: str) -> AnalysisError:
    return AnalysisError("no_images", message)


def no_face(message: str) -> AnalysisError:
    return AnalysisError("no_face", message)


class ModelFileError(RuntimeError):
    """A weights file is missing or is not the file the manifest names."""


MARKDOWN_HEADER = "| status | code | meaning | from |"


def markdown() -> str:
    """The catalogue as a Markdown table, by status then code."""
    lines = [MARKDOWN_HEADER, "|---|---|---|---|"]
    for kind in sorted(CATALOGUE.values(), key=lambda kind: (kind.status, kind.code)):
        lines.append(f"| {kind.status} | `{kind.code}` | {kind.meaning} | {', '.join(kind.where)} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m facecore.errors", description=__doc__.split("\n\n")[0])
    parser.add_argument("--markdown", action="store_true", help="print the catalogue as a Markdown table")
    parser.parse_args(argv)
    # One output format; the flag names it, so that another can be added beside it.
    print(markdown(), end="")


if __name__ == "__main__":
    main()
