"""The age and gender heads (on the dlib embedding, and "tuned" on the networks' own features): they load
(sha256 via the manifest), give valid distributions, share one feature computation per batch, and the
ensemble and the default "tuned" models beat the dlib-models networks on a fixed part of the UTKFace
validation split, which is the split the trainer has always made (skipped without ../shared/data)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from age.calibration import HeadAgeModel
from conftest import REPO, needs_data
from faceanalysis.pipeline.registry import HEADS_KEY, LIFESPAN_HEADS_KEY, NETWORK_HEADS_KEY, build_task_models
from faceanalysis.pipeline.settings import Settings
from facecore.device import Device
from facecore.frames import decode_frame
from facecore.heads_file import NetworkFeatures
from facecore.weights import load_manifest, resolve
from training import data
from training.batches import faces_given

CPU = Device(tf_device="CPU:0", ort_providers=("CPUExecutionProvider",))
needs_utkface = needs_data(data.missing_labels(data.UTKFACE) and "needs ../shared/data/utkface (research data)")


def task_models(age_gender: str) -> tuple:
    """The prepared (age, gender) models of one ``age_gender`` choice, built as the analyzer builds them."""
    weights = {key: resolve(key) for key in load_manifest()}
    models = build_task_models(weights, Settings(age_gender=age_gender))
    for task in ("age", "gender"):
        models[task].prepare(CPU)
    return models["age"], models["gender"]


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


@pytest.mark.parametrize("key", [HEADS_KEY, NETWORK_HEADS_KEY, LIFESPAN_HEADS_KEY])
def test_heads_entry_is_a_repository_file_checked_by_sha256(key):
    manifest = load_manifest()
    entry = manifest[key]
    assert entry["package"] is None and entry["file"].endswith(".npz")
    assert "research" in entry["license"].lower() and "UTKFace" in entry["training"]["data"]
    weight = resolve(key, manifest)          # raises on a wrong sha256
    assert weight.path == REPO / "weights" / entry["file"]
    assert weight.path.stat().st_size < 500_000
    assert weight.describe()["package"] == "project"
    # The files' own bytes against the manifest (resolve's .sha256 is the manifest's value, not the file's).
    assert hashlib.sha256(weight.path.read_bytes()).hexdigest() == entry["sha256"]
    embedding = resolve("embedding", manifest, verify=False)
    assert hashlib.sha256(embedding.path.read_bytes()).hexdigest() == manifest["embedding"]["sha256"]


def test_default_is_lifespan_with_its_person_head():
    from age.person import PersonHead
    from faceanalysis.pipeline.registry import SharedModels, build_person_head
    assert Settings().age_gender == "lifespan"
    weights = {key: resolve(key) for key in load_manifest()}
    shared = SharedModels()
    model = build_task_models(weights, Settings(), shared)["age"]
    assert isinstance(model, HeadAgeModel) and isinstance(model.features, NetworkFeatures)
    assert model.network is not None
    person = build_person_head(weights, Settings(), shared)
    assert isinstance(person, PersonHead) and person.features is model.features      # one set of networks
    assert person.file.key == "age_gender_person"
    assert build_person_head(weights, Settings(age_gender="tuned"), shared) is None


@pytest.mark.parametrize("which", ["heads", "ensemble", "tuned", "lifespan"])
def test_heads_give_valid_distributions_and_share_one_feature_computation(sample_faces, which):
    age, gender = task_models(which)
    faces = sample_faces()
    n = len(faces)
    assert n >= 2
    distribution = age.run(faces)
    assert distribution.shape == (n, 101) and np.isfinite(distribution).all() and (distribution >= 0).all()
    assert np.allclose(distribution.sum(axis=1), 1, atol=1e-5)
    years = age.expected_age(distribution)
    assert ((0 <= years) & (years <= (100 if which == "lifespan" else 80.5))).all()
    low, high = age.interval(distribution[0])
    assert low <= years[0] <= high

    def computed_twice(chips):
        raise AssertionError("features were computed twice for one batch")
    # The gender head must read what the age head's computation left on the batch.
    if which in ("tuned", "lifespan"):
        gender.features.age.outputs = gender.features.gender.outputs = computed_twice
    else:
        gender.features.embed_chips = computed_twice
    probabilities = gender.run(faces)
    assert probabilities.shape == (n, 2) and ((probabilities >= 0) & (probabilities <= 1)).all()
    assert np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)
    # seqA is Eileen Collins, smiling, in her forties
    assert probabilities[:, 1].mean() > 0.5 and 25 <= years.mean() <= 55


def test_unknown_choice_is_refused():
    with pytest.raises(ValueError, match="age_gender"):
        Settings(age_gender="bogus")


def fingerprint(names) -> str:
    return hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]


@needs_utkface
def test_split_is_the_one_the_shipped_heads_were_trained_with():
    """The seed-0 parts, as file lists, fingerprinted from the trainer before it moved into the toolkit
    (``train_heads.py``): the validation figures in the manifest are only held-out figures on these."""
    labels = data.utkface_labels()
    parts = data.utkface_split(labels, seed=0)
    assert {name: fingerprint(labels["file"][rows]) for name, rows in parts.items()} == {
        "train": "d90f79d16e65412f", "fit": "dba5ec75dba55f52", "tune": "4174c8e3e20139fb",
        "validation": "8e6adcf6f07eb309"}
    assert fingerprint(data.utkface_validation_subset(labels, seed=0, size=200)) == "1270094a082c7c58"
    assert not set(parts["train"]) & set(parts["validation"])
    assert len(parts["validation"]) == 1556 and len(parts["fit"]) + len(parts["tune"]) == len(parts["train"])


@needs_utkface
@pytest.mark.parametrize("which", ["ensemble", "tuned"])
def test_trained_models_beat_the_dlib_networks_on_a_validation_subset(analyzer, which):
    """Images of the heads' validation split (seed 0), never seen in training: 200 of them for the ensemble
    (the embedding is slow), all 1,556 for "tuned" (its gender gain is small, ~0.6 points, so a 200-image
    subset could not show it either way)."""
    labels = data.utkface_labels()
    if which == "tuned":
        files = sorted(labels["file"][data.utkface_split(labels, seed=0)["validation"]].tolist())
    else:
        files = data.utkface_validation_subset(labels, seed=0, size=200)
    row = {name: index for index, name in enumerate(labels["file"])}
    true_age = np.asarray([labels["age"][row[name]] for name in files])
    true_gender = np.asarray([labels["gender"][row[name]] for name in files])
    faces = faces_given([decode_frame(data.UTKFACE / name) for name in files], analyzer.aligner)

    baseline_age, baseline_gender = task_models("dlib")
    trained_age, trained_gender = task_models(which)
    baseline_years = baseline_age.expected_age(baseline_age.run(faces))
    baseline_is_female = baseline_gender.run(faces).argmax(axis=1)
    years = baseline_age.expected_age(trained_age.run(faces))
    is_female = trained_gender.run(faces).argmax(axis=1)

    mae, baseline_mae = np.abs(years - true_age).mean(), np.abs(baseline_years - true_age).mean()
    accuracy = (is_female == true_gender).mean()
    baseline_accuracy = (baseline_is_female == true_gender).mean()
    assert mae < baseline_mae, (mae, baseline_mae)
    assert accuracy > baseline_accuracy, (accuracy, baseline_accuracy)
    if which == "tuned":                   # the figures the trainer measured and the manifest records
        figures = load_manifest()[NETWORK_HEADS_KEY]["training"]["validation"]
        assert mae == pytest.approx(figures["tuned"]["age_mae"], abs=0.01)
        assert accuracy == pytest.approx(figures["tuned"]["gender_acc"], abs=0.001)


def test_heads_trainer_fits_chooses_and_ships_on_made_up_features(tmp_path, monkeypatch):
    """The whole fitting path on 300 made-up faces whose features carry age and gender, shipped to a stand-in
    file and manifest (the shipped heads are never rewritten here)."""
    from training import heads_fitting, heads_scoring, heads_shipping
    rng = np.random.default_rng(0)
    n = 300
    age = rng.uniform(1, 90, n).round()
    gender = rng.integers(0, 2, n)
    x = np.column_stack([np.log1p(age), gender, rng.normal(size=(n, 6))]) + rng.normal(0, 0.1, (n, 8))
    labels = {"file": np.asarray([f"{i}.jpg" for i in range(n)]), "age": age, "gender": gender}
    features = {"x": x, "dlib_age": rng.dirichlet(np.ones(81), n), "dlib_gender": rng.dirichlet(np.ones(2), n)}
    bin_ages = np.concatenate([[0.25], np.arange(1, 81)]).astype(np.float64)
    parts = data.utkface_split(labels, seed=0)
    fitter = heads_fitting.Fitter(features, labels, bin_ages, seed=0)
    choices = heads_fitting.tune(fitter, features, parts)
    heads_by_kind = heads_fitting.refit(fitter, choices, parts["train"])
    table = heads_scoring.evaluate(features, labels, parts["validation"], heads_by_kind, bin_ages)
    best, default = heads_scoring.choose(table)
    assert table[f"head:{best}"]["age_mae"] < table["dlib-models"]["age_mae"]      # the features carry age
    assert default in ("heads", "ensemble")

    entries = {}
    monkeypatch.setattr("training.shipping.put_manifest_entry", lambda key, entry: entries.update({key: entry}))
    target = {**heads_shipping.FEATURE_KINDS["embedding"], "file": tmp_path / "heads.npz"}
    heads_shipping.ship_heads(target, heads_by_kind[best], best, default, 0, choices, features, labels, parts,
                              bin_ages, "python -m training heads --ship")
    entry = entries["age_gender_heads"]
    assert entry["file"] == "heads.npz" and entry["training"]["command"] == "python -m training heads --ship"
    assert entry["sha256"] == hashlib.sha256(target["file"].read_bytes()).hexdigest()
    assert entry["training"]["validation"]["heads"]["age_mae"] == pytest.approx(table[f"head:{best}"]["age_mae"],
                                                                                 abs=0.01)
