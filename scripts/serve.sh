#!/usr/bin/env bash
# Set up (first time) and start the service on 127.0.0.1:6009. Extra arguments go to flaskMain.py.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec "${VENV:-.venv}/bin/python" flaskMain.py "$@"
