"""The inline hooks (dispatch.run_inline, layers.GuardedHttpStream._handle_event) on the paths where they
differ from mitmproxy's hook tasks: answers written while the client connection is reading (the barrier),
`Expect: 100-continue`, the awaited dedupe claim, report mode, clients that leave, all on one connection.

One process for the module, in front of the credulous recording upstream; every exchange is checked with
the adversarial suite's invariant (nothing unverified reaches the upstream). At the end, nothing is left
in flight: a hook skipped (a flow that never ends) would show there.
"""

from __future__ import annotations

import signal
import socket
import time

import pytest
import yaml

from adversarial_support import (
    WEBHOOK_BODY,
    assert_nothing_unverified,
    exchange,
    forged,
    parse_answers,
    request_bytes,
    signed,
    start_guarded,
    stop_guarded,
)
from harness import base_config, http_request, wait_until
from ops_support import metric_value

pytestmark = pytest.mark.e2e

OTHER = b'{"action": "integration_updated", "timestamp": 1764320000001}'


def routes() -> list[dict]:
    return [
        *base_config("http://127.0.0.1:1")["routes"],
        {"name": "deduped", "path": "/webhooks/deduped", "secrets": ["sendcloud"], "dedupe_window": "1h"},
        {"name": "reported", "path": "/webhooks/reported", "secrets": ["sendcloud"], "mode": "report"},
    ]


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    running = start_guarded(tmp_path_factory.mktemp("inline"), routes=routes())
    yield running
    stop_guarded(running)


@pytest.fixture
def proxy(guarded):
    guarded.upstream.clear()
    return guarded


def get(target: str, *headers: tuple[str, str]) -> bytes:
    return request_bytes("GET", target, [("Host", "shop.example"), *headers], length=False)


def post(target: str, headers: list[tuple[str, str]], body: bytes = WEBHOOK_BODY) -> bytes:
    return request_bytes("POST", target, headers, body)


def statuses(answers) -> list[tuple[int, str | None]]:
    return [(answer.status, answer.error) for answer in answers]


def counts(guarded) -> dict[tuple[str, str], float]:
    """sigwarden_requests_total by (route, outcome)."""
    _, _, body = http_request(guarded.sigwarden.admin_port, "GET", "/metrics")
    found = {}
    for line in body.decode().splitlines():
        if line.startswith("sigwarden_requests_total{"):
            series, _, value = line.rpartition(" ")
            labels = dict(part.split("=", 1) for part in series[len("sigwarden_requests_total{") : -1].split(","))
            found[(labels["route"].strip('"'), labels["outcome"].strip('"'))] = float(value)
    return found


def delta(before: dict, after: dict) -> dict:
    return {key: after[key] - before.get(key, 0) for key in after if after[key] != before.get(key, 0)}


def settled_flows(guarded) -> None:
    """Wait until sigwarden has ended every flow (so that nothing more can reach the upstream)."""
    wait_until(lambda: metric_value(guarded.sigwarden.admin_port, "sigwarden_requests_in_flight") == 0, deadline=10)


# -- answers written while the client connection is reading: the barrier -----------------------


def test_refused_bodyless_request_then_more_on_the_same_connection(proxy):
    """No body: requestheaders and request run while the client layer is still in read_headers."""
    data = (
        get("/webhooks/sendcloud")
        + post("/webhooks/sendcloud", signed())
        + get("/webhooks/sendcloud", ("X-Webhook-Verified", "true"), ("Sendcloud-Signature", "0" * 64))
        + get("/shop/cart", ("X-Webhook-Verified", "true"))
        + get("/index.php?route=sendcloud/webhook")
        + post("/webhooks/sendcloud", signed(OTHER), OTHER)
    )
    before = counts(proxy)
    answers, _, exchanges = proxy.send(data, answers=6)
    assert statuses(answers) == [
        (401, "missing_signature"),
        (200, None),
        (401, "invalid_signature"),
        (200, None),
        (401, "missing_signature"),
        (200, None),
    ]
    settled_flows(proxy)
    # Each request counted once, with its outcome: no end hook skipped or run twice.
    assert delta(before, counts(proxy)) == {
        ("sendcloud", "missing_signature"): 1,
        ("sendcloud", "verified"): 2,
        ("sendcloud", "invalid_signature"): 1,
        ("unmatched", "passed"): 1,
        ("query-routed", "missing_signature"): 1,
    }
    assert [(exchange.target, exchange.body) for exchange in exchanges] == [
        ("/webhooks/sendcloud", WEBHOOK_BODY),
        ("/shop/cart", b""),
        ("/webhooks/sendcloud", OTHER),
    ]


def test_refusal_sent_in_pieces_keeps_the_connection_in_step(proxy):
    """The head first, the body later: the request hook runs inside read_body, answered after it."""
    head, body = post("/webhooks/sendcloud", forged()).split(b"\r\n\r\n", 1)
    steps = [head + b"\r\n\r\n", body[:10], body[10:] + post("/webhooks/sendcloud", signed())]
    answers, _, exchanges = proxy.send(steps, answers=2)
    assert statuses(answers) == [(401, "invalid_signature"), (200, None)]
    assert len(exchanges) == 1


def test_http10_refusal_without_keep_alive_ends_the_connection_before_the_next_request(proxy):
    data = request_bytes("POST", "/webhooks/sendcloud", forged(), WEBHOOK_BODY, version="HTTP/1.0")
    answers, closed, exchanges = proxy.send(data + post("/webhooks/sendcloud", signed()), wait_close=True)
    assert statuses(answers) == [(401, "invalid_signature")]
    assert closed and exchanges == []


def test_refused_head_request_gets_no_body_and_the_next_answer_follows_its_head(proxy):
    """A HEAD answer carries Content-Length but no body: a body there would be read as the next answer."""
    head = request_bytes("HEAD", "/webhooks/sendcloud", [("Host", "shop.example")], length=False)
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        sock.sendall(head + get("/shop/after"))
        received = b""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not (received.count(b"HTTP/1.1 ") >= 2 and received.endswith(b"}")):
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    first, _, rest = received.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 401") and b"content-length: " in first.lower()
    assert rest.startswith(b"HTTP/1.1 200"), rest[:80]
    assert [exchange.target for exchange in proxy.upstream.settled()] == ["/shop/after"]


# -- Expect: 100-continue -------------------------------------------------------------------------


def _continue_then_body(port: int, head: bytes, body: bytes) -> tuple[bytes, bytes]:
    """Send a head with Expect, wait for the interim 100, then send the body; (interim, rest)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head)
        interim = b""
        deadline = time.monotonic() + 5
        while b"\r\n\r\n" not in interim and time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            interim += chunk
        sock.sendall(body)
        rest = b""
        while not parse_answers(rest) and time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        return interim, rest


@pytest.mark.parametrize("target", ["/webhooks/sendcloud", "/shop/upload"])
def test_expect_continue_gets_its_100_before_the_body_and_the_body_is_forwarded_once(proxy, target):
    data = post(target, [*signed(), ("Expect", "100-continue")])
    head, body = data.split(b"\r\n\r\n", 1)
    interim, rest = _continue_then_body(proxy.port, head + b"\r\n\r\n", body)
    assert interim.startswith(b"HTTP/1.1 100"), interim
    assert rest.startswith(b"HTTP/1.1 200"), rest
    exchanges = proxy.upstream.settled()
    assert_nothing_unverified(exchanges)
    [received] = exchanges
    assert received.body == WEBHOOK_BODY and received.target == target
    assert received.header("HTTP_EXPECT") is None  # answered here; mitmproxy drops it


def test_expect_continue_pipelined_behind_a_refusal(proxy):
    expecting = post("/webhooks/sendcloud", [*signed(OTHER), ("Expect", "100-continue")], OTHER)
    answers, _, exchanges = proxy.send(post("/webhooks/sendcloud", forged()) + expecting, answers=2)
    assert statuses(answers) == [(401, "invalid_signature"), (200, None)]
    assert [exchange.body for exchange in exchanges] == [OTHER]


# -- the awaited hook: a dedupe claim -------------------------------------------------------------


def test_identical_deliveries_pipelined_reach_the_upstream_once(proxy):
    body = b'{"action": "parcel_status_changed", "timestamp": 1764320000002, "n": "pipelined"}'
    one = post("/webhooks/deduped", signed(body), body)
    answers, _, exchanges = proxy.send(one + one + one, answers=3)
    assert [answer.status for answer in answers] == [200, 200, 200]
    assert [answer.body for answer in answers[1:]] == [b'{"status": "duplicate"}'] * 2
    assert len(exchanges) == 1


def test_pipelined_deliveries_the_upstream_fails_are_each_forwarded(proxy):
    body = b'{"action": "parcel_status_changed", "timestamp": 1764320000003, "n": "failing"}'
    proxy.upstream.status = 500
    one = post("/webhooks/deduped", signed(body), body)
    answers, _, exchanges = proxy.send(one + one, answers=2)
    assert [answer.status for answer in answers] == [500, 500]
    assert len(exchanges) == 2


def test_forged_delivery_on_a_dedupe_route_pipelined_with_a_genuine_one(proxy):
    body = b'{"action": "parcel_status_changed", "timestamp": 1764320000004, "n": "mixed"}'
    data = post("/webhooks/deduped", forged(body), body) + post("/webhooks/deduped", signed(body), body)
    answers, _, exchanges = proxy.send(data, answers=2)
    assert statuses(answers) == [(401, "invalid_signature"), (200, None)]
    assert len(exchanges) == 1


# -- report mode: forwarded refusals, marked; no client verdict survives ---------------------------


def test_report_mode_pipelined_marks_each_request_with_its_own_verdict(proxy):
    spoof = [("X-Webhook-Verified", "true"), ("x_webhook_key_id", "sendcloud"), ("X-Webhook-Verify-Error", "")]
    data = (
        post("/webhooks/reported", [*forged(), *spoof])
        + post("/webhooks/reported", [*signed(), *spoof])
        + get("/webhooks/reported", *spoof)
    )
    answers, _ = exchange(proxy.port, data, answers=3)
    assert [answer.status for answer in answers] == [200, 200, 200]
    exchanges = proxy.upstream.settled()
    assert [exchange.verdict() for exchange in exchanges] == [
        [("HTTP_X_WEBHOOK_VERIFIED", "false"), ("HTTP_X_WEBHOOK_VERIFY_ERROR", "invalid_signature")],
        [("HTTP_X_WEBHOOK_VERIFIED", "true"), ("HTTP_X_WEBHOOK_KEY_ID", "sendcloud")],
        [("HTTP_X_WEBHOOK_VERIFIED", "false"), ("HTTP_X_WEBHOOK_VERIFY_ERROR", "missing_signature")],
    ]


def test_report_mode_still_refuses_an_oversized_body_before_reading_it(proxy):
    data = request_bytes(
        "POST", "/webhooks/reported", [*signed(), ("Content-Length", str(10 << 20))], b"", length=False
    )
    answers, closed = exchange(proxy.port, data, wait_close=True)
    assert statuses(answers) == [(413, "body_too_large")]
    assert closed and proxy.upstream.settled() == []


# -- clients that leave ---------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["/webhooks/sendcloud", "/webhooks/deduped", "/webhooks/reported"])
def test_client_leaving_mid_body_forwards_nothing(proxy, target):
    data = post(target, signed())
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        sock.sendall(data[:-5])
        wait_until(lambda: metric_value(proxy.sigwarden.admin_port, "sigwarden_requests_in_flight") == 1, deadline=5)
    settled_flows(proxy)
    assert proxy.upstream.settled() == []


def test_client_half_closing_after_a_forged_request_gets_nothing_forwarded(proxy):
    answers, _ = exchange(proxy.port, post("/webhooks/sendcloud", forged()), half_close=True, wait_close=True)
    assert statuses(answers) in ([(401, "invalid_signature")], [])
    settled_flows(proxy)
    assert proxy.upstream.settled() == []


# -- last: every flow of this module ended (no hook skipped) -------------------------------------


def test_zz_nothing_is_left_in_flight_and_nothing_failed(guarded):
    settled_flows(guarded)
    logs = guarded.sigwarden.logs()
    for trouble in ("internal_error", "Addon error", "crashed", "Traceback"):
        assert trouble not in logs


# -- a reload in the middle of a request: it keeps the snapshot it started with ------------------


@pytest.fixture
def reloading(tmp_path):
    running = start_guarded(tmp_path, routes=routes())
    yield running
    stop_guarded(running)


def reload_with(guarded, **changes) -> None:
    process = guarded.sigwarden
    before = sum(1 for line in process.log_lines() if line.get("event") == "config_reloaded")
    config = dict(process.config, **changes)
    process.config_path.write_text(yaml.safe_dump(config))
    process.process.send_signal(signal.SIGHUP)
    wait_until(
        lambda: sum(1 for line in process.log_lines() if line.get("event") == "config_reloaded") > before, deadline=10
    )


def test_a_forged_request_begun_under_enforce_is_refused_after_a_reload_to_report(reloading):
    head, body = post("/webhooks/sendcloud", [*forged(), ("X-Webhook-Verified", "true")]).split(b"\r\n\r\n", 1)
    admin = reloading.sigwarden.admin_port
    with socket.create_connection(("127.0.0.1", reloading.port), timeout=5) as sock:
        sock.sendall(head + b"\r\n\r\n")
        wait_until(lambda: metric_value(admin, "sigwarden_requests_in_flight") == 1, deadline=5)
        reload_with(reloading, mode="report", headers={"verified": "X-Sig-Verified"})
        sock.sendall(body)
        received = b""
        while not parse_answers(received):
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    assert statuses(parse_answers(received)) == [(401, "invalid_signature")]
    settled_flows(reloading)
    assert reloading.upstream.settled() == []
    # New requests follow the new config: forwarded, marked with the new header, the old name stripped no more
    # (the application now reads X-Sig-Verified, which sigwarden strips and sets).
    data = post("/webhooks/sendcloud", [*forged(), ("X-Sig-Verified", "true"), ("x_sig_verified", "1")])
    answers, _ = exchange(reloading.port, data)
    assert [answer.status for answer in answers] == [200]
    [received_exchange] = reloading.upstream.settled()
    names = [name for name, _ in received_exchange.server()]
    assert names.count("HTTP_X_SIG_VERIFIED") == 1
    assert received_exchange.header("HTTP_X_SIG_VERIFIED") == "false"
