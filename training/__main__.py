"""Every trainer runs the same way:

    python -m training heads [options]        age and gender heads on UTKFace (training/heads.py)
    python -m training expression [options]   the expression CNN on FER2013 (training/expression.py)
    python -m training ferplus [options]      that CNN fine-tuned on the FER+ votes (training/ferplus.py)

``python -m training TRAINER --help`` lists a trainer's options.
"""

from __future__ import annotations

import argparse
import os
import sys

# oneDNN's AVX-512 kernels crash TensorFlow 2.21's CPU training: a segmentation fault in the first epoch of
# fine-tuning the mini-Xception, seen on an AMD EPYC with AVX-512 (inference is unaffected; oneDNN's AVX-512
# faults are a known family, e.g. tensorflow/tensorflow#57749). Held to AVX2 the same kernels train. Set before
# TensorFlow loads; a value the user set wins.
os.environ.setdefault("DNNL_MAX_CPU_ISA", "AVX2")

from faceanalysis.cli import setup_logging  # noqa: E402  (after the oneDNN setting)
from training import expression, ferplus, heads  # noqa: E402

TRAINERS = {"heads": heads.main, "expression": expression.main, "ferplus": ferplus.main}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("trainer", choices=tuple(TRAINERS))
    parser.add_argument("options", nargs=argparse.REMAINDER, help="the trainer's own options")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    setup_logging()
    return TRAINERS[args.trainer](args.options)


if __name__ == "__main__":
    sys.exit(main())
