"""What users see, captured through the surfaces that must not change: the HTTP service and its JSON.

``capture(base_url)`` asks a running server the same fixed set of questions (legacy endpoint, API v2 on every
input kind) and returns the answers with only the wall-clock timings removed. ``tests/golden/outputs.json``
holds what the tree before the architecture rework (commit f3a55e1) answered; ``test_golden.py`` checks the
current tree answers the same, and ``python tests/golden.py URL OUT.json`` captures a tree by hand, so two
trees can be diffed.

Keys the rework added are allowed in meta (the settings the analyzer was built with; model files added to the
manifest, e.g. the lifespan heads, which ``meta.models`` lists whether or not they answer) and in each person (the
frame spans and picture of the identity tracker); every key the old tree answered must be there with the same
value, except what ``CHANGED_ON_PURPOSE`` lists, each with its reason.
"""

from __future__ import annotations

import io
import json
import re
import sys
import urllib.error
import urllib.request
import uuid
import zipfile
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples"
GOLDEN = Path(__file__).resolve().parent / "golden" / "outputs.json"
CHANGED_ON_PURPOSE = {
    "/body/meta/tracker": "describes the tracker, and the identity tracker replaced the greedy IoU one",
}
# New keys may come in meta and its sections (e.g. input.fps, options.fps, frames.duration), a person (e.g.
# spans_seconds) and a timeline frame (its time in seconds); never in the legacy answer or a face.
NEW_KEYS_ALLOWED = re.compile(r"/body/meta$|/body/meta/(models|input|options|frames)$|/body/persons\[\d+\]$"
                              r"|/body/timeline\[\d+\]$")


def _request(url: str, data: bytes | None = None, headers: dict | None = None) -> dict:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            return {"status": response.status, "body": json.loads(response.read())}
    except urllib.error.HTTPError as error:
        return {"status": error.code, "body": json.loads(error.read())}


def _multipart(parts: list[tuple[str, str, bytes]]) -> tuple[bytes, dict]:
    boundary = uuid.uuid4().hex
    body = io.BytesIO()
    for field, name, data in parts:
        body.write(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{name}\"\r\n"
                   f"Content-Type: application/octet-stream\r\n\r\n".encode())
        body.write(data + b"\r\n")
    body.write(f"--{boundary}--\r\n".encode())
    return body.getvalue(), {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def sample_video(path: Path) -> Path:
    """seqB's 30 frames as an MJPG .avi (OpenCV writes the same bytes for the same frames)."""
    frames = sorted((SAMPLES / "seqB").glob("*.jpg"))
    first = cv2.imread(str(frames[0]))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (first.shape[1], first.shape[0]))
    for frame in frames:
        writer.write(cv2.imread(str(frame)))
    writer.release()
    return path


def capture(base_url: str, workdir: Path) -> dict:
    seq_a = sorted((SAMPLES / "seqA").glob("*.jpg"))
    seq_b = sorted((SAMPLES / "seqB").glob("*.jpg"))
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as archive:
        for path in seq_a[::3]:
            archive.writestr(f"clip/{path.name}", path.read_bytes())
        archive.writestr("notes.txt", b"not a frame")
    json_headers = {"Content-Type": "application/json"}
    answers = {
        "legacy_test": _request(f"{base_url}/seqPath/test"),
        "legacy_seqB": _request(f"{base_url}/seqPath/seqB"),
        "legacy_error": _request(f"{base_url}/seqPath/%2e%2e"),
        "v2_seqA_timeline": _request(f"{base_url}/api/v2/analyze?timeline=true",
                                     json.dumps({"sample": "seqA"}).encode(), json_headers),
        "v2_seqB_stride": _request(f"{base_url}/api/v2/analyze?stride=2",
                                   json.dumps({"sample": "seqB", "max_frames": 10}).encode(), json_headers),
        "v2_video": _request(f"{base_url}/api/v2/analyze?timeline=true",
                             *_multipart([("video", "clip.avi", sample_video(workdir / "clip.avi").read_bytes())])),
        "v2_zip": _request(f"{base_url}/api/v2/analyze",
                           *_multipart([("zip", "frames.zip", zipped.getvalue())])),
        "v2_frames": _request(f"{base_url}/api/v2/analyze?timeline=1",
                              *_multipart([("frames", path.name, path.read_bytes()) for path in seq_b[:3]]
                                          + [("frames", "broken.jpg", b"not an image")])),
        "v2_error": _request(f"{base_url}/api/v2/analyze", json.dumps({"sample": "nope"}).encode(), json_headers),
    }
    for answer in answers.values():
        meta = answer["body"].get("meta") if isinstance(answer["body"], dict) else None
        if meta is not None:
            meta.pop("timings_ms", None)      # wall-clock time: the one thing that may differ
    return answers


def differences(old, new, where: str = "") -> list[str]:
    """Every place where ``new`` does not answer what ``old`` did (see the module's note for what may)."""
    if where in CHANGED_ON_PURPOSE:
        return []
    if isinstance(old, dict) and isinstance(new, dict):
        out = [f"{where}/{key}: missing" for key in old if key not in new]
        extra = [key for key in new if key not in old]
        if extra and not NEW_KEYS_ALLOWED.search(where):
            out.append(f"{where}: new keys {extra}")
        for key in old:
            if key in new:
                out += differences(old[key], new[key], f"{where}/{key}")
        return out
    if isinstance(old, list) and isinstance(new, list):
        if len(old) != len(new):
            return [f"{where}: {len(old)} items before, {len(new)} now"]
        return [line for number, (a, b) in enumerate(zip(old, new)) for line in differences(a, b, f"{where}[{number}]")]
    return [] if same_value(old, new) else [f"{where}: {old!r} before, {new!r} now"]


# The networks' float arithmetic differs in the last digits from one processor to another (oneDNN, onnxruntime
# and OpenBLAS pick kernels by CPU): on an AMD EPYC the answers captured on the reference machine drift by up to
# 1.2e-5 in a person's probabilities and age, and, per frame, 6.7e-4 px in a box and 5.6e-4 in a probability (a
# box a little off changes the crop). The tolerance is three times the largest drift and still below what a
# change of model or rule does (that moves probabilities by 1e-2 and boxes by pixels).
ABS_TOLERANCE = 2e-3


def _number(value):
    """A float of the answer, including the legacy answer's 6-decimal strings; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d+\.\d+", value):
        return float(value)
    return None


def same_value(old, new) -> bool:
    """Equal, where floats (and the legacy answer's decimal strings) may differ by the processor's rounding."""
    if type(old) is not type(new):
        return False
    a, b = _number(old), _number(new)
    if a is None or b is None:
        return old == new
    return abs(a - b) <= ABS_TOLERANCE


if __name__ == "__main__":
    import tempfile
    with tempfile.TemporaryDirectory() as folder:
        Path(sys.argv[2]).write_text(json.dumps(capture(sys.argv[1], Path(folder)), indent=1) + "\n")
