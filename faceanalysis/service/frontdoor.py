"""Waitress, with the limits a server reachable from a network needs before the app sees a request.

Waitress reads a request's headers and then its whole body (into memory, or a temporary file past 512 KB)
before it calls the app. What must be refused before the body is read is therefore refused here, as soon as
the headers have ended, and the connection is closed without reading the body:

* a declared body larger than the app's ``MAX_CONTENT_LENGTH``: 413 ``request_too_large`` (waitress's
  ``max_request_body_size`` is set from the same limit, which also stops a chunked body that grows past it);
* with an API token, a request that carries a body (``Content-Length`` above 0, or chunked) without the right
  ``Authorization: Bearer`` header: 401 ``unauthorized``. A request without a body goes on to the app, which
  applies the same rule with its open routes (``security.py``).

Slow and idle clients lose their connection before they can hold the server (``ConnectionLimits``): a new
connection's first byte must come within ``header_timeout_s``, a request's headers within ``header_timeout_s``
of its first byte, its body at an average of at least
``min_body_rate`` bytes/s once ``header_timeout_s`` has passed, and a connection idle between requests for
``idle_timeout_s`` is closed. Up to ``connection_limit`` connections are open at once (beyond that waitress
stops accepting until one closes); ``poll`` watches them, since ``select`` cannot go past 1024.

``GET /healthz`` is answered by the I/O thread itself, from the request's headers, so liveness never waits
behind the worker threads however long the analyses they run take. Every reply waitress makes itself
(400, 401, 413, 431, 500, 501) has the service's JSON error shape and the security headers.

This relies on waitress 3.0's parser and channel (``waitress==3.0.2`` is pinned); ``received`` is waitress's
own, with the inline liveness answer added.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass

from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import BaseWSGIServer
from waitress.task import ErrorTask
from waitress.utilities import Error

from faceanalysis.service.contract import error_json
from faceanalysis.service.security import SECURITY_HEADERS, token_matches

log = logging.getLogger(__name__)

HEALTH_BODY = b'{"status":"ok"}\n'       # what the app's /healthz answers (contract.Health)
WAITRESS_CODES = {400: "bad_request", 401: "unauthorized", 413: "request_too_large",
                  431: "request_header_fields_too_large", 500: "internal_error", 501: "not_implemented"}


@dataclass(frozen=True)
class ConnectionLimits:
    """How many connections, and how slow a client may be. Documented in docs/hardening.md."""
    connection_limit: int = 1000        # open connections; more wait in the listen backlog
    header_timeout_s: float = 10.0      # a request's headers, from its first byte
    min_body_rate: int = 16 * 1024      # bytes/s on average over a body, after header_timeout_s
    idle_timeout_s: float = 30.0        # a keep-alive connection with no request under way
    cleanup_interval_s: float = 2.0     # how often idle connections are looked for


class Unauthorized(Error):
    code = 401
    reason = "Unauthorized"


class _TooLarge(Error):
    code = 413
    reason = "Request Entity Too Large"


def waitress_settings(limits: ConnectionLimits, max_body: int) -> dict:
    """Keyword arguments for ``waitress.create_server``."""
    return {
        # waitress refuses a body of max_request_body_size bytes or more; the app allows max_body exactly.
        "max_request_body_size": max_body + 1,
        "connection_limit": limits.connection_limit,
        "channel_timeout": limits.idle_timeout_s,
        "cleanup_interval": limits.cleanup_interval_s,
        "asyncore_use_poll": True,
        "ident": "faceanalysis",
    }


def install(server, token: str | None, limits: ConnectionLimits, max_body: int) -> None:
    """Make every socket of ``server`` (from ``waitress.create_server``) use the guarded channel."""
    channel = channel_class(token, limits, max_body)
    sockets = getattr(server, "map", None) or getattr(server, "_map", {})
    for dispatcher in [server, *sockets.values()]:
        if isinstance(dispatcher, BaseWSGIServer):
            dispatcher.channel_class = channel


def channel_class(token: str | None, limits: ConnectionLimits, max_body: int) -> type[HTTPChannel]:
    expected = token.encode() if token is not None else None

    class GuardedParser(HTTPRequestParser):
        def __init__(self, adj) -> None:
            super().__init__(adj)
            self.began = time.monotonic()
            self.headers_at: float | None = None

        def parse_header(self, header_plus: bytes) -> None:
            super().parse_header(header_plus)
            self.headers_at = time.monotonic()
            carries_body = self.chunked or self.content_length > 0
            if expected is not None and carries_body and not token_matches(self.headers.get("AUTHORIZATION", ""),
                                                                             expected):
                self.refuse(Unauthorized("this server needs its API token before it reads a request body: send "
                                         "the header 'Authorization: Bearer <token>'"))
            elif self.content_length > max_body:
                self.refuse(_TooLarge(f"the request body is {self.content_length} bytes, more than the limit "
                                      f"of {max_body}"))

        def refuse(self, error: Error) -> None:
            self.error = error
            self.completed = True
            # No "100 Continue" for a request that is refused: the client must not send the body.
            self.expect_continue = False
            self.body_rcv = None
            self.content_length = 0     # not read: and waitress's own size check must not replace this error

        def received(self, data: bytes) -> int:
            consumed = super().received(data)
            if self.error is not None:
                self.expect_continue = False
            return consumed

        @property
        def is_health_probe(self) -> bool:
            return (self.error is None and self.command == "GET" and self.path == "/healthz"
                    and not self.chunked and self.content_length == 0)

        def overdue(self, now: float) -> str | None:
            """Why this request, still arriving, is too slow; None while it keeps up."""
            if self.headers_at is None:
                if now - self.began > limits.header_timeout_s:
                    return f"headers not complete after {limits.header_timeout_s:g} s"
                return None
            late = now - self.began - limits.header_timeout_s
            if late > 0 and self.body_bytes_received < limits.min_body_rate * late:
                return f"body slower than {limits.min_body_rate} bytes/s"
            return None

    class JsonErrorTask(ErrorTask):
        def execute(self) -> None:
            error = self.request.error
            code = WAITRESS_CODES.get(error.code, error.reason.lower().replace(" ", "_"))
            message = error.body if isinstance(error, (Unauthorized, _TooLarge)) else \
                f"{error.reason.lower()}: {error.body}"
            if error.code == 413 and not isinstance(error, _TooLarge):
                message = f"the request body is over the limit of {max_body} bytes"
            if error.code == 500:
                message = "the server failed unexpectedly"
            body = (json.dumps(error_json(code, message), separators=(",", ":")) + "\n").encode()
            self.status = f"{error.code} {error.reason}"
            self.response_headers.append(("Content-Type", "application/json"))
            self.response_headers.extend(SECURITY_HEADERS.items())
            if error.code == 401:
                self.response_headers.append(("WWW-Authenticate", 'Bearer realm="faceanalysis"'))
            self.set_close_on_finish()
            self.content_length = len(body)
            self.write(body)

    class GuardedChannel(HTTPChannel):
        parser_class = GuardedParser
        error_task_class = JsonErrorTask

        def __init__(self, *args, **kwargs) -> None:
            self.opened = time.monotonic()
            self.spoke = False              # whether the client sent anything yet
            super().__init__(*args, **kwargs)

        def readable(self) -> bool:
            # Called by the I/O loop for every connection at least once a second (asyncore_loop_timeout).
            request = self.request
            if not self.requests and not self.will_close:
                now = time.monotonic()
                if request is not None:
                    why = request.overdue(now)
                elif not self.spoke and now - self.opened > limits.header_timeout_s:
                    why = f"nothing sent within {limits.header_timeout_s:g} s of connecting"
                else:
                    why = None
                if why is not None:
                    log.info("closing the connection from %s: %s", self.addr[0] if self.addr else "?", why)
                    self.will_close = True
                    return False
            return super().readable()

        def received(self, data: bytes) -> bool:
            # waitress 3.0.2's HTTPChannel.received, plus: a complete GET /healthz with nothing queued before it
            # on this connection is answered here, on the I/O thread.
            if not data:
                return False
            self.spoke = True
            with self.requests_lock:
                if self.will_close or self.close_when_flushed:
                    return False
                while data:
                    if self.request is None:
                        self.request = self.parser_class(self.adj)
                    n = self.request.received(data)
                    if (self.request.expect_continue and self.request.headers_finished and not self.requests
                            and not self.sent_continue):
                        self.send_continue()
                    if self.request.completed:
                        self.sent_continue = False
                        if self.request.is_health_probe and not self.requests:
                            self._answer_health()
                            self.request = None
                            return True         # the connection closes after the answer: ignore the rest
                        if not self.request.empty:
                            self.requests.append(self.request)
                            if len(self.requests) == 1:
                                self.server.add_task(self)
                        self.request = None
                    if n >= len(data):
                        break
                    data = data[n:]
            return True

        def _answer_health(self) -> None:
            headers = [("Content-Type", "application/json"), ("Content-Length", str(len(HEALTH_BODY))),
                       ("Connection", "close"), *SECURITY_HEADERS.items()]
            head = "HTTP/1.1 200 OK\r\n" + "".join(f"{name}: {value}\r\n" for name, value in headers) + "\r\n"
            payload = head.encode("latin-1") + HEALTH_BODY
            with self.outbuf_lock:
                self.outbufs[-1].append(payload)
                self.current_outbuf_count += len(payload)
                self.total_outbufs_len += len(payload)
            self.close_when_flushed = True

    return GuardedChannel
