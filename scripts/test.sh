#!/usr/bin/env bash
# Set up (first time, with the test tools) and run the whole test suite. Extra arguments go to pytest.
# The suite runs in TEST_WORKERS processes (pytest-xdist, default 2; 0 runs it in this process), each taking
# whole test files, so that a file's module fixtures (a server, a batch run) are built once. Most of the
# suite waits on servers and subprocesses, so two processes shorten it even on 2 cores.
# The browser test needs Debian's Chromium (/usr/bin/chromium: `apt-get install chromium`); without it
# that test skips and says so.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
workers=${TEST_WORKERS:-2}
if [ "$workers" = 0 ]; then
  exec "${VENV:-.venv}/bin/python" -m pytest "$@"
fi
exec "${VENV:-.venv}/bin/python" -m pytest -n "$workers" --dist loadfile "$@"
