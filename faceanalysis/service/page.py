"""The browser page at ``GET /`` and the frames it draws the timeline's boxes on.

    GET /                                       faceanalysis/static/index.html (plain HTML, CSS and JS, no build step)
    GET /api/v2/samples/<name>/frames/<i>.jpg   frame i of a sample, downscaled, as JPEG (``?width=``, default 160)
    GET /api/v2/jobs/<id>/upload                the video a job analysed, as uploaded (for the page's player)
    GET /api/v2/jobs/<id>/frames/<i>.jpg        frame i of a job's uploaded video, zip or images, as JPEG

Frame ``i`` is the position in the input (a sample's natural-order listing, a video's frame number, a zip's
natural order, the images in the order sent), the same number as ``timeline[].frame`` in the answer, so the
page can put the timeline's boxes on the right picture. The job endpoints serve only a job submitted with
``keep_upload=true``; its files are deleted when the job is forgotten. Pictures are made on request and never
kept: nothing here grows with the number of jobs.

These are served here rather than by the API v2 blueprint although their URLs are under /api/v2 (and they
are in the OpenAPI document, which reads the width bounds from here): they exist for the page's drawing (the
X-Frame-* headers scale the boxes), need no analyzer, and are the only image encoding in the service.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import cv2
import numpy as np
from flask import Blueprint, Response, current_app, request, send_file

from faceanalysis.service.analysis_request import restore_request
from faceanalysis.service.contract import Limits
from facecore.errors import AnalysisError
from facecore.frames import decode_frame, list_frames

if TYPE_CHECKING:
    from faceanalysis.service.jobs import JobQueue

THUMBNAIL_WIDTH = 160
MIN_WIDTH, MAX_WIDTH = 16, 640
JPEG_QUALITY = 80


def create_page(resolve_sample: Callable[[str], Path], job_queue: Callable[[], "JobQueue"]) -> Blueprint:
    """``job_queue`` gives the app's job queue (made on first use), for the jobs' kept uploads."""
    page = Blueprint("page", __name__)

    @page.get("/")
    def index():
        # The app's static folder is faceanalysis/static; the page loads its CSS and JS from there.
        return current_app.send_static_file("index.html")

    @page.get("/api/v2/samples/<name>/frames/<int:index>.jpg")
    def thumbnail(name: str, index: int):
        width = _width(request.args.get("width", str(THUMBNAIL_WIDTH)))
        images = list_frames(resolve_sample(name)).images
        if index >= len(images):
            raise AnalysisError("frame_not_found", f"sample {name!r} has {len(images)} frames (0 to "
                                                   f"{len(images) - 1}), not frame {index}")
        try:
            # The same checks as the analysis (size, pixel count, corrupt data).
            rgb = decode_frame(images[index])
        except (ValueError, OSError) as error:
            raise AnalysisError("unreadable_frame", f"frame {index} ({images[index].name}) cannot be used: "
                                                    f"{error}") from None
        return _jpeg(rgb, width)

    @page.get("/api/v2/jobs/<job_id>/upload")
    def job_upload(job_id: str):
        record, folder = job_queue().kept_upload(job_id)
        kind = record["input"]["kind"]
        if kind != "video":
            raise AnalysisError("not_a_video", f"job {job_id!r} analysed a {kind}, not a video: its pictures are "
                                "at /api/v2/jobs/<id>/frames/<index>.jpg")
        name, file_name = record["files"][0]
        path = folder / file_name
        mimetype = mimetypes.guess_type(name)[0] or "application/octet-stream"
        # conditional: Range requests, so a player can seek without fetching the whole file again.
        response = send_file(path, mimetype=mimetype, conditional=True, download_name=name, max_age=0)
        response.headers["Cache-Control"] = "private, no-cache"
        return response

    @page.get("/api/v2/jobs/<job_id>/frames/<int:index>.jpg")
    def job_frame(job_id: str, index: int):
        width = _width(request.args.get("width", str(THUMBNAIL_WIDTH)))
        record, folder = job_queue().kept_upload(job_id)
        return _jpeg(_upload_frame(record, folder, index, Limits.from_config(current_app.config)), width)

    return page


def _jpeg(rgb: np.ndarray, width: int) -> Response:
    height, original_width = rgb.shape[:2]
    # Never enlarge: a picture wider than its frame would only cost bytes.
    width = min(width, original_width)
    size = (width, max(1, round(height * width / original_width)))
    small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    response = Response(jpeg.tobytes(), mimetype="image/jpeg")
    # The page scales timeline boxes (frame pixels) by these to draw them on the picture.
    response.headers["X-Frame-Width"] = str(original_width)
    response.headers["X-Frame-Height"] = str(height)
    response.headers["Cache-Control"] = "no-cache"    # a sample folder can be regenerated in place
    return response


def _upload_frame(record: dict, folder: Path, index: int, limits: Limits) -> np.ndarray:
    """Frame ``index`` of a job's kept upload, as RGB; ``AnalysisError`` 404 ``frame_not_found`` past the end."""
    kind = record["input"]["kind"]
    if kind == "video":
        path = str(folder / record["files"][0][1])
        capture = cv2.VideoCapture(path)
        try:
            # Seeking decodes from the key frame before the one wanted, not from frame 0. A stream without an
            # index (concatenated JPEGs) cannot seek and says so by its position: read it from the start then.
            if not (capture.set(cv2.CAP_PROP_POS_FRAMES, index)
                    and capture.get(cv2.CAP_PROP_POS_FRAMES) == index):
                capture.release()
                capture = cv2.VideoCapture(path)
                skipped = 0
                while skipped < index and capture.grab():
                    skipped += 1
            ok, bgr = capture.read()
        finally:
            capture.release()
        if not ok:
            raise AnalysisError("frame_not_found", f"the video has no frame {index}")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    # A zip or images: the same source the analysis read, with a stride that lands on the frame wanted, so
    # only frames 0 and ``index`` are decoded.
    options = {**record["options"], "stride": max(index, 1), "max_frames": 2}
    source = restore_request({**record, "options": options}, folder, limits).source
    with source.open(2) as stream:
        for batch in stream:
            for frame in batch:
                if frame.index == index:
                    return frame.rgb
    for skipped in source.skipped:
        if skipped.index == index:
            raise AnalysisError("unreadable_frame", f"frame {index} ({skipped.name}) cannot be used: "
                                                    f"{skipped.reason}")
    raise AnalysisError("frame_not_found", f"the {kind} has {source.listed} frames (0 to {source.listed - 1}), "
                                           f"not frame {index}")


def _width(value: str) -> int:
    try:
        width = int(value)
    except ValueError:
        width = 0
    if not MIN_WIDTH <= width <= MAX_WIDTH:
        raise AnalysisError("invalid_option", f"width must be a whole number from {MIN_WIDTH} to {MAX_WIDTH}, "
                                              f"not {value!r}")
    return width
