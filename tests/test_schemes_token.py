"""The token scheme: bearer, basic and API-key credentials, compared in constant time."""

from __future__ import annotations

import base64

import pytest

from schemes_support import outcome, sign, verify
from sigwarden.outcomes import Outcome
from sigwarden.schemes import SCHEMES, token

# RFC 6750 §2.1 (The OAuth 2.0 Authorization Framework: Bearer Token Usage), https://www.rfc-editor.org/rfc/rfc6750
RFC6750_TOKEN = b"mF_9.B5f-4.1JqM"
# RFC 7617 §2 (The 'Basic' HTTP Authentication Scheme), https://www.rfc-editor.org/rfc/rfc7617:
# user "Aladdin", password "open sesame" -> "Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
RFC7617_CREDENTIALS = b"Aladdin:open sesame"
RFC7617_HEADER = "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="

SECRETS = [("token-new", b"new-token-0123456789abcdef"), ("token-old", b"old-token-0123456789abcdef")]


def test_bearer_token_of_rfc6750_verifies():
    verdict = verify("token", {"Authorization": "Bearer mF_9.B5f-4.1JqM"}, b"{}", [("sendcloud-v3", RFC6750_TOKEN)])
    assert verdict.outcome is Outcome.VERIFIED
    assert verdict.key_id == "sendcloud-v3"


def test_bearer_is_the_default_and_its_scheme_word_is_case_insensitive():
    assert outcome("token", {"authorization": "bearer   mF_9.B5f-4.1JqM "}, b"", [("t", RFC6750_TOKEN)]) is (
        Outcome.VERIFIED
    )


def test_any_secret_of_the_route_verifies_and_names_itself():
    verdict = verify("token", {"Authorization": "Bearer old-token-0123456789abcdef"}, b"", SECRETS)
    assert (verdict.outcome, verdict.key_id) == (Outcome.VERIFIED, "token-old")


@pytest.mark.parametrize(
    "value",
    [
        "Bearer new-token-0123456789abcde",  # one character short
        "Bearer new-token-0123456789abcdefX",  # one character more
        "Bearer NEW-TOKEN-0123456789ABCDEF",  # tokens are case-sensitive
        "Bearer x",
    ],
)
def test_a_wrong_bearer_token_is_invalid(value):
    assert outcome("token", {"Authorization": value}, b"", SECRETS) is Outcome.INVALID_SIGNATURE


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Basic bmV3LXRva2Vu"},  # another scheme than the route's
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer "},
        {"Authorization": "new-token-0123456789abcdef"},  # no scheme word
        {"Authorization": "Bearer two words"},
        [("Authorization", "Bearer new-token-0123456789abcdef"), ("Authorization", "Bearer x")],
    ],
)
def test_a_malformed_bearer_header_is_malformed(headers):
    assert outcome("token", headers, b"", SECRETS) is Outcome.MALFORMED_SIGNATURE


def test_no_credential_header_is_missing():
    assert outcome("token", {"X-Other": "Bearer x"}, b"", SECRETS) is Outcome.MISSING_SIGNATURE


def test_basic_credentials_of_rfc7617_verify():
    verdict = verify(
        "token", {"Authorization": RFC7617_HEADER}, b"", [("basic", RFC7617_CREDENTIALS)], {"auth": "basic"}
    )
    assert verdict.outcome is Outcome.VERIFIED


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Basic " + base64.b64encode(b"Aladdin:open sesamE").decode(), Outcome.INVALID_SIGNATURE),
        ("Basic " + base64.b64encode(b"aladdin:open sesame").decode(), Outcome.INVALID_SIGNATURE),
        ("Basic " + base64.b64encode(b"Aladdinopen sesame").decode(), Outcome.MALFORMED_SIGNATURE),  # no ':'
        ("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ", Outcome.MALFORMED_SIGNATURE),  # padding cut
        ("Basic !!!!", Outcome.MALFORMED_SIGNATURE),
        ("Bearer QWxhZGRpbjpvcGVuIHNlc2FtZQ==", Outcome.MALFORMED_SIGNATURE),
    ],
)
def test_basic_credentials_are_checked_whole(value, expected):
    secrets = [("basic", RFC7617_CREDENTIALS)]
    assert outcome("token", {"Authorization": value}, b"", secrets, {"auth": "basic"}) is expected


def test_api_key_header_is_read_from_the_configured_header():
    options = {"auth": "api_key", "header": "X-Api-Key"}
    assert outcome("token", {"x-api-key": "new-token-0123456789abcdef"}, b"", SECRETS, options) is Outcome.VERIFIED
    assert outcome("token", {"X-Api-Key": "nope"}, b"", SECRETS, options) is Outcome.INVALID_SIGNATURE
    assert outcome("token", {"X-Api-Key": "  "}, b"", SECRETS, options) is Outcome.MALFORMED_SIGNATURE
    # The credential in another header proves nothing.
    headers = {"Authorization": "new-token-0123456789abcdef"}
    assert outcome("token", headers, b"", SECRETS, options) is Outcome.MISSING_SIGNATURE


def test_the_body_plays_no_part():
    for body in (b"", b"{}", b"anything at all"):
        assert outcome("token", {"Authorization": "Bearer new-token-0123456789abcdef"}, body, SECRETS) is (
            Outcome.VERIFIED
        )


def test_every_secret_is_compared_on_equal_length_digests(monkeypatch):
    """No early exit and no length leak: each secret costs one compare of two 32-byte digests."""
    calls: list[tuple[int, int]] = []
    real = token.hmac.compare_digest

    def recording(a, b):
        calls.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(token.hmac, "compare_digest", recording)
    secrets = [("a", b"short"), ("b", b"new-token-0123456789abcdef"), ("c", b"a much longer secret than the rest")]
    verdict = verify("token", {"Authorization": "Bearer new-token-0123456789abcdef"}, b"", secrets)
    assert verdict.key_id == "b"
    assert calls == [(32, 32)] * 3


def test_the_credential_header_is_removed_only_when_asked():
    scheme = SCHEMES["token"]
    assert scheme.removed_headers(scheme.parse_options({})) == ()
    assert scheme.removed_headers(scheme.parse_options({"remove_credential": True})) == ("Authorization",)
    options = scheme.parse_options({"auth": "api_key", "header": "X-Api-Key", "remove_credential": True})
    assert scheme.removed_headers(options) == ("X-Api-Key",)


@pytest.mark.parametrize(
    ("options", "secret"),
    [
        ({}, b"new-token-0123456789abcdef"),
        ({"auth": "basic"}, b"shop:pa ss:word"),
        ({"auth": "api_key", "header": "X-Sendcloud-Key"}, b"new-token-0123456789abcdef"),
    ],
)
def test_sign_gives_what_verify_accepts(options, secret):
    headers = sign("token", b"{}", secret, options)
    assert outcome("token", headers, b"{}", [("t", secret)], options) is Outcome.VERIFIED


def test_sign_refuses_a_basic_secret_without_colon():
    with pytest.raises(ValueError, match="user:password"):
        sign("token", b"", b"no-colon-here", {"auth": "basic"})
