"""The admin listener of the real process: health, readiness and metrics; it never proxies."""

from __future__ import annotations

import json

import pytest

from harness import signed_headers
from ops_support import admin_get, metric_value, readiness

pytestmark = pytest.mark.e2e

BODY = b'{"action": "parcel_status_changed", "timestamp": 1764320000000}'


def test_healthz_and_readyz_answer_once_started(sigwarden):
    status, content_type, body = admin_get(sigwarden.admin_port, "/healthz")
    assert (status, content_type, json.loads(body)) == (200, "application/json", {"status": "ok"})
    assert readiness(sigwarden.admin_port) == (200, {"status": "ready", "degraded_routes": []})


def test_metrics_count_each_outcome_by_route(sigwarden, upstream):
    sigwarden.request("POST", "/webhooks/sendcloud", BODY, signed_headers(BODY))
    sigwarden.request("POST", "/webhooks/sendcloud", BODY, signed_headers(BODY, "a-forger-guessing-keys"))
    sigwarden.request("POST", "/webhooks/sendcloud", BODY)
    sigwarden.request("GET", "/shop/basket")
    port = sigwarden.admin_port
    assert metric_value(port, "sigwarden_requests_total", route="sendcloud", outcome="verified") == 1
    assert metric_value(port, "sigwarden_requests_total", route="sendcloud", outcome="invalid_signature") == 1
    assert metric_value(port, "sigwarden_requests_total", route="sendcloud", outcome="missing_signature") == 1
    assert metric_value(port, "sigwarden_requests_total", route="unmatched", outcome="passed") == 1
    assert metric_value(port, "sigwarden_upstream_responses_total", route="sendcloud", status_class="2xx") == 1
    assert metric_value(port, "sigwarden_upstream_duration_seconds_count", route="sendcloud") == 1
    assert metric_value(port, "sigwarden_verify_duration_seconds_count") == 3
    assert metric_value(port, "sigwarden_requests_in_flight") == 0
    assert metric_value(port, "sigwarden_route_ready", route="sendcloud") == 1
    assert metric_value(port, "sigwarden_config_reloads_total", result="failure") == 0
    assert metric_value(port, "sigwarden_dedupe_store_errors_total") == 0
    _, content_type, text = admin_get(port, "/metrics")
    assert content_type.startswith("text/plain")
    assert b'sigwarden_build_info{mitmproxy="' in text
    assert len(upstream.received) == 2  # the verified request and the unmatched one


def test_upstream_status_classes_are_counted(sigwarden, upstream):
    upstream.status = 503
    sigwarden.request("POST", "/webhooks/sendcloud", BODY, signed_headers(BODY))
    assert metric_value(sigwarden.admin_port, "sigwarden_upstream_responses_total", status_class="5xx") == 1


def test_admin_port_never_proxies(sigwarden, upstream):
    for path in ("/webhooks/sendcloud", "/", "/metrics/../webhooks/sendcloud"):
        status, _, body = admin_get(sigwarden.admin_port, path)
        assert status == 404, path
    status, _, _ = admin_get(sigwarden.admin_port, "/healthz?verbose=1")
    assert status == 200
    assert upstream.received == []


def test_admin_refuses_other_methods(sigwarden):
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", sigwarden.admin_port, timeout=5)
    connection.request("POST", "/readyz", body=b"x")
    assert connection.getresponse().status == 405
    connection.close()


def test_a_route_without_secret_is_degraded_but_the_pod_stays_ready(start_sigwarden, upstream):
    process = start_sigwarden(env={"E2E_SECRET": ""})  # empty: the route's first secret is unusable
    process_routes = readiness(process.admin_port)
    # query-routed uses only `sendcloud`; the sendcloud route still has sendcloud-old
    assert process_routes == (200, {"status": "ready", "degraded_routes": ["query-routed"]})
    assert metric_value(process.admin_port, "sigwarden_route_ready", route="query-routed") == 0
    assert metric_value(process.admin_port, "sigwarden_route_ready", route="sendcloud") == 1
    status, _, body = process.request("POST", "/index.php?route=sendcloud/webhook", BODY, signed_headers(BODY))
    assert (status, json.loads(body)["error"]) == (503, "secret_unavailable")
    assert upstream.received == []


def test_secret_expiry_is_exported(start_sigwarden):
    process = start_sigwarden(
        secrets={
            "sendcloud": {"env": "E2E_SECRET"},
            "sendcloud-old": {"env": "E2E_OLD_SECRET", "expires": "2027-01-31T00:00:00Z"},
        }
    )
    assert metric_value(process.admin_port, "sigwarden_secret_expiry_timestamp_seconds", secret="sendcloud-old") == (
        1801353600.0
    )
    assert metric_value(process.admin_port, "sigwarden_secret_expiry_timestamp_seconds", secret="sendcloud") is None


def test_admin_listen_null_turns_the_admin_port_off(start_sigwarden):
    process = start_sigwarden(admin_listen=None)
    status, _, _ = process.request("GET", "/")
    assert status == 200
    assert not any(line.get("event") == "admin_listening" for line in process.log_lines())
