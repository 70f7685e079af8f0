"""Memory scenarios: many oversized protected bodies at once, and a large upload and download passed through."""

from __future__ import annotations

import json
import selectors
import socket
import statistics
import threading
import time
from typing import Any

from bench.servers import MIB, RssSampler


def _response_complete(data: bytes) -> tuple[int, bytes] | None:
    """(status, body) once a whole HTTP/1.1 response with Content-Length has arrived."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = data[:end].decode("latin-1").split("\r\n")
    status = int(head[0].split()[1])
    length = 0
    for line in head[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    body = data[end + 4 : end + 4 + length]
    return (status, body) if len(body) == length else None


def _oversized_client(
    port: int, path: str, declared: int, stream: int, signature: str, barrier: threading.Barrier, deadline: float
) -> dict[str, Any]:
    """Declare `declared` bytes, stream up to `stream` of them, and time the answer."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        f"Sendcloud-Signature: {signature}\r\nContent-Length: {declared}\r\n\r\n"
    ).encode()
    chunk = b"x" * 65536
    result: dict[str, Any] = {"status": None, "error": None, "seconds": None, "sent_bytes": 0}
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        barrier.wait(10)
        started = time.perf_counter()
        sock.sendall(head)
        sock.setblocking(False)
        selector = selectors.DefaultSelector()
        selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
        answer = bytearray()
        writing, reading = True, True
        try:
            while (writing or reading) and time.perf_counter() < started + deadline:
                for _, mask in selector.select(0.5):
                    if mask & selectors.EVENT_READ and reading:
                        try:
                            data = sock.recv(65536)
                        except (ConnectionResetError, BlockingIOError):
                            data = b""
                        answer += data
                        complete = _response_complete(bytes(answer))
                        if complete and result["status"] is None:
                            result["seconds"] = round(time.perf_counter() - started, 4)
                            result["status"] = complete[0]
                            try:
                                result["error"] = json.loads(complete[1]).get("error")
                            except ValueError:
                                result["error"] = "not json"
                        if complete or not data:
                            reading = False
                    if mask & selectors.EVENT_WRITE and writing:
                        try:
                            result["sent_bytes"] += sock.send(chunk[: stream - result["sent_bytes"]])
                        except (BrokenPipeError, ConnectionResetError):
                            writing = False
                        if result["sent_bytes"] >= stream:
                            writing = False
                    events = (selectors.EVENT_READ if reading else 0) | (selectors.EVENT_WRITE if writing else 0)
                    if events:
                        selector.modify(sock, events)
        finally:
            selector.close()
    return result


def oversized_flood(
    port: int,
    pid: int,
    path: str,
    signature: str,
    clients: int = 20,
    declared: int = 50 * MIB,
    stream: int = 4 * MIB,
) -> dict[str, Any]:
    """`clients` at once each declare `declared` bytes on a protected route and stream `stream` of them."""
    barrier = threading.Barrier(clients)
    results: list[dict[str, Any]] = [{} for _ in range(clients)]

    def client(index: int) -> None:
        try:
            results[index] = _oversized_client(port, path, declared, stream, signature, barrier, 20.0)
        except Exception as error:  # reported, not raised: one broken client must not hide the others
            results[index] = {"status": None, "error": f"client failed: {error!r}", "seconds": None}

    with RssSampler(pid) as rss:
        threads = [threading.Thread(target=client, args=(index,)) for index in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    times = [row["seconds"] for row in results if row.get("seconds") is not None]
    return {
        "clients": clients,
        "declared_bytes": declared,
        "streamed_bytes": stream,
        "statuses": sorted({str(row.get("status")) for row in results}),
        "errors": sorted({str(row.get("error")) for row in results}),
        "all_json_413": all(row.get("status") == 413 and row.get("error") == "body_too_large" for row in results),
        "answer_seconds_median": round(statistics.median(times), 4) if times else None,
        "answer_seconds_max": round(max(times), 4) if times else None,
        "sent_bytes_total": sum(row.get("sent_bytes", 0) for row in results),
        **rss.summary(),
    }


def upload(port: int, pid: int, path: str, size: int, sink_received: list[int]) -> dict[str, Any]:
    """One POST of `size` bytes (Content-Length) through an unprotected path; the upstream counts them."""
    before = len(sink_received)
    chunk = b"u" * MIB
    with RssSampler(pid) as rss:
        started = time.perf_counter()
        with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
            sock.sendall(
                f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/octet-stream\r\n"
                f"Content-Length: {size}\r\n\r\n".encode()
            )
            sent = 0
            while sent < size:
                piece = chunk[: size - sent]
                sock.sendall(piece)
                sent += len(piece)
            answer = bytearray()
            while (complete := _response_complete(bytes(answer))) is None:
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
        seconds = time.perf_counter() - started
    received = sink_received[before] if len(sink_received) > before else None
    return {
        "bytes": size,
        "status": complete[0] if complete else None,
        "upstream_received_bytes": received,
        "seconds": round(seconds, 3),
        "mb_per_s": round(size / MIB / seconds, 1),
        **rss.summary(),
    }


def download(port: int, pid: int, path: str, size: int) -> dict[str, Any]:
    """One GET of a `size`-byte file through an unprotected path, read to the end."""
    with RssSampler(pid) as rss:
        started = time.perf_counter()
        with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
            data = bytearray()
            while b"\r\n\r\n" not in data:
                piece = sock.recv(65536)
                if not piece:
                    break
                data += piece
            head, _, rest = bytes(data).partition(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1]) if head else None
            received = len(rest)
            while received < size:
                piece = sock.recv(1 << 20)
                if not piece:
                    break
                received += len(piece)
        seconds = time.perf_counter() - started
    return {
        "bytes": size,
        "status": status,
        "received_bytes": received,
        "seconds": round(seconds, 3),
        "mb_per_s": round(size / MIB / seconds, 1),
        **rss.summary(),
    }
