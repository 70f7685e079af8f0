"""Path normal forms and route matching (SPEC §4.2), fail-closed.

Any spelling that some upstream router could read as a protected path must
be matched by its route. The normal form of SPEC §4.2 (decoded until stable,
`\\` as `/`, `//` collapsed, dot segments resolved, `;params` dropped, trailing
`/` dropped, case folded) is the primary one. Where a path holds something
upstreams disagree about, it also gets the forms of the other readings, and a
route protects the request when any of its forms matches:

- percent-decoded bytes that are not valid UTF-8: read as U+FFFD (the primary),
  as Latin-1, with the invalid bytes dropped (iconv //IGNORE-style sanitisers),
  and by a lenient decoder that accepts overlong forms (`%c0%af` as `/`);
- a decoded `?`, `#` or NUL: also cut there (an application that decodes the
  path again and parses it, or a C string);
- `;` in a segment: also kept as part of the segment (nginx and Apache do not
  drop it, so `/hooks/..;x` stays under `/hooks/` for them);
- `.` or `..` segments: also left unresolved (a router that prefix-matches the
  raw path).
"""

from __future__ import annotations

import codecs
import itertools
import re
import unicodedata
from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass, field
from urllib.parse import unquote_to_bytes

# Repetition stops at a fixed point; the bound is a guard.
_MAX_ROUNDS = 64
_CUT_CHARACTERS = "?#\x00"
_INVALID_READINGS = ("replace", "sigwarden-latin-1", "ignore", "lenient")


def _latin_1_errors(error: UnicodeError) -> tuple[str, int]:
    assert isinstance(error, UnicodeDecodeError)
    return error.object[error.start : error.end].decode("latin-1"), error.end


codecs.register_error("sigwarden-latin-1", _latin_1_errors)


@dataclass(frozen=True)
class Reading:
    """One way an upstream may read a path; the default is SPEC §4.2's normal form."""

    invalid_utf8: str = "replace"  # replace | sigwarden-latin-1 | ignore | lenient
    cut_at: str = ""  # decoded characters where the path ends
    keep_parameters: bool = False
    resolve_dots: bool = True
    compatible: bool = False  # NFKC and upper-then-lower case: `／` is `/`, `ｗ` is `w`, `ı` is `i`
    trim_segments: bool = False  # trailing dots and spaces of a segment dropped (Windows, IIS)


PRIMARY = Reading()


@dataclass
class _Seen:
    """What the primary reading met that other readings treat differently."""

    invalid_utf8: bool = False
    cut_characters: set[str] = field(default_factory=set)
    parameters: bool = False
    dot_segments: bool = False
    non_ascii: bool = False
    trailing: bool = False

    def anything(self) -> bool:
        return (
            self.invalid_utf8
            or bool(self.cut_characters)
            or self.parameters
            or self.dot_segments
            or self.non_ascii
            or self.trailing
        )


def _decode_lenient(raw: bytes) -> str:
    """UTF-8 as old decoders read it: overlong forms accepted, anything else invalid dropped."""
    out = []
    index, size = 0, len(raw)
    while index < size:
        lead = raw[index]
        if lead < 0x80:
            out.append(chr(lead))
            index += 1
            continue
        if 0xC0 <= lead < 0xE0:
            need, point = 1, lead & 0x1F
        elif 0xE0 <= lead < 0xF0:
            need, point = 2, lead & 0x0F
        elif 0xF0 <= lead < 0xF8:
            need, point = 3, lead & 0x07
        elif 0xF8 <= lead < 0xFC:
            need, point = 4, lead & 0x03
        elif 0xFC <= lead < 0xFE:
            need, point = 5, lead & 0x01
        else:
            index += 1
            continue
        following = index + 1
        while following < size and following - index <= need and 0x80 <= raw[following] < 0xC0:
            point = (point << 6) | (raw[following] & 0x3F)
            following += 1
        if following - index - 1 == need and point <= 0x10FFFF and not 0xD800 <= point < 0xE000:
            out.append(chr(point))
            index = following
        else:
            index += 1
    return "".join(out)


def _decode_until_stable(text: str, reading: Reading, seen: _Seen) -> str:
    raw = text.encode("utf-8", "surrogateescape")
    while b"%" in raw:
        decoded = unquote_to_bytes(raw)
        if decoded == raw:
            break
        raw = decoded
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        seen.invalid_utf8 = True
    if reading.invalid_utf8 == "lenient":
        return _decode_lenient(raw)
    return raw.decode("utf-8", reading.invalid_utf8)


_DOT_SEGMENT = re.compile(r"(?:^|/)\.\.?(?:$|[/;])")


def _cut_variants(text: str) -> list[str]:
    """The text, and the text cut at each character where some reading ends the path."""
    return [text] + [text.split(character, 1)[0] for character in _CUT_CHARACTERS if character in text]


def _trimmable(segment: str) -> bool:
    """A segment that Windows and IIS read without its trailing dots and spaces (`.` and `..` excepted)."""
    segment = segment.split(";", 1)[0]
    return segment not in (".", "..") and segment.endswith((".", " "))


def _resolve_segments(path: str, reading: Reading) -> str:
    resolved: list[str] = []
    for segment in path.split("/"):
        if not reading.keep_parameters:
            segment = segment.split(";", 1)[0]
        if reading.trim_segments and segment not in (".", ".."):
            segment = segment.rstrip(". ")
        if segment in ("", "."):
            if segment == "." and not reading.resolve_dots:
                resolved.append(segment)
            continue
        if segment == ".." and reading.resolve_dots:
            if resolved:
                resolved.pop()
            continue
        resolved.append(segment)
    return "/" + "/".join(resolved)


def _normalise_once(path: str, reading: Reading, seen: _Seen) -> str:
    text = _decode_until_stable(path, reading, seen)
    for character in _CUT_CHARACTERS:
        if character in text:
            seen.cut_characters.add(character)
    if reading.cut_at:
        cut = min((index for character in reading.cut_at if (index := text.find(character)) >= 0), default=-1)
        if cut >= 0:
            text = text[:cut]
    if not text.isascii():
        seen.non_ascii = True
        if reading.compatible:
            text = unicodedata.normalize("NFKC", text).upper().lower()
    text = text.replace("\\", "/")
    if ("." in text or " " in text) and any(
        _trimmable(segment) for candidate in _cut_variants(text) for segment in candidate.split("/")
    ):
        seen.trailing = True
    if ";" in text:
        seen.parameters = True
    if _DOT_SEGMENT.search(text):
        seen.dot_segments = True
    return _resolve_segments(text, reading).casefold()


def _fixed_point(path: str, reading: Reading, seen: _Seen) -> str:
    current = path
    for _ in range(_MAX_ROUNDS):
        following = _normalise_once(current, reading, seen)
        if following == current:
            break
        current = following
    return current


# No client encodes a path more often; deeper ones are refused on the wire (wire.py), which keeps
# the decoding loops short.
MAX_DECODINGS = 8


def too_deeply_encoded(path: str) -> bool:
    """True when the path (without its query) still changes after MAX_DECODINGS rounds of percent-decoding."""
    raw = path.split("?", 1)[0].encode("utf-8", "surrogateescape")
    for _ in range(MAX_DECODINGS):
        if b"%" not in raw:
            return False
        decoded = unquote_to_bytes(raw)
        if decoded == raw:
            return False
        raw = decoded
    return b"%" in raw and unquote_to_bytes(raw) != raw


def normalise_path(path: str, reading: Reading = PRIMARY) -> str:
    """The normal form of a request path (without its query): decoded, resolved, case folded."""
    return _fixed_point(path, reading, _Seen())


class AmbiguousPath(ValueError):
    """A request target with more readings than can be checked in reasonable time: fail closed."""


# What one request's readings may cost, in characters (about 20 ns each) plus a fixed cost per reading
# (about 5 µs): at most some 20 ms, far above any real path, and a bound on what a crafted 64 KiB head
# can make us compute. Beyond it the request counts as protected.
_WORK_BUDGET = 512 * 1024
_READING_COST = 256


class WorkBudget:
    def __init__(self, limit: int = _WORK_BUDGET):
        self.left = limit

    def spend(self, amount: int) -> None:
        self.left -= amount
        if self.left < 0:
            raise AmbiguousPath("too many readings to check")


def _readings(seen: _Seen, invalid: tuple[str, ...]) -> list[Reading]:
    """Every combination of the readings that differ for what the readings so far met."""
    cut_characters = "".join(sorted(seen.cut_characters))
    cuts = [
        "".join(combination)
        for length in range(len(cut_characters) + 1)
        for combination in itertools.combinations(cut_characters, length)
    ]
    parameters = (False, True) if seen.parameters else (False,)
    dots = (True, False) if seen.dot_segments else (True,)
    compatible = (False, True) if seen.non_ascii else (False,)
    trim = (False, True) if seen.trailing else (False,)
    return [Reading(*reading) for reading in itertools.product(invalid, cuts, parameters, dots, compatible, trim)]


def normal_forms(path: str, budget: WorkBudget | None = None) -> tuple[str, ...]:
    """Every normal form an upstream may read this path as, the primary (SPEC §4.2) one first.

    AmbiguousPath when the readings cost more than the budget (a new one per call by default).
    """
    budget = budget or WorkBudget()
    budget.spend(len(path) + 16)
    cost = len(path) + _READING_COST
    seen = _Seen()
    primary = _fixed_point(path, PRIMARY, seen)
    if not seen.anything():
        return (primary,)
    forms = dict.fromkeys([primary])
    invalid: tuple[str, ...] = ("replace",)
    if seen.invalid_utf8:
        # Other readings of the bytes may meet what the primary did not (`%c0%ae` is `.` to a lenient decoder).
        invalid = _INVALID_READINGS
        budget.spend(cost * (len(invalid) - 1))
        for name in invalid[1:]:
            forms.setdefault(_fixed_point(path, Reading(invalid_utf8=name), seen))
    readings = _readings(seen, invalid)
    budget.spend(cost * len(readings))
    for reading in readings:
        forms.setdefault(_fixed_point(path, reading, _Seen()))
    return tuple(forms)


def normalise_value(value: str) -> str:
    """A query parameter's name or value in the same normal form as a path, without the leading '/'."""
    return normalise_path("/" + value)[1:]


_NOT_IN_SKELETON = re.compile(r"[^0-9a-z_/]")


def value_skeleton(normal_value: str) -> str:
    """A normal value without the characters query-routed shops strip from a route (OpenCart keeps [A-Za-z0-9_/])."""
    # What is left has no '%', '.', ';' or '\\': normalising it is collapsing its slashes.
    return "/".join(segment for segment in _NOT_IN_SKELETON.sub("", normal_value).split("/") if segment)


def _value_forms(value: str, budget: WorkBudget) -> set[str]:
    forms = {form[1:] for form in normal_forms("/" + value.replace("+", " "), budget)}
    forms.update({value_skeleton(form) for form in forms})
    return forms


def _name_forms(name: str, budget: WorkBudget) -> set[str]:
    forms = {form[1:] for form in normal_forms("/" + name.replace("+", " "), budget)}
    # PHP's $_GET: leading spaces dropped, ' ', '.' and '[' read as '_', the name ends at a NUL;
    # `route[]=` and `route[x]=` make `route` an array (a framework may take its first value).
    for form in list(forms):
        php = form.split("\x00", 1)[0].lstrip(" ")
        forms.add(re.sub(r"[ .\[]", "_", php))
        forms.add(php.split("[", 1)[0])
    return forms


def split_query(query: str, budget: WorkBudget | None = None) -> dict[str, set[str]]:
    """Every value an upstream may read for each parameter name of a query string, in normal forms.

    Repeated names keep every value; the values' skeletons are among them. `&` separates pairs, and
    `;` does too for some servers, so both splittings count. AmbiguousPath when that costs more
    than the budget.
    """
    budget = budget or WorkBudget()
    parts = query.split("&")
    if ";" in query:
        parts += re.split("[&;]", query)
    values_by_name: dict[str, set[str]] = {}
    for part in dict.fromkeys(parts):
        if not part:
            continue
        name, _, value = part.partition("=")
        values = _value_forms(value, budget)
        for name_form in _name_forms(name, budget):
            values_by_name.setdefault(name_form, set()).update(values)
    return values_by_name


def under_prefix(normal_path: str, normal_prefix: str) -> bool:
    """Whole-segment prefix test on normalised paths: `/hooks` covers `/hooks/a`, not `/hooksx`."""
    if normal_prefix == "/":
        return True
    return normal_path == normal_prefix or normal_path.startswith(normal_prefix + "/")


def query_matches(values_by_name: Mapping[str, Set[str]], required: Iterable[tuple[str, str]]) -> bool:
    """True when each required (name, value) is among the values read for the name (split_query).

    Any occurrence counts (fail closed), and a value also matches by its skeleton.
    """
    for name, value in required:
        values = values_by_name.get(name, set())
        if value not in values and value_skeleton(value) not in values:
            return False
    return True
