"""Path normal form and route matching (SPEC §4.2), fail-closed.

Any spelling that some upstream router could read as a protected path must
normalise to the protected path, so decoding and resolution are repeated
until nothing changes, and a path has several normal forms where routers
disagree (cut at a decoded `?`, `#` or NUL, or not).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from urllib.parse import unquote_to_bytes

# Repetition stops at a fixed point; each round that changes the text
# shortens it or lowers it, so the loop always ends. The bound is a guard.
_MAX_ROUNDS = 16
# No client encodes a path more often; deeper ones are refused on the wire (`too_deeply_encoded`),
# and decoding stays linear in the path's length (each round costs a pass over it).
MAX_DECODINGS = 8
# Overlong UTF-8 (`%c0%af` for `/`): some old decoders read it as the short character.
_OVERLONG = re.compile(rb"[\xc0\xc1][\x80-\xbf]|\xe0[\x80-\x9f][\x80-\xbf]|\xf0[\x80-\x8f][\x80-\xbf]{2}")
_LEAD_BITS = {2: 0x1F, 3: 0x0F, 4: 0x07}
# Where a router that decodes first could end the path.
_CUT = re.compile(r"[?#\x00]")
_NOT_ROUTE_CHARACTER = re.compile(r"[^a-z0-9/]")
_REPEATED_SLASH = re.compile(r"/+")
_QUERY_SEPARATORS = re.compile(r"[&;]")


def _short_form(match: re.Match[bytes]) -> bytes:
    raw = match[0]
    value = raw[0] & _LEAD_BITS[len(raw)]
    for byte in raw[1:]:
        value = value << 6 | byte & 0x3F
    return chr(value).encode("utf-8", "surrogatepass")


def _decode_once(raw: bytes) -> bytes:
    return _OVERLONG.sub(_short_form, unquote_to_bytes(raw))


def _decodings(text: str) -> list[str]:
    """The text percent-decoded 0, 1, 2 … times, up to a fixed point or MAX_DECODINGS + 1 rounds."""
    raw = text.encode("utf-8", "surrogateescape")
    found = [raw]
    for _ in range(MAX_DECODINGS + 1):
        decoded = _decode_once(raw)
        if decoded == raw:
            break
        found.append(decoded)
        raw = decoded
    return [item.decode("utf-8", "replace") for item in found]


def too_deeply_encoded(path: str) -> bool:
    """True when the path still changes after MAX_DECODINGS rounds of percent-decoding."""
    return len(_decodings(path.split("?", 1)[0])) > MAX_DECODINGS + 1


def _resolve_segments(path: str, resolve_dots: bool) -> str:
    # Whole-list operations where possible: this runs on every reading of every request path.
    segments = path.split("/")
    if ";" in path:
        segments = [segment.split(";", 1)[0] for segment in segments]
    if "." in path or " " in path:  # Windows and some routers ignore trailing dots and spaces
        segments = [segment if segment in (".", "..") else segment.rstrip(". ") for segment in segments]
    if not (resolve_dots and ".." in segments):
        return "/" + "/".join(segment for segment in segments if segment not in ("", "."))
    resolved: list[str] = []
    for segment in segments:
        if segment in ("", "."):
            continue
        if segment == "..":
            if resolved:
                resolved.pop()
            continue
        resolved.append(segment)
    return "/" + "/".join(resolved)


def _normalise_once(path: str, resolve_dots: bool) -> str:
    text = _decodings(path)[-1]
    text = unicodedata.normalize("NFKC", text)  # fullwidth `／` and friends, as "best fit" mappings read them
    text = text.replace("\\", "/")
    text = _resolve_segments(text, resolve_dots)
    return text.upper().lower()  # Unicode-aware case: `ſ` is `s`, `ı` is `i` to case-insensitive routers


def normalise_path(path: str, resolve_dots: bool = True) -> str:
    """The normal form of a request path (without its query): decoded, resolved, lower case.

    With `resolve_dots` False, `..` segments are kept: how a router that matches prefixes on the
    raw path reads `/hooks/../x` (under `/hooks`).
    """
    path = path.split("?", 1)[0].split("#", 1)[0]
    current = path
    for _ in range(_MAX_ROUNDS):
        following = _normalise_once(current, resolve_dots)
        if following == current:
            return current
        current = following
    return current


def _without_params(text: str) -> str:
    return "/".join(segment.split(";", 1)[0] for segment in text.split("/"))


def _variants(text: str) -> set[str]:
    """`text` as routers may read it at one depth of decoding: folded or not, cut or not,
    `;params` dropped or not, dot segments resolved here (before any further decoding) or not."""
    found = set()
    for folded in {text, unicodedata.normalize("NFKC", text)}:  # `？` folds to `?`, `／` to `/`
        for cut in {folded, _CUT.split(folded, maxsplit=1)[0]}:
            for params in {cut, _without_params(cut)} if ";" in cut else {cut}:
                found.add(params)
                if "." in params:
                    found.add(_resolve_segments(params, True))
    return found


def normal_forms(path: str) -> frozenset[str]:
    """Every normal form a router could give the path, each with `..` resolved and kept.

    Routers differ in what they do before or after each round of percent-decoding: cutting
    where a `?`, `#` or NUL appears (`/webhooks/sendcloud%3Fx`), dropping `;params` up to
    the next `/` (Tomcat does it before decoding: `/;%2fx/webhooks/sendcloud`), resolving
    dot segments before decoding (`/webhooks/sendcloud/%2e./..`). Each of these readings at
    every depth of decoding is normalised; all must be matched.
    """
    path = path.split("?", 1)[0].split("#", 1)[0]
    decodings = _decodings(path)
    readings = {path}
    for decoded in decodings:
        readings |= _variants(decoded)
    folded = unicodedata.normalize("NFKC", decodings[-1])
    # Without `..` (nor a `%` that could still decode to one) both ways of reading dots agree.
    resolutions = (True, False) if ".." in folded or "%" in folded else (True,)
    return frozenset(normalise_path(reading, resolve) for reading in readings for resolve in resolutions)


def _route_word(text: str) -> str:
    """Only letters, digits and single `/` between them: what Opencart-style routers keep of `route=`."""
    return _REPEATED_SLASH.sub("/", _NOT_ROUTE_CHARACTER.sub("", text)).strip("/")


def normalise_value(value: str) -> str:
    """A query parameter's name or value in normal form: as a path, then only letters, digits and `/`.

    Query-routed shops clean the value before dispatching (Opencart keeps `[a-zA-Z0-9_/]` of
    `route`, PHP drops leading spaces of a name), so `route=sendcloud/web-hook` and
    `%20route=…` reach the webhook controller too; comparing the cleaned forms matches them.
    """
    return _route_word(normalise_path("/" + value))


def _value_forms(value: str) -> set[str]:
    """The normal form, and the cleaned decodings without dot resolution (a router that strips dots)."""
    forms = {normalise_value(value)}
    for decoded in _decodings(value):
        forms.add(_route_word(unicodedata.normalize("NFKC", decoded).upper().lower()))
    return forms


def under_prefix(normal_path: str, normal_prefix: str) -> bool:
    """Whole-segment prefix test on normalised paths: `/hooks` covers `/hooks/a`, not `/hooksx`."""
    if normal_prefix == "/":
        return True
    return normal_path == normal_prefix or normal_path.startswith(normal_prefix + "/")


def split_query(query: str, names: Iterable[str] | None = None) -> list[tuple[str, str]]:
    """Every (name, value) pair some reading of the query gives, both in normal form (repeated names kept).

    Parts are split at `&` and, as some frameworks also do, at `;`. With `names`, only pairs whose
    name is one of them are kept (what route matching needs; the rest costs nothing).
    """
    wanted = set(names) if names is not None else None
    pairs: list[tuple[str, str]] = []
    for part in set(query.split("&")) | set(_QUERY_SEPARATORS.split(query)):
        if not part:
            continue
        name, _, value = part.partition("=")
        name_forms = _value_forms(name.replace("+", " "))
        if wanted is not None:
            name_forms &= wanted
            if not name_forms:
                continue
        value_forms = _value_forms(value.replace("+", " "))
        pairs.extend((name_form, value_form) for name_form in name_forms for value_form in value_forms)
    return pairs


def query_matches(pairs: Iterable[tuple[str, str]], required: Iterable[tuple[str, str]]) -> bool:
    """True when each required (name, value) occurs among the pairs; any occurrence counts (fail closed)."""
    present = set(pairs)
    return all(item in present for item in required)
