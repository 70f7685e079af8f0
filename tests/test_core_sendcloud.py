"""The sendcloud scheme as a pure function: headers and body bytes in, verdict out."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from sigwarden.outcomes import Outcome
from sigwarden.schemes import SCHEMES, PlainHeaders, SignedRequest
from sigwarden.schemes.sendcloud import HEADER, SendcloudScheme, signature

# Sendcloud's documented test vector (SENDCLOUD.md): json.dumps defaults, a space after the colon.
VECTOR_BODY = b'{"key": "value"}'
VECTOR_SECRET = b"secretkey"
VECTOR_SIGNATURE = "1eed4b3d41f4653ac64fd56f1bf1cbfd349e4482cbc11dff7134bd93e5da4b0a"

SCHEME = SendcloudScheme()
SECRETS = [("sendcloud", b"current-secret-0123456789"), ("sendcloud-old", b"previous-secret-0123456789")]


def check(headers, body: bytes = VECTOR_BODY, secrets=(("vector", VECTOR_SECRET),)):
    request = SignedRequest("POST", "/webhooks/sendcloud", PlainHeaders(headers), body)
    return SCHEME.verify(request, list(secrets), {})


def test_documented_vector_signs_to_the_documented_digest():
    assert signature(VECTOR_BODY, VECTOR_SECRET) == VECTOR_SIGNATURE


def test_documented_vector_verifies():
    verdict = check({HEADER: VECTOR_SIGNATURE})
    assert verdict.outcome is Outcome.VERIFIED
    assert verdict.key_id == "vector"
    assert verdict.verified


def test_compact_reserialised_json_does_not_verify():
    verdict = check({HEADER: VECTOR_SIGNATURE}, body=b'{"key":"value"}')
    assert verdict.outcome is Outcome.INVALID_SIGNATURE
    assert verdict.key_id is None
    assert not verdict.verified


def test_upper_case_hex_verifies():
    assert check({HEADER: VECTOR_SIGNATURE.upper()}).outcome is Outcome.VERIFIED


def test_mixed_case_hex_verifies():
    mixed = "".join(c.upper() if i % 2 else c for i, c in enumerate(VECTOR_SIGNATURE))
    assert check({HEADER: mixed}).outcome is Outcome.VERIFIED


@pytest.mark.parametrize("padded", [f" {VECTOR_SIGNATURE}", f"{VECTOR_SIGNATURE}  ", f"\t{VECTOR_SIGNATURE} "])
def test_surrounding_spaces_are_ignored(padded):
    assert check({HEADER: padded}).outcome is Outcome.VERIFIED


def test_header_name_is_case_insensitive():
    assert check({"sendcloud-signature": VECTOR_SIGNATURE}).outcome is Outcome.VERIFIED
    assert check({"SENDCLOUD-SIGNATURE": VECTOR_SIGNATURE}).outcome is Outcome.VERIFIED


def test_no_header_is_missing_signature():
    assert check({}).outcome is Outcome.MISSING_SIGNATURE


def test_a_similar_header_name_is_not_the_signature():
    # Public receivers read X-Sendcloud-Signature, which Sendcloud never sends.
    assert check({"X-Sendcloud-Signature": VECTOR_SIGNATURE}).outcome is Outcome.MISSING_SIGNATURE
    assert check({"Sendcloud_Signature": VECTOR_SIGNATURE}).outcome is Outcome.MISSING_SIGNATURE


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        VECTOR_SIGNATURE[:63],
        VECTOR_SIGNATURE[:-2],
        VECTOR_SIGNATURE + "0",
        VECTOR_SIGNATURE + "00",
        "g" + VECTOR_SIGNATURE[1:],
        VECTOR_SIGNATURE[:32] + " " + VECTOR_SIGNATURE[32:],
        "sha256=" + VECTOR_SIGNATURE,
        "0x" + VECTOR_SIGNATURE[2:],
        VECTOR_SIGNATURE[:63] + "\u0660",  # an Arabic-Indic digit: not hex
        VECTOR_SIGNATURE + "\n" + VECTOR_SIGNATURE,
        f"{VECTOR_SIGNATURE}, {VECTOR_SIGNATURE}",
        hashlib.sha256(VECTOR_BODY).digest().hex()[:40],  # a SHA-1-sized value
    ],
)
def test_anything_but_64_hex_characters_is_malformed(value):
    assert check({HEADER: value}).outcome is Outcome.MALFORMED_SIGNATURE


def test_the_header_given_twice_is_malformed_even_when_both_are_valid():
    headers = [(HEADER, VECTOR_SIGNATURE), (HEADER, VECTOR_SIGNATURE)]
    assert check(headers).outcome is Outcome.MALFORMED_SIGNATURE


def test_the_header_given_twice_in_different_case_is_malformed():
    headers = [(HEADER, VECTOR_SIGNATURE), ("sendcloud-signature", "0" * 64)]
    assert check(headers).outcome is Outcome.MALFORMED_SIGNATURE


def test_a_well_formed_wrong_signature_is_invalid():
    assert check({HEADER: "0" * 64}).outcome is Outcome.INVALID_SIGNATURE


def test_each_secret_of_the_route_verifies_and_names_itself():
    body = b'{"action": "parcel_status_changed", "timestamp": 1764320000000}'
    for name, secret in SECRETS:
        verdict = check({HEADER: signature(body, secret)}, body, SECRETS)
        assert verdict.outcome is Outcome.VERIFIED
        assert verdict.key_id == name


def test_a_secret_that_is_not_the_routes_does_not_verify():
    body = b'{"action": "parcel_status_changed"}'
    verdict = check({HEADER: signature(body, b"another-integration-secret")}, body, SECRETS)
    assert verdict.outcome is Outcome.INVALID_SIGNATURE


def test_no_usable_secret_never_verifies():
    assert check({HEADER: VECTOR_SIGNATURE}, secrets=()).outcome is Outcome.INVALID_SIGNATURE


def test_the_empty_body_is_signed_like_any_other():
    empty = signature(b"", VECTOR_SECRET)
    assert empty == hmac.new(VECTOR_SECRET, b"", hashlib.sha256).hexdigest()
    assert check({HEADER: empty}, body=b"").outcome is Outcome.VERIFIED
    assert check({HEADER: empty}, body=b" ").outcome is Outcome.INVALID_SIGNATURE


def test_the_signature_covers_the_exact_bytes_not_the_text():
    # Same JSON text, different bytes: a BOM, a trailing newline, a non-ASCII escape written out.
    body = b'{"name": "Zo\\u00eb"}'
    signed = signature(body, VECTOR_SECRET)
    for variant in (b"\xef\xbb\xbf" + body, body + b"\n", '{"name": "Zoë"}'.encode()):
        assert check({HEADER: signed}, body=variant).outcome is Outcome.INVALID_SIGNATURE


def test_every_secret_is_tried_so_timing_does_not_tell_which_matched(monkeypatch):
    body = b"{}"
    header = {HEADER: signature(body, SECRETS[0][1])}
    keys_tried = []
    original = hmac.new

    def recording_new(key, msg=None, digestmod=None):
        keys_tried.append(bytes(key))
        return original(key, msg, digestmod)

    monkeypatch.setattr(hmac, "new", recording_new)
    verdict = check(header, body, SECRETS)
    assert verdict.key_id == "sendcloud"
    assert keys_tried == [secret for _, secret in SECRETS]


def test_sign_returns_the_header_a_genuine_sender_adds():
    assert SCHEME.sign(VECTOR_BODY, VECTOR_SECRET, {}) == {"Sendcloud-Signature": VECTOR_SIGNATURE}


def test_the_registry_names_sendcloud():
    assert SCHEMES["sendcloud"].name == "sendcloud"
    assert SCHEMES["sendcloud"].parse_options({}) == {}
