"""Path normal form and route matching (SPEC §4.2), fail-closed.

Any spelling that some upstream router could read as a protected path must
normalise to the protected path, so decoding and resolution are repeated
until nothing changes.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import unquote_to_bytes

# Repetition stops at a fixed point; each round that changes the text
# shortens it or lowers it, so the loop always ends. The bound is a guard.
_MAX_ROUNDS = 64


def _decode_until_stable(text: str) -> str:
    raw = text.encode("utf-8", "surrogateescape")
    while b"%" in raw:
        decoded = unquote_to_bytes(raw)
        if decoded == raw:
            break
        raw = decoded
    return raw.decode("utf-8", "replace")


def _resolve_segments(path: str) -> str:
    resolved: list[str] = []
    for segment in path.split("/"):
        segment = segment.split(";", 1)[0]
        if segment in ("", "."):
            continue
        if segment == "..":
            if resolved:
                resolved.pop()
            continue
        resolved.append(segment)
    return "/" + "/".join(resolved)


def _normalise_once(path: str) -> str:
    text = _decode_until_stable(path)
    text = text.replace("\\", "/")
    text = _resolve_segments(text)
    return text.lower()


def normalise_path(path: str) -> str:
    """The normal form of a request path (without its query): decoded, resolved, lower case."""
    path = path.split("?", 1)[0].split("#", 1)[0]
    current = path
    for _ in range(_MAX_ROUNDS):
        following = _normalise_once(current)
        if following == current:
            return current
        current = following
    return current


def normalise_value(value: str) -> str:
    """A query parameter's name or value in the same normal form as a path, without the leading '/'."""
    return normalise_path("/" + value)[1:]


def under_prefix(normal_path: str, normal_prefix: str) -> bool:
    """Whole-segment prefix test on normalised paths: `/hooks` covers `/hooks/a`, not `/hooksx`."""
    if normal_prefix == "/":
        return True
    return normal_path == normal_prefix or normal_path.startswith(normal_prefix + "/")


def split_query(query: str) -> list[tuple[str, str]]:
    """Every `name=value` pair of a query string, both in normal form (repeated names kept)."""
    pairs = []
    for part in query.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        pairs.append((normalise_value(name.replace("+", " ")), normalise_value(value.replace("+", " "))))
    return pairs


def query_matches(pairs: Iterable[tuple[str, str]], required: Iterable[tuple[str, str]]) -> bool:
    """True when each required (name, value) occurs among the pairs; any occurrence counts (fail closed)."""
    present = set(pairs)
    return all(item in present for item in required)
