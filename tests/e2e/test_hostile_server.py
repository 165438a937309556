"""A real server (``flaskMain.py``, waitress) against hostile clients on raw sockets (docs/hardening.md): a body
refused from its headers before any of it is read, waitress's own errors in the service's JSON shape, 200 slow
clients that neither starve ``/healthz`` nor keep their connections, ``/healthz`` answered while every worker
thread waits on an analysis, an immutable store refused at start-up and reported by ``/readyz``, and a signal
during model loading that exits 0 leaving nothing behind.

One server (``--header-timeout 2``) serves the probes; the start-up tests start processes of their own.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import REPO
from faceanalysis.service.datafolder import DataFolder
from faceanalysis.service.job_store import JobStore
from faceanalysis.service.security import SECURITY_HEADERS
from service_process import Server, tiny_samples, tracebacks

TOKEN = "hostile-test-token-0123456789abcdef"
HEADER_TIMEOUT_S = 2
SLOW_CLIENTS = 200


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("hostile")
    token_file = workdir / "token"
    token_file.write_text(TOKEN)
    token_file.chmod(0o600)
    server = Server(workdir / "data", workdir, tiny_samples(workdir / "samples"), "--api-token-file",
                    str(token_file), "--header-timeout", str(HEADER_TIMEOUT_S)).start()
    server.port = int(server.url.rsplit(":", 1)[1])
    yield server
    assert server.stop() == 0


def exchange(port: int, raw: bytes, timeout: float = 10) -> tuple[int, dict, bytes]:
    """Send ``raw`` on a fresh connection and read the answer until the server closes it or ``timeout``."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(raw)
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except (socket.timeout, ConnectionResetError):
            pass
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1."), f"no answer within {timeout} s: {data[:200]!r}"
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def json_error(answer: tuple[int, dict, bytes], status: int, code: str) -> str:
    got, headers, body = answer
    assert got == status, body[:300]
    assert headers["content-type"] == "application/json"
    for name, value in SECURITY_HEADERS.items():
        assert headers[name.lower()] == value
    error = json.loads(body)["error"]
    assert set(error) == {"code", "message"} and error["code"] == code
    return error["message"]


def declared_post(length: int, *headers: str) -> bytes:
    """The headers of a POST declaring ``length`` bytes of body, and none of the body."""
    return ("\r\n".join(["POST /api/v2/jobs HTTP/1.1", "Host: x", "Content-Type: application/octet-stream",
                         f"Content-Length: {length}", *headers]) + "\r\n\r\n").encode()


# --- 1. a body is judged by its headers -----------------------------------------------------------------------

def test_a_body_without_the_token_is_refused_before_any_of_it_is_read(guarded):
    # 1 GB declared, not a byte of it sent: the answer can only come from the headers.
    message = json_error(exchange(guarded.port, declared_post(1024 ** 3)), 401, "unauthorized")
    assert "before it reads a request body" in message
    # Chunked, the same.
    raw = b"POST /api/v2/jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    json_error(exchange(guarded.port, raw), 401, "unauthorized")


def test_a_body_over_the_limit_is_refused_from_its_declared_length(guarded):
    limit = 256 * 1024 ** 2
    message = json_error(exchange(guarded.port, declared_post(limit + 1, f"Authorization: Bearer {TOKEN}")),
                         413, "request_too_large")
    assert message == f"the request body is {limit + 1} bytes, more than the limit of {limit}"


def test_a_body_at_the_limit_is_read(guarded):
    # Declared at the limit exactly, with the token, and cut short: the server waits for it (no answer) until
    # the client gives up, rather than refusing it.
    with socket.create_connection(("127.0.0.1", guarded.port), timeout=1) as sock:
        sock.sendall(declared_post(256 * 1024 ** 2, f"Authorization: Bearer {TOKEN}"))
        with pytest.raises(socket.timeout):
            sock.recv(1)


def test_a_request_without_a_body_goes_on_to_the_app(guarded):
    answer = exchange(guarded.port, b"GET /api/v2/samples HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert "needs its API token: send" in json_error(answer, 401, "unauthorized")


# --- 7. waitress's own answers --------------------------------------------------------------------------------

def test_waitress_own_errors_have_the_json_shape_and_the_security_headers(guarded):
    json_error(exchange(guarded.port, b"GET\x01 / HTTP/1.1\r\nHost: x\r\n\r\n"), 400, "bad_request")
    big = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 300_000 + b"\r\n\r\n"
    json_error(exchange(guarded.port, big), 431, "request_header_fields_too_large")
    json_error(exchange(guarded.port, b"POST /api/v2/jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"),
               501, "not_implemented")


# --- 2. slow clients ------------------------------------------------------------------------------------------

def healthz(port: int, timeout: float = 3.0) -> dict:
    # 3 s: far less than the analyses queued behind the worker threads take, so an answer proves /healthz is not
    # queued behind them, with room for a loaded CI machine to schedule the server's I/O thread.
    raw = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    status, headers, body = exchange(port, raw, timeout=timeout)
    assert status == 200 and json.loads(body) == {"status": "ok"}
    return headers


def test_slow_clients_neither_starve_healthz_nor_keep_their_connections(guarded):
    slow = []
    try:
        for _ in range(SLOW_CLIENTS):
            sock = socket.create_connection(("127.0.0.1", guarded.port), timeout=5)
            sock.sendall(b"POST /api/v2/jobs HTTP/1.1\r\nHost: x\r\n")
            slow.append(sock)
        closed, line = set(), 0
        deadline = time.monotonic() + HEADER_TIMEOUT_S + 4      # the deadline, and two I/O loop rounds to spare
        while time.monotonic() < deadline and len(closed) < len(slow):
            line += 1
            for number, sock in enumerate(slow):
                if number not in closed:
                    try:
                        sock.sendall(f"X-Slow-{line}: 1\r\n".encode())
                    except OSError:
                        closed.add(number)
            # Liveness answers at once (a 1 s socket timeout) while 200 connections are held open.
            healthz(guarded.port)
            time.sleep(0.3)
        # A connection the server closed shows as end-of-file (or a reset) to the next read.
        for number, sock in enumerate(slow):
            if number not in closed:
                sock.settimeout(0.5)
                try:
                    if sock.recv(1) == b"":
                        closed.add(number)
                except ConnectionResetError:
                    closed.add(number)
                except socket.timeout:
                    pass
        assert len(closed) == SLOW_CLIENTS
    finally:
        for sock in slow:
            sock.close()


def test_a_connection_that_sends_nothing_is_closed_after_the_header_deadline(guarded):
    silent = [socket.create_connection(("127.0.0.1", guarded.port), timeout=HEADER_TIMEOUT_S + 4) for _ in range(5)]
    try:
        for sock in silent:
            try:
                assert sock.recv(1) == b""          # end of file: the server closed it
            except ConnectionResetError:
                pass
    finally:
        for sock in silent:
            sock.close()


def test_healthz_needs_no_token_and_has_the_security_headers(guarded):
    headers = healthz(guarded.port)
    assert headers["connection"] == "close" and headers["content-security-policy"]


# --- 6. liveness while every worker thread waits on an analysis -----------------------------------------------

def test_healthz_answers_while_every_worker_thread_waits_on_an_analysis(guarded):
    guarded.token = TOKEN
    try:
        # 9 analyses for 8 worker threads (service_process starts --threads 8): each waits for the one set of
        # models, and every thread is taken until the last two are answered.
        with ThreadPoolExecutor(9) as pool:
            answers = [pool.submit(guarded.post_json, "/api/v2/analyze", {"sample": "seqA_full", "max_frames": 10},
                                   timeout=600) for _ in range(9)]
            time.sleep(0.5)
            probes = 0
            while sum(not answer.done() for answer in answers) > 1:
                healthz(guarded.port)
                probes += 1
                time.sleep(0.2)
            assert probes >= 3, "the analyses ended too soon to test anything"
            assert [answer.result().status for answer in answers] == [200] * 9
    finally:
        guarded.token = None


# --- 3. an oversized frame ------------------------------------------------------------------------------------

def test_a_16000_pixel_square_png_sent_as_a_video_is_refused(guarded):
    from checks import png_header_only
    guarded.token = TOKEN
    try:
        answer = guarded.post_file("/api/v2/analyze", "video", "huge.mp4", png_header_only(16000, 16000))
    finally:
        guarded.token = None
    assert answer.status == 413 and answer.json["error"]["code"] == "frame_too_large"


# --- 5. an immutable store ------------------------------------------------------------------------------------

def chattr(flag: str, path: Path) -> bool:
    return subprocess.run(["chattr", flag, str(path)], capture_output=True).returncode == 0


def test_readyz_reports_an_immutable_store_and_recovers(guarded):
    store = guarded.data_dir / "jobs.sqlite3"
    if not chattr("+i", store):
        pytest.skip("chattr +i is not possible here (not root, or not supported by this file system)")
    try:
        answer = guarded.get("/readyz")
        assert answer.status == 503 and answer.json["error"]["code"] == "storage_unavailable"
        assert str(store) in answer.json["error"]["message"]
    finally:
        chattr("-i", store)
    assert guarded.get("/readyz").status == 200


def start(data: Path, *flags: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(REPO / "flaskMain.py"), "--port", "0", "--data-dir", str(data),
                             *flags], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})


def test_the_server_exits_2_naming_an_immutable_store(tmp_path):
    # A store that served before, then made immutable: SQLite alone opens it read-only without a word.
    data = tmp_path / "data"
    store = JobStore.open(DataFolder.open(data, min_free=0))
    store.close()
    store.folder.close()
    store = data / "jobs.sqlite3"
    if not chattr("+i", store):
        pytest.skip("chattr +i is not possible here (not root, or not supported by this file system)")
    try:
        process = start(data)
        output, _ = process.communicate(timeout=120)
    finally:
        chattr("-i", store)
    assert process.returncode == 2, output[-2000:]
    error = json.loads(output.strip().splitlines()[-1])["error"]
    assert error["code"] == "data_folder_unusable"
    assert f"the job store file {store} cannot be written: it is read-only" in error["message"]


# --- 7. a signal while the models load ------------------------------------------------------------------------

@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_the_models_load_exits_0_leaving_nothing(tmp_path, number):
    data = tmp_path / "data"
    process = start(data)
    deadline = time.monotonic() + 60
    while not list((data / "instances").glob("*.lock")):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()[0][-2000:]
        time.sleep(0.02)
    time.sleep(0.5)                     # past the data folder, into the imports and the model loading
    process.send_signal(number)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 0, output[-2000:]
    assert tracebacks(output) == 0, output[-2000:]
    assert f"{signal.Signals(number).name} while starting: stopping" in output
    assert [path.name for path in (data / "instances").iterdir()] == []
    assert [path.name for path in (data / "tmp").iterdir()] == []
