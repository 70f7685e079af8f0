"""sigwarden's own answers: one JSON form for every outcome."""

from __future__ import annotations

from mitmproxy import http

from .outcomes import Outcome


def json_response(outcome: Outcome, request_id: str | None = None, method: str = "GET") -> http.Response:
    """The answer for a refusal (or a duplicate); reveals no secret, version or address.

    The answer to a HEAD request has the Content-Length of the body but not the body: bytes after
    it would be read as the next answer on the connection (and by a pooling front proxy, for someone else).
    """
    headers = http.Headers(
        content_type="application/json",
        cache_control="no-store",
    )
    if request_id:
        headers["X-Request-Id"] = request_id
    response = http.Response.make(outcome.status, outcome.error_body(), headers)
    if method.upper() == "HEAD":
        response.data.content = b""
    return response
