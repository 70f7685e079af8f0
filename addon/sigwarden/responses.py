"""sigwarden's own answers: one JSON form for every outcome."""

from __future__ import annotations

import time

from mitmproxy import http
from mitmproxy.net.http.status_codes import RESPONSES

from .outcomes import Outcome

# Every answer of an outcome has the same body: encoded once, not per refused request.
_BODIES: dict[Outcome, bytes] = {outcome: outcome.error_body() for outcome in Outcome if outcome.is_refusal}
_REASONS: dict[int, bytes] = {status: reason.encode() for status, reason in RESPONSES.items()}


def json_response(outcome: Outcome, request_id: str | None = None, method: str = "GET") -> http.Response:
    """The answer for a refusal (or a duplicate); reveals no secret, version or address.

    The answer to a HEAD request has the Content-Length of the body but not the body: bytes after
    it would be read as the next answer on the connection (and by a pooling front proxy, for someone else).
    """
    body = _BODIES.get(outcome) or outcome.error_body()
    fields = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]
    if request_id:
        fields.append((b"X-Request-Id", request_id.encode("utf-8", "surrogateescape")))
    fields.append((b"content-length", b"%d" % len(body)))
    if method.upper() == "HEAD":
        body = b""
    now = time.time()
    # What http.Response.make builds, without its keyword headers and content setter (~11 µs a refusal).
    return http.Response(
        b"HTTP/1.1", outcome.status, _REASONS.get(outcome.status, b""), http.Headers(fields), body, None, now, now
    )
