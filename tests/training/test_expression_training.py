"""The expression trainer (``python -m training expression``) and the toolkit it shares with the heads trainer:
its data handling and choices on made-up labels, its input scaling (the serving one), and its split of the real
FER2013 (skipped without ../shared/data)."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import numpy as np

from conftest import REPO, needs_data
from emotion import preprocess
from emotion.model import ExpressionNetwork
from facecore.device import Device
from facecore.labels import EXPRESSIONS
from training import data
from training import expression as train
from training.batches import faces_given
from training.shipping import command

CPU = Device(tf_device="CPU:0", ort_providers=("CPUExecutionProvider",))


def fake_data(per_class_train: int = 40, per_class_dev: int = 10) -> dict:
    labels = np.concatenate([np.repeat(np.arange(7), per_class_train), np.repeat(np.arange(7), per_class_dev)])
    splits = np.asarray(["train"] * (7 * per_class_train) + ["dev"] * (7 * per_class_dev))
    rng = np.random.default_rng(0)
    return {"image": rng.integers(0, 256, (len(labels), train.SIZE, train.SIZE), dtype=np.uint8), "label": labels,
            "split": splits}


def test_split_keeps_every_part_apart_and_dev_out_of_training():
    fer = fake_data()
    parts = data.fer2013_split(fer, seed=0)
    fit, select, choose, report = (set(parts[name].tolist()) for name in ("fit", "select", "dev_choose", "dev_report"))
    assert not (fit & select) and not (choose & report)
    assert fit | select == set(np.flatnonzero(fer["split"] == "train").tolist())
    assert choose | report == set(parts["dev"].tolist()) == set(np.flatnonzero(fer["split"] == "dev").tolist())
    assert len(select) == round(0.1 * 7 * 40)
    # stratified: every expression in every held-out part, in proportion
    assert np.bincount(fer["label"][parts["select"]], minlength=7).tolist() == [4] * 7
    assert np.bincount(fer["label"][parts["dev_choose"]], minlength=7).tolist() == [5] * 7
    assert data.fer2013_split(fer, seed=0)["select"].tolist() == parts["select"].tolist()      # reproducible
    assert data.fer2013_split(fer, seed=1)["select"].tolist() != parts["select"].tolist()
    # a network trained with another seed is still chosen on the same dev half as every other one
    other = data.fer2013_split(fer, seed=1, dev_seed=0)
    assert other["select"].tolist() != parts["select"].tolist()
    assert other["dev_choose"].tolist() == parts["dev_choose"].tolist()
    assert data.fer2013_split(fer, seed=1)["dev_choose"].tolist() != parts["dev_choose"].tolist()


@needs_data(data.missing_labels(data.FER2013) and "needs ../shared/data/fer2013 (research data)")
def test_split_of_fer2013_is_the_one_the_shipped_network_was_trained_with(tmp_path):
    """The seed-0 parts fingerprinted from the trainer before it moved into the toolkit (``emotion/train.py``):
    the network learnt on "fit" only, and the service's choice was made on "dev_choose" only."""
    labels = data.read_labels(data.FER2013, {"emotion": EXPRESSIONS, "split": str})
    parts = data.fer2013_split({"label": labels["emotion"], "split": labels["split"]}, seed=0)
    assert {name: hashlib.sha256(rows.astype(np.int64).tobytes()).hexdigest()[:16] for name, rows in parts.items()} == {
        "fit": "84f4e0dfd814e5b9", "select": "b5681fe84d0960cb", "dev": "8db449b1525174f1",
        "dev_choose": "db1cf33664080912", "dev_report": "8aeaaaa0fc67dc08"}


def test_the_choice_is_made_on_dev_choose_only():
    table = {"select": {"a": {"accuracy": 0.9}, "b": {"accuracy": 0.1}},
             "dev_choose": {"a": {"accuracy": 0.6}, "b": {"accuracy": 0.7}},
             "dev_report": {"a": {"accuracy": 0.8}, "b": {"accuracy": 0.5}}}
    assert train.chosen(table) == "b"


def test_network_maps_48px_grey_to_the_seven_expressions():
    network = train.build_network(seed=0)
    assert network.input_shape == (None, train.SIZE, train.SIZE, 1)
    out = np.asarray(network(np.zeros((2, train.SIZE, train.SIZE, 1), np.float32), training=False))
    assert out.shape == (2, len(EXPRESSIONS)) and np.allclose(out.sum(axis=1), 1, atol=1e-5)


def test_training_input_is_the_serving_input():
    """What the network learns from is exactly what the service feeds it: one function, the same numbers."""
    assert train.network_input is preprocess.network_input

    fer = fake_data(per_class_train=2, per_class_dev=0)
    rows = np.arange(len(fer["label"]))
    trained_on = train.inputs(fer, rows)
    fed = []

    class Recorder:                         # stands in for the Keras model inside the serving network
        def __call__(self, batch, training):
            fed.append(np.asarray(batch))
            return np.zeros((len(batch), len(EXPRESSIONS)), np.float32)

    network = ExpressionNetwork(weight=None)
    network._model, network._device, network._wants_list = Recorder(), CPU.tf_device, False
    network._forward = lambda batch: network._model(batch, training=False)   # what prepare() compiles
    network.probabilities(fer["image"][rows], flip=False)
    assert trained_on.dtype == np.float32 and trained_on.shape == (len(rows), train.SIZE, train.SIZE, 1)
    assert np.array_equal(np.concatenate(fed), trained_on)
    # the mini-Xception's scaling: 0 -> -1, 255 -> 1
    every_value = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)
    assert np.array_equal(train.network_input(every_value)[..., 0],
                          every_value.astype(np.float32) / np.float32(127.5) - np.float32(1.0))


def test_given_faces_are_whole_image_boxes_the_service_crops_back_unchanged():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, train.SIZE, train.SIZE), dtype=np.uint8)
    faces = faces_given(images)
    assert faces.whole_image_faces and len(faces) == 3
    assert np.array_equal(faces.square_grey_crops(train.SIZE, 0.0), images)


def test_trainers_run_as_python_m_training_and_record_that_command():
    done = subprocess.run([sys.executable, "-m", "training", "expression", "--data", str(REPO / "nowhere")],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "no labels.csv" in done.stderr
    done = subprocess.run([sys.executable, "-m", "training", "train_heads"], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2 and "heads" in done.stderr and "expression" in done.stderr
    recorded = command("heads", ["--features", "networks", "--ship"])
    assert recorded == "python -m training heads --features networks --ship"


def test_ship_writes_the_network_and_an_entry_recording_the_new_command(tmp_path, monkeypatch):
    """On a stand-in file and manifest: the shipped weights in the repository are never rewritten here."""
    best = tmp_path / "best.keras"
    train.build_network(seed=0).save(str(best))
    monkeypatch.setattr(train, "SHIPPED_FILE", tmp_path / "expression_vgg_v1.keras")
    entries = {}
    monkeypatch.setattr("training.shipping.put_manifest_entry", lambda key, entry: entries.update({key: entry}))
    row = {"accuracy": 0.5, "macro_f1": 0.4}
    names = [f"{which}{flip}" for which in ("mini-xception", "vgg", "ensemble") for flip in ("", "+flip")]
    table = {part: {name: row for name in names} for part in ("dev_choose", "dev_report", "dev")}
    report = {"command": command("expression", ["--seed", "0", "--ship"]), "seed": 0, "table": table,
              "parts": {name: [0, 1] for name in ("fit", "select", "dev", "dev_choose", "dev_report")}}
    train.ship_network(best, report)
    entry = entries[train.SHIPPED_KEY]
    assert entry["file"] == "expression_vgg_v1.keras" and entry["package"] is None
    assert entry["sha256"] == hashlib.sha256(train.SHIPPED_FILE.read_bytes()).hexdigest()
    assert entry["training"]["command"] == "python -m training expression --seed 0 --ship"
    assert set(entry["training"]["service_dev_accuracy"]) == {"mini-xception", "vgg", "ensemble"}
