"""Write the v2 answers (timeline included) of one checkout's analyzer on real clips, for the benchmark to score.

    python bench/real_footage/dump.py --checkout /work/wt-base --out DIR CLIP [CLIP ...]

Runs as a file, not as ``-m``, so that it imports ``faceanalysis`` from ``--checkout`` (put first on ``sys.path``),
not from the tree it lives in: an older checkout, which has no ``bench.real_footage``, is scored with the same
code path as this one. It uses nothing of the benchmark itself.

The path is the one ``POST /api/v2/analyze?timeline=true`` takes for an uploaded video: a ``VideoSource`` over the
file, ``FaceAnalyzer.analyse_source`` with the default ``Settings``, then ``v2_json``. No HTTP server is
started. Each answer is written to ``DIR/<clip name>.json`` with a ``bench`` entry added: frames read, seconds of
analysis (models already loaded and warmed), frames/s, the load average and the checkout's git commit.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

log = logging.getLogger("real_footage.dump")


def commit_of(checkout: Path) -> str:
    try:
        head = subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(checkout), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return head + ("+uncommitted" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def answer_for(analyzer, clip: Path, max_frames: int = 10000) -> dict:
    """The v2 answer (timeline included) of a prepared ``FaceAnalyzer`` on a video file, as the service gives it
    for an upload with ``timeline=true`` (its ``no_face`` error as an answer with no person and an empty timeline, plus
    the error), plus ``bench``: frames read, seconds and frames/s of the analysis."""
    from faceanalysis.pipeline.sources import VideoSource
    from faceanalysis.service.analysis_request import parse_options
    from faceanalysis.service.contract import Input, Limits
    from faceanalysis.writers.v2 import v2_json
    from facecore.errors import AnalysisError

    # Every other option at the service's declared default, as a request that sets only these two gets it.
    options = parse_options({"timeline": "true", "max_frames": max_frames}, Limits())
    started = time.perf_counter()
    source = VideoSource(clip, clip.name, stride=options.stride, max_frames=options.max_frames)
    try:
        result = analyzer.analyse_source(source)
    except AnalysisError as error:
        if error.code != "no_face":
            raise
        # The service's 422 answer: no person, nothing on the timeline; the frames it went through still count.
        answer = {"error": {"code": error.code, "message": str(error)}, "persons": [], "timeline": []}
        frames = source.expected or 0
    else:
        answer = v2_json(result, Input(kind="video", name=clip.name, fps=source.fps), options)
        frames = answer["meta"]["frames"]["read"]
    seconds = time.perf_counter() - started
    answer["bench"] = {"frames": frames, "seconds": round(seconds, 3), "fps": round(frames / seconds, 3)}
    return answer


def _setting(text: str) -> tuple[str, object]:
    """``FIELD=VALUE`` as (field, value), the value read as JSON when it is JSON (numbers, true, false)."""
    field, _, value = text.partition("=")
    try:
        return field, json.loads(value)
    except json.JSONDecodeError:
        return field, value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkout", type=Path, required=True, help="the tree whose faceanalysis answers")
    parser.add_argument("--out", type=Path, required=True, help="folder for the answer JSONs")
    parser.add_argument("--max-frames", type=int, default=10000)
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="a setting other than its default (e.g. min_confidence=0.7), for comparing choices")
    parser.add_argument("clips", nargs="+", type=Path, help="video files (.mp4 .avi .mov .gif ...)")
    args = parser.parse_args(argv)
    checkout = args.checkout.resolve()
    sys.path.insert(0, str(checkout))
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    import faceanalysis
    from faceanalysis.pipeline.analyzer import FaceAnalyzer
    if not Path(faceanalysis.__file__).resolve().is_relative_to(checkout):
        raise SystemExit(f"faceanalysis came from {faceanalysis.__file__}, not from {checkout}")

    analyzer = FaceAnalyzer(**dict(_setting(text) for text in args.set)).prepare()
    commit = commit_of(checkout)
    args.out.mkdir(parents=True, exist_ok=True)
    for clip in args.clips:
        answer = answer_for(analyzer, clip, args.max_frames)
        frames, seconds = answer["bench"]["frames"], answer["bench"]["seconds"]
        answer["bench"].update(checkout=str(checkout), commit=commit, settings=args.set,
                               loadavg=Path("/proc/loadavg").read_text().split()[:3]
                               if Path("/proc/loadavg").exists() else None)
        (args.out / f"{clip.name}.json").write_text(json.dumps(answer))
        log.info("%s: %d frames, %d persons, %.1f s (%.2f frames/s)", clip.name, frames, len(answer["persons"]),
                 seconds, frames / seconds)


if __name__ == "__main__":
    main()
