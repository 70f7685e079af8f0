"""Request smuggling and malformed HTTP against the real `sigwarden run` and a credulous raw upstream.

Every case goes through `Guarded.send`, which checks the suite's invariant on what
the upstream received (see adversarial_support.assert_nothing_unverified): nothing
unverified reaches it, in any reading a lenient application could make of the bytes.
Each case also states what the client gets and how many requests the upstream saw.
"""

from __future__ import annotations

import pytest

from adversarial_support import (
    WEBHOOK_BODY,
    sign,
    start_guarded,
    stop_guarded,
)

pytestmark = pytest.mark.e2e

BODY = WEBHOOK_BODY
SIGNATURE = sign(BODY)
FORGED = "0" * 64


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    running = start_guarded(tmp_path_factory.mktemp("framing"))
    yield running
    stop_guarded(running)


@pytest.fixture
def proxy(guarded):
    guarded.upstream.clear()
    return guarded


def head(
    *lines: str | bytes, target: str | bytes = "/webhooks/sendcloud", method: str = "POST", version: str = "HTTP/1.1"
):
    """A request head from raw lines (no Content-Length added), CRLF line ends."""
    raw = [f"{method} ".encode() + (target if isinstance(target, bytes) else target.encode()) + f" {version}".encode()]
    raw += [line if isinstance(line, bytes) else line.encode() for line in lines]
    return b"\r\n".join(raw) + b"\r\n\r\n"


def chunked(body: bytes, trailer: bytes = b"") -> bytes:
    return b"%x\r\n%s\r\n0\r\n%s\r\n" % (len(body), body, trailer)


def signed_post(body: bytes = BODY, *extra: str | bytes, target: str = "/webhooks/sendcloud", version="HTTP/1.1"):
    return (
        head(
            "Host: shop.example",
            f"Sendcloud-Signature: {sign(body)}",
            f"Content-Length: {len(body)}",
            *extra,
            target=target,
            version=version,
        )
        + body
    )


def forged_post(body: bytes = BODY, *extra: str | bytes, target: str = "/webhooks/sendcloud", version="HTTP/1.1"):
    return (
        head(
            "Host: shop.example",
            f"Sendcloud-Signature: {FORGED}",
            f"Content-Length: {len(body)}",
            *extra,
            target=target,
            version=version,
        )
        + body
    )


def verified(exchange) -> bool:
    return ("HTTP_X_WEBHOOK_VERIFIED", "true") in exchange.verdict()


# -- refused with 400 bad_request and a closed connection; nothing forwarded -------------

LENGTH = f"Content-Length: {len(BODY)}"
SIGNED = f"Sendcloud-Signature: {SIGNATURE}"
HOST = "Host: shop.example"

BAD_REQUESTS = {
    # Content-Length together with Transfer-Encoding (CL.TE / TE.CL)
    "cl-and-te-protected": head(HOST, SIGNED, LENGTH, "Transfer-Encoding: chunked") + chunked(BODY),
    "te-and-cl-unprotected": head(HOST, "Transfer-Encoding: chunked", "Content-Length: 4", target="/upload")
    + chunked(b"abcd"),
    "cl-and-te-identity": head(HOST, SIGNED, LENGTH, "Transfer-Encoding: identity") + BODY,
    # duplicate, conflicting and malformed Content-Length
    "cl-duplicate-same": head(HOST, SIGNED, LENGTH, LENGTH) + BODY,
    "cl-conflicting": head(HOST, SIGNED, LENGTH, "Content-Length: 5") + BODY,
    "cl-conflicting-unprotected": head(HOST, "Content-Length: 4", "Content-Length: 40", target="/upload") + b"x" * 40,
    "cl-list": head(HOST, SIGNED, f"Content-Length: {len(BODY)}, {len(BODY)}") + BODY,
    "cl-plus": head(HOST, SIGNED, f"Content-Length: +{len(BODY)}") + BODY,
    "cl-hex": head(HOST, SIGNED, "Content-Length: 0x10") + BODY,
    "cl-negative": head(HOST, SIGNED, "Content-Length: -1") + BODY,
    "cl-leading-zero": head(HOST, SIGNED, f"Content-Length: 0{len(BODY)}") + BODY,
    "cl-exponent": head(HOST, SIGNED, "Content-Length: 1e2") + BODY,
    "cl-empty": head(HOST, SIGNED, "Content-Length: ") + BODY,
    "cl-space-inside": head(HOST, SIGNED, "Content-Length: 1 0") + BODY,
    "cl-space-before-colon": head(HOST, SIGNED, f"Content-Length : {len(BODY)}") + BODY,
    # Transfer-Encoding that some parser reads as chunked and another does not
    "te-chunked-identity": head(HOST, SIGNED, "Transfer-Encoding: chunked, identity") + chunked(BODY),
    "te-identity-chunked": head(HOST, SIGNED, "Transfer-Encoding: identity, chunked") + chunked(BODY),
    "te-xchunked": head(HOST, SIGNED, "Transfer-Encoding: xchunked") + chunked(BODY),
    "te-chunkedx": head(HOST, SIGNED, "Transfer-Encoding: chunkedx") + chunked(BODY),
    "te-chunked-twice": head(HOST, SIGNED, "Transfer-Encoding: chunked, chunked") + chunked(BODY),
    "te-two-headers": head(HOST, SIGNED, "Transfer-Encoding: chunked", "Transfer-Encoding: identity") + chunked(BODY),
    "te-identity-request": head(HOST, SIGNED, "Transfer-Encoding: identity") + BODY,
    "te-gzip-request": head(HOST, SIGNED, "Transfer-Encoding: gzip") + BODY,
    "te-vertical-tab-inside": head(HOST, SIGNED, b"Transfer-Encoding: chun\x0bked") + chunked(BODY),
    "te-nul": head(HOST, SIGNED, b"Transfer-Encoding: chunked\x00") + chunked(BODY),
    "te-http10": head(HOST, SIGNED, "Transfer-Encoding: chunked", version="HTTP/1.0") + chunked(BODY),
    "te-space-before-colon": head(HOST, SIGNED, "Transfer-Encoding : chunked") + chunked(BODY),
    "te-tab-before-colon": head(HOST, SIGNED, "Transfer-Encoding\t: chunked") + chunked(BODY),
    "te-first-line-folded": head(" Transfer-Encoding: chunked", HOST, SIGNED) + chunked(BODY),
    "te-folded-value": head(HOST, SIGNED, "Transfer-Encoding:", " chunked") + chunked(BODY),
    "te-folded-into-other-header": head(
        HOST, "X-Note: a", " Transfer-Encoding: chunked", "Content-Length: 5", target="/up"
    )
    + b"0\r\n\r\n",
    "te-after-bare-cr": head(HOST, b"X-Note: a\rTransfer-Encoding: chunked", "Content-Length: 5", target="/up")
    + b"0\r\n\r\n",
    # obsolete line folding, bare CR, control bytes in values
    "obs-fold-space": head(HOST, SIGNED, LENGTH, "X-Note: one", " two") + BODY,
    "obs-fold-tab": head(HOST, "X-Note: one", "\ttwo", target="/shop/products", method="GET"),
    "obs-fold-verdict": head(HOST, "X-Note: a", " X-Webhook-Verified: true", target="/shop/products", method="GET"),
    "bare-cr-verdict": head(HOST, b"X-Note: a\rX-Webhook-Verified: true", target="/shop/products", method="GET"),
    "bare-cr-verdict-protected": head(HOST, SIGNED, LENGTH, b"X-Note: a\rX-Webhook-Key-Id: sendcloud-old") + BODY,
    "nul-in-value": head(HOST, b"X-Note: a\x00X-Webhook-Verified: true", target="/shop/products", method="GET"),
    "form-feed-in-value": head(HOST, b"X-Note: a\x0cb", target="/shop/products", method="GET"),
    "del-in-value": head(HOST, b"X-Note: a\x7fb", target="/shop/products", method="GET"),
    # request targets another parser could read differently
    "fragment-in-target": head(HOST, LENGTH, target="/other#/../webhooks/sendcloud") + BODY,
    "fragment-after-protected": head(HOST, LENGTH, target="/webhooks/sendcloud#x") + BODY,
    "nul-in-target": head(HOST, LENGTH, target=b"/webhooks/sendcloud\x00.php") + BODY,
    "nul-before-protected": head(HOST, LENGTH, target=b"/x\x00/../webhooks/sendcloud") + BODY,
    "control-in-target": head(HOST, LENGTH, target=b"/webhooks/send\x01cloud") + BODY,
    "del-in-target": head(HOST, LENGTH, target=b"/webhooks/sendcloud\x7f") + BODY,
    "tab-in-target": head(HOST, LENGTH, target=b"/webhooks/sendcloud\tHTTP/1.1") + BODY,
    "bare-cr-in-request-line": head(HOST, LENGTH, target=b"/webhooks/sendcloud\rX") + BODY,
    "backslash-first-in-target": head(HOST, LENGTH, target="\\webhooks\\sendcloud") + BODY,
    "encoded-too-deeply": head(HOST, LENGTH, target="/webhooks%" + "25" * 12 + "2fsendcloud") + BODY,
    "path-longer-than-8-kib": head(HOST, LENGTH, target="/webhooks/sendcloud/" + "x/.." * 2100) + BODY,
    "path-override-longer-than-8-kib": head(HOST, "X-Original-URL: /" + "x/.." * 2100, target="/shop", method="GET"),
    "path-override-encoded-too-deeply": head(
        HOST, "X-Rewrite-URL: /%" + "25" * 12 + "2f", target="/shop", method="GET"
    ),
    "connect-method": head(HOST, target="shop.example:80", method="CONNECT"),
    "no-version": b"POST /webhooks/sendcloud\r\nHost: shop\r\n\r\n",
    "extra-token-in-request-line": head(HOST, LENGTH, target="/webhooks/sendcloud HTTP/1.1 x") + BODY,
    "bad-version": head(HOST, LENGTH, version="HTTP/1.1.1") + BODY,
    # upgrades to protocols whose requests sigwarden could not see (h2c smuggling)
    "upgrade-h2c": head(
        HOST,
        "Connection: Upgrade, HTTP2-Settings",
        "Upgrade: h2c",
        "HTTP2-Settings: AAMAAABkAAQAAP__",
        target="/shop",
        method="GET",
    ),
    "upgrade-h2c-after-websocket": head(
        HOST, "Connection: Upgrade", "Upgrade: websocket, h2c", target="/shop", method="GET"
    ),
    "upgrade-h2c-upper": head(HOST, "Connection: Upgrade", "Upgrade: H2C", target="/shop", method="GET"),
    "upgrade-tls": head(HOST, "Connection: Upgrade", "Upgrade: TLS/1.2", target="/shop", method="GET"),
    "upgrade-http2": head(HOST, "Connection: Upgrade", "Upgrade: HTTP/2.0", target="/shop", method="GET"),
    # Host tricks
    "host-duplicate": head(HOST, "Host: other.example", SIGNED, LENGTH) + BODY,
    "host-duplicate-unprotected": head(HOST, "Host: other.example", target="/shop/products", method="GET"),
    "host-with-path": head("Host: shop.example/webhooks/sendcloud#", target="/shop/products", method="GET"),
    "host-with-query": head("Host: shop.example?route=sendcloud/webhook", target="/shop/products", method="GET"),
    "host-with-userinfo": head("Host: user@shop.example", target="/shop/products", method="GET"),
    "host-with-space": head("Host: shop.example evil", target="/shop/products", method="GET"),
    "host-with-backslash": head("Host: shop.example\\webhooks", target="/shop/products", method="GET"),
    "host-non-ascii": head("Host: shöp.example".encode(), target="/shop/products", method="GET"),
    # header names mitmproxy refuses (not tokens)
    "name-non-ascii": head(HOST, "X-Wébhook-Verified: true".encode(), target="/shop/products", method="GET"),
    "name-with-space": head(HOST, "X Webhook Verified: true", target="/shop/products", method="GET"),
    "name-empty": head(HOST, ": true", target="/shop/products", method="GET"),
    "tls-hello-on-plain-listener": b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 64 + b"\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(BAD_REQUESTS))
def test_malformed_or_ambiguous_request_is_refused_and_never_forwarded(proxy, name):
    answers, closed, exchanges = proxy.send(BAD_REQUESTS[name], wait_close=True)
    assert [(answer.status, answer.error) for answer in answers] == [(400, "bad_request")]
    assert answers[0].headers["content-type"] == "application/json"
    assert closed
    assert exchanges == []
    assert proxy.upstream.connections == 0


# -- request trailers and broken chunked bodies -------------------------------------------


def test_request_trailers_are_refused_instead_of_crashing_the_connection(proxy):
    data = head(HOST, SIGNED, "Transfer-Encoding: chunked") + chunked(BODY, b"X-Webhook-Verified: true\r\n")
    answers, closed, exchanges = proxy.send(data, wait_close=True)
    assert [(answer.status, answer.error) for answer in answers] == [(400, "bad_request")]
    assert closed and exchanges == []
    assert "has crashed" not in proxy.sigwarden.logs()


@pytest.mark.parametrize(
    "chunks",
    [
        b"+5\r\nhello\r\n0\r\n\r\n",
        b"0x5\r\nhello\r\n0\r\n\r\n",
        b"-5\r\nhello\r\n0\r\n\r\n",
        b"5\r\nhelloXX\r\n0\r\n\r\n",
        b"ffffffffffffffffffff\r\nhello\r\n",
        b"5\nhello\n0\n\n\x00",
    ],
    ids=["plus", "hex-prefix", "negative", "size-too-small", "huge", "bare-lf-then-nul"],
)
def test_broken_chunked_protected_body_is_never_forwarded(proxy, chunks):
    # Some of these wait for more body (a huge chunk, lines without CR): the client's FIN ends them.
    data = head(HOST, SIGNED, "Transfer-Encoding: chunked") + chunks
    answers, closed, exchanges = proxy.send(data, half_close=True, wait_close=True, timeout=4)
    assert closed
    assert all(answer.status >= 400 for answer in answers)
    assert exchanges == []


# -- accepted after normalisation: the upstream gets mitmproxy's clean re-serialisation ----


def test_bare_lf_line_endings_are_verified_and_forwarded_with_crlf(proxy):
    data = signed_post().replace(b"\r\n", b"\n")
    answers, _, exchanges = proxy.send(data)
    assert [answer.status for answer in answers] == [200]
    [exchange] = exchanges
    assert verified(exchange) and exchange.body == BODY
    assert b"\n" not in exchange.head.replace(b"\r\n", b"")


def test_bare_lf_forged_verdict_on_an_unprotected_path_is_stripped(proxy):
    data = head(HOST, "X-Webhook-Verified: true", "X_Webhook_Key_Id: sendcloud", target="/shop/x", method="GET")
    answers, _, exchanges = proxy.send(data.replace(b"\r\n", b"\n"))
    assert [answer.status for answer in answers] == [200]
    [exchange] = exchanges
    assert exchange.verdict() == []


def test_bare_lf_forged_webhook_is_refused(proxy):
    answers, _, exchanges = proxy.send(forged_post().replace(b"\r\n", b"\n"))
    assert [(answer.status, answer.error) for answer in answers] == [(401, "invalid_signature")]
    assert exchanges == []


def test_bare_cr_line_endings_never_make_a_request(proxy):
    data = signed_post().replace(b"\r\n", b"\r")
    answers, closed, exchanges = proxy.send(data, half_close=True, wait_close=True, timeout=4)
    assert answers == [] and closed
    assert exchanges == []


@pytest.mark.parametrize(
    "length",
    [f" {len(BODY)}", f"{len(BODY)} ", f"\t{len(BODY)}"],
    ids=["leading-space", "trailing-space", "leading-tab"],
)
def test_content_length_with_surrounding_whitespace_is_read_as_the_number(proxy, length):
    data = head(HOST, SIGNED, f"Content-Length:{length}") + BODY
    answers, _, exchanges = proxy.send(data)
    assert [answer.status for answer in answers] == [200]
    [exchange] = exchanges
    assert verified(exchange) and exchange.body == BODY
    assert f"Content-Length: {len(BODY)}".encode() in exchange.head


# mitmproxy strips surrounding whitespace (bytes.strip: also VT and FF) and forwards the clean value.
@pytest.mark.parametrize("encoding", ["chunked", "Chunked", "CHUNKED", "chunked ", "\tchunked", "\x0bchunked\x0c"])
def test_chunked_body_is_verified_over_the_decoded_bytes(proxy, encoding):
    data = head(HOST, SIGNED, f"Transfer-Encoding:{encoding}") + b"7\r\n" + BODY[:7] + b"\r\n"
    data += b"%x;ext=1\r\n%s\r\n0\r\n\r\n" % (len(BODY) - 7, BODY[7:])
    answers, _, exchanges = proxy.send(data)
    assert [answer.status for answer in answers] == [200]
    [exchange] = exchanges
    assert verified(exchange) and exchange.body == BODY


def test_forged_chunked_body_is_refused(proxy):
    data = head(HOST, f"Sendcloud-Signature: {FORGED}", "Transfer-Encoding: chunked") + chunked(BODY)
    answers, _, exchanges = proxy.send(data)
    assert [(answer.status, answer.error) for answer in answers] == [(401, "invalid_signature")]
    assert exchanges == []


def test_declared_oversized_protected_body_is_refused_before_it_is_read(proxy):
    data = head(HOST, SIGNED, "Content-Length: 99999999999999999999")
    answers, _, exchanges = proxy.send(data)
    assert [(answer.status, answer.error) for answer in answers] == [(413, "body_too_large")]
    assert exchanges == []


def test_expect_continue_on_a_forged_webhook_gets_the_refusal(proxy):
    request = head(HOST, f"Sendcloud-Signature: {FORGED}", LENGTH, "Expect: 100-continue")
    answers, _, exchanges = proxy.send([request, BODY])
    assert [(answer.status, answer.error) for answer in answers] == [(401, "invalid_signature")]
    assert exchanges == []


def test_upgrade_request_to_a_protected_route_is_verified_like_any_other(proxy):
    data = head(HOST, "Connection: Upgrade", "Upgrade: websocket", "Sec-WebSocket-Version: 13", method="GET")
    answers, _, exchanges = proxy.send(data)
    assert [(answer.status, answer.error) for answer in answers] == [(401, "missing_signature")]
    assert exchanges == []


def test_websocket_upgrade_on_an_unprotected_path_is_passed(proxy):
    data = head(
        HOST, "Connection: Upgrade", "Upgrade: websocket", "Sec-WebSocket-Version: 13", target="/shop/ws", method="GET"
    )
    answers, _, exchanges = proxy.send(data)
    assert [answer.status for answer in answers] == [200]  # this upstream does not switch protocols
    assert [exchange.target for exchange in exchanges] == ["/shop/ws"]


def test_http10_signed_webhook_is_verified(proxy):
    answers, closed, exchanges = proxy.send(signed_post(version="HTTP/1.0"), wait_close=True)
    assert [answer.status for answer in answers] == [200]
    assert closed  # HTTP/1.0 without keep-alive: one request per connection
    [exchange] = exchanges
    assert verified(exchange)


def test_missing_host_is_passed_on_unprotected_and_verified_on_protected_paths(proxy):
    answers, _, exchanges = proxy.send(head(target="/shop/products", method="GET"))
    assert [answer.status for answer in answers] == [200]
    assert len(exchanges) == 1 and exchanges[0].verdict() == []
    proxy.upstream.clear()
    data = head(f"Sendcloud-Signature: {FORGED}", LENGTH) + BODY
    answers, _, exchanges = proxy.send(data)
    assert [(answer.status, answer.error) for answer in answers] == [(401, "invalid_signature")]
    assert exchanges == []


@pytest.mark.parametrize("host", ["shop.example:8080", "127.0.0.1", "[::1]:8080", "", "xn--shp-sna.example"])
def test_well_formed_hosts_are_kept(proxy, host):
    data = head(f"Host: {host}", SIGNED, LENGTH) + BODY
    answers, _, exchanges = proxy.send(data)
    assert [answer.status for answer in answers] == [200]
    [exchange] = exchanges
    assert verified(exchange)
    assert exchange.header("HTTP_HOST") == host


# -- absolute-form request targets -----------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "http://other.example/webhooks/sendcloud",
        "HTTP://other.example/webhooks/sendcloud",
        "http://other.example:80/webhooks%2fsendcloud",
        "https://other.example/Webhooks/SendCloud/",
        "http://shop.example/index.php?route=sendcloud/webhook",
    ],
)
def test_absolute_form_target_of_a_protected_route_is_verified(proxy, target):
    answers, _, exchanges = proxy.send(forged_post(target=target))
    assert [(answer.status, answer.error) for answer in answers] == [(401, "invalid_signature")]
    assert exchanges == []


def test_absolute_form_target_is_forwarded_in_origin_form_after_verification(proxy):
    answers, _, exchanges = proxy.send(signed_post(target="http://other.example/webhooks/sendcloud"))
    assert [answer.status for answer in answers] == [200]
    [exchange] = exchanges
    assert verified(exchange)
    assert exchange.request_line == b"POST /webhooks/sendcloud HTTP/1.1"
    assert exchange.header("HTTP_HOST") == "shop.example"


def test_absolute_form_target_of_an_unprotected_path_is_passed_in_origin_form(proxy):
    data = head(HOST, "X-Webhook-Verified: true", target="http://other.example/shop/products?a=1", method="GET")
    answers, _, exchanges = proxy.send(data)
    assert [answer.status for answer in answers] == [200]
    [exchange] = exchanges
    assert exchange.request_line == b"GET /shop/products?a=1 HTTP/1.1"
    assert exchange.verdict() == []


# -- one connection, several requests: pipelining and smuggled bytes ------------------------


@pytest.mark.parametrize("version", ["HTTP/1.1", "HTTP/1.0"])
def test_pipelined_valid_then_forged(proxy, version):
    keep = ("Connection: keep-alive",) if version == "HTTP/1.0" else ()
    data = signed_post(BODY, *keep, version=version) + forged_post(BODY, *keep, version=version)
    answers, _, exchanges = proxy.send(data, answers=2)
    assert [(answer.status, answer.error) for answer in answers] == [(200, None), (401, "invalid_signature")]
    [exchange] = exchanges
    assert verified(exchange) and exchange.body == BODY
    assert proxy.upstream.connections == 1


@pytest.mark.parametrize("version", ["HTTP/1.1", "HTTP/1.0"])
def test_pipelined_forged_then_valid(proxy, version):
    keep = ("Connection: keep-alive",) if version == "HTTP/1.0" else ()
    data = forged_post(BODY, *keep, version=version) + signed_post(BODY, *keep, version=version)
    answers, _, exchanges = proxy.send(data, answers=2)
    assert [(answer.status, answer.error) for answer in answers] == [(401, "invalid_signature"), (200, None)]
    [exchange] = exchanges
    assert verified(exchange) and exchange.body == BODY


def test_http10_without_keep_alive_ends_after_the_first_request(proxy):
    data = signed_post(version="HTTP/1.0") + forged_post(version="HTTP/1.0")
    answers, closed, exchanges = proxy.send(data, wait_close=True)
    assert [answer.status for answer in answers] == [200]
    assert closed
    assert len(exchanges) == 1 and verified(exchanges[0])


def test_pipelined_mix_of_valid_forged_unprotected_and_spoofed(proxy):
    other = b'{"action": "integration_updated"}'
    data = (
        signed_post(BODY)
        + forged_post(other)
        + head(HOST, "X-Webhook-Verified: true", "x_webhook_key_id: sendcloud", target="/shop/cart", method="GET")
        + signed_post(other, "X-Webhook-Verified: false", "X-Webhook-Key-Id: sendcloud-old")
        + head(HOST, f"Sendcloud-Signature: {sign(BODY)}", f"Content-Length: {len(other)}")
        + other
    )
    answers, _, exchanges = proxy.send(data, answers=5)
    assert [(answer.status, answer.error) for answer in answers] == [
        (200, None),
        (401, "invalid_signature"),
        (200, None),
        (200, None),
        (401, "invalid_signature"),
    ]
    assert [exchange.target for exchange in exchanges] == ["/webhooks/sendcloud", "/shop/cart", "/webhooks/sendcloud"]
    assert [exchange.verdict() for exchange in exchanges] == [
        [("HTTP_X_WEBHOOK_VERIFIED", "true"), ("HTTP_X_WEBHOOK_KEY_ID", "sendcloud")],
        [],
        [("HTTP_X_WEBHOOK_VERIFIED", "true"), ("HTTP_X_WEBHOOK_KEY_ID", "sendcloud")],
    ]
    assert exchanges[2].body == other


SMUGGLED = head(HOST, "X-Webhook-Verified: true", "X-Webhook-Key-Id: sendcloud", "Content-Length: 2") + b"{}"


def test_bytes_after_a_valid_body_are_a_new_request_and_verified(proxy):
    answers, _, exchanges = proxy.send(signed_post() + SMUGGLED, answers=2)
    assert [(answer.status, answer.error) for answer in answers] == [(200, None), (401, "missing_signature")]
    [exchange] = exchanges
    assert verified(exchange) and exchange.body == BODY


def test_bytes_after_a_valid_chunked_body_are_a_new_request_and_verified(proxy):
    data = head(HOST, SIGNED, "Transfer-Encoding: chunked") + chunked(BODY) + SMUGGLED
    answers, _, exchanges = proxy.send(data, answers=2)
    assert [(answer.status, answer.error) for answer in answers] == [(200, None), (401, "missing_signature")]
    [exchange] = exchanges
    assert verified(exchange) and exchange.body == BODY


def test_garbage_after_a_valid_body_is_refused_and_not_forwarded(proxy):
    answers, closed, exchanges = proxy.send(signed_post() + b"GARBAGE\r\n\r\n", answers=2, wait_close=True)
    assert [(answer.status, answer.error) for answer in answers] == [(200, None), (400, "bad_request")]
    assert closed
    assert len(exchanges) == 1 and verified(exchanges[0])


def test_forged_request_inside_an_unprotected_body_stays_body(proxy):
    inner = forged_post(BODY, "X-Webhook-Verified: true") + SMUGGLED
    data = head(HOST, f"Content-Length: {len(inner)}", target="/shop/upload") + inner
    answers, _, exchanges = proxy.send(data)
    assert [answer.status for answer in answers] == [200]
    [exchange] = exchanges
    assert exchange.target == "/shop/upload" and exchange.body == inner and exchange.verdict() == []


def test_unprotected_request_with_lying_content_length_cannot_smuggle_upstream(proxy):
    # sigwarden frames by Content-Length like the upstream: the rest is a request sigwarden parses itself.
    data = head(HOST, "Content-Length: 5", target="/shop/upload") + b"0\r\n\r\n" + SMUGGLED
    answers, _, exchanges = proxy.send(data, answers=2)
    assert [(answer.status, answer.error) for answer in answers] == [(200, None), (401, "missing_signature")]
    [exchange] = exchanges
    assert exchange.target == "/shop/upload" and exchange.body == b"0\r\n\r\n"


# -- overlong and non-ASCII header values ------------------------------------------------------


def test_path_just_under_8_kib_is_passed(proxy):
    target = "/shop/" + "a" * (8192 - 6)
    answers, _, exchanges = proxy.send(head(HOST, target=target, method="GET"))
    assert [answer.status for answer in answers] == [200]
    assert [exchange.target for exchange in exchanges] == [target]


def test_long_header_value_is_forwarded_intact_on_a_verified_webhook(proxy):
    value = "v" * 40_000
    answers, _, exchanges = proxy.send(signed_post(BODY, f"X-Long: {value}"))
    assert [answer.status for answer in answers] == [200]
    [exchange] = exchanges
    assert verified(exchange) and exchange.header("HTTP_X_LONG") == value


@pytest.mark.parametrize(
    "value", ["Grüße aus Köln".encode(), b"caf\xe9", "日本語".encode(), b"\xff\xfe", "a\u2028b".encode()]
)
def test_non_ascii_header_value_is_passed_byte_for_byte(proxy, value):
    answers, _, exchanges = proxy.send(head(HOST, b"X-Note: " + value, target="/shop/products", method="GET"))
    assert [answer.status for answer in answers] == [200]
    [exchange] = exchanges
    assert b"X-Note: " + value in exchange.head


@pytest.mark.parametrize(
    "signature",
    ["é" * 64, SIGNATURE[:-1] + "é", "０" * 64, "٠" * 64],
    ids=["accents", "last", "fullwidth", "arabic-digits"],
)
def test_non_ascii_signature_is_malformed(proxy, signature):
    data = head(HOST, f"Sendcloud-Signature: {signature}".encode(), LENGTH) + BODY
    answers, _, exchanges = proxy.send(data)
    assert [(answer.status, answer.error) for answer in answers] == [(401, "malformed_signature")]
    assert exchanges == []


def test_valid_signature_with_unicode_space_around_it_still_verifies(proxy):
    # The scheme strips surrounding whitespace with str.strip(), which includes U+00A0; the HMAC is still exact.
    data = head(HOST, f"Sendcloud-Signature: {SIGNATURE}\u00a0".encode(), LENGTH) + BODY
    answers, _, exchanges = proxy.send(data)
    assert [answer.status for answer in answers] == [200]
    [exchange] = exchanges
    assert verified(exchange)


def test_signature_given_twice_is_malformed_even_if_one_is_valid(proxy):
    data = head(HOST, SIGNED, f"sendcloud-signature: {FORGED}", LENGTH) + BODY
    answers, _, exchanges = proxy.send(data)
    assert [(answer.status, answer.error) for answer in answers] == [(401, "malformed_signature")]
    assert exchanges == []
