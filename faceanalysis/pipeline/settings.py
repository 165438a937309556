"""Everything a ``FaceAnalyzer`` is built with, as one typed, immutable value.

Settings are arguments: nothing below the entry points reads the environment. ``faceanalysis.cli`` turns
environment variables and flags into a ``Settings``; a batch worker in another process gets the same value
passed to it (it is plain data: ``to_json`` / ``Settings(**data)``). Invalid values raise ``ValueError`` at
construction, before any model is loaded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

# Which models answer, per group of tasks (the registry maps each (task, choice) to a factory). "ensemble" is a
# different mix in each group: for age and gender, heads on the face embedding mixed with the two networks; for
# expression, the mean of two CNNs. The names stay as they are: FACE_AGE_GENDER, FACE_EXPRESSION, the flags and
# every answer's meta.model_choice use them.
AGE_GENDER_CHOICES = ("tuned", "dlib", "heads", "ensemble", "lifespan")
EXPRESSION_CHOICES = ("ensemble", "mini-xception", "vgg", "ferplus", "ferplus-mini-xception", "ferplus-ensemble",
                      "ferplus-mini-xception-2", "ferplus-trio")
DEVICES = ("auto", "cpu", "gpu")
DETECT_MAX_SIDE = 1280
MIN_DETECT_SIDE = 128          # a smaller working resolution finds only faces that fill the frame


@dataclass(frozen=True)
class Settings:
    # "lifespan": per face, heads on the networks' own features over 0-100 years (no extra network); per
    # person, a head that also reads the dlib embedding of the few faces the tracker embeds (age.person). The
    # best on the view of UTKFace validation balanced by decade and on its natural view (docs/models.md).
    # "tuned": the v1 heads on the same features. Age/gender "ensemble" embeds every face (~75 ms per face on a
    # CPU core: ~35 -> ~10 frames/s). "dlib" is the choice for uses that UTKFace's non-commercial terms exclude
    # (its weights are CC0).
    age_gender: str = "lifespan"
    # The mean of the three networks fine-tuned on the FER+ vote distributions (the project's VGG, without its
    # mirror image, and two fine-tunes of the mini-Xception): the best FER+ majority accuracy on FER2013
    # dev_choose, for no more than the former default "ensemble" costs (training/ferplus.py, docs/expression.md).
    # "ferplus-ensemble" (the VGG and one mini-Xception) is 0.004 less accurate; "ferplus-mini-xception" alone
    # 0.017 less, at a third of the cost. "ensemble": the two FER2013-trained networks averaged;
    # "mini-xception" runs only MIT weights.
    expression: str = "ferplus-trio"
    aggregator: str = "confidence_weighted_mean"
    batch_size: int = 16               # frames per detector / network call
    device: str = "auto"               # auto: the GPU when TensorFlow / onnxruntime see one
    min_face_size: int = 20            # pixels; MTCNN's smallest face
    # Detections below are dropped; below MTCNN's own R-Net / O-Net thresholds (0.7, 0.8) it lowers them too
    # (detector.stage_thresholds). 0.6, not 0.9: faces looking down, turned or blurred score 0.6-0.9, and on the
    # labelled clips 0.6 found 20 of 37 of the arm-wrestling teen's faces (0.9: 5) and 35 of 54 of the bedroom
    # children's (0.9: 19). What else it boxes (hands, hair) the face gate keeps out of the listed persons.
    min_confidence: float = 0.6
    # MTCNN runs on the frame scaled so that its long side is at most this many pixels (0: on the full frame);
    # boxes and landmarks are mapped back and the models crop from the full frame. A face under
    # min_face_size * long side / detect_max_side pixels is then not found. 1280: up to 1280x720 nothing changes;
    # 960 lost faces that changed person answers at 720p on the shared clips (docs/performance.md).
    detect_max_side: int = DETECT_MAX_SIDE
    # BlazeFace (MediaPipe's full-range detector) proposes faces to MTCNN's O-Net where MTCNN found none
    # (blazeface.py): faces looking down or half out of the frame, which MTCNN's first stages miss. On the
    # labelled clips it added 4 of the arm-wrestling teen's faces and 7 of the bedroom children's, and 1 non-face
    # (docs/real-footage.md). About 5 ms of one CPU core a frame.
    blazeface_proposals: bool = True
    # No margin around the face box, detector box or given crop alike. The fer package pads its detector box
    # by 10 px per side, but on MTCNN boxes that framing is wider than FER2013's: on synthetic camera-motion
    # sequences of held-out FER2013 train stills (bench/expression_margin_study.py, 84 stills) sequence
    # accuracy was 0.762 with no margin, 0.625 with 10% and 0.575 with 20%; on dev stills (60,
    # bench/aggregation_study.py) 0.567 against 0.433. On given crops (FER2013 dev, evaluate.py
    # --faces-given) a margin only adds replicated border: 0.617 with 10%, 0.653 without (mini-Xception).
    expression_box_margin: float = 0.0     # share of the box side added per side, detector boxes
    expression_crop_margin: float = 0.0    # the same for given face crops (faces_given)
    # Expressions are left-right symmetric; averaging over the mirror image gained accuracy on the held-out
    # part of FER2013 train for both networks (training/expression.py).
    expression_flip: bool = True
    # Tracking (tracking.py; the README's "Persons" says how each was chosen on the composed real-face videos).
    tracker_min_iou: float = 0.3       # a face continues the tracklet whose predicted box it overlaps this much
    tracker_max_gap: int = 5           # analysed frames a tracklet may be missed before it closes
    tracker_cut_threshold: float = 0.15        # frame thumbnail change (0..1) that is a shot cut
    tracker_appearance_threshold: float = 0.55     # face crop correlation below which someone else is there
    tracker_identity_distance: float = 0.5     # embedding distance (average linkage) up to which tracklets merge
    # Real footage (docs/real-footage.md, "How persons are formed"): the face gate drops detections that are not
    # faces (gate.py); a person is listed only with at least min_frames face frames (fewer when fewer frames
    # were read); shorter tracks are counted in meta.persons_unlisted.
    face_gate: bool = True
    min_frames: int = 5

    def __post_init__(self) -> None:
        from .aggregate import AGGREGATORS

        for field in fields(self):
            value = getattr(self, field.name)
            wanted = {"str": str, "int": int, "float": (int, float), "bool": bool}[field.type]
            if not isinstance(value, wanted) or (field.type in ("int", "float") and isinstance(value, bool)):
                raise ValueError(f"{field.name} must be {field.type}, not {value!r}")
        _one_of("age_gender", self.age_gender, AGE_GENDER_CHOICES)
        _one_of("expression", self.expression, EXPRESSION_CHOICES)
        _one_of("aggregator", self.aggregator, tuple(AGGREGATORS))
        _one_of("device", self.device, DEVICES)
        _at_least("batch_size", self.batch_size, 1)
        # P-Net's input is 12 px: a smaller minimum face has no pyramid level that can find it.
        _at_least("min_face_size", self.min_face_size, 12)
        if self.detect_max_side != 0 and self.detect_max_side < MIN_DETECT_SIDE:
            raise ValueError(f"detect_max_side must be 0 (detect on the full frame) or at least {MIN_DETECT_SIDE}, "
                             f"not {self.detect_max_side}")
        _at_least("tracker_max_gap", self.tracker_max_gap, 0)
        _at_least("min_frames", self.min_frames, 1)
        _at_least("expression_box_margin", self.expression_box_margin, 0)
        _at_least("expression_crop_margin", self.expression_crop_margin, 0)
        if not 0 <= self.min_confidence <= 1:
            raise ValueError(f"min_confidence must be from 0 to 1, not {self.min_confidence}")
        if not 0 < self.tracker_min_iou <= 1:
            raise ValueError(f"tracker_min_iou must be above 0 and at most 1, not {self.tracker_min_iou}")
        for name in ("tracker_cut_threshold", "tracker_identity_distance"):
            _at_least(name, getattr(self, name), 0)
        if not -1 <= self.tracker_appearance_threshold <= 1:
            raise ValueError(f"tracker_appearance_threshold is a correlation, from -1 to 1, not "
                             f"{self.tracker_appearance_threshold}")

    def to_json(self) -> dict:
        return asdict(self)

    def replace(self, **changes) -> "Settings":
        return replace(self, **changes)

    @property
    def model_choice(self) -> dict:
        return {"age_gender": self.age_gender, "expression": self.expression}


def _one_of(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name}={value!r}: expected one of {', '.join(choices)}")


def _at_least(name: str, value, low) -> None:
    if value < low:
        raise ValueError(f"{name} must be at least {low}, not {value}")
