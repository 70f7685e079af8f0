"""Properties of the sendcloud scheme over any body and any secret."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sigwarden.outcomes import Outcome
from sigwarden.schemes import PlainHeaders, SignedRequest
from sigwarden.schemes.sendcloud import HEADER, SendcloudScheme, signature

SCHEME = SendcloudScheme()
bodies = st.binary(max_size=4096)
secrets = st.binary(min_size=1, max_size=64)


def outcome(body: bytes, header: str, route_secrets: list[bytes]) -> Outcome:
    request = SignedRequest("POST", "/webhooks/sendcloud", PlainHeaders({HEADER: header}), body)
    named = [(f"secret{index}", secret) for index, secret in enumerate(route_secrets)]
    return SCHEME.verify(request, named, {}).outcome


@given(bodies, secrets)
def test_a_signature_over_any_bytes_verifies(body, secret):
    assert outcome(body, signature(body, secret), [secret]) is Outcome.VERIFIED


@given(bodies, secrets)
def test_either_case_of_hex_verifies(body, secret):
    assert outcome(body, signature(body, secret).upper(), [secret]) is Outcome.VERIFIED


@given(st.binary(min_size=1, max_size=4096), secrets, st.data())
def test_any_one_byte_change_fails(body, secret, data):
    position = data.draw(st.integers(0, len(body) - 1))
    replacement = data.draw(st.integers(0, 255).filter(lambda byte: byte != body[position]))
    changed = body[:position] + bytes([replacement]) + body[position + 1 :]
    assert outcome(changed, signature(body, secret), [secret]) is Outcome.INVALID_SIGNATURE


@given(bodies, secrets, st.data())
def test_any_inserted_or_removed_byte_fails(body, secret, data):
    position = data.draw(st.integers(0, len(body)))
    inserted = body[:position] + bytes([data.draw(st.integers(0, 255))]) + body[position:]
    assert outcome(inserted, signature(body, secret), [secret]) is Outcome.INVALID_SIGNATURE
    if body:
        index = min(position, len(body) - 1)
        removed = body[:index] + body[index + 1 :]
        assert outcome(removed, signature(body, secret), [secret]) is Outcome.INVALID_SIGNATURE


@given(bodies, secrets, secrets)
def test_any_other_secret_fails(body, secret, other):
    if other == secret:
        return
    assert outcome(body, signature(body, other), [secret]) is Outcome.INVALID_SIGNATURE


@given(bodies, st.lists(secrets, min_size=1, max_size=4, unique=True), st.data())
def test_any_secret_of_the_route_verifies_and_is_named(body, route_secrets, data):
    index = data.draw(st.integers(0, len(route_secrets) - 1))
    request = SignedRequest("POST", "/", PlainHeaders({HEADER: signature(body, route_secrets[index])}), body)
    verdict = SCHEME.verify(request, [(f"secret{i}", s) for i, s in enumerate(route_secrets)], {})
    assert verdict.outcome is Outcome.VERIFIED
    # Two secrets could only both match if HMAC collided: the first match is the one named.
    assert verdict.key_id == f"secret{index}"


@given(bodies, secrets, st.data())
def test_any_change_to_the_hex_fails(body, secret, data):
    good = signature(body, secret)
    position = data.draw(st.integers(0, 63))
    digit = data.draw(st.sampled_from("0123456789abcdef").filter(lambda d: d != good[position]))
    changed = good[:position] + digit + good[position + 1 :]
    assert outcome(body, changed, [secret]) is Outcome.INVALID_SIGNATURE


@given(st.text(max_size=80))
def test_any_header_value_gets_a_verdict_and_never_raises(value):
    verdict = outcome(b"{}", value, [b"secret"])
    assert verdict in (Outcome.MALFORMED_SIGNATURE, Outcome.INVALID_SIGNATURE, Outcome.VERIFIED)
