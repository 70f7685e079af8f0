"""Sizes (B, KiB, MiB) and durations (s, m, h, d) as written in the config."""

from __future__ import annotations

import math
import re

_SIZE_UNITS = {"b": 1, "kib": 1024, "mib": 1024**2, "gib": 1024**3}
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_NUMBER_WITH_UNIT = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*$", re.ASCII)


def parse_size(value: object) -> int:
    """Bytes from `1MiB`, `64KiB`, `512B` or a plain integer; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"expected a size such as 1MiB, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"a size cannot be negative, got {value}")
        return value
    match = _NUMBER_WITH_UNIT.match(value) if isinstance(value, str) else None
    unit = match.group(2).lower() if match else ""
    if not match or unit not in _SIZE_UNITS and unit != "":
        raise ValueError(f"expected a size such as 512B, 64KiB or 1MiB, got {value!r}")
    size = float(match.group(1)) * _SIZE_UNITS.get(unit, 1)
    if not size.is_integer():
        raise ValueError(f"expected a whole number of bytes, got {value!r}")
    return int(size)


def parse_duration(value: object) -> float:
    """Seconds from `30s`, `5m`, `12h`, `1d` or a plain number of seconds; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as 30s, got {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"a duration must be a finite number of seconds, not negative, got {value}")
        return float(value)
    match = _NUMBER_WITH_UNIT.match(value) if isinstance(value, str) else None
    unit = match.group(2).lower() if match else ""
    if not match or unit not in _DURATION_UNITS and unit != "":
        raise ValueError(f"expected a duration such as 30s, 5m, 12h or 1d, got {value!r}")
    return float(match.group(1)) * _DURATION_UNITS.get(unit, 1)


def format_size(size: int) -> str:
    for unit, factor in (("MiB", 1024**2), ("KiB", 1024)):
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    return f"{size}B"
