"""Precision and recall of the face gate's verdicts on the labelled frames of the real clips.

    python -m bench.face_gate [--truth bench/real_footage/truth] [--clips ../shared/clips]

On every labelled frame (``<clip>.boxes.csv`` of the truth folder) the default detector runs as the service runs
it; each detection is matched to the labelled boxes of its frame (IoU >= ``MATCH_IOU``, best first): matched to a
``face`` it is a face, matched to a ``not_face`` or to nothing it is not one (every visible face is labelled),
matched to an ``unsure`` box it is left out. Printed per clip and overall, for each verdict:

- ``sure``: detection confidence >= the gate's ``sure_confidence``;
- ``sure|hog``: ... or the second opinion (dlib's HOG on the level crop) finds a face;
- ``sure|cnn``: ... or the second look (dlib's CNN face detector on the same crop) finds one, asked here about every
  detection ``sure|hog`` leaves (the service asks it about a few faces per tracklet without a sure face);
- ``gate``: what ``FaceGate.check`` passes (geometry, detail, and the second opinion below sure_confidence);
- ``kept``: geometry and detail only (what the gate lets into tracking; doubtful faces need a sure face in
  their person, ``persons.py``).

Precision is the share of passed detections that are faces, recall the share of faces passed.
"""

from __future__ import annotations

import argparse
import csv
import logging
from collections import defaultdict
from pathlib import Path

import numpy as np

from faceanalysis.pipeline.gate import PASSED, CnnOpinion, FaceGate
from faceanalysis.pipeline.quality import measure, pose
from faceanalysis.pipeline.tracking import SIGNATURE_CROP, iou

log = logging.getLogger("bench.face_gate")
REPO = Path(__file__).resolve().parents[1]
MATCH_IOU = 0.4


def read_truth(path: Path) -> dict[int, list[tuple[np.ndarray, str]]]:
    boxes: dict[int, list[tuple[np.ndarray, str]]] = defaultdict(list)
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            box = np.array([float(row[key]) for key in ("x1", "y1", "x2", "y2")])
            boxes[int(row["frame"])].append((box, row["kind"]))
    return boxes


def label_detections(boxes: np.ndarray, truth: list[tuple[np.ndarray, str]]) -> list[str]:
    """``face``, ``not_face`` or ``unsure`` per detection: greedy best-IoU matching, unmatched = not_face."""
    labels = ["not_face"] * len(boxes)
    if not len(boxes) or not truth:
        return labels
    overlap = iou(boxes, np.stack([box for box, _ in truth]))
    used_detection, used_truth = set(), set()
    for flat in np.argsort(-overlap, axis=None, kind="stable"):
        det, true = divmod(int(flat), len(truth))
        if overlap[det, true] < MATCH_IOU:
            break
        if det in used_detection or true in used_truth:
            continue
        labels[det] = truth[true][1]
        used_detection.add(det)
        used_truth.add(true)
    return labels


def score(passed: np.ndarray, is_face: np.ndarray) -> dict:
    true_positive = int((passed & is_face).sum())
    return {"faces": int(is_face.sum()), "non_faces": int((~is_face).sum()), "passed": int(passed.sum()),
            "precision": true_positive / passed.sum() if passed.sum() else float("nan"),
            "recall": true_positive / is_face.sum() if is_face.sum() else float("nan"),
            "non_faces_passed": int((passed & ~is_face).sum())}


def main(argv=None) -> None:
    from faceanalysis.pipeline.analyzer import FaceAnalyzer
    from faceanalysis.pipeline.sources import VideoSource
    from facecore.faces import FaceBatch

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--truth", type=Path, default=REPO / "bench" / "real_footage" / "truth")
    parser.add_argument("--clips", type=Path, default=REPO.parent / "shared" / "clips")
    parser.add_argument("--save", type=Path, help="write every labelled detection's features here (.npz)")
    parser.add_argument("--min-confidence", type=float, default=0.9,
                        help="the detector's threshold (the service's 0.9; lower it for more, harder non-faces)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    analyzer = FaceAnalyzer(device="cpu", min_confidence=args.min_confidence).prepare()
    gate = analyzer.gate or FaceGate()
    hog = analyzer._second_opinion
    cnn = CnnOpinion(str(analyzer.weights["face_detector_cnn"].path))
    rows = defaultdict(list)
    for truth_file in sorted(args.truth.glob("*.boxes.csv")):
        clip_name = truth_file.name[:-len(".boxes.csv")]
        clip = args.clips / clip_name
        if not clip.is_file():
            log.info("%s: skipped, %s is absent", clip_name, clip)
            continue
        truth = read_truth(truth_file)
        frames = []
        with VideoSource(clip, clip_name).open(16) as stream:
            for batch in stream:
                frames += [frame for frame in batch if frame.index in truth]
        for start in range(0, len(frames), 16):
            batch = frames[start:start + 16]
            rgb = [frame.rgb for frame in batch]
            detections = analyzer.detector.run(rgb)
            faces = FaceBatch(frames=rgb, detections=detections)
            grey = faces.square_grey_crops(SIGNATURE_CROP, 0.0)
            quality = measure(detections.boxes, detections.landmarks, grey)
            agrees = hog(rgb, detections.frame, detections.boxes, detections.landmarks) if len(detections) \
                else np.zeros(0, bool)
            sure_or_hog = (detections.confidence >= gate.sure_confidence) | agrees
            found = np.zeros(len(detections), bool)
            if (~sure_or_hog).any():
                rows_left = np.flatnonzero(~sure_or_hog)
                found[rows_left] = cnn(rgb, detections.frame[rows_left], detections.boxes[rows_left],
                                       detections.landmarks[rows_left])
            reason = gate.check(detections.boxes, detections.confidence, detections.landmarks, quality.sharpness,
                                agrees)
            kept = gate.check(detections.boxes, np.ones(len(detections)), detections.landmarks,
                              quality.sharpness, agrees)
            yaw, pitch, eyes, height = pose(detections.landmarks)
            for local, frame in enumerate(batch):
                mine = np.flatnonzero(detections.frame == local)
                labels = label_detections(detections.boxes[mine], truth[frame.index])
                for row, label in zip(mine, labels):
                    rows["clip"].append(clip_name)
                    rows["label"].append(label)
                    rows["confidence"].append(float(detections.confidence[row]))
                    rows["hog"].append(bool(agrees[row]))
                    rows["cnn"].append(bool(found[row]))
                    rows["gate"].append(reason[row] == PASSED)
                    rows["kept"].append(kept[row] == PASSED)
                    rows["size"].append(float(quality.size[row]))
                    rows["sharpness"].append(float(quality.sharpness[row]))
                    rows["yaw"].append(float(yaw[row]))
                    rows["mouth"].append(float(height[row] / eyes[row]))
                    rows["share"].append(float(eyes[row] / (detections.boxes[row, 2] - detections.boxes[row, 0])))
    data = {key: np.asarray(value) for key, value in rows.items()}
    if args.save:
        np.savez(args.save, **data)
    known = data["label"] != "unsure"
    sure = data["confidence"] >= gate.sure_confidence
    verdicts = {"sure": sure, "sure|hog": sure | data["hog"], "sure|cnn": sure | data["hog"] | data["cnn"],
                "gate": data["gate"], "kept": data["kept"]}
    print(f"{'clip':28s} {'verdict':9s} {'faces':>5s} {'non':>4s} {'precision':>9s} {'recall':>7s} {'non passed':>10s}")
    for clip in [*sorted(set(data["clip"].tolist())), "all"]:
        inside = known & ((data["clip"] == clip) if clip != "all" else True)
        for name, passed in verdicts.items():
            result = score(passed[inside], data["label"][inside] == "face")
            print(f"{clip:28s} {name:9s} {result['faces']:5d} {result['non_faces']:4d} {result['precision']:9.3f} "
                  f"{result['recall']:7.3f} {result['non_faces_passed']:10d}")


if __name__ == "__main__":
    main()
