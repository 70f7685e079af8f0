"""Path confusion between sigwarden and the application's router, against the real process.

A spelling of a protected route that some router could dispatch to the webhook must
be verified (unsigned: refused, signed: forwarded with its original path); a near miss
is passed on unmarked. `assert_nothing_unverified` checks every forwarded request
against an independent brute-force model of router readings (adversarial_support).
"""

from __future__ import annotations

import pytest

from adversarial_support import WEBHOOK_BODY, protected_by_some_reading, sign, start_guarded, stop_guarded

pytestmark = pytest.mark.e2e

BODY = WEBHOOK_BODY


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    running = start_guarded(tmp_path_factory.mktemp("paths"))
    yield running
    stop_guarded(running)


@pytest.fixture
def proxy(guarded):
    guarded.upstream.clear()
    return guarded


def post(target: str | bytes, signature: str | None) -> bytes:
    raw_target = target if isinstance(target, bytes) else target.encode()
    lines = [b"POST " + raw_target + b" HTTP/1.1", b"Host: shop.example", b"Content-Type: application/json"]
    if signature is not None:
        lines.append(f"Sendcloud-Signature: {signature}".encode())
    lines.append(f"Content-Length: {len(BODY)}".encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + BODY


PROTECTED_SPELLINGS = [
    "/webhooks/sendcloud",
    # case, including Unicode case that case-insensitive routers fold (ſ → S, ı → I)
    "/Webhooks/SendCloud",
    "/WEBHOOKS/SENDCLOUD",
    "/webhooks/ſendcloud",
    "/webhooks/%C5%BFendcloud",
    "/ındex.php/webhooks/sendcloud",
    # slashes, dot segments, trailing slash
    "/webhooks/sendcloud/",
    "//webhooks//sendcloud",
    "///webhooks/sendcloud//",
    "/./webhooks/./sendcloud",
    "/webhooks/sendcloud/.",
    "/x/../webhooks/sendcloud",
    "/webhooks/x/../sendcloud",
    "/../../webhooks/sendcloud",
    "/webhooks/sendcloud/x/..",
    "/webhooks/.../sendcloud",
    # percent-encoding, once, twice, thrice, mixed case
    "/webhooks/%73endcloud",
    "/%77%65%62%68%6f%6f%6b%73/%73%65%6e%64%63%6c%6f%75%64",
    "/webhooks%2fsendcloud",
    "/webhooks%2Fsendcloud",
    "/webhooks%252fsendcloud",
    "/webhooks%25252Fsendcloud",
    "/%2e/webhooks/sendcloud",
    "/x/%2e%2e/webhooks/sendcloud",
    "/x/%252e%252e/webhooks/sendcloud",
    "/x/.%2e/webhooks/sendcloud",
    "/webhooks/sendcloud%2f",
    "/webhooks/sendcloud%252f",
    # backslash, raw and encoded
    "/webhooks\\sendcloud",
    "/webhooks%5csendcloud",
    "/webhooks%5Csendcloud",
    "/webhooks%255csendcloud",
    "/x\\..\\webhooks\\sendcloud",
    # ;parameters
    "/webhooks;x=1/sendcloud",
    "/webhooks/sendcloud;jsessionid=ABC",
    "/webhooks/sendcloud;",
    "/webhooks%3bx/sendcloud",
    "/webhooks/sendcloud%3b.css",
    # overlong UTF-8 for / . and \
    "/webhooks%c0%afsendcloud",
    "/webhooks%e0%80%afsendcloud",
    "/webhooks%f0%80%80%afsendcloud",
    "/webhooks%c1%9csendcloud",
    "/x/%c0%ae%c0%ae/webhooks/sendcloud",
    b"/webhooks\xc0\xafsendcloud",
    # trailing dots and spaces (Windows, some routers)
    "/webhooks/sendcloud.",
    "/webhooks/sendcloud..",
    "/webhooks/sendcloud%2e",
    "/webhooks/sendcloud%20",
    "/webhooks/sendcloud%20%2e%20",
    "/webhooks./sendcloud",
    # decoded ?, # and NUL where a router that decodes first ends the path
    "/webhooks/sendcloud%3f",
    "/webhooks/sendcloud%3Fx=1",
    "/webhooks/sendcloud%253fx",
    "/webhooks/sendcloud%23frag",
    "/webhooks/sendcloud%00",
    "/webhooks/sendcloud%00.php",
    "/webhooks/sendcloud%2500",
    "/other%3f/../webhooks/sendcloud",
    "/other%23/../webhooks/sendcloud",
    # fullwidth and compatibility forms ("best fit" mappings)
    "/%EF%BC%8Fwebhooks%EF%BC%8Fsendcloud",
    "/ｗｅｂｈｏｏｋｓ/ｓｅｎｄｃｌｏｕｄ",
    # real query strings
    "/webhooks/sendcloud?",
    "/webhooks/sendcloud?x=1",
    "/webhooks/sendcloud??x",
    "/webhooks/sendcloud?/../../other",
    # aliases
    "/index.php/webhooks/sendcloud",
    "/INDEX.PHP/Webhooks/Sendcloud",
    "/index.php%2fwebhooks%2fsendcloud",
    "/index.php/./webhooks/sendcloud/",
    # query-routed: any occurrence, decoded, cleaned as Opencart cleans `route`
    "/index.php?route=sendcloud/webhook",
    "/index.php/?route=sendcloud/webhook",
    "/INDEX.php?route=sendcloud/webhook",
    "/index.php?route=sendcloud%2fwebhook",
    "/index.php?route=sendcloud%252Fwebhook",
    "/index.php?route=other&route=sendcloud/webhook",
    "/index.php?route=sendcloud/webhook&route=other",
    "/index.php?ROUTE=sendcloud/webhook",
    "/index.php?%72oute=sendcloud/webhook",
    "/index.php?route=SendCloud/WebHook",
    "/index.php?route=sendcloud/webhook/",
    "/index.php?route=/sendcloud//webhook",
    "/index.php?route=sendcloud/web-hook",
    "/index.php?route=sendcloud/web.hook",
    "/index.php?route=sendcloud/web%00hook",
    "/index.php?route=sendcloud/webhook/..",
    "/index.php?route=x/../sendcloud/webhook",
    "/index.php?%20route=sendcloud/webhook",
    "/index.php?+route=sendcloud/webhook",
    "/index.php?route=+sendcloud/webhook+",
    "/index.php?route=%20sendcloud/webhook",
    "/index.php?route[]=sendcloud/webhook",
    "/index.php?x=1;route=sendcloud/webhook",
    "http://other.example/index.php?route=sendcloud/webhook",
    # a front-controller route (path_prefix + query): every path the front controller answers
    "/shop?route=sendcloud/webhook",
    "/shop/?route=sendcloud/webhook",
    "/shop/index.php?route=sendcloud/webhook",
    "/shop/index.php/anything?route=sendcloud/webhook",
    "/SHOP/%69ndex.php?route=sendcloud%2Fwebhook",
]


def _id(target: str | bytes) -> str:
    return target.decode("latin-1") if isinstance(target, bytes) else target


@pytest.mark.parametrize("target", PROTECTED_SPELLINGS, ids=_id)
def test_spelling_of_a_protected_route_is_refused_unsigned(proxy, target):
    answers, _, exchanges = proxy.send(post(target, None))
    assert [(answer.status, answer.error) for answer in answers] == [(401, "missing_signature")]
    assert exchanges == []
    assert proxy.upstream.connections == 0


@pytest.mark.parametrize("target", PROTECTED_SPELLINGS[::7], ids=_id)
def test_spelling_of_a_protected_route_signed_is_forwarded_with_its_original_path(proxy, target):
    answers, _, exchanges = proxy.send(post(target, sign(BODY)))
    assert [answer.status for answer in answers] == [200]
    [exchange] = exchanges
    assert ("HTTP_X_WEBHOOK_VERIFIED", "true") in exchange.verdict()
    expected = target if isinstance(target, bytes) else target.encode()
    if expected.startswith(b"http://"):
        expected = b"/" + expected.split(b"/", 3)[3]
    assert exchange.request_line == b"POST " + expected + b" HTTP/1.1"


NEAR_MISSES = [
    "/webhooks/sendcloudx",
    "/webhooks/sendcloud2",
    "/webhooks/sendcloud-old",
    "/webhooks/send/cloud",
    "/webhooks",
    "/webhooks/",
    "/sendcloud",
    "/webhooks/sendcloud/x",
    "/x/webhooks/sendcloud",
    "/index.php",
    "/index.php/webhooks",
    "/index.php?route=sendcloud/webhookx",
    "/index.php?route=other/webhook",
    "/index.php?xroute=sendcloud/webhook",
    "/index.php?route=sendcloud",
    "/index.php%3froute=sendcloud/webhook",
    "/shopping?route=sendcloud/webhook",
    "/shop/products?category=sendcloud/webhook",
    "/webhooks/sendcloud/ü".encode(),
]


# Nobody's router reads these as the webhook, but a sanitiser that drops invalid bytes (iconv //IGNORE)
# or an application that decodes twice and cuts at `#` could: sigwarden protects them (fail closed).
PROTECTED_BY_CAUTION = [
    "/webhooks/sendcloud%ff",
    "/webhooks/sendcloud%c0",
    "/index.php?route=sendcloud/webhook%23x",
    b"/webhooks/sendcloud\xff",  # raw invalid UTF-8
    b"/webhooks/\xc0sendcloud",
]


@pytest.mark.parametrize("target", PROTECTED_BY_CAUTION, ids=_id)
def test_a_spelling_only_a_sanitiser_reads_as_protected_is_protected_too(proxy, target):
    answers, _, exchanges = proxy.send(post(target, None))
    assert [answer.status for answer in answers] == [401]
    assert exchanges == []
    answers, _, exchanges = proxy.send(post(target, sign(BODY)))
    assert [answer.status for answer in answers] == [200]
    assert ("HTTP_X_WEBHOOK_VERIFIED", "true") in exchanges[0].verdict()


@pytest.mark.parametrize("target", NEAR_MISSES, ids=_id)
def test_near_miss_is_passed_unmarked(proxy, target):
    assert not protected_by_some_reading(target)  # the model agrees nobody routes it to the webhook
    answers, _, exchanges = proxy.send(post(target, None))
    assert [answer.status for answer in answers] == [200]
    [exchange] = exchanges
    assert exchange.verdict() == []
    raw_target = target if isinstance(target, bytes) else target.encode()
    assert exchange.request_line == b"POST " + raw_target + b" HTTP/1.1"


def test_the_router_model_reads_every_protected_spelling_as_protected():
    # The model used on every forwarded request must itself recognise the spellings above.
    unrecognised = [
        target
        for target in PROTECTED_SPELLINGS
        if isinstance(target, str) and not target.startswith("/shop") and not protected_by_some_reading(target)
    ]
    assert unrecognised == []
