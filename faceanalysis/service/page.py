"""The browser page at ``GET /`` and the frame thumbnails it draws the timeline's boxes on.

    GET /                                       faceanalysis/static/index.html (plain HTML, CSS and JS, no build step)
    GET /api/v2/samples/<name>/frames/<i>.jpg   frame i of a sample, downscaled, as JPEG (``?width=``, default 160)

Frame ``i`` is the position in the sample's natural-order listing, the same
number as ``timeline[].frame`` in an answer for that sample, so the page can
put the timeline's boxes on the right thumbnail. Thumbnails are made on
request and never kept: nothing here grows with the number of jobs.

The thumbnail is served here rather than by the API v2 blueprint although its URL is under /api/v2 (and it
is in the OpenAPI document, which reads its width bounds from here): it exists for the page's drawing (its
X-Frame-* headers scale the boxes), needs no analyzer, and is the only image encoding in the service. The
sample list, which names what an analysis may be asked for, is the API's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import cv2
from flask import Blueprint, Response, current_app, request

from facecore.errors import AnalysisError
from facecore.frames import decode_frame, list_frames

THUMBNAIL_WIDTH = 160
MIN_WIDTH, MAX_WIDTH = 16, 640
JPEG_QUALITY = 80


def create_page(resolve_sample: Callable[[str], Path]) -> Blueprint:
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
                                                   f"{len(images) - 1}), not frame {index}", 404)
        try:
            # The same checks as the analysis (size, pixel count, corrupt data).
            rgb = decode_frame(images[index])
        except (ValueError, OSError) as error:
            raise AnalysisError("unreadable_frame", f"frame {index} ({images[index].name}) cannot be used: "
                                                    f"{error}", 422) from None
        height, original_width = rgb.shape[:2]
        # Never enlarge: a thumbnail wider than its frame would only cost bytes.
        width = min(width, original_width)
        size = (width, max(1, round(height * width / original_width)))
        small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR),
                                [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        response = Response(jpeg.tobytes(), mimetype="image/jpeg")
        # The page scales timeline boxes (frame pixels) by these to draw them on the thumbnail.
        response.headers["X-Frame-Width"] = str(original_width)
        response.headers["X-Frame-Height"] = str(height)
        response.headers["Cache-Control"] = "no-cache"    # a sample folder can be regenerated in place
        return response

    return page


def _width(value: str) -> int:
    try:
        width = int(value)
    except ValueError:
        width = 0
    if not MIN_WIDTH <= width <= MAX_WIDTH:
        raise AnalysisError("invalid_option", f"width must be a whole number from {MIN_WIDTH} to {MAX_WIDTH}, "
                                              f"not {value!r}", 400)
    return width
