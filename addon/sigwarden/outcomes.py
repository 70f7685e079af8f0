"""The one enumeration of outcomes, shared by responses, headers, logs and metrics."""

from __future__ import annotations

import enum
import json


class Outcome(enum.Enum):
    """What sigwarden decided for a request; the value is the code used everywhere."""

    VERIFIED = "verified"
    PASSED = "passed"
    DUPLICATE = "duplicate"
    BODY_TOO_LARGE = "body_too_large"
    SECRET_UNAVAILABLE = "secret_unavailable"  # noqa: S105 - an outcome code, not a secret
    MISSING_SIGNATURE = "missing_signature"
    MALFORMED_SIGNATURE = "malformed_signature"
    INVALID_SIGNATURE = "invalid_signature"
    MISSING_TIMESTAMP = "missing_timestamp"
    STALE_TIMESTAMP = "stale_timestamp"
    BAD_REQUEST = "bad_request"
    REQUEST_TIMEOUT = "request_timeout"
    HEADERS_TOO_LARGE = "headers_too_large"
    NO_ROUTE = "no_route"
    UPSTREAM_UNAVAILABLE = "upstream_unavailable"
    UPSTREAM_TIMEOUT = "upstream_timeout"
    INTERNAL_ERROR = "internal_error"
    TOO_MANY_CONNECTIONS = "too_many_connections"  # limits.max_connections: closed without an answer

    @property
    def code(self) -> str:
        return self.value

    @property
    def status(self) -> int:
        return _STATUS[self]

    @property
    def message(self) -> str:
        return _MESSAGE[self]

    @property
    def is_refusal(self) -> bool:
        """True for outcomes that sigwarden answers itself instead of forwarding."""
        return self not in (Outcome.VERIFIED, Outcome.PASSED)

    @property
    def is_signature_failure(self) -> bool:
        """Refusals that report mode forwards instead (verification verdicts, not HTTP errors)."""
        return self in _REPORTABLE

    def error_body(self) -> bytes:
        """The JSON body of sigwarden's own answer for this outcome."""
        if self is Outcome.DUPLICATE:
            return b'{"status": "duplicate"}'
        return json.dumps({"error": self.code, "message": self.message}).encode()


_STATUS: dict[Outcome, int] = {
    Outcome.VERIFIED: 200,
    Outcome.PASSED: 200,
    Outcome.DUPLICATE: 200,
    Outcome.BODY_TOO_LARGE: 413,
    Outcome.SECRET_UNAVAILABLE: 503,
    Outcome.MISSING_SIGNATURE: 401,
    Outcome.MALFORMED_SIGNATURE: 401,
    Outcome.INVALID_SIGNATURE: 401,
    Outcome.MISSING_TIMESTAMP: 400,
    Outcome.STALE_TIMESTAMP: 400,
    Outcome.BAD_REQUEST: 400,
    Outcome.REQUEST_TIMEOUT: 408,
    Outcome.HEADERS_TOO_LARGE: 431,
    Outcome.NO_ROUTE: 404,
    Outcome.UPSTREAM_UNAVAILABLE: 502,
    Outcome.UPSTREAM_TIMEOUT: 504,
    Outcome.INTERNAL_ERROR: 500,
    Outcome.TOO_MANY_CONNECTIONS: 503,
}

_MESSAGE: dict[Outcome, str] = {
    Outcome.VERIFIED: "The signature is valid.",
    Outcome.PASSED: "The request matched no protected route.",
    Outcome.DUPLICATE: "This delivery was already accepted.",
    Outcome.BODY_TOO_LARGE: "The request body exceeds the limit of this endpoint.",
    Outcome.SECRET_UNAVAILABLE: "The endpoint cannot verify requests right now.",
    Outcome.MISSING_SIGNATURE: "The request carries no signature or credential.",
    Outcome.MALFORMED_SIGNATURE: "The signature or credential header is malformed.",
    Outcome.INVALID_SIGNATURE: "The signature or credential does not match.",
    Outcome.MISSING_TIMESTAMP: "The request has no numeric timestamp.",
    Outcome.STALE_TIMESTAMP: "The request timestamp is outside the accepted window.",
    Outcome.BAD_REQUEST: "The request is malformed.",
    Outcome.REQUEST_TIMEOUT: "The request was not received in time.",
    Outcome.HEADERS_TOO_LARGE: "The request headers are too large.",
    Outcome.NO_ROUTE: "No endpoint is configured for this path.",
    Outcome.UPSTREAM_UNAVAILABLE: "The application cannot be reached.",
    Outcome.UPSTREAM_TIMEOUT: "The application did not answer in time.",
    Outcome.INTERNAL_ERROR: "sigwarden could not decide on this request; nothing was forwarded.",
    Outcome.TOO_MANY_CONNECTIONS: "Too many connections; retry later.",
}

_REPORTABLE = frozenset(
    {
        Outcome.SECRET_UNAVAILABLE,
        Outcome.MISSING_SIGNATURE,
        Outcome.MALFORMED_SIGNATURE,
        Outcome.INVALID_SIGNATURE,
        Outcome.MISSING_TIMESTAMP,
        Outcome.STALE_TIMESTAMP,
        Outcome.DUPLICATE,
    }
)
