"""The admin listener (SPEC §5): /healthz, /readyz and /metrics on a port of its own; it never proxies.

A deliberately small HTTP/1.1 server on asyncio streams: one request per
connection, heads bounded in size and time, only GET and HEAD.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from .logs import log_event

_MAX_HEAD_BYTES = 8192
_HEAD_TIMEOUT = 5.0
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


class AdminServer:
    """Serves the process's health, readiness and metrics from the callables it is given."""

    def __init__(
        self,
        readiness: Callable[[], tuple[bool, dict[str, Any]]],
        metrics: Callable[[], tuple[bytes, str]],
    ) -> None:
        self.readiness = readiness
        self.metrics = metrics
        self.server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> None:
        self.server = await asyncio.start_server(self._handle, host, port, reuse_address=True)

    @property
    def port(self) -> int | None:
        if self.server is None or not self.server.sockets:
            return None
        return self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None

    def answer(self, method: str, target: str) -> tuple[int, str, bytes]:
        """(status, content type, body) for one admin request."""
        path = target.split("?", 1)[0]
        if method not in ("GET", "HEAD"):
            return _json(405, {"error": "method_not_allowed", "message": "The admin endpoints answer GET only."})
        if path == "/healthz":
            return _json(200, {"status": "ok"})
        if path == "/readyz":
            ready, details = self.readiness()
            return _json(200 if ready else 503, details)
        if path == "/metrics":
            body, content_type = self.metrics()
            return 200, content_type, body
        return _json(404, {"error": "not_found", "message": "Try /healthz, /readyz or /metrics."})

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _HEAD_TIMEOUT)
            except asyncio.LimitOverrunError:
                head = b""
            request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
            parts = request_line.split(" ")
            if len(head) > _MAX_HEAD_BYTES or len(parts) != 3 or not parts[2].startswith("HTTP/1."):
                status, content_type, body = _json(400, {"error": "bad_request", "message": "Malformed request."})
                method = "GET"
            else:
                method = parts[0]
                status, content_type, body = self.answer(method, parts[1])
            headers = (
                f"HTTP/1.1 {status} {_REASONS.get(status, 'OK')}\r\n"
                f"Content-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\n"
                "Cache-Control: no-store\r\n"
                "Connection: close\r\n\r\n"
            )
            writer.write(headers.encode() + (b"" if method == "HEAD" else body))
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass
        except Exception as error:  # the admin port must never take the process down
            log_event("admin_error", logging.WARNING, exception=type(error).__name__)
        finally:
            writer.close()


def _json(status: int, document: dict[str, Any]) -> tuple[int, str, bytes]:
    return status, "application/json", json.dumps(document).encode()
