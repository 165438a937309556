"""IDF1 and persons per identity on hand-made labellings, worked out by hand."""

from __future__ import annotations

import pytest

from training.tracking_metrics import idf1, persons_per_identity


def test_perfect_tracking_whatever_the_ids():
    assert idf1(["A", "A", "B"], [7, 7, 3]) == 1.0


def test_one_person_for_two_identities_matches_only_one():
    # A (3 faces) and B (2) both became person 1: the best one-to-one match is A-1, 3 of 5 faces.
    assert idf1(list("AAABB"), [1, 1, 1, 1, 1]) == pytest.approx(3 / 5)


def test_an_identity_split_in_two_counts_its_larger_part():
    # A's 4 faces split 3 + 1 over persons 1 and 2; B's 2 faces are person 3: 3 + 2 of 6.
    assert idf1(list("AAAABB"), [1, 1, 1, 2, 3, 3]) == pytest.approx(5 / 6)


def test_the_match_is_one_to_one_and_optimal():
    # Counts A: {1: 2, 2: 2}, B: {1: 3}. Taking the first largest cell for A (A-1, 2 faces) leaves B nothing;
    # the optimum is A-2 (2) + B-1 (3) = 5 of 7.
    assert idf1(list("AAAABBB"), [1, 1, 2, 2, 1, 1, 1]) == pytest.approx(5 / 7)


def test_nothing_to_track_is_perfect_and_lengths_must_agree():
    assert idf1([], []) == 1.0
    with pytest.raises(ValueError):
        idf1(["A"], [])


def test_persons_per_identity():
    assert persons_per_identity(list("AAABB"), [1, 2, 1, 3, 3]) == {"A": 2, "B": 1}


def test_a_length_mismatch_says_both_lengths():
    with pytest.raises(ValueError, match="^1 true labels for 0 predictions$"):
        idf1(["A"], [])


def test_labels_of_mixed_types_are_fine():
    # Identities and person ids need not be comparable with each other: they are ordered by their text.
    assert idf1(["A", "A", 3], [1, 1, "x"]) == 1.0
    assert persons_per_identity(["A", 3, 3], [1, "x", 2]) == {3: 2, "A": 1}


def test_identities_are_listed_in_the_order_of_their_names():
    found = persons_per_identity(["B", "B", "A"], [1, 2, 3])
    assert list(found.items()) == [("A", 1), ("B", 2)]
