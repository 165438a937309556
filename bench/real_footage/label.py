"""Labelling helper: candidate faces on a clip's sampled frames, as contact sheets to label by looking.

    python -m bench.real_footage.label propose CLIP_PATH --out /tmp/labels/NAME [--answers ANSWER.json]
    python -m bench.real_footage.label apply --out /tmp/labels/NAME --decisions FILE

``propose`` runs, on every 5th frame from 0, a permissive MTCNN (the project's detector with its three stage
thresholds lowered to 0.5, or to ``--threshold``, faces from 12 px, kept from the same confidence) and adds the
boxes of a pipeline answer (``--answers``, the v2 JSON with a timeline) that the permissive pass did not find.
Candidates are numbered c1, c2, ... over the clip and chained into draft tracks (T1, T2, ...) by overlap between
consecutive sampled frames (IoU >= 0.3), only to make labelling quicker. It writes ``candidates.csv``,
``frames_NN.png`` (the frames, boxes numbered), ``tracks_NN.png`` (each draft track's crops in a row, numbered)
and ``candidates_NN.png`` (every crop in number order). The frames carry a grid every 50 px (numbered every
100) to read the box of a face no detector found; ``--region`` shows only part of the frames, larger.

``apply`` turns a decisions file written by looking at the sheets into the truth CSV rows. One decision a line::

    T3 1              every candidate of draft track 3 is identity 1 (a face)
    T4 not_face       every candidate of track 4 is not a face (wall, hair, hand, ...)
    c57 2             candidate 57 is identity 2 (wins over its track's line)
    c58 small         a face under ~20 px, not required, never a person
    c59 unsure        excluded from scoring
    c60 unsure 1      excluded from scoring, though it is probably identity 1
    hand 35 1 100 50 150 110     a face the detector missed: frame, identity, x1 y1 x2 y2 (approximate)
    hand 35 small 10 10 20 20    a missed small face
    expr T3 neutral   the expression is evident on every face of track 3 (faces only)
    expr c61 happy    ... on candidate 61 (wins over its track's line); ``expr c62 -`` takes it back

Candidates with no decision stop ``apply`` with their numbers: every candidate gets a label. ``apply`` writes
``<clip>.boxes.csv`` and ``<clip>.expressions.csv`` into the truth folder and the clip's row of ``frames.csv``.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
from pathlib import Path

import numpy as np

from bench.real_footage.clips import ALL_NAMES, STEP, read_frames
from bench.real_footage.metrics import iou_matrix
from bench.real_footage.truth import EXPRESSIONS, KINDS, TRUTH, TruthBox, write_boxes

log = logging.getLogger(__name__)

PERMISSIVE = ("THRESHOLD_PNET", "THRESHOLD_RNET", "THRESHOLD_ONET")
MIN_FACE = 12
TRACK_IOU = 0.3
SHEET_COLUMNS, SHEET_ROWS, SHEET_WIDTH = 4, 3, 420
CROP, CROPS_PER_ROW, TRACK_ROWS = 72, 16, 12


def permissive_detector(threshold: float = 0.5):
    from faceanalysis.pipeline import mtcnn_fast
    from faceanalysis.pipeline.analyzer import FaceAnalyzer  # noqa: F401  (weights manifest)
    from faceanalysis.pipeline.detector import FaceDetector
    from facecore.device import select_device
    from facecore.weights import load_manifest, resolve

    for name in PERMISSIVE:
        setattr(mtcnn_fast, name, threshold)
    manifest = load_manifest()
    weights = {key: resolve(key, manifest) for key in manifest}
    detector = FaceDetector(weights["detector_pnet"], weights["detector_rnet"], weights["detector_onet"],
                            min_face_size=MIN_FACE, min_confidence=threshold)
    detector.prepare(select_device("cpu"))
    return detector


def pipeline_boxes(answer_path: Path | None) -> dict[int, list[tuple[list[float], int, float]]]:
    if answer_path is None:
        return {}
    answer = json.loads(answer_path.read_text())
    return {entry["frame"]: [(face["box"], face["person"], face["confidence"]) for face in entry["faces"]]
            for entry in answer.get("timeline", [])}


def propose(clip: Path, out: Path, answer_path: Path | None, step: int = STEP, threshold: float = 0.5,
            width: int = SHEET_WIDTH, region=None, columns: int = SHEET_COLUMNS) -> None:
    import cv2

    out.mkdir(parents=True, exist_ok=True)
    detector = permissive_detector(threshold)
    answered = pipeline_boxes(answer_path)
    frames = list(read_frames(clip, step))
    rows, number = [], 0
    for start in range(0, len(frames), 16):
        batch = frames[start:start + 16]
        found = detector.run([image for _, image in batch])
        for position, (index, image) in enumerate(batch):
            mine = found.boxes[found.frame == position]
            conf = found.confidence[found.frame == position]
            theirs = answered.get(index, [])
            their_boxes = np.asarray([box for box, _, _ in theirs], dtype=float).reshape(-1, 4)
            overlap = iou_matrix(mine, their_boxes)
            for k, box in enumerate(mine):
                person = ""
                if len(theirs) and overlap[k].max() >= 0.5:
                    person = theirs[int(overlap[k].argmax())][1]
                number += 1
                rows.append({"cand": number, "frame": index, "x1": box[0], "y1": box[1], "x2": box[2], "y2": box[3],
                             "confidence": round(float(conf[k]), 4), "pipeline_person": person,
                             "source": "permissive"})
            for j, (box, person, confidence) in enumerate(theirs):
                if len(mine) and overlap[:, j].max() >= 0.5:
                    continue
                number += 1
                rows.append({"cand": number, "frame": index, "x1": box[0], "y1": box[1], "x2": box[2], "y2": box[3],
                             "confidence": round(float(confidence), 4), "pipeline_person": person,
                             "source": "pipeline"})
    _draft_tracks(rows, step)
    frame_height, frame_width = frames[0][1].shape[:2] if frames else (0, 0)
    with open(out / "candidates.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["cand"])
        writer.writeheader()
        writer.writerows({**row, **{key: round(float(row[key]), 1) for key in ("x1", "y1", "x2", "y2")}}
                         for row in rows)
    (out / "clip.json").write_text(json.dumps({"clip": str(clip), "width": frame_width, "height": frame_height,
                                               "step": step, "frames": [index for index, _ in frames]}))
    _frame_sheets(frames, rows, out, cv2, width, region, columns)
    _track_sheets(frames, rows, out, cv2)
    _candidate_sheets(frames, rows, out, cv2)
    log.info("%s: %d sampled frames, %d candidates, %d draft tracks", clip.name, len(frames), len(rows),
             len({row["track"] for row in rows}))


def _draft_tracks(rows: list[dict], step: int) -> None:
    by_frame: dict[int, list[dict]] = {}
    for row in rows:
        by_frame.setdefault(row["frame"], []).append(row)
    tracks, previous = 0, []
    for frame in sorted(by_frame):
        current = by_frame[frame]
        boxes = np.asarray([[r["x1"], r["y1"], r["x2"], r["y2"]] for r in current], dtype=float)
        prior = [r for r in previous if r["frame"] == frame - step]
        prior_boxes = np.asarray([[r["x1"], r["y1"], r["x2"], r["y2"]] for r in prior], dtype=float).reshape(-1, 4)
        overlap = iou_matrix(boxes, prior_boxes)
        taken = set()
        for k in np.argsort(-overlap.max(axis=1)) if len(prior) else range(len(current)):
            j = int(overlap[k].argmax()) if len(prior) else -1
            if j >= 0 and overlap[k, j] >= TRACK_IOU and j not in taken:
                current[k]["track"] = prior[j]["track"]
                taken.add(j)
            else:
                tracks += 1
                current[k]["track"] = tracks
        previous = current


def _draw(image, rows, cv2, scale, region=None):
    left, top = (region[0], region[1]) if region else (0, 0)
    if region:
        image = image[region[1]:region[3], region[0]:region[2]]
    canvas = cv2.cvtColor(cv2.resize(image, None, fx=scale, fy=scale), cv2.COLOR_RGB2BGR)
    # A grid every 50 px of the frame (labelled every 100) to read the box of a face the detectors missed.
    for value in range(50, 4000, 50):
        strong = value % 100 == 0
        colour = (255, 128, 0) if strong else (160, 90, 0)
        if left < value < left + image.shape[1]:
            x = int((value - left) * scale)
            cv2.line(canvas, (x, 0), (x, canvas.shape[0]), colour, 1)
            if strong:
                cv2.putText(canvas, str(value), (x + 1, canvas.shape[0] - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                            (0, 0, 200), 1)
        if top < value < top + image.shape[0]:
            y = int((value - top) * scale)
            cv2.line(canvas, (0, y), (canvas.shape[1], y), colour, 1)
            if strong:
                cv2.putText(canvas, str(value), (1, y - 1), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 200), 1)
    for row in rows:
        box = [int(round((float(row[key]) - (left if key[0] == "x" else top)) * scale))
               for key in ("x1", "y1", "x2", "y2")]
        colour = (0, 255, 0) if row["source"] == "permissive" else (0, 0, 255)
        cv2.rectangle(canvas, tuple(box[:2]), tuple(box[2:]), colour, 1)
        cv2.putText(canvas, f"{row['cand']}", (box[0], max(box[1] - 2, 9)), cv2.FONT_HERSHEY_SIMPLEX, 0.35,
                    (0, 255, 255), 1, cv2.LINE_AA)
    return canvas


def _frame_sheets(frames, rows, out: Path, cv2, width: int, region=None, columns: int = SHEET_COLUMNS) -> None:
    per_sheet = columns * SHEET_ROWS
    for sheet, start in enumerate(range(0, len(frames), per_sheet)):
        tiles = []
        for index, image in frames[start:start + per_sheet]:
            scale = width / ((region[2] - region[0]) if region else image.shape[1])
            tile = _draw(image, [r for r in rows if r["frame"] == index], cv2, scale, region)
            cv2.putText(tile, f"f{index}", (3, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 2, cv2.LINE_AA)
            cv2.putText(tile, f"f{index}", (3, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
            tiles.append(tile)
        while len(tiles) % columns:
            tiles.append(np.zeros_like(tiles[0]))
        grid = np.vstack([np.hstack(tiles[i:i + columns]) for i in range(0, len(tiles), columns)])
        cv2.imwrite(str(out / f"frames_{sheet:02d}.png"), grid)


def _track_sheets(frames, rows, out: Path, cv2) -> None:
    images = dict(frames)
    lines = []
    for track in sorted({row["track"] for row in rows}):
        members = [row for row in rows if row["track"] == track]
        for start in range(0, len(members), CROPS_PER_ROW):
            lines.append((track, members[start:start + CROPS_PER_ROW]))
    label_width = 44
    for sheet, start in enumerate(range(0, len(lines), TRACK_ROWS)):
        block = []
        for track, members in lines[start:start + TRACK_ROWS]:
            row_img = np.full((CROP + 14, label_width + CROPS_PER_ROW * CROP, 3), 40, np.uint8)
            cv2.putText(row_img, f"T{track}", (2, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1)
            for k, row in enumerate(members):
                crop = _crop(images[row["frame"]], row, cv2)
                if crop is None:
                    continue
                x = label_width + k * CROP
                row_img[:CROP, x:x + CROP] = crop
                cv2.putText(row_img, f"{row['cand']}", (x + 2, CROP + 11), cv2.FONT_HERSHEY_SIMPLEX, 0.35,
                            (0, 255, 255) if row["source"] == "permissive" else (0, 0, 255), 1)
            block.append(row_img)
        cv2.imwrite(str(out / f"tracks_{sheet:02d}.png"), np.vstack(block))


def _crop(image, row, cv2):
    x1, y1, x2, y2 = (float(row[key]) for key in ("x1", "y1", "x2", "y2"))
    # Some context around the box: a face is easier to tell from a hand with its surroundings.
    pad = 0.25 * max(x2 - x1, y2 - y1)
    left, top = int(max(x1 - pad, 0)), int(max(y1 - pad, 0))
    right, bottom = int(min(x2 + pad, image.shape[1])), int(min(y2 + pad, image.shape[0]))
    crop = image[top:bottom, left:right]
    if crop.size == 0:
        return None
    return cv2.cvtColor(cv2.resize(crop, (CROP, CROP)), cv2.COLOR_RGB2BGR)


def _candidate_sheets(frames, rows, out: Path, cv2) -> None:
    """Every candidate's crop in number order, with its number, frame and draft track: the quickest view when the
    draft tracks are short (fast motion, many false candidates)."""
    images = dict(frames)
    per_row, per_sheet = CROPS_PER_ROW, CROPS_PER_ROW * TRACK_ROWS
    for sheet, start in enumerate(range(0, len(rows), per_sheet)):
        chunk = rows[start:start + per_sheet]
        height = -(-len(chunk) // per_row) * (CROP + 24)
        canvas = np.full((height, per_row * CROP, 3), 40, np.uint8)
        for k, row in enumerate(chunk):
            crop = _crop(images[row["frame"]], row, cv2)
            x, y = (k % per_row) * CROP, (k // per_row) * (CROP + 24)
            if crop is not None:
                canvas[y:y + CROP, x:x + CROP] = crop
            colour = (0, 255, 255) if row["source"] == "permissive" else (0, 0, 255)
            cv2.putText(canvas, f"c{row['cand']} f{row['frame']}", (x + 2, y + CROP + 10), cv2.FONT_HERSHEY_SIMPLEX,
                        0.33, colour, 1)
            cv2.putText(canvas, f"T{row['track']} {float(row['x2']) - float(row['x1']):.0f}px", (x + 2, y + CROP + 21),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.33, (200, 200, 200), 1)
        cv2.imwrite(str(out / f"candidates_{sheet:02d}.png"), canvas)


def apply(out: Path, decisions: Path) -> tuple[list[TruthBox], dict[tuple[int, int], str]]:
    """The truth boxes from ``candidates.csv`` and the decisions written by looking, and the evident expressions
    by (frame, identity)."""
    with open(out / "candidates.csv") as handle:
        candidates = list(csv.DictReader(handle))
    by_track, by_cand, hand = {}, {}, []
    expr_track, expr_cand = {}, {}
    for number, raw in enumerate(decisions.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].split()
        if not line:
            continue
        if line[0] == "expr":
            key, label = line[1:3]
            if label != "-" and label not in EXPRESSIONS:
                raise ValueError(f"{decisions}:{number}: unknown expression {label!r}")
            (expr_track if key.startswith("T") else expr_cand)[int(key[1:])] = label
            continue
        if line[0] == "hand":
            frame, label, *box = line[1:]
            identity, kind = (int(label), "face") if label.isdigit() else (0, label)
            hand.append(TruthBox(int(frame), identity, *map(float, box), kind=kind, source="hand"))
            continue
        key, label, *rest = line
        decision = (int(label), "face") if label.isdigit() else (int(rest[0]) if rest else 0, label)
        if decision[1] not in KINDS:
            raise ValueError(f"{decisions}:{number}: unknown label {label!r}")
        if decision[1] == "not_face":
            decision = (0, "not_face")
        (by_track if key.startswith("T") else by_cand)[int(key[1:])] = decision
    boxes, undecided, expressions = [], [], {}
    for row in candidates:
        expression = expr_cand.get(int(row["cand"])) or expr_track.get(int(row["track"]))
        decision = by_cand.get(int(row["cand"])) or by_track.get(int(row["track"]))
        if decision is None:
            undecided.append(row["cand"])
            continue
        identity, kind = decision
        boxes.append(TruthBox(int(row["frame"]), identity, *(float(row[k]) for k in ("x1", "y1", "x2", "y2")),
                              kind=kind, source="detector"))
        if expression and expression != "-" and kind == "face":
            expressions[(int(row["frame"]), identity)] = expression
    if undecided:
        raise SystemExit(f"candidates without a decision: {' '.join(undecided)}")
    return sorted(boxes + hand, key=lambda box: (box.frame, box.x1)), expressions


def write_truth(out: Path, boxes: list[TruthBox], expressions: dict, folder: Path = TRUTH) -> str:
    """Write the clip's boxes, expressions and its row of ``frames.csv``; returns the clip's name."""
    clip = json.loads((out / "clip.json").read_text())
    name = Path(clip["clip"]).name
    folder.mkdir(parents=True, exist_ok=True)
    write_boxes(folder / f"{name}.boxes.csv", boxes)
    with open(folder / f"{name}.expressions.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["frame", "identity", "expression"])
        writer.writerows([frame, identity, label] for (frame, identity), label in sorted(expressions.items()))
    rows = []
    if (folder / "frames.csv").is_file():
        with open(folder / "frames.csv", newline="") as handle:
            rows = [row for row in csv.DictReader(handle) if row["clip"] != name]
    rows.append({"clip": name, "width": clip["width"], "height": clip["height"],
                 "frames": " ".join(str(frame) for frame in clip["frames"])})
    order = {clip_name: k for k, clip_name in enumerate(ALL_NAMES)}
    rows.sort(key=lambda row: order.get(row["clip"], len(order)))
    with open(folder / "frames.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["clip", "width", "height", "frames"])
        writer.writeheader()
        writer.writerows(rows)
    return name


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("propose")
    p.add_argument("clip", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--answers", type=Path, help="a v2 answer JSON with a timeline, whose boxes are added")
    p.add_argument("--threshold", type=float, default=0.5, help="each MTCNN stage's threshold and the kept "
                   "confidence (lower: more candidates on blurred or turned faces)")
    p.add_argument("--width", type=int, default=SHEET_WIDTH, help="each frame's width on the sheets")
    p.add_argument("--columns", type=int, default=SHEET_COLUMNS, help="frames per row of a sheet")
    p.add_argument("--region", type=int, nargs=4, metavar=("X1", "Y1", "X2", "Y2"),
                   help="show only this part of the frames (where the people are), larger")
    a = sub.add_parser("apply")
    a.add_argument("--out", type=Path, required=True)
    a.add_argument("--decisions", type=Path, required=True)
    a.add_argument("--truth", type=Path, default=TRUTH, help="the truth folder (default: the package's)")
    args = parser.parse_args(argv)
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "propose":
        propose(args.clip, args.out, args.answers, threshold=args.threshold, width=args.width,
                region=args.region, columns=args.columns)
    else:
        boxes, expressions = apply(args.out, args.decisions)
        name = write_truth(args.out, boxes, expressions, args.truth)
        log.info("%s: %d truth boxes, %d expressions written to %s", name, len(boxes), len(expressions), args.truth)


if __name__ == "__main__":
    main()
