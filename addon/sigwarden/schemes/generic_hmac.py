"""Generic HMAC signatures: the header, digest, encoding and signed content are route options.

The providers' presets (presets.py) are configurations of this one machinery.
The order of checks follows SPEC §4: the signature header (missing, malformed),
the parts of the signed content (a referenced header absent is malformed, an
absent timestamp is missing_timestamp: nothing can be checked without it), the
signature itself, then the timestamp's form and its tolerance.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import hmac
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from ..outcomes import Outcome
from .base import SignedRequest, Verdict, epoch_seconds
from .options import OptionReader

ALGORITHMS = ("sha1", "sha256", "sha512")
ENCODINGS = ("hex", "base64")
SECRET_ENCODINGS = ("text", "base64")
DEFAULT_TOLERANCE = 300.0
OPTION_KEYS = (
    "header", "algorithm", "encoding", "prefix", "separator", "signature_key", "timestamp_key",
    "timestamp_header", "tolerance", "signed_content", "secret_encoding", "secret_prefix",
)  # fmt: skip

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_TIMESTAMP = re.compile(r"^[0-9]{1,15}$")
_HEX = re.compile(r"^[0-9a-fA-F]+$")
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")

# A part of the signed content: ("text", literal), ("body", ""), ("timestamp", ""), ("header", name).
Part = tuple[str, str]


def parse_template(template: str) -> tuple[Part, ...]:
    """The parts of a signed-content template such as `{timestamp}.{body}`; ValueError otherwise."""
    parts: list[Part] = []
    position = 0
    for match in _PLACEHOLDER.finditer(template):
        if match.start() > position:
            parts.append(("text", template[position : match.start()]))
        position = match.end()
        token = match.group(0)
        if token in ("{{", "}}"):
            parts.append(("text", token[0]))
            continue
        inner = match.group(1)
        if inner is None:
            raise ValueError(f"a lone {token!r} (write {token * 2} for a literal brace) in {template!r}")
        if inner in ("body", "timestamp"):
            parts.append((inner, ""))
        elif inner.startswith("header:") and _HEADER_NAME.match(inner[len("header:") :]):
            parts.append(("header", inner[len("header:") :]))
        else:
            raise ValueError(f"unknown placeholder {{{inner}}}; known: {{body}}, {{timestamp}}, {{header:NAME}}")
    if position < len(template):
        parts.append(("text", template[position:]))
    if sum(1 for kind, _ in parts if kind == "body") != 1:
        raise ValueError(f"the template must contain {{body}} exactly once, got {template!r}")
    return tuple(parts)


def decode_secret(secret: bytes, options: Mapping[str, Any]) -> bytes | None:
    """The HMAC key from a configured secret: `secret_prefix` removed, base64 decoded if asked."""
    prefix = options["secret_prefix"].encode()
    if prefix and secret.startswith(prefix):
        secret = secret[len(prefix) :]
    if options["secret_encoding"] == "base64":  # noqa: S105 - an encoding name, not a secret
        try:
            secret = base64.b64decode(secret + b"=" * (-len(secret) % 4), validate=True)
        except (binascii.Error, ValueError):
            return None
    return secret or None


def _content(parts: Sequence[Part], body: bytes, timestamp: str, headers: Mapping[str, str]) -> bytes:
    """The exact bytes that are signed: the template's parts with the request's values."""
    pieces = []
    for kind, argument in parts:
        if kind == "text":
            pieces.append(argument.encode())
        elif kind == "body":
            pieces.append(body)
        elif kind == "timestamp":
            pieces.append(timestamp.encode("utf-8", "surrogateescape"))
        else:
            pieces.append(headers[argument].encode("utf-8", "surrogateescape"))
    return b"".join(pieces)


def _encode(digest: bytes, encoding: str) -> str:
    return digest.hex() if encoding == "hex" else base64.b64encode(digest).decode()


def _decode(text: str, encoding: str, size: int) -> bytes | None:
    """The digest a signature text stands for, or None unless it is exactly one well-formed digest."""
    text = text.strip()
    if encoding == "hex":
        return bytes.fromhex(text) if len(text) == 2 * size and _HEX.match(text) else None
    try:
        decoded = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    # Only the canonical form: one digest has one spelling (unused trailing bits must be zero).
    return decoded if len(decoded) == size and base64.b64encode(decoded).decode() == text else None


class HmacScheme:
    """`hmac` itself takes every option; a preset fixes `defaults` and exposes only `option_keys`."""

    def __init__(
        self, name: str, defaults: Mapping[str, Any] | None = None, option_keys: tuple[str, ...] = OPTION_KEYS
    ):
        self.name = name
        self.defaults = dict(defaults or {})
        self.option_keys = option_keys

    # -- configuration --------------------------------------------------------

    def parse_options(self, given: Mapping[str, Any]) -> Mapping[str, Any]:
        reader = OptionReader(given, self.defaults)
        header = reader.header("header")
        if "header" not in reader.values:
            reader.problem("header", f"required for scheme {self.name} (the header that carries the signature)")
        options: dict[str, Any] = {
            "header": header,
            "algorithm": reader.choice("algorithm", ALGORITHMS, "sha256"),
            "encoding": reader.choice("encoding", ENCODINGS, "hex"),
            "prefix": reader.text("prefix", "") or "",
            "separator": reader.text("separator", None, allow_empty=False),
            "signature_key": reader.text("signature_key", None, allow_empty=False),
            "timestamp_key": reader.text("timestamp_key", None, allow_empty=False),
            "timestamp_header": reader.header("timestamp_header"),
            "secret_encoding": reader.choice("secret_encoding", SECRET_ENCODINGS, "text"),
            "secret_prefix": reader.text("secret_prefix", "") or "",
        }
        if options["signature_key"] is not None and options["separator"] is None:
            options["separator"] = ","
        if options["timestamp_key"] is not None and options["signature_key"] is None:
            reader.problem("timestamp_key", "needs signature_key: both are keys of a `key=value` list in the header")
        if options["timestamp_key"] is not None and options["timestamp_key"] == options["signature_key"]:
            reader.problem("timestamp_key", "must differ from signature_key")
        if options["timestamp_key"] is not None and options["timestamp_header"] is not None:
            reader.problem("timestamp_header", "give either timestamp_header or timestamp_key, not both")
        has_timestamp = options["timestamp_key"] is not None or options["timestamp_header"] is not None
        parts: tuple[Part, ...] = (("body", ""),)
        template = reader.text("signed_content", "{body}")
        try:
            parts = parse_template(template or "")
            uses_timestamp = any(kind == "timestamp" for kind, _ in parts)
        except ValueError as error:
            reader.problem("signed_content", str(error))
            uses_timestamp = has_timestamp  # reported already; no second complaint
        if uses_timestamp and not has_timestamp:
            reader.problem("signed_content", "uses {timestamp}: set timestamp_header or timestamp_key")
        if has_timestamp and not uses_timestamp:
            reader.problem(
                "signed_content",
                "must include {timestamp} when a timestamp is read (an unsigned one proves nothing), "
                "e.g. '{timestamp}.{body}'",
            )
        tolerance = reader.duration("tolerance", DEFAULT_TOLERANCE)
        if "tolerance" in given and given["tolerance"] is not None and not has_timestamp:
            reader.problem("tolerance", "needs a timestamp: set timestamp_header or timestamp_key")
        reader.done()
        options["signed_content"] = parts
        options["tolerance"] = tolerance if has_timestamp else None
        return options

    def removed_headers(self, options: Mapping[str, Any]) -> tuple[str, ...]:
        return ()

    # -- reading the request --------------------------------------------------

    def _signatures(self, value: str, options: Mapping[str, Any]) -> tuple[list[str], list[str]]:
        """(signature texts, timestamps found in the header) of one signature header value."""
        separator, prefix = options["separator"], options["prefix"]
        entries = value.split(separator) if separator else [value]
        timestamps: list[str] = []
        signatures: list[str] = []
        for entry in entries:
            entry = entry.strip()
            if options["signature_key"] is not None:
                key, equals, entry = entry.partition("=")
                if not equals:
                    continue  # not a key=value item: not a signature
                if key.strip() == options["timestamp_key"]:
                    timestamps.append(entry.strip())
                    continue
                if key.strip() != options["signature_key"]:
                    continue  # another version (Stripe's v0): not ours to check
                entry = entry.strip()
            if entry and entry.startswith(prefix):
                signatures.append(entry[len(prefix) :])
        return signatures, timestamps

    def verify(
        self,
        request: SignedRequest,
        secrets: Sequence[tuple[str, bytes]],
        options: Mapping[str, Any],
        now: datetime.datetime | None = None,
    ) -> Verdict:
        keys = [(name, key) for name, secret in secrets if (key := decode_secret(secret, options)) is not None]
        if not keys:
            return Verdict(Outcome.SECRET_UNAVAILABLE)  # no secret of the route is a usable key: fail closed
        values = request.headers.get_all(options["header"])
        if not values:
            return Verdict(Outcome.MISSING_SIGNATURE)
        if len(values) > 1 or not values[0].strip():
            return Verdict(Outcome.MALFORMED_SIGNATURE)
        size = hashlib.new(options["algorithm"]).digest_size
        texts, header_timestamps = self._signatures(values[0], options)
        candidates = [decoded for text in texts if (decoded := _decode(text, options["encoding"], size)) is not None]
        if not candidates or len(header_timestamps) > 1:
            return Verdict(Outcome.MALFORMED_SIGNATURE)

        signed_headers: dict[str, str] = {}
        for kind, argument in options["signed_content"]:
            if kind == "header":
                found = request.headers.get_all(argument)
                if len(found) != 1:
                    return Verdict(Outcome.MALFORMED_SIGNATURE)  # a signed part absent or ambiguous
                signed_headers[argument] = found[0]
        timestamp: str | None = None
        if options["timestamp_key"] is not None or options["timestamp_header"] is not None:
            found = (
                header_timestamps
                if options["timestamp_key"] is not None
                else request.headers.get_all(options["timestamp_header"])
            )
            if not found:
                return Verdict(Outcome.MISSING_TIMESTAMP)  # signed, so nothing can be checked without it
            if len(found) > 1:
                return Verdict(Outcome.MALFORMED_SIGNATURE)
            timestamp = found[0]
        content = _content(options["signed_content"], request.body, timestamp or "", signed_headers)

        matched = None
        # Every key and every candidate is compared, so the time taken tells nothing about which matched.
        for name, key in keys:
            expected = hmac.new(key, content, options["algorithm"]).digest()
            for candidate in candidates:
                if hmac.compare_digest(expected, candidate) and matched is None:
                    matched = name
        if matched is None:
            return Verdict(Outcome.INVALID_SIGNATURE)
        if timestamp is not None:
            if not _TIMESTAMP.match(timestamp.strip()):
                return Verdict(Outcome.MISSING_TIMESTAMP)
            tolerance = options["tolerance"]
            if tolerance is not None and abs(epoch_seconds(now) - int(timestamp.strip())) > tolerance:
                return Verdict(Outcome.STALE_TIMESTAMP)
        return Verdict(Outcome.VERIFIED, matched)

    # -- what a sender does ---------------------------------------------------

    def sign(
        self, body: bytes, secret: bytes, options: Mapping[str, Any], now: datetime.datetime | None = None
    ) -> dict[str, str]:
        key = decode_secret(secret, options)
        if key is None:
            raise ValueError(f"the secret is not valid {options['secret_encoding']} for scheme {self.name}")
        timestamp = str(int(epoch_seconds(now)))
        parts = options["signed_content"]
        headers = {argument: f"msg_{uuid.uuid4().hex}" for kind, argument in parts if kind == "header"}
        content = _content(parts, body, timestamp, headers)
        digest = hmac.new(key, content, options["algorithm"]).digest()
        signature = options["prefix"] + _encode(digest, options["encoding"])
        if options["signature_key"] is not None:
            signature = f"{options['signature_key']}={signature}"
            if options["timestamp_key"] is not None:
                signature = f"{options['timestamp_key']}={timestamp}{options['separator']}{signature}"
        result = {options["header"]: signature}
        if options["timestamp_header"] is not None:
            result[options["timestamp_header"]] = timestamp
        result.update(headers)
        return result
