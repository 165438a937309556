"""The features the age and gender heads are trained on, computed once per UTKFace image through the service's
own code and cached outside the repository (``--cache``: the features name research-only files), so a re-run of
``python -m training heads`` only fits.

Per image (decoder, dlib 5-point aligner on the whole crop, as ``analyse_images(faces_given=True)`` does,
``training.batches``): the 128-d dlib face embedding, or the dlib-models networks' penultimate features, and the
networks' age distribution and gender probabilities as baselines.
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path

import numpy as np

from age.distribution import LIFESPAN_BINS, on_lifespan
from facecore.heads_file import NetworkFeatures
from training.batches import faces_given

log = logging.getLogger(__name__)


def feature_cache_path(cache: Path, data_dir: Path, manifest: dict) -> Path:
    digest = hashlib.sha256((data_dir / "labels.csv").read_bytes())
    for key in ("aligner", "embedding", "age", "gender"):
        digest.update(manifest[key]["sha256"].encode())
    return cache / f"utkface_features_{digest.hexdigest()[:12]}.npz"


def compute_features(data_dir: Path, files: np.ndarray, batch_size: int = 64) -> dict:
    """Embedding, dlib-models age distribution and gender probabilities for every file, through the service."""
    from faceanalysis.pipeline.analyzer import FaceAnalyzer
    from facecore.embedding import FaceEmbedder
    from facecore.frames import decode_frame

    # The baselines are the dlib-models networks, whatever the service's default.
    analyzer = FaceAnalyzer(age_gender="dlib", device="cpu", batch_size=batch_size).prepare()
    embedder = FaceEmbedder(analyzer.weights["embedding"])
    embedder.prepare(analyzer.device)
    embedding = np.zeros((len(files), 128), np.float32)
    age = np.zeros((len(files), len(LIFESPAN_BINS)), np.float32)
    gender = np.zeros((len(files), 2), np.float32)
    start = time.perf_counter()
    for first in range(0, len(files), batch_size):
        chunk = range(first, min(first + batch_size, len(files)))
        images = [decode_frame(data_dir / files[i]) for i in chunk]
        table = analyzer.analyse_images(images, faces_given=True)
        if len(table) != len(images):
            raise RuntimeError(f"expected one face per image, got {len(table)} for {len(images)}")
        age[first:chunk.stop], gender[first:chunk.stop] = table.age, table.gender
        embedding[first:chunk.stop] = embedder.run(faces_given(images, analyzer.aligner))
        done = chunk.stop
        if (first // batch_size) % 10 == 0 or done == len(files):
            elapsed = time.perf_counter() - start
            log.info("features: %d/%d images, %.0f s, %.0f s left", done, len(files), elapsed,
                     elapsed / done * (len(files) - done))
    return {"embedding": embedding, "dlib_age": age, "dlib_gender": gender}


def compute_network_features(data_dir: Path, files: np.ndarray, batch_size: int = 64) -> dict:
    """The age and gender networks' penultimate features and outputs for every file, through the service's
    aligner and networks (as ``facecore.heads_file.NetworkFeatures`` reads them at run time)."""
    from age.network import AgeModel
    from facecore.device import select_device
    from facecore.faces import Aligner
    from facecore.frames import decode_frame
    from facecore.weights import resolve
    from gender.network import GenderModel
    device = select_device("cpu")
    aligner = Aligner(resolve("aligner"))
    aligner.prepare(device)
    features = NetworkFeatures(AgeModel(resolve("age")), GenderModel(resolve("gender")))
    features.prepare(device)
    out = {"networks": [], "dlib_age": [], "dlib_gender": []}
    for first in range(0, len(files), batch_size):
        faces = faces_given([decode_frame(data_dir / name) for name in files[first:first + batch_size]], aligner)
        out["networks"].append(features.run(faces))
        out["dlib_age"].append(features.age.run(faces))
        out["dlib_gender"].append(features.gender.run(faces))
    return {name: np.concatenate(parts).astype(np.float32) for name, parts in out.items()}


def load_features(data_dir: Path, cache: Path, labels: dict, kind: str = "embedding") -> dict:
    """The features of ``kind`` (as ``"x"``) plus the networks' outputs, computed once and cached.
    ``combined``: the networks' features and the embedding side by side (both caches)."""
    from facecore.weights import load_manifest
    if kind == "combined":
        networks = load_features(data_dir, cache, labels, "networks")
        embedding = load_features(data_dir, cache, labels, "embedding")
        return {**networks, "embedding": embedding["embedding"],
                "x": np.concatenate([networks["networks"], embedding["embedding"]], axis=1)}
    path = feature_cache_path(cache, data_dir, load_manifest())
    if kind == "networks":
        path = path.with_name(path.name.replace("utkface_features_", "utkface_netfeatures_"))
    if path.is_file():
        log.info("features from %s", path)
        with np.load(path) as stored:
            features = {name: stored[name] for name in stored.files}
        if np.array_equal(features["files"], labels["file"]):
            if features["dlib_age"].shape[1] != len(LIFESPAN_BINS):     # cached before ages went to 100
                features["dlib_age"] = on_lifespan(features["dlib_age"], LIFESPAN_BINS[:features["dlib_age"].shape[1]])
            return {**features, "x": features[kind]}
        log.warning("%s lists other files; computing again", path)
    compute = compute_network_features if kind == "networks" else compute_features
    features = compute(data_dir, labels["file"])
    features["files"] = labels["file"]
    cache.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **features)
    log.info("features cached in %s", path)
    return {**features, "x": features[kind]}
