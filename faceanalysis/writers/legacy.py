"""The legacy JSON writer: the 2020 system's answer format, kept exactly: numeric codes, values as strings.

10001 angry, 10002 disgust, 10003 fear, 10004 happy, 10005 sad, 10006 surprise,
10007 neutral; 30001 male, 30002 female; 20000 age in whole years. The answer is
``SequenceResult.summary``: the primary person's faces (the person seen in most frames), combined.
"""

from __future__ import annotations

from faceanalysis.pipeline.result import SequenceResult

EXPRESSION_CODES = (10001, 10002, 10003, 10004, 10005, 10006, 10007)
GENDER_CODES = (30001, 30002)
AGE_CODE = 20000
DECIMALS = 6


def legacy_json(result: SequenceResult) -> dict:
    """Integer keys as the original printed them; JSON (Flask's, ``json.dumps``) turns them into strings."""
    summary = result.summary
    return {
        "Video_Emo": {code: _probability(p) for code, p in zip(EXPRESSION_CODES, summary.expression)},
        "Video_Gen": {code: _probability(p) for code, p in zip(GENDER_CODES, summary.gender)},
        "Video_Age": {AGE_CODE: str(int(round(summary.age)))},
    }


def _probability(value: float) -> str:
    # Fixed-point, never "3e-06": the original printed plain decimals.
    return f"{float(value):.{DECIMALS}f}"
