"""The real `sigwarden run` with the base config, shared by the module: what the client gets, what the upstream saw.

Base config (harness.base_config): route `sendcloud` on /webhooks/sendcloud and /index.php/webhooks/sendcloud
(both secrets, max_body 64KiB) and route `query-routed` on /index.php?route=sendcloud/webhook.
"""

from __future__ import annotations

import http.client
import json
import socket
import time

import pytest

from core_support import chunked, counted_connections, exchange, read_answer, readable, request_bytes
from harness import OLD_SECRET, SECRET, sign, signed_headers, wait_until

pytestmark = pytest.mark.e2e

# Serialised the way Sendcloud does: json.dumps defaults, non-ASCII escaped.
BODY = json.dumps(
    {"action": "parcel_status_changed", "timestamp": 1764320000000, "parcel": {"id": 1, "name": "Zoë"}}
).encode()
LIMIT = 64 * 1024


def post(sigwarden, path="/webhooks/sendcloud", body=BODY, headers=None):
    return exchange(
        sigwarden.port, request_bytes("POST", path, body, headers if headers is not None else signed_headers(body))
    )


def assert_refused(answer, status, code, upstream):
    assert answer.status == status
    assert answer.header("content-type") == "application/json"
    assert answer.json() == {"error": code, "message": answer.json()["message"]}
    assert answer.json()["message"].endswith(".")
    assert upstream.received == []


# --- verified --------------------------------------------------------------------------------


def test_a_valid_signature_is_forwarded_with_the_verdict(shared):
    sigwarden, upstream = shared
    answer = post(sigwarden)
    assert answer.status == 200
    assert answer.body == upstream.reply
    [received] = upstream.received
    assert received.method == "POST"
    assert received.path == "/webhooks/sendcloud"
    assert received.body == BODY
    assert received.header("X-Webhook-Verified") == "true"
    assert received.header("X-Webhook-Key-Id") == "sendcloud"
    assert received.header("X-Webhook-Verify-Error") is None
    assert received.header("Sendcloud-Signature") == sign(BODY)
    assert received.header("Content-Type") == "application/json"
    assert received.header("Content-Length") == str(len(BODY))
    assert len(received.header("X-Request-Id") or "") >= 16


def test_the_headers_are_otherwise_unchanged_in_order_and_case(shared):
    sigwarden, upstream = shared
    headers = [
        ("User-Agent", "Sendcloud/2.0"),
        ("Content-Type", "application/json"),
        ("sendcloud-signature", sign(BODY)),
        ("X-Custom", "a, b"),
        ("X-Custom", "c"),
        ("Accept-Encoding", "gzip"),
    ]
    assert post(sigwarden, headers=headers).status == 200
    [received] = upstream.received
    forwarded = [
        (name, value) for name, value in received.headers if not name.lower().startswith(("x-webhook", "x-request-id"))
    ]
    assert forwarded == [("Host", "shop.example"), *headers, ("Content-Length", str(len(BODY)))]


def test_the_clients_request_id_is_passed_on(shared):
    sigwarden, upstream = shared
    post(sigwarden, headers={**signed_headers(BODY), "X-Request-Id": "sendcloud-delivery-7"})
    assert upstream.received[0].header("X-Request-Id") == "sendcloud-delivery-7"


def test_the_old_secret_of_the_route_also_verifies_and_is_named(shared):
    sigwarden, upstream = shared
    assert post(sigwarden, headers=signed_headers(BODY, OLD_SECRET)).status == 200
    assert upstream.received[0].header("X-Webhook-Key-Id") == "sendcloud-old"


def test_upper_case_hex_verifies(shared):
    sigwarden, upstream = shared
    assert post(sigwarden, headers={"Sendcloud-Signature": sign(BODY).upper()}).status == 200
    assert upstream.received[0].header("Sendcloud-Signature") == sign(BODY).upper()  # forwarded as received


def test_surrounding_spaces_of_the_signature_are_ignored(shared):
    sigwarden, upstream = shared
    head = b"POST /webhooks/sendcloud HTTP/1.1\r\nHost: shop\r\nContent-Length: %d\r\n" % len(BODY)
    answer = exchange(sigwarden.port, head + b"Sendcloud-Signature: \t " + sign(BODY).encode() + b"  \r\n\r\n" + BODY)
    assert answer.status == 200
    assert len(upstream.received) == 1


def test_the_host_header_is_kept(shared):
    sigwarden, upstream = shared
    post(sigwarden, headers={"Host": "shop.example.com:8443", **signed_headers(BODY)})
    assert upstream.received[0].header("Host") == "shop.example.com:8443"


def test_every_http_method_is_verified(shared):
    sigwarden, upstream = shared
    for method in ("PUT", "PATCH", "DELETE", "GET"):
        upstream.received.clear()
        refused = exchange(
            sigwarden.port, request_bytes(method, "/webhooks/sendcloud", BODY, {"Content-Length": str(len(BODY))})
        )
        assert refused.status == 401, method
        assert upstream.received == []
        answer = exchange(sigwarden.port, request_bytes(method, "/webhooks/sendcloud", BODY, signed_headers(BODY)))
        assert answer.status == 200, method
        assert upstream.received[0].method == method


def test_a_chunked_body_is_verified_over_the_dechunked_bytes(shared):
    sigwarden, upstream = shared
    head = [("Transfer-Encoding", "chunked"), *signed_headers(BODY).items()]
    answer = exchange(sigwarden.port, request_bytes("POST", "/webhooks/sendcloud", chunked(BODY, 7), head))
    assert answer.status == 200
    [received] = upstream.received
    assert received.body == BODY
    assert received.header("X-Webhook-Verified") == "true"


def test_a_chunked_body_signed_over_its_chunked_framing_is_refused(shared):
    sigwarden, upstream = shared
    framed = chunked(BODY, 7)
    head = [("Transfer-Encoding", "chunked"), ("Sendcloud-Signature", sign(framed))]
    assert_refused(
        exchange(sigwarden.port, request_bytes("POST", "/webhooks/sendcloud", framed, head)),
        401,
        "invalid_signature",
        upstream,
    )


def test_the_body_is_verified_before_content_decoding(shared):
    sigwarden, upstream = shared
    import gzip

    compressed = gzip.compress(BODY)
    headers = {"Content-Encoding": "gzip", "Sendcloud-Signature": sign(compressed)}
    assert post(sigwarden, body=compressed, headers=headers).status == 200
    assert upstream.received[0].body == compressed
    upstream.received.clear()
    headers = {"Content-Encoding": "gzip", "Sendcloud-Signature": sign(BODY)}
    assert_refused(post(sigwarden, body=compressed, headers=headers), 401, "invalid_signature", upstream)


def test_keep_alive_requests_are_each_verified(shared):
    sigwarden, upstream = shared
    with socket.create_connection(("127.0.0.1", sigwarden.port), timeout=10) as sock:
        sock.sendall(request_bytes("POST", "/webhooks/sendcloud", BODY, signed_headers(BODY)))
        assert read_answer(sock).status == 200
        sock.sendall(request_bytes("POST", "/webhooks/sendcloud", BODY, {"Sendcloud-Signature": "0" * 64}))
        assert read_answer(sock).status == 401
        sock.sendall(request_bytes("POST", "/webhooks/sendcloud", BODY, signed_headers(BODY, OLD_SECRET)))
        assert read_answer(sock).status == 200
    assert [received.header("X-Webhook-Key-Id") for received in upstream.received] == ["sendcloud", "sendcloud-old"]


# --- refused ---------------------------------------------------------------------------------


def test_a_missing_signature_is_refused(shared):
    sigwarden, upstream = shared
    assert_refused(post(sigwarden, headers={"Content-Type": "application/json"}), 401, "missing_signature", upstream)


@pytest.mark.parametrize(
    "value",
    ["", "0" * 63, "0" * 65, "z" * 64, "sha256=" + "0" * 64, "0" * 32 + " " + "0" * 32],
)
def test_a_malformed_signature_is_refused(shared, value):
    sigwarden, upstream = shared
    assert_refused(post(sigwarden, headers={"Sendcloud-Signature": value}), 401, "malformed_signature", upstream)


def test_a_duplicated_signature_is_refused_even_when_valid(shared):
    sigwarden, upstream = shared
    headers = [("Sendcloud-Signature", sign(BODY)), ("Sendcloud-Signature", sign(BODY))]
    assert_refused(post(sigwarden, headers=headers), 401, "malformed_signature", upstream)
    headers = [("Sendcloud-Signature", sign(BODY)), ("sendcloud-signature", "0" * 64)]
    assert_refused(post(sigwarden, headers=headers), 401, "malformed_signature", upstream)


def test_a_wrong_signature_is_refused(shared):
    sigwarden, upstream = shared
    answer = post(sigwarden, headers=signed_headers(BODY, "another-integrations-secret"))
    assert_refused(answer, 401, "invalid_signature", upstream)
    assert answer.json()["message"] == "The signature or credential does not match."


def test_reserialised_json_is_refused(shared):
    sigwarden, upstream = shared
    compact = json.dumps(json.loads(BODY), separators=(",", ":")).encode()
    unescaped = json.dumps(json.loads(BODY), ensure_ascii=False).encode()
    for body in (compact, unescaped, BODY + b"\n"):
        assert_refused(post(sigwarden, body=body, headers=signed_headers(BODY)), 401, "invalid_signature", upstream)


def test_a_refusal_reveals_no_secret_signature_version_or_upstream(shared):
    sigwarden, upstream = shared
    answer = post(sigwarden, headers={"Sendcloud-Signature": "0" * 64})
    for secret_information in (SECRET, OLD_SECRET, sign(BODY), sign(BODY, OLD_SECRET), "sendcloud-old"):
        assert secret_information.encode() not in answer.raw
    assert b"mitmproxy" not in answer.raw.lower()
    assert str(upstream.port).encode() not in answer.raw
    assert answer.header("Server") is None


def test_refused_requests_open_no_upstream_connection(shared):
    sigwarden, upstream = shared
    with counted_connections(upstream) as accepted:
        post(sigwarden, headers={})
        post(sigwarden, headers={"Sendcloud-Signature": "0" * 64})
        post(sigwarden, headers={"Sendcloud-Signature": "nope"})
        exchange(sigwarden.port, request_bytes("POST", "/webhooks/sendcloud", b"", {"Content-Length": str(10 * LIMIT)}))
        assert accepted == []
        assert post(sigwarden).status == 200
        assert len(accepted) == 1  # the counter counts: the verified one connected
    assert len(upstream.received) == 1


# --- forged verdict headers -------------------------------------------------------------------

SPOOFED = [
    ("X-Webhook-Verified", "true"),
    ("x-webhook-key-id", "sendcloud"),
    ("X_Webhook_Verified", "true"),
    ("X_WEBHOOK_KEY_ID", "sendcloud"),
    ("x-Webhook_verify-Error", "none"),
    ("X.Webhook.Verified", "true"),
]


def verdict_headers(received):
    return [
        (name, value)
        for name, value in received.headers
        if name.lower().replace("_", "-").replace(".", "-").startswith("x-webhook")
    ]


def test_spoofed_verdict_headers_are_stripped_on_an_unprotected_path(shared):
    sigwarden, upstream = shared
    answer = exchange(sigwarden.port, request_bytes("GET", "/shop/cart", headers=SPOOFED))
    assert answer.status == 200
    assert verdict_headers(upstream.received[0]) == []


def test_spoofed_verdict_headers_are_replaced_on_a_protected_path(shared):
    sigwarden, upstream = shared
    headers = [*SPOOFED, ("X-Webhook-Key-Id", "attacker"), *signed_headers(BODY, OLD_SECRET).items()]
    assert post(sigwarden, headers=headers).status == 200
    assert verdict_headers(upstream.received[0]) == [
        ("X-Webhook-Verified", "true"),
        ("X-Webhook-Key-Id", "sendcloud-old"),
    ]


def test_spoofed_verdict_headers_do_not_get_a_forged_request_through(shared):
    sigwarden, upstream = shared
    assert_refused(post(sigwarden, headers=SPOOFED), 401, "missing_signature", upstream)


# --- paths -------------------------------------------------------------------------------------

PATH_VARIANTS = [
    "/WEBHOOKS/SendCloud",
    "/webhooks/sendcloud/",
    "//webhooks//sendcloud",
    "/webhooks%2fsendcloud",
    "/webhooks%2Fsendcloud",
    "/webhooks%252fsendcloud",
    "/webhooks%5csendcloud",
    "/webhooks\\sendcloud",
    "/webhooks/./sendcloud",
    "/webhooks/x/../sendcloud",
    "/x/%2e%2e/webhooks/sendcloud",
    "/webhooks/sendcloud;jsessionid=1",
    "/webhooks;a/sendcloud",
    "/webhooks/sendcl%6fud",
    "/webhooks/sendcl%256fud",
    "/webhooks%c0%afsendcloud",
    "/webhooks/send%ffcloud",
    "/webhooks/sendcloud%00",
    "/webhooks/sendcloud%3f",
    "/index.php/webhooks/sendcloud",
    "/INDEX.PHP/webhooks/sendcloud/",
    "/index.php?route=sendcloud/webhook",
    "/index.php?route=sendcloud%2Fwebhook",
    "/index.php?a=1&route=Sendcloud/Webhook&b=2",
    "/index.php?route=other&route=sendcloud/webhook",
    "/index.php?route=send-cloud/webhook",
    "/index.php?%20route=sendcloud/webhook",
    "/index.php;x?route=sendcloud/webhook",
]


@pytest.mark.parametrize("target", PATH_VARIANTS)
def test_every_spelling_of_a_protected_path_is_protected(shared, target):
    sigwarden, upstream = shared
    assert_refused(
        exchange(sigwarden.port, request_bytes("POST", target, BODY, {"Content-Length": str(len(BODY))})),
        401,
        "missing_signature",
        upstream,
    )


def test_a_raw_fragment_in_the_target_is_refused_on_every_path(shared):
    # RFC 9112: no `#` in a request target; routers disagree on where such a path ends (wire.py).
    sigwarden, upstream = shared
    for target in ("/webhooks/sendcloud#fragment", "/shop#x"):
        raw = request_bytes("POST", target, BODY, {"Content-Length": str(len(BODY))})
        assert_refused(exchange(sigwarden.port, raw), 400, "bad_request", upstream)


@pytest.mark.parametrize(
    "target", ["/webhooks%c0%afsendcloud", "/index.php/webhooks/sendcloud", "/index.php?route=sendcloud/webhook"]
)
def test_a_variant_is_forwarded_in_its_original_spelling_when_verified(shared, target):
    sigwarden, upstream = shared
    answer = exchange(sigwarden.port, request_bytes("POST", target, BODY, signed_headers(BODY)))
    assert answer.status == 200
    assert upstream.received[0].path == target
    assert upstream.received[0].header("X-Webhook-Verified") == "true"


def test_raw_non_ascii_bytes_in_the_target_are_protected(shared):
    sigwarden, upstream = shared
    head = b"POST /webhooks\xc0\xafsendcloud HTTP/1.1\r\nHost: shop\r\nContent-Length: %d\r\n\r\n" % len(BODY)
    assert_refused(exchange(sigwarden.port, head + BODY), 401, "missing_signature", upstream)


@pytest.mark.parametrize(
    "target",
    ["/webhooks/sendcloudx", "/webhooks", "/webhooks/sendcloud/more", "/index.php", "/index.php?route=checkout"],
)
def test_neighbouring_paths_are_not_protected(shared, target):
    sigwarden, upstream = shared
    answer = exchange(sigwarden.port, request_bytes("POST", target, BODY, {"Content-Length": str(len(BODY))}))
    assert answer.status == 200
    [received] = upstream.received
    assert received.path == target
    assert received.body == BODY
    assert verdict_headers(received) == []


def test_an_absolute_form_target_is_matched_on_its_path_and_forwarded_in_origin_form(shared):
    sigwarden, upstream = shared
    forged = request_bytes("POST", "http://evil.example/webhooks/sendcloud", BODY, {"Host": "shop.example"})
    assert_refused(exchange(sigwarden.port, forged), 401, "missing_signature", upstream)
    genuine = request_bytes(
        "POST", "http://evil.example/webhooks/sendcloud", BODY, {"Host": "shop.example", **signed_headers(BODY)}
    )
    assert exchange(sigwarden.port, genuine).status == 200
    [received] = upstream.received
    assert received.path == "/webhooks/sendcloud"
    assert received.header("Host") == "shop.example"
    upstream.received.clear()
    passed = exchange(
        sigwarden.port, request_bytes("GET", "http://evil.example/shop?q=1", headers={"Host": "shop.example"})
    )
    assert passed.status == 200
    assert upstream.received[0].path == "/shop?q=1"


# --- body sizes --------------------------------------------------------------------------------


def test_a_declared_oversized_body_gets_413_before_the_body_is_sent(shared):
    sigwarden, upstream = shared
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", sigwarden.port), timeout=10) as sock:
        sock.sendall(
            request_bytes(
                "POST", "/webhooks/sendcloud", b"", {"Content-Length": str(50 * 1024 * 1024), **signed_headers(BODY)}
            )
        )
        answer = read_answer(sock)
    assert time.monotonic() - started < 5
    assert_refused(answer, 413, "body_too_large", upstream)
    assert answer.header("Connection") == "close"


def test_a_body_at_the_limit_is_verified(shared):
    sigwarden, upstream = shared
    body = b'{"pad": "' + b"x" * (LIMIT - 11) + b'"}'
    assert len(body) == LIMIT
    assert post(sigwarden, body=body, headers=signed_headers(body)).status == 200
    assert upstream.received[0].body == body
    upstream.received.clear()
    over = body + b" "
    assert_refused(post(sigwarden, body=over, headers=signed_headers(over)), 413, "body_too_large", upstream)


def test_an_oversized_chunked_body_gets_413_as_soon_as_it_passes_the_limit(shared):
    sigwarden, upstream = shared
    piece = b"x" * 8192
    sent = 0
    with socket.create_connection(("127.0.0.1", sigwarden.port), timeout=10) as sock:
        sock.sendall(
            request_bytes(
                "POST",
                "/webhooks/sendcloud",
                headers=[("Transfer-Encoding", "chunked"), ("Sendcloud-Signature", "0" * 64)],
            )
        )
        deadline = time.monotonic() + 10
        while not readable(sock) and time.monotonic() < deadline and sent < 64 * LIMIT:
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(piece)
            readable(sock, 0.005)
        answer = read_answer(sock)
    assert_refused(answer, 413, "body_too_large", upstream)
    assert LIMIT < sent < 32 * LIMIT  # answered soon after the limit (about 1 s of sending), not at the end


def test_a_small_chunked_body_with_a_wrong_signature_is_still_401(shared):
    sigwarden, upstream = shared
    head = [("Transfer-Encoding", "chunked"), ("Sendcloud-Signature", "0" * 64)]
    assert_refused(
        exchange(sigwarden.port, request_bytes("POST", "/webhooks/sendcloud", chunked(BODY, 10), head)),
        401,
        "invalid_signature",
        upstream,
    )


def test_an_unprotected_path_has_no_body_limit(shared):
    sigwarden, upstream = shared
    body = b"u" * (4 * LIMIT)
    answer = exchange(sigwarden.port, request_bytes("POST", "/upload", body))
    assert answer.status == 200
    assert upstream.received[0].body == body


# --- HTTP errors are answered in JSON ------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"GARBAGE\r\n\r\n",
        b"POST /webhooks/sendcloud HTTP/1.1\r\nHost: shop\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST /shop HTTP/1.1\r\nHost: shop\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        b"POST /shop HTTP/1.1\r\nHost: shop\r\nContent-Length: -1\r\n\r\n",
        b"POST /shop HTTP/1.1\r\nHost: shop\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"GET /shop HTTP/1.1\r\nHost: shop\r\nBad Header: x\r\n\r\n",
        b"POST webhooks/sendcloud HTTP/1.1\r\nHost: shop\r\nContent-Length: 0\r\n\r\n",
        b"POST /webhooks/sendcloud HTTP/1.1\r\nHost: shop\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        # request trailers: mitmproxy 12.3.1 raises NotImplementedError and leaves the client hanging
        b"POST /webhooks/sendcloud HTTP/1.1\r\nHost: shop\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\n{}\r\n0\r\nX-Webhook-Verified: true\r\n\r\n",
        # HTTP versions other than 1.0 and 1.1: h11 reads them, the upstream may not
        b"GET /shop HTTP/9.9\r\nHost: shop\r\n\r\n",
        b"POST /webhooks/sendcloud HTTP/2.0\r\nHost: shop\r\nContent-Length: 2\r\n\r\n{}",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    ],
)
def test_malformed_http_gets_a_json_400_and_reaches_nobody(shared, raw):
    sigwarden, upstream = shared
    with counted_connections(upstream) as accepted:
        answer = exchange(sigwarden.port, raw)
    assert_refused(answer, 400, "bad_request", upstream)
    assert accepted == []
    assert b"<html" not in answer.raw.lower() and b"mitmproxy" not in answer.raw.lower()


def test_a_malformed_chunk_in_a_streamed_unprotected_body_gets_a_json_400(shared):
    # Unprotected bodies stream: the upstream may already hold the head and the first chunk
    # (a connection is opened), but never a complete request.
    sigwarden, upstream = shared
    raw = b"POST /shop HTTP/1.1\r\nHost: shop\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX"
    assert_refused(exchange(sigwarden.port, raw), 400, "bad_request", upstream)


def test_request_trailers_on_an_unprotected_path_get_a_json_400_not_a_hang(shared):
    sigwarden, upstream = shared
    head = request_bytes("POST", "/shop", headers=[("Transfer-Encoding", "chunked")])
    with counted_connections(upstream) as accepted, socket.create_connection(("127.0.0.1", sigwarden.port)) as sock:
        sock.sendall(head + b"5\r\nhello\r\n")
        wait_until(lambda: accepted)  # the streamed request has started upstream
        sock.sendall(b"0\r\nX-Webhook-Verified: true\r\n\r\n")
        answer = read_answer(sock, deadline=5)
    assert answer.status == 400
    assert answer.json()["error"] == "bad_request"
    assert upstream.received == []  # the upstream saw an unfinished body, never a complete request


def test_a_refused_head_request_gets_no_body_and_the_connection_stays_in_step(shared):
    sigwarden, upstream = shared
    connection = http.client.HTTPConnection("127.0.0.1", sigwarden.port, timeout=10)
    try:
        connection.request("HEAD", "/webhooks/sendcloud")
        refused = connection.getresponse()
        assert refused.status == 401
        assert refused.read() == b""
        assert int(refused.getheader("Content-Length")) > 0  # the length a GET would have had
        connection.request("GET", "/shop")  # the same connection: nothing left over from the HEAD answer
        passed = connection.getresponse()
        assert (passed.status, passed.read()) == (200, upstream.reply)
    finally:
        connection.close()


def test_an_oversized_body_announced_with_expect_100_continue_gets_413_without_a_100(shared):
    sigwarden, upstream = shared
    headers = {"Expect": "100-continue", "Content-Length": str(10 * LIMIT), **signed_headers(BODY)}
    answer = exchange(sigwarden.port, request_bytes("POST", "/webhooks/sendcloud", headers=headers))
    assert not answer.raw.startswith(b"HTTP/1.1 100")
    assert_refused(answer, 413, "body_too_large", upstream)


def test_a_small_body_announced_with_expect_100_continue_is_verified(shared):
    sigwarden, upstream = shared
    headers = {"Expect": "100-continue", **signed_headers(BODY)}
    with socket.create_connection(("127.0.0.1", sigwarden.port), timeout=10) as sock:
        sock.sendall(
            request_bytes("POST", "/webhooks/sendcloud", headers={**headers, "Content-Length": str(len(BODY))})
        )
        interim = b""
        while b"\r\n\r\n" not in interim:  # the socket's timeout bounds the wait
            chunk = sock.recv(64)
            assert chunk, f"closed after {interim!r}"
            interim += chunk
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(BODY)
        assert read_answer(sock).status == 200
    assert upstream.received[0].body == BODY
