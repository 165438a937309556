"""Every real-footage truth file parses and holds together (the clips themselves are not needed)."""

from __future__ import annotations

import csv

import pytest

from bench.real_footage.clips import ALL_NAMES, STEP
from bench.real_footage.truth import AGE_BANDS, EXPRESSIONS, GENDERS, KINDS, SOURCES, TRUTH, labelled_clips, load

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


def test_labelling_decisions_become_truth_rows(tmp_path):
    from bench.real_footage.label import apply

    (tmp_path / "candidates.csv").write_text(
        "cand,frame,x1,y1,x2,y2,confidence,pipeline_person,source,track\n"
        "1,0,10,10,50,50,0.99,,permissive,1\n"
        "2,0,60,10,70,20,0.60,,permissive,2\n"
        "3,5,12,10,52,50,0.98,,permissive,1\n")
    decisions = tmp_path / "decisions.txt"
    decisions.write_text("T1 1   # the track\nT2 not_face\nc3 unsure 1\nexpr T1 happy\n"
                         "hand 5 2 80 10 100 40\nhand 0 small 1 1 9 9\n")
    boxes, expressions = apply(tmp_path, decisions)
    rows = [(b.frame, b.identity, b.kind, b.source) for b in boxes]
    # c3's own line wins over its track's; a hand-drawn face keeps its identity, a small one gets 0.
    assert rows == [(0, 0, "small", "hand"), (0, 1, "face", "detector"), (0, 0, "not_face", "detector"),
                    (5, 1, "unsure", "detector"), (5, 2, "face", "hand")]
    # The expression of track 1 is kept only on its faces: frame 0, not the unsure box of frame 5.
    assert expressions == {(0, 1): "happy"}
    decisions.write_text("T1 1\n")
    with pytest.raises(SystemExit, match="2"):
        apply(tmp_path, decisions)
