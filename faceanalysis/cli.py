"""Shared bits of the command-line entry points."""

from __future__ import annotations

import json
import logging
import os
import sys

from facecore.errors import AnalysisError, ModelFileError


def setup_logging(level: str | None = None) -> None:
    logging.basicConfig(level=(level or os.environ.get("LOG_LEVEL", "INFO")).upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # TensorFlow's C++ start-up chatter says nothing a user can act on.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def exit_with(error: Exception) -> None:
    """Print the error as the service's JSON error shape and leave with a non-zero status."""
    if isinstance(error, AnalysisError):
        print(json.dumps(error.to_json()), file=sys.stderr)
    elif isinstance(error, ModelFileError):
        print(json.dumps({"error": {"code": "model_missing", "message": str(error)}}), file=sys.stderr)
    else:
        raise error
    sys.exit(2)
