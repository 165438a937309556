"""Shipping a trained model: its file in ``weights/`` and its manifest entry, which records how it was made.

Only ``--ship`` runs write here; the shipped files are checked by sha256 wherever they are resolved, so a
file and its entry are always written together.
"""

from __future__ import annotations

import logging
import shlex
from pathlib import Path

from facecore.weights import MANIFEST_PATH, put_manifest_entry, sha256_of

log = logging.getLogger(__name__)

WEIGHTS_DIR = MANIFEST_PATH.parent


def command(trainer: str, argv: list[str]) -> str:
    """The command line that reproduces a run, as reports and manifest entries record it."""
    return shlex.join(["python", "-m", "training", trainer, *argv])


def ship(key: str, file: Path, model: str, license_text: str, training: dict, version: str = "v1") -> dict:
    """Record the already written ``file`` under ``key`` in the manifest (its sha256 measured here)."""
    entry = {"model": model, "package": None, "version": version, "pip": None, "file": file.name,
             "sha256": sha256_of(file), "license": license_text, "training": training}
    put_manifest_entry(key, entry)
    log.info("shipped %s (%d bytes, sha256 %s) as manifest entry %r", file, file.stat().st_size, entry["sha256"], key)
    return entry
