"""Who may use the service, and the headers every response carries.

With an API token, every request but the open ones must send ``Authorization: Bearer <token>``; the token is
compared in constant time (``hmac.compare_digest``), so the time an answer takes says nothing about how much of
a guess was right. Open without a token: ``/healthz`` and ``/readyz`` (a load balancer or an orchestrator
probes them), and the browser page with its script and style sheet (the page asks for the token and sends it).
The server requires a token when it listens on anything but the loopback interface (``server_main.py``).

Every response, an error included, says: same-origin content only (CSP), nothing in a frame of another site
(``frame-ancestors 'none'``, and ``X-Frame-Options`` for browsers that predate it), no MIME sniffing, no
referrer. ``img-src`` allows ``data:`` and ``blob:`` because the page shows each person's picture (a data: URL
in the answer) and draws the frame thumbnails from fetched blobs.
"""

from __future__ import annotations

import hmac

from flask import Flask, jsonify, request

from faceanalysis.service.contract import error_json

OPEN_ENDPOINTS = frozenset({"api_v2.healthz", "api_v2.readyz", "page.index", "static"})
# media-src blob:: the page plays a job's upload from memory (fetched with the API token, which a <video> cannot
# send), through a blob: URL only its own script can make.
CONTENT_SECURITY_POLICY = ("default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
                           "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
MIN_TOKEN_LENGTH = 16


def check_token(token: str) -> str:
    """The token as given, or ``ValueError`` saying why it cannot serve as one."""
    if len(token) < MIN_TOKEN_LENGTH:
        raise ValueError(f"the API token has {len(token)} characters; use at least {MIN_TOKEN_LENGTH} "
                         "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')")
    if any(character.isspace() or not character.isprintable() for character in token):
        raise ValueError("the API token must not contain spaces or control characters")
    if not token.isascii():
        # HTTP header values reach the app as latin-1: a client could never send a token beyond ASCII intact.
        raise ValueError("the API token must be ASCII (letters, digits and punctuation): a header cannot carry "
                         "other characters reliably")
    return token


def token_matches(authorization: str, expected: bytes) -> bool:
    """Whether an ``Authorization`` header value is ``Bearer <expected>``, compared in constant time."""
    scheme, _, given = authorization.partition(" ")
    try:
        given_bytes = given.strip().encode("ascii")
    except UnicodeEncodeError:
        return False
    return scheme.lower() == "bearer" and hmac.compare_digest(given_bytes, expected)


def install_security(app: Flask, token: str | None) -> None:
    """Require ``token`` (when given) on every request but the open ones; add the security headers to every
    response."""
    expected = check_token(token).encode() if token is not None else None

    @app.before_request
    def require_token():
        if expected is None or request.endpoint in OPEN_ENDPOINTS:
            return None
        authorization = request.headers.get("Authorization", "")
        if token_matches(authorization, expected):
            return None
        given = authorization.partition(" ")[2]
        message = ("this server needs its API token: send the header 'Authorization: Bearer <token>'"
                   if not given else "the API token is wrong")
        return jsonify(error_json("unauthorized", message)), 401, {"WWW-Authenticate": 'Bearer realm="faceanalysis"'}

    @app.after_request
    def add_headers(response):
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response
