"""How much margin the expression crop should add around an MTCNN box, on SYNTHETIC sequences.

    python -m bench.expression_margin_study [--split select|dev] [--per-class 12] [--frames 8]
                                            [--margins 0 0.1 0.2]

FER2013 stills are rendered into camera-motion sequences by ``bench/aggregation_study.py``'s generator (the
virtual camera of ``samples/make_samples.py``; synthetic, no facial dynamics), the full pipeline runs (MTCNN,
crops, the default expression models), and the accuracy of the default sequence rule and of the middle frame
alone is printed for each ``Settings.expression_box_margin`` tried. ``--split select`` takes the stills from the
part of FER2013 train that the expression trainer holds out ("select", ``training.data.fer2013_split``), so a
margin chosen here is not chosen on dev; ``--split dev`` uses dev (PublicTest) stills, to confirm.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

import numpy as np

from bench import aggregation_study
from faceanalysis.cli import default_cache
from faceanalysis.pipeline.aggregate import DEFAULT_AGGREGATOR
from facecore.labels import EXPRESSIONS
from training import data


def stills(split: str, per_class: int, seed: int) -> list[tuple[Path, int]]:
    """``per_class`` stills of each expression from ``split`` of the trainer's seed-0 split."""
    fer = data.fer2013(data.FER2013, default_cache())
    rows = data.fer2013_split(fer, seed=0)[split]
    rng = np.random.default_rng(seed)
    chosen = []
    for label in range(len(EXPRESSIONS)):
        of_class = rows[fer["label"][rows] == label]
        picked = rng.choice(of_class, min(per_class, len(of_class)), replace=False)
        chosen += [(data.FER2013 / str(fer["name"][row]), label) for row in picked]
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", choices=("select", "dev"), default="select")
    parser.add_argument("--per-class", type=int, default=12)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--margins", type=float, nargs="+", default=[0.0, 0.1, 0.2])
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from faceanalysis.pipeline.analyzer import FaceAnalyzer
    from faceanalysis.pipeline.settings import Settings

    chosen = stills(args.split, args.per_class, args.seed)
    samples = aggregation_study.load_make_samples()
    print(f"SYNTHETIC sequences: {len(chosen)} FER2013 {args.split} stills, {args.frames} frames each; "
          f"expression models: {Settings().expression}")
    print("| margin | middle frame acc | sequence acc (default rule) | no face |\n|---:|---:|---:|---:|")
    for margin in args.margins:
        # One analyzer per margin: the margin is a setting, fixed when the models are built.
        analyzer = FaceAnalyzer(device="cpu", expression_box_margin=margin).prepare()
        with tempfile.TemporaryDirectory(prefix="margin_study_") as workdir:
            result = aggregation_study.run_expression(analyzer, samples, chosen, args.frames, Path(workdir))
        sequence = result["rules"][DEFAULT_AGGREGATOR]["accuracy"]
        middle = result["single_middle_frame"]["accuracy"]
        print(f"| {margin:g} | {middle:.3f} | {sequence:.3f} | {result['no_face']} |", flush=True)


if __name__ == "__main__":
    main()
