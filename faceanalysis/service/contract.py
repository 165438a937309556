"""The API v2 contract, declared once: the limits, the options, and every JSON answer.

``analysis_request`` parses the options with the bounds declared here, ``report`` and ``api_v2`` build their answers as
these declarations (``schema.to_json``), and ``openapi`` generates the document's parameters and components
from them, so the document cannot drift from what the service does. Field order is the key order of the JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, make_dataclass
from operator import attrgetter
from typing import Literal

from faceanalysis.pipeline.settings import AGE_GENDER_CHOICES, EXPRESSION_CHOICES, Settings
from faceanalysis.service.schema import prop, to_json
from facecore.labels import EXPRESSIONS, GENDERS

INPUT_KINDS = ("sample", "video", "zip", "frames")
# What an answer's input may be: the v2 inputs, and a folder of frames on disk (the command line, batch).
ANSWER_KINDS = (*INPUT_KINDS, "folder")
# Frames without a frame rate of their own (a folder, a zip, images) are this many a second: the legacy
# sequences' rate. Times in seconds are frame numbers divided by the input's frame rate.
DEFAULT_FPS = 25.0
MIN_FPS, MAX_FPS = 0.001, 1000.0        # a frame every 1000 s at the slowest: the times stay finite
# A job's states (done and failed are also a batch input's). Declared here, with the job's answer, so that jobs.py
# and the store can build that answer from this module without importing each other.
QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
MAX_NAME_LENGTH = 255       # longest file name on common file systems: the longest sample name


def _config(config_key: str, default: int):
    return field(default=default, metadata={"config_key": config_key})


@dataclass(frozen=True)
class Limits:
    """Every limit of the service with its default. A deployment or a test changes one through its Flask config
    key (the README documents those keys, so they keep their names)."""
    max_content_length: int = _config("MAX_CONTENT_LENGTH", 256 * 1024 ** 2)  # whole request body, bytes
    default_max_frames: int = _config("FACE_DEFAULT_MAX_FRAMES", 3000)
    max_frames: int = _config("FACE_MAX_FRAMES", 10000)                      # hard cap on the max_frames option
    max_stride: int = _config("FACE_MAX_STRIDE", 1000)
    max_entries: int = _config("FACE_MAX_ENTRIES", 10000)                    # zip entries, or uploaded image files
    max_unpacked_bytes: int = _config("FACE_MAX_UNPACKED_BYTES", 2 * 1024 ** 3)  # a zip's uncompressed total
    job_queue_size: int = _config("FACE_JOB_QUEUE_SIZE", 8)                  # jobs waiting, besides the one running
    job_ttl_seconds: int = _config("FACE_JOB_TTL_SECONDS", 600)              # how long a finished job's answer is kept
    jobs_kept: int = _config("FACE_JOBS_KEPT", 100)                          # finished jobs kept at most
    job_sweep_seconds: int = _config("FACE_JOB_SWEEP_SECONDS", 60)           # how often expired jobs and files go
    expired_jobs_remembered_seconds: int = _config("FACE_EXPIRED_JOBS_REMEMBERED_SECONDS", 7 * 24 * 3600)

    @classmethod
    def from_config(cls, config) -> "Limits":
        return cls(**{item.name: config[item.metadata["config_key"]] for item in fields(cls)})

    @classmethod
    def config_defaults(cls) -> dict:
        return {item.metadata["config_key"]: item.default for item in fields(cls)}


def from_limits(name: str):
    """A schema keyword that is one of the running app's ``Limits``."""
    return attrgetter(name)


# --- the request's options ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Options:
    """The options the analysis ran with. A query parameter or body field that is none of these (nor, in the
    body, the input) is refused: 400 ``unknown_option``, naming these."""
    timeline: bool = prop("Also return per-frame results.", default=False)
    max_frames: int = prop("Analyse at most this many frames (after stride); the rest is not read and "
                           "meta.frames.truncated is true.", minimum=1, maximum=from_limits("max_frames"),
                           default=from_limits("default_max_frames"))
    stride: int = prop("Analyse every n-th frame.", minimum=1, maximum=from_limits("max_stride"), default=1)
    fps: float = prop("Frames a second of an input without a frame rate of its own (a sample, zip or images, or "
                      "a video whose container gives none), for the times in seconds; a video's own rate wins.",
                      minimum=MIN_FPS, maximum=MAX_FPS, default=DEFAULT_FPS)
    # A dataclass default too: a job stored without this option (before it existed) is restored with it off.
    keep_upload: bool = field(default=False, metadata=prop(
        "Jobs only: keep the uploaded file(s) until the job is forgotten, so that /api/v2/jobs/{id}/upload and "
        "/api/v2/jobs/{id}/frames/{index}.jpg can serve them (the page asks for it, to play the video with the "
        "boxes drawn). Otherwise they are deleted as soon as the job ends.", default=False).metadata)


# --- the answer ---------------------------------------------------------------------------------------------

PROBABILITY = {"minimum": 0, "maximum": 1}

# Made from the label vocabulary the networks answer in, so the keys of the answer and of the document are those
# labels, in that order, whatever they become.
Gender = make_dataclass("Gender", [(label, float, prop(**PROBABILITY)) for label in GENDERS], frozen=True,
                        namespace={"__doc__": "Gender probabilities (sum to 1)."})
Expression = make_dataclass(
    "Expression",
    [*((label, float, prop(**PROBABILITY)) for label in EXPRESSIONS),
     ("dominant", Literal[EXPRESSIONS], prop("The most likely expression."))],
    frozen=True, namespace={"__doc__": "The 7 expression probabilities (sum to 1) and the most likely one."})


@dataclass(frozen=True, kw_only=True)
class Age:
    """A person's age from the age distribution over 0 to 100 years."""
    value: float = prop("Expected age of the distribution, years.")
    interval: tuple[float, float] = prop("Central 80% range of the distribution, years.")


@dataclass(frozen=True, kw_only=True)
class PersonQuality:
    """How well the person's faces were seen (medians over their faces)."""
    weight: float = prop("Mean face quality weight, 0.1 (small, blurred, turned or dark) to 1 (good).",
                         minimum=0, maximum=1)
    size: float | None = prop("Median shorter side of the face box, pixels.")
    sharpness: float | None = prop("Median variance of the Laplacian of the 48 px grey face crop (under ~25: "
                                   "blurred).")
    yaw: float | None = prop("Median head turn, rough degrees from the 5 landmarks (0: facing the camera).")
    brightness: float | None = prop("Median mean grey level of the face, 0 to 1.")
    frontal: float | None = prop("Share of the faces seen roughly frontal.")


@dataclass(frozen=True, kw_only=True)
class Person:
    """One identity, followed across cuts and returns, their faces combined into one answer (each face weighted
    by its detection confidence and its quality)."""
    id: int = prop("1, 2, ... in order of first appearance.")
    primary: bool = prop("The person seen in most frames.")
    age: Age
    gender: Gender
    expression: Expression
    frames_seen: int = prop("Frames in which this person's face was found.")
    mean_confidence: float = prop("Mean face-detection confidence.")
    spans: list[tuple[int, int]] = prop("Where the person was seen: [first, last] frame of each run of analysed "
                                        "frames in which they were, in order (frame numbers as in the timeline).")
    spans_seconds: list[tuple[float, float]] = prop("The spans in seconds from the start: [first, last] frame "
                                                    "divided by meta.input.fps.")
    picture: str | None = prop("The person's most confident face, 64x64 JPEG as a data: URL (null if none).")
    confidence: float = prop("How far this person's answer can be trusted, 0 to 1: the sum of their ten best "
                             "face quality weights over ten (1: ten good faces).", minimum=0, maximum=1)
    quality: PersonQuality
    gender_uncertain: bool = prop("The more likely gender has under 0.7: show it as uncertain (children, poor "
                                  "faces).")


@dataclass(frozen=True, kw_only=True)
class Face:
    """One face in one frame."""
    person: int = prop("The id of the person it belongs to.")
    box: tuple[float, float, float, float] = prop("x1, y1, x2, y2 pixels.")
    confidence: float = prop("Face-detection confidence.")
    landmarks: list[tuple[float | None, float | None]] = prop(
        "5 points (x, y): eyes, nose, mouth corners; null where not known.", minItems=5, maxItems=5)
    age: float = prop("Expected age of this face, years.")
    gender: Gender
    expression: Expression


@dataclass(frozen=True, kw_only=True)
class TimelineFrame:
    """One frame read, with the faces found in it."""
    frame: int = prop("Index in the input (folder order, video frame number).")
    time: float = prop("Seconds from the start: frame / meta.input.fps.")
    name: str
    faces: list[Face]


@dataclass(frozen=True, kw_only=True)
class Input:
    """What was analysed."""
    kind: Literal[ANSWER_KINDS] = prop("The v2 input; folder: a folder of frames on disk (command line, batch).")
    name: str = prop("The sample name, the uploaded file's name, or \"N files\".")
    fps: float | None = prop("Frames a second the times are in: a video's own rate, else the fps option.",
                             optional=True)


@dataclass(frozen=True, kw_only=True)
class SkippedFrame:
    """A frame that could not be used, or an archive entry that was refused."""
    name: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class Frames:
    """What the input held, and what of it was read."""
    listed: int = prop("Frames found, before stride and max_frames.")
    read: int = prop("Frames decoded and analysed.")
    skipped: list[SkippedFrame]
    ignored: list[str] = prop("Entries that are not frames at all.")
    without_face: list[str] = prop("Frames read in which no face was found.")
    truncated: bool = prop("max_frames stopped the analysis before the end of the input.")
    duration: float = prop("Seconds of input gone through: frames listed / meta.input.fps (with truncated, the "
                           "input lasts longer).")


@dataclass(frozen=True, kw_only=True)
class ModelChoice:
    """Which models answer: FACE_AGE_GENDER and FACE_EXPRESSION as the server was started."""
    age_gender: Literal[AGE_GENDER_CHOICES]
    expression: Literal[EXPRESSION_CHOICES]


@dataclass(frozen=True, kw_only=True)
class Unlisted:
    """Tracks with fewer face frames than min_frames, or without one face the gate is sure of: not listed as
    persons, never primary."""
    tracks: int
    frames: int = prop("Faces they hold together (not in the timeline; their frames count as without_face "
                       "when no listed person is in them).")


@dataclass(frozen=True, kw_only=True)
class Meta:
    """How the answer was made."""
    input: Input
    options: Options
    frames: Frames
    models: dict[str, dict] = prop("Per model file: model, package==version, file, sha256, license.")
    model_choice: ModelChoice
    timings_ms: dict[str, float] = prop("Wall-clock milliseconds per stage, and the total.")
    device: dict = prop("Where the models run: kind (CPU or GPU) and each runtime's device.")
    aggregator: str = prop("How a person's faces are combined.")
    tracker: dict = prop("How faces are grouped into persons, with its parameters.")
    detection: dict = prop("How faces were found: the detector, max_side (the working resolution's long side; "
                           "0: full frames) and, per frame size read, the size it was detected at.")
    persons_unlisted: Unlisted
    faces_rejected: dict[str, int] = prop("Detections the face gate dropped as not faces, per reason: geometry "
                                          "(the landmarks cannot be a face's), blank (the crop has no detail).")
    settings: Settings = prop("Every setting the analyzer was built with (environment and flags).")


@dataclass(frozen=True, kw_only=True)
class Analysis:
    """The answer: the persons seen, and how it was made."""
    persons: list[Person]
    timeline: list[TimelineFrame] = prop("Only with timeline=true: one entry per frame read.", optional=True)
    meta: Meta


# --- jobs, errors and the small answers ---------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class QueuedJob:
    """A job just submitted."""
    id: str
    status: Literal[QUEUED, RUNNING, DONE, FAILED]
    url: str = prop("Where to poll: GET it for the job's state.")


@dataclass(frozen=True, kw_only=True)
class JobProgress:
    frames_done: int
    frames_total: int | None = prop("null while unknown (a video without a frame count).")


@dataclass(frozen=True, kw_only=True)
class JobError:
    """Why the job failed: the error the synchronous request would have answered, and its HTTP status."""
    code: str
    message: str
    status: int


@dataclass(frozen=True, kw_only=True)
class Job:
    """A job's state; its result once done, its error once failed."""
    id: str
    status: Literal[QUEUED, RUNNING, DONE, FAILED]
    progress: JobProgress
    created: str = prop(format="date-time")
    started: str | None = prop(format="date-time")
    finished: str | None = prop(format="date-time")
    expires: str | None = prop("When a finished job's answer is forgotten (410 job_expired after); null until "
                               "it finishes.", format="date-time")
    result: Analysis = prop(optional=True)
    error: JobError = prop(optional=True)


@dataclass(frozen=True, kw_only=True)
class ErrorDetail:
    code: str = prop("Stable, for programs: e.g. sequence_not_found.")
    message: str = prop("For people: what was wrong and how to fix it.")


@dataclass(frozen=True, kw_only=True)
class Error:
    """Every error has this shape."""
    error: ErrorDetail


def error_json(code: str, message: str) -> dict:
    return to_json(Error(error=ErrorDetail(code=code, message=message)))


@dataclass(frozen=True, kw_only=True)
class SampleList:
    samples: list[str] = prop("The sample folders' names in natural order, for {\"sample\": NAME}.")


@dataclass(frozen=True, kw_only=True)
class Health:
    status: Literal["ok"]


@dataclass(frozen=True, kw_only=True)
class Readiness:
    status: Literal["ready"]
    device: Literal["CPU", "GPU"]
