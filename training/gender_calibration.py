"""Study: is the answered gender as sure as it is right, for faces placed under 13 and for poor faces?

Every UTKFace image of a split goes through ``FaceAnalyzer.analyse_images(faces_given=True, as_persons=True)``
(what a one-frame video of the face answers, as ``evaluate.py`` scores it), once as it is and once degraded the
way far, small faces in real video are (shrunk to ``--poor-side`` pixels and blown back up). Per group it prints
the count, the accuracy of the more likely gender, and the mean confidence (the larger of the two
probabilities): calibrated means the two are close. Groups: faces the answer places under 13, 13 and over, and
the same for the degraded copies; with the confidence bins (0.5-0.6, ... 0.9-1.0) of the faces under 13.

    python -m training.gender_calibration --split validation --out gender_calibration.json
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import cv2
import numpy as np

from facecore.frames import decode_frame
from facecore.labels import GENDERS
from training.data import UTKFACE, read_labels, utkface_split

log = logging.getLogger(__name__)
CHILD_AGE = 13.0
BINS = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0001)


def degrade(rgb: np.ndarray, side: int) -> np.ndarray:
    """The image shrunk so that its shorter side is ``side`` pixels, then blown back up (detail lost)."""
    height, width = rgb.shape[:2]
    scale = side / min(height, width)
    small = cv2.resize(rgb, (max(1, round(width * scale)), max(1, round(height * scale))),
                       interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def calibration(truth: np.ndarray, female: np.ndarray) -> dict:
    """Count, accuracy of the more likely gender, and mean confidence (max probability)."""
    truth, female = np.asarray(truth), np.asarray(female, np.float64)
    if not len(truth):
        return {"n": 0, "accuracy": None, "confidence": None}
    predicted = (female > 0.5).astype(np.int64)
    confidence = np.maximum(female, 1 - female)
    return {"n": int(len(truth)), "accuracy": round(float((predicted == truth).mean()), 4),
            "confidence": round(float(confidence.mean()), 4)}


def by_confidence(truth: np.ndarray, female: np.ndarray) -> list[dict]:
    confidence = np.maximum(female, 1 - female)
    out = []
    for low, high in zip(BINS[:-1], BINS[1:]):
        inside = (confidence >= low) & (confidence < high)
        out.append({"bin": f"{low:.1f}-{min(high, 1):.1f}", **calibration(truth[inside], female[inside])})
    return out


def run(analyzer, files: list[Path], batch: int, transform=None) -> tuple[np.ndarray, np.ndarray]:
    """(expected age, female probability) per image."""
    ages, female = [], []
    for start in range(0, len(files), batch):
        images = [decode_frame(path) for path in files[start:start + batch]]
        if transform is not None:
            images = [transform(image) for image in images]
        table = analyzer.analyse_images(images, faces_given=True, as_persons=True)
        ages.append(table.age_years)
        female.append(table.gender[:, GENDERS.index("female")])
    return np.concatenate(ages), np.concatenate(female)


def main(argv=None) -> None:
    from faceanalysis.pipeline.analyzer import FaceAnalyzer

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=UTKFACE)
    parser.add_argument("--split", default="validation", choices=("validation", "tune"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--poor-side", type=int, default=24, help="pixels of the degraded copies' shorter side")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--limit", type=int, default=0, help="only the first N images of the split (0: all)")
    parser.add_argument("--below", type=float, default=0.0,
                        help="only images whose true age is below this (0: all); faces placed under 13 are "
                             "almost all under 20, and the study runs twice as fast")
    parser.add_argument("--no-poor", action="store_true", help="skip the degraded copies")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    labels = read_labels(args.data, {"file": str, "age": float, "gender": GENDERS})
    rows = utkface_split(labels, args.seed)[args.split]
    if args.below:
        rows = rows[labels["age"][rows] < args.below]
    if args.limit:
        rows = rows[:args.limit]
    files = [args.data / name for name in labels["file"][rows]]
    truth = labels["gender"][rows]
    analyzer = FaceAnalyzer(device="cpu").prepare()
    report = {"split": args.split, "seed": args.seed, "n": len(rows), "below": args.below, "child_age": CHILD_AGE,
              "poor_side": args.poor_side}
    kinds = (("clean", None), ("poor", lambda image: degrade(image, args.poor_side)))
    for name, transform in kinds[:1] if args.no_poor else kinds:
        age, female = run(analyzer, files, args.batch, transform)
        child = age < CHILD_AGE
        report[name] = {"placed_under_13": calibration(truth[child], female[child]),
                        "placed_13_and_over": calibration(truth[~child], female[~child]),
                        "true_under_13": calibration(truth[labels["age"][rows] < CHILD_AGE],
                                                     female[labels["age"][rows] < CHILD_AGE]),
                        "under_13_by_confidence": by_confidence(truth[child], female[child])}
        log.info("%s: %s", name, json.dumps({key: value for key, value in report[name].items()
                                              if key != "under_13_by_confidence"}))
        for row in report[name]["under_13_by_confidence"]:
            log.info("  %s", row)
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
