"""``faceanalysis.cli.import_tensorflow``: what TensorFlow writes to the stderr file descriptor while it is imported
is hidden when TF_CPP_MIN_LOG_LEVEL asks for quiet, shown otherwise, and shown when the import fails.

A stand-in ``tensorflow`` module (first on the path of a fresh interpreter) writes a line to file descriptor 2
while it is imported, as TensorFlow 2.21's absl start-up lines do on processors with AVX-512."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(tmp_path: Path, level: str | None, fails: bool = False) -> subprocess.CompletedProcess:
    fake = tmp_path / "fake"
    fake.mkdir(exist_ok=True)
    (fake / "tensorflow.py").write_text("import os\nos.write(2, b'start-up chatter\\n')\n"
                                        + ("raise ImportError('broken install')\n" if fails else "VERSION = 'fake'\n"))
    script = ("import sys\nsys.path.insert(0, %r)\nfrom faceanalysis.cli import import_tensorflow\n"
              "print(import_tensorflow().VERSION)\n" % str(fake))
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    if level is not None:
        env["TF_CPP_MIN_LOG_LEVEL"] = level
    return subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("level", ["2", "3"])
def test_quiet_levels_hide_what_the_import_writes(tmp_path, level):
    done = run(tmp_path, level)
    assert done.returncode == 0 and done.stdout.strip() == "fake" and done.stderr == ""


@pytest.mark.parametrize("level", [None, "0", "1", "not a number"])
def test_other_levels_show_it(tmp_path, level):
    done = run(tmp_path, level)
    assert done.returncode == 0 and done.stdout.strip() == "fake" and done.stderr == "start-up chatter\n"


def test_a_failed_import_shows_what_was_hidden_and_raises(tmp_path):
    done = run(tmp_path, "3", fails=True)
    assert done.returncode != 0
    assert "start-up chatter" in done.stderr and "ImportError: broken install" in done.stderr
