"""No tunnel past sigwarden: after an upstream's 101 that is not a WebSocket handshake, nothing is relayed raw.

mitmproxy relays raw bytes both ways after any 101 it cannot read as WebSocket
(its `rawtcp` option). An application with an endpoint that reflects a status
code (`/reflect?status=101`) keeps reading HTTP on that connection, so a client
could send it a forged webhook or a forged verdict header that sigwarden never
parses: the "WebSocket smuggling" of reverse proxies.
"""

from __future__ import annotations

import pytest

from adversarial_support import WEBHOOK_BODY, request_bytes
from harness import Sigwarden, base_config
from review_support import StatusReflectingUpstream, converse

pytestmark = pytest.mark.e2e

FORGED = request_bytes(
    "POST",
    "/webhooks/sendcloud",
    [("Host", "shop"), ("Sendcloud-Signature", "0" * 64), ("X-Webhook-Verified", "true")],
    WEBHOOK_BODY,
)


@pytest.fixture(scope="module")
def reflecting(tmp_path_factory):
    upstream = StatusReflectingUpstream().start()
    process = Sigwarden(tmp_path_factory.mktemp("tunnel"), base_config(upstream.url)).start()
    yield process, upstream
    process.stop()
    upstream.stop()


@pytest.fixture
def proxy(reflecting):
    process, upstream = reflecting
    upstream.clear()
    return process, upstream


@pytest.mark.parametrize(
    "target, headers",
    [
        ("/reflect?status=101", []),
        ("/reflect?status=101&header=Upgrade:h2c", []),
        # A WebSocket request that mitmproxy does not read as one (another version): relayed raw too.
        ("/reflect?status=101&header=Upgrade:websocket", [("Upgrade", "websocket"), ("Connection", "Upgrade")]),
    ],
    ids=["no-upgrade", "h2c-answer", "websocket-version-8"],
)
def test_a_101_that_is_not_websocket_opens_no_raw_tunnel(proxy, target, headers):
    process, upstream = proxy
    if headers:
        headers = [*headers, ("Sec-WebSocket-Version", "8"), ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")]
    first = request_bytes("GET", target, [("Host", "shop"), *headers], length=False)
    answers = converse(process.port, [first, FORGED])
    heads = upstream.received()
    assert heads and heads[0].startswith(b"GET /reflect"), heads
    smuggled = [head for head in heads if b"/webhooks/sendcloud" in head]
    assert smuggled == [], f"the upstream read a request sigwarden never saw: {smuggled!r}; client got {answers!r}"
    # The upstream's 101 is not relayed: the client is answered 502 in sigwarden's form, and the connection ends.
    assert answers[0].startswith(b"HTTP/1.1 502") and b"upstream_unavailable" in answers[0], answers
    assert answers[1] == b"", answers


def test_a_websocket_handshake_is_still_passed(proxy):
    """The upgrade sigwarden allows keeps working: a 101 WebSocket answer reaches the client."""
    process, upstream = proxy
    target = "/reflect?status=101&header=Upgrade:websocket&header=Connection:Upgrade"
    headers = [
        ("Host", "shop"),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ]
    [answer] = converse(process.port, [request_bytes("GET", target, headers, length=False)])
    assert answer.startswith(b"HTTP/1.1 101"), answer


# -- the addon alone (mitmdump loads it without sigwarden run's options) ----------------------


def test_the_addon_answers_a_non_websocket_101_itself_whatever_mitmproxy_options_say():
    from mitmproxy import http
    from mitmproxy.test import tflow

    from sigwarden.addon import Sigwarden
    from sigwarden.config import parse_config

    addon = Sigwarden()
    addon.install(
        parse_config(
            {
                "upstream": "http://127.0.0.1:8000",
                "secrets": {"s": {"value": "review-secret-0123456789"}},
                "routes": [{"name": "r", "path": "/webhooks/sendcloud", "secrets": ["s"]}],
            }
        )
    )
    tunnel = tflow.tflow(req=http.Request.make("GET", "http://shop/reflect"), resp=http.Response.make(101))
    websocket = tflow.twebsocketflow()
    for flow in (tunnel, websocket):
        addon.requestheaders(flow)
        addon.request(flow)
        addon.responseheaders(flow)
        addon.response(flow)
    assert tunnel.response is not None and tunnel.response.status_code == 502
    assert tunnel.response.headers["connection"] == "close"
    assert websocket.response is not None and websocket.response.status_code == 101
