"""Secrets stay secret: an adversarial run, then every output of sigwarden is searched for every secret.

Secrets come from the environment, a file and an inline value. The mix sends genuine
and forged webhooks, Authorization and cookie values, distinctive bodies and queries,
malformed heads that quote all of them, and clients that hang up mid-head and
mid-body, then takes the upstream away. Searched afterwards: everything sigwarden
printed (stdout and stderr), every answer it sent, `sigwarden check`'s output, and
the admin endpoints when they answer. No secret, no signature sent or computed, no
credential and no body or query content may appear in any of it.
"""

from __future__ import annotations

import base64
import socket
import subprocess
import sys

import pytest
from mitmproxy.version import VERSION

from adversarial_support import exchange
from harness import OLD_SECRET, REPO, SECRET, Sigwarden, Upstream, base_config, sign

pytestmark = pytest.mark.e2e

FILE_SECRET = "file-secret-canary-7f3a9b2c1d0e"
INLINE_SECRET = "inline-secret-canary-5e6f7a8b9c"
ALL_SECRETS = {"sendcloud": SECRET, "sendcloud-old": OLD_SECRET, "filed": FILE_SECRET, "inline": INLINE_SECRET}
BEARER = "Bearer tok-canary-0a1b2c3d4e5f6a7b"
BASIC = "Basic " + base64.b64encode(b"shopuser:pass-canary-99f1e2").decode()
COOKIE = "session=cookie-canary-4d5e6f7a8b"
API_KEY = "apikey-canary-1c2d3e4f5a"
BODY_CANARY = "body-canary-91c2e4f7a3"
QUERY_CANARY = "query-canary-6b7c8d9e0f"
BODIES = [
    f'{{"action": "parcel_status_changed", "timestamp": 1764320000000, "note": "{BODY_CANARY}-1"}}'.encode(),
    f'{{"action": "integration_updated", "note": "{BODY_CANARY}-2"}}'.encode(),
    f"not json at all {BODY_CANARY}-3".encode(),
]
CREDENTIALS = [
    ("Authorization", BEARER),
    ("Authorization", BASIC),
    ("Proxy-Authorization", BASIC),
    ("Cookie", COOKIE),
    ("X-Api-Key", API_KEY),
]


def config(upstream_url: str, folder, log_level: str, log_format: str) -> dict:
    secret_file = folder / "filed.key"
    secret_file.write_text(FILE_SECRET + "\n")
    result = base_config(upstream_url, log_level=log_level, log_format=log_format)
    result["secrets"] = {
        "sendcloud": {"env": "E2E_SECRET"},
        "sendcloud-old": {"env": "E2E_OLD_SECRET"},
        "filed": {"file": str(secret_file)},
        "inline": {"value": INLINE_SECRET},
    }
    result["routes"] += [
        {"name": "filed", "path": "/webhooks/filed", "secrets": ["filed"], "max_body": "4KiB"},
        {"name": "inline", "path": "/webhooks/inline", "secrets": ["inline"]},
    ]
    return result


def head(method: str, target: str, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: shop.example", *(f"{name}: {value}" for name, value in headers)]
    return "\r\n".join(lines).encode() + b"\r\n\r\n"


def hang_up(port: int, data: bytes) -> None:
    """Send part of a request and close the connection without waiting for an answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        try:
            while sock.recv(65536):
                pass
        except OSError:
            pass


class Run:
    def __init__(self, port: int):
        self.port = port
        self.answers: list[bytes] = []
        self.sent_signatures: set[str] = set()

    def send(self, data: bytes, **options) -> None:
        answers, _ = exchange(self.port, data, wait_close=options.pop("wait_close", False), **options)
        self.answers += [answer.body + repr(answer.headers).encode() for answer in answers]

    def signature(self, body: bytes, secret: str) -> str:
        value = sign(body, secret)
        self.sent_signatures.add(value)
        return value


def adversarial_mix(run: Run) -> None:
    routes = [("/webhooks/sendcloud", SECRET), ("/webhooks/filed", FILE_SECRET), ("/webhooks/inline", INLINE_SECRET)]
    for (target, secret), body in zip(routes * 2, BODIES * 2, strict=False):
        for credential in CREDENTIALS:
            good = run.signature(body, secret)
            wrong = run.signature(body, OLD_SECRET if secret != OLD_SECRET else SECRET)
            for signature in (good, wrong, good.upper(), "0" * 64, good[:40]):
                headers = [("Sendcloud-Signature", signature), credential, ("Content-Length", str(len(body)))]
                run.send(head("POST", f"{target}?token={QUERY_CANARY}", headers) + body)
    body = BODIES[0]
    good = run.signature(body, SECRET)
    secrets_line = f"Sendcloud-Signature: {good}"
    credentials = [f"{name}: {value}" for name, value in CREDENTIALS]
    base = ["POST /webhooks/sendcloud HTTP/1.1", "Host: shop", secrets_line, *credentials]
    raw_heads = [
        # malformed heads that mitmproxy would quote in its error messages
        "\r\n".join(base + ["X-Fold: a", " folded", f"Content-Length: {len(body)}"]),
        "\r\n".join(base + [f"X-Cr: a\r{BEARER}", f"Content-Length: {len(body)}"]),
        "\r\n".join(base + [f"Content-Length: {len(body)}", "Transfer-Encoding: chunked"]),
        "\r\n".join(base + [f"Content-Length: +{len(body)}"]),
        "\r\n".join([f"POST /webhooks/sendcloud?{QUERY_CANARY} HTTP/9", *base[1:], "Content-Length: 1"]),
        "\r\n".join(base + [f"Bad Name: {BEARER}", f"Content-Length: {len(body)}"]),
        "\r\n".join([f"{BEARER} {good} {BODY_CANARY}", *base[1:]]),
        "\r\n".join(base + ["Host: second", f"Content-Length: {len(body)}"]),
        "\r\n".join(base + ["Content-Length: 52428800"]),
        "\r\n".join(base + ["X-Big: " + "x" * 70_000 + BEARER, f"Content-Length: {len(body)}"]),
    ]
    for raw in raw_heads:
        run.send(raw.encode() + b"\r\n\r\n" + body, wait_close=True, timeout=3)
    # trailers carrying the signature, a TLS hello, pipelined genuine and forged
    chunked = "\r\n".join(base + ["Transfer-Encoding: chunked"]).encode() + b"\r\n\r\n"
    run.send(chunked + b"%x\r\n%s\r\n0\r\n%s\r\n\r\n" % (len(body), body, secrets_line.encode()), wait_close=True)
    run.send(b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + SECRET.encode() + b"\r\n\r\n", wait_close=True)
    genuine = "\r\n".join(base + [f"Content-Length: {len(body)}"]).encode() + b"\r\n\r\n" + body
    run.send(genuine + genuine.replace(good.encode(), b"1" * 64) + genuine, answers=3)
    # clients that hang up mid-head and mid-body, on protected and unprotected paths
    full = "\r\n".join(base + [f"Content-Length: {len(body)}"]).encode() + b"\r\n\r\n" + body
    for cut in (20, 60, len(full) // 2, len(full) - len(body) - 2, len(full) - len(body) // 2, len(full) - 1):
        hang_up(run.port, full[:cut])
    unprotected = (
        "\r\n".join(["POST /shop/upload?token=" + QUERY_CANARY + " HTTP/1.1", "Host: shop", *credentials])
        + f"\r\nContent-Length: {len(body) * 3}\r\n\r\n"
    ).encode() + body
    hang_up(run.port, unprotected)
    hang_up(run.port, unprotected[: len(unprotected) - len(body) - 10])
    run.send(
        (
            "\r\n".join(["GET /shop/account?token=" + QUERY_CANARY + " HTTP/1.1", "Host: shop", *credentials])
            + "\r\n\r\n"
        ).encode()
    )


def admin_pages(sigwarden: Sigwarden) -> list[bytes]:
    pages = []
    for path in ("/metrics", "/readyz", "/healthz"):
        try:
            answers, _ = exchange(sigwarden.admin_port, f"GET {path} HTTP/1.1\r\nHost: a\r\n\r\n".encode(), timeout=2)
        except OSError:
            continue  # no admin listener in this build
        pages += [answer.body for answer in answers]
    return pages


def needles(run: Run) -> dict[str, str]:
    found = {f"secret {name}": value for name, value in ALL_SECRETS.items()}
    found.update({f"secret {name} (hex)": value.encode().hex() for name, value in ALL_SECRETS.items()})
    for signature in run.sent_signatures:
        found[f"signature sent {signature[:8]}"] = signature
        found[f"signature sent {signature[:8]} (upper)"] = signature.upper()
    for body in BODIES:
        for name, secret in ALL_SECRETS.items():
            found[f"signature computed for {body[:10]!r} with {name}"] = sign(body, secret)
    found.update(
        {
            "bearer token": BEARER.split()[1],
            "basic credentials": BASIC.split()[1],
            "basic password": "pass-canary-99f1e2",
            "cookie": COOKIE.split("=")[1],
            "api key": API_KEY,
            "body": BODY_CANARY,
            "query": QUERY_CANARY,
        }
    )
    return found


@pytest.mark.parametrize(("log_level", "log_format"), [("info", "json"), ("debug", "text"), ("debug", "json")])
def test_no_secret_signature_credential_or_body_in_any_output(tmp_path, log_level, log_format):
    upstream = Upstream().start()
    sigwarden = Sigwarden(tmp_path, config(upstream.url, tmp_path, log_level, log_format)).start()
    try:
        run = Run(sigwarden.port)
        adversarial_mix(run)
        assert any(b'"invalid_signature"' in answer for answer in run.answers)
        assert len(upstream.received) >= 6  # genuine webhooks went through
        upstream.stop()  # now the upstream is gone: 502 answers and connection errors in the log
        genuine = head("POST", "/webhooks/sendcloud", [("Sendcloud-Signature", run.signature(BODIES[1], SECRET))])
        run.send(genuine[:-2] + f"Content-Length: {len(BODIES[1])}\r\n\r\n".encode() + BODIES[1])
        assert any(b'"upstream_unavailable"' in answer for answer in run.answers)
        pages = admin_pages(sigwarden)
    finally:
        sigwarden.stop()
        upstream.stop()  # again, when the run failed before; a stopped server returns at once
    check = subprocess.run(
        [sys.executable, "-m", "sigwarden", "check", "-c", str(sigwarden.config_path)],
        env=sigwarden.env,
        cwd=REPO,
        capture_output=True,
        timeout=60,
    )
    outputs = {
        "sigwarden's stdout and stderr": sigwarden.logs(),
        "answers": b"\n".join(run.answers).decode("latin-1"),
        "sigwarden check": (check.stdout + check.stderr).decode("latin-1"),
        "admin pages": b"\n".join(pages).decode("latin-1"),
    }
    assert "inline value" in outputs["sigwarden check"]  # check did run and describe the secrets
    assert sigwarden.logs().count("\n") > 10  # the run logged something to search
    leaks = [
        f"{what} in {where}"
        for what, needle in needles(run).items()
        for where, text in outputs.items()
        if needle.lower() in text.lower()
    ]
    assert leaks == []
    # nor do sigwarden's own answers name mitmproxy, its version or the upstream's address
    answers = outputs["answers"].lower()
    assert "mitmproxy" not in answers and VERSION not in answers
    assert f":{upstream.port}" not in answers
