"""The pure replay checks (SPEC §6): the body's timestamp against max_age, and the delivery key."""

from __future__ import annotations

import hashlib
import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sigwarden.outcomes import Outcome
from sigwarden.replay import FUTURE_TOLERANCE, SECONDS_BELOW, body_timestamp, delivery_key, remember_for
from sigwarden.replay import timestamp_outcome as outcome_of_timestamp

NOW = 1_764_320_000.0  # 2025-11-28, in epoch seconds
HOUR = 3600.0


def body(timestamp: object) -> bytes:
    return json.dumps({"action": "parcel_status_changed", "timestamp": timestamp}).encode()


def timestamp_outcome(raw: bytes, max_age: float, now: float) -> Outcome | None:
    return outcome_of_timestamp(body_timestamp(raw), max_age, now)


def test_milliseconds_are_read_as_milliseconds():
    assert body_timestamp(body(1_764_320_000_123)) == pytest.approx(1_764_320_000.123)


def test_seconds_are_accepted_below_ten_to_the_eleventh():
    assert body_timestamp(body(1_764_320_000)) == 1_764_320_000.0
    assert body_timestamp(body(SECONDS_BELOW - 1)) == float(SECONDS_BELOW - 1)
    assert body_timestamp(body(SECONDS_BELOW)) == SECONDS_BELOW / 1000  # from 10^11 on: milliseconds


def test_fractional_timestamps_are_numbers():
    assert body_timestamp(body(1_764_320_000.5)) == 1_764_320_000.5


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"\xff\xfe\x00garbage",
        b"[1764320000000]",
        b'"1764320000000"',
        b"1764320000000",
        b"null",
        json.dumps({"action": "x"}).encode(),
        body("1764320000000"),
        body(True),
        body(False),
        body(None),
        body([1764320000000]),
        body({"ms": 1764320000000}),
        b'{"timestamp": NaN}',
        b'{"timestamp": Infinity}',
        b'{"timestamp": -Infinity}',
        b'{"timestamp": 1' + b"0" * 5000 + b"}",  # more digits than Python reads as an int
        b"[" * 100_000 + b"]" * 100_000,  # nesting deeper than the recursion limit
    ],
    ids=lambda raw: raw[:30].decode(errors="replace"),
)
def test_no_numeric_timestamp_is_missing_timestamp(raw):
    assert body_timestamp(raw) is None
    assert timestamp_outcome(raw, HOUR, NOW) is Outcome.MISSING_TIMESTAMP


def test_nested_timestamp_does_not_count():
    assert body_timestamp(json.dumps({"parcel": {"timestamp": 1764320000000}}).encode()) is None


def test_numbers_beyond_floats_are_far_away_not_missing():
    assert body_timestamp(b'{"timestamp": 1e400}') == math.inf
    assert body_timestamp(b'{"timestamp": -1' + b"0" * 400 + b"}") == -math.inf
    assert timestamp_outcome(b'{"timestamp": 1e400}', HOUR, NOW) is Outcome.STALE_TIMESTAMP
    assert timestamp_outcome(b'{"timestamp": -1e400}', HOUR, NOW) is Outcome.STALE_TIMESTAMP


def test_age_boundary_is_inclusive():
    assert timestamp_outcome(body(NOW - HOUR), HOUR, NOW) is None
    assert timestamp_outcome(body((NOW - HOUR) * 1000), HOUR, NOW) is None
    assert timestamp_outcome(body((NOW - HOUR) * 1000 - 1), HOUR, NOW) is Outcome.STALE_TIMESTAMP
    assert timestamp_outcome(body(NOW - HOUR - 1), HOUR, NOW) is Outcome.STALE_TIMESTAMP


def test_future_boundary_is_five_minutes():
    assert FUTURE_TOLERANCE == 300
    assert timestamp_outcome(body((NOW + 300) * 1000), HOUR, NOW) is None
    assert timestamp_outcome(body((NOW + 300) * 1000 + 1), HOUR, NOW) is Outcome.STALE_TIMESTAMP
    assert timestamp_outcome(body(NOW + 301), HOUR, NOW) is Outcome.STALE_TIMESTAMP


def test_negative_and_zero_timestamps_are_stale():
    assert timestamp_outcome(body(0), HOUR, NOW) is Outcome.STALE_TIMESTAMP
    assert timestamp_outcome(body(-1), HOUR, NOW) is Outcome.STALE_TIMESTAMP


def test_sendcloud_retry_span_fits_a_day():
    """A delivery retried for 8 hours still passes max_age 24h (the README's advice)."""
    first_attempt = NOW
    assert timestamp_outcome(body(first_attempt * 1000), 24 * HOUR, first_attempt + 8 * HOUR) is None
    assert timestamp_outcome(body(first_attempt * 1000), 6 * HOUR, first_attempt + 8 * HOUR) is Outcome.STALE_TIMESTAMP


@given(offset=st.floats(min_value=-48 * HOUR, max_value=48 * HOUR), max_age=st.floats(min_value=0, max_value=24 * HOUR))
def test_outcome_follows_the_definition(offset, max_age):
    timestamp_ms = round((NOW + offset) * 1000)
    seconds = timestamp_ms / 1000
    expected = None if -max_age <= seconds - NOW <= FUTURE_TOLERANCE else Outcome.STALE_TIMESTAMP
    assert timestamp_outcome(body(timestamp_ms), max_age, NOW) is expected


def test_delivery_key_is_sha256_of_route_and_body():
    assert delivery_key("sendcloud", b"{}") == hashlib.sha256(b"sendcloud\0{}").digest()


@given(st.binary(max_size=64), st.binary(max_size=64))
def test_delivery_key_tells_bodies_apart(one, two):
    assert (delivery_key("sendcloud", one) == delivery_key("sendcloud", two)) == (one == two)


def test_delivery_key_tells_routes_apart():
    assert delivery_key("a", b"{}") != delivery_key("b", b"{}")
    # The separator keeps a route name from running into the body.
    assert delivery_key("ab", b"c") != delivery_key("a", b"bc")


def test_remember_for_is_the_window_without_max_age():
    assert remember_for(12 * HOUR, None, None, NOW) == 12 * HOUR


def test_remember_for_outlives_the_timestamp_acceptance():
    # A timestamp 5 minutes ahead stays acceptable until NOW + 300 + max_age: remembered past it.
    ahead = NOW + FUTURE_TOLERANCE
    window = remember_for(24 * HOUR, 24 * HOUR, ahead, NOW)
    assert window > 24 * HOUR + FUTURE_TOLERANCE
    assert timestamp_outcome(body(ahead), 24 * HOUR, NOW + window) is Outcome.STALE_TIMESTAMP
    # A longer window is kept as it is.
    assert remember_for(48 * HOUR, 24 * HOUR, NOW - HOUR, NOW) == 48 * HOUR


@given(
    age=st.floats(min_value=-FUTURE_TOLERANCE, max_value=24 * HOUR),
    max_age=st.floats(min_value=60, max_value=24 * HOUR),
    later=st.floats(min_value=0, max_value=72 * HOUR),
)
def test_no_moment_when_a_replay_is_neither_stale_nor_remembered(age, max_age, later):
    """SPEC §6: with dedupe_window >= max_age a captured delivery cannot be replayed at any time."""
    timestamp = NOW - age
    if outcome_of_timestamp(timestamp, max_age, NOW) is not None:
        return  # refused at first: never remembered, never accepted
    window = remember_for(max_age, max_age, timestamp, NOW)  # the shortest valid window
    replay_at = NOW + later
    remembered = later < window
    assert remembered or outcome_of_timestamp(timestamp, max_age, replay_at) is Outcome.STALE_TIMESTAMP
