"""Replay protection as pure functions (SPEC §6): the body's timestamp and the delivery's identity.

Sendcloud signs only the body; its `timestamp` field is when the event happened
(milliseconds since the epoch, seconds accepted below 10^11), and a retry carries
the same body. These functions see plain bytes and numbers, never a flow.
"""

from __future__ import annotations

import hashlib
import json
import math

from .outcomes import Outcome

SECONDS_BELOW = 10**11  # 10^11 s is the year 5138; 10^11 ms is 1973
FUTURE_TOLERANCE = 300.0  # clocks drift: up to 5 minutes ahead is accepted


def body_timestamp(body: bytes) -> float | None:
    """The body's `timestamp` in seconds since the epoch, or None without a numeric one."""
    try:
        # NaN and Infinity are no JSON numbers (json.loads would take them): read them as no value.
        document = json.loads(body, parse_constant=lambda name: None)
    except (ValueError, RecursionError):  # not JSON, not UTF-8/16/32, absurd nesting or digits
        return None
    if not isinstance(document, dict):
        return None
    value = document.get("timestamp")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, int) and abs(value) > 10**300:
        return math.inf if value > 0 else -math.inf  # beyond floats: far in the future or the past
    seconds = float(value)
    return seconds if seconds < SECONDS_BELOW else seconds / 1000


def timestamp_outcome(timestamp: float | None, max_age: float, now: float) -> Outcome | None:
    """The refusal for a verified body's timestamp (from `body_timestamp`) on a route with `max_age`, or None."""
    if timestamp is None:
        return Outcome.MISSING_TIMESTAMP
    if now - timestamp > max_age or timestamp - now > FUTURE_TOLERANCE:
        return Outcome.STALE_TIMESTAMP
    return None


def remember_for(window: float, max_age: float | None, timestamp: float | None, now: float) -> float:
    """How long to remember an accepted delivery: its route's window, and with `max_age` at least until its
    timestamp is refused as stale, so a timestamp up to 5 minutes ahead leaves no gap for a replay."""
    if max_age is None or timestamp is None:
        return window
    return max(window, timestamp + max_age - now + 1.0)  # +1 s: the age check is inclusive


def delivery_key(route_name: str, body: bytes) -> bytes:
    """The delivery's identity: SHA-256 of the route name and the exact body (one route's body is new on another)."""
    # Route names are letters, digits, '-', '_' and '.': the NUL cannot occur in one.
    return hashlib.sha256(route_name.encode() + b"\0" + body).digest()
