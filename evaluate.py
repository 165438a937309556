"""Measure age, gender and expression accuracy on a labelled folder and write a JSON report.

    python evaluate.py --data DIR --out REPORT.json [--faces-given] [--limit N] [--split SPLIT]
                       [--by race|gender|COLUMN ...] [--batch-size 64] [--device auto|cpu|gpu]
                       [--age-gender ...] [--expression ...]

DIR/labels.csv: a ``file`` column (image or folder of frames, relative to DIR
or absolute) and any of ``age`` (years), ``gender`` (male/female), ``emotion``
(angry, disgust, fear, happy, neutral, sad, surprise). With ``--faces-given``
every image is taken to be a face crop and detection is skipped. Age is
reported in two views: natural (every face once) and balanced by decade of
true age (the balanced MAE is the mean of the per-decade MAEs), with the bias
per band; ``--by COLUMN`` adds, per value of a labels.csv column (UTKFace's
``race``) or of ``gender``, the count, MAE, bias and gender accuracy with a
seeded bootstrap 95% interval. Beside the report go REPORT_confusion.png,
REPORT_age.png (predicted vs true age with the mean per decade) and
REPORT_predictions.csv.
See docs/evaluation.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from faceanalysis.cli import add_model_arguments, exit_with, settings_from, setup_logging
from facecore.errors import ModelFileError

log = logging.getLogger("evaluate")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder holding labels.csv")
    parser.add_argument("--out", type=Path, required=True, help="report file to write (JSON)")
    parser.add_argument("--faces-given", action="store_true",
                        help="images are face crops: use the whole image as the face, skip detection")
    parser.add_argument("--limit", type=int, help="score only the first N rows (after --split)")
    parser.add_argument("--split", help="keep only rows whose 'split' column has this value")
    parser.add_argument("--by", action="append", default=[], metavar="COLUMN",
                        help="also report age and gender per value of this labels.csv column (race) or of gender, "
                             "with bootstrap 95%% intervals; repeatable")
    add_model_arguments(parser)
    parser.set_defaults(batch_size=64)     # stills: larger calls than the service's 16 frames
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be at least 1")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    setup_logging()
    from faceanalysis.pipeline.analyzer import FaceAnalyzer
    from training import evaluation

    data_dir = args.data.resolve()
    try:
        items, columns = evaluation.read_labels(data_dir, args.split, args.limit)
    except (OSError, ValueError) as error:
        log.error("%s", error)
        sys.exit(2)
    if not items:
        log.error("no rows to evaluate in %s (split %s)", data_dir / "labels.csv", args.split)
        sys.exit(2)
    log.info("%d items from %s, labels: %s", len(items), data_dir / "labels.csv", ", ".join(columns))

    try:
        analyzer = FaceAnalyzer(settings_from(args)).prepare()
    except ModelFileError as error:
        exit_with(error)
    start = time.perf_counter()
    progress = evaluation.Progress(len(items))
    predictions = evaluation.predict(analyzer, items, args.faces_given, args.batch_size, progress=progress)
    progress.close()
    seconds = time.perf_counter() - start

    report = {
        "command": shlex.join(["python", *sys.argv]) if argv is None else shlex.join(["evaluate.py", *argv]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "data_dir": str(data_dir), "split": args.split, "limit": args.limit,
        "faces_given": args.faces_given, "batch_size": args.batch_size,
        "expression_margin": (analyzer.settings.expression_crop_margin if args.faces_given
                              else analyzer.settings.expression_box_margin),
        "counts": {
            "rows": len(items),
            "sequences": sum(item.path.is_dir() for item in items),
            "images": sum(not item.path.is_dir() for item in items),
        },
        **evaluation.score(items, columns, predictions),
    }
    try:
        report["by"] = {column: evaluation.score_by_group(
            items, columns, predictions, evaluation.group_labels(data_dir, items, column), column)
            for column in args.by if "age" in columns}
    except ValueError as error:
        log.error("%s", error)
        sys.exit(2)
    failed = [(item.file, status, reason) for item, status, reason
              in zip(items, predictions.status, predictions.reason) if status != evaluation.OK]
    # The full list is in the predictions CSV; the report keeps enough to spot a pattern.
    report["failed_examples"] = [{"file": f, "status": s, "reason": r} for f, s, r in failed[:50]]
    report["models"] = analyzer.model_info()
    report["model_choice"] = analyzer.model_choice
    report["settings"] = analyzer.settings.to_json()
    report["device"] = analyzer.device.kind
    report["seconds"] = round(seconds, 1)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    stem = args.out.with_suffix("")
    predictions_path = stem.with_name(stem.name + "_predictions.csv")
    evaluation.write_predictions(predictions_path, items, predictions)
    report["files"] = {"predictions": str(predictions_path),
                       **evaluation.save_plots(report, items, predictions, stem)}
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    log.info("wrote %s: %s", args.out, _summary(report))
    _print_tables(report)


def _print_tables(report: dict) -> None:
    from training.scoring import group_table, views_table
    if "views" in report:
        print(views_table({report["model_choice"]["age_gender"]: report["views"]}))
    for column, rows in report.get("by", {}).items():
        print(f"\nby {column}:")
        print(group_table(rows))


def _summary(report: dict) -> str:
    parts = [f"n={report['n']}", f"no_face={report['no_face']}"]
    for key in ("age_mae", "age_within5", "gender_acc", "emotion_acc", "emotion_macro_f1"):
        if report.get(key) is not None:
            parts.append(f"{key}={report[key]:.3f}")
    return " ".join(parts)


if __name__ == "__main__":
    main()
