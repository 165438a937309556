"""Compare the sequence aggregation rules on SYNTHETIC sequences built from held-out labelled stills.

    python -m bench.aggregation_study [--n 60] [--frames 12] [--out /tmp/aggregation_study.json]

SYNTHETIC: every sequence is ONE still photo moved by a virtual camera (pan, zoom, roll, exposure drift,
sensor noise: ``training/virtual_camera.py``, which renders ``samples/`` too). The face itself never changes, so
there are no real facial dynamics. Differences between rules therefore mostly show robustness to detection / crop /
exposure jitter between frames, not temporal modelling.

- expression: ``--n`` FER2013 dev (PublicTest) images, balanced over the 7 classes as far as possible
  (fixed seed), each upscaled from 48x48 and rendered into a ``--frames``-frame 640x480 sequence;
- age / gender: ``--n`` UTKFace images from the seed-0 validation split of the heads
  (``training.data.utkface_split``, never used to train them), rendered the same way.

The real pipeline (``FaceAnalyzer.analyse_folder``: MTCNN, alignment, the three networks) runs ONCE per
sequence; every rule in ``AGGREGATORS`` is then applied to the same per-frame table (primary faces), so the
rules differ only in how they combine. The reference is the primary face of a single frame (the middle one,
or the frame nearest to it that has a face). Sequences in which no frame has a face are counted and left out
of every figure (they are the same for every rule). Frames are written to a temporary folder outside the
repository and removed afterwards; the labelled data never enters the repository.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np

from faceanalysis.pipeline.aggregate import AGGREGATORS, DEFAULT_AGGREGATOR
from facecore.errors import AnalysisError
from facecore.labels import EXPRESSIONS  # the network's output order, which labels must follow
from training import data, virtual_camera
from training.metrics import accuracy, macro_f1, mean_absolute_error, within

log = logging.getLogger("aggregation_study")

REPO = Path(__file__).resolve().parents[1]
STILL_PX = 240         # every still is resized to this square before rendering; the whole of it is the face box
FACE_PX = 200          # that box's height in the frame at zoom 1.0 (the face inside it is smaller)
ANCHOR_Y = 230         # where the box centre rests in the 480-px frame
SYNTHETIC_NOTE = ("SYNTHETIC sequences: one still photo per sequence moved by a virtual camera (no real facial "
                  "dynamics); differences between rules mostly reflect robustness to detection/crop jitter, "
                  "not temporal modelling.")


# --------------------------------------------------------------------------------------------- choosing stills

def fer_stills(n: int, seed: int) -> list[tuple[Path, int]]:
    """``n`` dev images, as even over the 7 classes as possible; which classes get the remainder is random."""
    labels = data.read_labels(data.FER2013, {"file": str, "emotion": EXPRESSIONS, "split": str})
    dev = labels["split"] == "dev"
    rng = np.random.default_rng(seed)
    quota = np.full(len(EXPRESSIONS), n // len(EXPRESSIONS))
    quota[rng.permutation(len(EXPRESSIONS))[:n % len(EXPRESSIONS)]] += 1
    chosen = []
    for label in range(len(EXPRESSIONS)):
        files = sorted(labels["file"][dev & (labels["emotion"] == label)].tolist())
        take = min(int(quota[label]), len(files))
        chosen += [(data.FER2013 / files[i], label) for i in rng.choice(len(files), take, replace=False)]
    return chosen


def utk_stills(n: int) -> list[tuple[Path, float, int]]:
    """``n`` images of the heads' seed-0 validation split (stratified by age band and gender)."""
    labels = data.utkface_labels()
    # stratified over 10 age-band x gender groups, so it needs at least 10; a smaller trial run takes a prefix
    files = data.utkface_validation_subset(labels, seed=0, size=max(n, 10))[:n]
    where = {name: i for i, name in enumerate(labels["file"])}
    return [(data.UTKFACE / name, float(labels["age"][where[name]]), int(labels["gender"][where[name]]))
            for name in files]


# --------------------------------------------------------------------------------------------- rendering

def render_sequence(samples, still: Path, folder: Path, frames: int, seed: int) -> None:
    """The still, upscaled to STILL_PX and filmed by the samples' virtual camera, as JPEG frames."""
    image = cv2.imread(str(still), cv2.IMREAD_COLOR)          # greyscale FER becomes 3 equal channels
    if image is None:
        raise RuntimeError(f"cannot read {still}")
    image = cv2.resize(image, (STILL_PX, STILL_PX), interpolation=cv2.INTER_CUBIC)
    spec = dict(face_box=(0, 0, STILL_PX, STILL_PX), face_px=FACE_PX, anchor_y=ANCHOR_Y, seed=seed)
    rng = np.random.default_rng(seed)
    plate = samples.make_plate(image)
    camera = samples.camera_path(rng, frames)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(frames):
        frame = samples.render(plate, spec, camera, i, rng)
        ok, buffer = cv2.imencode(".jpg", frame, samples.JPEG_PARAMS)
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        (folder / f"frame_{i + 1:04d}.jpg").write_bytes(buffer.tobytes())


def per_frame_table(analyzer, samples, still: Path, workdir: Path, frames: int, seed: int):
    """Primary-face rows of the sequence (expression, gender, age, confidence, frame), or None without a face."""
    folder = workdir / f"seq_{seed:05d}"
    render_sequence(samples, still, folder, frames, seed)
    try:
        result = analyzer.analyse_folder(folder)
    except AnalysisError:
        return None
    finally:
        for path in folder.glob("*.jpg"):
            path.unlink()
        folder.rmdir()
    faces, chosen = result.faces, result.faces.primary
    # The service's own answer must equal the default rule applied here: same table, same combine().
    own = AGGREGATORS[DEFAULT_AGGREGATOR]().combine(faces.expression[chosen], faces.confidence[chosen])
    if not np.allclose(own, result.summary.expression):
        raise AssertionError("re-aggregated default rule differs from the service's own answer")
    return {"expression": faces.expression[chosen], "gender": faces.gender[chosen], "age": faces.age[chosen],
            "confidence": faces.confidence[chosen], "frame": faces.frame[chosen]}


def middle_row(table: dict, frames: int) -> int:
    """Row of the primary face in the middle frame, or in the frame nearest to it (earlier one on a tie)."""
    middle = frames // 2
    return int(np.lexsort((table["frame"], np.abs(table["frame"] - middle)))[0])


# --------------------------------------------------------------------------------------------- scoring

def expression_scores(true: np.ndarray, pred: np.ndarray) -> dict:
    return {"accuracy": accuracy(true, pred), "macro_f1": macro_f1(true, pred, len(EXPRESSIONS)),
            "correct": int((true == pred).sum())}


def paired(true: np.ndarray, pred: np.ndarray, reference: np.ndarray) -> dict:
    """Discordant pairs against the default rule: how many sequences only this rule / only the default gets right."""
    mine, theirs = pred == true, reference == true
    return {"only_this_right": int((mine & ~theirs).sum()), "only_default_right": int((~mine & theirs).sum())}


def run_expression(analyzer, samples, stills: list[tuple[Path, int]], frames: int, workdir: Path) -> dict:
    """Every rule on the sequences of ``stills`` (path, expression index), ``frames`` frames each."""
    truth, predictions, reference, no_face = [], {name: [] for name in AGGREGATORS}, [], 0
    start = time.perf_counter()
    for number, (still, label) in enumerate(stills):
        table = per_frame_table(analyzer, samples, still, workdir, frames, seed=10_000 + number)
        if table is None:
            no_face += 1
            continue
        truth.append(label)
        reference.append(int(np.argmax(table["expression"][middle_row(table, frames)])))
        for name, rule in AGGREGATORS.items():
            predictions[name].append(int(np.argmax(rule().combine(table["expression"], table["confidence"]))))
        if (number + 1) % 10 == 0:
            log.info("expression: %d/%d sequences, %.0f s", number + 1, len(stills), time.perf_counter() - start)
    truth = np.asarray(truth)
    default = np.asarray(predictions[DEFAULT_AGGREGATOR])
    rules = {name: {**expression_scores(truth, np.asarray(pred)), **paired(truth, np.asarray(pred), default)}
             for name, pred in predictions.items()}
    return {"sequences": len(stills), "no_face": no_face, "scored": int(len(truth)),
            "class_counts": {name: int((truth == i).sum()) for i, name in enumerate(EXPRESSIONS)},
            "single_middle_frame": expression_scores(truth, np.asarray(reference)), "rules": rules,
            "seconds": round(time.perf_counter() - start, 1)}


def run_age_gender(analyzer, samples, stills: list[tuple[Path, float, int]], frames: int, workdir: Path) -> dict:
    """Every rule on the sequences of ``stills`` (path, age, gender index), ``frames`` frames each."""
    age_model = analyzer.models["age"]
    true_age, true_gender, no_face = [], [], 0
    ages = {name: [] for name in AGGREGATORS}
    genders = {name: [] for name in AGGREGATORS}
    reference_age, reference_gender = [], []
    start = time.perf_counter()
    for number, (still, age, gender) in enumerate(stills):
        table = per_frame_table(analyzer, samples, still, workdir, frames, seed=20_000 + number)
        if table is None:
            no_face += 1
            continue
        true_age.append(age)
        true_gender.append(gender)
        row = middle_row(table, frames)
        reference_age.append(float(age_model.expected_age(table["age"][row])))
        reference_gender.append(int(np.argmax(table["gender"][row])))
        for name, rule in AGGREGATORS.items():
            ages[name].append(float(age_model.expected_age(rule().combine(table["age"], table["confidence"]))))
            genders[name].append(int(np.argmax(rule().combine(table["gender"], table["confidence"]))))
        if (number + 1) % 10 == 0:
            log.info("age/gender: %d/%d sequences, %.0f s", number + 1, len(stills), time.perf_counter() - start)
    true_age, true_gender = np.asarray(true_age), np.asarray(true_gender)

    def scores(age_pred, gender_pred) -> dict:
        age_pred, gender_pred = np.asarray(age_pred), np.asarray(gender_pred)
        return {"age_mae": mean_absolute_error(true_age, age_pred), "age_within5": within(true_age, age_pred, 5.0),
                "gender_accuracy": accuracy(true_gender, gender_pred)}

    default = np.asarray(genders[DEFAULT_AGGREGATOR])
    rules = {name: {**scores(ages[name], genders[name]),
                    **{f"gender_{key}": value for key, value in
                       paired(true_gender, np.asarray(genders[name]), default).items()}}
             for name in AGGREGATORS}
    return {"sequences": len(stills), "no_face": no_face, "scored": int(len(true_age)),
            "single_middle_frame": scores(reference_age, reference_gender), "rules": rules,
            "seconds": round(time.perf_counter() - start, 1)}


def fmt(value, digits=3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_table(report: dict) -> None:
    expression, age_gender = report["expression"], report["age_gender"]
    print()
    print(SYNTHETIC_NOTE)
    print(f"N = {report['n']} stills per task, {report['frames']} frames each; "
          f"no face: expression {expression['no_face']}/{expression['sequences']}, "
          f"age/gender {age_gender['no_face']}/{age_gender['sequences']}")
    print()
    header = "| rule | expr acc | expr macro-F1 | age MAE | age within 5 | gender acc |"
    print(header)
    print("|------|---------:|--------------:|--------:|-------------:|-----------:|")
    rows = [("single middle frame (reference)", expression["single_middle_frame"], age_gender["single_middle_frame"])]
    rows += [(name + (" (default)" if name == DEFAULT_AGGREGATOR else ""), expression["rules"][name],
              age_gender["rules"][name]) for name in AGGREGATORS]
    for name, ex, ag in rows:
        print(f"| {name} | {fmt(ex['accuracy'])} | {fmt(ex['macro_f1'])} | {fmt(ag['age_mae'], 2)} | "
              f"{fmt(ag['age_within5'])} | {fmt(ag['gender_accuracy'])} |")
    print()
    print(f"Against the default ({DEFAULT_AGGREGATOR}), sequences only this rule / only the default gets right:")
    for name in AGGREGATORS:
        ex, ag = expression["rules"][name], age_gender["rules"][name]
        print(f"  {name}: expression {ex['only_this_right']}/{ex['only_default_right']}, "
              f"gender {ag['gender_only_this_right']}/{ag['gender_only_default_right']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=60, help="stills per task (default 60)")
    parser.add_argument("--frames", type=int, default=12, help="frames per sequence (default 12)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the FER2013 choice (default 0)")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "aggregation_study.json",
                        help="JSON report (keep it outside the repository: it describes research-only data)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not data.FER2013.is_dir() or not data.UTKFACE.is_dir():
        sys.exit(f"labelled data not found under {data.SHARED_DATA}")

    from faceanalysis.pipeline.analyzer import FaceAnalyzer
    samples = virtual_camera
    started = time.perf_counter()
    analyzer = FaceAnalyzer(device="cpu").prepare()
    with tempfile.TemporaryDirectory(prefix="aggregation_study_") as workdir:
        expression = run_expression(analyzer, samples, fer_stills(args.n, args.seed), args.frames, Path(workdir))
        age_gender = run_age_gender(analyzer, samples, utk_stills(args.n), args.frames, Path(workdir))
    report = {"note": SYNTHETIC_NOTE, "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
              "n": args.n, "frames": args.frames, "seed": args.seed, "default_rule": DEFAULT_AGGREGATOR,
              "rules": list(AGGREGATORS), "still_px": STILL_PX, "face_px": FACE_PX,
              "expression": expression, "age_gender": age_gender,
              "seconds_total": round(time.perf_counter() - started, 1)}
    args.out.write_text(json.dumps(report, indent=2))
    print_table(report)
    print(f"\n{report['seconds_total']:.0f} s in all; JSON written to {args.out}")


if __name__ == "__main__":
    main()
