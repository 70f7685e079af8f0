"""Upstreams that cannot be reached: 502 upstream_unavailable in sigwarden's JSON form, promptly or in time."""

from __future__ import annotations

import json
import time

import pytest

from harness import free_port, sign
from limits_support import refused, start_module_sigwarden, unanswered_port

pytestmark = pytest.mark.e2e

CONNECT_TIMEOUT = 1.5
MARGIN = 2.5

BODY = json.dumps({"action": "parcel_status_changed", "timestamp": 1764320000000}).encode()


def test_refused_port_is_answered_502_at_once(tmp_path):
    port = free_port()  # nothing listens: the connect is refused
    sigwarden = start_module_sigwarden(tmp_path, f"http://127.0.0.1:{port}")
    try:
        for path, body, headers in (
            ("/shop", None, {}),
            ("/webhooks/sendcloud", BODY, {"Sendcloud-Signature": sign(BODY)}),
        ):
            started = time.monotonic()
            answer = sigwarden.request("POST" if body else "GET", path, body, headers)
            assert refused(answer) == (502, "upstream_unavailable")
            assert time.monotonic() - started < 1.0
        lines = [line for line in sigwarden.log_lines() if line.get("event") == "request"]
        assert any(line["route"] == "sendcloud" and line["outcome"] == "upstream_unavailable" for line in lines)
    finally:
        sigwarden.stop()


def test_upstream_that_never_answers_the_syn_gets_502_after_the_connect_timeout(tmp_path):
    with unanswered_port() as port:
        sigwarden = start_module_sigwarden(
            tmp_path, f"http://127.0.0.1:{port}", limits={"upstream_connect_timeout": f"{CONNECT_TIMEOUT}s"}
        )
        try:
            started = time.monotonic()
            answer = sigwarden.request("GET", "/shop", timeout=CONNECT_TIMEOUT + MARGIN + 5)
            elapsed = time.monotonic() - started
            assert refused(answer) == (502, "upstream_unavailable")
            assert CONNECT_TIMEOUT - 0.2 <= elapsed <= CONNECT_TIMEOUT + MARGIN
        finally:
            sigwarden.stop()
