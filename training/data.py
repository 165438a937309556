"""The research datasets every trainer and study reads, and the splits made of them.

UTKFace (age, gender) and FER2013 (expression) live in ``../shared/data`` and never enter the repository: the
caches and labels files written here go to the cache folder (``faceanalysis.cli.default_cache()``).
Every split is stratified and seeded, so ``--seed 0`` is the same partition for a trainer, a test and a
study. A split's parts are returned sorted; where a second split is made inside a first, it is made on the
first's shuffled order, as the shipped weights were (sorting in between would give other parts).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
from pathlib import Path

import numpy as np

from faceanalysis.cli import default_cache
from facecore.labels import EXPRESSIONS, GENDERS
from training.metrics import band_masks

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
UTKFACE = SHARED_DATA / "utkface"
FER2013 = SHARED_DATA / "fer2013"
FER_SIZE = 48                    # FER2013's crops are 48x48 grey
UTKFACE_VALIDATION_SHARE = 0.2   # of all images, only ever scored
UTKFACE_TUNE_SHARE = 0.2         # of train, where every choice of the heads is made
FER_SELECT_SHARE = 0.1           # of FER2013 train, where the epoch is chosen


# ----------------------------------------------------------------------------------------------- labels.csv

def read_labels(data_dir: Path, columns: dict) -> dict[str, np.ndarray]:
    """The ``columns`` of ``data_dir/labels.csv`` as arrays, in file order. Each column maps to its type
    (``str``, ``float``) or to a tuple of class names, which turns the label into its index (int64)."""
    values: dict[str, list] = {name: [] for name in columns}
    with open(data_dir / "labels.csv", newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            for name, kind in columns.items():
                values[name].append(kind.index(row[name].strip().lower()) if isinstance(kind, tuple)
                                    else kind(row[name]))
    return {name: np.asarray(column, dtype=np.int64 if isinstance(columns[name], tuple) else None)
            for name, column in values.items()}


def missing_labels(data_dir: Path) -> str | None:
    """Why ``data_dir`` cannot be trained on, or None."""
    if (data_dir / "labels.csv").is_file():
        return None
    return f"no labels.csv in {data_dir} (the research data lives in {SHARED_DATA}, see its README.md)"


def add_data_arguments(parser: argparse.ArgumentParser, data: Path, seed_help: str | None = None) -> None:
    """The options every trainer shares: which data, where its caches and reports go, which split. With
    ``seed_help`` the seed has no default (the trainer picks one, as that help says)."""
    parser.add_argument("--data", type=Path, default=data, help="folder with labels.csv (default %(default)s)")
    parser.add_argument("--cache", type=Path, default=default_cache(),
                        help="feature cache and report folder, outside the repository ($VIDEOFACE_CACHE, "
                             "default %(default)s)")
    if seed_help is None:
        parser.add_argument("--seed", type=int, default=0, help="split and model seed (default %(default)s)")
    else:
        parser.add_argument("--seed", type=int, help=seed_help)


def stratified_split(rows: np.ndarray, groups: np.ndarray, held: float | int, seed: int):
    """``rows`` divided into (kept, held out), every group held out in proportion; ``held`` is a share or a
    count. Both in scikit-learn's shuffled order."""
    from sklearn.model_selection import train_test_split
    return train_test_split(rows, test_size=held, random_state=seed, stratify=groups)


# ----------------------------------------------------------------------------------------------- UTKFace

def utkface_labels(data_dir: Path = UTKFACE) -> dict[str, np.ndarray]:
    """``file``, ``age`` (years) and ``gender`` (index into ``GENDERS``) of every image."""
    return read_labels(data_dir, {"file": str, "age": float, "gender": GENDERS})


def utkface_strata(ages: np.ndarray, genders: np.ndarray) -> np.ndarray:
    """Age band x gender, the groups every UTKFace split keeps in proportion."""
    band = np.zeros(len(ages), dtype=np.int64)
    for number, (_, inside) in enumerate(band_masks(ages)):
        band[inside] = number
    return band * len(GENDERS) + genders


def utkface_split(labels: dict, seed: int) -> dict[str, np.ndarray]:
    """Indices of train, its held-out "tune" part, the rest of train ("fit"), and validation."""
    groups = utkface_strata(labels["age"], labels["gender"])
    train, validation = stratified_split(np.arange(len(labels["file"])), groups, UTKFACE_VALIDATION_SHARE, seed)
    fit, tune = stratified_split(train, groups[train], UTKFACE_TUNE_SHARE, seed)
    return {"train": np.sort(train), "fit": np.sort(fit), "tune": np.sort(tune), "validation": np.sort(validation)}


def utkface_validation_subset(labels: dict, seed: int, size: int = 200) -> list[str]:
    """A fixed, stratified sample of the validation split (for quick tests and studies), by file name."""
    validation = utkface_split(labels, seed)["validation"]
    groups = utkface_strata(labels["age"][validation], labels["gender"][validation])
    chosen, _ = stratified_split(validation, groups, len(validation) - size, seed)
    return sorted(labels["file"][chosen].tolist())


def write_utkface_labels(folder: Path, data_dir: Path, labels: dict, rows: np.ndarray,
                         races: np.ndarray | None = None) -> Path:
    """A labels.csv of ``rows`` with absolute paths (nothing copied), for ``evaluate.py --data folder``; with
    ``races``, a ``race`` column too (for ``evaluate.py --by race``)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "labels.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "age", "gender"] + (["race"] if races is not None else []))
        for row in rows:
            writer.writerow([str(data_dir / labels["file"][row]), f"{labels['age'][row]:g}",
                             GENDERS[labels["gender"][row]]] + ([int(races[row])] if races is not None else []))
    return path


# ----------------------------------------------------------------------------------------------- FER2013

def fer2013(data_dir: Path, cache: Path) -> dict[str, np.ndarray]:
    """Images (n, 48, 48) uint8, ``label`` in ``EXPRESSIONS`` order, the official ``split`` of every row and
    its file ``name``; decoded once, then read from the cache (keyed by the labels file's content)."""
    digest = hashlib.sha256((data_dir / "labels.csv").read_bytes()).hexdigest()[:12]
    cached = cache / f"fer2013_{digest}.npz"
    if cached.exists():
        with np.load(cached, allow_pickle=False) as stored:
            return {name: stored[name] for name in stored.files}
    import cv2
    labels = read_labels(data_dir, {"file": str, "emotion": EXPRESSIONS, "split": str})
    images = np.zeros((len(labels["file"]), FER_SIZE, FER_SIZE), np.uint8)
    for number, name in enumerate(labels["file"]):
        grey = cv2.imread(str(data_dir / name), cv2.IMREAD_GRAYSCALE)
        if grey is None:
            raise ValueError(f"{data_dir / name}: not a readable image")
        images[number] = (grey if grey.shape == (FER_SIZE, FER_SIZE)
                          else cv2.resize(grey, (FER_SIZE, FER_SIZE), interpolation=cv2.INTER_AREA))
    data = {"image": images, "label": labels["emotion"], "split": labels["split"], "name": labels["file"]}
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(cached, **data)
    return data


def fer2013_split(data: dict, seed: int, dev_seed: int | None = None) -> dict[str, np.ndarray]:
    """Train into "fit" and "select" (the epoch's choice); dev (PublicTest) halved into "dev_choose" (the
    service's model choice) and "dev_report" (figures only), with ``dev_seed`` when given, else ``seed``.
    The mini-Xception was trained on FER2013 train, so no choice among models can be fair on "select"."""
    train = np.flatnonzero(data["split"] == "train")
    fit, select = stratified_split(train, data["label"][train], FER_SELECT_SHARE, seed)
    dev = np.flatnonzero(data["split"] == "dev")
    choose, report = stratified_split(dev, data["label"][dev], 0.5, seed if dev_seed is None else dev_seed)
    return {"fit": np.sort(fit), "select": np.sort(select), "dev": dev,
            "dev_choose": np.sort(choose), "dev_report": np.sort(report)}


# ----------------------------------------------------------------------------------------------- FER+ votes

# ferplus.csv's vote columns, in its order. The first seven are the service's expressions under other names;
# the last three have no legacy code.
FERPLUS_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear",
                   "contempt", "unknown", "not_face")
FERPLUS_EXPRESSION = {"neutral": "neutral", "happiness": "happy", "surprise": "surprise", "sadness": "sad",
                      "anger": "angry", "disgust": "disgust", "fear": "fear"}
# Column index of each of the service's expressions, in ``EXPRESSIONS`` order.
FERPLUS_ORDER = np.asarray([FERPLUS_COLUMNS.index(next(column for column, name in FERPLUS_EXPRESSION.items()
                                                       if name == expression)) for expression in EXPRESSIONS])
FERPLUS_OUTLIER_VOTES = 1        # a count this small is one annotator's slip (FER+ paper), not a reading


def ferplus_votes(data_dir: Path, files: np.ndarray) -> np.ndarray:
    """(n, 10) int vote counts of ``ferplus.csv`` in ``FERPLUS_COLUMNS`` order, row for row with ``files``
    (``labels.csv`` names); an image FER+ dropped (empty votes, or absent) has all-zero votes."""
    by_file = {}
    with open(data_dir / "ferplus.csv", newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row[FERPLUS_COLUMNS[0]].strip():
                by_file[row["file"]] = [int(row[column]) for column in FERPLUS_COLUMNS]
    empty = [0] * len(FERPLUS_COLUMNS)
    return np.asarray([by_file.get(str(name), empty) for name in files],
                      dtype=np.int64).reshape(-1, len(FERPLUS_COLUMNS))


def _counted(votes: np.ndarray) -> np.ndarray:
    votes = np.asarray(votes, dtype=np.int64).reshape(-1, len(FERPLUS_COLUMNS))
    return np.where(votes > FERPLUS_OUTLIER_VOTES, votes, 0)


def ferplus_targets(votes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The training target of each image and whether it is trained on at all.

    Counts of one vote are dropped first (one annotator's slip, as the FER+ paper does). The target is the
    remaining votes of the seven expressions, normalised, in ``EXPRESSIONS`` order: contempt, unknown and
    not_face votes are left out (the legacy contract has no code for them). An image is trained on only when
    those seven hold more than half of its remaining votes; an image most annotators called contempt, unknown
    or not a face teaches nothing about the seven. Returns ((n, 7) float32, (n,) bool); a dropped image's
    target is all zero."""
    counted = _counted(votes)
    seven = counted[:, FERPLUS_ORDER]
    inside = seven.sum(axis=1)
    keep = 2 * inside > counted.sum(axis=1)
    targets = np.zeros(seven.shape, np.float32)
    targets[keep] = seven[keep] / inside[keep, None]
    return targets, keep


def ferplus_majority(votes: np.ndarray) -> np.ndarray:
    """The FER+ "majority" label of each image in ``EXPRESSIONS`` order, or -1 where it has none that the
    service can be scored on: after dropping one-vote counts, the label is the column holding more than half of
    the remaining votes (the FER+ paper's protocol); -1 where no column does, or where it is contempt, unknown
    or not_face."""
    counted = _counted(votes)
    top = counted.argmax(axis=1)
    has_majority = 2 * counted.max(axis=1) > counted.sum(axis=1)
    to_service = np.full(len(FERPLUS_COLUMNS), -1, np.int64)
    to_service[FERPLUS_ORDER] = np.arange(len(EXPRESSIONS))
    return np.where(has_majority, to_service[top], -1)
