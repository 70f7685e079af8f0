"""Helpers for the adversarial suite: a raw recording upstream, a lenient "PHP view", raw clients.

The upstream here is deliberately the most credulous application imaginable: it
records the raw bytes of every request head it receives, frames bodies by the
most lenient reading of those bytes (any CR or LF ends a line, a folded line is
a header of its own, `Transfer-Encoding: chunked` anywhere wins), and sees header
names the way PHP's `$_SERVER` does (upper case, every non-alphanumeric character
read as `_`). If sigwarden ever forwards something that such an application
could read as a forged verdict or a smuggled second request, these helpers see it.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import socket
import time
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote_to_bytes

from harness import OLD_SECRET, SECRET, Sigwarden, base_config
from loopback_server import LoopbackServer

SECRETS = {"sendcloud": SECRET, "sendcloud-old": OLD_SECRET}
VERDICT_VARIABLES = ("HTTP_X_WEBHOOK_VERIFIED", "HTTP_X_WEBHOOK_KEY_ID", "HTTP_X_WEBHOOK_VERIFY_ERROR")
# Any CR, LF or CRLF ends a line for the most lenient parsers (Python's email parser, some CGI glue).
_LENIENT_BREAK = re.compile(rb"\r\n|\r|\n")
_LENIENT_BLANK_LINE = re.compile(rb"(?:\r\n|\r(?!\n)|\n){2}")


def sign(body: bytes, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def server_variable(name: bytes | str) -> str:
    """The `$_SERVER` key PHP (CLI server, FPM behind most web servers) makes of a header name."""
    text = name.decode("latin-1") if isinstance(name, bytes) else name
    return "HTTP_" + re.sub(r"[^A-Z0-9]", "_", text.strip().upper())


def lenient_headers(head: bytes) -> list[tuple[str, str]]:
    """Every (`$_SERVER` key, value) some lenient parser could read from a raw request head."""
    found = []
    for line in _LENIENT_BREAK.split(head)[1:]:
        line = line.lstrip(b" \t")
        if b":" not in line:
            continue
        name, value = line.split(b":", 1)
        found.append((server_variable(name), value.strip().decode("latin-1")))
    return found


@dataclass
class Exchange:
    """One request as the upstream received it."""

    head: bytes  # request line and header lines, raw, without the blank line
    body: bytes
    connection: int  # which accepted TCP connection it came on

    @property
    def request_line(self) -> bytes:
        return _LENIENT_BREAK.split(self.head, maxsplit=1)[0]

    @property
    def method(self) -> str:
        return self.request_line.split(b" ")[0].decode("latin-1")

    @property
    def raw_target(self) -> bytes:
        parts = self.request_line.split(b" ")
        return parts[1] if len(parts) > 1 else b""

    @property
    def target(self) -> str:
        parts = self.request_line.split(b" ")
        return parts[1].decode("latin-1") if len(parts) > 1 else ""

    def server(self) -> list[tuple[str, str]]:
        return lenient_headers(self.head)

    def header(self, variable: str) -> str | None:
        values = [value for key, value in self.server() if key == variable]
        return values[0] if values else None

    def verdict(self) -> list[tuple[str, str]]:
        """The verdict headers this request carried, as the most lenient application reads them."""
        return [(key, value) for key, value in self.server() if key in VERDICT_VARIABLES]


def _lenient_length(head: bytes) -> tuple[str, int]:
    headers = lenient_headers(head)
    if any("chunked" in value.lower() for key, value in headers if key == "HTTP_TRANSFER_ENCODING"):
        return "chunked", 0
    for key, value in headers:
        if key == "HTTP_CONTENT_LENGTH":
            try:
                return "length", max(0, int(value.split(",")[0].strip() or 0))
            except ValueError:
                return "length", 0
    return "length", 0


class _Connection:
    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buffer = b""

    def fill(self) -> bool:
        data = self.sock.recv(65536)
        if not data:
            return False
        self.buffer += data
        return True

    def take(self, count: int) -> bytes | None:
        while len(self.buffer) < count:
            if not self.fill():
                return None
        piece, self.buffer = self.buffer[:count], self.buffer[count:]
        return piece

    def line(self) -> bytes | None:
        while b"\n" not in self.buffer:
            if not self.fill():
                return None
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.rstrip(b"\r")

    def head(self) -> bytes | None:
        while True:
            match = _LENIENT_BLANK_LINE.search(self.buffer)
            if match:
                head, self.buffer = self.buffer[: match.start()], self.buffer[match.end() :]
                return head
            if not self.fill():
                return None

    def chunked_body(self) -> bytes | None:
        body = b""
        while True:
            size_line = self.line()
            if size_line is None:
                return None
            try:
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
            except ValueError:
                return body
            if size == 0:
                while (trailer := self.line()) not in (b"", None):
                    del trailer
                return body
            piece = self.take(size)
            if piece is None:
                return None
            body += piece
            self.line()


@dataclass
class RawUpstream(LoopbackServer):
    """A credulous HTTP/1.1 application on loopback that records raw request heads and counts connections."""

    status: int = 200
    exchanges: list[Exchange] = field(default_factory=list)
    connections: int = 0

    def clear(self) -> None:
        with self.lock:
            self.exchanges.clear()
            self.connections = 0
            self.status = 200

    def _serve(self, sock: socket.socket, number: int) -> None:
        connection = _Connection(sock)
        try:
            while True:
                head = connection.head()
                if head is None:
                    return
                framing, length = _lenient_length(head)
                body = connection.chunked_body() if framing == "chunked" else connection.take(length)
                with self.lock:
                    self.exchanges.append(Exchange(head, body or b"", number))
                reply = json.dumps({"upstream": "reached"}).encode()
                answer = (
                    f"HTTP/1.1 {self.status} Answer\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(reply)}\r\n\r\n"
                ).encode() + reply
                sock.sendall(answer)
                if body is None:
                    return
        except OSError:
            return
        finally:
            sock.close()

    def settled(self, deadline: float = 2.0) -> list[Exchange]:
        """The exchanges once no new one has arrived for a short while (bounded by `deadline`)."""
        end = time.monotonic() + deadline
        seen = -1
        while time.monotonic() < end:
            with self.lock:
                count = len(self.exchanges)
            if count == seen:
                break
            seen = count
            time.sleep(0.05)
        with self.lock:
            return list(self.exchanges)


# -- what an application router could make of a request target -------------------

_OVERLONG_2 = re.compile(rb"[\xc0\xc1][\x80-\xbf]")
_OVERLONG_3 = re.compile(rb"\xe0[\x80-\x9f][\x80-\xbf]")
_OVERLONG_4 = re.compile(rb"\xf0\x80[\x80-\x81][\x80-\xbf]")


def _ascii_overlongs(raw: bytes) -> bytes:
    """Overlong encodings of ASCII characters read as the characters (only the ASCII ones matter here)."""
    raw = _OVERLONG_2.sub(lambda m: bytes([((m[0][0] & 0x1F) << 6) | (m[0][1] & 0x3F)]), raw)
    raw = _OVERLONG_3.sub(lambda m: bytes([((m[0][1] & 0x3F) << 6) | (m[0][2] & 0x3F)]), raw)
    return _OVERLONG_4.sub(lambda m: bytes([((m[0][2] & 0x3F) << 6) | (m[0][3] & 0x3F)]), raw)


def _decodings(text: bytes) -> Iterator[bytes]:
    yield text
    for _ in range(4):
        decoded = unquote_to_bytes(text)
        if decoded == text:
            return
        text = decoded
        yield text
        yield _ascii_overlongs(text)


def _resolve(path: str) -> str:
    out: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if out:
                out.pop()
            continue
        out.append(segment)
    return "/" + "/".join(out)


def _raw(target: str | bytes) -> bytes:
    return target if isinstance(target, bytes) else target.encode("utf-8", "surrogateescape")


def router_readings(target: str | bytes) -> set[str]:
    """Paths (lower case) that some application router could dispatch this request target to.

    Written independently of sigwarden's paths.py, by brute force over the choices routers
    make: how often they decode, whether they cut at `?`, `#` or NUL after decoding, whether
    `\\` is a separator, whether `;params`, dot segments and trailing dots or spaces count,
    whether compatibility characters (fullwidth `／`) are folded, and case-insensitively.
    """
    raw = _raw(target)
    if raw.lower().startswith((b"http://", b"https://")):
        raw = b"/" + raw.split(b"/", 3)[3] if raw.count(b"/") >= 3 else b"/"
    raw = raw.split(b"?", 1)[0]
    readings = set()
    for decoded, fold, cut, backslash, params, resolve, trim in itertools.product(
        set(_decodings(raw)), (False, True), (False, True), (False, True), (False, True), (False, True), (False, True)
    ):
        path = decoded.decode("utf-8", "replace")
        if fold:
            path = unicodedata.normalize("NFKC", path)
        if cut:
            path = re.split(r"[?#\x00]", path)[0]
        if backslash:
            path = path.replace("\\", "/")
        if params:
            path = "/".join(segment.split(";", 1)[0] for segment in path.split("/"))
        if trim:
            path = "/".join(s if s in (".", "..") else s.rstrip(". ") for s in path.split("/"))
        path = _resolve(path) if resolve else re.sub(r"/+", "/", path).rstrip("/") or "/"
        readings.add(path.upper().lower())
    return readings


# The routes of adversarial_config: two paths, /index.php?route=…, and everything under /shop with ?route=….
PROTECTED_PATHS = frozenset({"/webhooks/sendcloud", "/index.php/webhooks/sendcloud"})


def protected_by_some_reading(target: str | bytes) -> bool:
    """True when some router could read the target as a protected route (path or query)."""
    readings = router_readings(target)
    if readings & PROTECTED_PATHS:
        return True
    # Only the front controllers the config names: `/` and `/index.php/…` reach index.php too, which is why
    # SECURITY.md tells query-routed shops to use `path_prefix` (as the /shop route here does).
    front_controller = any(reading in ("/index.php", "/shop") or reading.startswith("/shop/") for reading in readings)
    return front_controller and query_selects_webhook(target)


def query_selects_webhook(target: str | bytes) -> bool:
    """True when some reading of the query selects `route=sendcloud/webhook` (Opencart-style routing)."""
    text = _raw(target).decode("latin-1")
    query = text.split("?", 1)[1] if "?" in text else ""
    for part in re.split(r"[&;]", query):
        name, _, value = part.partition("=")
        if "route" in _name_readings(name) and "sendcloud/webhook" in _value_readings(value):
            return True
    return False


def _name_readings(name: str) -> set[str]:
    """What frameworks make of a parameter name: PHP drops leading spaces and reads `route[…]` as
    `route`; some compare without case."""
    readings = set()
    raw = name.replace("+", " ").encode("latin-1", "replace")
    for decoded in set(_decodings(raw)):
        text = decoded.decode("utf-8", "replace").lstrip(" ")
        readings |= {text, text.lower(), re.sub(r"\[.*$", "", text).lower()}
    return readings


def _value_readings(value: str) -> set[str]:
    readings = set()
    raw = value.replace("+", " ").encode("latin-1", "replace")
    for decoded in set(_decodings(raw)):
        text = decoded.decode("utf-8", "replace").lower()
        readings.add(text)
        readings.add(text.strip())
        # Opencart: preg_replace('/[^a-zA-Z0-9_\/]/', '', $route), then the controller path.
        squashed = re.sub(r"[^a-z0-9_/]", "", text)
        readings.add(squashed)
        readings.add(re.sub(r"/+", "/", squashed).strip("/"))
        readings.add(_resolve(text).lstrip("/"))
    return readings


# -- checking what reached the upstream ------------------------------------------


PATH_OVERRIDE_VARIABLES = ("HTTP_X_ORIGINAL_URL", "HTTP_X_REWRITE_URL", "HTTP_X_ORIGINAL_URI", "HTTP_X_FORWARDED_URI")


def path_overrides(server: Iterable[tuple[str, str]]) -> list[str]:
    """Paths that frameworks honouring X-Original-URL and the like would route by (origin form)."""
    return [
        re.sub(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*", "", value) or "/"
        for key, value in server
        if key in PATH_OVERRIDE_VARIABLES
    ]


def signature_verifies(exchange: Exchange, key_id: str) -> bool:
    """The body the upstream received verifies with the named secret against the signature it received."""
    given = exchange.header("HTTP_SENDCLOUD_SIGNATURE")
    secret = SECRETS.get(key_id)
    if given is None or secret is None:
        return False
    text = given.encode("latin-1").decode("utf-8", "replace").strip()
    return hmac.compare_digest(sign(exchange.body, secret).encode(), text.lower().encode())


def assert_nothing_unverified(exchanges: Iterable[Exchange]) -> None:
    """The suite's invariant: every request the upstream received is verified by us, or unprotected and unmarked.

    Verified means: the lenient view shows exactly our two verdict headers, once each, and the
    body the upstream got verifies against the signature the upstream got. Unmarked means: no
    verdict header in any lenient reading, and no router reading makes the target a protected route.
    """
    for exchange in exchanges:
        verdict = exchange.verdict()
        context = f"upstream received {exchange.head!r} + {exchange.body[:200]!r}"
        if verdict:
            keys = [key for key, _ in verdict]
            assert sorted(keys) == ["HTTP_X_WEBHOOK_KEY_ID", "HTTP_X_WEBHOOK_VERIFIED"], context
            values = dict(verdict)
            assert values["HTTP_X_WEBHOOK_VERIFIED"] == "true", context
            assert signature_verifies(exchange, values["HTTP_X_WEBHOOK_KEY_ID"]), context
        else:
            assert not protected_by_some_reading(exchange.raw_target), context
            for target in path_overrides(exchange.server()):
                assert not protected_by_some_reading(target), context


# -- raw clients ------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def error(self) -> str | None:
        try:
            return json.loads(self.body).get("error")
        except ValueError:
            return None


def parse_answers(data: bytes) -> list[Answer]:
    """Every complete HTTP/1.1 response in a byte stream (sigwarden and the upstream use Content-Length)."""
    answers = []
    while data:
        head, separator, rest = data.partition(b"\r\n\r\n")
        if not separator:
            break
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ")[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.decode("latin-1").strip().lower()] = value.decode("latin-1").strip()
        length = int(headers.get("content-length", "0"))
        if len(rest) < length:
            break
        if status != 100:  # an interim answer, not one of the client's answers
            answers.append(Answer(status, headers, rest[:length]))
        data = rest[length:]
    return answers


def exchange(
    port: int,
    data: bytes | list[bytes],
    answers: int = 1,
    wait_close: bool = False,
    half_close: bool = False,
    timeout: float = 5.0,
) -> tuple[list[Answer], bool]:
    """Send raw bytes (a list: one send each); read `answers` answers, then, with `wait_close`, until EOF.

    Returns (answers, whether the server closed the connection), bounded by `timeout` in total.
    """
    deadline = time.monotonic() + timeout
    received = b""
    closed = False
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        for piece in [data] if isinstance(data, bytes) else data:
            try:
                sock.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                break
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        while True:
            parsed = parse_answers(received)
            if len(parsed) >= answers and not wait_close:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            sock.settimeout(remaining)
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            received += chunk
    return parse_answers(received), closed


def request_bytes(
    method: str,
    target: str | bytes,
    headers: Iterable[tuple[str | bytes, str | bytes]] = (),
    body: bytes = b"",
    version: str = "HTTP/1.1",
    length: bool = True,
) -> bytes:
    """A request head and body, byte for byte as given (add Content-Length unless `length` is False)."""

    def as_bytes(value: str | bytes) -> bytes:
        return value if isinstance(value, bytes) else value.encode("utf-8", "surrogateescape")

    lines = [as_bytes(method) + b" " + as_bytes(target) + b" " + as_bytes(version)]
    lines += [as_bytes(name) + b": " + as_bytes(value) for name, value in headers]
    if length:
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


WEBHOOK_BODY = json.dumps(
    {"action": "parcel_status_changed", "timestamp": 1764320000000, "parcel": {"id": 4711, "status": "delivered"}}
).encode()


def signed(body: bytes = WEBHOOK_BODY, secret: str = SECRET) -> list[tuple[str, str]]:
    return [("Host", "shop.example"), ("Content-Type", "application/json"), ("Sendcloud-Signature", sign(body, secret))]


def forged(body: bytes = WEBHOOK_BODY) -> list[tuple[str, str]]:
    return [("Host", "shop.example"), ("Content-Type", "application/json"), ("Sendcloud-Signature", "0" * 64)]


def adversarial_config(upstream_url: str, **overrides: object) -> dict:
    """The e2e base config plus a front-controller route (`path_prefix` with `query`, as SECURITY.md advises)."""
    config = base_config(upstream_url, **overrides)
    config["routes"] = [
        *config["routes"],
        {
            "name": "front-controller",
            "path_prefix": "/shop",
            "query": {"route": "sendcloud/webhook"},
            "secrets": ["sendcloud"],
        },
    ]
    return config


@dataclass
class Guarded:
    """A real `sigwarden run` in front of a RawUpstream, for one test module."""

    sigwarden: Sigwarden
    upstream: RawUpstream

    @property
    def port(self) -> int:
        return self.sigwarden.port

    def send(self, data: bytes | list[bytes], **options: Any) -> tuple[list[Answer], bool, list[Exchange]]:
        """Send raw bytes; (answers, closed, what the upstream received), with the suite's invariant checked."""
        answers, closed = exchange(self.port, data, **options)
        exchanges = self.upstream.settled()
        assert_nothing_unverified(exchanges)
        return answers, closed, exchanges


def start_guarded(folder: Path, **overrides: object) -> Guarded:
    upstream = RawUpstream().start()
    process = Sigwarden(folder, adversarial_config(upstream.url, **overrides)).start()  # waits for the port
    return Guarded(process, upstream)


def stop_guarded(guarded: Guarded) -> None:
    guarded.sigwarden.stop()
    guarded.upstream.stop()
