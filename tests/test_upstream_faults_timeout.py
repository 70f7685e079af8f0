"""An upstream that takes the request and never answers: 504 upstream_timeout, and its connection closed."""

from __future__ import annotations

import json
import time

import pytest

from harness import sign
from limits_support import SilentServer, refused, start_module_sigwarden

pytestmark = pytest.mark.e2e

UPSTREAM_TIMEOUT = 2.0
MARGIN = 2.5

BODY = json.dumps({"action": "parcel_status_changed", "timestamp": 1764320000000}).encode()


def test_upstream_that_accepts_but_never_answers_gets_504_and_its_connection_closed(tmp_path):
    silent = SilentServer().start()
    sigwarden = start_module_sigwarden(tmp_path, silent.url, limits={"upstream_timeout": f"{UPSTREAM_TIMEOUT}s"})
    try:
        started = time.monotonic()
        answer = sigwarden.request(
            "POST", "/webhooks/sendcloud", BODY, {"Sendcloud-Signature": sign(BODY)}, timeout=UPSTREAM_TIMEOUT + 10
        )
        elapsed = time.monotonic() - started
        assert refused(answer) == (504, "upstream_timeout")
        assert UPSTREAM_TIMEOUT - 0.2 <= elapsed <= UPSTREAM_TIMEOUT + MARGIN
        assert BODY in bytes(silent.received)  # it had the whole request
        assert silent.closed_by_peer.wait(5)  # and sigwarden hung up on it
        lines = [line for line in sigwarden.log_lines() if line.get("event") == "request"]
        assert any(line["route"] == "sendcloud" and line["outcome"] == "upstream_timeout" for line in lines)
    finally:
        sigwarden.stop()
        silent.stop()
