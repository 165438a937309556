"""The real-footage benchmark's scoring on hand-made frames, every expected value worked out by hand."""

from __future__ import annotations

import pytest

from bench.real_footage.metrics import (
    PHANTOM_SHARE,
    age_band,
    expression_table,
    frame_records,
    id_scores,
    id_switches,
    identity_answers,
    iou_matrix,
    match_frame,
    person_report,
    score_clip,
)
from bench.real_footage.truth import ClipTruth, Identity, TruthBox


def strip(x1, x2):
    """A box 10 px high over [x1, x2]: the IoU of two strips is that of their intervals."""
    return (x1, 0, x2, 10)


def face(person, box, expression=None):
    out = {"person": person, "box": list(box)}
    if expression:
        out["expression"] = {name: (0.9 if name == expression else 0.1 / 6)
                             for name in ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")}
        out["expression"]["dominant"] = expression
    return out


def clip(boxes, frames, identities=(), expressions=None):
    return ClipTruth("hand", 100, 100, tuple(frames), tuple(boxes),
                     {i.identity: i for i in identities}, expressions or {})


# --- boxes and matching ---------------------------------------------------------------------------------------

def test_iou_of_overlapping_identical_and_disjoint_boxes():
    # [0,10] and [5,15] share 5 of 15 px.
    assert iou_matrix([strip(0, 10)], [strip(5, 15), strip(0, 10), strip(20, 30)])[0] == pytest.approx(
        [1 / 3, 1.0, 0.0])


def test_a_pair_matches_from_iou_one_half_and_not_under():
    # [0,10] against [0,20]: 10 of 20 = 0.5, matched; against [0,20.5]: 10 of 20.5 = 0.488, not.
    assert match_frame([strip(0, 10)], [strip(0, 20)]) == [(0, 0)]
    assert match_frame([strip(0, 10)], [strip(0, 20.5)]) == []


def test_matching_is_optimal_not_greedy():
    # A=[0,10], B=[2,11]; P1=[0,9], P2=[-3,7]. IoU A-P1 0.9, A-P2 7/13=0.538, B-P1 7/11=0.636, B-P2 5/14=0.357.
    # Greedy takes A-P1 first and leaves B alone; the optimum pairs A-P2 and B-P1.
    assert sorted(match_frame([strip(0, 10), strip(2, 11)], [strip(0, 9), strip(-3, 7)])) == [(0, 1), (1, 0)]


# --- IDF1 and ID switches -------------------------------------------------------------------------------------

def two_people_clip():
    """Identity 1 on frames 0-3 answered as person 10; identity 2 answered as 20 on frames 0-1 and 30 on 2-3;
    person 40 on frame 3 where nothing is labelled."""
    boxes, timeline = [], []
    for frame in range(4):
        boxes += [TruthBox(frame, 1, *strip(0, 10)), TruthBox(frame, 2, *strip(50, 60))]
        faces = [face(10, strip(0, 10)), face(20 if frame < 2 else 30, strip(50, 60))]
        if frame == 3:
            faces.append(face(40, strip(80, 90)))
        timeline.append({"frame": frame, "faces": faces})
    return clip(boxes, range(4)), {"timeline": timeline, "persons": []}


def test_idf1_counts_the_best_one_to_one_assignment_over_the_clip():
    truth, answer = two_people_clip()
    scores = id_scores(frame_records(truth, answer))
    # 1->10 (4) and 2->20 or 30 (2): IDTP 6. Truth 8 faces: IDFN 2. Predicted 4+2+2+1 = 9: IDFP 3.
    assert (scores["idtp"], scores["idfn"], scores["idfp"]) == (6, 2, 3)
    assert scores["idf1"] == pytest.approx(12 / 17)


def test_an_id_switch_is_counted_once_and_a_missed_frame_does_not_reset_it():
    truth, answer = two_people_clip()
    assert id_switches(frame_records(truth, answer)) == 1      # identity 2: 20 -> 30
    # Identity 1 missed on frame 1 (no prediction there), person 10 before and after: no switch.
    answer["timeline"][1]["faces"] = answer["timeline"][1]["faces"][1:]
    assert id_switches(frame_records(truth, answer)) == 1
    # Identity 1 answered 11 on frame 2, then 10 again on frame 3: two switches.
    answer["timeline"][2]["faces"][0]["person"] = 11
    assert id_switches(frame_records(truth, answer)) == 3


def test_small_and_unsure_faces_are_left_out_and_not_faces_count_as_false():
    boxes = [TruthBox(0, 1, *strip(0, 10)), TruthBox(0, 0, *strip(20, 30), kind="small"),
             TruthBox(0, 0, *strip(40, 50), kind="unsure"), TruthBox(0, 0, *strip(60, 70), kind="not_face")]
    truth = clip(boxes, [0])
    # Every box answered as person 1: the face is an IDTP, small and unsure are left out, not_face is an IDFP.
    answer = {"timeline": [{"frame": 0, "faces": [face(1, strip(x, x + 10)) for x in (0, 20, 40, 60)]}]}
    scores = id_scores(frame_records(truth, answer))
    assert (scores["idtp"], scores["idfp"], scores["idfn"]) == (1, 1, 0)
    assert scores["idf1"] == pytest.approx(2 / 3)
    # A small face nobody answered is no miss: still no IDFN.
    answer["timeline"][0]["faces"] = answer["timeline"][0]["faces"][:1]
    assert id_scores(frame_records(truth, answer))["idf1"] == 1.0


def test_a_labelled_frame_without_a_face_makes_every_answer_on_it_false():
    truth = clip([], [0])
    answer = {"timeline": [{"frame": f, "faces": [face(1, strip(0, 10))]} for f in (0, 1)]}
    # Frame 1 is not labelled: not scored. Frame 0 is, and has no truth box: one IDFP, IDF1 0.
    scores = id_scores(frame_records(truth, answer))
    assert (scores["idtp"], scores["idfp"], scores["idfn"], scores["idf1"]) == (0, 1, 0, 0.0)


# --- phantoms -------------------------------------------------------------------------------------------------

def phantom_case(not_faces: int, faces: int, small: int = 0):
    """One person answered on `faces` labelled faces, `not_faces` not-face boxes (half on not_face truth, the
    rest on no truth) and `small` small faces, one box per frame."""
    boxes, timeline, frame = [], [], 0
    for kind, count in (("face", faces), ("not_face", not_faces - not_faces // 2), ("none", not_faces // 2),
                        ("small", small)):
        for _ in range(count):
            if kind != "none":
                boxes.append(TruthBox(frame, 1 if kind == "face" else 0, *strip(0, 10), kind=kind))
            timeline.append({"frame": frame, "faces": [face(7, strip(0, 10))]})
            frame += 1
    return person_report(frame_records(clip(boxes, range(frame)), {"timeline": timeline}))[7]


def test_a_person_is_a_phantom_only_when_over_half_its_judged_boxes_are_not_faces():
    assert PHANTOM_SHARE == 0.5
    assert phantom_case(not_faces=2, faces=2)["phantom"] is False      # 2 of 4 = 0.5: not over
    assert phantom_case(not_faces=3, faces=2)["phantom"] is True       # 3 of 5 = 0.6
    report = phantom_case(not_faces=3, faces=2)
    assert (report["not_face"], report["no_truth"], report["faces"]) == (2, 1, {1: 2})


def test_small_faces_are_left_out_of_the_phantom_share():
    # 1 face, 1 not-face, 5 small: 1 of 2 judged = 0.5, not a phantom (with small ones counted as faces or not
    # faces it would be 1/7 or 6/7).
    assert phantom_case(not_faces=1, faces=1, small=5)["phantom"] is False
    # Only small faces: nothing judged, not a phantom.
    assert phantom_case(not_faces=0, faces=0, small=3)["phantom"] is False


# --- per identity -------------------------------------------------------------------------------------------------

def test_age_bands_at_their_edges():
    assert [age_band(a) for a in (12.99, 13.0, 19.99, 20.0)] == ["child", "teen", "teen", "adult"]


def person(pid, male, age, dominant):
    return {"id": pid, "gender": {"male": male, "female": 1 - male}, "age": {"value": age},
            "expression": {"dominant": dominant}}


def test_each_identity_is_judged_on_the_person_holding_most_of_its_faces_a_tie_to_the_lower_id():
    boxes = [TruthBox(f, 1, *strip(0, 10)) for f in range(4)] + [TruthBox(0, 2, *strip(50, 60))]
    truth = clip(boxes, range(4), [Identity("hand", 1, "male", "child", "happy", ""),
                                   Identity("hand", 2, "female", "unknown", "unknown", "")])
    # Identity 1: person 5 on frames 0 and 1, person 3 on 2 and 3 (a tie: person 3); identity 2: person 5.
    timeline = [{"frame": f, "faces": [face(5 if f < 2 else 3, strip(0, 10))] + (
        [face(5, strip(50, 60))] if f == 0 else [])} for f in range(4)]
    answer = {"timeline": timeline, "persons": [person(3, 0.7, 12.5, "happy"), person(5, 0.2, 30.0, "sad")]}
    rows = identity_answers(truth, answer, frame_records(truth, answer))
    assert rows[1]["person"] == 3 and (rows[1]["gender"], rows[1]["age_band"], rows[1]["expression"]) == (
        True, True, True)
    # Identity 2 is female (person 5: male 0.2, right); age and expression unknown, not judged.
    assert rows[2]["person"] == 5 and (rows[2]["gender"], rows[2]["age_band"], rows[2]["expression"]) == (
        True, None, None)
    # Person 3 at 13.0 years is a teen: the child's age band is then wrong.
    answer["persons"][0]["age"]["value"] = 13.0
    assert identity_answers(truth, answer, frame_records(truth, answer))[1]["age_band"] is False


# --- expressions ----------------------------------------------------------------------------------------------

def test_expression_table_recall_and_confusion():
    pairs = [("happy", "happy")] * 3 + [("happy", "sad")] + [("neutral", "sad")] * 2 + [("neutral", "neutral")]
    table = expression_table(pairs, ("happy", "sad", "neutral"))
    assert table["recall"] == {"happy": 0.75, "sad": None, "neutral": pytest.approx(1 / 3)}
    assert table["confusion"]["neutral"] == {"happy": 0, "sad": 2, "neutral": 1}
    assert table["accuracy"] == pytest.approx(4 / 7)


def test_score_clip_takes_the_face_expression_of_matched_labelled_faces_only():
    boxes = [TruthBox(0, 1, *strip(0, 10)), TruthBox(1, 1, *strip(0, 10))]
    truth = clip(boxes, [0, 1], [Identity("hand", 1, "male", "adult", "neutral", "")], {(0, 1): "neutral"})
    answer = {"timeline": [{"frame": 0, "faces": [face(1, strip(0, 10), "sad")]},
                           {"frame": 1, "faces": [face(1, strip(0, 10), "happy")]}],
              "persons": [person(1, 0.9, 40.0, "neutral")]}
    row = score_clip(truth, answer)
    # Frame 1's face has no expression label: only frame 0's pair.
    assert row["expression_pairs"] == [("neutral", "sad")]
    assert (row["identities"], row["persons"], row["phantoms"], row["idf1"]) == (1, 1, 0, 1.0)
    assert (row["gender"], row["age_band"], row["expression"]) == ((1, 1), (1, 1), (1, 1))
