"""The age and gender heads (on the dlib embedding, and "tuned" on the networks' own features): they load
(sha256 via the manifest), give valid distributions, share one feature computation per batch, and the
ensemble and the default "tuned" models beat the dlib-models networks on a fixed part of the UTKFace
validation split (skipped without ../shared/data)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import REPO, SHARED_DATA
from age import heads as heads_module
from facecore.device import Device
from facecore.frames import decode_frame
from facecore.weights import load_manifest, resolve

CPU = Device(tf_device="CPU:0", ort_providers=("CPUExecutionProvider",))
UTKFACE = SHARED_DATA / "utkface"


@pytest.fixture(scope="module")
def sample_faces(analyzer):
    """Two frames of seqA (one face each) through the service's detector and aligner."""
    from facecore.faces import FaceBatch
    frames = [decode_frame(path) for path in sorted((REPO / "samples" / "seqA").glob("*.jpg"))[:2]]

    def make():
        detections = analyzer.detector.run(frames)
        faces = FaceBatch(frames=frames, detections=detections)
        faces.shapes = analyzer.aligner.run(frames, detections)
        return faces
    return make


@pytest.mark.parametrize("key", [heads_module.HEADS_KEY, heads_module.NETWORK_HEADS_KEY])
def test_heads_entry_is_a_repository_file_checked_by_sha256(key):
    manifest = load_manifest()
    entry = manifest[key]
    assert entry["package"] is None and entry["file"].endswith(".npz")
    assert "research" in entry["license"].lower() and "UTKFace" in entry["training"]["data"]
    weight = resolve(key, manifest)          # raises on a wrong sha256
    assert weight.path == REPO / "weights" / entry["file"]
    assert weight.path.stat().st_size < 500_000
    assert weight.describe()["package"] == "project"
    assert manifest[heads_module.EMBEDDING_KEY]["sha256"] == resolve(heads_module.EMBEDDING_KEY).sha256


def test_default_is_tuned(monkeypatch):
    monkeypatch.delenv(heads_module.ENV_VAR, raising=False)
    assert heads_module.choice() == "tuned"
    model = heads_module.age_model(resolve("age"))
    assert isinstance(model.features, heads_module.NetworkFeatures) and model.network is not None


@pytest.mark.parametrize("which", ["heads", "ensemble", "tuned"])
def test_heads_give_valid_distributions_and_share_one_feature_computation(sample_faces, which):
    age = heads_module.age_model(resolve("age"), which)
    gender = heads_module.gender_model(resolve("gender"), which)
    for model in (age, gender):
        model.prepare(CPU)
    faces = sample_faces()
    n = len(faces)
    assert n >= 2
    distribution = age.run(faces)
    assert distribution.shape == (n, 81) and np.isfinite(distribution).all() and (distribution >= 0).all()
    assert np.allclose(distribution.sum(axis=1), 1, atol=1e-5)
    years = age.expected_age(distribution)
    assert ((0 <= years) & (years <= 80.5)).all()
    low, high = age.interval(distribution[0])
    assert low <= years[0] <= high

    def computed_twice(chips):
        raise AssertionError("features were computed twice for one batch")
    # The gender head must read what the age head's computation left on the batch.
    if which == "tuned":
        gender.features.age.outputs = gender.features.gender.outputs = computed_twice
    else:
        gender.features.embed_chips = computed_twice
    probabilities = gender.run(faces)
    assert probabilities.shape == (n, 2) and ((probabilities >= 0) & (probabilities <= 1)).all()
    assert np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)
    # seqA is Eileen Collins, smiling, in her forties
    assert probabilities[:, 1].mean() > 0.5 and 25 <= years.mean() <= 55


def test_unknown_choice_is_refused(monkeypatch):
    monkeypatch.setenv(heads_module.ENV_VAR, "bogus")
    with pytest.raises(ValueError, match=heads_module.ENV_VAR):
        heads_module.choice()


@pytest.mark.skipif(not (UTKFACE / "labels.csv").is_file(), reason="needs ../shared/data/utkface (research data)")
@pytest.mark.parametrize("which", ["ensemble", "tuned"])
def test_trained_models_beat_the_dlib_networks_on_a_validation_subset(analyzer, which):
    """Images of the validation split of train_heads.py (seed 0), never seen in training: 200 of them for the
    ensemble (the embedding is slow), all 1,556 for "tuned" (its gender gain is small, ~0.6 points, so a
    200-image subset could not show it either way)."""
    from training import heads as train_heads
    from age import AgeModel
    from gender import GenderModel

    labels = train_heads.read_labels(UTKFACE)
    if which == "tuned":
        files = sorted(labels["file"][train_heads.split(labels, seed=0)["validation"]].tolist())
    else:
        files = train_heads.validation_subset(labels, seed=0, size=200)
    row = {name: index for index, name in enumerate(labels["file"])}
    true_age = np.asarray([labels["age"][row[name]] for name in files])
    true_gender = np.asarray([labels["gender"][row[name]] for name in files])
    images = [decode_frame(UTKFACE / name) for name in files]

    baseline_age, baseline_gender = AgeModel(resolve("age")), GenderModel(resolve("gender"))
    ensemble_age = heads_module.age_model(resolve("age"), which)
    ensemble_gender = heads_module.gender_model(resolve("gender"), which)
    for model in (baseline_age, baseline_gender, ensemble_age, ensemble_gender):
        model.prepare(CPU)
    faces = train_heads.given_faces(analyzer.aligner, images)
    baseline_years = baseline_age.expected_age(baseline_age.run(faces))
    baseline_is_female = baseline_gender.run(faces).argmax(axis=1)
    years = baseline_age.expected_age(ensemble_age.run(faces))
    is_female = ensemble_gender.run(faces).argmax(axis=1)

    mae, baseline_mae = np.abs(years - true_age).mean(), np.abs(baseline_years - true_age).mean()
    accuracy = (is_female == true_gender).mean()
    baseline_accuracy = (baseline_is_female == true_gender).mean()
    assert mae < baseline_mae, (mae, baseline_mae)
    assert accuracy > baseline_accuracy, (accuracy, baseline_accuracy)
    if which == "tuned":                   # the figures train_heads.py measured and the manifest records
        figures = load_manifest()[heads_module.NETWORK_HEADS_KEY]["training"]["validation"]
        assert mae == pytest.approx(figures["tuned"]["age_mae"], abs=0.01)
        assert accuracy == pytest.approx(figures["tuned"]["gender_acc"], abs=0.001)
