"""Properties of path normalisation: idempotent, and no spelling of a protected path escapes its route."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sigwarden import decision, paths
from sigwarden.config import parse_config

NAME_CHARACTERS = "abcdefghijklmnopqrstuvwxyz0123456789-_."
segments = st.text(alphabet=NAME_CHARACTERS, min_size=1, max_size=8).filter(lambda text: text.strip(".") != "")
protected_paths = st.lists(segments, min_size=1, max_size=4).map(lambda parts: "/" + "/".join(parts))

# Characters that make normalisation interesting, and a few that case folding or decoding changes.
TRICKY = list("/\\.;%?#\x00aAbBcCdDeEfF0125") + [
    "\u017f",
    "\ufb03",
    "é",
    "İ",
    "\udcff",
    "\udcc0",
    "\udcaf",
    "%c0",
    "%af",
]
tricky_text = st.lists(st.sampled_from(TRICKY), max_size=40).map("".join)


def percent(byte: int, upper: bool) -> str:
    return f"%{byte:02X}" if upper else f"%{byte:02x}"


@st.composite
def character_spellings(draw, character: str) -> str:
    code = ord(character)
    upper = draw(st.booleans())
    choice = draw(st.integers(0, 8))
    if choice == 0:
        return character.upper() if character.isalpha() else character
    if choice == 1:
        return percent(code, upper)
    if choice == 2:
        return "%25" + percent(code, upper)[1:]  # double encoding
    if choice == 3:
        return "%2525" + percent(code, upper)[1:]  # triple encoding
    if choice == 4:
        return percent(0xC0 | code >> 6, upper) + percent(0x80 | code & 0x3F, upper)  # overlong, two bytes
    if choice == 5:
        return "%E0" + percent(0x80 | code >> 6, upper) + percent(0x80 | code & 0x3F, upper)  # overlong, three
    if choice == 6:
        return "%25" + percent(0xC0 | code >> 6, upper)[1:] + "%25" + percent(0x80 | code & 0x3F, upper)[1:]
    return character


SEPARATORS = [
    "/",
    "//",
    "///",
    "\\",
    "\\\\",
    "%2f",
    "%2F",
    "%5c",
    "%5C",
    "%252f",
    "%255C",
    "%25252f",
    "/./",
    "/%2e/",
    "/%2E/",
    "/x/.%2e/",
    "/x/../",
    "/x/%2e%2e/",
    "/x/%2E%2E/",
    "/x/%252e%252e/",
    "\\x\\..\\",
    "/x/..;/",
    "/;p=1/",
    "%c0%af",
    "%C0%AF",
    "%e0%80%af",
    "%c1%9c",
    "/x/%c0%ae%c0%ae/",
]
ENDINGS = ["", "/", "//", "/.", "/x/..", ";jsessionid=1", ";", "%2f", "\\", "/%2e", "/x/%2e%2e/"]


@st.composite
def spellings(draw, path: str) -> str:
    """One way of writing `path` that SPEC §4.2 says is the same path."""
    parts = path.strip("/").split("/")
    written = []
    for part in parts:
        text = "".join(draw(character_spellings(character)) for character in part)
        if draw(st.integers(0, 5)) == 0:
            text += draw(st.sampled_from([";v=1", ";", ";a;b", "%3bx"]))
        written.append(draw(st.sampled_from(SEPARATORS)) + text)
    return "".join(written) + draw(st.sampled_from(ENDINGS))


def one_route(**fields):
    config = parse_config(
        {
            "upstream": "http://127.0.0.1:8000",
            "secrets": {"s": {"value": "x" * 20}},
            "routes": [{"name": "protected", "secrets": ["s"], **fields}],
        }
    )
    return config.routes


@given(tricky_text)
def test_normalisation_is_idempotent(text):
    once = paths.normalise_path(text)
    assert paths.normalise_path(once) == once


@given(st.text(max_size=60))
def test_normalisation_is_idempotent_on_any_text(text):
    once = paths.normalise_path(text)
    assert paths.normalise_path(once) == once


@given(tricky_text)
def test_the_primary_form_comes_first_and_every_form_is_a_path(text):
    forms = paths.normal_forms(text)
    assert forms[0] == paths.normalise_path(text)
    assert all(form.startswith("/") for form in forms)
    assert len(set(forms)) == len(forms)


@settings(max_examples=300)
@given(st.data(), protected_paths)
def test_every_spelling_of_a_protected_path_has_its_normal_form(data, path):
    spelling = data.draw(spellings(path))
    assert paths.normalise_path(path) in paths.normal_forms(spelling), spelling


@settings(max_examples=200)
@given(st.data(), protected_paths, st.sampled_from(["", "?", "?a=1", "?x=/../..&y=%2f"]))
def test_every_spelling_of_a_protected_path_is_matched_by_its_route(data, path, query):
    routes = one_route(path=path)
    spelling = data.draw(spellings(path))
    assert decision.match_route(routes, spelling + query) is routes[0], spelling


@settings(max_examples=200)
@given(st.data(), protected_paths, protected_paths)
def test_every_spelling_under_a_protected_prefix_is_matched(data, prefix, rest):
    routes = one_route(path_prefix=prefix + "/")
    spelling = data.draw(spellings(prefix + rest))
    assert decision.match_route(routes, spelling) is routes[0], spelling


@given(protected_paths, st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=4))
def test_a_longer_name_is_not_the_protected_path(path, suffix):
    routes = one_route(path=path)
    assert decision.match_route(routes, path + suffix) is None
    assert decision.match_route(one_route(path_prefix=path), path + suffix) is None


@settings(max_examples=200)
@given(st.data(), protected_paths)
def test_every_spelling_of_a_query_value_is_matched(data, value):
    routes = one_route(path="/index.php", query={"route": value.strip("/")})
    spelling = data.draw(spellings(value)).lstrip("/\\")
    other = data.draw(st.sampled_from(["", "a=1&", "route=other&"]))
    assert decision.match_route(routes, f"/index.php?{other}route={spelling}") is routes[0], spelling
