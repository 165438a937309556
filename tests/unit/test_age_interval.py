"""The age estimate and its central interval (age/distribution.py, README "Persons"), on hand-made 81-bin
distributions whose quantiles are worked out in the comments.

Bins are the dlib-models network's: 0.25, 1, 2, ..., 80 years. Each bin's mass is spread evenly between the
midpoints to its neighbours, so bin k (k >= 2) covers [k - 0.5, k + 0.5], bin 1 covers [0.625, 1.5], bin 0
covers [0, 0.625] and bin 80 covers [79.5, 80.5]."""

from __future__ import annotations

import numpy as np
import pytest

from age.distribution import AgeDistribution, on_lifespan

BIN_AGES = np.concatenate([[0.25], np.arange(1, 81)]).astype(np.float64)


class Ages(AgeDistribution):
    bin_ages = BIN_AGES


AGES = Ages()


def distribution(**mass: float) -> np.ndarray:
    """distribution(b30=0.5, b40=0.5): mass by bin index."""
    out = np.zeros(81)
    for name, value in mass.items():
        out[int(name[1:])] = value
    return out


def test_bin_edges_are_the_midpoints_between_bins():
    edges = AGES.bin_edges
    assert len(edges) == 82
    assert edges[:4].tolist() == [0.0, 0.625, 1.5, 2.5]
    assert edges[-2:].tolist() == [79.5, 80.5]


def test_cdf_runs_from_0_to_1_at_the_edges_whatever_the_scale():
    cdf = AGES.cdf_at_edges(distribution(b0=2.0, b80=2.0))
    assert len(cdf) == 82 and cdf[0] == 0.0 and cdf[1] == 0.5 and cdf[-2] == 0.5 and cdf[-1] == 1.0


def test_expected_age_is_the_mean_of_the_bin_ages():
    assert AGES.expected_age(distribution(b30=1.0)) == 30.0
    assert AGES.expected_age(distribution(b0=1.0)) == 0.25
    assert AGES.expected_age(distribution(b30=0.5, b40=0.5)) == pytest.approx(35.0)
    # One row per face.
    assert AGES.expected_age(np.stack([distribution(b10=1.0), distribution(b20=1.0)])).tolist() == [10.0, 20.0]


def test_one_bin_gives_the_central_80_percent_of_its_year():
    # Bin 50 covers [49.5, 50.5]: the 10% and 90% points are 49.6 and 50.4.
    assert AGES.interval(distribution(b50=1.0)) == (49.6, 50.4)


def test_mass_sets_the_share_in_the_interval():
    # 50%: the 25% and 75% points, 49.75 and 50.25, rounded outwards to 0.1.
    assert AGES.interval(distribution(b50=1.0), mass=0.5) == (49.7, 50.3)


def test_two_bins():
    # Half in 30, half in 40: 10% of the whole is 20% of bin 30 -> 29.7; 90% is 80% into bin 40 -> 40.3.
    assert AGES.interval(distribution(b30=0.5, b40=0.5)) == (29.7, 40.3)


def test_bounds_are_rounded_outwards_not_to_the_nearest():
    # 0.6 in 30, 0.4 in 40: 10% -> 29.5 + 0.1 / 0.6 = 29.667 (nearest 29.7, outwards 29.6);
    # 90% -> 39.5 + 0.3 / 0.4 = 40.25 (nearest 40.2, outwards 40.3).
    assert AGES.interval(distribution(b30=0.6, b40=0.4)) == (29.6, 40.3)


def test_an_unnormalised_distribution_gives_the_same_interval():
    assert AGES.interval(distribution(b30=1.2, b40=0.8)) == (29.6, 40.3)
    # The estimate is normalised too: 0.95 * 80 + 0.05 * 0.25 = 76.0125 widens the low end whatever the scale.
    assert AGES.interval(distribution(b0=0.5, b80=9.5)) == (76.0, 80.4)


def test_the_interval_is_widened_down_to_an_estimate_below_it():
    # 0.95 in 80 and 0.05 in 0.25: the quantiles are 79.5 + 0.05 / 0.95 = 79.55 and 79.5 + 0.85 / 0.95 = 80.39,
    # but the expected age is 76.0125: the low end moves down to it (rounded outwards, 76.0).
    assert AGES.expected_age(distribution(b0=0.05, b80=0.95)) == pytest.approx(76.0125)
    assert AGES.interval(distribution(b0=0.05, b80=0.95)) == (76.0, 80.4)


def test_the_interval_is_widened_up_to_an_estimate_above_it():
    # 0.95 in 0.25 and 0.05 in 80: the quantiles are 0.1 / 0.95 * 0.625 = 0.066 and 0.9 / 0.95 * 0.625 = 0.59,
    # but the expected age is 4.2375: the high end moves up to it (rounded outwards, 4.3).
    assert AGES.expected_age(distribution(b0=0.95, b80=0.05)) == pytest.approx(4.2375)
    assert AGES.interval(distribution(b0=0.95, b80=0.05)) == (0.0, 4.3)


@pytest.mark.parametrize("seed", range(20))
def test_the_estimate_is_never_outside_its_interval(seed):
    rng = np.random.default_rng(seed)
    mass = rng.dirichlet(np.full(81, 0.05))       # spiky, often skewed
    low, high = AGES.interval(mass)
    assert low <= AGES.expected_age(mass) <= high
    assert 0.0 <= low <= high <= 80.5


# --- onto the lifespan bins (0.25, 1, ..., 100; tests/unit/test_lifespan.py has the mapping itself) -----------------

def test_bins_that_are_not_lifespan_bins_are_named_in_the_refusal():
    # The first three bins are shown: enough to see which model it was.
    with pytest.raises(ValueError, match=r"^age bins \[0\.5 1\.  2\. \]\.\.\. are not lifespan bins$"):
        on_lifespan(np.ones((1, 5)), [0.5, 1, 2, 3, 4])


def test_the_mapping_keeps_the_networks_precision():
    mapped = on_lifespan(np.full((1, 2), 0.5, np.float32), [0.25, 1.0])
    assert mapped.dtype == np.float32 and mapped.shape == (1, 101) and mapped[0, :3].tolist() == [0.5, 0.5, 0.0]
