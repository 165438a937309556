"""The driver's side of Ray: start or join a cluster, run the inputs through a pool of analyzer actors with Ray
Data, hand each input's result back as soon as it is done.

Local (no address): Ray starts inside this process on this machine, bound to a loopback address other than
127.0.0.1 (Ray 2.60 replaces 127.0.0.1 by the machine's network address; other loopback addresses are kept),
without the dashboard, so a local run opens no connection beyond the machine and nothing needs starting by
hand. With an address, the run joins that cluster as it is configured.

Ray Data streams the inputs, one per block, to a fixed pool of actors (``worker.Analyser``), one input in flight
per actor so that a long video never holds up short inputs queued behind it. Ray restarts an actor whose process
dies and retries its input, up to ``ATTEMPTS`` times in all; an input that has killed its worker that often is
given up (Ray Data drops its block), and the caller reports it as failed.
"""

from __future__ import annotations

import json
import logging
import os
import re
import select
import socket
import sys
import threading
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from facecore.errors import AnalysisError

from .spec import RunSpec
from .worker import Analyser

LOCAL_NODE_IP = "127.0.0.2" if sys.platform.startswith("linux") else "127.0.0.1"   # only Linux routes all of 127/8
ATTEMPTS = 3
CONNECT_TIMEOUT_S = 5
# An analyzer pipelines decoding and detection with the per-face networks: it keeps about two cores busy.
CORES_PER_ANALYZER = 2


@dataclass(frozen=True)
class Cluster:
    address: str | None            # None: started locally by this run
    startup_seconds: float
    nodes: int
    cpus: float
    gpus: float

    def default_workers(self, gpus_per_worker: float) -> int:
        if gpus_per_worker > 0:
            return max(1, int(self.gpus // gpus_per_worker))
        return max(self.nodes, int(self.cpus // CORES_PER_ANALYZER))


def unreachable(address: str, why: str) -> AnalysisError:
    return AnalysisError("cluster_unreachable", f"no Ray cluster answers at {address!r} ({why}); start one with "
                         "`ray start --head`, or leave out --address and RAY_ADDRESS to run on this machine")


def connect(address: str | None) -> Cluster:
    """Start Ray here (``address`` None) or join the cluster at ``address``; raises ``cluster_unreachable``."""
    # Ray reads both when it is imported. It would otherwise report usage to its makers (this project sends
    # nothing anywhere by itself), and warn that a new local cluster gets token authentication, which is what
    # it does by default anyway.
    if "ray" not in sys.modules:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        if address is None:
            os.environ.setdefault("RAY_AUTH_MODE", "token")
    import ray

    started = time.perf_counter()
    quiet = {"log_to_driver": False, "logging_level": logging.WARNING}
    if address is None:
        try:
            # "local": a Ray of the run's own, even where another one was started on this machine (ray.init()
            # without an address would join the last one `ray start` made).
            # Ray runs workers at niceness 15 by default: on a machine where anything else runs, the analyzers
            # would get only its leftovers. Here they are the work the user asked for, as in the service.
            ray.init(address="local", _node_ip_address=LOCAL_NODE_IP, include_dashboard=False,
                     _system_config={"worker_niceness": 0}, **quiet)
        except (ConnectionError, RuntimeError, OSError, ValueError) as error:
            raise AnalysisError("ray_failed", f"Ray could not start on this machine: {_first_line(error)}") from None
    else:
        _check_reachable(address)
        try:
            ray.init(address=address, **quiet)
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise unreachable(address, _first_line(error)) from None
    resources = ray.cluster_resources()
    nodes = sum(1 for node in ray.nodes() if node.get("Alive"))
    return Cluster(address, time.perf_counter() - started, nodes, resources.get("CPU", 0.0),
                   resources.get("GPU", 0.0))


def _check_reachable(address: str) -> None:
    """Fail in seconds, with a plain message, where Ray would wait for a minute and then explain less."""
    if address in ("auto", "local"):
        return          # Ray's own ways of finding a cluster started on this machine
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise unreachable(address, "expected HOST:PORT, e.g. 10.0.0.5:6379")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as error:
        raise unreachable(address, error.strerror or str(error) or type(error).__name__) from None


# Lines Ray's C++ side writes straight to the driver's stderr that say nothing to act on. Ray Data hands every
# actor its function and context as object-store references, so with restarts on (ATTEMPTS) the driver's core
# worker logs, at level E, once per actor and run, that the actor "has constructor arguments in the object
# store": those references live as long as the run, which is all the message asks for.
NOISE = (re.compile(rb"has constructor arguments in the object store"),)
HELD_AT_MOST_S = 0.2        # a partial line that may be the start of a Ray log line waits this long for its end


@contextmanager
def quiet_native_stderr(noise=NOISE) -> Iterator[None]:
    """Drop ``noise`` lines that native code writes to file descriptor 2 while the block runs; everything else
    passes through as it comes. Python's own writes go the same way, so the progress bar is unchanged."""
    try:
        sys.stderr.flush()
        target = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        yield                   # no real stderr (a test's capture): nothing native can reach the user
        return
    saved = os.dup(target)
    read_end, write_end = os.pipe()
    os.dup2(write_end, target)
    os.close(write_end)
    thread = threading.Thread(target=_forward, args=(read_end, saved, noise), name="stderr-filter", daemon=True)
    thread.start()
    try:
        yield
    finally:
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(saved, target)  # the pipe's last writer here goes; the thread ends when Ray's children close it
        thread.join(timeout=2)


def _forward(read_end: int, out: int, noise) -> None:
    pending = b""
    try:
        while True:
            ready, _, _ = select.select([read_end], [], [], HELD_AT_MOST_S)
            if not ready:
                if pending:
                    _write(out, pending)
                    pending = b""
                continue
            chunk = os.read(read_end, 65536)
            if not chunk:
                break
            pending += chunk
            lines = re.split(rb"(?<=[\r\n])", pending)
            pending = lines.pop() if not lines[-1].endswith((b"\r", b"\n")) else b""
            passed = b"".join(line for line in lines if not any(pattern.search(line) for pattern in noise))
            # A partial line that is not a Ray log line ("[2026-...") goes at once: a progress bar's "\r[####".
            if pending and not re.match(rb"\[(\d|$)", pending):
                passed += pending
                pending = b""
            if passed:
                _write(out, passed)
        if pending:
            _write(out, pending)
    finally:
        os.close(read_end)
        os.close(out)


def _write(fd: int, data: bytes) -> None:
    try:
        while data:
            data = data[os.write(fd, data):]
    except OSError:
        pass


def shutdown() -> None:
    import ray

    ray.shutdown()


def run(tasks: list[dict], spec: RunSpec, workers: int, gpus_per_worker: float) -> Iterator[dict]:
    """Each input's result row (``worker.RESULT_COLUMNS``) as it is done, in the order they finish."""
    import ray
    from ray.data import ActorPoolStrategy, DataContext

    context = DataContext.get_current()
    context.enable_progress_bars = False          # the command draws its own
    context.print_on_execution_start = False
    # A block whose actor died ATTEMPTS times is dropped instead of failing the run; the input is reported.
    context.max_errored_blocks = -1
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    # It warns that the progress bars we turned off are off.
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)
    items = [{"task": json.dumps(task)} for task in tasks]
    dataset = ray.data.from_items(items, override_num_blocks=len(items))
    with warnings.catch_warnings():
        # Retries are still set this way in the pinned Ray 2.60 (the warning is about Ray 2.64); without them an
        # input that crashes its worker every time would be retried for ever.
        warnings.simplefilter("ignore", DeprecationWarning)
        dataset = dataset.map_batches(
            Analyser, fn_constructor_kwargs={"spec": spec.to_json()}, batch_size=1, batch_format="numpy",
            compute=ActorPoolStrategy(size=workers, max_tasks_in_flight_per_actor=1),
            num_cpus=1, num_gpus=gpus_per_worker or None, max_restarts=-1, max_task_retries=ATTEMPTS - 1)
    try:
        yield from dataset.iter_rows()
    except ray.exceptions.RayError as error:
        # E.g. actors that die while loading their models, again and again (out of memory on a node).
        raise AnalysisError("ray_failed", f"Ray stopped the run: {_first_line(error)}. The inputs done so far are "
                            "kept: run the same command again to go on") from error


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
