"""The v2 ("lifespan") heads: the trainer's recipe end to end on made-up features, the runtime's bin warp and
the children's gender temperature on numbers worked out by hand, and, with ../shared/data, that the shipped
default ("lifespan", its person head) beats the published networks and "tuned" on both views of the validation split."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from age.calibration import warp_bins
from age.distribution import LIFESPAN_BINS
from conftest import needs_data
from gender.softening import soften
from training import data


def made_up(n: int = 400, seed: int = 0) -> tuple[dict, dict]:
    """Faces whose first two features carry log-age and gender, with networks that know nothing."""
    rng = np.random.default_rng(seed)
    age = rng.uniform(1, 95, n).round()
    gender = rng.integers(0, 2, n)
    x = np.column_stack([np.log1p(age), gender, rng.normal(size=(n, 6))]) + rng.normal(0, 0.1, (n, 8))
    labels = {"file": np.asarray([f"{i}.jpg" for i in range(n)]), "age": age, "gender": gender}
    features = {"x": x, "dlib_age": rng.dirichlet(np.ones(101), n), "dlib_gender": rng.dirichlet(np.ones(2), n)}
    return features, labels


def test_warp_moves_each_bins_mass_to_its_target_split_between_neighbours():
    one = np.zeros((1, 101))
    one[0, 30] = 1.0                                        # all mass on 30 years (bin 30: 0.25, 1, ..., 30)
    targets = LIFESPAN_BINS.copy()
    targets[30] = 42.25                                     # 30 -> 42.25: 3/4 on 42, 1/4 on 43
    moved = warp_bins(one, targets)
    assert moved[0, 42] == pytest.approx(0.75) and moved[0, 43] == pytest.approx(0.25)
    assert moved.sum() == pytest.approx(1.0) and moved @ LIFESPAN_BINS == pytest.approx([42.25])
    targets[30] = 140.0                                     # past the last bin: clipped to 100
    assert warp_bins(one, targets)[0, 100] == pytest.approx(1.0)
    identity = np.random.default_rng(1).dirichlet(np.ones(101), 3)
    assert warp_bins(identity, LIFESPAN_BINS) == pytest.approx(identity)


def test_soften_divides_the_logit_of_the_chosen_rows_only():
    gender = np.array([[0.2, 0.8], [0.2, 0.8]])             # logit ln 4
    out = soften(gender, np.array([True, False]), 2.0)      # ln 4 / 2 = ln 2: p = 2/3
    assert out[0] == pytest.approx([1 / 3, 2 / 3]) and out[1] == pytest.approx([0.2, 0.8])


def test_sample_weights_make_every_decade_weigh_the_same():
    from training.heads_fitting import sample_weights
    ages = np.array([5.0, 5, 5, 85])                        # three in 0-9, one in 80-89
    weights = sample_weights(ages, 1.0)
    assert weights == pytest.approx([2 / 3, 2 / 3, 2 / 3, 2.0])       # 1/3, 1/3, 1/3, 1 scaled to mean 1
    assert sample_weights(ages, 0.0) is None


def test_soft_labels_spread_each_image_over_neighbouring_ages_with_its_own_weight():
    from training.heads_fitting import soft_labels
    x = np.array([[1.0], [2.0]])
    repeated, ages, weights = soft_labels(x, np.array([10.0, 99.0]), np.array([1.0, 3.0]), 2.0, 100.0)
    # Offset by offset (-4, -2, 0, 2, 4), both images each time; 99 + 2 and 99 + 4 are clipped to 100.
    assert ages.tolist() == [6, 95, 8, 97, 10, 99, 12, 100, 14, 100]
    assert repeated[:, 0].tolist() == [1.0, 2.0] * 5
    gauss = np.exp(-np.array([16, 4, 0, 4, 16]) / 8)                # offsets -4 ... 4, sigma 2
    assert weights[0::2] == pytest.approx(gauss / gauss.sum())
    assert weights[1::2].sum() == pytest.approx(3.0) and weights[0::2].sum() == pytest.approx(1.0)


def test_lifespan_recipe_fits_calibrates_and_ships_on_made_up_features(tmp_path, monkeypatch):
    from training import heads_fitting, heads_shipping, lifespan
    features, labels = made_up()
    parts = data.utkface_split(labels, seed=0)
    fitter = heads_fitting.Fitter(features, labels, LIFESPAN_BINS, seed=0, decade_weight=1.0)
    monkeypatch.setattr(lifespan, "V2_C_GRID", (0.1,))
    choices = lifespan.tune(fitter, features, parts, seed=0)
    best = choices["best"]
    chosen = {"gender": choices["gender"], "age": {best: choices["age"][best]}}
    arrays = lifespan.finish(heads_fitting.refit(fitter, chosen, parts["train"])[best], choices)
    assert arrays["child_temperature"] >= 1 and arrays["age_bins"].shape == (101,)
    table = lifespan.compare({"published network": None, "v2": arrays}, features, labels, parts["validation"],
                             np.arange(len(labels["age"])) % 5)
    assert table["v2"]["balanced"]["age_mae"] < table["published network"]["balanced"]["age_mae"]
    assert [row["group"] for row in table["v2"]["by_race"]] == list(lifespan.RACES.values())

    entries = {}
    monkeypatch.setattr("training.shipping.put_manifest_entry", lambda key, entry: entries.update({key: entry}))
    monkeypatch.setattr(heads_shipping, "LIFESPAN_TARGET",
                        {**heads_shipping.LIFESPAN_TARGET, "file": tmp_path / "v2.npz"})

    class Args:
        seed, decade_weight, soft_labels = 0, 1.0, 0.0
    heads_shipping.ship_lifespan(arrays, choices, Args, features, labels, parts,
                                 np.arange(len(labels["age"])) % 5,
                                 "python -m training heads --features networks --ship")
    entry = entries["age_gender_lifespan"]
    assert entry["version"] == "v2"
    assert entry["sha256"] == hashlib.sha256((tmp_path / "v2.npz").read_bytes()).hexdigest()
    assert entry["training"]["validation"]["lifespan v2"]["balanced"]["age_mae"] == pytest.approx(
        table["v2"]["balanced"]["age_mae"], abs=0.01)
    assert len(entry["training"]["validation_by_race"]) == 5


needs_utkface = needs_data(data.missing_labels(data.UTKFACE) and "needs ../shared/data/utkface (research data)")


@needs_utkface
def test_the_default_beats_the_published_networks_and_tuned_on_the_balanced_view():
    """All 1,556 validation images (seed 0, never seen in training or choosing), each a person seen once, through
    the analyzer as evaluate.py runs it: the default ("lifespan": the person head), the former default "tuned"
    and the dlib-models networks as published, on the view balanced by decade and the natural view; and the
    figures the manifest records for the person head."""
    from faceanalysis.pipeline.analyzer import FaceAnalyzer
    from faceanalysis.pipeline.registry import PERSON_HEADS_KEY
    from faceanalysis.pipeline.settings import Settings
    from facecore.frames import decode_frame
    from facecore.weights import load_manifest
    from training.scoring import two_views
    labels = data.utkface_labels()
    rows = data.utkface_split(labels, seed=0)["validation"]
    images = [decode_frame(data.UTKFACE / name) for name in labels["file"][rows]]
    true_age, true_gender = labels["age"][rows], labels["gender"][rows]
    views = {}
    for choice in ("dlib", "tuned", Settings().age_gender):
        # The cheapest expression choice: this test reads age and gender only, which no expression choice changes.
        analyzer = FaceAnalyzer(age_gender=choice, expression="mini-xception", device="cpu").prepare()
        tables = [analyzer.analyse_images(images[first:first + 64], faces_given=True, as_persons=True)
                  for first in range(0, len(images), 64)]
        years = np.concatenate([table.age_years for table in tables])
        gender = np.concatenate([table.gender for table in tables]).argmax(axis=1)
        views[choice] = two_views(true_age, years, true_gender, gender)
    default = views[Settings().age_gender]
    for view in ("balanced", "natural"):
        assert default[view]["age_mae"] < views["tuned"][view]["age_mae"] < views["dlib"][view]["age_mae"]
    old_bias = [abs(views[choice]["balanced"]["bands"][-1]["age_bias"]) for choice in (Settings().age_gender, "dlib")]
    assert old_bias[0] < old_bias[1]                        # 60+ underestimated less
    figures = load_manifest()[PERSON_HEADS_KEY]["training"]["validation"]["person v2"]
    for view in ("natural", "balanced"):
        assert default[view]["age_mae"] == pytest.approx(figures[view]["age_mae"], abs=0.01)
        assert default[view]["gender_acc"] == pytest.approx(figures[view]["gender_acc"], abs=0.002)
