"""Every trainer runs the same way:

    python -m training heads [options]        age and gender heads on UTKFace (training/heads.py)
    python -m training expression [options]   the expression CNN on FER2013 (training/expression.py)
    python -m training ferplus [options]      that CNN fine-tuned on the FER+ votes (training/ferplus.py)

``python -m training TRAINER --help`` lists a trainer's options.
"""

from __future__ import annotations

import argparse
import sys

from faceanalysis.cli import setup_logging
from training import expression, ferplus, heads

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
