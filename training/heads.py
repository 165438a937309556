"""Train age and gender heads on UTKFace and compare them with the dlib-models networks on a held-out
validation split: the command line (``python -m training heads``).

    python -m training heads [--features embedding|networks|combined] [--recipe v1|v2] [--decade-weight 1]
                             [--soft-labels SIGMA] [--data ../shared/data/utkface] [--cache ~/.cache/videoface]
                             [--seed 0] [--ship]

Two recipes. ``v2`` (the default with ``--features networks`` or ``combined``; ``training.lifespan``): the
"lifespan" heads, the service's default choice: ``weights/age_gender_netheads_v2.npz`` per face (``networks``)
and ``weights/age_gender_person_v2.npz`` per person (``combined``: the networks' features and the face embedding
side by side): 101 lifespan bins, images weighted by decade, an isotonic calibration, a lower-confidence gender
for children, every choice on the decade-balanced view of "tune"; it prints both views and the table by race
group. ``v1`` (the only recipe for the embedding): what made the shipped ``*_v1.npz`` files, on the network's 81
bins, unweighted; it reproduces their figures and refuses ``--ship`` (v1 is shipped).

``--features embedding`` (default): heads on the dlib face embedding ("FaceNet + heads", the original's design;
choices ``heads`` / ``ensemble`` in the service). ``--features networks``: heads on the dlib-models age and gender
networks' own penultimate features, i.e. their last layers refitted on UTKFace (v1: choice ``tuned``; v2: the
per-face heads of ``lifespan``, the default: no extra network at run time).

One data path, in order, each step in its own module:

1. ``labels.csv`` is split once, with ``--seed``, into train (80%) and validation (20%), stratified by age band
   and gender. Inside train a second split with the same seed holds out 20% ("tune") on which every
   hyper-parameter and ensemble weight is chosen; validation is only ever scored (``training.data``).
2. The features of every image, through the service's own code, cached in ``--cache``
   (``training.heads_features``).
3. The heads, fitted with scikit-learn, every choice made on "tune" (``training.heads_fitting``; v2:
   ``training.lifespan``).
4. The validation table, printed and written to ``--cache/heads_report_*_seed<seed>.json``
   (``training.heads_scoring``; v2: ``training.lifespan.compare``).
5. ``--ship`` (v2) refits the chosen heads on all of train and writes the heads file and its manifest entry
   (sha256, data, terms, seed, validation figures; ``training.heads_shipping``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from age.distribution import LIFESPAN_BINS
from training import data, lifespan
from training.heads_features import load_features
from training.heads_fitting import Fitter, refit, tune
from training.heads_scoring import choose, evaluate, format_table
from training.heads_shipping import FEATURE_KINDS, LIFESPAN_TARGET, PERSON_TARGET, V2_TARGETS, ship_lifespan
from training.scoring import group_table, views_table
from training.shipping import command

log = logging.getLogger(__name__)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m training heads", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    data.add_data_arguments(parser, data.UTKFACE)
    parser.add_argument("--features", choices=(*FEATURE_KINDS, "combined"), default="embedding",
                        help="what the heads read: the dlib face embedding, the dlib-models networks' own "
                             "penultimate features (the 'tuned' and 'lifespan' per-face heads), or both side by "
                             "side (combined: the 'lifespan' person head, v2 only) (default %(default)s)")
    parser.add_argument("--features-only", action="store_true", help="compute and cache the features, then stop")
    parser.add_argument("--recipe", choices=("v1", "v2"),
                        help="v2 (default with --features networks or combined): 101 lifespan bins, decade "
                             "weights, calibration and the children's gender temperature, every choice on the "
                             "balanced view of 'tune' "
                             "(training/lifespan.py); v1 (the only recipe for the embedding): the 81 network bins, "
                             "unweighted, as the shipped *_v1 files were made (reproduces them; no --ship)")
    parser.add_argument("--decade-weight", type=float, default=1.0,
                        help="v2: age images weigh (1 / images of their decade) ** this (default %(default)s)")
    parser.add_argument("--soft-labels", type=float, default=0.0, metavar="SIGMA",
                        help="v2: the bins head learns soft labels, a Gaussian of SIGMA years around the true age "
                             "(0: one bin, as shipped; default %(default)s)")
    parser.add_argument("--ship", action="store_true",
                        help="v2 only: write the heads file (weights/age_gender_netheads_v2.npz with --features "
                             "networks, weights/age_gender_person_v2.npz with --features combined) and its "
                             "weights/manifest.json entry")
    args = parser.parse_args(argv)
    recipe = args.recipe or ("v2" if args.features in V2_TARGETS else "v1")
    if recipe == "v2" and args.features not in V2_TARGETS:
        parser.error("--recipe v2 is for --features networks or combined")
    if recipe == "v1" and args.features == "combined":
        parser.error("--features combined has the v2 recipe only")
    if recipe == "v1" and args.ship:
        parser.error("the v1 files are shipped: --recipe v1 reproduces their figures without writing them")
    data_dir, cache = args.data.resolve(), args.cache.expanduser().resolve()
    if (problem := data.missing_labels(data_dir)) is not None:
        print(problem, file=sys.stderr)
        return 2
    labels = data.utkface_labels(data_dir)
    features = load_features(data_dir, cache, labels, args.features)
    if args.features_only:
        return 0
    from age.network import AgeModel
    from facecore.weights import load_manifest, resolve
    parts = data.utkface_split(labels, args.seed)
    log.info("split (seed %d): train %d (fit %d + tune %d), validation %d", args.seed, len(parts["train"]),
             len(parts["fit"]), len(parts["tune"]), len(parts["validation"]))
    if recipe == "v2":
        return main_lifespan(args, argv, data_dir, cache, labels, features, parts)
    bin_ages = AgeModel(resolve("age", load_manifest())).network_bins     # v1: the network's 81 bins
    features = {**features, "dlib_age": features["dlib_age"][:, :len(bin_ages)]}
    fitter = Fitter(features, labels, bin_ages, args.seed)
    choices = tune(fitter, features, parts)
    heads_by_kind = refit(fitter, choices, parts["train"])
    table = evaluate(features, labels, parts["validation"], heads_by_kind, bin_ages)
    best_kind, default = choose(table, FEATURE_KINDS[args.features]["modes"])
    print(format_table(table))
    print(views_table({name: row["views"] for name, row in table.items()}))
    print(f"age head picked by validation MAE: {best_kind}; default: {default}")
    report = {
        "command": command("heads", argv),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "data_dir": str(data_dir),
        "seed": args.seed, "split": {name: int(len(rows)) for name, rows in parts.items()},
        "choices": choices, "age_head": best_kind, "default": default, "validation": table,
        "validation_subset_for_tests": data.utkface_validation_subset(labels, args.seed),
    }
    cache.mkdir(parents=True, exist_ok=True)
    suffix = "" if args.features == "embedding" else f"_{args.features}"
    report_path = cache / f"heads_report{suffix}_seed{args.seed}.json"
    report_path.write_text(json.dumps(report, indent=2, default=float) + "\n", encoding="utf-8")
    log.info("report written to %s", report_path)
    labels_path = data.write_utkface_labels(cache / f"utkface_validation_seed{args.seed}", data_dir, labels,
                                            parts["validation"], data.read_labels(data_dir, {"race": int})["race"])
    log.info("validation split for evaluate.py: --data %s --faces-given [--by race]", labels_path.parent)
    return 0


def main_lifespan(args, argv: list[str], data_dir: Path, cache: Path, labels: dict, features: dict,
                  parts: dict) -> int:
    """The v2 recipe (``training.lifespan``): tune on "tune", refit the chosen head on train, and compare the
    published networks, the shipped v1 "tuned" heads and v2 on validation in both views and by group."""
    fitter = Fitter(features, labels, LIFESPAN_BINS, args.seed, decade_weight=args.decade_weight,
                    soft_sigma=args.soft_labels)
    choices = lifespan.tune(fitter, features, parts, args.seed)
    best = choices["best"]
    arrays = lifespan.finish(refit(fitter, {"gender": choices["gender"], "age": {best: choices["age"][best]}},
                                   parts["train"])[best], choices)
    races = data.read_labels(data_dir, {"race": int})["race"]
    target = V2_TARGETS[args.features]
    models = {"published network": None, "tuned v1": dict(np.load(FEATURE_KINDS["networks"]["file"]))}
    if target is PERSON_TARGET:                    # the shipped per-face v2 beside the person head
        models["lifespan v2"] = dict(np.load(LIFESPAN_TARGET["file"]))
    models[target["name"]] = arrays
    table = lifespan.compare(models, features, labels, parts["validation"], races)
    print(views_table(table))
    for name, views in table.items():
        print(f"\n{name}, by race group (validation, natural view inside each group):")
        print(group_table(views["by_race"]))
    report = {"command": command("heads", argv), "recipe": "v2",
              "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "data_dir": str(data_dir),
              "seed": args.seed, "decade_weight": args.decade_weight, "soft_labels": args.soft_labels,
              "split": {name: int(len(rows)) for name, rows in parts.items()}, "choices": choices,
              "validation": table}
    cache.mkdir(parents=True, exist_ok=True)
    soft = f"_soft{args.soft_labels:g}" if args.soft_labels else ""
    stem = "person" if target is PERSON_TARGET else "lifespan"
    report_path = cache / f"heads_report_{stem}{soft}_seed{args.seed}.json"
    report_path.write_text(json.dumps(report, indent=2, default=_json_value) + "\n", encoding="utf-8")
    log.info("report written to %s", report_path)
    labels_path = data.write_utkface_labels(cache / f"utkface_validation_seed{args.seed}", data_dir, labels,
                                            parts["validation"], races)
    log.info("validation split for evaluate.py: --data %s --faces-given [--by race]", labels_path.parent)
    if args.ship:
        ship_lifespan(arrays, choices, args, features, labels, parts, races, report["command"], target)
    return 0


def _json_value(value):
    return value.tolist() if isinstance(value, np.ndarray) else float(value)
