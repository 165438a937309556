"""From (task, choice) to the model that answers it.

Each entry is a factory that receives already-resolved weight files (``facecore.weights.resolve``), the
analyzer's ``Settings`` and the analyzer's ``SharedModels``, and returns an unprepared model with the two
calls every task model has: ``prepare(device)`` once, ``run(faces)`` per batch. Adding a model is one file in
its task package plus one line here. Networks that several tasks read (the dlib-models age and gender
networks, the face embedding) are built through ``SharedModels``, so each is loaded once per analyzer.
"""

from __future__ import annotations

from typing import Callable, Mapping

from age.calibration import HeadAgeModel
from age.network import AgeModel
from age.person import PersonHead
from emotion.model import NETWORK_KEYS, ExpressionModel, mirrored_networks
from facecore.embedding import FaceEmbedder
from facecore.heads_file import NetworkFeatures
from facecore.weights import WeightFile
from gender.network import GenderModel
from gender.softening import HeadGenderModel

from .settings import AGE_GENDER_CHOICES, EXPRESSION_CHOICES, Settings

Weights = Mapping[str, WeightFile]
# The settings field that picks each task's model.
TASK_SETTING = {"age": "age_gender", "gender": "age_gender", "expression": "expression"}
HEADS_KEY = "age_gender_heads"               # heads on the dlib face embedding ("heads", "ensemble")
NETWORK_HEADS_KEY = "age_gender_netheads"    # heads on the networks' own features ("tuned", v1)
LIFESPAN_HEADS_KEY = "age_gender_lifespan"   # v2 on the same features: 0-100 years, decade-weighted ("lifespan")
PERSON_HEADS_KEY = "age_gender_person"       # v2 on the networks' features and the embedding: one per person
# The choices whose persons are answered by a person head (``age.person``), and its file.
PERSON_HEADS = {"lifespan": PERSON_HEADS_KEY}
# Which heads file and features each head choice reads.
HEAD_FILES = {"tuned": (NETWORK_HEADS_KEY, "networks"), "lifespan": (LIFESPAN_HEADS_KEY, "networks"),
              "heads": (HEADS_KEY, "embedding"), "ensemble": (HEADS_KEY, "embedding")}


class SharedModels:
    """One instance per key for one analyzer: models that several tasks hold are built (and loaded) once."""

    def __init__(self) -> None:
        self._models: dict = {}

    def get(self, key, build: Callable[[], object]):
        if key not in self._models:
            self._models[key] = build()
        return self._models[key]


def _age_network(weights: Weights, shared: SharedModels) -> AgeModel:
    return shared.get(("age-network", weights["age"].sha256), lambda: AgeModel(weights["age"]))


def _gender_network(weights: Weights, shared: SharedModels) -> GenderModel:
    return shared.get(("gender-network", weights["gender"].sha256), lambda: GenderModel(weights["gender"]))


def face_embedder(weights: Weights, shared: SharedModels) -> FaceEmbedder:
    """The dlib face embedding: read by the embedding heads and by the tracker's identity step."""
    return shared.get(("embedding", weights["embedding"].sha256), lambda: FaceEmbedder(weights["embedding"]))


def _features(weights: Weights, shared: SharedModels, kind: str):
    """What the heads read: the networks' penultimate features ("tuned") or the face embedding."""
    if kind == "networks":
        return shared.get("network-features", lambda: NetworkFeatures(_age_network(weights, shared),
                                                                      _gender_network(weights, shared)))
    return face_embedder(weights, shared)


def _head(head_class, network: Callable[[Weights, SharedModels], object], choice: str):
    heads_key, kind = HEAD_FILES[choice]

    def build(weights: Weights, settings: Settings, shared: SharedModels):
        return head_class(network(weights, shared), weights[heads_key], _features(weights, shared, kind),
                          ensemble=choice != "heads")
    return build


def _expression(choice: str):
    def build(weights: Weights, settings: Settings, shared: SharedModels) -> ExpressionModel:
        return ExpressionModel([weights[key] for key in NETWORK_KEYS[choice]], flip=settings.expression_flip,
                               box_margin=settings.expression_box_margin,
                               crop_margin=settings.expression_crop_margin, mirrored=mirrored_networks(choice))
    return build


Factory = Callable[[Weights, Settings, SharedModels], object]
REGISTRY: dict[tuple[str, str], Factory] = {
    ("age", "dlib"): lambda weights, settings, shared: _age_network(weights, shared),
    ("gender", "dlib"): lambda weights, settings, shared: _gender_network(weights, shared),
    **{("age", choice): _head(HeadAgeModel, _age_network, choice) for choice in HEAD_FILES},
    **{("gender", choice): _head(HeadGenderModel, _gender_network, choice) for choice in HEAD_FILES},
    **{("expression", choice): _expression(choice) for choice in EXPRESSION_CHOICES},
}
assert {choice for (task, choice) in REGISTRY if task == "age"} == set(AGE_GENDER_CHOICES)


def build_person_head(weights: Weights, settings: Settings, shared: SharedModels) -> PersonHead | None:
    """The person head of the settings' age/gender choice (None: persons are answered from their frames)."""
    key = PERSON_HEADS.get(settings.age_gender)
    if key is None:
        return None
    return PersonHead(weights[key], _features(weights, shared, "networks"))


def build_task_models(weights: Weights, settings: Settings, shared: SharedModels | None = None) -> dict:
    """{task: unprepared model} for every task, as ``settings`` chooses; ``shared`` holds the networks that
    several users read (one per analyzer)."""
    shared = shared if shared is not None else SharedModels()
    return {task: REGISTRY[task, getattr(settings, field)](weights, settings, shared)
            for task, field in TASK_SETTING.items()}
