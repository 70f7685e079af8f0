"""limits.max_connections against the real process: clients beyond it are closed at once."""

from __future__ import annotations

import contextlib
import time

import pytest

from harness import Upstream, wait_until
from limits_support import connect, is_closed_by_peer, read_response, start_module_sigwarden

pytestmark = pytest.mark.e2e

MAX_CONNECTIONS = 3


@pytest.fixture(scope="module")
def upstream():
    server = Upstream().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def sigwarden(tmp_path_factory, upstream):
    process = start_module_sigwarden(
        tmp_path_factory.mktemp("connections"),
        upstream.url,
        limits={"max_connections": MAX_CONNECTIONS, "header_timeout": "30s", "idle_timeout": "30s"},
    )
    yield process
    process.stop()


def served(sock) -> bool:
    sock.sendall(b"GET /ping HTTP/1.1\r\nHost: shop\r\n\r\n")
    return read_response(sock)[0] == 200


def test_clients_beyond_max_connections_are_closed_at_once_and_counted_free_again(sigwarden, upstream):
    with contextlib.ExitStack() as stack:
        held = []
        for _ in range(MAX_CONNECTIONS):  # one by one: each is accepted and stays open (keep-alive)
            held.append(stack.enter_context(connect(sigwarden.port)))
            assert served(held[-1])

        extra = stack.enter_context(connect(sigwarden.port))
        started = time.monotonic()
        assert is_closed_by_peer(extra, 3.0)
        assert time.monotonic() - started < 2.0
        refusals = wait_until(
            lambda: [
                line
                for line in sigwarden.log_lines()
                if line.get("event") == "connection_refused" and line.get("outcome") == "too_many_connections"
            ],
            deadline=5,
        )
        assert refusals[0]["client"] == "127.0.0.1"
        assert all(served(sock) for sock in held)  # the refusal did not disturb the others

        held[0].close()

        # once the freed slot is noticed, a new client is served
        def new_client_served() -> bool:
            with connect(sigwarden.port) as sock:
                try:
                    return served(sock)
                except (ConnectionError, TimeoutError):
                    return False

        assert wait_until(new_client_served, deadline=5)
