"""An age distribution over bins (the dlib-models network's 81: 0.25, 1, ..., 80 years): its expected age and
its central interval. Shared by the network and the heads, which all answer with such a distribution."""

from __future__ import annotations

import math

import numpy as np


class AgeDistribution:
    """Point estimate and interval of an 81-bin age distribution; ``bin_ages`` is each bin's age in years."""
    bin_ages: np.ndarray

    def expected_age(self, distributions: np.ndarray) -> np.ndarray:
        return np.asarray(distributions, dtype=np.float64) @ self.bin_ages

    def interval(self, distribution: np.ndarray, mass: float = 0.8) -> tuple[float, float]:
        """Central interval holding at least ``mass`` of the distribution, in years (to 0.1 year).

        It is widened, where needed, to include the expected age: on a skewed
        distribution (most mass in the top bin, 80) the mean can sit just
        outside the central quantiles, and an estimate outside its own interval
        reads as a bug. Each bin is spread evenly between the midpoints to its neighbours, so
        quantiles fall between bin centres; with bare bin centres a face that is
        90% "80" would get [80, 80] around an expected age of 79.9.
        """
        tail = (1 - mass) / 2
        low, high = np.interp([tail, 1 - tail], self.cdf_at_edges(distribution), self.bin_edges)
        expected = float(self.expected_age(distribution / np.sum(distribution)))
        # Rounded outwards, so rounding never moves a bound past the estimate.
        return math.floor(min(low, expected) * 10) / 10, math.ceil(max(high, expected) * 10) / 10

    @property
    def bin_edges(self) -> np.ndarray:
        middles = (self.bin_ages[1:] + self.bin_ages[:-1]) / 2
        return np.concatenate([[0.0], middles, [self.bin_ages[-1] + 0.5]])

    def cdf_at_edges(self, distribution: np.ndarray) -> np.ndarray:
        cumulative = np.cumsum(distribution) / np.sum(distribution)
        return np.concatenate([[0.0], cumulative])
