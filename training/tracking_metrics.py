"""Identity metrics of multi-object tracking, on faces whose true identity is known.

IDF1 (Ristani et al. 2016): true identities and predicted ids are matched one to one so that the matched faces
are as many as possible (the Hungarian algorithm on the co-occurrence counts); IDTP is that number, and
IDF1 = 2 IDTP / (true faces + predicted faces). Here both are the detected faces (a face's truth comes from
where it was detected), so IDF1 = IDTP / faces: the share of faces whose person is their identity's person.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
from scipy.optimize import linear_sum_assignment


def idf1(truth: list, predicted: list) -> float:
    """IDF1 of faces labelled ``truth`` (true identities) and ``predicted`` (person ids), one entry per face."""
    if len(truth) != len(predicted):
        raise ValueError(f"{len(truth)} true labels for {len(predicted)} predictions")
    if not truth:
        return 1.0
    true_ids, predicted_ids = sorted(set(truth), key=str), sorted(set(predicted), key=str)
    counts = np.zeros((len(true_ids), len(predicted_ids)))
    for (true_id, predicted_id), count in Counter(zip(truth, predicted)).items():
        counts[true_ids.index(true_id), predicted_ids.index(predicted_id)] = count
    rows, columns = linear_sum_assignment(-counts)
    return 2 * float(counts[rows, columns].sum()) / (2 * len(truth))


def persons_per_identity(truth: list, predicted: list) -> dict:
    """For each true identity, how many distinct predicted persons its faces got."""
    found: dict = {}
    for true_id, predicted_id in zip(truth, predicted):
        found.setdefault(true_id, set()).add(predicted_id)
    return {true_id: len(ids) for true_id, ids in sorted(found.items(), key=lambda item: str(item[0]))}
