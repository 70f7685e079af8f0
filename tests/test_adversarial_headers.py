"""Verdict-header spoofing, in every spelling, against the real process.

The upstream reads header names as PHP's `$_SERVER` does (upper case, every
non-alphanumeric as `_`) from the raw bytes it received, and any CR or LF as a
line end. Whatever a client sends, the verdict headers it sees are exactly the
ones sigwarden set: `true` and the key id on a verified webhook, none elsewhere.
"""

from __future__ import annotations

import pytest

from adversarial_support import WEBHOOK_BODY, exchange, sign, start_guarded, stop_guarded
from harness import Upstream, http_request

pytestmark = pytest.mark.e2e

BODY = WEBHOOK_BODY
OURS = [("HTTP_X_WEBHOOK_VERIFIED", "true"), ("HTTP_X_WEBHOOK_KEY_ID", "sendcloud")]


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    running = start_guarded(tmp_path_factory.mktemp("headers"))
    yield running
    stop_guarded(running)


@pytest.fixture
def proxy(guarded):
    guarded.upstream.clear()
    return guarded


SPELLINGS = [
    "X-Webhook-Verified",
    "x-webhook-verified",
    "X-WEBHOOK-VERIFIED",
    "x-WeBhOoK-vErIfIeD",
    "X_Webhook_Verified",
    "X_WEBHOOK_VERIFIED",
    "x-webhook_verified",
    "X-Webhook.Verified",
    "X.Webhook.Verified",
    "X~Webhook~Verified",
    "X-Webhook+Verified",
    "X-Webhook-Key-Id",
    "x_webhook_key_id",
    "X-Webhook-Key.Id",
    "X-Webhook-Verify-Error",
    "x_webhook_verify_error",
    "X-WEBHOOK.VERIFY_ERROR",
]
VALUES = ["true", "TRUE", "1", "sendcloud", "false"]


def request(method: str, target: str, headers: list[tuple[str, str]], body: bytes = b"") -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: shop.example", *(f"{name}: {value}" for name, value in headers)]
    lines.append(f"Content-Length: {len(body)}")
    return "\r\n".join(lines).encode() + b"\r\n\r\n" + body


@pytest.mark.parametrize("name", SPELLINGS)
def test_spoofed_verdict_is_stripped_on_an_unprotected_path(proxy, name):
    headers = [(name, value) for value in VALUES]
    answers, _, exchanges = proxy.send(request("GET", "/shop/account", headers))
    assert [answer.status for answer in answers] == [200]
    [exchange] = exchanges
    assert exchange.verdict() == []
    assert b"ebhook" not in exchange.head.lower()


@pytest.mark.parametrize("name", SPELLINGS)
def test_spoofed_verdict_is_replaced_by_ours_on_a_verified_webhook(proxy, name):
    headers = [("Sendcloud-Signature", sign(BODY)), (name, "sendcloud-old"), (name, "false")]
    answers, _, exchanges = proxy.send(request("POST", "/webhooks/sendcloud", headers, BODY))
    assert [answer.status for answer in answers] == [200]
    [exchange] = exchanges
    assert exchange.verdict() == OURS
    # exactly the spelling sigwarden writes, once each
    assert exchange.head.count(b"\r\nX-Webhook-Verified: true") == 1
    assert exchange.head.count(b"\r\nX-Webhook-Key-Id: sendcloud") == 1
    assert sum(b"webhook" in line.lower() for line in exchange.head.split(b"\r\n")[1:]) == 2


@pytest.mark.parametrize("name", SPELLINGS)
def test_spoofed_verdict_does_not_help_a_forged_webhook(proxy, name):
    headers = [("Sendcloud-Signature", "0" * 64), (name, "true")]
    answers, _, exchanges = proxy.send(request("POST", "/webhooks/sendcloud", headers, BODY))
    assert [(answer.status, answer.error) for answer in answers] == [(401, "invalid_signature")]
    assert exchanges == []


@pytest.mark.parametrize(
    "line",
    [
        b"X-Webhook-Verified : true",
        b"X-Webhook-Verified\t: true",
        b"X-Webhook-Verified\x00: true",
        b" X-Webhook-Verified: true",
        b"\tX-Webhook-Verified: true",
        b"X-Webhook-Verified",
        b"X-Webhook-Verified\r: true",
    ],
    ids=["space-before-colon", "tab-before-colon", "nul-in-name", "folded-space", "folded-tab", "no-colon", "cr"],
)
@pytest.mark.parametrize("target", ["/shop/account", "/webhooks/sendcloud"])
def test_verdict_header_in_an_unparsable_spelling_is_a_bad_request(proxy, line, target):
    head = f"POST {target} HTTP/1.1\r\nHost: shop.example\r\nX-Before: 1\r\nSendcloud-Signature: {sign(BODY)}\r\n"
    data = head.encode() + line + f"\r\nContent-Length: {len(BODY)}\r\n\r\n".encode() + BODY
    answers, closed, exchanges = proxy.send(data, wait_close=True)
    assert [(answer.status, answer.error) for answer in answers] == [(400, "bad_request")]
    assert closed and exchanges == []


def test_many_spoofed_copies_are_all_stripped(proxy):
    headers = [(name, "true") for name in SPELLINGS for _ in range(20)]
    answers, _, exchanges = proxy.send(
        request("POST", "/webhooks/sendcloud", [("Sendcloud-Signature", sign(BODY)), *headers], BODY)
    )
    assert [answer.status for answer in answers] == [200]
    assert exchanges[0].verdict() == OURS


def test_spoofed_verdict_in_a_connection_header_option_is_harmless(proxy):
    # Listing our header as hop-by-hop cannot remove it: sigwarden adds it after reading the request.
    headers = [("Sendcloud-Signature", sign(BODY)), ("Connection", "keep-alive, X-Webhook-Verified")]
    answers, _, exchanges = proxy.send(request("POST", "/webhooks/sendcloud", headers, BODY))
    assert [answer.status for answer in answers] == [200]
    assert exchanges[0].verdict() == OURS


OVERRIDES = ["X-Original-URL", "X-Rewrite-URL", "x_original_url", "X.Rewrite.Url", "X-Original-URI", "X-Forwarded-Uri"]


@pytest.mark.parametrize("name", OVERRIDES)
@pytest.mark.parametrize(
    "value",
    [
        "/webhooks/sendcloud",
        "/Webhooks%2FSendcloud/",
        "http://shop/webhooks/sendcloud?x=1",
        "/index.php?route=sendcloud/webhook",
    ],
)
def test_path_override_header_naming_a_protected_route_is_verified(proxy, name, value):
    """Zend Framework 1 / Magento 1 route by X-Original-URL and X-Rewrite-URL: such a request is protected."""
    answers, _, exchanges = proxy.send(request("POST", "/shop/harmless", [(name, value)], BODY))
    assert [(answer.status, answer.error) for answer in answers] == [(401, "missing_signature")]
    assert exchanges == []


def test_path_override_header_on_a_signed_webhook_is_forwarded_verified_and_untouched(proxy):
    headers = [("Sendcloud-Signature", sign(BODY)), ("X-Original-URL", "/webhooks/sendcloud")]
    answers, _, exchanges = proxy.send(request("POST", "/shop/harmless", headers, BODY))
    assert [answer.status for answer in answers] == [200]
    [exchange] = exchanges
    assert exchange.verdict() == OURS
    assert exchange.target == "/shop/harmless" and exchange.header("HTTP_X_ORIGINAL_URL") == "/webhooks/sendcloud"


def test_path_override_header_naming_an_unprotected_path_is_passed(proxy):
    answers, _, exchanges = proxy.send(request("GET", "/shop/a", [("X-Original-URL", "/shop/b")]))
    assert [answer.status for answer in answers] == [200]
    assert exchanges[0].header("HTTP_X_ORIGINAL_URL") == "/shop/b"


# -- against Python's own http.server, whose header parser splits lines at a bare CR ----------


def test_python_http_server_upstream_never_sees_a_forged_verdict(start_sigwarden, upstream):
    """harness.Upstream is BaseHTTPRequestHandler: email.parser reads `a\\rX-Webhook-Verified: true` as two lines."""
    sigwarden = start_sigwarden()
    spoofs = [
        b"GET /shop/account HTTP/1.1\r\nHost: shop\r\nX-Note: a\rX-Webhook-Verified: true\r\n\r\n",
        b"GET /shop/account HTTP/1.1\r\nHost: shop\r\nX-Note: a\r\n X-Webhook-Verified: true\r\n\r\n",
        b"GET /shop/account HTTP/1.1\r\nHost: shop\r\nX.Webhook.Verified: true\r\n\r\n",
        b"GET /shop/account HTTP/1.1\r\nHost: shop\r\nX_Webhook-Key_Id: sendcloud\r\n\r\n",
    ]
    for data in spoofs:
        exchange(sigwarden.port, data, timeout=5)
    status, _, _ = http_request(sigwarden.port, "GET", "/shop/account", headers={"X-Webhook-Verified": "true"})
    assert status == 200
    for received in upstream.received:
        names = {name.lower().replace("_", "-").replace(".", "-") for name in received.header_names()}
        assert not names & {"x-webhook-verified", "x-webhook-key-id", "x-webhook-verify-error"}, received
    assert isinstance(upstream, Upstream) and len(upstream.received) >= 1
