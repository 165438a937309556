"""Every real-footage truth file parses and holds together (the clips themselves are not needed)."""

from __future__ import annotations

import csv

import pytest

from bench.real_footage.clips import ALL_NAMES, STEP
from bench.real_footage.truth import (AGE_BANDS, EXPRESSIONS, GENDERS, KINDS, SOURCES, TRUTH, labelled_clips, load)

CLIPS = labelled_clips()


def test_the_five_shared_clips_have_truth():
    assert set(CLIPS) >= {"walking_three.gif", "headpose_two.gif", "office_three.avi", "bedroom_two_children.mp4",
                          "armwrestling.mp4"}
    assert set(CLIPS) <= set(ALL_NAMES)


@pytest.mark.parametrize("name", CLIPS)
def test_truth_is_consistent(name):
    truth = load(name)
    assert truth.frames == tuple(range(0, truth.frames[-1] + 1, STEP)), "every 5th frame from 0, none left out"
    labelled = set(truth.frames)
    for box in truth.boxes:
        where = f"{name} frame {box.frame} {box.box}"
        assert box.frame in labelled, where
        assert box.kind in KINDS and box.source in SOURCES, where
        assert 0 <= box.x1 < box.x2 <= truth.width and 0 <= box.y1 < box.y2 <= truth.height, where
        if box.kind == "face":
            assert box.identity in truth.identities, f"{where}: identity {box.identity} is not described"
        if box.kind in ("not_face", "small"):
            assert box.identity == 0, where
    faces = [(box.frame, box.identity) for box in truth.boxes if box.kind == "face"]
    assert len(faces) == len(set(faces)), f"{name}: one identity twice in a frame"
    for identity in truth.identities.values():
        assert (identity.gender, identity.age_band) in {(g, a) for g in GENDERS for a in AGE_BANDS}
        assert identity.expression in EXPRESSIONS + ("unknown",) and identity.description
    for (frame, identity), label in truth.expressions.items():
        assert (frame, identity) in set(faces), f"{name}: expression of a face not labelled, frame {frame}"
        assert label in EXPRESSIONS


def test_identities_file_names_only_labelled_clips_and_no_identity_twice():
    with open(TRUTH / "identities.csv", newline="") as handle:
        rows = [(row["clip"], row["identity"]) for row in csv.DictReader(handle)]
    assert len(rows) == len(set(rows))
    assert {clip for clip, _ in rows} <= set(CLIPS)
