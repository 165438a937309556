"""Tracking benchmark: composed real-face videos with known identities, scored through the HTTP service.

    python -m bench.tracking [--url http://127.0.0.1:6009] [--cache DIR] [--long-cuts 200] [--only NAME ...]

Without ``--url`` it starts this tree's server on a free loopback port. With ``--url`` it scores whatever server
answers there, e.g. an older tree's, so the old and the new tracker are compared by one script. Every video of
``training/tracking_data.py`` is uploaded to ``POST /api/v2/analyze?timeline=true``; each detected face's truth is
the identity of the pane its box centre lies in. Printed per video: faces, true identities, persons answered,
persons per identity, IDF1, seconds and frames/s; then the overall IDF1 and, for the A-B-A-B interview, each
person's age and gender.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import urllib.request
import uuid
from contextlib import nullcontext
from pathlib import Path

from bench.loadtest import serve
from faceanalysis.cli import default_cache
from training.tracking_data import ComposedVideo, compose, fetch_clips
from training.tracking_metrics import idf1, persons_per_identity


def analyse(url: str, video: Path) -> dict:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"video\"; filename=\"{video.name}\"\r\n"
            f"Content-Type: video/x-msvideo\r\n\r\n").encode() + video.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(f"{url}/api/v2/analyze?timeline=true&max_frames=10000", data=body,
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(request, timeout=3600) as response:
        return json.loads(response.read())


def score(video: ComposedVideo, answer: dict) -> dict:
    truth, predicted = [], []
    for entry in answer["timeline"]:
        for face in entry["faces"]:
            truth.append(video.identity_at(entry["frame"], face["box"]))
            predicted.append(face["person"])
    return {"faces": len(truth), "identities": len(video.identities), "persons": len(answer["persons"]),
            "per_identity": persons_per_identity(truth, predicted), "idf1": idf1(truth, predicted),
            "truth": truth, "predicted": predicted}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="score this server instead of starting one")
    parser.add_argument("--cache", type=Path, default=default_cache())
    parser.add_argument("--long-cuts", type=int, default=200, help="shots in the long alternating video")
    parser.add_argument("--only", nargs="*", help="score only these videos")
    parser.add_argument("--json", type=Path, help="also write the table as JSON")
    args = parser.parse_args(argv)
    videos = compose(fetch_clips(args.cache), long_cuts=args.long_cuts)
    if args.only:
        videos = {name: video for name, video in videos.items() if name in args.only}
    rows, truth_all, predicted_all = {}, [], []
    with tempfile.TemporaryDirectory() as folder, (nullcontext(None) if args.url else serve()) as server:
        url = args.url or server.url
        print("| video | frames | faces | identities | persons | persons per identity | IDF1 | s | frames/s |")
        print("|---|---:|---:|---:|---:|---|---:|---:|---:|")
        for name, video in videos.items():
            path = video.write(Path(folder) / f"{name}.avi")
            started = time.perf_counter()
            answer = analyse(url, path)
            seconds = time.perf_counter() - started
            row = score(video, answer)
            truth_all += [f"{name}:{label}" for label in row.pop("truth")]
            predicted_all += [f"{name}:{label}" for label in row.pop("predicted")]
            rows[name] = {**row, "frames": len(video.frames), "seconds": round(seconds, 1),
                          "persons_answer": [{key: person[key] for key in ("id", "age", "gender", "frames_seen")}
                                             for person in answer["persons"]]}
            per = ", ".join(f"{identity} {count}" for identity, count in row["per_identity"].items())
            print(f"| {name} | {len(video.frames)} | {row['faces']} | {row['identities']} | {row['persons']} | {per} "
                  f"| {row['idf1']:.3f} | {seconds:.1f} | {len(video.frames) / seconds:.1f} |", flush=True)
    overall = idf1(truth_all, predicted_all)
    exact = sum(row["persons"] == row["identities"] for row in rows.values())
    print(f"\noverall IDF1 {overall:.3f}; videos answered with exactly their number of identities: {exact}/{len(rows)}")
    if "interview_AB" in rows:
        for person in rows["interview_AB"]["persons_answer"]:
            print(f"interview_AB person {person['id']}: {person['frames_seen']} frames, age "
                  f"{person['age']['value']:.1f}, female {person['gender']['female']:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"overall_idf1": overall, "videos": rows}, indent=1))


if __name__ == "__main__":
    main()
