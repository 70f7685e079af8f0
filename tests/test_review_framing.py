"""Framing headers in another spelling: `Transfer_Encoding`, `Content.Length`.

mitmproxy frames a request by `Transfer-Encoding` and `Content-Length` spelled exactly;
it forwards `Transfer_Encoding: chunked` as any other header. An application stack that
reads header names as CGI does (`HTTP_TRANSFER_ENCODING` from either spelling), as the
adversarial suite's upstream does, then frames the body differently from sigwarden, and
what sigwarden forwarded as a body becomes a request of its own upstream — one that
sigwarden never parsed, so never verified nor stripped: a forged webhook with a forged
verdict. Such requests are refused on every path, like the other ambiguous framings.
"""

from __future__ import annotations

import pytest

from adversarial_support import WEBHOOK_BODY, request_bytes, sign, start_guarded, stop_guarded
from harness import wait_until
from ops_support import metric_value

pytestmark = pytest.mark.e2e

SMUGGLED = request_bytes(
    "POST",
    "/webhooks/sendcloud",
    [("Host", "shop"), ("X-Webhook-Verified", "true"), ("X-Webhook-Key-Id", "sendcloud")],
    WEBHOOK_BODY,
)


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    running = start_guarded(tmp_path_factory.mktemp("framing"))
    yield running
    stop_guarded(running)


@pytest.fixture
def proxy(guarded):
    guarded.upstream.clear()
    return guarded


@pytest.mark.parametrize(
    "name, value",
    [
        ("Transfer_Encoding", "chunked"),
        ("Transfer.Encoding", "chunked"),
        ("TRANSFER_ENCODING", "chunked"),
        ("Content_Length", "0"),
        ("content.length", "0"),
        ("Content~Length", "0"),
    ],
)
@pytest.mark.parametrize("target", ["/shop/upload", "/webhooks/sendcloud"])
def test_a_framing_header_in_another_spelling_is_a_bad_request(proxy, name, value, target):
    body = b"0\r\n\r\n" + SMUGGLED
    headers = [("Host", "shop"), ("Sendcloud-Signature", sign(body)), (name, value)]
    answers, closed, exchanges = proxy.send(request_bytes("POST", target, headers, body), wait_close=True)
    assert [(answer.status, answer.error) for answer in answers] == [(400, "bad_request")]
    assert closed and exchanges == []


def test_the_exact_spellings_in_any_case_still_frame_as_usual(proxy):
    body = b"5\r\nhello\r\n0\r\n\r\n"
    data = request_bytes(
        "POST", "/shop/upload", [("Host", "shop"), ("TRANSFER-ENCODING", "chunked")], body, length=False
    )
    answers, _, exchanges = proxy.send(
        data + request_bytes("GET", "/shop/next", [("Host", "shop"), ("content-LENGTH", "0")], length=False), answers=2
    )
    assert [answer.status for answer in answers] == [200, 200]
    assert [(exchange.target, exchange.body) for exchange in exchanges] == [
        ("/shop/upload", b"hello"),
        ("/shop/next", b""),
    ]


# -- every refused head is counted and logged, mitmproxy's own checks included ----------------------


HEAD = b"POST /webhooks/sendcloud HTTP/1.1\r\nHost: shop\r\n"


def _bad_request_count(guarded) -> float:
    return (
        metric_value(guarded.sigwarden.admin_port, "sigwarden_requests_total", route="sendcloud", outcome="bad_request")
        or 0.0
    )


@pytest.mark.parametrize(
    "data",
    [
        HEAD + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
        b"POST /webhooks/sendcloud HTTP/1.1\r\nHost: shop\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
        b"POST /webhooks/sendcloud HTTP/1.1\r\nHost: shop\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"POST /webhooks/sendcloud HTTP/1.1\r\nHost: shop\r\nX Y: 1\r\nContent-Length: 0\r\n\r\n",
        b"POST /webhooks/sendcloud HTTP/1.1\r\nHost: shop\r\nContent_Length: 0\r\n\r\n",
        b"POST /webhooks/sendcloud HTTP/1.2\r\nHost: shop\r\nContent-Length: 0\r\n\r\n",
    ],
    ids=["cl-and-te", "two-lengths", "te-gzip", "space-in-name", "cgi-spelled-length", "http-1.2"],
)
def test_a_refused_head_on_a_protected_route_is_counted_and_logged_once(proxy, data):
    def logged() -> list[tuple]:
        return [
            (line["route"], line["outcome"], line["status"])
            for line in proxy.sigwarden.log_lines()
            if line.get("event") == "request" and line.get("outcome") == "bad_request"
        ]

    before, lines_before = _bad_request_count(proxy), len(logged())
    answers, closed, exchanges = proxy.send(data, wait_close=True)
    assert [(answer.status, answer.error) for answer in answers] == [(400, "bad_request")]
    assert closed and exchanges == []
    wait_until(lambda: _bad_request_count(proxy) == before + 1, deadline=5)
    assert logged()[lines_before:] == [("sendcloud", "bad_request", 400)]
