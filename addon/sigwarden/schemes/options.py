"""Reading a scheme's route options: each bad key is reported by name, all of them at once."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .. import units
from .base import OptionError

_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


class OptionReader:
    """Typed access to given options with defaults; problems collected, raised by `done`."""

    def __init__(self, given: Mapping[str, Any], defaults: Mapping[str, Any] | None = None):
        self.values = {**(defaults or {}), **given}
        self.given = given
        self.problems: list[tuple[str, str]] = []

    def problem(self, key: str, reason: str) -> None:
        self.problems.append((key, reason))

    def text(self, key: str, default: str | None = None, allow_empty: bool = True) -> str | None:
        value = self.values.get(key, default)
        if value is None:
            return None
        if not isinstance(value, str) or (not value and not allow_empty):
            self.problem(key, f"expected {'a' if allow_empty else 'a non-empty'} string, got {value!r}")
            return default
        return value

    def header(self, key: str, default: str | None = None) -> str | None:
        value = self.values.get(key, default)
        if value is None:
            return None
        if not isinstance(value, str) or not _HEADER_NAME.match(value):
            self.problem(key, f"expected an HTTP header name, got {value!r}")
            return default
        return value

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        value = self.values.get(key, default)
        if value not in choices:
            self.problem(key, f"expected one of {', '.join(choices)}, got {value!r}")
            return default
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.values.get(key, default)
        if not isinstance(value, bool):
            self.problem(key, f"expected true or false, got {value!r}")
            return default
        return value

    def duration(self, key: str, default: float | None) -> float | None:
        """Seconds; an explicit null turns the check off."""
        if key in self.values and self.values[key] is None:
            return None
        value = self.values.get(key, default)
        if value is None:
            return None
        try:
            return units.parse_duration(value)
        except ValueError as error:
            self.problem(key, str(error))
            return default

    def done(self) -> None:
        if self.problems:
            raise OptionError(self.problems)
