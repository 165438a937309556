"""Shipping the age and gender heads: which file and manifest key each kind of run writes (``--ship``), and the
manifest entry, with the validation figures re-measured from the written file.

Manifest keys name the models, not the files: ``age_gender_heads`` (``age_gender_heads_v1.npz``, the embedding
heads), ``age_gender_netheads`` (``age_gender_netheads_v1.npz``, "tuned"), ``age_gender_lifespan``
(``age_gender_netheads_v2.npz``, the per-face heads of the "lifespan" choice) and ``age_gender_person``
(``age_gender_person_v2.npz``, its person head); each entry's ``file`` names the file.
"""

from __future__ import annotations

import numpy as np

from training import lifespan
from training.heads_fitting import PARAMETER_NAMES
from training.heads_scoring import evaluate
from training.shipping import WEIGHTS_DIR, ship

# What the heads read: the dlib face embedding ("FaceNet + heads"), or the dlib-models age and gender
# networks' own penultimate features (``facecore.heads_file.NetworkFeatures``; the "tuned" choice).
FEATURE_KINDS = {
    "embedding": {"file": WEIGHTS_DIR / "age_gender_heads_v1.npz", "key": "age_gender_heads",
                  "describe": "the dlib 128-d face embedding", "modes": ("heads", "ensemble")},
    "networks": {"file": WEIGHTS_DIR / "age_gender_netheads_v1.npz", "key": "age_gender_netheads",
                 "describe": ("the dlib-models age and gender networks' penultimate features (256 + 16 values, "
                              "their last layers refitted)"), "modes": ("tuned-head", "tuned")},
}
# What every heads file's manifest entry says of its data: the weights inherit UTKFace's terms.
UTKFACE_LICENCE = ("Non-commercial research only: trained on UTKFace crop_part1, whose terms (non-commercial "
                   "research, image copyright with the owners) the weights inherit")
UTKFACE_DATA = {
    "data": "UTKFace crop_part1 (research only, non-commercial), 7,778 200x200 crops, ../shared/data/utkface",
    "terms": "UTKFace (Zhang, Song, Qi 2017): non-commercial research only; image copyright stays with the owners"}
# The v2 recipe (``training.lifespan``, ``--features networks``): the service's "lifespan" choice.
LIFESPAN_TARGET = {"file": WEIGHTS_DIR / "age_gender_netheads_v2.npz", "key": "age_gender_lifespan",
                   "describe": FEATURE_KINDS["networks"]["describe"], "modes": ("lifespan-head", "lifespan"),
                   "name": "lifespan v2"}
# The same recipe on the networks' features and the face embedding side by side (``--features combined``): the
# person head (``age.person``), which reads the few faces per person the tracker embeds.
PERSON_TARGET = {"file": WEIGHTS_DIR / "age_gender_person_v2.npz", "key": "age_gender_person",
                 "describe": ("the dlib-models networks' penultimate features (272 values) and the dlib 128-d face "
                          "embedding side by side (400 values)"), "name": "person v2"}
V2_TARGETS = {"networks": LIFESPAN_TARGET, "combined": PERSON_TARGET}



def ship_heads(target: dict, arrays: dict, kind: str, default: str, seed: int, choices: dict, features: dict,
               labels: dict, parts: dict, bin_ages: np.ndarray, run_command: str) -> None:
    """Write the heads file (float32) and its manifest entry; the figures are re-measured from the file."""
    heads_file = target["file"]
    stored = {name: (value.astype(np.float32) if np.asarray(value).dtype.kind == "f" else value)
              for name, value in arrays.items()}
    np.savez_compressed(heads_file, **stored)
    shipped = evaluate(features, labels, parts["validation"], {kind: dict(np.load(heads_file))}, bin_ages)

    def figures(row: dict) -> dict:
        return {"age_mae": round(row["age_mae"], 3), "age_within5": round(row["age_within5"], 3),
                "gender_acc": round(row["gender_acc"], 3)}

    ship(target["key"], heads_file,
         model=(f"age and gender heads on {target['describe']} (python -m training heads): gender logistic "
                f"regression; age '{kind}' head giving the 81-bin distribution; mixed with the dlib-models "
                f"networks in '{target['modes'][1]}' mode (age weight {float(arrays['age_mix']):.2f}, gender weight "
                f"{float(arrays['gender_mix']):.2f} for the head)"),
         license_text=UTKFACE_LICENCE,
         training={
             **UTKFACE_DATA,
             "command": run_command, "seed": seed,
             "split": (f"{len(parts['train'])} train / {len(parts['validation'])} validation, stratified by age band "
                       f"and gender; choices on {len(parts['tune'])} held-out train images"),
             "age_head": {"kind": kind, PARAMETER_NAMES[kind]: choices["age"][kind]["param"],
                          **{k: v for k, v in choices["age"][kind].items() if k not in ("param", "tune_mae_point")}},
             "gender_head": {"C": choices["gender"]["C"], "mix": choices["gender"]["mix"]},
             "validation": {"dlib-models": figures(shipped["dlib-models"]),
                            target["modes"][0]: figures(shipped[f"head:{kind}"]),
                            target["modes"][1]: figures(shipped[f"ensemble:{kind}"])},
             "default": default,
         })


def ship_lifespan(arrays: dict, choices: dict, args, features: dict, labels: dict, parts: dict,
                  races: np.ndarray, run_command: str, target: dict | None = None) -> None:
    """Write the v2 file (float32) and its manifest entry, the figures re-measured from the written file."""
    target = target or LIFESPAN_TARGET
    shipped_name = target["name"]
    stored = {name: (value.astype(np.float32) if np.asarray(value).dtype.kind == "f" else value)
              for name, value in arrays.items()}
    np.savez_compressed(target["file"], **stored)
    shipped = lifespan.compare({"published network": None, shipped_name: dict(np.load(target["file"]))},
                               features, labels, parts["validation"], races)

    def figures(view: dict) -> dict:
        return {key: round(view[key], 3) for key in ("age_mae", "age_bias", "age_within5", "gender_acc")} | {
            "bands": {band["band"]: {"n": band["n"], "age_mae": round(band["age_mae"], 2),
                                     "age_bias": round(band["age_bias"], 2),
                                     "gender_acc": round(band["gender_acc"], 3)} for band in view["bands"]}}

    def groups(rows: list[dict]) -> list[dict]:
        return [{key: (round(value, 3) if isinstance(value, float) else
                       [round(v, 3) for v in value] if isinstance(value, tuple) else value)
                 for key, value in row.items()} for row in rows]

    kind = choices["best"]
    entry = choices["age"][kind]
    ship(target["key"], target["file"], version="v2",
         model=(f"age and gender heads v2 ('{shipped_name}') on {target['describe']} (python -m training heads): "
                f"gender logistic regression; age '{kind}' head over the 101 lifespan bins (0.25-100 years), images "
                f"weighted by decade, mixed with the dlib-models networks (age weight "
                f"{float(arrays['age_mix']):.2f}, gender weight {float(arrays['gender_mix']):.2f} for the head), "
                + ("calibrated by an isotonic warp of the bins" if "age_warp" in arrays else "uncalibrated")
                + f"; gender logit divided by {float(arrays['child_temperature']):.2f} for faces the age head places "
                  f"under {float(arrays['child_age']):g}"),
         license_text=UTKFACE_LICENCE,
         training={
             **UTKFACE_DATA,
             "command": run_command, "seed": args.seed, "decade_weight": args.decade_weight,
             "soft_labels": args.soft_labels,
             "split": (f"{len(parts['train'])} train / {len(parts['validation'])} validation, stratified by age band "
                       f"and gender; every choice on {len(parts['tune'])} held-out train images ('tune'), by the "
                       f"balanced (per-decade) age MAE"),
             "age_head": {"kind": kind, PARAMETER_NAMES[kind]: entry["param"], "mix": entry["mix"],
                          "calibration_power": entry["calibration_power"],
                          "tune_balanced_mae": round(entry["tune_balanced_mae"], 3)},
             "gender_head": {"C": choices["gender"]["C"], "mix": choices["gender"]["mix"]},
             "children": {key: (round(value, 4) if isinstance(value, float) else value)
                          for key, value in choices["children"].items()},
             "validation": {name: {"natural": figures(views["natural"]), "balanced": figures(views["balanced"])}
                            for name, views in shipped.items()},
             "validation_by_race": groups(shipped[shipped_name]["by_race"]),
             "validation_by_gender": groups(shipped[shipped_name]["by_gender"]),
         })
