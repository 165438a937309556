"""Which tracks are listed as persons, and how far each person's answer can be trusted.

- **Evidence** (``listed``): a person is listed only with at least ``required_frames`` face frames (frames
  where a face of theirs passed the gate's geometry and detail rules): the ``min_frames`` setting, or every
  frame read when fewer were read (three photos of one person are still a person), and with at least
  ``MIN_SURE`` face the gate is sure of (detection confidence at least its ``sure_confidence``, or its second
  opinion agrees): a track of hands or wall is doubtful in every frame. If no track qualifies, the one seen in
  most frames among those with the required frames or a sure face is listed, so that a short or hard sequence
  still answers someone; a few doubtful frames alone (lettering in a title, a hand) answer nobody, and the
  analysis then answers ``no_face``. Shorter tracks are counted (``Unlisted``), their faces leave the answer
  (the timeline too), and they are never primary.
- **Confidence** (``confidence``): the sum of the person's ten best face quality weights (``quality.weight``,
  0.1 to 1) over ten: 1 for ten good faces, 0.5 for five good faces or ten half-good ones, down to 0.01 for
  one poor face.
- **Quality summary** (``quality_summary``): the mean weight and the median size, sharpness, |yaw| (rough
  degrees), and brightness of the person's faces, and the share seen frontal (|yaw ratio| at most 0.35).
- **Gender uncertain** (``gender_uncertain``): the more likely gender has less than ``GENDER_SURE``.
"""

from __future__ import annotations

import numpy as np

from .quality import QualityRules, degrees

CONFIDENT_FACES = 10
# Faces the gate is sure of (confidence, or the second opinion) a listed person needs at least: on the labelled
# clips no hand, hair or wall passed the gate's sure verdict while real people have many such frames.
MIN_SURE = 1
# Below this the more likely gender is answered but marked uncertain: on UTKFace validation, answers under it
# were right about as often as a coin (docs/real-footage.md, "How persons are formed").
GENDER_SURE = 0.7


def required_frames(min_frames: int, frames_read: int) -> int:
    return max(1, min(min_frames, frames_read))


def listed(frames_seen: dict[int, int], sure_frames: dict[int, int], required: int) -> list[int]:
    """The listed person ids (in their order): those seen in at least ``required`` frames, in at least
    ``MIN_SURE`` of them with a face the gate is sure of; if none is, the one seen in most frames among those
    with either (a tie goes to the smaller id, the one who appeared first); if none has either, nobody."""
    enough = {pid for pid in frames_seen if frames_seen[pid] >= required}
    sure = {pid for pid in frames_seen if sure_frames.get(pid, 0) >= MIN_SURE}
    chosen = enough & sure
    if not chosen and enough | sure:
        chosen = {min(enough | sure, key=lambda pid: (-frames_seen[pid], pid))}
    return sorted(chosen)


def confidence(weights: np.ndarray) -> float:
    """Sum of the ``CONFIDENT_FACES`` largest weights over ``CONFIDENT_FACES``."""
    best = np.sort(np.asarray(weights, np.float64))[::-1][:CONFIDENT_FACES]
    return float(best.sum() / CONFIDENT_FACES)


def quality_summary(quality: np.ndarray) -> dict:
    """Summary of (k, 6) quality rows (``result.QUALITY_COLUMNS``); NaN where not measured (given crops)."""
    size, sharpness, yaw, _pitch, brightness, weight = np.asarray(quality, np.float64).T
    yaw_degrees, _ = degrees(np.abs(yaw), np.full(len(yaw), 0.5))
    with np.errstate(invalid="ignore"):
        frontal = np.abs(yaw) <= QualityRules().yaw[1]
    known = ~np.isnan(yaw)
    return {"weight": float(np.mean(weight)),
            "size": _median(size), "sharpness": _median(sharpness), "yaw": _median(yaw_degrees),
            "brightness": _median(brightness),
            "frontal": float(frontal[known].mean()) if known.any() else float("nan")}


def gender_uncertain(gender: np.ndarray) -> bool:
    return bool(np.max(gender) < GENDER_SURE)


def _median(values: np.ndarray) -> float:
    values = values[~np.isnan(values)]
    return float(np.median(values)) if len(values) else float("nan")
