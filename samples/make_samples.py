#!/usr/bin/env python3
"""Render short synthetic "handheld camera" JPEG frame sequences from two
public-domain still portraits that ship inside PyPI packages (no download).

    python samples/make_samples.py [--out samples] [--frames 30]

writes <out>/seqA/frame_0001.jpg ... (astronaut, scikit-image) and
<out>/seqB/frame_0001.jpg ... (Grace Hopper, matplotlib). Same arguments give
the same frames: every random number comes from a fixed per-sequence seed.

The subject never moves; only the virtual camera does (pan, zoom, roll,
exposure drift, sensor noise); where it looks past the photo's edge it sees a
blurred mirror of the photo. That exercises detection/tracking plumbing and
robustness to camera motion, not real facial dynamics.
"""
import argparse
import logging
from pathlib import Path

import cv2
import numpy as np

from training.virtual_camera import JPEG_PARAMS, H, W, camera_path, make_plate, render

log = logging.getLogger("make_samples")


def load_astronaut():
    from skimage import data
    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


def load_hopper():
    import matplotlib.cbook
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        buf = np.frombuffer(f.read(), np.uint8)
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)


# face_box: (x, y, w, h) in source pixels, as found by MTCNN on the untouched
# image; hard-coded so generating samples does not need TensorFlow.
# face_px: face box height in the frame at zoom 1.0; anchor_y: where the face
# centre sits at rest, above the middle as in a head-and-shoulders shot. The
# astronaut's face is near the top of her photo, so it sits higher to keep
# the photo's top edge out of view. Hopper's face fills most of her 512x600
# portrait, so she is framed tighter: a smaller face would leave even more of
# the 640 px width to the blurred surround.
SEQUENCES = {
    "seqA": dict(load=load_astronaut, face_box=(182, 64, 83, 107), face_px=170, anchor_y=175, seed=1),
    "seqB": dict(load=load_hopper, face_box=(178, 110, 173, 220), face_px=200, anchor_y=200, seed=3),
}


def make_sequence(out_dir, spec, n):
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("frame_*.jpg"):  # stale frames from a longer run
        old.unlink()
    rng = np.random.default_rng(spec["seed"])
    plate = make_plate(spec["load"]())
    cam = camera_path(rng, n)
    total = 0
    for i in range(n):
        frame = render(plate, spec, cam, i, rng)
        path = out_dir / f"frame_{i + 1:04d}.jpg"
        ok, buf = cv2.imencode(".jpg", frame, JPEG_PARAMS)
        if not ok:
            raise RuntimeError(f"JPEG encoding failed for {path}")
        path.write_bytes(buf.tobytes())
        total += len(buf)
    log.info("%s: %d frames %dx%d, %.1f KB total", out_dir, n, W, H, total / 1024)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent,
                    help="folder to hold seqA/ and seqB/ (default: this script's folder)")
    ap.add_argument("--frames", type=int, default=30, help="frames per sequence (default: 30)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for name, spec in SEQUENCES.items():
        make_sequence(args.out / name, spec, args.frames)


if __name__ == "__main__":
    main()
