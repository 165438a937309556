"""Age distributions over the lifespan bins (0.25, 1, 2, ..., 100 years): the expected age and the central
interval. Every age model answers over these 101 bins, so averaging over frames, the interval and the legacy
integer work the same whatever model answered. The dlib-models network's 81 bins (0.25, 1, ..., 80) are the
first 81 (``on_lifespan``); heads trained on UTKFace may put mass above 80."""

from __future__ import annotations

import math

import numpy as np

# Bin 0 stands for babies under a year, as in the dlib network (0.25).
LIFESPAN_BINS = np.concatenate([[0.25], np.arange(1, 101)]).astype(np.float64)


def on_lifespan(distributions: np.ndarray, bin_ages: np.ndarray) -> np.ndarray:
    """(n, len(bin_ages)) distributions over ``bin_ages``, a subset of ``LIFESPAN_BINS``, as (n, 101)."""
    bin_ages = np.asarray(bin_ages, np.float64)
    columns = np.searchsorted(LIFESPAN_BINS, bin_ages)
    if len(bin_ages) and (columns.max() >= len(LIFESPAN_BINS) or not np.array_equal(LIFESPAN_BINS[columns], bin_ages)):
        raise ValueError(f"age bins {bin_ages[:3]}... are not lifespan bins")
    distributions = np.asarray(distributions)
    out = np.zeros((len(distributions), len(LIFESPAN_BINS)), distributions.dtype)
    out[:, columns] = distributions
    return out


class AgeDistribution:
    """Point estimate and interval of an age distribution; ``bin_ages`` is each bin's age in years."""
    bin_ages: np.ndarray = LIFESPAN_BINS

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
