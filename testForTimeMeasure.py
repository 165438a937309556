"""Time each stage of the real pipeline on one sequence.

    python testForTimeMeasure.py [FOLDER] [--repeat N]   (default folder: samples/seqA)

Prints model load (and warm-up) time, then per run: milliseconds per stage
(read/decode, detect, align, age, gender, expression, aggregate), total and
frames per second, plus peak resident memory.
"""

from __future__ import annotations

import argparse
import platform
import resource
import time
from pathlib import Path

from faceanalysis.cli import add_model_arguments, settings_from, setup_logging

HERE = Path(__file__).resolve().parent


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?", type=Path, default=HERE / "samples" / "seqA")
    parser.add_argument("--repeat", type=int, default=3)
    add_model_arguments(parser)
    args = parser.parse_args(argv)
    setup_logging("WARNING")
    from faceanalysis.pipeline.analyzer import STAGES, FaceAnalyzer

    start = time.perf_counter()
    analyzer = FaceAnalyzer(settings_from(args)).prepare()
    print(f"machine: {platform.processor() or platform.machine()}, {__import__('os').cpu_count()} cores, "
          f"device {analyzer.device.kind}")
    print(f"model load + warm-up: {time.perf_counter() - start:.2f} s")
    for run in range(1, args.repeat + 1):
        wall = time.perf_counter()
        result = analyzer.analyse_folder(args.folder)
        wall = time.perf_counter() - wall
        frames = result.frames_read
        stages = "  ".join(f"{stage} {result.timings_ms[stage]:.0f}" for stage in STAGES)
        print(f"run {run}: {frames} frames, {len(result.faces)} faces | ms: {stages} | "
              f"total {wall * 1000:.0f} ms, {wall * 1000 / max(frames, 1):.1f} ms/frame, "
              f"{frames / wall:.1f} frames/s")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS: {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
