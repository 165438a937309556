"""emotion/train.py's data handling and choices, on made-up labels (no research data needed)."""

from __future__ import annotations

import numpy as np

from training import expression as train
from facecore.labels import EXPRESSIONS


def fake_data(per_class_train: int = 40, per_class_dev: int = 10) -> dict:
    labels = np.concatenate([np.repeat(np.arange(7), per_class_train), np.repeat(np.arange(7), per_class_dev)])
    splits = np.asarray(["train"] * (7 * per_class_train) + ["dev"] * (7 * per_class_dev))
    return {"image": np.zeros((len(labels), train.SIZE, train.SIZE), np.uint8), "label": labels, "split": splits}


def test_split_keeps_every_part_apart_and_dev_out_of_training():
    data = fake_data()
    parts = train.split(data, seed=0)
    fit, select, choose, report = (set(parts[name].tolist()) for name in ("fit", "select", "dev_choose", "dev_report"))
    assert not (fit & select) and not (choose & report)
    assert fit | select == set(np.flatnonzero(data["split"] == "train").tolist())
    assert choose | report == set(parts["dev"].tolist()) == set(np.flatnonzero(data["split"] == "dev").tolist())
    assert len(select) == round(0.1 * 7 * 40)
    # stratified: every expression in every held-out part, in proportion
    assert np.bincount(data["label"][parts["select"]], minlength=7).tolist() == [4] * 7
    assert np.bincount(data["label"][parts["dev_choose"]], minlength=7).tolist() == [5] * 7
    assert train.split(data, seed=0)["select"].tolist() == parts["select"].tolist()      # reproducible
    assert train.split(data, seed=1)["select"].tolist() != parts["select"].tolist()


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


def test_given_faces_are_whole_image_boxes_the_service_crops_back_unchanged():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, train.SIZE, train.SIZE), dtype=np.uint8)
    faces = train.given_faces(images)
    assert faces.whole_image_faces and len(faces) == 3
    assert np.array_equal(faces.square_grey_crops(train.SIZE, 0.0), images)
