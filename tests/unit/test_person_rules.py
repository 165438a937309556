"""The rules that form persons on real footage, each on both sides of its threshold, with hand-made landmarks,
crops, spans and embeddings: the face gate (gate.py), per-face quality (quality.py), evidence and confidence
(persons.py), hand-over within a shot and the quality gallery (tracking.py)."""

from __future__ import annotations

import numpy as np
import pytest

from faceanalysis.pipeline import persons, quality
from faceanalysis.pipeline.detector import stage_thresholds
from faceanalysis.pipeline.gate import BLANK, DOUBTFUL, GEOMETRY, PASSED, FaceGate, SecondLook, crop_around
from faceanalysis.pipeline.quality import FLOOR, QualityRules, pose, ramp
from faceanalysis.pipeline.tracking import Span, Tracker, handovers
from test_tracking import FACE_A, FakeBatch, box, scene

# A frontal face in the box [0, 0, 100, 100]: eyes 40 px apart at y 40, nose centred at y 60, mouth at y 80.
BOX = [0.0, 0.0, 100.0, 100.0]
EYES = [(30.0, 40.0), (70.0, 40.0)]


def landmarks(nose=(50.0, 60.0), mouth_y=80.0, eyes=EYES) -> np.ndarray:
    return np.asarray([[*eyes, nose, (35.0, mouth_y), (65.0, mouth_y)]], np.float64)


def gate_reason(gate=FaceGate(), lm=None, box_=BOX, confidence=0.995, sharp=100.0, agrees=None):
    return gate.check(np.asarray([box_]), np.asarray([confidence]), landmarks() if lm is None else lm,
                      np.asarray([sharp]), None if agrees is None else np.asarray([agrees]))[0]


# --- the face gate ----------------------------------------------------------------------------------------------

def test_a_frontal_face_passes():
    assert gate_reason() == PASSED


@pytest.mark.parametrize("mouth_y, passes", [(60.0, True), (59.0, False), (140.0, True), (141.0, False)])
def test_the_mouth_must_be_half_to_two_and_a_half_eye_distances_below_the_eyes(mouth_y, passes):
    # eye distance 40: height 20 is 0.5 (the minimum), 19 is 0.475; 100 is 2.5 (the maximum), 101 is 2.525
    assert gate_reason(lm=landmarks(nose=(50.0, 50.0), mouth_y=mouth_y)) == (PASSED if passes else GEOMETRY)


def test_a_mouth_above_the_eyes_is_no_face():
    assert gate_reason(lm=landmarks(nose=(50.0, 30.0), mouth_y=10.0)) == GEOMETRY


def test_geometry_is_measured_along_the_eye_line_so_a_tilted_face_passes():
    angle = np.radians(35)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    turned = (landmarks()[0] - 50) @ rotation.T + 50
    assert gate_reason(lm=turned[None]) == PASSED


@pytest.mark.parametrize("half, passes", [(9.0, True), (8.5, False), (35.0, True), (35.5, False)])
def test_the_eye_distance_must_be_0_18_to_0_7_of_the_box_width(half, passes):
    # eyes at 50 -+ half on a 100 px box: 18 px is 0.18, 17 px 0.17, 70 px 0.7, 71 px 0.71
    eyes = [(50.0 - half, 40.0), (50.0 + half, 40.0)]
    assert gate_reason(lm=landmarks(eyes=eyes, mouth_y=40.0 + 2 * half)) == (PASSED if passes else GEOMETRY)


@pytest.mark.parametrize("nose_x, passes", [(82.0, True), (83.0, False), (18.0, True), (17.0, False)])
def test_the_nose_may_be_at_most_1_6_half_eye_distances_off_centre(nose_x, passes):
    # half eye distance 20: an offset of 32 px is 1.6, 33 px is 1.65
    assert gate_reason(lm=landmarks(nose=(nose_x, 60.0))) == (PASSED if passes else GEOMETRY)


@pytest.mark.parametrize("sharp, passes", [(15.0, True), (14.9, False)])
def test_a_crop_without_detail_is_blank(sharp, passes):
    assert gate_reason(sharp=sharp) == (PASSED if passes else BLANK)


@pytest.mark.parametrize("confidence, agrees, reason", [
    (0.99, None, PASSED),            # sure: no second opinion needed
    (0.989, None, DOUBTFUL),         # doubtful and not asked
    (0.989, False, DOUBTFUL),        # the second opinion finds no face there
    (0.989, True, PASSED)])          # ... or finds one
def test_below_the_sure_confidence_the_second_opinion_decides(confidence, agrees, reason):
    assert gate_reason(confidence=confidence, agrees=agrees) == reason


def test_without_a_second_opinion_confidence_alone_does_not_reject():
    assert gate_reason(FaceGate(second_opinion=False), confidence=0.9) == PASSED
    assert FaceGate(second_opinion=False).doubtful(np.array([0.5])).tolist() == [False]
    assert FaceGate().doubtful(np.array([0.989, 0.99])).tolist() == [True, False]


def test_the_first_failed_rule_is_the_reason():
    # bad geometry, no detail and doubtful at once: geometry is reported
    assert gate_reason(lm=landmarks(nose=(50.0, 30.0), mouth_y=10.0), sharp=0.0, confidence=0.5) == GEOMETRY
    assert gate_reason(sharp=0.0, confidence=0.5) == BLANK


def test_given_crops_without_landmarks_are_not_judged_on_geometry():
    assert gate_reason(lm=np.full((1, 5, 2), np.nan)) == PASSED


def test_the_crop_for_the_second_opinion_is_the_box_with_its_margin():
    frame = np.zeros((200, 200, 3), np.uint8)
    frame[50:150, 50:150] = 255                      # the box, white; around it black
    crop = crop_around(frame, [50, 50, 150, 150], 0.25, 150)
    # the box is 100 px, 150 px with 25 px per side: scale 1, the white square from 25 to 125
    assert crop[75, 75].tolist() == [255, 255, 255] and crop[10, 10].tolist() == [0, 0, 0]
    assert crop[24, 75].tolist() == [0, 0, 0] and crop[26, 75].tolist() == [255, 255, 255]


# --- per-face quality ---------------------------------------------------------------------------------------------

def test_the_second_look_asks_a_tracklets_first_doubtful_face_then_every_fifth():
    """One tracklet (7), doubtful in 12 faces: asked at its faces 0, 5 and 10, the third ask being the last."""
    look = SecondLook(max_asks=3, ask_every=5)
    rows = look.choose(np.full(12, 7), np.zeros(12, bool))
    assert rows.tolist() == [0, 5, 10] and look.asked == 3
    # max_asks reached: its next faces are not asked about, however far apart
    assert look.choose(np.full(10, 7), np.zeros(10, bool)).tolist() == []


def test_the_ask_spacing_counts_the_tracklets_faces_across_batches():
    """Faces 0-3 in one batch (asked at 0), 4 in the next: not asked (4 < 0 + 5); face 5, in a third: asked."""
    look = SecondLook(max_asks=3, ask_every=5)
    assert look.choose(np.full(4, 1), np.zeros(4, bool)).tolist() == [0]
    assert look.choose(np.array([1]), np.array([False])).tolist() == []
    assert look.choose(np.array([1]), np.array([False])).tolist() == [0]


def test_a_tracklet_with_a_sure_face_is_not_asked_about():
    """Tracklet 2's first face is sure: its later doubtful faces are not asked; tracklet 3 beside it is."""
    look = SecondLook(max_asks=3, ask_every=1)
    rows = look.choose(np.array([2, 3, 2, 3]), np.array([True, False, False, False]))
    assert rows.tolist() == [1, 3]


def test_a_face_the_cnn_finds_makes_its_tracklet_sure():
    look = SecondLook(max_asks=3, ask_every=1)
    assert look.choose(np.array([4, 5]), np.array([False, False])).tolist() == [0, 1]
    look.record(np.array([4, 5]), np.array([True, False]))
    assert look.choose(np.array([4, 5]), np.array([False, False])).tolist() == [1]


@pytest.mark.parametrize("min_confidence, expected", [
    (0.9, (0.6, 0.7, 0.8)),          # above both: the package's thresholds
    (0.8, (0.6, 0.7, 0.8)),          # O-Net's own
    (0.75, (0.6, 0.7, 0.75)),        # between: O-Net lowered only
    (0.6, (0.6, 0.6, 0.6)),          # R-Net and O-Net lowered; P-Net never
    (0.5, (0.6, 0.5, 0.5)),
])
def test_a_lower_min_confidence_lowers_r_net_and_o_net_not_p_net(min_confidence, expected):
    assert stage_thresholds(min_confidence) == pytest.approx(expected)


def test_ramp_runs_from_the_floor_at_bad_to_one_at_good():
    assert ramp(np.array([10.0, 20.0, 40.0, 60.0, 90.0]), 20.0, 60.0).tolist() == pytest.approx(
        [FLOOR, FLOOR, FLOOR + 0.9 * 0.5, 1.0, 1.0])
    # a falling ramp (|yaw|: smaller is better)
    assert ramp(np.array([0.0, 0.675, 1.0, 2.0]), 1.0, 0.35).tolist() == pytest.approx(
        [1.0, FLOOR + 0.9 * 0.5, FLOOR, FLOOR])


def test_pose_of_a_frontal_and_a_turned_face():
    yaw, pitch, eyes, height = pose(np.concatenate([landmarks(), landmarks(nose=(60.0, 50.0))]))
    # frontal: nose centred, 20 of 40 px down to the mouth; turned: 10 px right over a half distance of 20
    assert yaw.tolist() == pytest.approx([0.0, 0.5]) and pitch.tolist() == pytest.approx([0.5, 0.25])
    assert eyes.tolist() == [40.0, 40.0] and height.tolist() == [40.0, 40.0]
    yaw_degrees, pitch_degrees = quality.degrees(yaw, pitch)
    assert yaw_degrees.tolist() == pytest.approx([0.0, 30.0]) and pitch_degrees.tolist() == pytest.approx([0.0, -30.0])


def test_sharpness_is_zero_on_a_flat_crop_and_high_on_a_checkerboard():
    flat = np.full((1, 48, 48), 128, np.uint8)
    board = ((np.indices((48, 48)).sum(0) % 2) * 255).astype(np.uint8)[None]
    assert quality.sharpness(flat).tolist() == [0.0]
    # every inner pixel's Laplacian is +-4 * 255 = +-1020, so the variance is about 1020 ** 2
    assert quality.sharpness(board)[0] > 900_000


def test_weight_is_the_product_of_the_ramps_and_never_below_the_floor():
    rules = QualityRules()
    good = quality.weight([60.0], [250.0], [0.35], [0.5], rules)
    assert good.tolist() == [1.0]
    half_size = quality.weight([40.0], [250.0], [0.0], [0.5], rules)         # size halfway: 0.55
    assert half_size.tolist() == pytest.approx([0.55])
    two_halves = quality.weight([40.0], [87.5], [0.0], [0.5], rules)         # 0.55 * 0.55
    assert two_halves.tolist() == pytest.approx([0.3025])
    worst = quality.weight([10.0], [0.0], [2.0], [0.0], rules)
    assert worst.tolist() == [FLOOR]
    assert quality.weight([60.0], [250.0], [np.nan], [0.5], rules).tolist() == [1.0]   # no landmarks: no pose
    dark, bright = quality.weight([60.0, 60.0], [250.0, 250.0], [0.0, 0.0], [0.08, 0.95], rules)
    assert (dark, bright) == (pytest.approx(FLOOR), pytest.approx(FLOOR))


def test_measure_puts_the_columns_together():
    crops = np.full((1, 48, 48), 51, np.uint8)                     # brightness 0.2, no detail
    measured = quality.measure(np.asarray([BOX]), landmarks(), crops)
    assert measured.size.tolist() == [100.0] and measured.brightness.tolist() == pytest.approx([0.2])
    assert measured.table().shape == (1, 6) and measured.take([0]).weight.tolist() == measured.weight.tolist()


# --- evidence, confidence, uncertainty ------------------------------------------------------------------------------

@pytest.mark.parametrize("min_frames, read, required", [(5, 100, 5), (5, 5, 5), (5, 3, 3), (5, 0, 1)])
def test_required_frames_is_min_frames_or_every_frame_read(min_frames, read, required):
    assert persons.required_frames(min_frames, read) == required


ALL_SURE = {1: 9, 2: 9, 3: 9}


def test_a_person_needs_the_required_frames():
    assert persons.listed({1: 5, 2: 4, 3: 9}, ALL_SURE, 5) == [1, 3]
    assert persons.listed({1: 4, 2: 5}, ALL_SURE, 5) == [2]


@pytest.mark.parametrize("sure, listed", [(1, [1, 2]), (0, [2])])
def test_a_person_needs_one_sure_face(sure, listed):
    assert persons.MIN_SURE == 1
    assert persons.listed({1: 20, 2: 6}, {1: sure, 2: 1}, 5) == listed


def test_when_nobody_qualifies_the_one_seen_most_is_listed():
    assert persons.listed({1: 3, 2: 4}, ALL_SURE, 5) == [2]
    assert persons.listed({1: 4, 2: 4}, ALL_SURE, 5) == [1]           # a tie: who appeared first
    assert persons.listed({1: 30, 2: 4}, {1: 0, 2: 0}, 5) == [1]      # only doubtful faces: still answered
    assert persons.listed({}, {}, 5) == []


def test_when_nobody_qualifies_only_a_track_with_the_frames_or_a_sure_face_is_listed():
    """The fallback reads only tracks with the required frames (5 here) or a sure face: 5 doubtful frames are
    enough, 4 are not; a 2-frame track with a sure face beats a 4-frame doubtful one; two doubtful frames of
    lettering alone answer nobody."""
    assert persons.listed({1: 5}, {1: 0}, 5) == [1]
    assert persons.listed({1: 4}, {1: 0}, 5) == []
    assert persons.listed({1: 2, 2: 4}, {1: 1, 2: 0}, 5) == [1]
    assert persons.listed({1: 2, 2: 1}, {1: 0, 2: 0}, 5) == []
    # Three photos of one person read: 3 frames are required, and three doubtful ones still answer.
    assert persons.listed({1: 3}, {1: 0}, 3) == [1]
    # A person missing from the sure counts has no sure face: 2 is not listed beside 1, who has one.
    assert persons.listed({1: 5, 2: 6}, {1: 1}, 5) == [1]


def test_confidence_is_the_ten_best_weights_over_ten():
    assert persons.confidence(np.ones(10)) == pytest.approx(1.0)
    assert persons.confidence(np.ones(5)) == pytest.approx(0.5)
    assert persons.confidence(np.r_[np.ones(10), np.full(20, 0.1)]) == pytest.approx(1.0)
    assert persons.confidence(np.r_[np.full(20, 0.1), np.full(3, 1.0)]) == pytest.approx(0.37)
    assert persons.confidence(np.array([0.1])) == pytest.approx(0.01)


@pytest.mark.parametrize("female, uncertain", [(0.7, False), (0.69, True), (0.3, False), (0.31, True), (0.5, True)])
def test_gender_under_0_7_is_uncertain(female, uncertain):
    assert persons.gender_uncertain(np.array([1 - female, female])) is uncertain


def test_quality_summary():
    rows = np.array([[40.0, 100.0, 0.0, 0.5, 0.4, 1.0],
                     [60.0, 300.0, 0.5, 0.5, 0.6, 0.5],
                     [80.0, 200.0, -1.0, 0.5, 0.5, 0.3]])
    summary = persons.quality_summary(rows)
    assert summary == pytest.approx({"weight": 0.6, "size": 60.0, "sharpness": 200.0, "yaw": 30.0,
                                     "brightness": 0.5, "frontal": 1 / 3})


def test_a_yaw_ratio_of_exactly_0_35_counts_as_frontal():
    rows = np.array([[40.0, 100.0, 0.35, 0.5, 0.5, 1.0], [40.0, 100.0, -0.36, 0.5, 0.5, 1.0]])
    assert persons.quality_summary(rows)["frontal"] == 0.5


def test_the_quality_summary_of_given_crops_is_unknown_without_a_warning():
    """Given face crops (``faces_given``) have no landmarks or measures: every median and the frontal share
    are NaN, and numpy is not asked for the mean or median of nothing (it would warn)."""
    import warnings

    rows = np.array([[np.nan, np.nan, np.nan, np.nan, np.nan, 1.0]] * 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        summary = persons.quality_summary(rows)
    assert summary["weight"] == 1.0
    for key in ("size", "sharpness", "yaw", "brightness", "frontal"):
        assert np.isnan(summary[key]), key


# --- hand-over within a shot ---------------------------------------------------------------------------------------

NO_CHIPS = np.zeros((0, 128))


def square(x: float, side: float = 50.0) -> np.ndarray:
    return np.array([x, 0.0, x + side, side])


def chain(spans, chips=None, cuts=(), **rules) -> list[int]:
    chips = chips or [NO_CHIPS] * len(spans)
    return handovers(spans, chips, list(cuts), Tracker(**rules)).tolist()


def test_a_tracklet_starting_where_another_ended_continues_it():
    assert chain([Span(0, 10, square(0), square(0)), Span(12, 30, square(10), square(10))]) == [0, 0]


@pytest.mark.parametrize("start, continued", [(55, True), (56, False)])
def test_the_gap_is_at_most_handover_gap_analysed_frames(start, continued):
    spans = [Span(0, 10, square(0), square(0)), Span(start, start + 5, square(0), square(0))]
    assert chain(spans) == ([0, 0] if continued else [0, 1])


def test_tracklets_that_overlap_in_time_are_no_hand_over():
    assert chain([Span(0, 10, square(0), square(0)), Span(10, 20, square(0), square(0))]) == [0, 1]


@pytest.mark.parametrize("cut, continued", [(10, True), (11, False), (12, False), (13, True)])
def test_no_hand_over_across_a_shot_cut(cut, continued):
    # A last seen at 10, B first at 12: a cut at 11 or 12 is between them; at 10 A was seen after it
    spans = [Span(0, 10, square(0), square(0)), Span(12, 20, square(0), square(0))]
    assert chain(spans, cuts=[cut]) == ([0, 0] if continued else [0, 1])


@pytest.mark.parametrize("x, continued", [(50.0, True), (51.0, False)])
def test_the_new_box_must_be_within_one_box_side(x, continued):
    spans = [Span(0, 10, square(0), square(0)), Span(12, 20, square(x), square(x))]
    assert chain(spans) == ([0, 0] if continued else [0, 1])


@pytest.mark.parametrize("side, continued", [(80.0, True), (81.0, False)])
def test_the_sizes_must_be_within_1_6_times(side, continued):
    spans = [Span(0, 10, square(0), square(0)), Span(12, 20, square(0, side), square(0, side))]
    assert chain(spans) == ([0, 0] if continued else [0, 1])


@pytest.mark.parametrize("distance, continued", [(0.65, True), (0.66, False)])
def test_faces_that_clearly_differ_are_not_handed_over(distance, continued):
    spans = [Span(0, 10, square(0), square(0)), Span(12, 20, square(0), square(0))]
    a, b = np.zeros((1, 128)), np.zeros((1, 128))
    b[0, 0] = distance
    assert chain(spans, [a, b]) == ([0, 0] if continued else [0, 1])
    assert chain(spans, [a, NO_CHIPS]) == [0, 0]            # one without a chip: geometry decides


def test_each_tracklet_continues_at_most_one_the_nearest_in_time():
    spans = [Span(0, 8, square(0), square(0)), Span(0, 10, square(20), square(20)),
             Span(12, 20, square(10), square(10)), Span(13, 20, square(10), square(10))]
    # B (12) continues the one that ended last (10); C (13) the other one
    assert chain(spans) == [0, 1, 1, 0]


def test_a_chain_runs_over_several_hand_overs():
    spans = [Span(0, 10, square(0), square(0)), Span(12, 20, square(0), square(30)),
             Span(22, 30, square(40), square(40))]
    assert chain(spans) == [0, 0, 0]


def test_the_documented_hand_over_defaults():
    tracker = Tracker()
    assert (tracker.handover_gap, tracker.handover_distance, tracker.handover_size, tracker.handover_differ,
            tracker.handover_alike) == (45, 1.0, 1.6, 0.65, 0.6)


def test_hand_overs_become_one_person_in_finish():
    # A face, then nothing for 10 analysed frames (a hand over it), then the face again 20 px away: 2 tracklets
    run = Tracker().start()
    frames = [[(box(0, 0), FACE_A)]] * 3 + [[]] * 10 + [[(box(20, 0), FACE_A)]] * 3
    for faces in frames:
        run.add(FakeBatch([scene(100)], [(0, b, g) for b, g in faces]))
    assert len(run.tracklets) == 2
    persons_found = run.finish(lambda chips: np.zeros((len(chips), 128)))
    assert persons_found.of_tracklet == {1: 1, 2: 1}


# --- the gallery keeps the best faces ---------------------------------------------------------------------------------

def test_the_gallery_replaces_its_worst_chip_with_a_better_face():
    run = Tracker(samples=2, sample_every=1).start()
    for number, weight in enumerate([0.5, 0.3, 0.2, 0.9, 0.4]):
        run.add(FakeBatch([scene(100)], [(0, box(0, 0), FACE_A)]), np.array([weight]))
    tracklet = run.tracklets[0]
    # 0.5 and 0.3 fill it; 0.2 is worse than both; 0.9 replaces 0.3; 0.4 is worse than 0.5 and 0.9
    assert tracklet.chip_quality == [0.5, 0.9]
    assert tracklet.chip_faces == [0, 3]              # one face a batch: the face number is the batch's


@pytest.mark.parametrize("far, continued", [(0.68, True), (0.69, False)])
def test_differ_is_the_average_over_all_pairs_of_chips(far, continued):
    # chips 0, 0 against 0.62 and far: pairs 0.62, far, 0.62, far (none within 0.6); mean (0.62 + far) / 2,
    # 0.65 at far 0.68
    spans = [Span(0, 10, square(0), square(0)), Span(12, 20, square(0), square(0))]
    a, b = np.zeros((2, 128)), np.zeros((2, 128))
    b[:, 0] = [0.62, far]
    assert chain(spans, [a, b]) == ([0, 0] if continued else [0, 1])


@pytest.mark.parametrize("closest, continued", [(0.6, True), (0.61, False)])
def test_faces_far_apart_on_average_but_alike_in_one_pair_do_not_clearly_differ(closest, continued):
    # chip 0 against closest, 1.0 and 1.0: the mean is (closest + 2) / 3, about 0.87, above 0.65; one pair at
    # most 0.6 apart (some view of one looks like some view of the other) lets place and time decide
    spans = [Span(0, 10, square(0), square(0)), Span(12, 20, square(0), square(0))]
    a, b = np.zeros((1, 128)), np.zeros((3, 128))
    b[:, 0] = [closest, 1.0, 1.0]
    assert chain(spans, [a, b]) == ([0, 0] if continued else [0, 1])
    assert chain(spans, [b, a]) == ([0, 0] if continued else [0, 1])



@pytest.mark.parametrize("y, continued", [(50.0, True), (51.0, False)])
def test_the_distance_counts_the_vertical_offset(y, continued):
    spans = [Span(0, 10, square(0), square(0)), Span(12, 20, square(0) + [0, y, 0, y], square(0) + [0, y, 0, y])]
    assert chain(spans) == ([0, 0] if continued else [0, 1])


def test_a_tracklet_is_asked_about_only_from_its_first_ask_th_face():
    """first_ask 4 (min_frames 5): faces 0-3 of tracklet 9 are not asked about, face 4 is, then face 9; a tracklet
    of 4 faces never is."""
    look = SecondLook(max_asks=3, ask_every=5, first_ask=4)
    assert look.choose(np.full(10, 9), np.zeros(10, bool)).tolist() == [4, 9]
    assert look.choose(np.full(4, 8), np.zeros(4, bool)).tolist() == []


def test_without_a_cap_every_doubtful_face_of_an_unsure_tracklet_is_asked_about():
    """HOG's look: max_asks None, ask_every 1: all 7 doubtful faces of tracklet 3 are asked about."""
    look = SecondLook(max_asks=None, ask_every=1)
    assert look.choose(np.full(7, 3), np.zeros(7, bool)).tolist() == list(range(7))
