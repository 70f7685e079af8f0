"""What every signature scheme reads and returns: plain values, no mitmproxy."""

from __future__ import annotations

import datetime
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
    """The outcome of verification and, when verified, the name of the secret that matched.

    `remove_headers` holds the canonical names (lower case, `_` read as `-`) of the request
    headers that must not reach the upstream, whatever the outcome: a route's credential.
    """

    outcome: Outcome
    key_id: str | None = None
    remove_headers: frozenset[str] = frozenset()

    @property
    def verified(self) -> bool:
        return self.outcome is Outcome.VERIFIED


class OptionError(ValueError):
    """Invalid route options of a scheme: every (option key, reason) found."""

    def __init__(self, problems: Sequence[tuple[str, str]]):
        self.problems = list(problems)
        super().__init__("; ".join(f"{key}: {reason}" for key, reason in self.problems))


class Scheme(Protocol):
    """One way of verifying a webhook. A new scheme is a class like this plus a registry line."""

    name: str
    option_keys: tuple[str, ...]

    def parse_options(self, given: Mapping[str, Any]) -> Mapping[str, Any]:
        """Validated route options of this scheme; OptionError naming each bad key otherwise."""
        ...

    def verify(
        self,
        request: SignedRequest,
        secrets: Sequence[tuple[str, bytes]],
        options: Mapping[str, Any],
        now: datetime.datetime | None = None,
    ) -> Verdict:
        """Check the request against each usable (name, secret); never raises for bad input.

        `now` is when the request was received (timestamp tolerance); the clock when None.
        """
        ...

    def removed_headers(self, options: Mapping[str, Any]) -> tuple[str, ...]:
        """Request headers that never reach the upstream on this route (a credential)."""
        ...

    def sign(
        self, body: bytes, secret: bytes, options: Mapping[str, Any], now: datetime.datetime | None = None
    ) -> dict[str, str]:
        """The headers a genuine sender would add to this body; ValueError for an unusable secret."""
        ...


def epoch_seconds(now: datetime.datetime | None) -> float:
    """Seconds since the epoch of `now`, or of the clock when None."""
    return (now or datetime.datetime.now(datetime.UTC)).timestamp()
