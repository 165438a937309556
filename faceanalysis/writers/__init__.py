"""Writers: one ``SequenceResult`` written out in each format users get, each writer one small module here.

    legacy.py   the legacy JSON ({Video_Emo, Video_Gen, Video_Age}: numeric codes, values as strings)
    v2.py       the API v2 JSON (persons, timeline, meta; the shape declared in ``service/contract.py``)
    table.py    table rows: per input, per person, per face (the batch tables' Parquet and CSV, ``analyse --csv``)

Every writer only reads the result: none changes it, and none reads another writer's output. The service, the
``faceanalysis analyse`` command and the batch runner all write through these. A new format is one new module
here; a JSON answer format is also named in ``JSON_FORMATS``, which ``faceanalysis analyse --format`` offers.
"""

from __future__ import annotations

from typing import Callable

from faceanalysis.pipeline.result import SequenceResult
from faceanalysis.service.contract import Input, Options

from .legacy import legacy_json
from .v2 import v2_json

# name -> writer(result, the input as the answer names it, the options it was analysed with) -> JSON-ready data
JSON_FORMATS: dict[str, Callable[[SequenceResult, Input, Options], dict]] = {
    "v2": v2_json,
    "legacy": lambda result, given, options: legacy_json(result),
}
