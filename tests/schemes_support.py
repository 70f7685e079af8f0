"""Helpers for the scheme tests: requests from plain values, verification through the registry."""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any

from sigwarden.outcomes import Outcome
from sigwarden.schemes import SCHEMES, PlainHeaders, SignedRequest, Verdict


def request(headers: Mapping[str, str] | Sequence[tuple[str, str]], body: bytes = b"") -> SignedRequest:
    return SignedRequest("POST", "/webhooks", PlainHeaders(headers), body)


def at(epoch: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC)


def verify(
    scheme: str,
    headers: Mapping[str, str] | Sequence[tuple[str, str]],
    body: bytes,
    secrets: Sequence[tuple[str, bytes]],
    options: Mapping[str, Any] | None = None,
    now: datetime.datetime | None = None,
) -> Verdict:
    """The verdict of `scheme` with route options parsed as the config parses them."""
    parsed = SCHEMES[scheme].parse_options(options or {})
    return SCHEMES[scheme].verify(request(headers, body), secrets, parsed, now)


def outcome(*args: Any, **kwargs: Any) -> Outcome:
    return verify(*args, **kwargs).outcome


def sign(
    scheme: str,
    body: bytes,
    secret: bytes,
    options: Mapping[str, Any] | None = None,
    now: datetime.datetime | None = None,
) -> dict[str, str]:
    return SCHEMES[scheme].sign(body, secret, SCHEMES[scheme].parse_options(options or {}), now)
