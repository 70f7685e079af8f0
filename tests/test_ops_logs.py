"""What the real process logs: one line per protected request with SPEC §5's fields, nothing secret."""

from __future__ import annotations

import json

import pytest

from harness import signed_headers, wait_until
from ops_support import request_lines

pytestmark = pytest.mark.e2e

BODY = b'{"action": "return_created", "timestamp": 1764320000000, "data": {"id": 90210}}'
FIELDS = {
    "ts", "level", "event", "route", "outcome", "key_id", "method", "path", "client", "status",
    "upstream_status", "duration_ms", "body_bytes", "request_id",
}  # fmt: skip


def test_one_json_line_per_protected_request_with_every_field(sigwarden, upstream):
    sigwarden.request("POST", "/webhooks/sendcloud?token=abc", BODY, {**signed_headers(BODY), "X-Request-Id": "r-1"})
    sigwarden.request("POST", "/webhooks/sendcloud", BODY, {"Sendcloud-Signature": "f" * 64})
    verified, refused = request_lines(sigwarden, 2)
    assert set(verified) == FIELDS
    assert verified | {"ts": None, "duration_ms": None} == {
        "ts": None, "level": "info", "event": "request", "route": "sendcloud", "outcome": "verified",
        "key_id": "sendcloud", "method": "POST", "path": "/webhooks/sendcloud", "client": "127.0.0.1",
        "status": 200, "upstream_status": 200, "duration_ms": None, "body_bytes": len(BODY), "request_id": "r-1",
    }  # fmt: skip
    assert (refused["outcome"], refused["status"], refused["upstream_status"]) == ("invalid_signature", 401, None)
    assert refused["request_id"] and refused["request_id"] != "r-1"
    assert upstream.received[0].header("X-Request-Id") == "r-1"


def test_refusal_carries_the_request_id_of_its_log_line(sigwarden):
    _, headers, _ = sigwarden.request("POST", "/webhooks/sendcloud", BODY)
    [line] = request_lines(sigwarden, 1)
    assert headers["x-request-id"] == line["request_id"]


def test_generated_request_id_is_passed_upstream(sigwarden, upstream):
    sigwarden.request("POST", "/webhooks/sendcloud", BODY, signed_headers(BODY))
    [line] = request_lines(sigwarden, 1)
    assert upstream.received[0].header("X-Request-Id") == line["request_id"]


def test_unmatched_requests_are_not_logged_at_info(sigwarden, upstream):
    sigwarden.request("GET", "/shop/catalogue")
    sigwarden.request("POST", "/webhooks/sendcloud", BODY)
    [line] = request_lines(sigwarden, 1)
    assert line["route"] == "sendcloud"
    assert "/shop/catalogue" not in sigwarden.logs()


def test_unmatched_requests_are_logged_at_debug(start_sigwarden):
    process = start_sigwarden(log_level="debug")
    process.request("GET", "/shop/catalogue")
    [line] = request_lines(process, 1)
    assert (line["level"], line["route"], line["outcome"], line["status"]) == ("debug", "unmatched", "passed", 200)


def test_client_comes_from_x_forwarded_for_only_behind_trusted_proxies(start_sigwarden):
    trusting = start_sigwarden(trusted_proxies=["127.0.0.0/8"])
    distrusting = start_sigwarden()
    for process in (trusting, distrusting):
        process.request("POST", "/webhooks/sendcloud", BODY, {"X-Forwarded-For": "203.0.113.9, 127.0.0.5"})
    assert request_lines(trusting, 1)[0]["client"] == "203.0.113.9"
    assert request_lines(distrusting, 1)[0]["client"] == "127.0.0.1"


def test_text_log_format_is_one_readable_line(start_sigwarden):
    process = start_sigwarden(log_format="text")
    process.request("POST", "/webhooks/sendcloud", BODY)
    line = wait_until(lambda: [text for text in process.logs().splitlines() if " request " in text])[0]
    assert "outcome=missing_signature" in line and "status=401" in line
    with pytest.raises(ValueError):
        json.loads(line)


def test_signatures_and_bodies_never_reach_the_log(sigwarden):
    headers = {**signed_headers(BODY), "Authorization": "Bearer top-secret-bearer"}
    sigwarden.request("POST", "/webhooks/sendcloud", BODY, headers)
    sigwarden.request("POST", "/webhooks/sendcloud", BODY, {"Sendcloud-Signature": "e" * 64})
    request_lines(sigwarden, 2)
    text = sigwarden.logs()
    for leak in (headers["Sendcloud-Signature"], "e" * 64, "top-secret-bearer", "90210", "e2e-secret"):
        assert leak not in text


def test_a_clean_start_logs_no_warning_or_error(sigwarden):
    sigwarden.request("GET", "/")
    problems = [line for line in sigwarden.log_lines() if line.get("level") in ("warning", "error")]
    assert problems == []
