"""Settings are typed arguments, checked at construction; the environment is read only by the entry points."""

from __future__ import annotations

import argparse
import json

import pytest

from faceanalysis.cli import add_model_arguments, environment, settings_from
from faceanalysis.pipeline.analyzer import FaceAnalyzer
from faceanalysis.pipeline.registry import REGISTRY
from faceanalysis.pipeline.settings import AGE_GENDER_CHOICES, EXPRESSION_CHOICES, Settings


def test_defaults_are_the_shipped_models():
    settings = Settings()
    assert (settings.age_gender, settings.expression, settings.aggregator) == ("lifespan", "ferplus-trio",
                                                                                   "confidence_weighted_mean")
    assert (settings.batch_size, settings.min_face_size, settings.min_confidence) == (16, 20, 0.6)
    assert (settings.tracker_min_iou, settings.tracker_max_gap) == (0.3, 5)
    assert (settings.expression_box_margin, settings.expression_crop_margin, settings.expression_flip) == (0, 0, True)


@pytest.mark.parametrize("field, bad, good", [
    ("batch_size", 0, 1),
    ("min_face_size", 11, 12),              # P-Net's 12 px input
    ("min_confidence", 1.01, 1.0),
    ("min_confidence", -0.01, 0.0),
    ("tracker_min_iou", 0.0, 0.01),
    ("tracker_min_iou", 1.01, 1.0),
    ("tracker_max_gap", -1, 0),
    ("expression_box_margin", -0.01, 0.0),
    ("expression_crop_margin", -0.01, 0.0),
    ("age_gender", "tuned2", "dlib"),
    ("expression", "vgg16", "vgg"),
    ("aggregator", "median", "log_odds"),
    ("device", "tpu", "gpu"),
    ("batch_size", 16.0, 16),               # typed: a float is not a batch size
    ("expression_flip", 1, False),
])
def test_each_setting_is_checked_on_both_sides_of_its_bound(field, bad, good):
    with pytest.raises(ValueError, match=field):
        Settings(**{field: bad})
    assert getattr(Settings(**{field: good}), field) == good


def test_every_choice_has_a_factory_for_each_of_its_tasks():
    assert {choice for task, choice in REGISTRY if task in ("age", "gender")} == set(AGE_GENDER_CHOICES)
    assert sorted(choice for task, choice in REGISTRY if task == "age") == sorted(
        choice for task, choice in REGISTRY if task == "gender")
    assert {choice for task, choice in REGISTRY if task == "expression"} == set(EXPRESSION_CHOICES)


def test_settings_travel_as_plain_data():
    settings = Settings(age_gender="dlib", expression="vgg", batch_size=4, tracker_min_iou=0.5)
    assert Settings(**json.loads(json.dumps(settings.to_json()))) == settings


def test_the_analyzer_keeps_and_reports_its_settings():
    analyzer = FaceAnalyzer(Settings(expression="mini-xception"), batch_size=8)     # built, not loaded
    assert analyzer.settings == Settings(expression="mini-xception", batch_size=8)
    assert analyzer.model_choice == {"age_gender": "lifespan", "expression": "mini-xception"}
    assert [network.file.key for network in analyzer.models["expression"].networks] == ["expression"]
    assert (analyzer.tracker.min_iou, analyzer.tracker.max_gap) == (0.3, 5)


def test_meta_reports_the_settings(sample_results):
    assert sample_results["seqA"].provenance.settings == Settings()


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_model_arguments(parser)
    return parser.parse_args(argv)


def test_flags_win_over_the_environment_which_wins_over_defaults():
    environ = {"FACE_AGE_GENDER": "Dlib ", "FACE_EXPRESSION": "vgg"}
    assert settings_from(parse([]), environ).model_choice == {"age_gender": "dlib", "expression": "vgg"}
    assert settings_from(parse(["--expression", "ensemble"]), environ).expression == "ensemble"
    assert settings_from(parse([]), {}).model_choice == {"age_gender": "lifespan", "expression": "ferplus-trio"}
    # A blank variable is not set.
    assert settings_from(parse([]), {"FACE_AGE_GENDER": "  "}).age_gender == "lifespan"


def test_a_bad_environment_value_exits_with_a_json_error(capsys):
    with pytest.raises(SystemExit) as stopped:
        settings_from(parse([]), {"FACE_EXPRESSION": "happy-net"})
    assert stopped.value.code == 2
    error = json.loads(capsys.readouterr().err)["error"]
    assert error["code"] == "invalid_option" and "happy-net" in error["message"]


def test_only_the_projects_variables_are_read():
    assert environment({"FACE_PORT": "7000", "HOME": "/root", "LOG_LEVEL": ""}) == {"FACE_PORT": "7000"}
