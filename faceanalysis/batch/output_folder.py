"""The output folder: one part folder per input, written as soon as the input is done; the tables at the end.

    DIR/persons.parquet, inputs.parquet, frames.parquet (--timeline), *.csv (--csv)    the last run's inputs
    DIR/parts/<part id>/inputs.parquet, persons.parquet, frames.parquet               one input's rows
    DIR/.lock                                                                         held while a run writes

A part folder is written under a temporary name and renamed into place, so a part is whole or absent: a kill
loses only the inputs in flight. There is one part folder per input path, so a row can never be there twice;
a new result replaces the old one. The tables are rebuilt from the parts at the end of every run, for the
run's inputs; parts of other inputs stay, so naming those inputs again later costs nothing.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from facecore.errors import AnalysisError

from .discovery import BatchInput
from .tables import FRAMES, INPUTS, PERSONS, InputRows, flat

TABLES = {"persons": PERSONS, "inputs": INPUTS, "frames": FRAMES}
# Bookkeeping for the next run, not a result: kept in the parts, left out of the merged inputs table.
INTERNAL_COLUMNS = ("stat_signature",)
TMP, OLD = ".tmp-", ".old-"


def invalid_output(message: str) -> AnalysisError:
    return AnalysisError("invalid_output", message)


class OutputFolder:
    """``with OutputFolder(path) as out:`` holds the folder's lock for one run."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path).expanduser().absolute()
        self.parts = self.path / "parts"
        self._lock = None
        self._created = False           # the folder did not exist before this run

    def __enter__(self) -> "OutputFolder":
        if self.path.exists() and not self.path.is_dir():
            raise invalid_output(f"--out {str(self.path)!r} is a file, not a folder: name a folder (it is "
                                 "created if missing)")
        self._created = not self.path.exists()
        try:
            self.parts.mkdir(parents=True, exist_ok=True)
            self._lock = open(self.path / ".lock", "a")
        except OSError as error:
            raise invalid_output(f"cannot write to --out {str(self.path)!r}: {error.strerror or error}") from None
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock.close()
            raise AnalysisError("output_busy", f"another batch run is writing to {str(self.path)!r}; wait for it "
                                "or choose another --out") from None
        self._recover()
        return self

    def __exit__(self, *exc) -> None:
        if self._lock is None:
            return
        # A run refused after the folder was opened (e.g. more workers than the cluster has) leaves nothing
        # behind: no empty parts/, and no folder it made itself.
        try:
            self.parts.rmdir()          # only when empty
        except OSError:
            pass
        if self._created and not self.parts.exists() and [entry.name for entry in self.path.iterdir()] == [".lock"]:
            (self.path / ".lock").unlink(missing_ok=True)
            self._lock.close()
            self._lock = None
            try:
                self.path.rmdir()
            except OSError:
                pass
            return
        self._lock.close()              # closing releases the lock
        self._lock = None

    def _recover(self) -> None:
        """Finish what a killed run left half done: a part moved aside but not replaced goes back."""
        for entry in self.parts.iterdir():
            if entry.name.startswith(OLD):
                home = self.parts / entry.name[len(OLD):].split("-")[0]
                if home.exists():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.rename(home)
            elif entry.name.startswith(TMP):
                shutil.rmtree(entry, ignore_errors=True)

    def part_row(self, item: BatchInput) -> dict | None:
        """The inputs row of the input's part, or None when it has none."""
        path = self.parts / item.part_id / "inputs.parquet"
        if not path.is_file():
            return None
        rows = pq.read_table(path).to_pylist()
        return rows[0] if rows else None

    def write(self, item: BatchInput, rows: InputRows) -> None:
        """Put the input's rows in place of whatever its part held, all at once."""
        tables = {"inputs": rows.inputs, "persons": rows.persons, "frames": rows.frames}
        staging = self.parts / f"{TMP}{item.part_id}-{uuid.uuid4().hex[:8]}"
        staging.mkdir()
        for name, table in tables.items():
            if table is not None:
                pq.write_table(table.cast(TABLES[name]), staging / f"{name}.parquet")
        self._swap_in(item.part_id, staging)

    def refresh_stat(self, item: BatchInput, stat: str | None) -> None:
        """The input's files were touched but their content is the same: remember the new signature."""
        home = self.parts / item.part_id
        staging = self.parts / f"{TMP}{item.part_id}-{uuid.uuid4().hex[:8]}"
        shutil.copytree(home, staging)
        inputs = pq.read_table(staging / "inputs.parquet")
        column = inputs.schema.get_field_index("stat_signature")
        inputs = inputs.set_column(column, "stat_signature", pa.array([stat], pa.string()))
        pq.write_table(inputs, staging / "inputs.parquet")
        self._swap_in(item.part_id, staging)

    def _swap_in(self, part_id: str, staging: Path) -> None:
        home = self.parts / part_id
        aside = self.parts / f"{OLD}{part_id}-{uuid.uuid4().hex[:8]}"
        if home.exists():
            home.rename(aside)
        staging.rename(home)
        shutil.rmtree(aside, ignore_errors=True)

    def merge(self, items: list[BatchInput], timeline: bool, csv: bool) -> dict[str, int]:
        """Write the tables for ``items`` from their parts (rows in the order of ``items``); rows per table."""
        names = ["persons", "inputs"] + (["frames"] if timeline else [])
        counts = {}
        for name in names:
            schema = TABLES[name]
            if name == "inputs":
                schema = pa.schema([field for field in schema if field.name not in INTERNAL_COLUMNS])
            counts[name] = self._merge_table(name, schema, items)
        for name in TABLES:
            stale = [] if name in names else [f"{name}.parquet", f"{name}.csv"]
            if not csv or name not in names:
                stale.append(f"{name}.csv")
            for file_name in stale:
                (self.path / file_name).unlink(missing_ok=True)
        if csv:
            for name in names:
                self._csv_copy(name)
        return counts

    def _merge_table(self, name: str, schema: pa.Schema, items: list[BatchInput]) -> int:
        target = self.path / f"{name}.parquet"
        staging = self.path / f".{name}.parquet.tmp"
        count = 0
        # One part at a time, so merging a long run's timeline needs the memory of one input's rows.
        with pq.ParquetWriter(staging, schema) as writer:
            for item in items:
                part = self.parts / item.part_id / f"{name}.parquet"
                if part.is_file():
                    table = pq.read_table(part).select(schema.names).cast(schema)
                    writer.write_table(table)
                    count += table.num_rows
        os.replace(staging, target)
        return count

    def _csv_copy(self, name: str) -> None:
        source = pq.ParquetFile(self.path / f"{name}.parquet")
        staging = self.path / f".{name}.csv.tmp"
        writer = None
        try:
            # One batch at a time, nested columns as JSON (CSV has no nested types).
            for batch in source.iter_batches():
                table = flat(pa.Table.from_batches([batch]))
                writer = writer or pa_csv.CSVWriter(staging, table.schema)
                writer.write_table(table)
            if writer is None:
                pa_csv.write_csv(flat(source.schema_arrow.empty_table()), staging)
        finally:
            if writer is not None:
                writer.close()
        os.replace(staging, self.path / f"{name}.csv")
