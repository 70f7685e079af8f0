"""Slow clients, silent and unreachable upstreams, and TLS upstreams on loopback for the limits tests.

Every wait has a deadline; sleeps only pace a deliberately slow client.
"""

from __future__ import annotations

import contextlib
import datetime
import http.server
import json
import select
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import Received, Sigwarden, base_config

# -- raw clients -----------------------------------------------------------------


def connect(port: int, timeout: float = 10.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def read_until_closed(sock: socket.socket, deadline: float = 15.0) -> tuple[bytes, float, bool]:
    """Everything the server sends until it closes: (data, seconds it took, closed before the deadline)."""
    started = time.monotonic()
    end = started + deadline
    chunks = []
    while True:
        remaining = end - time.monotonic()
        if remaining <= 0:
            return b"".join(chunks), time.monotonic() - started, False
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return b"".join(chunks), time.monotonic() - started, True
        if not chunk:
            return b"".join(chunks), time.monotonic() - started, True
        chunks.append(chunk)


def read_response(sock: socket.socket, deadline: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response with a Content-Length body from a keep-alive socket."""
    end = time.monotonic() + deadline
    data = b""
    while b"\r\n\r\n" not in data:
        data += _recv_some(sock, end)
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        rest += _recv_some(sock, end)
    return status, headers, rest[:length]


def _recv_some(sock: socket.socket, end: float) -> bytes:
    remaining = end - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("no complete response before the deadline")
    sock.settimeout(remaining)
    chunk = sock.recv(65536)
    if not chunk:
        raise ConnectionError("closed before a complete response")
    return chunk


def is_closed_by_peer(sock: socket.socket, wait: float) -> bool:
    """True when the peer closes the connection within `wait` seconds (without sending anything)."""
    readable, _, _ = select.select([sock], [], [], wait)
    if not readable:
        return False
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except ConnectionResetError:
        return True


def json_error(answer: bytes) -> tuple[int, str]:
    """(status, error code) of one of sigwarden's own JSON answers."""
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert b"content-type: application/json" in head.lower(), head
    return status, json.loads(body)["error"]


def refused(answer: tuple[int, dict[str, str], bytes]) -> tuple[int, str]:
    """(status, error code) of a JSON refusal from `Sigwarden.request`, which reveals no version or address."""
    status, headers, body = answer
    assert headers["content-type"] == "application/json"
    assert "mitmproxy" not in body.decode().lower() and "127.0.0.1" not in body.decode()
    return status, json.loads(body)["error"]


def vm_rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def start_module_sigwarden(folder: Path, upstream_url: str, env: dict[str, str] | None = None, **overrides: Any):
    return Sigwarden(folder, base_config(upstream_url, **overrides), env).start()


# -- upstreams that misbehave ------------------------------------------------------------


@dataclass
class SilentServer:
    """Accepts connections and reads requests, but never answers; notes when sigwarden hangs up."""

    port: int = 0
    received: bytearray = field(default_factory=bytearray)
    connections: int = 0
    closed_by_peer: threading.Event = field(default_factory=threading.Event)

    def start(self) -> SilentServer:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        threading.Thread(target=self._serve, daemon=True).start()
        return self

    def _serve(self) -> None:
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        with conn:
            while True:
                try:
                    chunk = conn.recv(65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    self.closed_by_peer.set()
                    return
                self.received += chunk

    def stop(self) -> None:
        self.stopping = True
        self.sock.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextlib.contextmanager
def unanswered_port() -> Iterator[int]:
    """A loopback port whose SYNs go unanswered, so that a connect hangs until the client gives up.

    A listener with backlog 0 whose accept queue is already full (connections it never accepts):
    Linux then drops further SYNs instead of refusing them, exactly like a host that does not answer.
    Fillers are added until one no longer completes, so the kernel's exact backlog rule does not matter.
    """
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers: list[socket.socket] = []
    try:
        for _ in range(16):
            filler = socket.socket()
            filler.setblocking(False)
            fillers.append(filler)
            if filler.connect_ex(("127.0.0.1", port)) not in (0, 115):  # 115: EINPROGRESS
                raise RuntimeError("could not fill the accept queue")
            _, writable, _ = select.select([], [filler], [], 0.5)
            if not writable:
                break  # this SYN went unanswered: the queue is full
        else:
            raise RuntimeError("the accept queue never filled")
        probe = socket.socket()
        probe.settimeout(0.5)
        try:
            probe.connect(("127.0.0.1", port))
        except TimeoutError:
            pass
        else:
            raise RuntimeError("a connect to the full listener still succeeded")
        finally:
            probe.close()
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


# -- TLS --------------------------------------------------------------------------------


@dataclass
class Pki:
    """A CA and a server certificate signed by it, as PEM files."""

    ca_file: Path
    cert_file: Path
    key_file: Path


def make_pki(folder: Path, names: list[str], ca_name: str = "sigwarden test CA") -> Pki:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ca_name)])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_subject)
        .issuer_name(ca_subject)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    alternative_names: list[x509.GeneralName] = []
    for name in names:
        try:
            import ipaddress

            alternative_names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alternative_names.append(x509.DNSName(name))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(alternative_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    pki = Pki(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    pki.ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    pki.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pki.key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return pki


@dataclass
class TlsUpstream:
    """An HTTPS server on loopback that records the requests it receives and the SNI it was sent."""

    pki: Pki
    port: int = 0
    received: list[Received] = field(default_factory=list)
    server_names: list[str | None] = field(default_factory=list)
    handshake_failures: int = 0

    def start(self) -> TlsUpstream:
        upstream = self
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.pki.cert_file, self.pki.key_file)

        def remember_sni(sock: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext) -> None:
            upstream.server_names.append(server_name)

        context.sni_callback = remember_sni  # type: ignore[assignment]

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def handle_one(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                upstream.received.append(Received(self.command, self.path, list(self.headers.items()), body))
                reply = b'{"tls": true}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            do_GET = do_POST = handle_one

            def log_message(self, format: str, *args: object) -> None:
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def get_request(self):  # type: ignore[no-untyped-def]
                sock, address = self.socket.accept()
                sock.settimeout(5)
                try:
                    return context.wrap_socket(sock, server_side=True), address
                except (ssl.SSLError, OSError):
                    upstream.handshake_failures += 1
                    sock.close()
                    raise

            def handle_error(self, request, client_address):  # type: ignore[no-untyped-def]
                pass

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
