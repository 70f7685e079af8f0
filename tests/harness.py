"""Real processes on loopback for end-to-end tests: a recording upstream and `sigwarden run`.

No sleeps to wait for servers: every wait polls with a deadline.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
SECRET = "e2e-secret-0123456789abcdef"
OLD_SECRET = "e2e-old-secret-0123456789"


def sign(body: bytes, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, deadline: float = 10.0, process: subprocess.Popen | None = None) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {deadline}s")


def wait_until(condition: Callable[[], Any], deadline: float = 10.0, interval: float = 0.05) -> Any:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        result = condition()
        if result:
            return result
        time.sleep(interval)
    raise TimeoutError("condition not met before the deadline")


@dataclass
class Received:
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = [value for key, value in self.headers if key.lower() == name.lower()]
        return values[0] if values else None

    def header_names(self) -> list[str]:
        return [key for key, _ in self.headers]


def _read_chunked(stream) -> bytes:  # type: ignore[no-untyped-def]
    body = bytearray()
    while True:
        size = int(stream.readline().split(b";")[0].strip(), 16)
        if size == 0:
            while stream.readline() not in (b"\r\n", b"\n", b""):
                pass
            return bytes(body)
        body += stream.read(size)
        stream.readline()


@dataclass
class Upstream:
    """A real HTTP/1.1 server on loopback that records everything it receives."""

    port: int = 0
    received: list[Received] = field(default_factory=list)
    status: int = 200
    reply: bytes = b'{"ok": true}'
    delay: float = 0.0
    download_bytes: int = 0  # > 0: GET /download answers with this many bytes, streamed
    keep_bodies: bool = True
    body_sizes: list[int] = field(default_factory=list)

    def start(self) -> Upstream:
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def handle_one(self) -> None:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    body = _read_chunked(self.rfile)
                else:
                    length = int(self.headers.get("Content-Length") or 0)
                    body = b""
                    if not upstream.keep_bodies:
                        remaining, size = length, 0
                        while remaining:
                            chunk = self.rfile.read(min(remaining, 1 << 20))
                            if not chunk:
                                break
                            remaining -= len(chunk)
                            size += len(chunk)
                        upstream.body_sizes.append(size)
                    else:
                        body = self.rfile.read(length) if length else b""
                upstream.received.append(Received(self.command, self.path, list(self.headers.items()), body))
                if upstream.delay:
                    time.sleep(upstream.delay)
                if self.path.startswith("/download") and upstream.download_bytes:
                    self.send_response(200)
                    self.send_header("Content-Length", str(upstream.download_bytes))
                    self.end_headers()
                    block = b"d" * (1 << 20)
                    remaining = upstream.download_bytes
                    while remaining:
                        piece = block[: min(remaining, len(block))]
                        self.wfile.write(piece)
                        remaining -= len(piece)
                    return
                self.send_response(upstream.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(upstream.reply)))
                self.end_headers()
                self.wfile.write(upstream.reply)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = handle_one

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
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


def base_config(upstream_url: str, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "listen": f"127.0.0.1:{free_port()}",
        "upstream": upstream_url,
        "admin_listen": f"127.0.0.1:{free_port()}",
        "secrets": {
            "sendcloud": {"env": "E2E_SECRET"},
            "sendcloud-old": {"env": "E2E_OLD_SECRET"},
        },
        "routes": [
            {
                "name": "sendcloud",
                "path": ["/webhooks/sendcloud", "/index.php/webhooks/sendcloud"],
                "secrets": ["sendcloud", "sendcloud-old"],
                "max_body": "64KiB",
            },
            {
                "name": "query-routed",
                "path": "/index.php",
                "query": {"route": "sendcloud/webhook"},
                "secrets": ["sendcloud"],
            },
        ],
        "log_format": "json",
    }
    config.update(overrides)
    return config


class Sigwarden:
    """The real `sigwarden run` process with a config written to a temporary folder."""

    def __init__(self, tmp_path: Path, config: dict[str, Any], env: dict[str, str] | None = None):
        self.tmp_path = tmp_path
        self.config = config
        self.config_path = tmp_path / "config.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log_path = tmp_path / "sigwarden.log"
        self.env = {**os.environ, "E2E_SECRET": SECRET, "E2E_OLD_SECRET": OLD_SECRET, **(env or {})}
        self.process: subprocess.Popen | None = None

    @property
    def port(self) -> int:
        return int(self.config["listen"].rsplit(":", 1)[1])

    @property
    def admin_port(self) -> int | None:
        admin = self.config.get("admin_listen")
        return int(admin.rsplit(":", 1)[1]) if admin else None

    def command(self) -> list[str]:
        return [sys.executable, "-m", "sigwarden", "run", "-c", str(self.config_path)]

    def start(self, wait: bool = True) -> Sigwarden:
        self.log_file = open(self.log_path, "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            self.command(), env=self.env, stdout=self.log_file, stderr=subprocess.STDOUT, cwd=REPO
        )
        if wait:
            wait_for_port(self.port, process=self.process)
            if self.admin_port:
                self.wait_ready()
        return self

    def wait_ready(self, deadline: float = 10.0) -> None:
        """Poll /readyz until it answers 200 (the proxy listens and the config is loaded)."""

        def ready() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"sigwarden exited with {self.process.returncode}:\n{self.logs()[-2000:]}")
            try:
                return http_request(self.admin_port or 0, "GET", "/readyz", timeout=1.0)[0] == 200
            except OSError:
                return False

        wait_until(ready, deadline, interval=0.02)

    def stop(self, timeout: float = 20.0) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log_file.close()
        return self.process.returncode

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_lines(self) -> list[dict[str, Any]]:
        lines = []
        for line in self.logs().splitlines():
            try:
                lines.append(json.loads(line))
            except ValueError:
                continue
        return lines

    def rss_bytes(self) -> int:
        assert self.process is not None
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | list[tuple[str, str]] | None = None,
        timeout: float = 10.0,
    ) -> tuple[int, dict[str, str], bytes]:
        return http_request(self.port, method, path, body, headers, timeout)


def http_request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | list[tuple[str, str]] | None = None,
    timeout: float = 10.0,
) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        pairs = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
        names = {name.lower() for name, _ in pairs}
        for name, value in pairs:
            connection.putheader(name, value)
        if body is not None and "content-length" not in names and "transfer-encoding" not in names:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def raw_exchange(port: int, data: bytes, timeout: float = 5.0, half_close: bool = False) -> bytes:
    """Send raw bytes, read until the server closes or goes quiet."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except (TimeoutError, ConnectionResetError):
            pass
        return b"".join(chunks)


def signed_headers(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {"Content-Type": "application/json", "Sendcloud-Signature": sign(body, secret)}
