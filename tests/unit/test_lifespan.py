"""Age distributions over the lifespan bins (0.25, 1, ..., 100 years): mapping, expectation, interval, legacy age."""

from __future__ import annotations

import numpy as np
import pytest

from age.distribution import LIFESPAN_BINS, AgeDistribution, on_lifespan
from faceanalysis.writers.legacy import legacy_json


def test_the_lifespan_bins_are_the_dlib_bins_then_81_to_100():
    assert len(LIFESPAN_BINS) == 101
    assert LIFESPAN_BINS[:3].tolist() == [0.25, 1, 2] and LIFESPAN_BINS[80] == 80 and LIFESPAN_BINS[-1] == 100


def test_the_networks_81_bins_are_the_first_81():
    network = np.full((2, 81), 1 / 81)
    mapped = on_lifespan(network, LIFESPAN_BINS[:81])
    assert mapped.shape == (2, 101) and np.allclose(mapped[:, :81], 1 / 81) and not mapped[:, 81:].any()


def test_bins_that_are_not_lifespan_bins_are_refused():
    with pytest.raises(ValueError):
        on_lifespan(np.ones((1, 2)) / 2, np.array([0.5, 1.0]))
    with pytest.raises(ValueError):
        on_lifespan(np.ones((1, 1)), np.array([101.0]))


@pytest.mark.parametrize("bin_index, age", [(80, 80.0), (81, 81.0), (95, 95.0), (100, 100.0)])
def test_ages_past_80_are_expected_and_inside_their_interval(bin_index, age):
    distribution = np.zeros(101)
    distribution[bin_index] = 1
    model = AgeDistribution()
    assert model.expected_age(distribution) == pytest.approx(age)
    low, high = model.interval(distribution)
    # All the mass in one bin spreads over its width, age - 0.5 to age + 0.5: the 10% and 90% points.
    assert (low, high) == (pytest.approx(age - 0.4), pytest.approx(age + 0.4))


def test_the_legacy_age_of_a_91_year_old_distribution():
    distribution = np.zeros(101)
    distribution[[90, 92]] = 0.5                   # expected 91
    summary = type("Summary", (), {"expression": np.full(7, 1 / 7), "gender": np.array([0.5, 0.5]),
                                   "age": float(AgeDistribution().expected_age(distribution))})
    result = type("Result", (), {"summary": summary})
    assert legacy_json(result)["Video_Age"] == {20000: "91"}
