"""Sendcloud: `Sendcloud-Signature` = hex HMAC-SHA256 of the exact body bytes."""

from __future__ import annotations

import datetime
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ..outcomes import Outcome
from .base import SignedRequest, Verdict

HEADER = "Sendcloud-Signature"
_HEX_DIGEST = re.compile(r"^[0-9a-fA-F]{64}$")


def signature(body: bytes, secret: bytes) -> str:
    """Lower-case hex HMAC-SHA256 of the body, as Sendcloud sends it."""
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


class SendcloudScheme:
    name = "sendcloud"
    option_keys: tuple[str, ...] = ()

    def parse_options(self, given: Mapping[str, Any]) -> Mapping[str, Any]:
        return {}

    def verify(
        self,
        request: SignedRequest,
        secrets: Sequence[tuple[str, bytes]],
        options: Mapping[str, Any],
        now: datetime.datetime | None = None,
    ) -> Verdict:
        values = request.headers.get_all(HEADER)
        if not values:
            return Verdict(Outcome.MISSING_SIGNATURE)
        if len(values) > 1:
            return Verdict(Outcome.MALFORMED_SIGNATURE)
        given = values[0].strip()
        if not _HEX_DIGEST.match(given):
            return Verdict(Outcome.MALFORMED_SIGNATURE)
        given_bytes = bytes.fromhex(given)
        matched = None
        # Every secret is tried, so the time taken does not tell which one matched.
        for name, secret in secrets:
            expected = hmac.new(secret, request.body, hashlib.sha256).digest()
            if hmac.compare_digest(expected, given_bytes) and matched is None:
                matched = name
        if matched is None:
            return Verdict(Outcome.INVALID_SIGNATURE)
        return Verdict(Outcome.VERIFIED, matched)

    def removed_headers(self, options: Mapping[str, Any]) -> tuple[str, ...]:
        return ()

    def sign(
        self, body: bytes, secret: bytes, options: Mapping[str, Any], now: datetime.datetime | None = None
    ) -> dict[str, str]:
        return {HEADER: signature(body, secret)}
