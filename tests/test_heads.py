"""The age and gender heads on the dlib embedding: they load (sha256 via the manifest), give valid
distributions, share one embedding per batch, and the ensemble beats the dlib-models networks on a
fixed part of the UTKFace validation split (skipped without ../shared/data)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import REPO, SHARED_DATA
from faceanalysis import heads as heads_module
from faceanalysis.device import Device
from faceanalysis.frames import decode_frame
from faceanalysis.weights import load_manifest, resolve

CPU = Device(tf_device="CPU:0", ort_providers=("CPUExecutionProvider",))
UTKFACE = SHARED_DATA / "utkface"


@pytest.fixture(scope="module")
def sample_faces(analyzer):
    """Two frames of seqA (one face each) through the service's detector and aligner."""
    from faceanalysis.faces import FaceBatch
    frames = [decode_frame(path) for path in sorted((REPO / "samples" / "seqA").glob("*.jpg"))[:2]]

    def make():
        detections = analyzer.detector.run(frames)
        faces = FaceBatch(frames=frames, detections=detections)
        faces.shapes = analyzer.aligner.run(frames, detections)
        return faces
    return make


def test_heads_entry_is_a_repository_file_checked_by_sha256():
    manifest = load_manifest()
    entry = manifest[heads_module.HEADS_KEY]
    assert entry["package"] is None and entry["file"].endswith(".npz")
    assert "research" in entry["license"].lower() and "UTKFace" in entry["training"]["data"]
    weight = resolve(heads_module.HEADS_KEY, manifest)          # raises on a wrong sha256
    assert weight.path == REPO / "weights" / entry["file"]
    assert weight.path.stat().st_size < 500_000
    assert weight.describe()["package"] == "project"
    assert manifest[heads_module.EMBEDDING_KEY]["sha256"] == resolve(heads_module.EMBEDDING_KEY).sha256


@pytest.mark.parametrize("which", ["heads", "ensemble"])
def test_heads_give_valid_distributions_and_share_one_embedding(sample_faces, which):
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

    def no_second_embedding(chips):
        raise AssertionError("the embedding was computed twice for one batch")
    gender.embedder.embed_chips = no_second_embedding        # the gender head must read the age head's one
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
def test_ensemble_beats_the_dlib_networks_on_a_validation_subset(analyzer):
    """200 images of the validation split of train_heads.py (seed 0), never seen in training."""
    import train_heads
    from age import AgeModel
    from gender import GenderModel

    labels = train_heads.read_labels(UTKFACE)
    files = train_heads.validation_subset(labels, seed=0, size=200)
    row = {name: index for index, name in enumerate(labels["file"])}
    true_age = np.asarray([labels["age"][row[name]] for name in files])
    true_gender = np.asarray([labels["gender"][row[name]] for name in files])
    images = [decode_frame(UTKFACE / name) for name in files]

    baseline_age, baseline_gender = AgeModel(resolve("age")), GenderModel(resolve("gender"))
    ensemble_age = heads_module.age_model(resolve("age"), "ensemble")
    ensemble_gender = heads_module.gender_model(resolve("gender"), "ensemble")
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
