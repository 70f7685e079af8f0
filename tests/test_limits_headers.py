"""limits.max_header_bytes against the real process: 431 in JSON, flat memory, nothing of the head in the log."""

from __future__ import annotations

import secrets
import threading
import time

import pytest

from harness import Upstream, sign, wait_until
from limits_support import (
    connect,
    json_error,
    read_response,
    read_until_closed,
    start_module_sigwarden,
    vm_rss_bytes,
)

pytestmark = pytest.mark.e2e

LIMIT = 16 * 1024


@pytest.fixture(scope="module")
def upstream():
    server = Upstream().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def sigwarden(tmp_path_factory, upstream):
    # debug: even the most talkative log level must not print a refused head
    process = start_module_sigwarden(
        tmp_path_factory.mktemp("headers"),
        upstream.url,
        limits={"max_header_bytes": f"{LIMIT // 1024}KiB", "header_timeout": "10s"},
        log_level="debug",
    )
    yield process
    process.stop()


@pytest.fixture(autouse=True)
def clear(upstream):
    upstream.received.clear()
    upstream.delay = 0.0


def marker() -> str:
    """A value that stands for a signature or token in a head: it must never be printed."""
    return "tok-" + secrets.token_hex(16)


def send_head_flood(port: int, first_lines: bytes, total: int) -> tuple[bytes, bool]:
    """Send `first_lines` then header lines up to `total` bytes, never a blank line; return (answer, closed)."""
    sock = connect(port)
    answer: dict[str, object] = {}

    def read() -> None:
        answer["data"], _, answer["closed"] = read_until_closed(sock, deadline=30)

    reader = threading.Thread(target=read)
    reader.start()
    line = b"X-Filler: " + b"f" * 1000 + b"\r\n"
    sent = 0
    try:
        sock.sendall(first_lines)
        while sent < total:
            sock.sendall(line * 64)
            sent += len(line) * 64
    except OSError:
        pass  # sigwarden stopped reading and closed: expected for a flood
    reader.join(35)
    sock.close()
    return answer.get("data", b""), bool(answer.get("closed"))  # type: ignore[return-value]


def test_head_over_the_limit_is_answered_431_in_json_and_never_forwarded(sigwarden, upstream):
    token = marker()
    body = b'{"action": "parcel_status_changed"}'
    head = (
        b"POST /webhooks/sendcloud HTTP/1.1\r\nHost: shop\r\n"
        + f"Sendcloud-Signature: {sign(body)}\r\nAuthorization: Bearer {token}\r\n".encode()
        + b"X-Pad: "
        + b"p" * (LIMIT + 100)
        + b"\r\n\r\n"
        + body
    )
    sock = connect(sigwarden.port)
    sock.sendall(head)
    answer, _, closed = read_until_closed(sock)
    sock.close()
    assert json_error(answer) == (431, "headers_too_large")
    assert b"connection: close" in answer.lower()
    assert closed
    assert upstream.received == []
    refusals = [line for line in sigwarden.log_lines() if line.get("event") == "connection_refused"]
    assert any(line["outcome"] == "headers_too_large" for line in refusals)
    logs = sigwarden.logs()
    assert token not in logs and sign(body) not in logs and "ppppppppp" not in logs


def test_head_just_under_the_limit_is_forwarded(sigwarden, upstream):
    pad = LIMIT - 200
    head = b"GET /big-head HTTP/1.1\r\nHost: shop\r\nX-Pad: " + b"p" * pad + b"\r\n\r\n"
    sock = connect(sigwarden.port)
    sock.sendall(head)
    status, _, _ = read_response(sock)
    sock.close()
    assert status == 200
    assert [received.path for received in upstream.received] == ["/big-head"]


def test_51_mb_of_headers_keep_memory_flat_and_out_of_the_log(sigwarden, upstream):
    token = marker()
    rss_before = vm_rss_bytes(sigwarden.process.pid)
    first = f"POST /webhooks/sendcloud HTTP/1.1\r\nHost: shop\r\nAuthorization: Bearer {token}\r\n".encode()
    started = time.monotonic()
    answer, closed = send_head_flood(sigwarden.port, first, 51 * 1024 * 1024)
    elapsed = time.monotonic() - started
    rss_after = vm_rss_bytes(sigwarden.process.pid)
    assert closed
    if answer:  # the answer is read unless the kernel's reset overtook it
        assert json_error(answer) == (431, "headers_too_large")
    assert rss_after - rss_before < 30 * 1024 * 1024, (rss_before, rss_after)
    assert elapsed < 30
    logs = sigwarden.logs()
    assert token not in logs
    assert "ffffffffff" not in logs
    assert upstream.received == []
    # and it still serves
    sock = connect(sigwarden.port)
    sock.sendall(b"GET /after HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n")
    after, _, _ = read_until_closed(sock)
    sock.close()
    assert after.startswith(b"HTTP/1.1 200")


def test_twenty_oversized_heads_at_once_cost_little_memory(sigwarden, upstream):
    rss_before = vm_rss_bytes(sigwarden.process.pid)
    results: list[tuple[bytes, bool]] = []

    def flood() -> None:
        results.append(send_head_flood(sigwarden.port, b"GET / HTTP/1.1\r\nHost: shop\r\n", 2 * 1024 * 1024))

    threads = [threading.Thread(target=flood) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(results) == 20
    assert all(closed for _, closed in results)
    assert all(json_error(answer) == (431, "headers_too_large") for answer, _ in results if answer)
    assert vm_rss_bytes(sigwarden.process.pid) - rss_before < 30 * 1024 * 1024
    assert upstream.received == []


def test_data_pipelined_far_ahead_of_a_pending_answer_closes_the_connection(sigwarden, upstream):
    """A client that keeps sending while its answer is pending cannot grow sigwarden's buffer."""
    upstream.delay = 2.0
    rss_before = vm_rss_bytes(sigwarden.process.pid)
    sock = connect(sigwarden.port)
    sock.sendall(b"GET /slow HTTP/1.1\r\nHost: shop\r\n\r\n")
    # once the request is upstream, flood the connection with a never-ending next head
    wait_until(lambda: upstream.received, deadline=5)
    sent = 0
    try:
        while sent < 20 * 1024 * 1024:
            sock.sendall(b"x" * 65536)
            sent += 65536
    except OSError:
        pass
    _, _, closed = read_until_closed(sock, deadline=10)
    sock.close()
    assert closed
    assert sent < 20 * 1024 * 1024  # sigwarden stopped reading and hung up
    assert vm_rss_bytes(sigwarden.process.pid) - rss_before < 30 * 1024 * 1024


def test_unparsable_head_is_answered_400_in_json_and_not_logged(sigwarden, upstream):
    token = marker()
    sock = connect(sigwarden.port)
    sock.sendall(f"NOT A REQUEST LINE\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
    answer, _, closed = read_until_closed(sock)
    sock.close()
    assert closed
    assert json_error(answer) == (400, "bad_request")
    assert upstream.received == []
    assert token not in sigwarden.logs()
    refusals = [line for line in sigwarden.log_lines() if line.get("event") == "connection_refused"]
    assert any(line["outcome"] == "bad_request" for line in refusals)


def test_client_hanging_up_mid_head_leaves_nothing_of_it_in_the_log(sigwarden, upstream):
    token = marker()
    sock = connect(sigwarden.port)
    sock.sendall(f"POST /webhooks/sendcloud HTTP/1.1\r\nHost: shop\r\nAuthorization: Bearer {token}\r\n".encode())
    sock.close()
    wait_until(lambda: "request head refused or incomplete" in sigwarden.logs(), deadline=5)
    assert token not in sigwarden.logs()
    assert upstream.received == []
