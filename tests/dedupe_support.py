"""A real `redis-server` on loopback for the dedupe tests, and helpers to send timestamped deliveries.

The server runs on a free port with no persistence, in a temporary folder. Without the
binary the tests are skipped — except under CI (the variable `CI` set), where they fail:
`.ci/run` installs the Debian package `redis-server`.
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from harness import base_config, free_port, signed_headers

REDIS_SERVER = "redis-server"


def require_redis_server() -> str:
    """The path of redis-server; skips the test without it (fails under CI)."""
    path = shutil.which(REDIS_SERVER)
    if path is None:
        message = "redis-server is not installed (Debian: apt-get install -y redis-server)"
        if os.environ.get("CI"):
            pytest.fail(message + "; CI must run the Redis tests")
        pytest.skip(message)
    return path


def redis_command(port: int, *args: str, timeout: float = 2.0) -> bytes:
    """One command in RESP over a plain socket: the raw reply (enough for PING, PTTL, DBSIZE)."""
    request = f"*{len(args)}\r\n".encode() + b"".join(
        f"${len(arg.encode())}\r\n".encode() + arg.encode() + b"\r\n" for arg in args
    )
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        reply = b""
        while not reply.endswith(b"\r\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
        return reply


class RedisServer:
    """`redis-server` on 127.0.0.1 and a free port, no RDB or AOF files, stopped by the test."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, deadline: float = 10.0) -> RedisServer:
        binary = require_redis_server()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.log = open(self.folder / "redis.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
                "--daemonize",
                "no",
                "--protected-mode",
                "yes",
            ],  # fmt: skip
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}; see {self.folder}/redis.log")
            try:
                if redis_command(self.port, "PING", timeout=0.5).startswith(b"+PONG"):
                    return self
            except OSError:
                pass
            time.sleep(0.02)
        raise TimeoutError(f"redis-server did not answer PING on {self.port} within {deadline}s")

    def command(self, *args: str) -> bytes:
        return redis_command(self.port, *args)

    def kill(self) -> None:
        """Gone at once, as after a crash (SIGKILL, no shutdown)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def pause(self) -> None:
        """Hung: connections are accepted by the kernel, nothing is answered."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a paused server cannot handle SIGTERM
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if hasattr(self, "log"):
            self.log.close()


def now_ms() -> int:
    return int(time.time() * 1000)


NOW = object()


def delivery(timestamp: Any = NOW, **fields: Any) -> bytes:
    """A unique Sendcloud-like body (json.dumps defaults, as Sendcloud sends), timestamped now by default."""
    document: dict[str, Any] = {
        "action": "parcel_status_changed",
        "timestamp": now_ms() if timestamp is NOW else timestamp,
        "parcel": {"id": uuid.uuid4().int % 10**9, "status": {"id": 11, "message": "Delivered"}},
    }
    document.update(fields)
    return json.dumps(document).encode()


def post(sigwarden, path: str, body: bytes, headers: dict[str, str] | None = None, timeout: float = 20.0):
    """POST a signed delivery; (status, headers, parsed JSON or raw body)."""
    status, answer_headers, answer = sigwarden.request(
        "POST", path, body, {**signed_headers(body), **(headers or {})}, timeout=timeout
    )
    try:
        parsed: Any = json.loads(answer)
    except ValueError:
        parsed = answer
    return status, answer_headers, parsed


class Arrival:
    """One request as the upstream saw it, with when it arrived and when its answer was written."""

    def __init__(self, path: str, headers: dict[str, str], body: bytes, arrived: float, status: int):
        self.path = path
        self.headers = headers
        self.body = body
        self.arrived = arrived
        self.status = status
        self.answered: float | None = None

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


class ScriptedUpstream:
    """A real HTTP/1.1 upstream on loopback whose answers are scripted per request, in arrival order."""

    def __init__(self) -> None:
        self.arrivals: list[Arrival] = []
        self.statuses: collections.deque[int] = collections.deque()  # next answers; then `status`
        self.status = 200
        self.delay = 0.0
        self.lock = threading.Lock()

    def reset(self) -> None:
        with self.lock:
            self.arrivals.clear()
            self.statuses.clear()
            self.status, self.delay = 200, 0.0

    def bodies(self) -> list[bytes]:
        return [arrival.body for arrival in self.arrivals]

    def start(self) -> ScriptedUpstream:
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def handle_one(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with upstream.lock:
                    # 0: the application dies mid-request (the connection closes with no answer).
                    status = upstream.statuses.popleft() if upstream.statuses else upstream.status
                    arrival = Arrival(
                        self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.monotonic(), status
                    )
                    upstream.arrivals.append(arrival)
                    delay = upstream.delay
                if delay:
                    time.sleep(delay)  # the application "working": holds the delivery in flight
                if status == 0:
                    self.close_connection = True
                    arrival.answered = time.monotonic()
                    return
                reply = json.dumps({"upstream": True, "status": status}).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(reply)))
                    self.end_headers()
                    self.wfile.write(reply)
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # sigwarden hung up (its client went away)
                arrival.answered = time.monotonic()

            do_GET = do_POST = handle_one

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def dedupe_routes() -> list[dict[str, Any]]:
    """Routes for the dedupe tests, one per behaviour (all with the e2e secret)."""
    common = {"secrets": ["sendcloud"]}
    return [
        {"name": "dedupe", "path": "/webhooks/dedupe", "dedupe_window": "12h", **common},
        {"name": "other", "path": "/webhooks/other", "dedupe_window": "12h", **common},
        {"name": "short", "path": "/webhooks/short", "dedupe_window": "1s", **common},
        {"name": "fresh", "path": "/webhooks/fresh", "max_age": "1h", "dedupe_window": "2h", **common},
        {"name": "plain", "path": "/webhooks/plain", **common},
        {
            "name": "report",
            "path": "/webhooks/report",
            "mode": "report",
            "max_age": "1h",
            "dedupe_window": "2h",
            **common,
        },
    ]


def dedupe_config(upstream_url: str, store: str, **overrides: Any) -> dict[str, Any]:
    return base_config(upstream_url, routes=dedupe_routes(), dedupe_store=store, **overrides)
