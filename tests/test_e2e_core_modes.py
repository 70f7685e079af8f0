"""The real `sigwarden run` with other configs: report mode, unmatched reject, unusable secrets, no upstream.

One process per config, shared by the tests of that config.
"""

from __future__ import annotations

import copy
import http.client
import json

import pytest

from core_support import closed_port, counted_connections, exchange, request_bytes
from harness import OLD_SECRET, Sigwarden, Upstream, base_config, sign, signed_headers

pytestmark = pytest.mark.e2e

BODY = json.dumps({"action": "integration_updated", "timestamp": 1764320000000, "integration": {"id": 7}}).encode()


def start(tmp_path_factory, name: str, config: dict, env: dict | None = None) -> Sigwarden:
    return Sigwarden(tmp_path_factory.mktemp(name), config, env).start()


@pytest.fixture
def fresh(module_upstream: Upstream) -> Upstream:
    module_upstream.received.clear()
    return module_upstream


def post(sigwarden, target="/webhooks/sendcloud", body=BODY, headers=None):
    return exchange(sigwarden.port, request_bytes("POST", target, body, headers if headers is not None else {}))


def verdict(received):
    return {
        name: received.header(name) for name in ("X-Webhook-Verified", "X-Webhook-Key-Id", "X-Webhook-Verify-Error")
    }


# --- report mode -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def report_mode(tmp_path_factory, module_upstream):
    config = base_config(module_upstream.url, mode="report")
    config["routes"][1]["mode"] = "enforce"  # the query-routed route overrides the global mode
    process = start(tmp_path_factory, "report", config)
    yield process
    process.stop()


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing_signature"),
        ({"Sendcloud-Signature": "not-hex"}, "malformed_signature"),
        ([("Sendcloud-Signature", "0" * 64), ("Sendcloud-Signature", "0" * 64)], "malformed_signature"),
        ({"Sendcloud-Signature": "0" * 64}, "invalid_signature"),
    ],
)
def test_report_mode_forwards_failures_marked_false_with_the_reason(report_mode, fresh, headers, code):
    pairs = [*(headers.items() if isinstance(headers, dict) else headers), ("X-Webhook-Key-Id", "forged")]
    answer = post(report_mode, headers=pairs)
    assert answer.status == 200
    [received] = fresh.received
    assert received.body == BODY
    assert verdict(received) == {
        "X-Webhook-Verified": "false",
        "X-Webhook-Key-Id": None,
        "X-Webhook-Verify-Error": code,
    }


def test_report_mode_marks_verified_requests_true(report_mode, fresh):
    assert post(report_mode, headers=signed_headers(BODY, OLD_SECRET)).status == 200
    assert verdict(fresh.received[0]) == {
        "X-Webhook-Verified": "true",
        "X-Webhook-Key-Id": "sendcloud-old",
        "X-Webhook-Verify-Error": None,
    }


def test_report_mode_still_refuses_oversized_bodies(report_mode, fresh):
    answer = exchange(
        report_mode.port,
        request_bytes("POST", "/webhooks/sendcloud", headers={"Content-Length": str(10 * 1024 * 1024)}),
    )
    assert answer.status == 413
    assert answer.json()["error"] == "body_too_large"
    assert fresh.received == []


def test_report_mode_still_refuses_malformed_http(report_mode, fresh):
    answer = exchange(
        report_mode.port, b"POST /webhooks/sendcloud HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"
    )
    assert answer.status == 400
    assert answer.json()["error"] == "bad_request"
    assert fresh.received == []


def test_a_route_in_enforce_mode_refuses_under_a_global_report_mode(report_mode, fresh):
    answer = post(report_mode, "/index.php?route=sendcloud/webhook", headers={"Sendcloud-Signature": "0" * 64})
    assert answer.status == 401
    assert answer.json()["error"] == "invalid_signature"
    assert fresh.received == []
    assert post(report_mode, "/index.php?route=sendcloud/webhook", headers=signed_headers(BODY)).status == 200


# --- unmatched: reject -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rejecting(tmp_path_factory, module_upstream):
    process = start(tmp_path_factory, "reject", base_config(module_upstream.url, unmatched="reject"))
    yield process
    process.stop()


@pytest.mark.parametrize("method,target", [("GET", "/"), ("GET", "/shop/cart?x=1"), ("POST", "/webhooks/sendcloudx")])
def test_unmatched_reject_answers_404_no_route(rejecting, fresh, method, target):
    with counted_connections(fresh) as accepted:
        answer = exchange(rejecting.port, request_bytes(method, target, b"data" if method == "POST" else b""))
    assert answer.status == 404
    assert answer.header("content-type") == "application/json"
    assert answer.json() == {"error": "no_route", "message": "No endpoint is configured for this path."}
    assert fresh.received == []
    assert accepted == []


def test_unmatched_reject_answers_before_a_large_body_is_sent(rejecting, fresh):
    answer = exchange(
        rejecting.port, request_bytes("PUT", "/upload", headers={"Content-Length": str(100 * 1024 * 1024)})
    )
    assert answer.status == 404
    assert answer.json()["error"] == "no_route"


def test_unmatched_reject_still_verifies_protected_routes(rejecting, fresh):
    assert post(rejecting, headers=signed_headers(BODY)).status == 200
    assert verdict(fresh.received[0])["X-Webhook-Verified"] == "true"
    assert post(rejecting, headers={}).json()["error"] == "missing_signature"


# --- unusable secrets ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def degraded(tmp_path_factory, module_upstream):
    folder = tmp_path_factory.mktemp("secrets")
    empty = folder / "empty-key"
    empty.write_text("  \n")
    config = base_config(module_upstream.url)
    config["secrets"] = {
        "sendcloud": {"env": "E2E_SECRET", "expires": "2020-01-01T00:00:00Z"},  # expired
        "sendcloud-old": {"env": "E2E_OLD_SECRET"},
        "gone": {"file": str(folder / "absent-key")},
        "empty": {"file": str(empty)},
        "unset": {"env": "SIGWARDEN_E2E_UNSET_VARIABLE"},
    }
    config["routes"] = [
        *copy.deepcopy(config["routes"]),
        {"name": "unreadable", "path": "/webhooks/unreadable", "secrets": ["gone", "empty", "unset"]},
        {"name": "expired", "path": "/webhooks/expired", "secrets": ["sendcloud"]},
    ]
    process = start(tmp_path_factory, "degraded", config)
    yield process
    process.stop()


def test_an_expired_secret_is_refused_while_the_routes_other_secret_works(degraded, fresh):
    answer = post(degraded, headers=signed_headers(BODY))
    assert answer.status == 401
    assert answer.json()["error"] == "invalid_signature"
    assert fresh.received == []
    assert post(degraded, headers=signed_headers(BODY, OLD_SECRET)).status == 200
    assert fresh.received[0].header("X-Webhook-Key-Id") == "sendcloud-old"


def test_a_route_whose_only_secret_expired_fails_closed_with_503(degraded, fresh):
    answer = post(degraded, "/webhooks/expired", headers=signed_headers(BODY))
    assert answer.status == 503
    assert answer.json() == {"error": "secret_unavailable", "message": "The endpoint cannot verify requests right now."}
    assert fresh.received == []


def test_a_route_without_a_readable_secret_fails_closed_with_503(degraded, fresh):
    for headers in ({}, {"Sendcloud-Signature": "0" * 64}, signed_headers(BODY)):
        answer = post(degraded, "/webhooks/unreadable", headers=headers)
        assert answer.status == 503
        assert answer.json()["error"] == "secret_unavailable"
    assert fresh.received == []


def test_other_routes_and_paths_keep_working_beside_a_degraded_route(degraded, fresh):
    assert post(degraded, "/index.php?route=sendcloud/webhook", headers=signed_headers(BODY)).status == 503  # expired
    assert exchange(degraded.port, request_bytes("GET", "/shop")).status == 200
    assert [received.path for received in fresh.received] == ["/shop"]


def test_the_start_logs_each_unreadable_secret_without_stopping(degraded):
    problems = {
        line["secret"]: line["reason"] for line in degraded.log_lines() if line.get("event") == "secret_unavailable"
    }
    assert set(problems) == {"gone", "empty", "unset", "sendcloud"}
    assert problems["unset"] == "environment variable SIGWARDEN_E2E_UNSET_VARIABLE is not set"
    assert problems["sendcloud"] == "expired"
    assert degraded.process.poll() is None


def test_the_body_limit_comes_before_secret_unavailable(degraded, fresh):
    answer = exchange(
        degraded.port, request_bytes("POST", "/webhooks/unreadable", headers={"Content-Length": str(5 * 1024 * 1024)})
    )
    assert answer.status == 413


# --- an unreachable upstream ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def no_upstream(tmp_path_factory):
    process = start(tmp_path_factory, "no-upstream", base_config(f"http://127.0.0.1:{closed_port()}"))
    yield process
    process.stop()


@pytest.mark.parametrize(
    ("method", "target", "headers"),
    [
        ("POST", "/webhooks/sendcloud", signed_headers(BODY)),
        ("GET", "/shop", {}),
        ("POST", "/upload", {}),
    ],
)
def test_an_unreachable_upstream_is_a_json_502_revealing_nothing(no_upstream, method, target, headers):
    upstream_port = no_upstream.config["upstream"].rsplit(":", 1)[1]
    answer = exchange(no_upstream.port, request_bytes(method, target, BODY, headers))
    assert answer.status == 502
    assert answer.header("content-type") == "application/json"
    assert answer.json() == {"error": "upstream_unavailable", "message": "The application cannot be reached."}
    raw = answer.raw.lower()
    assert b"<html" not in raw and b"mitmproxy" not in raw
    assert answer.header("Server") is None and answer.header("Via") is None
    assert upstream_port.encode() not in answer.raw and b"127.0.0.1" not in answer.raw


def test_a_forged_request_is_refused_without_trying_the_upstream(no_upstream):
    answer = exchange(
        no_upstream.port, request_bytes("POST", "/webhooks/sendcloud", BODY, {"Sendcloud-Signature": sign(b"x")})
    )
    assert answer.status == 401
    assert answer.json()["error"] == "invalid_signature"


def test_a_head_request_refused_with_no_route_gets_no_body(rejecting, fresh):
    connection = http.client.HTTPConnection("127.0.0.1", rejecting.port, timeout=10)
    try:
        connection.request("HEAD", "/shop")
        refused = connection.getresponse()
        assert (refused.status, refused.read()) == (404, b"")
        connection.request("GET", "/shop")
        again = connection.getresponse()
        assert again.status == 404
        assert json.loads(again.read())["error"] == "no_route"
    finally:
        connection.close()
