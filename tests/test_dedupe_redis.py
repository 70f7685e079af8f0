"""The Redis dedupe store against a real `redis-server`: claims, expiry, replicas, faults within the bound."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time

import pytest
import yaml

from dedupe_support import RedisServer
from harness import REPO, free_port
from sigwarden.dedupe import REDIS_KEY_PREFIX, RedisStore, redact_url

WINDOW = 60.0


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


def run(coroutine):
    return asyncio.run(coroutine)


def key_name(key: bytes) -> str:
    return REDIS_KEY_PREFIX + key.hex()


def unique_key() -> bytes:
    return os.urandom(32)


def test_accepted_on_one_replica_is_a_duplicate_on_another(redis_server):
    key = unique_key()

    async def scenario() -> None:
        one, two = RedisStore(redis_server.url), RedisStore(redis_server.url)
        claim = await one.claim(key, WINDOW, 5)
        assert claim is not None and claim.token is not None
        await claim.settle(True)
        assert await two.claim(key, WINDOW, 5) is None
        await one.close()
        await two.close()

    run(scenario())
    ttl = int(redis_server.command("PTTL", key_name(key))[1:])
    assert WINDOW * 1000 - 5000 < ttl <= WINDOW * 1000


def test_pending_claim_expires_within_hold_and_release_deletes_it(redis_server):
    key = unique_key()

    async def scenario() -> None:
        store = RedisStore(redis_server.url)
        claim = await store.claim(key, WINDOW, 3)
        assert claim is not None
        ttl = int(redis_server.command("PTTL", key_name(key))[1:])
        assert 0 < ttl <= 3000
        assert redis_server.command("GET", key_name(key)).split(b"\r\n")[1].startswith(b"pending:")
        await claim.settle(False)
        assert redis_server.command("EXISTS", key_name(key)) == b":0\r\n"
        await store.close()

    run(scenario())


def test_release_leaves_a_claim_that_replaced_an_expired_one(redis_server):
    key = unique_key()

    async def scenario() -> None:
        one, two = RedisStore(redis_server.url), RedisStore(redis_server.url)
        stuck = await one.claim(key, WINDOW, 0.2)
        assert stuck is not None
        started = time.monotonic()
        taken_over = await two.claim(key, WINDOW, 5)  # waits until the stuck claim's marker expires
        assert taken_over is not None and taken_over.token is not None
        assert time.monotonic() - started < 3
        await stuck.settle(False)  # late: must not delete the new holder's marker
        assert redis_server.command("EXISTS", key_name(key)) == b":1\r\n"
        await taken_over.settle(True)
        assert await one.claim(key, WINDOW, 5) is None
        await one.close()
        await two.close()

    run(scenario())


def test_identical_delivery_in_flight_on_another_replica_is_waited_for(redis_server):
    accepted_key, failed_key = unique_key(), unique_key()

    async def scenario() -> None:
        one, two = RedisStore(redis_server.url), RedisStore(redis_server.url)
        first = await one.claim(accepted_key, WINDOW, 5)
        assert first is not None
        waiting = asyncio.create_task(two.claim(accepted_key, WINDOW, 5))
        await asyncio.sleep(0.1)
        assert not waiting.done()
        await first.settle(True)
        assert await asyncio.wait_for(waiting, 2) is None

        first = await one.claim(failed_key, WINDOW, 5)
        assert first is not None
        waiting = asyncio.create_task(two.claim(failed_key, WINDOW, 5))
        await asyncio.sleep(0.1)
        await first.settle(False)
        retry = await asyncio.wait_for(waiting, 2)
        assert retry is not None and retry.token is not None
        await retry.settle(False)
        await one.close()
        await two.close()

    run(scenario())


def test_redis_not_listening_gives_an_unguarded_claim_counted_once():
    calls: list[str] = []

    async def scenario() -> None:
        store = RedisStore(f"redis://127.0.0.1:{free_port()}/0", on_error=calls.append)
        started = time.monotonic()
        claim = await store.claim(unique_key(), WINDOW, 5)
        assert time.monotonic() - started < 2
        assert claim is not None and claim.token is None
        await claim.settle(True)  # unguarded: nothing is attempted
        assert store.errors == 1
        await store.close()

    run(scenario())
    assert calls == ["claim"]


def test_redis_that_never_answers_is_given_up_after_the_timeout():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept_and_stay_silent() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept_and_stay_silent, daemon=True)
    thread.start()
    port = listener.getsockname()[1]

    async def scenario() -> None:
        store = RedisStore(f"redis://127.0.0.1:{port}/0", timeout=0.3)
        for _ in range(2):
            started = time.monotonic()
            claim = await store.claim(unique_key(), WINDOW, 5)
            elapsed = time.monotonic() - started
            assert claim is not None and claim.token is None
            assert 0.25 <= elapsed < 2.0
        assert store.errors == 2
        await store.close()

    try:
        run(scenario())
    finally:
        stop.set()
        thread.join(5)
        for connection in accepted:
            connection.close()
        listener.close()


def test_a_broken_error_callback_does_not_break_the_delivery():
    def broken(operation: str) -> None:
        raise RuntimeError("metrics gone")

    async def scenario() -> None:
        store = RedisStore(f"redis://127.0.0.1:{free_port()}/0", on_error=broken)
        claim = await store.claim(unique_key(), WINDOW, 5)
        assert claim is not None and claim.token is None
        assert store.errors == 1
        await store.close()

    run(scenario())


def test_redact_url_hides_the_password():
    assert redact_url("redis://:hunter2@redis:6379/0") == "redis://:***@redis:6379/0"
    assert redact_url("rediss://user:hunter2@redis/1") == "rediss://user:***@redis/1"
    assert redact_url("redis://redis:6379/0") == "redis://redis:6379/0"
    assert redact_url("redis://:hunter2@[::1]:6379/0") == "redis://:***@[::1]:6379/0"


def test_check_refuses_a_redis_store_when_the_redis_package_is_missing(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "upstream": "http://127.0.0.1:8000",
                "secrets": {"sendcloud": {"value": "x" * 20}},
                "routes": [{"name": "sendcloud", "path": "/hooks", "secrets": ["sendcloud"], "dedupe_window": "1h"}],
                "dedupe_store": "redis://127.0.0.1:6379/0",
            }
        )
    )
    hide_redis = "import sys; sys.modules['redis'] = None; from sigwarden.cli import main; sys.exit(main(sys.argv[1:]))"
    for command in ("check", "run"):
        result = subprocess.run(
            [sys.executable, "-c", hide_redis, command, "-c", str(config)],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=REPO,
        )
        assert result.returncode == 2, result.stderr
        assert f"{config}: dedupe_store: a redis:// store needs the redis package" in result.stderr
        assert "pip install 'sigwarden[redis]'" in result.stderr
