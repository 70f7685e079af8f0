"""Tokens: a shared credential in a header — bearer, basic or an API key (Sendcloud v3 Event Subscriptions).

Nothing is signed; the sender proves itself by knowing the secret. The credential
is compared in constant time through SHA-256 digests (equal lengths whatever was
sent), against every secret of the route (rotation), and may be removed before
forwarding so that the application never sees it.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ..outcomes import Outcome
from .base import SignedRequest, Verdict
from .options import OptionReader

AUTH_TYPES = ("bearer", "basic", "api_key")
_BEARER = re.compile(r"^bearer +(\S+)$", re.IGNORECASE)
_BASIC = re.compile(r"^basic +([A-Za-z0-9+/]+={0,2})$", re.IGNORECASE)


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


def credential_from_header(auth: str, value: str) -> bytes | None:
    """The credential carried by one header value, or None when the value is malformed."""
    value = value.strip()
    if auth == "api_key":
        return value.encode("utf-8", "surrogateescape") if value else None
    match = (_BEARER if auth == "bearer" else _BASIC).match(value)
    if match is None:
        return None
    if auth == "bearer":
        return match.group(1).encode("utf-8", "surrogateescape")
    try:
        decoded = base64.b64decode(match.group(1), validate=True)
    except (binascii.Error, ValueError):
        return None
    return decoded if b":" in decoded else None


class TokenScheme:
    name = "token"
    option_keys: tuple[str, ...] = ("auth", "header", "remove_credential")

    def parse_options(self, given: Mapping[str, Any]) -> Mapping[str, Any]:
        reader = OptionReader(given)
        auth = reader.choice("auth", AUTH_TYPES, "bearer")
        if auth == "api_key" and "header" not in given:
            reader.problem("header", "required with auth: api_key (the header that carries the key, e.g. X-Api-Key)")
        header = reader.header("header", "Authorization") or "Authorization"
        remove = reader.boolean("remove_credential", False)
        reader.done()
        return {"auth": auth, "header": header, "remove_credential": remove}

    def verify(
        self,
        request: SignedRequest,
        secrets: Sequence[tuple[str, bytes]],
        options: Mapping[str, Any],
        now: datetime.datetime | None = None,
    ) -> Verdict:
        values = request.headers.get_all(options["header"])
        if not values:
            return Verdict(Outcome.MISSING_SIGNATURE)
        if len(values) > 1:
            return Verdict(Outcome.MALFORMED_SIGNATURE)
        credential = credential_from_header(options["auth"], values[0])
        if credential is None:
            return Verdict(Outcome.MALFORMED_SIGNATURE)
        given = _digest(credential)
        matched = None
        # Every secret is compared, so the time taken does not tell which one matched.
        for name, secret in secrets:
            if hmac.compare_digest(_digest(secret), given) and matched is None:
                matched = name
        if matched is None:
            return Verdict(Outcome.INVALID_SIGNATURE)
        return Verdict(Outcome.VERIFIED, matched)

    def removed_headers(self, options: Mapping[str, Any]) -> tuple[str, ...]:
        return (options["header"],) if options.get("remove_credential") else ()

    def sign(
        self, body: bytes, secret: bytes, options: Mapping[str, Any], now: datetime.datetime | None = None
    ) -> dict[str, str]:
        auth = options.get("auth", "bearer")
        header = options.get("header", "Authorization")
        text = secret.decode("utf-8", "surrogateescape")
        if auth == "bearer":
            return {header: f"Bearer {text}"}
        if auth == "basic":
            if b":" not in secret:
                raise ValueError("a basic credential is user:password; the secret has no ':'")
            return {header: "Basic " + base64.b64encode(secret).decode()}
        return {header: text}
