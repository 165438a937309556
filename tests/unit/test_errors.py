"""The error catalogue (facecore/errors.py): every code has a status and a meaning; an unknown code is refused;
every code the source raises is in it; the OpenAPI document lists exactly its API codes, each under its status;
the docs' error table is the catalogue printed."""

from __future__ import annotations

import ast
import re

import pytest
from werkzeug import exceptions as http

from conftest import REPO
from faceanalysis.service.contract import Limits
from faceanalysis.service.frontdoor import WAITRESS_CODES
from faceanalysis.service.openapi import openapi_spec
from facecore.errors import API, CATALOGUE, HTTP, JOB, MARKDOWN_HEADER, WHERE, AnalysisError, UnknownErrorCode, markdown

SOURCE_FOLDERS = ("facecore", "age", "gender", "emotion", "faceanalysis", "training", "bench")
ROOT_SCRIPTS = ("flaskMain.py", "TestAPI.py", "TestFlask.py", "testForTimeMeasure.py", "evaluate.py")


def test_every_code_has_an_error_status_a_meaning_and_a_source():
    for code, kind in CATALOGUE.items():
        assert kind.code == code
        assert re.fullmatch(r"[a-z]+(_[a-z]+)*", code), code
        assert 400 <= kind.status <= 599, code
        assert kind.meaning.strip() and not kind.meaning.endswith("."), code
        assert kind.where and set(kind.where) <= set(WHERE), code


def test_an_error_takes_its_status_from_the_catalogue():
    assert AnalysisError("queue_full", "eight waiting").status == 429
    assert AnalysisError("no_face", "none").to_json() == {"error": {"code": "no_face", "message": "none"}}
    assert AnalysisError("cancelled", "stopped").to_record() == {"code": "cancelled", "message": "stopped",
                                                                 "status": 409}
    assert AnalysisError("no_face", "none", 422).status == 422      # the catalogue's status may be restated


def test_an_unknown_code_or_another_status_is_refused():
    with pytest.raises(UnknownErrorCode, match="'no_faces'"):
        AnalysisError("no_faces", "a typo of no_face")
    with pytest.raises(ValueError, match="status 422 in the catalogue, not 400"):
        AnalysisError("no_face", "none", 400)


def calls_with_literal_codes(tree: ast.AST):
    """(line, code) for each code written as a literal where an error is made: the first argument of
    AnalysisError(...), a subclass's super().__init__(...), fail(...) and error_json(...), the code argument of
    invalid(...), and {"code": ...}."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            position = {"AnalysisError": 0, "__init__": 0, "fail": 0, "error_json": 0, "invalid": 1}.get(name)
            if position is None:
                continue
            arguments = [keyword.value for keyword in node.keywords if keyword.arg == "code"]
            arguments += node.args[position:position + 1]
            for argument in arguments:
                if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                    yield node.lineno, argument.value
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if isinstance(key, ast.Constant) and key.value == "code" and isinstance(value, ast.Constant) \
                        and isinstance(value.value, str):
                    yield node.lineno, value.value


def source_files():
    for folder in SOURCE_FOLDERS:
        yield from sorted((REPO / folder).rglob("*.py"))
    yield from (REPO / name for name in ROOT_SCRIPTS)


def test_every_code_the_source_raises_is_in_the_catalogue():
    found, unknown = set(), []
    for path in source_files():
        for line, code in calls_with_literal_codes(ast.parse(path.read_text(encoding="utf-8"))):
            found.add(code)
            if code not in CATALOGUE:
                unknown.append(f"{path.relative_to(REPO)}:{line} {code}")
    assert not unknown, "codes not in facecore.errors.CATALOGUE:\n" + "\n".join(unknown)
    assert {"queue_full", "invalid_output", "token_required", "port_busy", "cancelled", "data_folder_unusable"} <= found


def test_the_source_check_sees_a_code_not_in_the_catalogue():
    planted = ast.parse('raise AnalysisError("no_faces", "typo")\nfail("bad_thing", "x")\n'
                        'invalid("m", "not_a_code")\nerror = {"code": "made_up", "status": 500}\n'
                        'class Own(AnalysisError):\n    def __init__(self, m):\n        super().__init__("own", m)\n')
    assert sorted(code for _, code in calls_with_literal_codes(planted)) == ["bad_thing", "made_up", "no_faces",
                                                                            "not_a_code", "own"]


def test_the_http_layer_answers_catalogued_codes():
    # web.http_error names a werkzeug exception by its name; the front door maps waitress's errors by status.
    for error in (http.BadRequest, http.NotFound, http.MethodNotAllowed, http.UnsupportedMediaType,
                  http.RequestedRangeNotSatisfiable):
        code = error().name.lower().replace(" ", "_")
        assert code in CATALOGUE and CATALOGUE[code].status == error.code, code
    for status, code in WAITRESS_CODES.items():
        assert CATALOGUE[code].status == status and HTTP in CATALOGUE[code].where, code


def documented_codes(spec: dict) -> dict[str, set[str]]:
    """code -> the statuses under which the document lists it (its "Codes: a, b." sentences)."""
    listed: dict[str, set[str]] = {}
    for methods in spec["paths"].values():
        for operation in methods.values():
            for status, answer in operation["responses"].items():
                match = re.search(r"Codes: ([a-z_, ]+)\.$", answer["description"])
                for code in (match.group(1).split(", ") if match else ()):
                    listed.setdefault(code, set()).add(status)
    return listed


def test_the_openapi_document_lists_exactly_the_catalogues_api_codes_under_their_status():
    spec = openapi_spec(Limits())
    listed = documented_codes(spec)
    assert set(listed) == {code for code, kind in CATALOGUE.items() if API in kind.where}
    for code, statuses in listed.items():
        assert statuses == {str(CATALOGUE[code].status)}, code
    # A job-only code is not an HTTP answer; the document names it where a job ends with it.
    text = str(spec)
    for code in (code for code, kind in CATALOGUE.items() if kind.where == (JOB,)):
        assert f"`{code}`" in text, code


def test_the_document_refuses_codes_of_two_statuses_in_one_answer(monkeypatch):
    from faceanalysis.service import openapi
    with pytest.raises(ValueError, match=r"statuses \[404, 422\]"):
        openapi._status(["no_face", "job_not_found"])
    with pytest.raises(ValueError, match=r"not API: \['worker_lost'\]"):
        openapi._status(["worker_lost"])
    assert openapi._status(["no_face", "no_images"]) == "422"


def tables_in(text: str) -> list[str]:
    """Each Markdown table that starts with the catalogue's header, as its lines."""
    found = []
    for match in re.finditer(re.escape(MARKDOWN_HEADER) + r"\n(?:\|.*\n)*", text):
        found.append(match.group(0))
    return found


def test_the_docs_error_tables_are_the_catalogue_printed():
    # docs/api.md holds it; README.md too once it is pasted there (each copy is checked).
    generated = markdown()
    copies = {name: tables_in((REPO / name).read_text(encoding="utf-8")) for name in ("docs/api.md", "README.md")}
    assert copies["docs/api.md"], "docs/api.md has no error table: python -m facecore.errors --markdown"
    for name, tables in copies.items():
        for table in tables:
            assert table == generated, f"{name}'s error table is stale: python -m facecore.errors --markdown"


def test_the_table_has_one_row_per_code_in_status_order():
    rows = markdown().splitlines()[2:]
    assert len(rows) == len(CATALOGUE)
    assert rows[0].startswith("| 400 | `bad_request` |")
    assert rows[-1].startswith("| 503 | `storage_unavailable` |")
    assert "| 429 | `queue_full` | `FACE_JOB_QUEUE_SIZE` (8) jobs are already waiting | API |" in rows
