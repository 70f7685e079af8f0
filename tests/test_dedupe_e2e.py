"""Replay and duplicate protection (SPEC §6) in the real `sigwarden run`, with the memory store and a real Redis.

Every body is unique to its test, so one proxy per store serves the whole module.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time

import pytest

from dedupe_support import RedisServer, ScriptedUpstream, dedupe_config, delivery, now_ms, post
from harness import Sigwarden, signed_headers, wait_until
from ops_support import metric_value, readiness

pytestmark = pytest.mark.e2e

DUPLICATE = {"status": "duplicate"}


@pytest.fixture(scope="module")
def scripted_upstream():
    server = ScriptedUpstream().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def module_redis(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module", params=["memory", "redis"])
def store_sigwarden(request, tmp_path_factory, scripted_upstream):
    store = "memory" if request.param == "memory" else request.getfixturevalue("module_redis").url
    process = Sigwarden(
        tmp_path_factory.mktemp(f"sigwarden-{request.param}"), dedupe_config(scripted_upstream.url, store)
    )
    process.start()
    yield process
    process.stop()


@pytest.fixture
def proxy(store_sigwarden, scripted_upstream):
    """(sigwarden, upstream) for one test: the upstream's record and script cleared."""
    scripted_upstream.reset()
    return store_sigwarden, scripted_upstream


def outcomes_logged(sigwarden: Sigwarden, path: str) -> list[str]:
    return [
        line["outcome"] for line in sigwarden.log_lines() if line.get("event") == "request" and line.get("path") == path
    ]


# --- duplicates -------------------------------------------------------------------


def test_duplicate_is_answered_by_sigwarden_and_not_forwarded(proxy):
    sigwarden, upstream = proxy
    body = delivery()
    status, _, answer = post(sigwarden, "/webhooks/dedupe", body)
    assert (status, answer) == (200, {"upstream": True, "status": 200})
    status, headers, answer = post(sigwarden, "/webhooks/dedupe", body)
    assert (status, answer) == (200, DUPLICATE)
    assert headers["content-type"] == "application/json"
    assert upstream.bodies() == [body]
    assert wait_until(lambda: outcomes_logged(sigwarden, "/webhooks/dedupe")[-2:] == ["verified", "duplicate"])


def test_a_route_without_dedupe_window_forwards_every_copy(proxy):
    sigwarden, upstream = proxy
    body = delivery()
    for _ in range(2):
        assert post(sigwarden, "/webhooks/plain", body)[0] == 200
    assert upstream.bodies() == [body, body]


def test_a_forged_copy_of_an_accepted_body_is_still_refused_as_forged(proxy):
    sigwarden, upstream = proxy
    body = delivery()
    assert post(sigwarden, "/webhooks/dedupe", body)[0] == 200
    status, _, answer = sigwarden.request(
        "POST", "/webhooks/dedupe", body, {"Sendcloud-Signature": "0" * 64, "Content-Type": "application/json"}
    )
    assert (status, json.loads(answer)["error"]) == (401, "invalid_signature")
    assert upstream.bodies() == [body]


def test_delivery_the_upstream_failed_is_not_remembered_so_the_retry_is_forwarded(proxy):
    sigwarden, upstream = proxy
    upstream.statuses.extend([500])
    body = delivery()
    assert post(sigwarden, "/webhooks/dedupe", body)[0] == 500
    status, _, answer = post(sigwarden, "/webhooks/dedupe", body)
    assert (status, answer["upstream"]) == (200, True)
    assert post(sigwarden, "/webhooks/dedupe", body)[2] == DUPLICATE
    assert upstream.bodies() == [body, body]


def test_delivery_the_upstream_dropped_is_not_remembered(proxy):
    sigwarden, upstream = proxy
    upstream.statuses.extend([0])  # connection closed without an answer: 502 from sigwarden
    body = delivery()
    status, _, answer = post(sigwarden, "/webhooks/dedupe", body)
    assert (status, answer["error"]) == (502, "upstream_unavailable")
    assert post(sigwarden, "/webhooks/dedupe", body)[0] == 200
    assert post(sigwarden, "/webhooks/dedupe", body)[2] == DUPLICATE
    assert upstream.bodies() == [body, body]


def test_delivery_whose_client_went_away_is_not_remembered(proxy):
    sigwarden, upstream = proxy
    upstream.delay = 1.0
    body = delivery()
    head = (
        f"POST /webhooks/dedupe HTTP/1.1\r\nHost: shop\r\nContent-Type: application/json\r\n"
        f"Sendcloud-Signature: {signed_headers(body)['Sendcloud-Signature']}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", sigwarden.port), timeout=5) as client:
        client.sendall(head + body)
        wait_until(lambda: len(upstream.arrivals) == 1)  # in flight: now the client hangs up
    upstream.delay = 0.0
    status, _, answer = post(sigwarden, "/webhooks/dedupe", body)
    assert (status, answer["upstream"]) == (200, True)
    assert upstream.bodies() == [body, body]
    assert post(sigwarden, "/webhooks/dedupe", body)[2] == DUPLICATE


def test_same_body_on_another_route_is_not_a_duplicate(proxy):
    sigwarden, upstream = proxy
    body = delivery()
    assert post(sigwarden, "/webhooks/dedupe", body)[0] == 200
    status, _, answer = post(sigwarden, "/webhooks/other", body)
    assert (status, answer["upstream"]) == (200, True)
    assert post(sigwarden, "/webhooks/other", body)[2] == DUPLICATE
    assert [arrival.path for arrival in upstream.arrivals] == ["/webhooks/dedupe", "/webhooks/other"]


def test_concurrent_identical_deliveries_reach_the_upstream_once(proxy):
    sigwarden, upstream = proxy
    upstream.delay = 0.5  # the first one stays in flight while the others arrive
    body = delivery()
    clients = 5
    barrier = threading.Barrier(clients)
    answers: list[tuple[int, object]] = []

    def send() -> None:
        barrier.wait()
        status, _, answer = post(sigwarden, "/webhooks/dedupe", body)
        answers.append((status, answer))

    threads = [threading.Thread(target=send) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(answers) == clients
    assert upstream.bodies() == [body]
    assert sorted(answers, key=str).count((200, DUPLICATE)) == clients - 1
    assert (200, {"upstream": True, "status": 200}) in answers


def test_identical_delivery_waits_for_the_one_in_flight_and_goes_through_when_it_fails(proxy):
    sigwarden, upstream = proxy
    upstream.statuses.extend([500, 200])
    upstream.delay = 0.5
    body = delivery()
    first: list[int] = []
    thread = threading.Thread(target=lambda: first.append(post(sigwarden, "/webhooks/dedupe", body)[0]))
    thread.start()
    wait_until(lambda: len(upstream.arrivals) == 1)  # the first is in flight now
    second = post(sigwarden, "/webhooks/dedupe", body)
    thread.join(30)
    assert first == [500]
    assert second[0] == 200 and second[2]["upstream"] is True
    one, two = upstream.arrivals
    assert one.answered is not None and two.arrived >= one.answered  # it waited for the first's answer
    assert post(sigwarden, "/webhooks/dedupe", body)[2] == DUPLICATE


def test_window_expires_and_the_body_is_forwarded_again(proxy):
    sigwarden, upstream = proxy
    body = delivery()
    assert post(sigwarden, "/webhooks/short", body)[0] == 200  # window 1s
    accepted = time.monotonic()
    assert post(sigwarden, "/webhooks/short", body)[2] == DUPLICATE or time.monotonic() - accepted >= 1.0
    # Copies are duplicates until the window has passed (a duplicate does not extend it), then forwarded.
    wait_until(lambda: post(sigwarden, "/webhooks/short", body)[2] != DUPLICATE, deadline=10, interval=0.1)
    assert time.monotonic() - accepted >= 0.9
    assert upstream.bodies() == [body, body]


# --- timestamps (max_age) -----------------------------------------------------------


@pytest.mark.parametrize(
    ("timestamp", "outcome"),
    [
        (lambda: now_ms() - 2 * 3600 * 1000, "stale_timestamp"),  # 2 h old, max_age 1h
        (lambda: now_ms() + 10 * 60 * 1000, "stale_timestamp"),  # 10 min in the future
        (lambda: int(time.time()) - 2 * 3600, "stale_timestamp"),  # seconds, 2 h old
        (lambda: "1764320000000", "missing_timestamp"),  # a string is no number
        (lambda: True, "missing_timestamp"),  # nor is a boolean
        (lambda: None, "missing_timestamp"),  # null
    ],
)
def test_timestamp_outside_max_age_or_not_numeric_is_refused(proxy, timestamp, outcome):
    sigwarden, upstream = proxy
    body = delivery(timestamp=timestamp())
    status, _, answer = post(sigwarden, "/webhooks/fresh", body)
    assert (status, answer["error"]) == (400, outcome)
    assert upstream.arrivals == []
    assert wait_until(lambda: outcomes_logged(sigwarden, "/webhooks/fresh")[-1:] == [outcome])


@pytest.mark.parametrize(
    "body",
    [
        b"not json at all",
        b'["timestamp", 1764320000000]',
        json.dumps({"action": "parcel_status_changed"}).encode(),
        b"",
    ],
    ids=["not-json", "array", "no-timestamp", "empty"],
)
def test_body_without_a_timestamp_is_refused_on_a_max_age_route(proxy, body):
    sigwarden, upstream = proxy
    status, _, answer = post(sigwarden, "/webhooks/fresh", body)
    assert (status, answer["error"]) == (400, "missing_timestamp")
    assert upstream.arrivals == []


@pytest.mark.parametrize(
    "timestamp",
    [lambda: now_ms(), lambda: int(time.time()), lambda: now_ms() - 50 * 60 * 1000, lambda: now_ms() + 60 * 1000],
    ids=["now-ms", "now-seconds", "50-min-old", "1-min-ahead"],
)
def test_timestamp_within_max_age_is_forwarded(proxy, timestamp):
    sigwarden, upstream = proxy
    body = delivery(timestamp=timestamp())
    assert post(sigwarden, "/webhooks/fresh", body)[0] == 200
    assert upstream.bodies() == [body]
    assert upstream.arrivals[0].header("X-Webhook-Verified") == "true"


def test_signature_is_checked_before_the_timestamp(proxy):
    sigwarden, upstream = proxy
    body = b"not json"
    status, _, answer = sigwarden.request(
        "POST", "/webhooks/fresh", body, {"Sendcloud-Signature": "0" * 64, "Content-Type": "application/json"}
    )
    assert (status, json.loads(answer)["error"]) == (401, "invalid_signature")
    status, _, answer = sigwarden.request("POST", "/webhooks/fresh", body, {"Content-Type": "application/json"})
    assert (status, json.loads(answer)["error"]) == (401, "missing_signature")


def test_a_stale_replay_of_an_accepted_body_is_refused_as_stale_before_duplicate(proxy):
    sigwarden, upstream = proxy
    # Not reachable in real life with dedupe_window >= max_age; shows the order: stale wins over duplicate.
    body = delivery(timestamp=now_ms() - 2 * 3600 * 1000)
    assert post(sigwarden, "/webhooks/fresh", body)[2]["error"] == "stale_timestamp"
    fresh = delivery()
    assert post(sigwarden, "/webhooks/fresh", fresh)[0] == 200
    assert post(sigwarden, "/webhooks/fresh", fresh)[2] == DUPLICATE
    assert upstream.bodies() == [fresh]


# --- report mode ------------------------------------------------------------------


def test_report_mode_forwards_a_duplicate_marked_as_such(proxy):
    sigwarden, upstream = proxy
    body = delivery()
    assert post(sigwarden, "/webhooks/report", body)[0] == 200
    status, _, answer = post(sigwarden, "/webhooks/report", body)
    assert (status, answer["upstream"]) == (200, True)
    first, second = upstream.arrivals
    assert (first.header("X-Webhook-Verified"), first.header("X-Webhook-Verify-Error")) == ("true", None)
    assert (second.header("X-Webhook-Verified"), second.header("X-Webhook-Verify-Error")) == ("false", "duplicate")
    assert second.header("X-Webhook-Key-Id") is None
    assert wait_until(lambda: outcomes_logged(sigwarden, "/webhooks/report")[-1:] == ["duplicate"])


def test_report_mode_forwards_a_stale_delivery_marked_as_such(proxy):
    sigwarden, upstream = proxy
    body = delivery(timestamp=now_ms() - 2 * 3600 * 1000)
    assert post(sigwarden, "/webhooks/report", body)[0] == 200
    [arrival] = upstream.arrivals
    assert (arrival.header("X-Webhook-Verified"), arrival.header("X-Webhook-Verify-Error")) == (
        "false",
        "stale_timestamp",
    )
    # Not remembered: only verified deliveries are.
    assert post(sigwarden, "/webhooks/report", body)[0] == 200
    assert upstream.arrivals[1].header("X-Webhook-Verify-Error") == "stale_timestamp"


# --- Redis: shared by replicas, keys expiring, faults -------------------------------


def redis_key(route: str, body: bytes) -> str:
    return "sigwarden:dedupe:" + hashlib.sha256(route.encode() + b"\0" + body).hexdigest()


def test_redis_key_expires_with_the_route_window(module_redis, tmp_path, scripted_upstream):
    scripted_upstream.reset()
    sigwarden = Sigwarden(tmp_path, dedupe_config(scripted_upstream.url, module_redis.url)).start()
    try:
        body = delivery()
        assert post(sigwarden, "/webhooks/dedupe", body)[0] == 200
        # Settled just after the streamed answer has gone out: until then the key holds the pending claim.
        wait_until(lambda: module_redis.command("GET", redis_key("dedupe", body)).endswith(b"accepted\r\n"), 5)
        ttl_ms = int(module_redis.command("PTTL", redis_key("dedupe", body))[1:].strip())
        assert 12 * 3600 * 1000 - 60_000 < ttl_ms <= 12 * 3600 * 1000
        # A failed delivery leaves no key behind (released just after the streamed answer ends).
        scripted_upstream.statuses.extend([503])
        failed = delivery()
        assert post(sigwarden, "/webhooks/dedupe", failed)[0] == 503
        wait_until(lambda: module_redis.command("EXISTS", redis_key("dedupe", failed)) == b":0\r\n", deadline=5)
    finally:
        sigwarden.stop()


def test_two_replicas_on_one_redis_share_what_was_accepted(module_redis, tmp_path, scripted_upstream):
    scripted_upstream.reset()
    replicas = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        replicas.append(Sigwarden(tmp_path / name, dedupe_config(scripted_upstream.url, module_redis.url)).start())
    one, two = replicas
    try:
        body = delivery()
        assert post(one, "/webhooks/dedupe", body)[2]["upstream"] is True
        assert post(two, "/webhooks/dedupe", body)[2] == DUPLICATE
        assert scripted_upstream.bodies() == [body]

        # In flight on one replica: the same body through the other waits and is a duplicate.
        scripted_upstream.delay = 0.5
        body = delivery()
        first: list[object] = []
        thread = threading.Thread(target=lambda: first.append(post(one, "/webhooks/dedupe", body)[2]))
        thread.start()
        wait_until(lambda: len(scripted_upstream.arrivals) == 2)
        assert post(two, "/webhooks/dedupe", body)[2] == DUPLICATE
        thread.join(30)
        assert first == [{"upstream": True, "status": 200}]
        assert scripted_upstream.bodies().count(body) == 1
    finally:
        for replica in replicas:
            replica.stop()


def dedupe_store_errors(sigwarden: Sigwarden) -> list[dict]:
    return [line for line in sigwarden.log_lines() if line.get("event") == "dedupe_store_error"]


def test_redis_gone_deliveries_are_forwarded_and_the_fault_counted_and_logged(tmp_path, scripted_upstream):
    scripted_upstream.reset()
    redis = RedisServer(tmp_path / "redis").start()
    sigwarden = Sigwarden(tmp_path, dedupe_config(scripted_upstream.url, redis.url)).start()
    try:
        body = delivery()
        assert post(sigwarden, "/webhooks/dedupe", body)[0] == 200
        wait_until(lambda: redis.command("GET", redis_key("dedupe", body)).endswith(b"accepted\r\n"), deadline=5)
        redis.kill()
        started = time.monotonic()
        fresh = delivery()
        assert post(sigwarden, "/webhooks/dedupe", fresh)[2]["upstream"] is True
        # Nothing can be remembered or looked up: a copy goes through too (duplicates are the lesser evil).
        assert post(sigwarden, "/webhooks/dedupe", fresh)[2]["upstream"] is True
        assert post(sigwarden, "/webhooks/dedupe", body)[2]["upstream"] is True
        assert time.monotonic() - started < 10  # bounded: each Redis call gives up after 0.5 s
        errors = wait_until(lambda: len(dedupe_store_errors(sigwarden)) >= 3 and dedupe_store_errors(sigwarden))
        assert {line["level"] for line in errors} == {"warning"}
        assert [line["errors_total"] for line in errors[:3]] == [1, 2, 3]
        assert {line["operation"] for line in errors} == {"claim"}
        # A short prefix of the key's hash, never the body or the whole key.
        hints = {redis_key("dedupe", sent).rsplit(":", 1)[1][:12] for sent in (fresh, body)}
        assert {line["key"] for line in errors} == hints
        assert "parcel_status_changed" not in json.dumps(errors)
        # The proxy keeps serving everything else, stays ready, and counts the faults.
        status, _, _ = sigwarden.request("GET", "/health-of-the-app")
        assert status == 200
        assert readiness(sigwarden.admin_port)[0] == 200
        assert metric_value(sigwarden.admin_port, "sigwarden_dedupe_store_errors_total") == len(
            dedupe_store_errors(sigwarden)
        )
        assert sigwarden.process is not None and sigwarden.process.poll() is None
    finally:
        sigwarden.stop()
        redis.stop()


def test_redis_hung_deliveries_are_forwarded_within_the_bound(tmp_path, scripted_upstream):
    scripted_upstream.reset()
    redis = RedisServer(tmp_path / "redis").start()
    sigwarden = Sigwarden(tmp_path, dedupe_config(scripted_upstream.url, redis.url)).start()
    try:
        healthy = delivery()
        assert post(sigwarden, "/webhooks/dedupe", healthy)[0] == 200  # connected while healthy
        wait_until(lambda: redis.command("GET", redis_key("dedupe", healthy)).endswith(b"accepted\r\n"), 5)
        redis.pause()
        for _ in range(2):
            started = time.monotonic()
            assert post(sigwarden, "/webhooks/dedupe", delivery())[2]["upstream"] is True
            # claim times out after 0.5 s; no settle is attempted for an unguarded claim
            assert time.monotonic() - started < 5
        reasons = {line["reason"] for line in wait_until(lambda: dedupe_store_errors(sigwarden))}
        assert reasons == {"timeout"}
        redis.resume()
        # Back to normal once Redis answers again.
        body = delivery()
        assert post(sigwarden, "/webhooks/dedupe", body)[0] == 200
        assert post(sigwarden, "/webhooks/dedupe", body)[2] == DUPLICATE
    finally:
        sigwarden.stop()
        redis.stop()
