"""The label vocabulary every layer shares: the seven expressions and the two genders, in the networks' order.

The expression order is the output order of both expression networks and the order of the legacy codes
10001..10007; the gender order is the legacy codes 30001 (male), 30002 (female).
"""

from __future__ import annotations

import numpy as np

EXPRESSIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
GENDERS = ("male", "female")


def dominant(expression: np.ndarray) -> str:
    """The most probable expression of one (7,) probability vector; a tie goes to the earlier label."""
    return EXPRESSIONS[int(np.argmax(expression))]
