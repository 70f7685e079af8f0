"""The real `sigwarden run` in front of a real upstream: what the client gets, what the upstream received."""

from __future__ import annotations

import json

import pytest

from harness import OLD_SECRET, raw_exchange, sign, signed_headers

pytestmark = pytest.mark.e2e

BODY = json.dumps({"action": "parcel_status_changed", "timestamp": 1764320000000, "parcel": {"id": 1}}).encode()


def test_valid_signature_is_forwarded_with_verdict_headers(shared):
    sigwarden, upstream = shared
    status, headers, _ = sigwarden.request("POST", "/webhooks/sendcloud", BODY, signed_headers(BODY))
    assert status == 200
    [received] = upstream.received
    assert received.body == BODY
    assert received.header("X-Webhook-Verified") == "true"
    assert received.header("X-Webhook-Key-Id") == "sendcloud"
    assert received.header("Sendcloud-Signature") == sign(BODY)
    assert received.header("X-Request-Id")


def test_old_secret_of_the_route_also_verifies(shared):
    sigwarden, upstream = shared
    status, _, _ = sigwarden.request("POST", "/webhooks/sendcloud", BODY, signed_headers(BODY, OLD_SECRET))
    assert status == 200
    assert upstream.received[0].header("X-Webhook-Key-Id") == "sendcloud-old"


def test_wrong_signature_is_refused_and_never_reaches_upstream(shared):
    sigwarden, upstream = shared
    status, headers, body = sigwarden.request(
        "POST", "/webhooks/sendcloud", BODY, signed_headers(BODY, "not-the-secret-at-all")
    )
    assert status == 401
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["error"] == "invalid_signature"
    assert upstream.received == []


def test_declared_oversized_body_gets_413_before_the_body_is_sent(shared):
    sigwarden, upstream = shared
    head = b"POST /webhooks/sendcloud HTTP/1.1\r\nHost: shop\r\nContent-Length: 52428800\r\n\r\n"
    answer = raw_exchange(sigwarden.port, head)
    assert answer.startswith(b"HTTP/1.1 413")
    assert b'"body_too_large"' in answer
    assert upstream.received == []
