"""How much margin the expression crop should add around an MTCNN box, on SYNTHETIC sequences.

    /work/venv/bin/python bench/expression_margin_study.py [--split select|dev] [--per-class 12] [--frames 8]
                                                           [--margins 0 0.1 0.2]

FER2013 stills are rendered into camera-motion sequences by ``bench/aggregation_study.py``'s generator (the
virtual camera of ``samples/make_samples.py``; synthetic, no facial dynamics), the full pipeline runs (MTCNN,
crops, the expression models ``FACE_EXPRESSION`` picks), and the accuracy of the default sequence rule and of
the middle frame alone is printed for each ``emotion.model.BOX_MARGIN`` tried. ``--split select`` takes the
stills from the part of FER2013 train that ``emotion/train.py`` holds out ("select"), so a margin chosen here is
not chosen on dev; ``--split dev`` uses dev (PublicTest) stills, to confirm.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import types
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import aggregation_study  # noqa: E402
import emotion.model as expression  # noqa: E402
from training import expression as train  # noqa: E402


def stills(split: str, per_class: int, seed: int) -> list[tuple[Path, int]]:
    data = train.load_fer(train.DEFAULT_DATA, train.DEFAULT_CACHE)
    rows = train.split(data, seed=0)[split]
    rng = np.random.default_rng(seed)
    chosen = []
    for label in range(len(expression.EXPRESSIONS)):
        of_class = rows[data["label"][rows] == label]
        picked = rng.choice(of_class, min(per_class, len(of_class)), replace=False)
        chosen += [(train.DEFAULT_DATA / str(data["name"][row]), label) for row in picked]
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

    chosen = stills(args.split, args.per_class, args.seed)
    aggregation_study.fer_stills = lambda n, seed: chosen
    analyzer = FaceAnalyzer(device="cpu").prepare()
    samples = aggregation_study.load_make_samples()
    study = types.SimpleNamespace(n=len(chosen), frames=args.frames, seed=0)
    print(f"SYNTHETIC sequences: {len(chosen)} FER2013 {args.split} stills, {args.frames} frames each; "
          f"expression models: {analyzer.model_choice['expression']}")
    print("| margin | middle frame acc | sequence acc (default rule) | no face |\n|---:|---:|---:|---:|")
    for margin in args.margins:
        expression.BOX_MARGIN = margin
        with tempfile.TemporaryDirectory(prefix="margin_study_") as workdir:
            result = aggregation_study.run_expression(analyzer, samples, study, Path(workdir))
        sequence = result["rules"][aggregation_study.DEFAULT_AGGREGATOR]["accuracy"]
        print(f"| {margin:g} | {result['single_middle_frame']['accuracy']:.3f} | {sequence:.3f} | {result['no_face']} |",
              flush=True)


if __name__ == "__main__":
    main()
