"""A virtual handheld camera filming a still photo: pan, zoom, roll, exposure drift and sensor noise.

Renders the committed samples (``samples/make_samples.py``) and the synthetic sequences of the aggregation
studies (``bench/aggregation_study.py``). The subject never moves; only the camera does, and where it looks past
the photo's edge it sees a blurred mirror of the photo. That exercises detection and tracking plumbing and
robustness to camera motion, not real facial dynamics.
"""

from __future__ import annotations

import cv2
import numpy as np

W, H = 640, 480
# q80 rather than 85 keeps a frame under ~40 KB (the Hopper scan is busy and
# carries its own JPEG blocking); the faces still look clean at this size.
JPEG_PARAMS = [cv2.IMWRITE_JPEG_QUALITY, 80, cv2.IMWRITE_JPEG_OPTIMIZE, 1]
LENS_BLUR = 1.0   # px sigma: webcam-like softness, also hides the rescaled source's blocking
NOISE = 2.0       # grey levels sigma, per channel
MARGIN = 16  # px the face box must keep from every frame edge
# Surround of each photo (see make_plate): width in source px and blur sigma.
PAD, PAD_BLUR, PAD_FEATHER = 256, 24, 6


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
