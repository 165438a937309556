"""Score the pipeline against a labelled folder: read labels, predict in batches, build the report.

``DIR/labels.csv`` has a ``file`` column (an image, or a folder of frames that
is analysed as one sequence exactly as ``/seqPath`` does) and any of ``age``
(years), ``gender`` (male/female) and ``emotion`` (one of ``EXPRESSIONS``).
A blank cell means "not labelled", so one file can mix datasets that label
different things. Every labelled item is scored: when no prediction can be
made (no face, unreadable file) it counts as wrong, see ``metrics``.
"""

from __future__ import annotations

import csv
import logging
import math
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from facecore.errors import AnalysisError
from facecore.frames import SkippedFrame, decode_frame, iter_decoded_batches
from facecore.labels import EXPRESSIONS, GENDERS
from training import metrics, scoring

log = logging.getLogger(__name__)

LABEL_COLUMNS = ("age", "gender", "emotion")
# Status of an item's prediction; anything but OK scores as wrong.
OK, NO_FACE, UNREADABLE = "ok", "no_face", "unreadable"


@dataclass
class Item:
    row: int                  # line in labels.csv (header is line 1)
    file: str                 # as written in labels.csv
    path: Path
    age: float = math.nan
    gender: int = metrics.NO_PREDICTION      # index into GENDERS; -1 = not labelled
    expression: int = metrics.NO_PREDICTION  # index into EXPRESSIONS (the "emotion" column)


@dataclass
class Predictions:
    status: list[str]
    reason: list[str]
    age: np.ndarray           # (n,) years, NaN without prediction
    gender: np.ndarray        # (n, 2) male, female; NaN rows without prediction
    expression: np.ndarray    # (n, 7) in EXPRESSIONS order

    @classmethod
    def empty(cls, n: int) -> "Predictions":
        return cls(status=[UNREADABLE] * n, reason=["not analysed"] * n, age=np.full(n, np.nan),
                   gender=np.full((n, len(GENDERS)), np.nan), expression=np.full((n, len(EXPRESSIONS)), np.nan))

    def set(self, index: int, age: float, gender: np.ndarray, expression: np.ndarray) -> None:
        self.status[index], self.reason[index] = OK, ""
        self.age[index], self.gender[index], self.expression[index] = age, gender, expression

    def fail(self, index: int, status: str, reason: str) -> None:
        self.status[index], self.reason[index] = status, reason

    @staticmethod
    def classes(probabilities: np.ndarray) -> np.ndarray:
        """Arg-max class per item, NO_PREDICTION where there is none."""
        found = ~np.isnan(probabilities).any(axis=1)
        out = np.full(len(probabilities), metrics.NO_PREDICTION, dtype=np.int64)
        out[found] = np.argmax(probabilities[found], axis=1)
        return out


def read_labels(data_dir: Path, split: str | None = None, limit: int | None = None) -> tuple[list[Item], list[str]]:
    """Items of ``data_dir/labels.csv`` and the label columns it has; bad values raise ValueError."""
    labels_file = data_dir / "labels.csv"
    with open(labels_file, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        fields = reader.fieldnames or []
        if "file" not in fields:
            raise ValueError(f"{labels_file} has no 'file' column (columns: {fields})")
        columns = [name for name in LABEL_COLUMNS if name in fields]
        if not columns:
            raise ValueError(f"{labels_file} has none of the label columns {LABEL_COLUMNS}")
        if split is not None and "split" not in fields:
            log.warning("--split %s ignored: %s has no 'split' column", split, labels_file)
        items = []
        for line, row in enumerate(reader, start=2):
            if split is not None and "split" in fields and row["split"] != split:
                continue
            items.append(_item(data_dir, line, row, columns, labels_file))
            if limit is not None and len(items) >= limit:
                break
    return items, columns


def _item(data_dir: Path, line: int, row: dict, columns: list[str], labels_file: Path) -> Item:
    def value(name: str) -> str:
        return (row.get(name) or "").strip()

    where = f"{labels_file}:{line}"
    if not value("file"):
        raise ValueError(f"{where}: empty 'file'")
    path = Path(value("file"))
    # Absolute paths let a small test set point at shared data without copying it.
    item = Item(row=line, file=value("file"), path=path if path.is_absolute() else data_dir / path)
    if "age" in columns and value("age"):
        try:
            item.age = float(value("age"))
        except ValueError:
            raise ValueError(f"{where}: age {value('age')!r} is not a number") from None
    # The labels.csv column is "emotion" (the format of the labelled data and of every report so far); in the
    # code the concept is "expression".
    for name, attribute, labels in (("gender", "gender", GENDERS), ("emotion", "expression", EXPRESSIONS)):
        if name in columns and value(name):
            label = value(name).lower()
            if label not in labels:
                raise ValueError(f"{where}: {name} {value(name)!r} is not one of {list(labels)}")
            setattr(item, attribute, labels.index(label))
    return item


class Progress:
    """A plain text progress bar on stderr; one line per 10% when stderr is not a terminal."""

    def __init__(self, total: int, stream=sys.stderr, width: int = 30) -> None:
        self.total, self.stream, self.width = max(total, 1), stream, width
        self.done, self.start = 0, time.perf_counter()
        self.live = hasattr(stream, "isatty") and stream.isatty()
        self._last_tenth = -1

    def update(self, count: int) -> None:
        self.done += count
        tenth = 10 * self.done // self.total
        if not self.live and tenth == self._last_tenth:
            return
        self._last_tenth = tenth
        elapsed = time.perf_counter() - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        remaining = (self.total - self.done) / rate if rate > 0 else 0.0
        filled = self.width * self.done // self.total
        text = (f"[{'#' * filled}{'.' * (self.width - filled)}] {self.done}/{self.total} "
                f"{rate:.1f} items/s, {remaining:.0f} s left")
        self.stream.write(f"\r{text}" if self.live else f"{text}\n")
        self.stream.flush()

    def close(self) -> None:
        if self.live:
            self.stream.write("\n")
            self.stream.flush()


def predict(analyzer, items: list[Item], faces_given: bool, batch_size: int, workers: int = 2,
            progress: Progress | None = None) -> Predictions:
    """Predictions for every item: images batched through ``analyse_images``, folders one by one."""
    out = Predictions.empty(len(items))
    images = [index for index, item in enumerate(items) if not item.path.is_dir()]
    sequences = [index for index, item in enumerate(items) if item.path.is_dir()]
    if sequences and faces_given:
        log.warning("--faces-given does not apply to the %d sequence folders: they run the full pipeline",
                    len(sequences))
    # Each image is a person seen once: its age and gender are what a one-frame video of it answers (the person
    # head's, with the default). Only where age or gender is labelled: the person head embeds every face.
    as_persons = any(not math.isnan(item.age) or item.gender >= 0 for item in items)
    _predict_images(analyzer, items, images, faces_given, batch_size, workers, out, progress, as_persons)
    for index in sequences:
        try:
            summary = analyzer.analyse_folder(items[index].path).summary
            out.set(index, summary.age, summary.gender, summary.expression)
        except AnalysisError as error:
            out.fail(index, NO_FACE if error.code == "no_face" else UNREADABLE, error.message)
        if progress:
            progress.update(1)
    return out


def _predict_images(analyzer, items, indices, faces_given, batch_size, workers, out, progress,
                    as_persons: bool = True) -> None:
    # The service's own streaming decoder: the next batch decodes while this one is in the networks,
    # and unreadable files come back in ``skipped`` with the reason.
    decodable = [(index, items[index].file, partial(decode_frame, items[index].path)) for index in indices]
    skipped: list[SkippedFrame] = []
    counted = decoded = 0
    for batch in iter_decoded_batches(decodable, batch_size, skipped, workers):
        _predict_batch(analyzer, [(frame.index, frame.rgb) for frame in batch], faces_given, out, as_persons)
        decoded += len(batch)
        counted = _advance(progress, counted, decoded + len(skipped))
    for frame in skipped:
        out.fail(frame.index, UNREADABLE, frame.reason)
    _advance(progress, counted, len(indices))


def _advance(progress, counted: int, now: int) -> int:
    if progress:
        progress.update(now - counted)
    return now


def _predict_batch(analyzer, ready: list[tuple[int, np.ndarray]], faces_given: bool, out: Predictions,
                   as_persons: bool = True) -> None:
    frames = [image for _, image in ready]
    table = analyzer.analyse_images(frames, faces_given, as_persons=as_persons)
    expression = table.expression
    found = set()
    for row in np.flatnonzero(table.primary):      # the largest face of each image
        index = ready[table.frame[row]][0]
        found.add(index)
        out.set(index, float(table.age_years[row]), table.gender[row], expression[row])
    for index, _ in ready:
        if index not in found:
            out.fail(index, NO_FACE, "no face detected")


def score(items: list[Item], columns: list[str], predictions: Predictions) -> dict:
    """Every metric for the label columns present, as plain JSON-ready values."""
    status = np.asarray(predictions.status)
    report = {"n": len(items), "no_face": int((status == NO_FACE).sum()),
              "unreadable": int((status == UNREADABLE).sum())}
    if "age" in columns:
        true = np.asarray([item.age for item in items])
        labelled = ~np.isnan(true)
        true, pred = true[labelled], predictions.age[labelled]
        report.update({"age_n": int(labelled.sum()), "age_mae_n": int((~np.isnan(pred)).sum()),
                       **scoring.age_scores(true, pred)})
    if "gender" in columns:
        labelled, true, pred, _ = _classification(report, "gender", GENDERS, [item.gender for item in items],
                                                  predictions.gender)
        if "age" in columns:
            ages = np.asarray([item.age for item in items])[labelled]
            report["gender_acc_by_age_band"] = scoring.accuracy_by_age_band(true, pred, ages)
    if "age" in columns:
        report["views"] = _views(items, columns, predictions)
    if "emotion" in columns:
        *_, scores = _classification(report, "emotion", EXPRESSIONS, [item.expression for item in items],
                                     predictions.expression)
        report["emotion_macro_f1"] = scores["macro_f1"]
    return report


def _views(items: list[Item], columns: list[str], predictions: Predictions) -> dict:
    """The natural and decade-balanced views of the age-labelled items (``scoring.two_views``); gender is in
    them when every one of those items has a gender label."""
    ages = np.asarray([item.age for item in items])
    labelled = ~np.isnan(ages)
    genders = np.asarray([item.gender for item in items])[labelled]
    with_gender = "gender" in columns and bool((genders != metrics.NO_PREDICTION).all())
    return scoring.two_views(ages[labelled], predictions.age[labelled], genders if with_gender else None,
                             Predictions.classes(predictions.gender)[labelled] if with_gender else None)


# UTKFace's race labels (labels.csv ``race`` 0-4), for ``evaluate.py --by race``.
RACES = {"0": "White", "1": "Black", "2": "Asian", "3": "Indian", "4": "Others"}


def group_labels(data_dir: Path, items: list[Item], column: str) -> np.ndarray:
    """Each item's value of ``column`` (a labels.csv column, or ``gender``), as text; "" where blank."""
    if column == "gender":
        return np.asarray([GENDERS[item.gender] if item.gender != metrics.NO_PREDICTION else ""
                           for item in items])
    with open(data_dir / "labels.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if rows and column not in rows[0]:
        raise ValueError(f"{data_dir / 'labels.csv'} has no {column!r} column for --by")
    return np.asarray([(rows[item.row - 2].get(column) or "").strip() for item in items])


def score_by_group(items: list[Item], columns: list[str], predictions: Predictions, groups: np.ndarray,
                   column: str, samples: int = 1000, seed: int = 0) -> list[dict]:
    """Per value of ``groups``: count, age MAE, bias and gender accuracy with seeded bootstrap 95% intervals
    (``scoring.by_group``) over the items with an age label."""
    ages = np.asarray([item.age for item in items])
    labelled = ~np.isnan(ages)
    values = sorted({value for value in groups[labelled] if value})
    names = {value: (RACES.get(value, value) if column == "race" else value) for value in values}
    genders = np.asarray([item.gender for item in items])[labelled]
    with_gender = "gender" in columns and bool((genders != metrics.NO_PREDICTION).all())
    return scoring.by_group(groups[labelled], names, ages[labelled], predictions.age[labelled],
                            genders if with_gender else None,
                            Predictions.classes(predictions.gender)[labelled] if with_gender else None,
                            samples, seed)


def _classification(report: dict, name: str, labels, true_labels: list, probabilities: np.ndarray):
    """Accuracy, confusion matrix and per-class scores of one labelled column, added to ``report``; returns
    the labelled items' mask, their true and predicted classes, and every score."""
    true = np.asarray(true_labels)
    labelled = true != metrics.NO_PREDICTION
    true, pred = true[labelled], Predictions.classes(probabilities)[labelled]
    scores = scoring.classification_scores(true, pred, labels)
    report.update({f"{name}_n": scores["n"], f"{name}_acc": scores["accuracy"], f"{name}_labels": list(labels),
                   f"{name}_confusion": scores["confusion"], f"{name}_per_class": scores["per_class"]})
    return labelled, true, pred, scores


def write_predictions(path: Path, items: list[Item], predictions: Predictions) -> None:
    """One row per item, for looking at the errors behind the numbers."""
    genders, expressions = Predictions.classes(predictions.gender), Predictions.classes(predictions.expression)

    def name(labels, index) -> str:
        return labels[index] if index != metrics.NO_PREDICTION else ""

    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "status", "reason", "age", "pred_age", "gender", "pred_gender", "p_female",
                         "emotion", "pred_emotion"])
        for i, item in enumerate(items):
            writer.writerow([
                item.file, predictions.status[i], predictions.reason[i],
                "" if math.isnan(item.age) else f"{item.age:g}",
                "" if math.isnan(predictions.age[i]) else f"{predictions.age[i]:.2f}",
                name(GENDERS, item.gender), name(GENDERS, genders[i]),
                "" if math.isnan(predictions.gender[i, 1]) else f"{predictions.gender[i, 1]:.4f}",
                name(EXPRESSIONS, item.expression), name(EXPRESSIONS, expressions[i])])


def save_plots(report: dict, items: list[Item], predictions: Predictions, stem: Path) -> dict:
    """Confusion matrix and age scatter PNGs named after ``stem``; returns {kind: path}."""
    import matplotlib
    matplotlib.use("Agg")      # files only: no display on a server
    import matplotlib.pyplot as plt

    written = {}
    if "emotion_confusion" in report:
        path = stem.with_name(stem.name + "_confusion.png")
        matrix = np.asarray(report["emotion_confusion"])
        # Colour by share of the true class, so rare classes (disgust) read as clearly as common ones.
        rows = np.maximum(matrix.sum(axis=1, keepdims=True), 1)
        figure, axes = plt.subplots(figsize=(7, 6))
        image = axes.imshow(matrix / rows, cmap="Blues", vmin=0, vmax=1)
        labels = report["emotion_labels"]
        axes.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
        axes.set_yticks(range(len(labels)), labels)
        axes.set_xlabel("predicted")
        axes.set_ylabel("true")
        for (r, c), count in np.ndenumerate(matrix):
            axes.text(c, r, str(count), ha="center", va="center",
                      color="white" if matrix[r, c] / rows[r, 0] > 0.5 else "black", fontsize=8)
        axes.set_title(f"expression: accuracy {_fmt(report['emotion_acc'])}, "
                       f"macro-F1 {_fmt(report['emotion_macro_f1'])}, n={report['emotion_n']}")
        figure.colorbar(image, ax=axes, label="share of true class")
        figure.tight_layout()
        figure.savefig(path, dpi=120)
        plt.close(figure)
        written["confusion"] = str(path)
    if "age_mae" in report:
        path = stem.with_name(stem.name + "_age.png")
        true = np.asarray([item.age for item in items])
        shown = ~np.isnan(true) & ~np.isnan(predictions.age)
        top = max(float(np.nanmax(true, initial=0)), float(np.nanmax(predictions.age, initial=0)), 1.0) * 1.05
        figure, axes = plt.subplots(figsize=(6, 6))
        axes.scatter(true[shown], predictions.age[shown], s=6, alpha=0.3, edgecolors="none")
        # The mean prediction per decade of true age: where the points' crowd hides a band's bias.
        means = [(float(true[shown & inside].mean()), float(predictions.age[shown & inside].mean()))
                 for _, inside in metrics.band_masks(np.where(np.isnan(true), -1, true), metrics.DECADES)
                 if (shown & inside).any()]
        if means:
            axes.plot(*zip(*means), color="red", marker="o", linewidth=1.5, label="mean per decade")
        axes.plot([0, top], [0, top], color="black", linewidth=1, label="predicted = true")
        axes.fill_between([0, top], [-5, top - 5], [5, top + 5], color="green", alpha=0.12, label="within 5 years")
        axes.set_xlim(0, top)
        axes.set_ylim(0, top)
        axes.set_xlabel("true age (years)")
        axes.set_ylabel("predicted age (years)")
        balanced = report.get("views", {}).get("balanced", {}).get("age_mae")
        axes.set_title(f"age: MAE {_fmt(report['age_mae'])} y (balanced by decade {_fmt(balanced)}), "
                       f"within 5 y {_fmt(report['age_within5'])}, n={int(shown.sum())}", fontsize=9)
        axes.legend(loc="upper left")
        figure.tight_layout()
        figure.savefig(path, dpi=120)
        plt.close(figure)
        written["age_scatter"] = str(path)
    return written


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
