"""The expression networks' input, one function for serving and training alike."""

from __future__ import annotations

import numpy as np


def network_input(grey: np.ndarray) -> np.ndarray:
    """(n, size, size) uint8 grey crops to the networks' input: (n, size, size, 1) float32 in [-1, 1]
    (the mini-Xception's scaling, which the project's network was trained with too)."""
    return np.asarray(grey).astype(np.float32)[..., None] / 127.5 - 1.0
