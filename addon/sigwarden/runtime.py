"""One consistent snapshot of what sigwarden serves with: the config and its secrets."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .config import Config, Route
from .decision import PATH_OVERRIDE_HEADERS, match_request, verdict_header_names
from .secrets import SecretStore


@dataclass
class Runtime:
    config: Config
    secrets: SecretStore
    verdict_names: frozenset[str] = field(init=False)
    # Three distinct verdict names, none of them X-Request-Id: once stripped, they can simply be appended.
    verdict_headers_appendable: bool = field(init=False)
    noted_headers: frozenset[str] = field(init=False)  # canonical names the addon looks at in each request
    header_bytes: dict[str, bytes] = field(init=False)  # verdict header names as sent: verified, key_id, error

    def __post_init__(self) -> None:
        self.verdict_names = verdict_header_names(self.config.headers)
        self.verdict_headers_appendable = len(self.verdict_names) == 3 and "x-request-id" not in self.verdict_names
        headers = self.config.headers
        self.header_bytes = {key: getattr(headers, key).encode() for key in ("verified", "key_id", "error")}
        self.noted_headers = self.verdict_names | PATH_OVERRIDE_HEADERS | {"x-request-id", "x-forwarded-for"}

    @classmethod
    def from_config(cls, config: Config) -> Runtime:
        return cls(config, SecretStore(config.secrets))

    def match(self, target: str, headers: Iterable[tuple[str, str]] = ()) -> Route | None:
        return match_request(self.config.routes, target, headers)
