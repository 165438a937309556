"""The API token and the security headers (faceanalysis/service/security.py, faceanalysis/server_setup.py).

Through Flask's test client with a stand-in analyzer (no model loads): a missing, wrong and right token on every
kind of route, the open routes, and the headers on every response. Then real processes: the refusal to start
on a non-loopback address without a token (before any model loads), and a server on 0.0.0.0 with a token,
driven through the page in headless Chromium when it is installed (the page asks for the token and sends it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types

import pytest

from checks import error_of
from conftest import REPO
from faceanalysis.server_setup import is_loopback
from faceanalysis.service import security
from faceanalysis.service.web import create_app
from service_process import Server, tiny_samples
from test_page import browser  # noqa: F401  (the fixture: headless Chromium, or a skip saying why not)

TOKEN = "s3cret-token-for-the-tests-0123456789"
STAND_IN = types.SimpleNamespace(ready=True, device=types.SimpleNamespace(kind="CPU"))
PROTECTED = [("GET", "/api/v2/samples"), ("GET", "/api/v2/openapi.json"), ("GET", "/seqPath/test"),
             ("POST", "/api/v2/analyze"), ("POST", "/api/v2/jobs"), ("GET", "/api/v2/jobs/some-id"),
             ("GET", "/api/v2/samples/seqA/frames/0.jpg"), ("GET", "/nowhere")]
OPEN = ["/healthz", "/readyz", "/", "/static/page.js", "/static/page.css"]


@pytest.fixture()
def guarded(samples_dir):
    return create_app(STAND_IN, samples_dir, api_token=TOKEN).test_client()


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("method, path", PROTECTED)
def test_a_missing_token_is_401(guarded, method, path):
    response = guarded.open(path, method=method, json={"sample": "seqA"} if method == "POST" else None)
    assert "Authorization: Bearer" in error_of(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("header", [f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", "Bearer ", f"Basic {TOKEN}",
                                    TOKEN, f"Bearer {TOKEN.upper()}"])
def test_a_wrong_token_is_401(guarded, header):
    response = guarded.get("/api/v2/samples", headers={"Authorization": header})
    error_of(response, 401, "unauthorized")


def test_the_right_token_opens_every_route(guarded):
    assert guarded.get("/api/v2/samples", headers=bearer(TOKEN)).get_json() == {"samples": ["seqA"]}
    assert guarded.get("/api/v2/samples", headers={"Authorization": f"bearer  {TOKEN} "}).status_code == 200
    assert guarded.get("/api/v2/openapi.json", headers=bearer(TOKEN)).status_code == 200
    assert guarded.get("/api/v2/samples/seqA/frames/0.jpg", headers=bearer(TOKEN)).status_code == 200
    error_of(guarded.get("/api/v2/jobs/some-id", headers=bearer(TOKEN)), 404, "job_not_found")
    error_of(guarded.get("/nowhere", headers=bearer(TOKEN)), 404, "not_found")


@pytest.mark.parametrize("path", OPEN)
def test_health_readiness_and_the_page_stay_open(guarded, path):
    response = guarded.get(path)
    assert response.status_code == 200, path
    response.close()


def test_the_token_is_compared_in_constant_time(guarded, monkeypatch):
    calls = []

    def compare(given, expected):
        calls.append((given, expected))
        return given == expected
    monkeypatch.setattr(security.hmac, "compare_digest", compare)
    guarded.get("/api/v2/samples", headers=bearer("guess-guess-guess-guess"))
    assert calls == [(b"guess-guess-guess-guess", TOKEN.encode())]


@pytest.mark.parametrize("token, reason", [("short", "at least 16"), ("has a space in it, long", "spaces"),
                                           ("tab\tinside-a-long-token", "spaces")])
def test_a_token_that_cannot_serve_is_refused(samples_dir, token, reason):
    with pytest.raises(ValueError, match=reason):
        create_app(STAND_IN, samples_dir, api_token=token)


@pytest.mark.parametrize("token", [None, TOKEN])
def test_every_response_carries_the_security_headers(samples_dir, token):
    client = create_app(STAND_IN, samples_dir, api_token=token).test_client()
    headers = bearer(TOKEN) if token else {}
    responses = [client.get("/", headers=headers), client.get("/static/page.js"), client.get("/healthz"),
                 client.get("/api/v2/samples", headers=headers), client.get("/nowhere", headers=headers),
                 client.get("/api/v2/samples"), client.post("/api/v2/analyze", data=b"x", headers=headers)]
    for response in responses:
        assert response.headers["Content-Security-Policy"] == security.CONTENT_SECURITY_POLICY
        assert "default-src 'self'" in response.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
        response.close()


def test_the_page_asks_for_the_token_and_sends_it(guarded):
    html = guarded.get("/").get_data(as_text=True)
    assert '<input id="token"' in html and 'type="password"' in html
    script = guarded.get("/static/page.js").get_data(as_text=True)
    assert "sessionStorage" in script and "Authorization: `Bearer ${token}`" in script


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("127.8.0.1", True), ("::1", True),
                                            ("[::1]", True), ("localhost", True), ("0.0.0.0", False),
                                            ("", False), ("::", False), ("192.168.1.5", False),
                                            ("example.org", False)])
def test_which_addresses_are_loopback(host, loopback):
    assert is_loopback(host) is loopback


# --- real processes -------------------------------------------------------------------------------------------

def run_server(tmp_path, *flags, env=None) -> subprocess.CompletedProcess:
    command = [sys.executable, str(REPO / "flaskMain.py"), "--port", "0", "--data-dir", str(tmp_path / "data"),
               *flags]
    # Only the token given here counts, not one the machine's environment happens to hold.
    environment = {name: value for name, value in os.environ.items() if name != "FACE_API_TOKEN"}
    environment.update({"TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})})
    return subprocess.run(command, cwd=REPO, env=environment, capture_output=True, text=True, timeout=120)


def error_line(stderr: str) -> dict:
    return json.loads(stderr.strip().splitlines()[-1])["error"]


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.1"])
def test_refuses_a_non_loopback_address_without_a_token(tmp_path, host):
    finished = run_server(tmp_path, "--host", host)
    assert finished.returncode == 2, finished.stderr[-2000:]
    error = error_line(finished.stderr)
    assert error["code"] == "token_required" and repr(host) in error["message"]
    assert "--api-token-file" in error["message"]
    # Refused before anything was made or loaded.
    assert not (tmp_path / "data").exists()


def test_refuses_a_token_file_it_cannot_read_or_use(tmp_path):
    missing = run_server(tmp_path, "--api-token-file", str(tmp_path / "nope"))
    assert missing.returncode == 2 and error_line(missing.stderr)["code"] == "invalid_token"
    assert str(tmp_path / "nope") in error_line(missing.stderr)["message"]
    short = tmp_path / "short"
    short.write_text("abc\n")
    refused = run_server(tmp_path, "--host", "0.0.0.0", "--api-token-file", str(short))
    assert refused.returncode == 2 and "at least 16" in error_line(refused.stderr)["message"]


@pytest.fixture(scope="module")
def exposed(tmp_path_factory):
    """A real server on every interface, its token in a file (mode 600)."""
    workdir = tmp_path_factory.mktemp("exposed")
    token_file = workdir / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    server = Server(workdir / "data", workdir, tiny_samples(workdir / "samples"), "--host", "0.0.0.0",
                    "--api-token-file", str(token_file)).start()
    yield server
    assert server.stop() == 0


def test_an_exposed_server_requires_its_token(exposed):
    assert exposed.get("/healthz").status == 200 and exposed.get("/readyz").status == 200
    refused = exposed.get("/api/v2/samples")
    assert refused.status == 401 and refused.json["error"]["code"] == "unauthorized"
    assert exposed.get("/api/v2/samples", headers=bearer("wrong-wrong-wrong-wrong")).status == 401
    exposed.token = TOKEN
    try:
        job = exposed.post_json("/api/v2/jobs", {"sample": "seqA"})
        assert job.status == 202
        assert exposed.wait_for(job.json["id"])["status"] == "done"
    finally:
        exposed.token = None
    assert "can be read by other users" not in exposed.log()


def test_the_page_works_with_the_token(exposed, browser):
    page = browser.new_page()
    try:
        blocked = []
        page.on("console", lambda message: blocked.append(message.text)
                if "Content Security Policy" in message.text else None)
        page.goto(f"{exposed.url}/")
        # Without the token the sample list is refused, and the page says why.
        page.locator("#error").wait_for(state="visible")
        assert "unauthorized" in page.locator("#error").inner_text()
        page.get_by_label("API token").fill(TOKEN)
        page.get_by_label("API token").press("Tab")          # "change": kept, and the samples asked again
        page.locator("#sample option[value=seqA]").wait_for(state="attached")
        assert page.evaluate("sessionStorage.getItem('faceanalysis.apiToken')") == TOKEN
        page.get_by_label("Sample", exact=True).select_option("seqA")
        page.get_by_role("button", name="Analyse").click()
        page.locator("#results").wait_for(state="visible", timeout=120_000)
        page.locator("#strip canvas[data-drawn=true]").first.wait_for(timeout=60_000)
        assert page.locator("#error").is_hidden()
        assert blocked == []
    finally:
        page.close()
