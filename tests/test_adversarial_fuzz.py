"""Fuzzing the decision: "forwarded ⇒ verified by us, or unprotected and unmarked".

The addon target drives the real `Sigwarden` addon (mitmproxy's taddons context,
real `http.HTTPFlow`s) through the same steps as the proxy: mitmproxy's own header
validation, sigwarden's wire check (layers.GuardedHttpStream.check_invalid), the
early body-size decision (check_body_size), then the `requestheaders` and `request`
hooks. A flow still without a response after them is what mitmproxy forwards.

The raw target sends generated and mutated bytes to the real `sigwarden run` and
checks what a credulous upstream received (adversarial_support).

Brief in `make test`; `make fuzz` runs many more examples:
SIGWARDEN_FUZZ_EXAMPLES (addon target) and SIGWARDEN_RAW_FUZZ_EXAMPLES (raw target).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import inspect
import os
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from mitmproxy import http
from mitmproxy.net.http.validate import validate_headers
from mitmproxy.test import taddons, tflow

from adversarial_support import (
    SECRETS,
    WEBHOOK_BODY,
    adversarial_config,
    path_overrides,
    protected_by_some_reading,
    server_variable,
    sign,
    start_guarded,
    stop_guarded,
)
from sigwarden import paths, wire
from sigwarden.addon import Sigwarden
from sigwarden.decision import match_request, match_route

EXAMPLES = int(os.environ.get("SIGWARDEN_FUZZ_EXAMPLES", "250"))
RAW_EXAMPLES = int(os.environ.get("SIGWARDEN_RAW_FUZZ_EXAMPLES", "30"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)
RAW_FUZZ = settings(
    max_examples=RAW_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)
VERDICT_VARIABLES = {"HTTP_X_WEBHOOK_VERIFIED", "HTTP_X_WEBHOOK_KEY_ID", "HTTP_X_WEBHOOK_VERIFY_ERROR"}

# -- generated requests --------------------------------------------------------------------

SEPARATORS = "-_.~+!#$%&'*^`|"


@st.composite
def verdict_names(draw) -> str:
    words = draw(
        st.sampled_from(
            [["x", "webhook", "verified"], ["x", "webhook", "key", "id"], ["x", "webhook", "verify", "error"]]
        )
    )
    out = words[0]
    for word in words[1:]:
        out += draw(st.sampled_from(SEPARATORS)) + word
    return "".join(char.upper() if draw(st.booleans()) else char for char in out)


def _percent(char: str) -> str:
    return "".join(f"%{byte:02X}" for byte in char.encode())


PATH_PIECES = [
    "/",
    "//",
    "\\",
    "%2f",
    "%2F",
    "%252f",
    "%5c",
    "%255c",
    "%c0%af",
    "%e0%80%af",
    "/./",
    "/../",
    "/x/../",
    "/%2e/",
    "/%2e%2e/",
    ";x=1",
    ";",
    ".",
    "..",
    "%2e",
    "%20",
    " ",
    "%00",
    "%3f",
    "%253f",
    "%23",
    "?",
    "&",
    "=",
    "#",
    "%",
    "%ff",
    "\x00",
    "\r",
    "\t",
    "ſ",
    "ı",
    "／",
    "%EF%BC%8F",
    "+",
]
BASES = [
    "/webhooks/sendcloud",
    "/index.php/webhooks/sendcloud",
    "/index.php",
    "/shop/index.php",
    "/shop",
    "/",
    "/other",
]
QUERIES = [
    "",
    "?",
    "?route=sendcloud/webhook",
    "?route=sendcloud%2fwebhook",
    "?x=1&route=sendcloud/webhook",
    "?route=other",
]


@st.composite
def targets(draw) -> bytes:
    """A request target: a protected path or query spelled by random router-confusing edits, or noise."""
    text = draw(st.sampled_from(BASES))
    for _ in range(draw(st.integers(0, 4))):
        edit = draw(st.integers(0, 5))
        position = draw(st.integers(0, len(text)))
        if edit == 0 and text:  # percent-encode one character, once or twice
            index = min(position, len(text) - 1)
            encoded = _percent(text[index])
            if draw(st.booleans()):
                encoded = encoded.replace("%", "%25")
            text = text[:index] + encoded + text[index + 1 :]
        elif edit == 1:  # change case
            text = text[:position] + text[position:].swapcase()
        elif edit == 2:  # insert a confusing piece
            text = text[:position] + draw(st.sampled_from(PATH_PIECES)) + text[position:]
        elif edit == 3:
            text = text.replace("/", draw(st.sampled_from(["\\", "%2f", "//", "/./", "%5c", "%c0%af"])), 1)
        elif edit == 4:
            text = text + draw(st.sampled_from(["/", ".", "%20", ";a", "%00", "%3fx", "/..", "%23"]))
        else:
            text = text[:position] + draw(st.text(alphabet="/.%25afAF\\;?#&=ſ", max_size=4)) + text[position:]
    query = draw(st.sampled_from(QUERIES))
    if query and draw(st.booleans()):
        query = query.replace("route", draw(st.sampled_from(["ROUTE", "%72oute", " route", "route[]", "xroute"])))
    if query and draw(st.booleans()):
        query = query.replace(
            "webhook", draw(st.sampled_from(["web-hook", "WebHook", "webhook/..", "webhook%00", "web.hook"]))
        )
    raw = (text + query).encode("utf-8", "surrogateescape")
    if not raw.startswith(b"/"):
        raw = b"/" + raw
    return raw


header_values = st.one_of(
    st.sampled_from(["true", "false", "1", "sendcloud", "sendcloud-old", "", " true "]),
    st.text(max_size=12),
    st.binary(max_size=12).map(lambda raw: raw.decode("latin-1")),
)
token_names = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!#$%&'*+^`|~", min_size=1, max_size=12
)


ALL_SIGNATURE_KINDS = ("genuine", "genuine-old", "other-body", "forged", "garbage", "none", "twice")


@st.composite
def requests(draw, signature_kinds=ALL_SIGNATURE_KINDS) -> tuple[bytes, bytes, list[tuple[bytes, bytes]], bytes, str]:
    method = draw(st.sampled_from(["POST", "GET", "PUT", "PATCH", "DELETE", "OPTIONS", "post", "PoSt", "WEIRD"]))
    target = draw(targets())
    body = draw(st.one_of(st.just(WEBHOOK_BODY), st.binary(max_size=200), st.just(b"")))
    fields: list[tuple[bytes, bytes]] = [(b"Host", b"shop.example")]
    signature_kind = draw(st.sampled_from(signature_kinds))
    signature_name = draw(st.sampled_from(["Sendcloud-Signature", "sendcloud-signature", "SENDCLOUD-SIGNATURE"]))
    signature = {
        "genuine": sign(body),
        "genuine-old": sign(body, SECRETS["sendcloud-old"]),
        "other-body": sign(body + b"x"),
        "forged": "0" * 64,
        "garbage": draw(st.text(max_size=70)),
        "none": None,
        "twice": sign(body),
    }[signature_kind]
    if signature is not None:
        if draw(st.booleans()):
            signature = signature.upper() if draw(st.booleans()) else f"  {signature} "
        fields.append((signature_name.encode(), signature.encode("utf-8", "surrogateescape")))
    if signature_kind == "twice":
        fields.append((b"Sendcloud-Signature", draw(st.sampled_from([sign(body), "0" * 64])).encode()))
    for _ in range(draw(st.integers(0, 4))):
        name = draw(st.one_of(verdict_names(), token_names, st.sampled_from(["Authorization", "X-Request-Id", "Host"])))
        fields.append((name.encode("utf-8", "surrogateescape"), draw(header_values).encode("utf-8", "surrogateescape")))
    if draw(st.integers(0, 4)) == 0:
        name = draw(st.sampled_from(["X-Original-URL", "x_rewrite_url", "X-Original-URI", "X.Forwarded.Uri"]))
        fields.append((name.encode(), draw(targets())))
    draw(st.randoms()).shuffle(fields)
    authority = draw(st.sampled_from([b"", b"", b"other.example", b"shop.example:80"]))
    return method.encode(), target, fields, body, authority.decode()


def make_flow(method: bytes, target: bytes, fields: list[tuple[bytes, bytes]], body: bytes, authority: str):
    request = http.Request(
        host="127.0.0.1",
        port=8000,
        method=method,
        scheme=b"http",
        authority=authority.encode(),
        path=target,
        http_version=b"HTTP/1.1",
        headers=http.Headers(fields),
        content=None,
        trailers=None,
        timestamp_start=0.0,
        timestamp_end=None,
    )
    request.data.content = body  # raw bytes as received, no content decoding
    return tflow.tflow(req=request)


def proxy_stage(addon: Sigwarden, flow: http.HTTPFlow) -> str:
    """The proxy's steps for one request: where it was refused, or "forwarded" (mitmproxy sends it upstream)."""
    try:
        validate_headers(flow.request)  # mitmproxy's validate_inbound_headers
    except ValueError:
        return "refused by mitmproxy"
    if wire.head_problem(flow.request.data.path, flow.request.headers.fields) is not None:
        return "refused on the wire"
    if flow.request.raw_content and addon.body_limit_outcome(flow, len(flow.request.raw_content)) is not None:
        return "refused by size"
    addon.requestheaders(flow)
    if flow.response is not None:
        return "refused at requestheaders"
    outcome = addon.request(flow)
    if inspect.isawaitable(outcome):  # the hook may wait (dedupe): run it to completion
        asyncio.run(outcome)
    if flow.response is not None or flow.error is not None:
        return "refused at request"
    return "forwarded"


def assert_invariant(flow: http.HTTPFlow, origin_target: bytes, routes) -> None:
    """forwarded ⇒ (verified, with exactly our verdict headers) or (unprotected, with no verdict header)."""
    request = flow.request
    fields = [
        (server_variable(name), value.decode("utf-8", "surrogateescape")) for name, value in request.headers.fields
    ]
    verdict = [(key, value) for key, value in fields if key in VERDICT_VARIABLES]
    context = f"forwarded {request.method} {request.data.path!r} {request.headers.fields!r} {request.raw_content!r}"
    if verdict:
        assert sorted(key for key, _ in verdict) == ["HTTP_X_WEBHOOK_KEY_ID", "HTTP_X_WEBHOOK_VERIFIED"], context
        values = dict(verdict)
        assert values["HTTP_X_WEBHOOK_VERIFIED"] == "true", context
        secret = SECRETS[values["HTTP_X_WEBHOOK_KEY_ID"]]
        [given_signature] = request.headers.get_all("Sendcloud-Signature")
        expected = hmac.new(secret.encode(), request.raw_content or b"", hashlib.sha256).hexdigest()
        assert hmac.compare_digest(expected.encode(), given_signature.strip().lower().encode("utf-8")), context
    else:
        headers = [
            (name.decode("latin-1"), value.decode("utf-8", "surrogateescape")) for name, value in request.headers.fields
        ]
        assert match_request(routes, request.path, headers) is None, context  # sigwarden itself found no route
        assert not protected_by_some_reading(origin_target), context  # nor could any router
        for target in path_overrides(fields):
            assert not protected_by_some_reading(target), context
    # nothing that lenient parsers split or fold reaches the upstream
    for _, value in request.headers.fields:
        assert b"\r" not in value and b"\n" not in value and b"\x00" not in value, context


# -- the addon target ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_config(tmp_path_factory) -> Path:
    config = adversarial_config("http://127.0.0.1:8000", admin_listen=None)
    config["secrets"] = {name: {"value": value} for name, value in SECRETS.items()}
    config["log_level"] = "error"
    path = tmp_path_factory.mktemp("fuzz") / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def addon(fuzz_config):
    sigwarden = Sigwarden()
    with taddons.context(sigwarden) as context:
        context.configure(sigwarden, sigwarden_config=str(fuzz_config))
        yield sigwarden


@FUZZ
@given(generated=requests())
def test_fuzz_forwarded_means_verified_or_unprotected(addon, generated):
    method, target, fields, body, authority = generated
    flow = make_flow(method, target, fields, body, authority)
    stage = proxy_stage(addon, flow)
    event(stage)
    if stage == "forwarded":
        assert_invariant(flow, target, addon.runtime.config.routes)
        assert flow.request.authority == ""  # forwarded in origin form


@FUZZ
@given(generated=requests(signature_kinds=("genuine",)))
def test_fuzz_genuine_webhook_to_a_protected_spelling_is_forwarded_verified(addon, generated):
    method, target, fields, body, authority = generated
    signatures = [value for name, value in fields if name.lower() == b"sendcloud-signature"]
    assume(len(signatures) == 1)  # a generated header may be named Sendcloud-Signature too
    flow = make_flow(method, target, fields, body, authority)
    protected = match_route(addon.runtime.config.routes, flow.request.path) is not None
    stage = proxy_stage(addon, flow)
    event(f"{'protected' if protected else 'unprotected'}: {stage}")
    if protected and stage not in ("refused by mitmproxy", "refused on the wire"):
        # well-formed HTTP with the one genuine signature: never refused, always marked verified
        assert stage == "forwarded"
        assert flow.request.headers.get_all("X-Webhook-Verified") == ["true"]
        assert flow.request.headers.get_all("X-Webhook-Key-Id") == ["sendcloud"]


@FUZZ
@given(target=targets())
def test_fuzz_every_protected_router_reading_is_matched(addon, target):
    """The independent router model and sigwarden agree: a target some router reads as protected is matched."""
    if wire.head_problem(target, [(b"Host", b"shop")]) is not None:
        return  # refused before matching
    if protected_by_some_reading(target):
        assert match_route(addon.runtime.config.routes, target.decode("utf-8", "surrogateescape")) is not None


@FUZZ
@given(path=st.text(max_size=80), resolve_dots=st.booleans())
def test_fuzz_normal_form_is_a_fixed_point(path, resolve_dots):
    reading = paths.Reading(resolve_dots=resolve_dots)
    normal = paths.normalise_path("/" + path, reading)
    assert paths.normalise_path(normal, reading) == normal
    assert paths.normalise_path(normal) in paths.normal_forms(normal)


# -- the raw target against the real process -------------------------------------------------


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    running = start_guarded(tmp_path_factory.mktemp("rawfuzz"))
    yield running
    stop_guarded(running)


MUTATIONS = [b"\r", b"\n", b"\r\n", b"\r\n ", b"\x00", b" ", b"\t", b":", b"\r\n\r\n", b"0\r\n\r\n", b"chunked"]


@st.composite
def raw_requests(draw) -> bytes:
    method, target, fields, body, _ = draw(requests())
    framing = draw(st.sampled_from(["length", "chunked", "both", "none", "two-lengths"]))
    lines = [method + b" " + target + b" HTTP/1.1"] + [name + b": " + value for name, value in fields]
    if framing in ("length", "both"):
        lines.append(b"Content-Length: %d" % len(body))
    if framing == "two-lengths":
        lines += [b"Content-Length: %d" % len(body), b"Content-Length: %d" % (len(body) + 1)]
    if framing in ("chunked", "both"):
        lines.append(draw(st.sampled_from([b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked, identity"])))
        body = (b"%x\r\n%s\r\n" % (len(body), body) if body else b"") + b"0\r\n\r\n"
    data = b"\r\n".join(lines) + b"\r\n\r\n" + (body if framing != "none" else b"")
    for _ in range(draw(st.integers(0, 2))):
        position = draw(st.integers(0, len(data)))
        data = data[:position] + draw(st.sampled_from(MUTATIONS)) + data[position:]
    if draw(st.booleans()):
        data += (
            b"POST /webhooks/sendcloud HTTP/1.1\r\nHost: s\r\nX-Webhook-Verified: true\r\nContent-Length: 2\r\n\r\n{}"
        )
    return data


@pytest.mark.e2e
@RAW_FUZZ
@given(data=raw_requests())
def test_raw_fuzz_against_the_real_process(guarded, data):
    guarded.upstream.clear()
    # The client's FIN ends any request that waits for more bytes; the check is on what the upstream got.
    guarded.send(data, answers=99, half_close=True, wait_close=True, timeout=3)
    assert guarded.sigwarden.process.poll() is None
