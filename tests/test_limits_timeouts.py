"""header_timeout, body_timeout and idle_timeout against the real process, with deliberately slow raw clients."""

from __future__ import annotations

import json
import time

import pytest

from harness import Upstream, sign, wait_until
from limits_support import (
    connect,
    is_closed_by_peer,
    json_error,
    read_response,
    read_until_closed,
    start_module_sigwarden,
)

pytestmark = pytest.mark.e2e

HEADER_TIMEOUT = 1.5
BODY_TIMEOUT = 1.5
IDLE_TIMEOUT = 4.0
UPSTREAM_TIMEOUT = 8.0
MARGIN = 2.5  # generous: two cores shared by many test runs

BODY = json.dumps({"action": "parcel_status_changed", "timestamp": 1764320000000}).encode()


@pytest.fixture(scope="module")
def upstream():
    server = Upstream().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def sigwarden(tmp_path_factory, upstream):
    process = start_module_sigwarden(
        tmp_path_factory.mktemp("timeouts"),
        upstream.url,
        limits={
            "header_timeout": f"{HEADER_TIMEOUT}s",
            "body_timeout": f"{BODY_TIMEOUT}s",
            "idle_timeout": f"{IDLE_TIMEOUT}s",
            "upstream_timeout": f"{UPSTREAM_TIMEOUT}s",
        },
    )
    yield process
    process.stop()


@pytest.fixture(autouse=True)
def clear(upstream):
    upstream.received.clear()
    upstream.delay = 0.0


def dribble(sock, data: bytes, interval: float, until: float) -> None:
    """Send `data` one byte per `interval` until it is sent, `until` passes or the server hangs up."""
    for index in range(len(data)):
        if time.monotonic() >= until:
            return
        try:
            sock.send(data[index : index + 1])
        except OSError:
            return
        if is_closed_by_peer(sock, interval):
            return


def test_slowloris_head_is_answered_408_within_the_header_timeout(sigwarden, upstream):
    head = f"POST /webhooks/sendcloud HTTP/1.1\r\nHost: shop\r\nSendcloud-Signature: {sign(BODY)}\r\n\r\n".encode()
    sock = connect(sigwarden.port)
    started = time.monotonic()
    dribble(sock, head, 0.5, started + HEADER_TIMEOUT + MARGIN + 2)
    answer, _, closed = read_until_closed(sock, deadline=HEADER_TIMEOUT + MARGIN)
    elapsed = time.monotonic() - started
    sock.close()
    assert closed
    assert json_error(answer) == (408, "request_timeout")
    assert HEADER_TIMEOUT - 0.2 <= elapsed <= HEADER_TIMEOUT + MARGIN
    assert upstream.received == []
    assert sign(BODY) not in sigwarden.logs()
    refusals = [line for line in sigwarden.log_lines() if line.get("event") == "connection_refused"]
    assert any(line["outcome"] == "request_timeout" for line in refusals)


def test_connection_that_sends_nothing_is_closed_without_an_answer(sigwarden):
    sock = connect(sigwarden.port)
    answer, elapsed, closed = read_until_closed(sock, deadline=HEADER_TIMEOUT + MARGIN + 1)
    sock.close()
    assert closed and answer == b""
    assert HEADER_TIMEOUT - 0.2 <= elapsed <= HEADER_TIMEOUT + MARGIN + 1  # mitmproxy's watchdog rounds up to 1 s


def test_keep_alive_connection_stays_open_past_the_header_timeout_until_idle_timeout(sigwarden, upstream):
    sock = connect(sigwarden.port)
    sock.sendall(b"GET /first HTTP/1.1\r\nHost: shop\r\n\r\n")
    assert read_response(sock)[0] == 200
    # idle longer than header_timeout: a keep-alive wait is idle_timeout's, not header_timeout's
    assert not is_closed_by_peer(sock, HEADER_TIMEOUT + 1.0)
    sock.sendall(b"GET /second HTTP/1.1\r\nHost: shop\r\n\r\n")
    assert read_response(sock)[0] == 200
    idle_started = time.monotonic()
    answer, elapsed, closed = read_until_closed(sock, deadline=IDLE_TIMEOUT + MARGIN)
    sock.close()
    assert closed and answer == b""  # closed quietly
    assert IDLE_TIMEOUT - 0.3 <= time.monotonic() - idle_started <= IDLE_TIMEOUT + MARGIN
    assert [received.path for received in upstream.received] == ["/first", "/second"]


def test_slow_head_on_a_keep_alive_connection_gets_408(sigwarden, upstream):
    sock = connect(sigwarden.port)
    sock.sendall(b"GET /first HTTP/1.1\r\nHost: shop\r\n\r\n")
    assert read_response(sock)[0] == 200
    started = time.monotonic()
    dribble(sock, b"GET /second HTTP/1.1\r\nHost: shop\r\n\r\n", 0.5, started + HEADER_TIMEOUT + MARGIN + 2)
    answer, _, closed = read_until_closed(sock, deadline=HEADER_TIMEOUT + MARGIN)
    elapsed = time.monotonic() - started
    sock.close()
    assert closed
    assert json_error(answer) == (408, "request_timeout")
    assert HEADER_TIMEOUT - 0.2 <= elapsed <= HEADER_TIMEOUT + MARGIN
    assert [received.path for received in upstream.received] == ["/first"]


def test_slow_protected_body_is_answered_408_and_never_forwarded(sigwarden, upstream):
    head = (
        f"POST /webhooks/sendcloud HTTP/1.1\r\nHost: shop\r\nSendcloud-Signature: {sign(BODY)}\r\n"
        f"Content-Length: {len(BODY)}\r\n\r\n"
    ).encode()
    sock = connect(sigwarden.port)
    sock.sendall(head)
    started = time.monotonic()
    dribble(sock, BODY, 0.3, started + BODY_TIMEOUT + MARGIN + 2)
    answer, _, closed = read_until_closed(sock, deadline=BODY_TIMEOUT + MARGIN)
    elapsed = time.monotonic() - started
    sock.close()
    assert closed
    assert json_error(answer) == (408, "request_timeout")
    assert BODY_TIMEOUT - 0.2 <= elapsed <= BODY_TIMEOUT + MARGIN
    assert upstream.received == []
    requests = [line for line in sigwarden.log_lines() if line.get("event") == "request"]
    assert any(line["outcome"] == "request_timeout" and line["route"] == "sendcloud" for line in requests)


def test_unprotected_body_is_streamed_and_not_subject_to_the_body_timeout(sigwarden, upstream):
    body = b"u" * 12
    sock = connect(sigwarden.port)
    sock.sendall(f"POST /upload HTTP/1.1\r\nHost: shop\r\nContent-Length: {len(body)}\r\n\r\n".encode())
    started = time.monotonic()
    # 12 bytes at 0.3 s: 3.6 s in all, over twice the body_timeout, never silent for idle_timeout
    for index in range(len(body)):
        sock.send(body[index : index + 1])
        assert not is_closed_by_peer(sock, 0.3)
    assert time.monotonic() - started > 2 * BODY_TIMEOUT
    status, _, _ = read_response(sock)
    sock.close()
    assert status == 200
    assert [(received.path, received.body) for received in upstream.received] == [("/upload", body)]


def test_stalled_unprotected_body_is_cut_after_idle_timeout(sigwarden, upstream):
    sock = connect(sigwarden.port)
    sock.sendall(b"POST /upload HTTP/1.1\r\nHost: shop\r\nContent-Length: 100\r\n\r\npartial")
    answer, elapsed, closed = read_until_closed(sock, deadline=IDLE_TIMEOUT + MARGIN)
    sock.close()
    assert closed
    assert json_error(answer) == (408, "request_timeout")
    assert IDLE_TIMEOUT - 0.3 <= elapsed <= IDLE_TIMEOUT + MARGIN
    # the upstream saw its connection end mid-body, not a complete request
    [received] = wait_until(lambda: upstream.received, deadline=5)
    assert received.body == b"partial"


def test_idle_and_header_timeouts_never_cut_an_upstream_that_works_within_upstream_timeout(sigwarden, upstream):
    upstream.delay = IDLE_TIMEOUT + 1.5  # longer than idle_timeout and header_timeout, within upstream_timeout
    started = time.monotonic()
    status, _, body = sigwarden.request("POST", "/webhooks/sendcloud", BODY, {"Sendcloud-Signature": sign(BODY)})
    assert status == 200, body
    assert time.monotonic() - started >= IDLE_TIMEOUT + 1.5
    assert len(upstream.received) == 1
