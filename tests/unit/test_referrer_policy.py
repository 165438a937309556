"""Every response says ``Referrer-Policy: no-referrer`` (security.py): pages, scripts, probes, JSON answers and
every kind of error, with and without an API token, and while shutting down. No model is loaded: the app gets
a stand-in analyzer, and none of these requests reaches an analysis."""

from __future__ import annotations

import types

import pytest

from faceanalysis.service.security import SECURITY_HEADERS
from faceanalysis.service.web import create_app, runtime_of

STAND_IN = types.SimpleNamespace(ready=True, device=types.SimpleNamespace(kind="CPU"))
TOKEN = "a-token-of-sixteen-or-more"


def test_the_header_is_one_of_the_security_headers():
    assert SECURITY_HEADERS["Referrer-Policy"] == "no-referrer"


@pytest.mark.parametrize("token", [None, TOKEN])
def test_every_response_says_no_referrer(samples_dir, token):
    app = create_app(STAND_IN, samples_dir, api_token=token)
    client = app.test_client()
    auth = {"Authorization": f"Bearer {TOKEN}"} if token else {}
    responses = {
        "page": client.get("/"),
        "script": client.get("/static/page.js"),
        "probe": client.get("/healthz"),
        "samples": client.get("/api/v2/samples", headers=auth),
        "no such route": client.get("/nowhere", headers=auth),
        "wrong method": client.delete("/healthz", headers=auth),
        "bad name": client.get("/seqPath/..", headers=auth),
        "no such sample": client.get("/seqPath/missing", headers=auth),
        "bad body": client.post("/api/v2/analyze", data=b"x", headers=auth),
        "wrong token": client.get("/api/v2/samples", headers={"Authorization": "Bearer wrong"}),
    }
    runtime_of(app).shutdown(0.0)
    responses["shutting down"] = client.get("/seqPath/seqA", headers=auth)
    statuses = {name: response.status_code for name, response in responses.items()}
    # Successes, and each class of error the app answers.
    assert statuses["page"] == statuses["script"] == statuses["probe"] == statuses["samples"] == 200
    assert statuses["no such route"] == statuses["no such sample"] == 404 and statuses["wrong method"] == 405
    assert statuses["bad name"] == 400 and statuses["shutting down"] == 503
    assert statuses["wrong token"] == (401 if token else 200)
    for name, response in responses.items():
        assert response.headers.get("Referrer-Policy") == "no-referrer", name
        response.close()
