#!/usr/bin/env bash
# Set up (first time, with the test tools) and run the whole test suite. Extra arguments go to pytest.
# The browser test needs Debian's Chromium (/usr/bin/chromium: `apt-get install chromium`); without it
# that test skips and says so.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
exec "${VENV:-.venv}/bin/python" -m pytest "$@"
