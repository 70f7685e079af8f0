"""The provider presets, each against the test vectors its provider publishes (sources cited per test)."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from schemes_support import at, outcome, sign, verify
from sigwarden.outcomes import Outcome

# --- GitHub ------------------------------------------------------------------
# https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries ("Testing the webhook
# payload validation"): secret "It's a Secret to Everybody", payload "Hello, World!" ->
# X-Hub-Signature-256: sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17
GITHUB_SECRET = b"It's a Secret to Everybody"
GITHUB_BODY = b"Hello, World!"
GITHUB_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def test_github_documented_vector_verifies():
    verdict = verify("github", {"X-Hub-Signature-256": GITHUB_SIGNATURE}, GITHUB_BODY, [("github", GITHUB_SECRET)])
    assert (verdict.outcome, verdict.key_id) == (Outcome.VERIFIED, "github")


def test_github_sign_reproduces_the_documented_header():
    assert sign("github", GITHUB_BODY, GITHUB_SECRET) == {"X-Hub-Signature-256": GITHUB_SIGNATURE}


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        ({"X-Hub-Signature-256": GITHUB_SIGNATURE}, b"Hello, World?", Outcome.INVALID_SIGNATURE),
        (
            {"X-Hub-Signature-256": GITHUB_SIGNATURE.upper().replace("SHA256=", "sha256=")},
            GITHUB_BODY,
            Outcome.VERIFIED,
        ),
        ({"X-Hub-Signature-256": GITHUB_SIGNATURE.removeprefix("sha256=")}, GITHUB_BODY, Outcome.MALFORMED_SIGNATURE),
        ({"X-Hub-Signature-256": GITHUB_SIGNATURE[:-2]}, GITHUB_BODY, Outcome.MALFORMED_SIGNATURE),
        ({"X-Hub-Signature-256": ""}, GITHUB_BODY, Outcome.MALFORMED_SIGNATURE),
        # The legacy SHA-1 header alone is not accepted: the preset is the SHA-256 one.
        ({"X-Hub-Signature": "sha1=" + "0" * 40}, GITHUB_BODY, Outcome.MISSING_SIGNATURE),
    ],
)
def test_github_refusals(headers, body, expected):
    assert outcome("github", headers, body, [("github", GITHUB_SECRET)]) is expected


# --- Shopify -----------------------------------------------------------------
# Shopify publishes no vector in its documentation; its reference library does:
# Shopify/shopify-app-js packages/apps/shopify-api/lib/webhooks/__tests__/validate.test.ts ("returns true for
# valid request": rawBody '{"foo": "bar"}', hmac 'B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g='), keyed by
# apiSecretKey 'test_secret_key' from packages/apps/shopify-api/lib/__tests__/test-config.ts.
SHOPIFY_SECRET = b"test_secret_key"
SHOPIFY_BODY = b'{"foo": "bar"}'
SHOPIFY_HMAC = "B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g="


def test_shopify_library_vector_verifies():
    verdict = verify("shopify", {"X-Shopify-Hmac-Sha256": SHOPIFY_HMAC}, SHOPIFY_BODY, [("shopify", SHOPIFY_SECRET)])
    assert verdict.outcome is Outcome.VERIFIED


def test_shopify_sign_reproduces_the_library_header():
    assert sign("shopify", SHOPIFY_BODY, SHOPIFY_SECRET) == {"X-Shopify-Hmac-Sha256": SHOPIFY_HMAC}


@pytest.mark.parametrize(
    ("value", "body", "expected"),
    [
        (SHOPIFY_HMAC, b'{"foo":"bar"}', Outcome.INVALID_SIGNATURE),  # re-serialised JSON is another body
        ("fake", SHOPIFY_BODY, Outcome.MALFORMED_SIGNATURE),  # the library's own invalid header value
        (hmac.new(SHOPIFY_SECRET, SHOPIFY_BODY, hashlib.sha256).hexdigest(), SHOPIFY_BODY, Outcome.MALFORMED_SIGNATURE),
    ],
)
def test_shopify_refusals(value, body, expected):
    assert outcome("shopify", {"X-Shopify-Hmac-Sha256": value}, body, [("shopify", SHOPIFY_SECRET)]) is expected


# --- Standard Webhooks ---------------------------------------------------------
# standard-webhooks/standard-webhooks libraries/go/webhook_test.go TestWebhookSign and
# libraries/python/tests/test_webhooks.py test_sign_function: key "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
# msg id "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp 1614265330, payload '{"test": 2432232314}' ->
# "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=". The other values below come from the same test files.
SW_KEY = b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SW_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SW_TIMESTAMP = 1614265330
SW_BODY = b'{"test": 2432232314}'
SW_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
SW_OTHER = "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="  # the libraries' "invalid signature"


def sw_headers(**changes: str | None) -> dict[str, str]:
    headers = {"webhook-id": SW_ID, "webhook-timestamp": str(SW_TIMESTAMP), "webhook-signature": SW_SIGNATURE}
    headers.update({name.replace("_", "-"): value for name, value in changes.items() if value is not None})
    for name, value in changes.items():
        if value is None:
            del headers[name.replace("_", "-")]
    return headers


def sw_outcome(headers: dict[str, str], now: float = SW_TIMESTAMP, key: bytes = SW_KEY, **options) -> Outcome:
    return outcome("standard-webhooks", headers, SW_BODY, [("sw", key)], options, at(now))


def test_standard_webhooks_published_vector_verifies():
    assert sw_outcome(sw_headers()) is Outcome.VERIFIED


def test_standard_webhooks_key_with_or_without_whsec_prefix():
    # TestWebhookPrefix / test_signature_verification_with_and_without_prefix
    assert sw_outcome(sw_headers(), key=SW_KEY.removeprefix(b"whsec_")) is Outcome.VERIFIED


def test_standard_webhooks_several_signatures_one_valid():
    # "valid multi sig is valid": other versions and wrong v1 entries around the valid one
    value = " ".join([SW_OTHER, SW_OTHER.replace("v1,", "v2,"), SW_SIGNATURE, SW_OTHER])
    assert sw_outcome(sw_headers(webhook_signature=value)) is Outcome.VERIFIED


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"webhook_signature": None}, Outcome.MISSING_SIGNATURE),  # "missing signature returns error"
        ({"webhook_id": None}, Outcome.MALFORMED_SIGNATURE),  # "missing id returns error"
        ({"webhook_timestamp": None}, Outcome.MISSING_TIMESTAMP),  # "missing timestamp returns error"
        ({"webhook_signature": SW_OTHER}, Outcome.INVALID_SIGNATURE),  # "invalid signature is invalid"
        # test_invalid_signature_raises_error: the last base64 character changed
        ({"webhook_signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA="}, Outcome.INVALID_SIGNATURE),
        ({"webhook_timestamp": "hello"}, Outcome.INVALID_SIGNATURE),  # test_invalid_timestamp: signed, so changed
        ({"webhook_id": "msg_other"}, Outcome.INVALID_SIGNATURE),
        ({"webhook_signature": SW_SIGNATURE.replace("v1,", "v1a,")}, Outcome.MALFORMED_SIGNATURE),  # no v1 at all
    ],
)
def test_standard_webhooks_refusals(changes, expected):
    assert sw_outcome(sw_headers(**changes)) is expected


@pytest.mark.parametrize(
    ("offset", "expected"),
    [(0, Outcome.VERIFIED), (300, Outcome.VERIFIED), (-300, Outcome.VERIFIED), (301, Outcome.STALE_TIMESTAMP),
     (-301, Outcome.STALE_TIMESTAMP)],
)  # fmt: skip
def test_standard_webhooks_tolerance_of_five_minutes_both_ways(offset, expected):
    # "old timestamp fails" / "new timestamp fails": the libraries' tolerance is 5 minutes each way
    assert sw_outcome(sw_headers(), now=SW_TIMESTAMP + offset) is expected


def test_standard_webhooks_tolerance_is_a_route_option():
    assert sw_outcome(sw_headers(), now=SW_TIMESTAMP + 3600, tolerance="2h") is Outcome.VERIFIED
    assert sw_outcome(sw_headers(), now=SW_TIMESTAMP + 61, tolerance="1m") is Outcome.STALE_TIMESTAMP


def test_standard_webhooks_sign_roundtrip_with_generated_id():
    headers = sign("standard-webhooks", SW_BODY, SW_KEY, now=at(SW_TIMESTAMP))
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert headers["webhook-timestamp"] == str(SW_TIMESTAMP)
    assert sw_outcome(headers) is Outcome.VERIFIED


def test_standard_webhooks_key_that_is_not_base64_fails_closed():
    assert sw_outcome(sw_headers(), key=b"whsec_not base64!") is Outcome.SECRET_UNAVAILABLE


# --- Stripe ------------------------------------------------------------------
# Stripe publishes no fixed (secret, payload, header) vector: its libraries' tests sign on the fly with
# the current time. These tests follow stripe/stripe-python tests/test_webhook.py: DUMMY_WEBHOOK_PAYLOAD,
# DUMMY_WEBHOOK_SECRET "whsec_test_secret" (the whole string is the key) and generate_header's
# `t=<t>,v1=<hex HMAC-SHA256 of "<t>.<payload>">`; the digest itself is computed here, not published.
STRIPE_SECRET = b"whsec_test_secret"
STRIPE_BODY = b"""{
  "id": "evt_test_webhook",
  "object": "event",
  "data": { "object": { "id": "rdr_123", "object": "terminal.reader" } }
}"""
STRIPE_T = 1700000000


def stripe_header(timestamp: int = STRIPE_T, secret: bytes = STRIPE_SECRET, scheme: str = "v1", signature=None) -> str:
    if signature is None:
        signed = f"{timestamp}.".encode() + STRIPE_BODY
        signature = hmac.new(secret, signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},{scheme}={signature}"


def stripe_outcome(header: str, now: float = STRIPE_T, **options) -> Outcome:
    return outcome("stripe", {"Stripe-Signature": header}, STRIPE_BODY, [("stripe", STRIPE_SECRET)], options, at(now))


def test_stripe_valid_header_and_signature():
    assert stripe_outcome(stripe_header()) is Outcome.VERIFIED


def test_stripe_header_contains_a_valid_signature_among_bad_ones():
    # test_header_contains_valid_signature: `,v1=bad_signature` appended
    assert stripe_outcome(stripe_header() + ",v1=bad_signature") is Outcome.VERIFIED


def test_stripe_rolled_secret_gives_two_v1_signatures():
    # stripe-go webhook/client_test.go: header + ",v1=" + signature with testSecret + "_rolled_key"
    rolled = hmac.new(STRIPE_SECRET + b"_rolled_key", f"{STRIPE_T}.".encode() + STRIPE_BODY, hashlib.sha256)
    header = stripe_header(secret=b"whsec_some_other") + ",v1=" + rolled.hexdigest()
    secrets = [("stripe-old", STRIPE_SECRET), ("stripe-new", STRIPE_SECRET + b"_rolled_key")]
    verdict = verify("stripe", {"Stripe-Signature": header}, STRIPE_BODY, secrets, {}, at(STRIPE_T))
    assert (verdict.outcome, verdict.key_id) == (Outcome.VERIFIED, "stripe-new")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("i'm not even a real signature header", Outcome.MALFORMED_SIGNATURE),  # test_raise_on_malformed_header
        ("bad_header", Outcome.MALFORMED_SIGNATURE),  # test_raise_on_invalid_header
        (stripe_header(scheme="v0"), Outcome.MALFORMED_SIGNATURE),  # no signatures with expected scheme v1
        (stripe_header(signature="bad_signature"), Outcome.MALFORMED_SIGNATURE),  # not a hex digest
        (stripe_header(signature="ab" * 32), Outcome.INVALID_SIGNATURE),  # a digest, not the right one
        (stripe_header(secret=b"whsec_other"), Outcome.INVALID_SIGNATURE),
        ("v1=" + "ab" * 32, Outcome.MISSING_TIMESTAMP),  # stripe-go: "v1,t=1" is an invalid header too
        ("t=1,t=2,v1=" + "ab" * 32, Outcome.MALFORMED_SIGNATURE),
        (stripe_header(STRIPE_T + 1).replace(f"t={STRIPE_T + 1}", f"t={STRIPE_T}"), Outcome.INVALID_SIGNATURE),
    ],
)
def test_stripe_refusals(header, expected):
    assert stripe_outcome(header) is expected


def test_stripe_documented_header_format_is_read():
    # The example header of Stripe's webhook documentation (https://docs.stripe.com/webhooks, "Verify signatures
    # manually"); no secret or payload is published with it, so it can only be read, not verified.
    header = (
        "t=1492774577,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd,"
        "v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39"
    )
    assert stripe_outcome(header, now=1492774577) is Outcome.INVALID_SIGNATURE


def test_stripe_timestamp_outside_tolerance():
    # test_raise_on_timestamp_outside_tolerance: 15 s old with a tolerance of 10 s
    assert stripe_outcome(stripe_header(STRIPE_T - 15), tolerance="10s") is Outcome.STALE_TIMESTAMP
    assert stripe_outcome(stripe_header(STRIPE_T - 9), tolerance="10s") is Outcome.VERIFIED


def test_stripe_default_tolerance_is_300_seconds():
    assert stripe_outcome(stripe_header(STRIPE_T - 300)) is Outcome.VERIFIED
    assert stripe_outcome(stripe_header(STRIPE_T - 301)) is Outcome.STALE_TIMESTAMP


def test_stripe_tolerance_null_turns_the_check_off():
    # test_timestamp_off_but_no_tolerance: timestamp 12345 accepted when no tolerance is given
    assert stripe_outcome(stripe_header(12345), tolerance=None) is Outcome.VERIFIED


def test_stripe_sign_roundtrip():
    headers = sign("stripe", STRIPE_BODY, STRIPE_SECRET, now=at(STRIPE_T))
    assert headers == {"Stripe-Signature": stripe_header()}
    assert stripe_outcome(headers["Stripe-Signature"]) is Outcome.VERIFIED
