"""Memory stays flat: early 413s for many large declared bodies, 200 MB through an unprotected path.

RSS is read from /proc; the bounds are generous (30 MB) against a buffered body of 50 to 200 MB.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time

import pytest

from core_support import PeakMemory, read_answer, request_bytes, rss_of

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MIB = 1024 * 1024
GROWTH_BOUND = 30 * MIB
TRANSFER = 200 * 1000 * 1000


def warm_up(sigwarden) -> None:
    """One request of each kind first, so that lazily imported code is not counted as growth."""
    for _ in range(2):
        status, _, _ = sigwarden.request("POST", "/webhooks/sendcloud", b"{}", {"Sendcloud-Signature": "0" * 64})
        assert status == 401
        assert sigwarden.request("POST", "/upload", b"x" * MIB)[0] == 200


def test_twenty_clients_declaring_50_mib_get_413_promptly_with_memory_flat(shared):
    sigwarden, upstream = shared
    warm_up(sigwarden)
    upstream.received.clear()
    before = rss_of(sigwarden.process.pid)
    head = request_bytes(
        "POST", "/webhooks/sendcloud", headers={"Content-Length": str(50 * MIB), "Sendcloud-Signature": "0" * 64}
    )
    answers: list = []
    durations: list[float] = []

    def client() -> None:
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", sigwarden.port), timeout=20) as sock:
            sock.sendall(head)
            try:
                sock.sendall(b"x" * (256 * 1024))  # a client that starts sending its body at once
            except (BrokenPipeError, ConnectionResetError):
                pass
            answers.append(read_answer(sock))
        durations.append(time.monotonic() - started)

    with PeakMemory(sigwarden.process.pid) as memory:
        clients = [threading.Thread(target=client) for _ in range(20)]
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join(30)
    assert len(answers) == 20
    assert {(answer.status, answer.json()["error"]) for answer in answers} == {(413, "body_too_large")}
    assert max(durations) < 5, durations  # measured: well under a second
    assert memory.peak - before < GROWTH_BOUND, f"grew {(memory.peak - before) / MIB:.1f} MiB"
    assert upstream.received == []


def test_a_200_mb_upload_through_an_unprotected_path_is_streamed(shared):
    sigwarden, upstream = shared
    warm_up(sigwarden)
    upstream.keep_bodies = False
    upstream.body_sizes.clear()
    block = b"u" * MIB
    before = rss_of(sigwarden.process.pid)
    try:
        with PeakMemory(sigwarden.process.pid) as memory:
            connection = http.client.HTTPConnection("127.0.0.1", sigwarden.port, timeout=60)
            connection.putrequest("POST", "/upload/archive")
            connection.putheader("Content-Length", str(TRANSFER))
            connection.endheaders()
            remaining = TRANSFER
            while remaining:
                piece = block[: min(remaining, len(block))]
                connection.send(piece)
                remaining -= len(piece)
            response = connection.getresponse()
            response.read()
            connection.close()
    finally:
        upstream.keep_bodies = True
    assert response.status == 200
    assert upstream.body_sizes == [TRANSFER]
    assert memory.peak - before < GROWTH_BOUND, f"grew {(memory.peak - before) / MIB:.1f} MiB"


def test_a_200_mb_download_through_an_unprotected_path_is_streamed(shared):
    sigwarden, upstream = shared
    warm_up(sigwarden)
    upstream.download_bytes = TRANSFER
    before = rss_of(sigwarden.process.pid)
    received = 0
    try:
        with PeakMemory(sigwarden.process.pid) as memory:
            connection = http.client.HTTPConnection("127.0.0.1", sigwarden.port, timeout=60)
            connection.request("GET", "/download/catalogue.csv")
            response = connection.getresponse()
            while chunk := response.read(MIB):
                received += len(chunk)
            connection.close()
    finally:
        upstream.download_bytes = 0
    assert response.status == 200
    assert received == TRANSFER
    assert memory.peak - before < GROWTH_BOUND, f"grew {(memory.peak - before) / MIB:.1f} MiB"
