"""The FER+ rules of the expression trainer on hand-made votes: which votes make the 7-way target, which images
are trained on, which have a majority label to be scored on, the loss against the votes, the calibration error
and the temperature. Every expected value is worked out by hand in the comments.

Vote columns (ferplus.csv): neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown,
not_face. Target order (the service's): angry, disgust, fear, happy, sad, surprise, neutral."""

from __future__ import annotations

import math

import numpy as np
import pytest

from facecore.labels import EXPRESSIONS
from training import data, ferplus

A, D, F, H, S, U, N = range(7)          # indices in EXPRESSIONS


def votes(neutral=0, happiness=0, surprise=0, sadness=0, anger=0, disgust=0, fear=0, contempt=0, unknown=0,
          not_face=0):
    return np.asarray([[neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, not_face]])


def target(**shares) -> np.ndarray:
    out = np.zeros(7, np.float32)
    for name, share in shares.items():
        out[EXPRESSIONS.index(name)] = share
    return out


def test_columns_map_to_the_service_order():
    assert [data.FERPLUS_COLUMNS[column] for column in data.FERPLUS_ORDER] == [
        "anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral"]


# ----------------------------------------------------------------------------------------------- targets

@pytest.mark.parametrize("counts, expected", [
    # 6 neutral, 3 happy: 6/9 and 3/9
    (votes(neutral=6, happiness=3, sadness=1), target(neutral=6 / 9, happy=3 / 9)),      # the lone sad vote dropped
    (votes(neutral=5, happiness=3, sadness=2), target(neutral=0.5, happy=0.3, sad=0.2)),  # two votes count
    (votes(anger=10), target(angry=1.0)),
])
def test_target_is_the_normalised_votes_with_single_votes_dropped(counts, expected):
    targets, keep = data.ferplus_targets(counts)
    assert keep.tolist() == [True]
    np.testing.assert_allclose(targets[0], expected, atol=1e-6)


@pytest.mark.parametrize("counts, kept, expected", [
    # contempt votes leave the target: 6 neutral of 6 counted expression votes -> neutral 1.0; 6 of 10 > half
    (votes(neutral=6, contempt=4), True, target(neutral=1.0)),
    # 5 of 10 is not more than half: dropped
    (votes(neutral=5, contempt=5), False, target()),
    (votes(neutral=4, contempt=6), False, target()),
    # unknown / not_face: 5 of 9 counted (the lone not_face vote dropped) is more than half
    (votes(neutral=5, unknown=4, not_face=1), True, target(neutral=1.0)),
    (votes(neutral=5, unknown=5), False, target()),
    # 4 neutral + 2 happy = 6 of 10: kept, target 4/6 and 2/6
    (votes(neutral=4, happiness=2, not_face=4), True, target(neutral=4 / 6, happy=2 / 6)),
    (votes(neutral=3, not_face=7), False, target()),
    # an image FER+ dropped (no votes) is not trained on
    (votes(), False, target()),
])
def test_contempt_unknown_and_not_face_leave_the_target_and_drop_images_they_dominate(counts, kept, expected):
    targets, keep = data.ferplus_targets(counts)
    assert keep.tolist() == [kept]
    np.testing.assert_allclose(targets[0], expected, atol=1e-6)


# ----------------------------------------------------------------------------------------------- majority

@pytest.mark.parametrize("counts, label", [
    (votes(neutral=6, happiness=3, sadness=1), N),     # 6 of 9 counted
    (votes(neutral=5, happiness=4, sadness=1), N),     # 5 of 9 once the lone sad vote is dropped
    (votes(neutral=5, happiness=3, sadness=2), -1),    # 5 of 10: not more than half
    (votes(neutral=5, happiness=5), -1),
    (votes(happiness=9, fear=1), H),
    (votes(anger=4, disgust=6), D),
    (votes(neutral=2, contempt=8), -1),                # contempt has no legacy code
    (votes(neutral=2, unknown=6, not_face=2), -1),
    (votes(not_face=10), -1),
    (votes(), -1),
])
def test_majority_label_needs_more_than_half_of_the_counted_votes(counts, label):
    assert data.ferplus_majority(counts).tolist() == [label]


# ----------------------------------------------------------------------------------------------- loss

def test_vote_distribution_loss_on_hand_made_votes():
    targets = np.zeros((2, 7))
    targets[0, [N, H]] = 0.5
    targets[1, S] = 1.0
    probabilities = np.zeros((2, 7))
    probabilities[0, [N, H, F]] = 0.25, 0.25, 0.5     # -(0.5 ln 0.25 + 0.5 ln 0.25) = ln 4
    probabilities[1, S] = 1.0                           # -(1 ln 1) = 0
    assert ferplus.pld_loss(targets, probabilities) == pytest.approx(math.log(4) / 2, abs=1e-9)
    # the loss is lowest where the prediction is the vote distribution itself: (ln 2 + 0) / 2
    assert ferplus.pld_loss(targets, targets) == pytest.approx(math.log(2) / 2, abs=1e-6)
    probabilities[1, [S, A]] = 0.0, 1.0                 # a voted class at 0 costs -ln(1e-7)
    assert ferplus.pld_loss(targets, probabilities) == pytest.approx((math.log(4) - math.log(1e-7)) / 2, abs=1e-6)


# ----------------------------------------------------------------------------------------------- calibration

def face(top_class: int, confidence: float, agreement: float) -> tuple[np.ndarray, np.ndarray]:
    """One face's probabilities (the rest spread evenly) and votes (``agreement`` on its top class)."""
    probabilities = np.full(7, (1 - confidence) / 6)
    probabilities[top_class] = confidence
    shares = np.zeros(7)
    shares[top_class] = agreement
    shares[(top_class + 1) % 7] = 1 - agreement
    return probabilities, shares


def test_calibration_error_compares_confidence_with_the_annotators_share():
    (p1, t1), (p2, t2) = face(N, 0.9, 0.6), face(H, 0.5, 0.5)
    # bins of 1/15: 0.9 -> bin 13, 0.5 -> bin 7; 0.5 * |0.9 - 0.6| + 0.5 * |0.5 - 0.5| = 0.15
    assert ferplus.calibration_error(np.stack([t1, t2]), np.stack([p1, p2])) == pytest.approx(0.15)
    assert ferplus.calibration_error(np.stack([t1, t1]), np.stack([p1, p1])) == pytest.approx(0.3)


def test_a_confidence_of_one_falls_in_the_last_bin():
    (p1, t1), (p2, t2) = face(N, 1.0, 0.8), face(H, 0.94, 1.0)
    # both in bin 14 (0.94 * 15 = 14.1): |0.97 - 0.9| = 0.07; a 16th bin for 1.0 would give 0.5*0.2 + 0.5*0.06
    assert ferplus.calibration_error(np.stack([t1, t2]), np.stack([p1, p2])) == pytest.approx(0.07)
    p3, t3 = face(H, 14 / 15 - 1e-6, 1.0)
    # just below 14/15 is bin 13: 0.5 * 0.2 + 0.5 * (1 - 0.9333...)
    assert ferplus.calibration_error(np.stack([t1, t3]), np.stack([p1, p3])) == pytest.approx(
        0.1 + 0.5 * (1 - 14 / 15), abs=1e-5)


def softmax(logits):
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_temperature_divides_the_logits_of_every_pass_before_the_average():
    p = softmax(np.array([[2.0, 0, 0, 0, 0, 0, 0]]))
    assert ferplus.tempered([p], 2.0)[0, 0] == pytest.approx(math.e / (math.e + 6))   # softmax of [1, 0, ...]
    assert np.allclose(ferplus.tempered([p], 1.0), p)
    mirror = softmax(np.array([[0.0, 2, 0, 0, 0, 0, 0]]))
    assert ferplus.tempered([p, mirror], 2.0)[0, 0] == pytest.approx((math.e / (math.e + 6) + 1 / (math.e + 6)) / 2)


def test_fitted_temperature_is_the_one_that_made_the_votes():
    logits = np.random.default_rng(0).normal(0, 2, (200, 7))
    p = softmax(logits)
    assert ferplus.fit_temperature(softmax(logits / 2.0), [p])[0] == 2.0
    assert ferplus.fit_temperature(softmax(logits / 0.7), [p])[0] == 0.7
    chosen, fit = ferplus.fit_temperature(p, [p])
    assert chosen == 1.0 and fit["loss_chosen"] == fit["loss_at_1"]


# ----------------------------------------------------------------------------------------------- resuming

HISTORY = "epoch,accuracy,loss,val_accuracy,val_loss\n0,0.69,0.92,0.8013,0.68\n1,0.71,0.87,0.8253,0.63\n"


def test_a_resumed_run_keeps_the_best_epoch_unless_a_new_one_beats_it(tmp_path):
    history, best = tmp_path / "history.csv", tmp_path / "best.keras"
    history.write_text(HISTORY)
    # no epoch kept yet: a fresh run, the first epoch is kept whatever its accuracy
    assert ferplus.best_so_far(history, best) is None
    best.write_bytes(b"kept")
    # epochs 1-2 done, epoch 2 kept (0.8253 > 0.8013): a resumed epoch must beat 0.8253 to replace it
    assert ferplus.best_so_far(history, best) == 0.8253
    history.write_text(HISTORY + "2,0.72,0.85,0.8201,0.64\n")
    assert ferplus.best_so_far(history, best) == 0.8253
    history.write_text(HISTORY + "2,0.72,0.85,0.8301,0.62\n")
    assert ferplus.best_so_far(history, best) == 0.8301
    history.write_text(HISTORY.splitlines()[0] + "\n")
    assert ferplus.best_so_far(history, best) is None


def test_the_run_says_how_many_epochs_it_finished_and_which_it_kept(tmp_path):
    history = tmp_path / "history.csv"
    assert ferplus.epochs_run(history) == {}
    history.write_text(HISTORY + "2,0.72,0.85,0.8201,0.64\n")
    assert ferplus.epochs_run(history) == {"finished": 3, "kept": 2,
                                           "select_ferplus_accuracy": [0.8013, 0.8253, 0.8201]}


def test_each_timed_model_makes_its_own_crops():
    """``ms_per_face`` times the crop with the network: every model's run starts from an empty crop cache,
    and each model's time is per face (total / faces)."""
    from facecore.faces import Detections, FaceBatch
    frames = [np.zeros((20, 20, 3), np.uint8)]
    detections = Detections(frame=np.zeros(4, np.int64), boxes=np.tile(np.float32([2, 2, 12, 12]), (4, 1)),
                            confidence=np.ones(4, np.float32), landmarks=np.zeros((4, 5, 2), np.float32))
    faces = FaceBatch(frames=frames, detections=detections)
    seen = []

    class Model:
        def run(self, batch):
            seen.append(dict(batch._per_face))
            batch.square_grey_crops(8, 0.0)

    times = ferplus.ms_per_face({"a": Model(), "b": Model()}, faces, repeats=2)
    assert seen == [{}, {}, {}, {}]
    assert set(times) == {"a", "b"} and all(0 <= value < 1000 for value in times.values())



@pytest.fixture()
def run_with_epoch_2(tmp_path, monkeypatch) -> list[str]:
    """A run folder holding only epoch02.keras, with stand-ins for the research data (the run reaches the choice of
    the network file); the ``--data`` and ``--cache`` arguments that point at them."""
    cache = tmp_path / "cache"
    run = cache / "expression_ferplus_seed0_e4_f2"
    run.mkdir(parents=True)
    (run / "epoch02.keras").write_bytes(b"")
    fer = tmp_path / "fer"
    fer.mkdir()
    (fer / "ferplus.csv").write_text("")
    monkeypatch.setattr(data, "missing_labels", lambda folder: None)
    monkeypatch.setattr(data, "fer2013", lambda folder, cache: {"name": []})
    monkeypatch.setattr(data, "ferplus_votes", lambda folder, names: None)
    monkeypatch.setattr(data, "fer2013_split", lambda fer, seed, dev_seed=None: {})
    return ["--data", str(fer), "--cache", str(cache)]


def test_an_epoch_that_is_not_there_stops_the_run(run_with_epoch_2, capsys):
    """``--epoch N`` scores the run's epochNN.keras: absent, the run stops with exit status 2 and says which file,
    before anything is scored or shipped."""
    assert ferplus.main(["--epoch", "3", "--ship", *run_with_epoch_2]) == 2
    assert "epoch03.keras" in capsys.readouterr().err


def test_averaged_weights_are_the_element_wise_mean_in_each_arrays_type():
    """Two networks of two arrays: kernel [1, 2] and [3, 6] average to [2, 4]; a float32 bias 0.1 and 0.4 to 0.25
    (in float32); a third network's [5, 10] makes the kernel mean [3, 6]."""
    first = [np.array([1.0, 2.0]), np.array([0.1], np.float32)]
    second = [np.array([3.0, 6.0]), np.array([0.4], np.float32)]
    kernel, bias = ferplus.average_weights([first, second])
    assert kernel.tolist() == [2.0, 4.0]
    assert bias.dtype == np.float32 and bias[0] == np.float32(0.25)
    third = [np.array([5.0, 10.0]), np.array([0.1], np.float32)]
    assert ferplus.average_weights([first, second, third])[0].tolist() == [3.0, 6.0]
    assert ferplus.average_weights([first])[0].tolist() == [1.0, 2.0]


def test_networks_of_other_shapes_or_none_are_not_averaged():
    with pytest.raises(ValueError, match="differ"):
        ferplus.average_weights([[np.zeros(2)], [np.zeros(3)]])
    with pytest.raises(ValueError, match="differ"):
        ferplus.average_weights([[np.zeros(2)], [np.zeros(2), np.zeros(1)]])
    with pytest.raises(ValueError, match="no networks"):
        ferplus.average_weights([])


def test_an_average_of_an_epoch_that_is_not_there_stops_the_run(run_with_epoch_2, capsys):
    """``--average 2 3`` with epoch03.keras absent stops with exit status 2 and names it; --epoch with --average is
    refused as two different networks."""
    assert ferplus.main(["--average", "2", "3", *run_with_epoch_2]) == 2
    error = capsys.readouterr().err
    assert "epoch03.keras" in error and "epoch02.keras" not in error
    with pytest.raises(SystemExit):
        ferplus.main(["--average", "2", "3", "--epoch", "2", *run_with_epoch_2])


# ----------------------------------------------------------------------------------------------- the pair

def angry_happy(angry: float, happy: float) -> np.ndarray:
    """One face's probabilities, all on angry and happy."""
    out = np.zeros((1, 7))
    out[0, A], out[0, H] = angry, happy
    return out


def shared_outputs() -> dict:
    """The FER2013 networks (sure of angry), the new network (0.8 / 0.2, mirrored 0.2 / 0.8) and the FER+ VGG
    (0.5 / 0.5, mirrored 1 / 0), each as [plain, mirrored]."""
    return {"expression": [angry_happy(1, 0), angry_happy(1, 0)],
            "expression_vgg": [angry_happy(1, 0), angry_happy(1, 0)],
            "new": [angry_happy(0.8, 0.2), angry_happy(0.2, 0.8)],
            "expression_ferplus": [angry_happy(0.5, 0.5), angry_happy(1.0, 0.0)]}


def test_the_pair_is_the_mean_of_the_partner_and_the_tempered_new_network():
    """One face, two classes that matter (angry, happy). The new network says 0.8 / 0.2 (logits 4:1) and its
    mirror image 0.2 / 0.8; at temperature 2 the odds are square-rooted to 2:1, so 2/3 / 1/3 and 1/3 / 2/3. The
    partner, shipped with its own temperature, is not tempered again: 0.5 / 0.5 and its mirror image 1 / 0.
    Pair, one pass: (2/3 + 1/2) / 2 = 7/12 angry; with the mirror image: the new network's passes average to
    1/2, the partner's to 3/4, so (1/2 + 3/4) / 2 = 5/8 angry."""
    outputs = shared_outputs()
    table = ferplus.choice_probabilities(outputs, 2.0, ferplus.TRAINEES["mini-xception"],
                                         [ferplus.TRAINEES["vgg"]])
    assert table["ferplus-mini-xception-T1"][0, A] == pytest.approx(0.8)
    assert table["ferplus-mini-xception"][0, [A, H]] == pytest.approx([2 / 3, 1 / 3], abs=1e-5)
    assert table["ferplus"][0, [A, H]] == pytest.approx([0.5, 0.5])
    assert table["ferplus-ensemble"][0, [A, H]] == pytest.approx([7 / 12, 5 / 12], abs=1e-5)
    assert table["ferplus-ensemble+flip"][0, [A, H]] == pytest.approx([5 / 8, 3 / 8], abs=1e-5)
    assert table["ferplus+flip"][0, [A, H]] == pytest.approx([0.75, 0.25])
    alone = ferplus.choice_probabilities(outputs, 2.0)        # the VGG trained with no partner shipped
    assert "ferplus-ensemble" not in alone and alone["ferplus"][0, A] == pytest.approx(2 / 3, abs=1e-5)
    assert "ferplus-trio" not in table and "ferplus-trio+flip" not in table     # the second mini-Xception is missing


def test_the_trio_is_the_mean_of_three_with_the_vgg_seen_once():
    """One face, angry / happy. The new network (the second mini-Xception) says 0.8 / 0.2 and mirrored 0.2 / 0.8;
    at temperature 2: 2/3 and 1/3 one pass, 1/2 both. The VGG says 0.5 / 0.5 and mirrored 1 / 0 (its mirror
    image is never read by the trio); the first mini-Xception 0 / 1 and mirrored 1 / 0 (1/2 both).
    Trio, one pass: (2/3 + 1/2 + 0) / 3 = 7/18 angry. "+flip": the VGG still one pass,
    (1/2 + 1/2 + 1/2) / 3 = 1/2. The pair of the VGG and the first mini-Xception: (1/2 + 0) / 2 = 1/4 and
    (3/4 + 1/2) / 2 = 5/8."""
    outputs = {**shared_outputs(), "expression_ferplus_mx": [angry_happy(0.0, 1.0), angry_happy(1.0, 0.0)]}
    table = ferplus.choice_probabilities(outputs, 2.0, ferplus.TRAINEES["mini-xception-2"],
                                         [ferplus.TRAINEES["vgg"], ferplus.TRAINEES["mini-xception"]])
    assert table["ferplus-trio"][0, [A, H]] == pytest.approx([7 / 18, 11 / 18], abs=1e-5)
    assert table["ferplus-trio+flip"][0, [A, H]] == pytest.approx([1 / 2, 1 / 2], abs=1e-5)
    assert table["ferplus-ensemble"][0, [A, H]] == pytest.approx([1 / 4, 3 / 4], abs=1e-5)
    assert table["ferplus-ensemble+flip"][0, [A, H]] == pytest.approx([5 / 8, 3 / 8], abs=1e-5)
    assert table["ferplus-mini-xception-2"][0, [A, H]] == pytest.approx([2 / 3, 1 / 3], abs=1e-5)


def test_expression_model_skips_the_mirror_image_only_where_told():
    """The trio's VGG is run on the crops alone; the others on the crops and their mirror images. With the
    mirror image off, no network is mirrored; a mirrored list of the wrong length is refused."""
    from emotion.model import MIRRORED, ExpressionModel

    class Seen:
        size = 48

        def __init__(self):
            self.flips = []

        def probabilities(self, grey, flip):
            self.flips.append(flip)
            return np.zeros((len(grey), 7))

    for flip, expected in ((True, [False, True, True]), (False, [False, False, False])):
        model = ExpressionModel(["a", "b", "c"], flip=flip, mirrored=MIRRORED["ferplus-trio"])
        model.networks = [Seen(), Seen(), Seen()]
        model.probabilities({48: np.zeros((2, 48, 48), np.uint8)})
        assert [network.flips for network in model.networks] == [[seen] for seen in expected]
    model = ExpressionModel(["a", "b"])
    assert model.mirrored == (True, True)
    with pytest.raises(ValueError, match="mirrored"):
        ExpressionModel(["a", "b"], mirrored=(True,))


def test_the_partners_are_the_other_fer_plus_networks_once_shipped():
    vgg, mini, second = (ferplus.TRAINEES[name] for name in ("vgg", "mini-xception", "mini-xception-2"))
    assert ferplus.partners_of(mini, {"expression_ferplus": {}}) == [vgg]
    assert ferplus.partners_of(vgg, {"expression_ferplus": {}}) == []
    assert ferplus.partners_of(vgg, {"expression_ferplus": {}, "expression_ferplus_mx": {}}) == [mini]
    assert ferplus.partners_of(second, {"expression_ferplus": {}, "expression_ferplus_mx": {},
                                        "expression_ferplus_mx2": {}}) == [vgg, mini]
    assert ferplus.partners_of(mini, {}) == []


def test_the_second_mini_xception_trains_with_seed_1_unless_told(run_with_epoch_2, capsys):
    """Its run is the mini-Xception's with seed 1; ``--seed`` still picks another."""
    assert ferplus.main(["--network", "mini-xception-2", "--epoch", "2", *run_with_epoch_2]) == 2
    assert "expression_ferplus_mx_seed1_e8/epoch02.keras" in capsys.readouterr().err
    assert ferplus.main(["--network", "mini-xception-2", "--seed", "0", "--epoch", "2", *run_with_epoch_2]) == 2
    assert "expression_ferplus_mx_seed0_e8/epoch02.keras" in capsys.readouterr().err
    assert ferplus.main(["--network", "mini-xception", "--epoch", "2", *run_with_epoch_2]) == 2
    assert "expression_ferplus_mx_seed0_e8/epoch02.keras" in capsys.readouterr().err


def test_the_mini_xception_has_its_own_run_and_no_frozen_blocks(run_with_epoch_2, capsys):
    """``--network mini-xception`` trains 8 epochs by default in its own folder (the VGG's run, e4_f2, is not
    read); it is fine-tuned whole, so ``--frozen-blocks`` is refused for it (0 is what it does anyway)."""
    assert ferplus.main(["--network", "mini-xception", "--epoch", "2", *run_with_epoch_2]) == 2
    assert "expression_ferplus_mx_seed0_e8/epoch02.keras" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        ferplus.main(["--network", "mini-xception", "--frozen-blocks", "1", *run_with_epoch_2])
    assert ferplus.main(["--network", "mini-xception", "--frozen-blocks", "0", "--epoch", "2",
                         *run_with_epoch_2]) == 2


def test_each_trainee_ships_as_the_service_choice_that_runs_it():
    """The trainer's table and the service's choices name the same networks: a trainee's choice runs its key
    alone, and the pair runs both FER+ keys."""
    from emotion.model import NETWORK_KEYS
    for trainee in ferplus.TRAINEES.values():
        assert NETWORK_KEYS[trainee.choice] == (trainee.key,)
    assert NETWORK_KEYS[ferplus.PAIR] == (ferplus.TRAINEES["vgg"].key, ferplus.TRAINEES["mini-xception"].key)
    assert sorted(NETWORK_KEYS[ferplus.TRIO]) == sorted(t.key for t in ferplus.TRAINEES.values())
