"""SIGTERM in the real process: readiness off at once, drain, let requests in flight finish, exit 0."""

from __future__ import annotations

import signal
import socket
import threading
import time

import pytest

from harness import signed_headers, wait_until
from ops_support import readiness

pytestmark = pytest.mark.e2e

BODY = b'{"action": "parcel_status_changed", "timestamp": 1764320000000}'


def _in_background(call) -> dict:
    result: dict = {}

    def run() -> None:
        try:
            result["value"] = call()
        except Exception as error:  # reported by the test
            result["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    result["thread"] = thread
    return result


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def test_sigterm_drains_and_lets_requests_in_flight_finish(start_sigwarden, upstream):
    upstream.delay = 2.0
    process = start_sigwarden(drain_delay="1s", shutdown_grace="10s")
    slow = _in_background(lambda: process.request("POST", "/webhooks/sendcloud", BODY, signed_headers(BODY)))
    wait_until(lambda: upstream.received, deadline=5)
    signalled = time.monotonic()
    process.process.send_signal(signal.SIGTERM)
    wait_until(lambda: readiness(process.admin_port)[0] == 503, deadline=0.5, interval=0.01)
    assert readiness(process.admin_port)[1]["status"] == "draining"
    during_drain = _in_background(lambda: process.request("GET", "/still-taken"))  # inside drain_delay
    wait_until(lambda: not _accepts(process.port), deadline=5)
    assert time.monotonic() - signalled >= 1.0  # the listener stayed open for drain_delay
    for background in (slow, during_drain):
        background["thread"].join(10)
        assert "error" not in background, background.get("error")
    assert slow["value"][0] == 200
    assert during_drain["value"][0] == 200
    assert process.process.wait(10) == 0
    events = [line.get("event") for line in process.log_lines()]
    assert events.index("draining") < events.index("stopped")


def test_shutdown_grace_bounds_the_wait(start_sigwarden, upstream):
    upstream.delay = 30.0
    process = start_sigwarden(shutdown_grace="1s")
    _in_background(lambda: process.request("GET", "/slow", timeout=30))
    wait_until(lambda: upstream.received, deadline=5)
    signalled = time.monotonic()
    process.process.send_signal(signal.SIGTERM)
    assert process.process.wait(10) == 0
    assert time.monotonic() - signalled < 5
    assert any(line.get("event") == "shutdown_grace_exceeded" for line in process.log_lines())


def test_idle_process_stops_at_once(sigwarden):
    signalled = time.monotonic()
    sigwarden.process.send_signal(signal.SIGTERM)
    assert sigwarden.process.wait(10) == 0
    assert time.monotonic() - signalled < 2
