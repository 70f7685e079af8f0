"""Helpers for the core end-to-end tests: raw HTTP exchanges, connection counting, memory sampling."""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from harness import Upstream


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    raw: bytes

    def header(self, name: str) -> str | None:
        values = [value for key, value in self.headers if key.lower() == name.lower()]
        return values[0] if values else None

    def json(self) -> dict:
        return json.loads(self.body)


def parse_answer(raw: bytes) -> Answer:
    """The last complete HTTP/1.1 answer in `raw` (after any 100 Continue)."""
    head, _, body = raw.partition(b"\r\n\r\n")
    while head.startswith(b"HTTP/1.1 100"):
        head, _, body = body.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = [(name.strip(), value.strip()) for name, _, value in (line.partition(":") for line in lines[1:])]
    length = next((int(value) for name, value in headers if name.lower() == "content-length"), None)
    return Answer(status, headers, body[:length] if length is not None else body, raw)


def read_answer(sock: socket.socket, deadline: float = 10.0) -> Answer:
    """Read one answer with a Content-Length (sigwarden's own, or the test upstream's)."""
    end = time.monotonic() + deadline
    data = b""
    while time.monotonic() < end:
        if b"\r\n\r\n" in data:
            answer = parse_answer(data)
            length = answer.header("content-length")
            if answer.status != 100 and length is not None and len(answer.body) >= int(length):
                return answer
        sock.settimeout(max(0.01, end - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        if not chunk:
            break
        data += chunk
    if b"\r\n\r\n" in data:
        return parse_answer(data)
    raise TimeoutError(f"no complete answer before the deadline; got {data[:200]!r}")


def exchange(port: int, data: bytes, deadline: float = 10.0) -> Answer:
    with socket.create_connection(("127.0.0.1", port), timeout=deadline) as sock:
        sock.sendall(data)
        return read_answer(sock, deadline)


def request_bytes(
    method: str, target: str, body: bytes = b"", headers: list[tuple[str, str]] | dict[str, str] | None = None
) -> bytes:
    pairs = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    names = {name.lower() for name, _ in pairs}
    if "host" not in names:
        pairs.insert(0, ("Host", "shop.example"))
    if "content-length" not in names and "transfer-encoding" not in names and (body or method in ("POST", "PUT")):
        pairs.append(("Content-Length", str(len(body))))
    head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{name}: {value}\r\n" for name, value in pairs) + "\r\n"
    return head.encode("latin-1") + body


def chunked(body: bytes, size: int) -> bytes:
    pieces = [body[index : index + size] for index in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n"


def readable(sock: socket.socket, timeout: float = 0.0) -> bool:
    ready, _, _ = select.select([sock], [], [], timeout)
    return bool(ready)


@contextmanager
def counted_connections(upstream: Upstream) -> Iterator[list[tuple[str, int]]]:
    """Record every connection the upstream server accepts while the block runs."""
    accepted: list[tuple[str, int]] = []
    server = upstream.server
    original = server.verify_request

    def verify_request(request, client_address):  # type: ignore[no-untyped-def]
        accepted.append(client_address)
        return original(request, client_address)

    server.verify_request = verify_request  # type: ignore[method-assign]
    try:
        yield accepted
    finally:
        server.verify_request = original  # type: ignore[method-assign]


def rss_of(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


class PeakMemory:
    """Samples a process's RSS in a thread; `peak` is the highest seen."""

    def __init__(self, pid: int, interval: float = 0.02):
        self.pid, self.interval = pid, interval
        self.peak = rss_of(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_of(self.pid))
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_of(self.pid))


def closed_port() -> int:
    """A loopback port with nothing listening (bound and released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
