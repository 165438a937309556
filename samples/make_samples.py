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

log = logging.getLogger("make_samples")

W, H = 640, 480
# q80 rather than 85 keeps a frame under ~40 KB (the Hopper scan is busy and
# carries its own JPEG blocking); the faces still look clean at this size.
JPEG_PARAMS = [cv2.IMWRITE_JPEG_QUALITY, 80, cv2.IMWRITE_JPEG_OPTIMIZE, 1]
LENS_BLUR = 1.0   # px sigma: webcam-like softness, also hides the rescaled source's blocking
NOISE = 2.0       # grey levels sigma, per channel
MARGIN = 16  # px the face box must keep from every frame edge
# Surround of each photo (see make_plate): width in source px and blur sigma.
PAD, PAD_BLUR, PAD_FEATHER = 256, 24, 6


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


def make_plate(src):
    """The photo on a larger canvas whose surround is a heavily blurred mirror
    of it. Both photos are narrower than a 4:3 frame at these face sizes (the
    Hopper one by ~100 px a side), and a sharp mirror (plain BORDER_REFLECT)
    shows upside-down hair and half of a second, mirrored face; blurred, it
    reads as out-of-focus background. A feathered seam hides the join."""
    big = cv2.copyMakeBorder(src, PAD, PAD, PAD, PAD, cv2.BORDER_REFLECT).astype(np.float32)
    mask = np.zeros(big.shape[:2], np.float32)
    mask[PAD:-PAD, PAD:-PAD] = 1
    mask = cv2.GaussianBlur(mask, (0, 0), PAD_FEATHER)[..., None]
    return mask * big + (1 - mask) * cv2.GaussianBlur(big, (0, 0), PAD_BLUR)


def smooth_track(rng, n, periods):
    """A smooth curve over n frames spanning exactly [-1, 1]: two slow sines
    with random phases (deliberate pan/zoom) plus a smoothed random walk (hand
    wobble). Periods are fractions of the sequence length, so each parameter
    sweeps its whole range whatever --frames is, and the final rescale makes
    sure the extremes are actually reached."""
    t = np.arange(n) / max(n, 1)
    x = sum(np.sin(2 * np.pi * t / p + rng.uniform(0, 2 * np.pi)) for p in periods)
    walk = np.cumsum(rng.normal(size=n + 8))
    walk = np.convolve(walk, np.hanning(9) / np.hanning(9).sum(), mode="valid")[:n]
    x = 0.8 * x / len(periods) + 0.2 * (walk - walk.mean()) / max(np.ptp(walk), 1e-9)
    return 2 * (x - x.min()) / max(np.ptp(x), 1e-9) - 1


def camera_path(rng, n):
    """Per-frame camera parameters, each a smooth function of time. Different
    periods per parameter so pan, zoom, roll and exposure don't move in lockstep."""
    return dict(
        dx=40 * smooth_track(rng, n, (0.8, 1.9)),              # px, horizontal pan
        dy=20 * smooth_track(rng, n, (1.1, 0.6)),              # px, vertical drift
        zoom=1.025 + 0.125 * smooth_track(rng, n, (0.9, 2.3)),  # 0.9 .. 1.15
        roll=4 * smooth_track(rng, n, (0.7, 1.6)),             # degrees
        gain=1 + 0.15 * smooth_track(rng, n, (1.3, 0.75)),     # auto-exposure hunting
        gamma=1 + 0.10 * smooth_track(rng, n, (1.7, 0.65)),
    )


def render(plate, spec, cam, i, rng):
    fx, fy, fw, fh = spec["face_box"]
    fx, fy = fx + PAD, fy + PAD  # source -> plate coordinates
    centre = (fx + fw / 2, fy + fh / 2)
    # Rotate/scale about the face centre, then move it to the (panned) anchor.
    m = cv2.getRotationMatrix2D(centre, cam["roll"][i], spec["face_px"] / fh * cam["zoom"][i])
    m[:, 2] += (W / 2 + cam["dx"][i] - centre[0], spec["anchor_y"] + cam["dy"][i] - centre[1])

    # The face must stay whole in every frame; fail loudly if tuning breaks it.
    corners = np.array([[fx, fy, 1], [fx + fw, fy, 1], [fx, fy + fh, 1], [fx + fw, fy + fh, 1]])
    (x0, y0), (x1, y1) = (corners @ m.T).min(0), (corners @ m.T).max(0)
    if min(x0, y0, W - x1, H - y1) < MARGIN:
        raise ValueError(f"frame {i + 1}: face box ({x0:.0f},{y0:.0f})-({x1:.0f},{y1:.0f}) leaves the frame")

    # BORDER_REFLECT: never black bars, should a frame ever see past the plate.
    f = cv2.warpAffine(plate, m, (W, H), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    # Same order as a camera: optics blur, then exposure, then sensor noise.
    f = cv2.GaussianBlur(np.clip(f, 0, 255) / 255, (0, 0), LENS_BLUR)
    f = f ** cam["gamma"][i] * cam["gain"][i] * 255
    f += rng.normal(0, NOISE, f.shape).astype(np.float32)
    return np.clip(np.rint(f), 0, 255).astype(np.uint8)


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
