"""One consistent snapshot of what sigwarden serves with: the config and its secrets."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .config import Config, Route
from .decision import match_request, verdict_header_names
from .secrets import SecretStore


@dataclass
class Runtime:
    config: Config
    secrets: SecretStore
    verdict_names: frozenset[str] = field(init=False)
    # Three distinct verdict names, none of them X-Request-Id: once stripped, they can simply be appended.
    verdict_headers_appendable: bool = field(init=False)

    def __post_init__(self) -> None:
        self.verdict_names = verdict_header_names(self.config.headers)
        self.verdict_headers_appendable = len(self.verdict_names) == 3 and "x-request-id" not in self.verdict_names

    @classmethod
    def from_config(cls, config: Config) -> Runtime:
        return cls(config, SecretStore(config.secrets))

    def match(self, target: str, headers: Iterable[tuple[str, str]] = ()) -> Route | None:
        return match_request(self.config.routes, target, headers)
