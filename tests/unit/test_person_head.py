"""The person head's arithmetic on hand-made heads: which columns it reads, the mix with the networks, and the
person's answer as the mean over their faces (expected values worked out by hand)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from age.distribution import LIFESPAN_BINS
from age.person import PersonHead

MEAN_BIN = (0.25 + 5050) / 101            # the mean of the lifespan bins 0.25, 1, ..., 100: 50.0025


def head_file(tmp_path, **changes) -> SimpleNamespace:
    """Two network features then two embedding values; the age head knows nothing (uniform), the gender head
    reads the last embedding value only: p(female) = sigmoid(ln 3 * e2)."""
    arrays = {"embedding_mean": np.zeros(4), "embedding_scale": np.ones(4), "age_bins": LIFESPAN_BINS,
              "age_kind": np.str_("bins"), "age_coef": np.zeros((4, 101)), "age_intercept": np.zeros(101),
              "gender_coef": np.array([0.0, 0.0, 0.0, np.log(3)]), "gender_intercept": np.float64(0),
              "age_mix": np.float64(0.5), "gender_mix": np.float64(0.5), **changes}
    np.savez(tmp_path / "person.npz", **arrays)
    return SimpleNamespace(path=tmp_path / "person.npz")


def inputs(network_age: float, female: float) -> np.ndarray:
    """Two (zero) network features, the network's age distribution (all on one bin), its gender."""
    age = np.zeros(101)
    age[int(np.flatnonzero(LIFESPAN_BINS == network_age)[0])] = 1
    return np.concatenate([[0.0, 0.0], age, [1 - female, female]])


def test_each_face_mixes_the_head_with_the_networks_and_reads_the_embedding_after_the_features(tmp_path):
    head = PersonHead(head_file(tmp_path), features=None)
    age, gender = head.run_each(np.stack([inputs(30, 0.0), inputs(60, 1.0)]), np.array([[0.0, 1.0], [0.0, 0.0]]))
    # Age: half uniform (mean 50.0025), half the network's one bin.
    assert head.expected_age(age) == pytest.approx([0.5 * MEAN_BIN + 15, 0.5 * MEAN_BIN + 30])
    # Gender: head 0.75 (e2 = 1) mixed half and half with the network's 0 -> 0.375; head 0.5 with 1 -> 0.75.
    assert gender[:, 1] == pytest.approx([0.375, 0.75])


def test_the_person_is_the_mean_over_their_faces(tmp_path):
    head = PersonHead(head_file(tmp_path), features=None)
    age, gender = head.run(np.stack([inputs(30, 0.0), inputs(60, 1.0)]), np.array([[0.0, 1.0], [0.0, 0.0]]))
    assert age.shape == (101,) and age.sum() == pytest.approx(1.0)
    assert head.expected_age(age[None])[0] == pytest.approx(0.5 * MEAN_BIN + 22.5)
    assert gender == pytest.approx([1 - 0.5625, 0.5625])


def test_children_get_the_softened_gender(tmp_path):
    # The age head alone says 5 years (all on bin 5): under child_age 13, so the logit ln 3 is halved.
    coef = np.zeros(101)
    coef[5] = 50.0
    head = PersonHead(head_file(tmp_path, age_intercept=coef, gender_mix=np.float64(1.0),
                                child_age=np.float64(13), child_temperature=np.float64(2.0)), features=None)
    _, gender = head.run_each(inputs(30, 0.0)[None], np.array([[0.0, 1.0]]))
    assert gender[0, 1] == pytest.approx(np.sqrt(3) / (1 + np.sqrt(3)))        # sigmoid(ln 3 / 2)
    head = PersonHead(head_file(tmp_path, age_intercept=coef, gender_mix=np.float64(1.0),
                                child_age=np.float64(5), child_temperature=np.float64(2.0)), features=None)
    _, gender = head.run_each(inputs(30, 0.0)[None], np.array([[0.0, 1.0]]))
    assert gender[0, 1] == pytest.approx(0.75)                                   # 5 is not under 5
