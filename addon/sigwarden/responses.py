"""sigwarden's own answers: one JSON form for every outcome."""

from __future__ import annotations

from mitmproxy import http

from .outcomes import Outcome


def json_response(outcome: Outcome, request_id: str | None = None) -> http.Response:
    """The answer for a refusal (or a duplicate); reveals no secret, version or address."""
    headers = http.Headers(
        content_type="application/json",
        cache_control="no-store",
    )
    if request_id:
        headers["X-Request-Id"] = request_id
    return http.Response.make(outcome.status, outcome.error_body(), headers)
