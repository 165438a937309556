"""A real server process (``flaskMain.py``) for the durability, shutdown, crash and access tests: its own data
folder and flags, a port the system chose (``--port 0 --port-file``), its log in a file, and a small HTTP client.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
import zipfile
from pathlib import Path

from conftest import REPO, SAMPLES

START_TIMEOUT_S = 240


def tiny_samples(root: Path, frames: int = 3) -> Path:
    """samples/ with seqA and seqB cut to their first ``frames`` frames, plus seqA whole as ``seqA_full``."""
    for name, source, count in (("seqA", "seqA", frames), ("seqB", "seqB", frames), ("seqA_full", "seqA", None)):
        (root / name).mkdir(parents=True)
        for frame in sorted((SAMPLES / source).glob("*.jpg"))[:count]:
            shutil.copy(frame, root / name / frame.name)
    return root


def zip_of_frames(sample: str = "seqB", count: int = 3) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted((SAMPLES / sample).glob("*.jpg"))[:count]:
            archive.writestr(path.name, path.read_bytes())
    return buffer.getvalue()


def multipart(field: str, name: str, data: bytes, fields: dict | None = None) -> tuple[bytes, dict]:
    boundary = uuid.uuid4().hex
    body = io.BytesIO()
    for key, value in (fields or {}).items():
        body.write(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{key}\"\r\n\r\n{value}\r\n".encode())
    body.write(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{name}\"\r\n"
               "Content-Type: application/octet-stream\r\n\r\n".encode())
    body.write(data + b"\r\n")
    body.write(f"--{boundary}--\r\n".encode())
    return body.getvalue(), {"Content-Type": f"multipart/form-data; boundary={boundary}"}


class Answer:
    def __init__(self, status: int, body: bytes, headers) -> None:
        self.status, self.raw, self.headers = status, body, headers

    @property
    def json(self):
        return json.loads(self.raw)


class Server:
    """``flaskMain.py --data-dir DATA`` on loopback; ``start()`` waits until ``/readyz`` is 200."""

    def __init__(self, data_dir: Path, workdir: Path, samples: Path | None = None, *flags: str,
                 env: dict | None = None, name: str = "server") -> None:
        self.data_dir, self.workdir, self.samples, self.flags = data_dir, workdir, samples, flags
        self.env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1", **(env or {})}
        self.name = name
        self.starts = 0
        self.process: subprocess.Popen | None = None
        self.url = ""
        self.token: str | None = None

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}-{self.starts}.log"

    def command(self) -> list[str]:
        command = [sys.executable, str(REPO / "flaskMain.py"), "--port", "0", "--port-file",
                   str(self.workdir / f"{self.name}.port"), "--data-dir", str(self.data_dir), "--threads", "8"]
        if self.samples is not None:
            command += ["--samples", str(self.samples)]
        return command + list(self.flags)

    def launch(self) -> subprocess.Popen:
        """Start the process without waiting for it."""
        self.starts += 1
        (self.workdir / f"{self.name}.port").unlink(missing_ok=True)
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(self.command(), cwd=REPO, env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT)
        return self.process

    def start(self) -> "Server":
        self.launch()
        return self.wait_ready()

    def wait_ready(self) -> "Server":
        port_file = self.workdir / f"{self.name}.port"
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited with {self.process.returncode}: {self.log()[-3000:]}")
            if port_file.exists():
                self.url = f"http://127.0.0.1:{port_file.read_text().strip()}"
                try:
                    if self.get("/readyz", timeout=2).status == 200:
                        return self
                except OSError:
                    pass
            time.sleep(0.2)
        self.process.kill()
        raise AssertionError(f"server not ready in {START_TIMEOUT_S} s: {self.log()[-3000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                timeout: float = 60) -> Answer:
        headers = dict(headers or {})
        if self.token is not None:
            headers.setdefault("Authorization", f"Bearer {self.token}")
        request = urllib.request.Request(self.url + path, data=body, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return Answer(response.status, response.read(), response.headers)
        except urllib.error.HTTPError as error:
            return Answer(error.code, error.read(), error.headers)

    def get(self, path: str, **kwargs) -> Answer:
        return self.request("GET", path, **kwargs)

    def post_json(self, path: str, payload: dict, **kwargs) -> Answer:
        return self.request("POST", path, json.dumps(payload).encode(), {"Content-Type": "application/json"},
                            **kwargs)

    def post_file(self, path: str, field: str, name: str, data: bytes, fields: dict | None = None) -> Answer:
        body, headers = multipart(field, name, data, fields)
        return self.request("POST", path, body, headers)

    def wait_for(self, job_id: str, timeout: float = 180) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answer = self.get(f"/api/v2/jobs/{job_id}")
            assert answer.status == 200, (answer.status, answer.raw[:300])
            if answer.json["status"] in ("done", "failed"):
                return answer.json
            time.sleep(0.1)
        raise AssertionError(f"job {job_id} did not finish in {timeout} s")

    def signal(self, number: int) -> None:
        self.process.send_signal(number)

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM and wait; the exit status."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    def kill(self) -> None:
        self.process.kill()             # SIGKILL: no handler runs, nothing is flushed or closed
        self.process.wait()


def tracebacks(log: str) -> int:
    """Tracebacks in a server log, but for logging's own reports of a message it could not format."""
    return log.count("Traceback") - log.count("--- Logging error ---")


def without_timings(answer: dict) -> dict:
    """An analysis answer without what differs on every run by nature (wall-clock timings)."""
    return {**answer, "meta": {**answer["meta"], "timings_ms": None}}


def data_files(data_dir: Path) -> dict[str, list[str]]:
    """What the data folder holds besides the store: uploads, temporary folders, instance lock files."""
    return {part: sorted(path.name for path in (data_dir / part).iterdir()) if (data_dir / part).is_dir() else []
            for part in ("uploads", "tmp", "instances")}
