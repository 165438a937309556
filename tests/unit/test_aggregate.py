"""Sequence aggregation, the choice of the primary person and of the analysed face, on hand-made numbers
(README: "Over the sequence", "Persons"). No model is loaded: the analyzer's rules run on a bare instance."""

from __future__ import annotations

import numpy as np
import pytest

from age.distribution import LIFESPAN_BINS, AgeDistribution
from faceanalysis.pipeline.aggregate import (
    AGGREGATORS,
    ConfidenceWeightedAggregator,
    LogOddsAggregator,
    MeanAggregator,
    TrimmedMeanAggregator,
)
from faceanalysis.pipeline.analyzer import FaceAnalyzer, _primary_faces
from faceanalysis.pipeline.result import FaceTable, SourceSummary
from faceanalysis.pipeline.settings import Settings
from faceanalysis.pipeline.tracking import Persons
from facecore.frames import natural_key
from test_age_interval import Ages


def test_mean_aggregator():
    probabilities = np.array([[0.2, 0.8], [0.6, 0.4]])
    assert MeanAggregator().combine(probabilities, np.array([1.0, 0.1])) == pytest.approx([0.4, 0.6])


def test_confidence_weighted_aggregator_trusts_confident_frames():
    probabilities = np.array([[0.2, 0.8], [0.6, 0.4]])
    combined = ConfidenceWeightedAggregator().combine(probabilities, np.array([0.75, 0.25]))
    assert combined == pytest.approx([0.3, 0.7])
    assert combined.sum() == pytest.approx(1)


def test_largest_face_of_each_frame_is_primary():
    frame = np.array([0, 0, 1, 2, 2, 2])
    boxes = np.array([[0, 0, 10, 10], [0, 0, 50, 50], [0, 0, 5, 5],
                      [0, 0, 20, 20], [0, 0, 30, 30], [0, 0, 25, 25]], dtype=float)
    assert _primary_faces(frame, boxes).tolist() == [False, True, True, False, True, False]


def test_frames_sort_naturally():
    names = ["f10.jpg", "f2.jpg", "f1.jpg", "F3.jpg"]
    assert sorted(names, key=natural_key) == ["f1.jpg", "f2.jpg", "F3.jpg", "f10.jpg"]


def test_trimmed_mean_drops_the_outlying_frame():
    # Five frames: four agree, one is far from the median [0.8, 0.2]; 20% of 5 drops exactly that one.
    probabilities = np.array([[0.8, 0.2], [0.7, 0.3], [0.9, 0.1], [0.8, 0.2], [0.0, 1.0]])
    confidence = np.array([1.0, 1.0, 1.0, 0.5, 1.0])
    # kept: 0.8, 0.7, 0.9 (weight 1) and 0.8 (weight 0.5) -> (0.8 + 0.7 + 0.9 + 0.4) / 3.5 = 0.8
    assert TrimmedMeanAggregator().combine(probabilities, confidence) == pytest.approx([0.8, 0.2])
    assert MeanAggregator().combine(probabilities, confidence)[0] == pytest.approx(0.64)


def test_trimmed_mean_keeps_short_sequences_whole():
    probabilities = np.array([[0.2, 0.8], [0.6, 0.4]])
    combined = TrimmedMeanAggregator().combine(probabilities, np.array([0.75, 0.25]))
    assert combined == pytest.approx([0.3, 0.7])


def test_log_odds_is_the_normalised_geometric_mean():
    probabilities = np.array([[0.5, 0.5], [0.8, 0.2]])
    # equal weights: sqrt(0.5 * 0.8) = 0.632..., sqrt(0.5 * 0.2) = 0.316... -> [2/3, 1/3]
    combined = LogOddsAggregator().combine(probabilities, np.array([0.9, 0.9]))
    assert combined == pytest.approx([2 / 3, 1 / 3])
    assert combined.sum() == pytest.approx(1)


def test_log_odds_weights_by_confidence_and_clips_zeros():
    probabilities = np.array([[1.0, 0.0], [0.0, 1.0]])
    # weights 3:1 on log-probabilities clipped at 1e-6: log p = 0.75 log(1) + 0.25 log(1e-6) for class 0,
    # and the mirror for class 1, so class 0 : class 1 = 1e-6 ** 0.25 : 1e-6 ** 0.75 = 1 : 1e-3.
    combined = LogOddsAggregator().combine(probabilities, np.array([0.75, 0.25]))
    assert combined == pytest.approx([1 / 1.001, 0.001 / 1.001])
    # all-zero confidence falls back to equal weights
    assert LogOddsAggregator().combine(probabilities, np.zeros(2)) == pytest.approx([0.5, 0.5])


def test_every_rule_is_registered_and_returns_a_distribution():
    assert {"mean", "confidence_weighted_mean", "trimmed_mean", "log_odds"} <= set(AGGREGATORS)
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(7), size=12)
    for rule in AGGREGATORS.values():
        combined = rule().combine(probabilities, rng.uniform(0.5, 1, size=12))
        assert combined.shape == (7,)
        assert combined.sum() == pytest.approx(1)
        assert (combined >= 0).all()


# --- the confidence-weighted mean, the default -----------------------------------------------------------------

def test_weighted_and_plain_means_differ_when_confidences_do():
    # [0.9, 0.1] and [0.1, 0.9] with confidences 0.9 and 0.1: weighted 0.9 * 0.9 + 0.1 * 0.1 = 0.82,
    # plain 0.5. A rule that ignored confidence would answer [0.5, 0.5].
    probabilities = np.array([[0.9, 0.1], [0.1, 0.9]])
    assert ConfidenceWeightedAggregator().combine(probabilities, np.array([0.9, 0.1])) == pytest.approx([0.82, 0.18])
    assert MeanAggregator().combine(probabilities, np.array([0.9, 0.1])) == pytest.approx([0.5, 0.5])


def test_a_frame_of_confidence_zero_does_not_count():
    combined = ConfidenceWeightedAggregator().combine(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([0.4, 0.0]))
    assert combined.tolist() == [1.0, 0.0]


@pytest.mark.parametrize("rule", [ConfidenceWeightedAggregator, LogOddsAggregator])
def test_all_confidences_zero_fall_back_to_equal_weights(rule):
    # No frame is more trusted than another: the plain (or geometric) mean of [0.2, 0.8] and [0.6, 0.4], never NaN.
    probabilities = np.array([[0.2, 0.8], [0.6, 0.4]])
    combined = rule().combine(probabilities, np.zeros(2))
    assert np.isfinite(combined).all()
    assert combined == pytest.approx(rule().combine(probabilities, np.ones(2)))
    if rule is ConfidenceWeightedAggregator:
        assert combined == pytest.approx([0.4, 0.6])


@pytest.mark.parametrize("rule", [MeanAggregator, ConfidenceWeightedAggregator, LogOddsAggregator])
def test_float32_network_outputs_are_combined_in_float64(rule):
    # The networks answer in float32; the combination is exact to float64 (1e-12), not to float32 (1e-7).
    probabilities = np.array([[0.1, 0.2, 0.7], [0.3, 0.3, 0.4], [0.25, 0.5, 0.25]], dtype=np.float32)
    confidence = np.array([0.7, 0.9, 0.8], dtype=np.float32)
    exact = rule().combine(probabilities.astype(np.float64), confidence.astype(np.float64))
    combined = rule().combine(probabilities, confidence)
    assert combined.dtype == np.float64
    assert combined == pytest.approx(exact, rel=1e-12, abs=0)


def test_the_answer_is_normalised_to_sum_to_one():
    # Inputs that do not quite sum to 1 (float32 softmax outputs) still give a distribution.
    probabilities = np.array([[0.2, 0.7], [0.5, 0.4]])        # rows sum to 0.9
    for rule in AGGREGATORS.values():
        assert rule().combine(probabilities, np.array([1.0, 1.0])).sum() == pytest.approx(1, abs=1e-12)


# --- the trimmed mean's share -----------------------------------------------------------------------------------

def frames_with_outliers(count: int, outliers: list[int]) -> np.ndarray:
    probabilities = np.tile([0.8, 0.2], (count, 1))
    probabilities[outliers] = [0.0, 1.0]
    return probabilities


@pytest.mark.parametrize("count, outliers, kept", [
    (4, [3], [0.6, 0.4]),          # 20% of 4 rounds down to 0: the outlier stays, (3 * 0.8 + 0) / 4
    (5, [4], [0.8, 0.2]),          # 20% of 5 is 1: dropped
    (9, [2, 8], [0.7, 0.3]),       # 20% of 9 rounds down to 1: one of two outliers stays, 7 * 0.8 / 8
    (10, [2, 8], [0.8, 0.2]),      # 20% of 10 is 2: both dropped
])
def test_trimmed_mean_drops_twenty_percent_rounded_down(count, outliers, kept):
    combined = TrimmedMeanAggregator().combine(frames_with_outliers(count, outliers), np.ones(count))
    assert combined == pytest.approx(kept)


def test_trimmed_mean_measures_the_distance_to_the_per_class_median():
    # Happy in 0.9, 0.9, 0.9, 0.8 and 0.5 of five frames: per class the median is [0.9, 0.1], and the 0.5 frame
    # is the farthest from it (0.8). From the median of all ten values (0.5) it would be the nearest.
    probabilities = np.array([[0.9, 0.1], [0.9, 0.1], [0.9, 0.1], [0.8, 0.2], [0.5, 0.5]])
    assert TrimmedMeanAggregator().combine(probabilities, np.ones(5)) == pytest.approx([0.875, 0.125])


def test_trimmed_mean_ties_drop_the_later_frames():
    # 17 frames (numpy sorts that many with an unstable quicksort), 20% -> 3 dropped. Distances to the median
    # [0.5, 0.5]: 0 for 0.5, 0.5 for 0.75 or 0.25, 1.0 for 1.0 or 0.0. Five frames are at 1.0 (frames 0, 9, 11,
    # 14 and 15): the three dropped are the last three, 11, 14 and 15, leaving 8.0 / 14 of "happy".
    happy = [1.0, 0.75, 0.25, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 1.0, 0.75, 0.0, 0.25, 0.75, 0.0, 1.0, 0.25]
    probabilities = np.column_stack([happy, 1 - np.asarray(happy)])
    assert TrimmedMeanAggregator().combine(probabilities, np.ones(17))[0] == pytest.approx(8.0 / 14)


# --- the primary person (the legacy answer's) --------------------------------------------------------------------

def bare_analyzer(rule=ConfidenceWeightedAggregator) -> FaceAnalyzer:
    """The analyzer's combining rules without its models: the aggregator and the 81-bin age distribution."""
    analyzer = FaceAnalyzer.__new__(FaceAnalyzer)
    analyzer.aggregator = rule()
    analyzer.models = {"age": Ages()}
    # one frame is evidence enough here: these tests are about combining (test_persons_evidence below is not)
    analyzer.settings = Settings(min_frames=1)
    return analyzer


def columns_of(faces: FaceTable) -> dict:
    """The table's columns as a batch gives them: all but who each face is."""
    return {key: getattr(faces, key) for key in FaceTable.__dataclass_fields__ if key not in ("person", "primary")}


def persons_of(analyzer: FaceAnalyzer, faces: FaceTable, read: SourceSummary, tracked: Persons, samples=None):
    """The listed persons ``_persons`` answers for ``faces``, whose ``person`` column is the tracked person."""
    return analyzer._persons(columns_of(faces), faces.person, read, samples or {}, tracked.pictures)[1]


def face_table(persons: list[int], frames: list[int], confidence: list[float]) -> FaceTable:
    n = len(persons)
    ages = np.zeros((n, 81))
    ages[np.arange(n), [20 + 10 * person for person in persons]] = 1.0      # person p is 20 + 10 p years old
    expression = np.zeros((n, 7))
    expression[:, 3] = 1.0
    return FaceTable(frame=np.asarray(frames), frame_name=[f"f{frame}" for frame in frames],
                     boxes=np.tile([0.0, 0.0, 50.0, 50.0], (n, 1)), confidence=np.asarray(confidence, float),
                     landmarks=np.zeros((n, 5, 2)), primary=np.zeros(n, bool), age=ages,
                     age_years=ages @ Ages.bin_ages, gender=np.tile([0.5, 0.5], (n, 1)), expression=expression,
                     person=np.asarray(persons))


def read_frames(indices: list[int]) -> SourceSummary:
    return SourceSummary(label="x", listed=len(indices), read=tuple((index, f"f{index}") for index in indices),
                         skipped=(), ignored=(), truncated=False)


def found(pictures: dict) -> Persons:
    """What the tracker hands the analyzer, with only pictures (no person head samples)."""
    return Persons(of_tracklet={}, pictures=pictures, tracklets=0, embedded=0)


def test_primary_is_the_person_seen_in_most_frames():
    # Person 1 appears first but in 2 frames; person 2 is in 3.
    faces = face_table(persons=[1, 1, 2, 2, 2], frames=[0, 1, 2, 3, 4], confidence=[0.9] * 5)
    persons = persons_of(bare_analyzer(), faces, read_frames([0, 1, 2, 3, 4]), found({}))
    assert [(person.id, person.frames_seen, person.primary) for person in persons] == [(1, 2, False), (2, 3, True)]
    assert persons[1].summary.age == 40.0 and persons[0].summary.age == 30.0     # each from their own faces only


def test_a_tie_in_frames_goes_to_the_person_who_appeared_first():
    faces = face_table(persons=[2, 1, 2, 1], frames=[0, 0, 1, 1], confidence=[0.9] * 4)
    persons = persons_of(bare_analyzer(), faces, read_frames([0, 1]), found({}))
    assert [(person.id, person.primary) for person in persons] == [(1, True), (2, False)]


def test_frames_seen_spans_and_mean_confidence_count_analysed_frames():
    # Every 10th frame analysed (stride 10): person 1 in positions 0, 1, 2 and 4, so spans are [0, 20] and
    # [40, 40] in frame numbers; position 3 (frame 30) had no face of theirs.
    faces = face_table(persons=[1, 1, 1, 1], frames=[0, 10, 20, 40], confidence=[1.0, 0.5, 1.0, 0.5])
    (person,) = persons_of(bare_analyzer(), faces, read_frames([0, 10, 20, 30, 40]), found({7: "picture"}))
    assert person.frames_seen == 4 and person.spans == ((0, 20), (40, 40))
    assert person.mean_confidence == pytest.approx(0.75)
    assert person.primary and person.picture is None            # pictures are keyed by person id


def test_a_persons_answer_is_the_aggregator_over_their_faces():
    # Ages 30 (confidence 0.9) and 40 (confidence 0.1) for one person: weighted 31, plain 35.
    faces = face_table(persons=[1, 2], frames=[0, 1], confidence=[0.9, 0.1])
    faces.person = np.array([1, 1])
    weighted = persons_of(bare_analyzer(), faces, read_frames([0, 1]), found({}))[0].summary
    plain = persons_of(bare_analyzer(MeanAggregator), faces, read_frames([0, 1]), found({}))[0].summary
    assert weighted.age == pytest.approx(31.0) and plain.age == pytest.approx(35.0)
    assert weighted.age_interval[0] <= weighted.age <= weighted.age_interval[1]


class OneBinHead(AgeDistribution):
    """A person head that answers 70 years and female 0.9 whatever it reads, and records what it read."""
    bin_ages = LIFESPAN_BINS

    def __init__(self) -> None:
        self.read = []

    def run(self, inputs, embeddings):
        self.read.append((inputs.tolist(), embeddings.tolist()))
        age = np.zeros(101)
        age[70] = 1.0                                            # bin 70: 70 years (0.25, 1, ..., 100)
        return age, np.array([0.1, 0.9])


def test_a_person_with_embedded_faces_gets_the_person_heads_age_and_gender_and_the_frames_expression():
    faces = face_table([1, 1, 2], [0, 1, 1], [0.9, 0.9, 0.9])
    analyzer = bare_analyzer()
    analyzer.person_head = OneBinHead()
    samples = {1: (np.array([[1.0, 2.0]]), np.array([[3.0]]))}             # person 2 has none (small faces)
    first, second = persons_of(analyzer, faces, read_frames([0, 1]), found({}), samples)
    assert analyzer.person_head.read == [([[1.0, 2.0]], [[3.0]])]
    assert first.summary.age == pytest.approx(70.0) and first.summary.gender.tolist() == [0.1, 0.9]
    assert first.summary.age_interval[0] <= 70 <= first.summary.age_interval[1]
    frames_only = persons_of(bare_analyzer(), faces, read_frames([0, 1]), found({}))
    assert first.summary.expression.tolist() == frames_only[0].summary.expression.tolist()
    assert second.summary.age == pytest.approx(frames_only[1].summary.age)
    assert second.summary.gender.tolist() == frames_only[1].summary.gender.tolist()


# --- evidence: who is listed ---------------------------------------------------------------------------------------

def test_persons_evidence_lists_only_tracks_with_min_frames_and_a_sure_face():
    # Tracks 1 (frames 0-5), 2 (frames 1-2: too short), 3 (frames 2-7, no face the gate is sure of) and 4
    # (frames 3-8): with min_frames 5 only 1 and 4 are listed, renumbered 1 and 2; the faces of 2 and 3 get 0.
    tracks = [1] * 6 + [2] * 2 + [3] * 6 + [4] * 6
    frames = list(range(0, 6)) + [1, 2] + list(range(2, 8)) + list(range(3, 9))
    faces = face_table(tracks, frames, [0.9] * len(tracks))
    faces.sure = np.asarray([track != 3 for track in tracks])
    analyzer = bare_analyzer()
    analyzer.settings = Settings(min_frames=5)
    table, listed, unlisted, primary = analyzer._persons(columns_of(faces), faces.person,
                                                         read_frames(list(range(9))), {}, {})
    assert [(person.id, person.frames_seen) for person in listed] == [(1, 6), (2, 6)]
    assert (unlisted.tracks, unlisted.frames) == (2, 8)
    # The table holds the listed persons' faces only, each with its listed id; the primary's are flagged.
    assert table.person.tolist() == [1] * 6 + [2] * 6
    assert table.frame.tolist() == list(range(0, 6)) + list(range(3, 9))
    assert table.primary.tolist() == [True] * 6 + [False] * 6
    assert primary == 1 and listed[0].primary and not listed[1].primary     # a tie: who appeared first
    analyzer.settings = Settings(min_frames=6)
    every_face_sure = face_table(tracks, frames, [0.9] * len(tracks))
    _, listed, unlisted, _ = analyzer._persons(columns_of(every_face_sure), every_face_sure.person,
                                               read_frames(list(range(9))), {}, {})
    assert len(listed) == 3 and unlisted.tracks == 1          # 7 frames: 6 are enough for tracks 1, 3, 4


def test_persons_answers_weigh_faces_by_quality_and_carry_confidence():
    # Ages 30 (quality 1) and 40 (quality 0.1), same detection confidence: (30 + 4) / 1.1 = 30.909...
    faces = face_table(persons=[1, 2], frames=[0, 1], confidence=[0.9, 0.9])
    faces.person = np.array([1, 1])
    faces.quality[:, -1] = [1.0, 0.1]
    (person,) = persons_of(bare_analyzer(), faces, read_frames([0, 1]), found({}))
    assert person.summary.age == pytest.approx(34.0 / 1.1)
    assert person.confidence == pytest.approx(0.11)
    assert person.quality["weight"] == pytest.approx(0.55)
