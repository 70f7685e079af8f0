"""Helpers for the review suite: an upstream that misbehaves on purpose, and raw clients on one connection.

`StatusReflectingUpstream` answers `/reflect?status=N` with the status N and no
body, and keeps reading HTTP on the same connection whatever it answered, as
an application with a status-reflecting endpoint behind a keep-alive server
does. It records every request head it reads, raw. If sigwarden ever let a
client talk to it past sigwarden's own parsing (a tunnel after a 101), the
smuggled request shows up here.
"""

from __future__ import annotations

import re
import socket
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from loopback_server import LoopbackServer

_BLANK_LINE = re.compile(rb"\r?\n\r?\n")


@dataclass
class StatusReflectingUpstream(LoopbackServer):
    heads: list[bytes] = field(default_factory=list)
    connections: int = 0

    def _serve(self, sock: socket.socket, number: int) -> None:
        buffer = b""
        try:
            while True:
                match = _BLANK_LINE.search(buffer)
                while match is None:
                    data = sock.recv(65536)
                    if not data:
                        return
                    buffer += data
                    match = _BLANK_LINE.search(buffer)
                head, buffer = buffer[: match.start()], buffer[match.end() :]
                length = 0
                for line in head.split(b"\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip() or b"0")
                while len(buffer) < length:
                    data = sock.recv(65536)
                    if not data:
                        return
                    buffer += data
                buffer = buffer[length:]
                with self.lock:
                    self.heads.append(head)
                target = head.split(b"\r\n", 1)[0].split(b" ")[1].decode("latin-1")
                query = parse_qs(urlsplit(target).query)
                status = int(query.get("status", ["200"])[0])
                if status == 101:
                    sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\n" + b"".join(query_headers(query)) + b"\r\n")
                else:
                    sock.sendall(b"HTTP/1.1 %d Answer\r\nContent-Length: 2\r\n\r\nok" % status)
        except OSError:
            return
        finally:
            sock.close()

    def received(self, deadline: float = 1.0) -> list[bytes]:
        """The heads once no new one has arrived for a short while (bounded by `deadline`)."""
        end = time.monotonic() + deadline
        seen = -1
        while time.monotonic() < end:
            with self.lock:
                count = len(self.heads)
            if count == seen:
                break
            seen = count
            time.sleep(0.1)
        with self.lock:
            return list(self.heads)

    def clear(self) -> None:
        with self.lock:
            self.heads.clear()


def query_headers(query: dict[str, list[str]]) -> list[bytes]:
    """Response headers named by `?header=Name:value` (several allowed)."""
    return [value.encode("latin-1") + b"\r\n" for value in query.get("header", [])]


def converse(port: int, steps: list[bytes], timeout: float = 5.0) -> list[bytes]:
    """On one connection: send each step, then read what arrives until quiet for a moment; one result per step."""
    results = []
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        for step in steps:
            try:
                sock.sendall(step)
            except OSError:
                results.append(b"")
                continue
            received = b""
            end = time.monotonic() + timeout
            sock.settimeout(0.3)
            while time.monotonic() < end:
                try:
                    chunk = sock.recv(65536)
                except TimeoutError:
                    if received:
                        break
                    continue
                except OSError:
                    break
                if not chunk:
                    break
                received += chunk
            results.append(received)
    return results
