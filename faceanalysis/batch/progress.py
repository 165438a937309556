"""What the command shows while it runs (a progress bar on a terminal, a line per input otherwise, on stderr) and
the paragraph it ends with (on stdout)."""

from __future__ import annotations

import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TextIO

from .tables import DONE

BAR_WIDTH = 28


@dataclass
class Tally:
    """What a run did, counted as inputs finish."""
    total: int
    skipped: int = 0                 # already done with the same content and settings: not analysed again
    skipped_failed: int = 0          # of those, failed before for a reason the content decides (run.PERMANENT)
    done: int = 0
    failed: Counter = field(default_factory=Counter)     # error code -> inputs
    frames: int = 0                  # frames read by the inputs analysed in this run
    started: float = field(default_factory=time.perf_counter)
    startup_seconds: float | None = None     # Ray's start (local) or connection (cluster)
    where: str = ""                  # "locally" or "on the cluster at ADDR"
    workers: int = 0

    @property
    def finished(self) -> int:
        return self.skipped + self.done + sum(self.failed.values())

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def add(self, row: dict) -> None:
        if row["status"] == DONE:
            self.done += 1
            self.frames += row["frames_read"] or 0
        else:
            self.failed[row["error_code"]] += 1


class ProgressDisplay:
    """The run's progress on ``stream`` (stderr): a bar on a terminal, else one line per input."""

    def __init__(self, tally: Tally, stream: TextIO | None = None) -> None:
        self.tally = tally
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self._analysed_from = tally.finished        # inputs skipped before anything ran do not speed up the ETA

    def finished(self, name: str, row: dict | None) -> None:
        """One input finished: ``row`` is its inputs row, or None when it was found unchanged."""
        tally = self.tally
        if row is None:
            tally.skipped += 1
        else:
            tally.add(row)
        if self.tty:
            self._draw()
        else:
            what = "unchanged" if row is None else (
                f"{plural(row['frames_read'], 'frame')}, {plural(row['persons'], 'person')}, {row['seconds']:.1f} s"
                if row["status"] == DONE else f"failed: {row['error_code']}: {row['error_message']}")
            print(f"[{tally.finished}/{tally.total}] {name}: {what}", file=self.stream, flush=True)

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()

    def _draw(self) -> None:
        tally = self.tally
        share = tally.finished / tally.total if tally.total else 1.0
        filled = int(share * BAR_WIDTH)
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        rate = tally.frames / tally.elapsed if tally.elapsed > 0 else 0.0
        analysed = tally.finished - self._analysed_from
        left = (tally.total - tally.finished) * tally.elapsed / analysed if analysed else None
        eta = _clock(left) + " left" if left is not None else "--:-- left"
        self.stream.write(f"\r[{bar}] {tally.finished}/{tally.total} inputs  {rate:5.1f} frames/s  {eta}  ")
        self.stream.flush()


def summary(tally: Tally, folder: str, rows: dict[str, int], csv: bool) -> str:
    """The run in one paragraph: inputs done, failed by code, frames and frames/s, where the tables are."""
    analysed = tally.done + sum(tally.failed.values())
    parts = [f"{plural(tally.total, 'input')}: {tally.done} done"]
    if tally.failed:
        codes = ", ".join(f"{code} {count}" for code, count in sorted(tally.failed.items()))
        parts.append(f"{sum(tally.failed.values())} failed ({codes})")
    if tally.skipped:
        parts.append(f"{tally.skipped} already done and not analysed again")
    if tally.skipped_failed:
        parts.append(f"{tally.skipped_failed} of them failed before with the same content (no face, not a "
                     "video...): --retry-failed tries them again")
    text = ", ".join(parts) + "."
    if analysed:
        rate = tally.frames / tally.elapsed if tally.elapsed > 0 else 0.0
        startup = f", Ray ready in {tally.startup_seconds:.1f} s" if tally.startup_seconds is not None else ""
        text += (f" Analysed {analysed} {tally.where} with {plural(tally.workers, 'worker')}"
                 f": {tally.frames:,} frames in {tally.elapsed:.1f} s{startup}, {rate:.1f} frames/s.")
    tables = ", ".join(f"{name}.parquet ({plural(count, 'row')})" for name, count in rows.items())
    text += f" Tables in {folder}: {tables}" + (", with CSV copies." if csv else ".")
    return text


def plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def _clock(seconds: float) -> str:
    minutes, second = divmod(int(seconds + 0.5), 60)
    hours, minute = divmod(minutes, 60)
    return f"{hours}:{minute:02d}:{second:02d}" if hours else f"{minute}:{second:02d}"
