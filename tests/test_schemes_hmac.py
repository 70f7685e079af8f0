"""The generic hmac scheme: every option, the SPEC §4 order of refusals, and sign→verify properties."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemes_support import at, outcome, sign, verify
from sigwarden.outcomes import Outcome
from sigwarden.schemes import SCHEMES, generic_hmac

SECRET = b"generic-secret-0123456789"
BODY = b'{"event": "order.paid", "id": 42}'
NOW = 1_750_000_000


def hex_of(content: bytes, secret: bytes = SECRET, algorithm: str = "sha256") -> str:
    return hmac.new(secret, content, algorithm).hexdigest()


def b64_of(content: bytes, secret: bytes = SECRET, algorithm: str = "sha256") -> str:
    return base64.b64encode(hmac.new(secret, content, algorithm).digest()).decode()


def test_minimal_route_is_hex_sha256_of_the_body():
    verdict = verify("hmac", {"X-Signature": hex_of(BODY)}, BODY, [("k", SECRET)], {"header": "X-Signature"})
    assert (verdict.outcome, verdict.key_id) == (Outcome.VERIFIED, "k")


@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "sha512"])
@pytest.mark.parametrize("encoding", ["hex", "base64"])
def test_each_algorithm_and_encoding(algorithm, encoding):
    value = (hex_of if encoding == "hex" else b64_of)(BODY, algorithm=algorithm)
    options = {"header": "X-Signature", "algorithm": algorithm, "encoding": encoding}
    assert outcome("hmac", {"X-Signature": value}, BODY, [("k", SECRET)], options) is Outcome.VERIFIED
    # The same digest under another algorithm's name is the wrong length: malformed, not a match.
    other = "sha512" if algorithm != "sha512" else "sha1"
    options["algorithm"] = other
    assert outcome("hmac", {"X-Signature": value}, BODY, [("k", SECRET)], options) is Outcome.MALFORMED_SIGNATURE


def test_hex_is_accepted_in_either_case_with_surrounding_spaces():
    options = {"header": "X-Signature"}
    value = "  " + hex_of(BODY).upper() + " "
    assert outcome("hmac", {"X-Signature": value}, BODY, [("k", SECRET)], options) is Outcome.VERIFIED


def test_prefix_is_required_when_configured():
    options = {"header": "X-Signature", "prefix": "sha256="}
    good = {"X-Signature": "sha256=" + hex_of(BODY)}
    assert outcome("hmac", good, BODY, [("k", SECRET)], options) is Outcome.VERIFIED
    bare = {"X-Signature": hex_of(BODY)}
    assert outcome("hmac", bare, BODY, [("k", SECRET)], options) is Outcome.MALFORMED_SIGNATURE


def test_several_signatures_with_a_separator_any_one_verifies():
    options = {"header": "X-Signature", "separator": ";", "prefix": "v1:"}
    value = f"v1:{hex_of(b'other')};v2:{hex_of(BODY)};v1:{hex_of(BODY)}"
    assert outcome("hmac", {"X-Signature": value}, BODY, [("k", SECRET)], options) is Outcome.VERIFIED
    value = f"v1:{hex_of(b'other')};v2:{hex_of(BODY)}"
    assert outcome("hmac", {"X-Signature": value}, BODY, [("k", SECRET)], options) is Outcome.INVALID_SIGNATURE


def test_without_separator_a_list_is_one_malformed_signature():
    value = f"{hex_of(BODY)},{hex_of(BODY)}"
    assert outcome("hmac", {"X-Signature": value}, BODY, [("k", SECRET)], {"header": "X-Signature"}) is (
        Outcome.MALFORMED_SIGNATURE
    )


def test_key_value_list_with_timestamp_key():
    # Paddle Billing's form: `Paddle-Signature: ts=<t>;h1=<hex of "<t>:<body>">`.
    options = {
        "header": "Paddle-Signature",
        "separator": ";",
        "signature_key": "h1",
        "timestamp_key": "ts",
        "signed_content": "{timestamp}:{body}",
    }
    value = f"ts={NOW};h1={hex_of(f'{NOW}:'.encode() + BODY)}"
    verdict = verify("hmac", {"Paddle-Signature": value}, BODY, [("k", SECRET)], options, at(NOW))
    assert verdict.outcome is Outcome.VERIFIED
    assert sign("hmac", BODY, SECRET, options, at(NOW)) == {"Paddle-Signature": value}


def test_timestamp_header_and_signed_header_in_the_template():
    options = {
        "header": "X-Signature",
        "encoding": "base64",
        "timestamp_header": "X-Timestamp",
        "signed_content": "{header:X-Delivery}:{timestamp}:{body}",
    }
    content = f"d-1:{NOW}:".encode() + BODY
    headers = {"X-Signature": b64_of(content), "X-Timestamp": str(NOW), "X-Delivery": "d-1"}
    assert outcome("hmac", headers, BODY, [("k", SECRET)], options, at(NOW)) is Outcome.VERIFIED
    assert outcome("hmac", {**headers, "X-Delivery": "d-2"}, BODY, [("k", SECRET)], options, at(NOW)) is (
        Outcome.INVALID_SIGNATURE
    )
    signed = sign("hmac", BODY, SECRET, options, at(NOW))
    assert set(signed) == {"X-Signature", "X-Timestamp", "X-Delivery"}
    assert outcome("hmac", signed, BODY, [("k", SECRET)], options, at(NOW)) is Outcome.VERIFIED


def test_literal_braces_in_the_template():
    options = {"header": "X-Signature", "signed_content": "{{{body}}}"}
    headers = {"X-Signature": hex_of(b"{" + BODY + b"}")}
    assert outcome("hmac", headers, BODY, [("k", SECRET)], options) is Outcome.VERIFIED


TIMESTAMPED = {"header": "X-Signature", "timestamp_header": "X-Timestamp", "signed_content": "{timestamp}.{body}"}


def timestamped(timestamp: str, body: bytes = BODY, secret: bytes = SECRET) -> dict[str, str]:
    return {"X-Signature": hex_of(f"{timestamp}.".encode() + body, secret), "X-Timestamp": timestamp}


@pytest.mark.parametrize(
    ("headers", "now", "expected"),
    [
        (timestamped(str(NOW)), NOW, Outcome.VERIFIED),
        (timestamped(str(NOW - 300)), NOW, Outcome.VERIFIED),
        (timestamped(str(NOW - 301)), NOW, Outcome.STALE_TIMESTAMP),
        (timestamped(str(NOW + 301)), NOW, Outcome.STALE_TIMESTAMP),  # from the future, beyond the tolerance
        ({"X-Signature": timestamped(str(NOW))["X-Signature"]}, NOW, Outcome.MISSING_TIMESTAMP),
        (timestamped("soon"), NOW, Outcome.MISSING_TIMESTAMP),  # signed but not a number
        ({**timestamped("soon"), "X-Timestamp": "later"}, NOW, Outcome.INVALID_SIGNATURE),
        ({**timestamped(str(NOW)), "X-Timestamp": str(NOW + 1)}, NOW, Outcome.INVALID_SIGNATURE),
        ([*timestamped(str(NOW)).items(), ("X-Timestamp", str(NOW))], NOW, Outcome.MALFORMED_SIGNATURE),
    ],
)
def test_timestamp_header_outcomes(headers, now, expected):
    assert outcome("hmac", headers, BODY, [("k", SECRET)], TIMESTAMPED, at(now)) is expected


def test_tolerance_option_and_null():
    headers = timestamped(str(NOW - 3600))
    assert outcome("hmac", headers, BODY, [("k", SECRET)], {**TIMESTAMPED, "tolerance": "2h"}, at(NOW)) is (
        Outcome.VERIFIED
    )
    assert outcome("hmac", headers, BODY, [("k", SECRET)], {**TIMESTAMPED, "tolerance": None}, at(NOW)) is (
        Outcome.VERIFIED
    )
    assert outcome("hmac", headers, BODY, [("k", SECRET)], {**TIMESTAMPED, "tolerance": "59m"}, at(NOW)) is (
        Outcome.STALE_TIMESTAMP
    )


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        # SPEC §4: missing_signature, malformed_signature, invalid_signature, missing_timestamp, stale_timestamp.
        ({"X-Timestamp": str(NOW - 9999)}, Outcome.MISSING_SIGNATURE),
        ({"X-Signature": "zz", "X-Timestamp": str(NOW - 9999)}, Outcome.MALFORMED_SIGNATURE),
        ({"X-Signature": "zz"}, Outcome.MALFORMED_SIGNATURE),
        ({**timestamped(str(NOW - 9999), secret=b"forged"), "X-Timestamp": str(NOW - 9999)}, Outcome.INVALID_SIGNATURE),
        ({"X-Signature": "ab" * 32}, Outcome.MISSING_TIMESTAMP),  # the signed content cannot be built without it
        (timestamped(str(NOW - 9999)), Outcome.STALE_TIMESTAMP),
    ],
)
def test_the_first_refusal_in_spec_order_wins(headers, expected):
    assert outcome("hmac", headers, BODY, [("k", SECRET)], TIMESTAMPED, at(NOW)) is expected


def test_missing_or_repeated_signature_header():
    options = {"header": "X-Signature"}
    assert outcome("hmac", {}, BODY, [("k", SECRET)], options) is Outcome.MISSING_SIGNATURE
    twice = [("X-Signature", hex_of(BODY)), ("X-Signature", hex_of(BODY))]
    assert outcome("hmac", twice, BODY, [("k", SECRET)], options) is Outcome.MALFORMED_SIGNATURE
    assert outcome("hmac", {"X-Signature": " "}, BODY, [("k", SECRET)], options) is Outcome.MALFORMED_SIGNATURE


def test_template_header_absent_or_repeated_is_malformed():
    options = {"header": "X-Signature", "signed_content": "{header:X-Id}.{body}"}
    signature = hex_of(b"id-1." + BODY)
    assert outcome("hmac", {"X-Signature": signature}, BODY, [("k", SECRET)], options) is Outcome.MALFORMED_SIGNATURE
    repeated = [("X-Signature", signature), ("X-Id", "id-1"), ("X-Id", "id-1")]
    assert outcome("hmac", repeated, BODY, [("k", SECRET)], options) is Outcome.MALFORMED_SIGNATURE


def test_rotation_names_the_secret_that_matched():
    secrets = [("old", b"old-secret-0123456789"), ("new", SECRET)]
    verdict = verify("hmac", {"X-Signature": hex_of(BODY)}, BODY, secrets, {"header": "X-Signature"})
    assert (verdict.outcome, verdict.key_id) == (Outcome.VERIFIED, "new")


def test_base64_secret_with_prefix():
    key = b"\x00\x01binary key\xff"
    configured = b"pre_" + base64.b64encode(key)
    options = {"header": "X-Signature", "secret_encoding": "base64", "secret_prefix": "pre_"}
    headers = {"X-Signature": hex_of(BODY, key)}
    assert outcome("hmac", headers, BODY, [("k", configured)], options) is Outcome.VERIFIED
    assert outcome("hmac", headers, BODY, [("k", b"pre_***")], options) is Outcome.SECRET_UNAVAILABLE
    assert outcome("hmac", headers, BODY, [("bad", b"pre_***"), ("k", configured)], options) is Outcome.VERIFIED


def test_every_secret_and_every_candidate_is_compared(monkeypatch):
    calls: list[tuple[int, int]] = []
    real = generic_hmac.hmac.compare_digest

    def recording(a, b):
        calls.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(generic_hmac.hmac, "compare_digest", recording)
    options = {"header": "X-Signature", "separator": ","}
    secrets = [("a", SECRET), ("b", b"other-secret-0123456789"), ("c", b"third")]
    value = f"{hex_of(BODY)},{hex_of(b'x')}"
    assert verify("hmac", {"X-Signature": value}, BODY, secrets, options).key_id == "a"
    assert calls == [(32, 32)] * 6


def test_parse_template_parts():
    assert generic_hmac.parse_template("{header:webhook-id}.{timestamp}.{body}") == (
        ("header", "webhook-id"),
        ("text", "."),
        ("timestamp", ""),
        ("text", "."),
        ("body", ""),
    )
    for bad in ("{timestamp}", "{body}{body}", "{bod}", "{body", "x}{body}", "{header:bad name}{body}"):
        with pytest.raises(ValueError):
            generic_hmac.parse_template(bad)


# --- properties ----------------------------------------------------------------

OPTION_SETS = st.fixed_dictionaries(
    {
        "header": st.sampled_from(["X-Signature", "X-Hub-Signature-256", "webhook-signature"]),
        "algorithm": st.sampled_from(generic_hmac.ALGORITHMS),
        "encoding": st.sampled_from(generic_hmac.ENCODINGS),
        "prefix": st.sampled_from(["", "sha256=", "v1,", "v1="]),
    },
    optional={
        "timestamp_header": st.just("X-Timestamp"),
    },
)


def with_template(options: dict) -> dict:
    if "timestamp_header" in options:
        return {**options, "signed_content": "{timestamp}.{body}"}
    return options


@settings(max_examples=150, deadline=None)
@given(options=OPTION_SETS, body=st.binary(max_size=512), secret=st.binary(min_size=1, max_size=64), data=st.data())
def test_sign_then_verify_roundtrip_and_any_one_byte_change_fails(options, body, secret, data):
    options = with_template(options)
    now = at(NOW)
    headers = sign("hmac", body, secret, options, now)
    assert outcome("hmac", headers, body, [("k", secret)], options, now) is Outcome.VERIFIED

    if body:
        index = data.draw(st.integers(0, len(body) - 1))
        flip = data.draw(st.integers(1, 255))
        changed = body[:index] + bytes([body[index] ^ flip]) + body[index + 1 :]
        assert outcome("hmac", headers, changed, [("k", secret)], options, now) is Outcome.INVALID_SIGNATURE
    longer = body + data.draw(st.binary(min_size=1, max_size=4))
    assert outcome("hmac", headers, longer, [("k", secret)], options, now) is Outcome.INVALID_SIGNATURE
    other_secret = secret[:-1] + bytes([secret[-1] ^ 1])
    assert outcome("hmac", headers, body, [("k", other_secret)], options, now) is Outcome.INVALID_SIGNATURE


@settings(max_examples=300, deadline=None)
@given(options=OPTION_SETS, body=st.binary(max_size=256), data=st.data())
def test_a_changed_signature_never_verifies(options, body, data):
    options = with_template(options)
    now = at(NOW)
    headers = sign("hmac", body, SECRET, options, now)
    value = headers[options["header"]]
    index = data.draw(st.integers(len(options["prefix"]), len(value) - 1))
    # Hex is read in either case, so a change of case alone is no change.
    replacement = data.draw(
        st.sampled_from("0123456789abcdefABCDEF+/=x ").filter(lambda c: c.lower() != value[index].lower())
    )
    headers[options["header"]] = value[:index] + replacement + value[index + 1 :]
    assert outcome("hmac", headers, body, [("k", SECRET)], options, now) is not Outcome.VERIFIED


def test_presets_are_configurations_of_the_generic_scheme():
    for name in ("github", "stripe", "shopify", "standard-webhooks"):
        assert isinstance(SCHEMES[name], generic_hmac.HmacScheme)
        assert set(SCHEMES[name].option_keys) <= {"tolerance"}
    assert hashlib.sha256  # the generic scheme names hashlib's algorithms
