"""What every signature scheme reads and returns: plain values, no mitmproxy."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..outcomes import Outcome


class HeaderLookup(Protocol):
    """Case-insensitive access to every value of a header (mitmproxy's Headers fits)."""

    def get_all(self, name: str) -> list[str]: ...


class PlainHeaders:
    """A HeaderLookup over (name, value) pairs, for tests and the command line."""

    def __init__(self, pairs: Sequence[tuple[str, str]] | Mapping[str, str] = ()):
        items = pairs.items() if isinstance(pairs, Mapping) else pairs
        self.pairs = [(name, value) for name, value in items]

    def get_all(self, name: str) -> list[str]:
        wanted = name.lower()
        return [value for key, value in self.pairs if key.lower() == wanted]


@dataclass(frozen=True)
class SignedRequest:
    method: str
    path: str
    headers: HeaderLookup
    body: bytes


@dataclass(frozen=True)
class Verdict:
    """The outcome of verification and, when verified, the name of the secret that matched."""

    outcome: Outcome
    key_id: str | None = None

    @property
    def verified(self) -> bool:
        return self.outcome is Outcome.VERIFIED


class Scheme(Protocol):
    """One way of verifying a webhook. A new scheme is a class like this plus a registry line."""

    name: str
    option_keys: tuple[str, ...]

    def parse_options(self, given: Mapping[str, Any]) -> Mapping[str, Any]:
        """Validated route options of this scheme; ValueError with a precise message otherwise."""
        ...

    def verify(
        self, request: SignedRequest, secrets: Sequence[tuple[str, bytes]], options: Mapping[str, Any]
    ) -> Verdict:
        """Check the request against each usable (name, secret); never raises for bad input."""
        ...

    def sign(self, body: bytes, secret: bytes, options: Mapping[str, Any]) -> dict[str, str]:
        """The headers a genuine sender would add to this body."""
        ...
