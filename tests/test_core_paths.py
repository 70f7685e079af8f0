"""Path normal forms and route matching (SPEC §4.2): every rule, and the fail-closed readings."""

from __future__ import annotations

import pytest

from sigwarden import decision, paths
from sigwarden.config import parse_config

PROTECTED = "/webhooks/sendcloud"


# --- the primary normal form, rule by rule -------------------------------------


@pytest.mark.parametrize(
    ("spelling", "normal"),
    [
        # percent-decoding, repeatedly until stable
        ("/webhooks/sendcl%6Fud", PROTECTED),
        ("/%77%65%62%68%6f%6f%6b%73/%73%65%6e%64%63%6c%6f%75%64", PROTECTED),
        ("/webhooks%2fsendcloud", PROTECTED),
        ("/webhooks%2Fsendcloud", PROTECTED),
        ("/webhooks%252fsendcloud", PROTECTED),
        ("/webhooks%25252Fsendcloud", PROTECTED),
        ("/webhooks/sendcl%256fud", PROTECTED),
        ("/webhooks/%25%36%66", "/webhooks/o"),  # %25 %36 %66 -> %6f -> o
        ("/webhooks%%32%66sendcloud", PROTECTED),  # %%32%66 -> %2f -> /
        # backslash as slash, raw or encoded
        ("/webhooks\\sendcloud", PROTECTED),
        ("\\webhooks\\sendcloud\\", PROTECTED),
        ("/webhooks%5csendcloud", PROTECTED),
        ("/webhooks%5Csendcloud", PROTECTED),
        ("/webhooks%255csendcloud", PROTECTED),
        # repeated slashes collapsed
        ("//webhooks//sendcloud", PROTECTED),
        ("/webhooks///sendcloud////", PROTECTED),
        ("/webhooks/%2f/sendcloud", PROTECTED),
        # dot segments resolved
        ("/webhooks/./sendcloud", PROTECTED),
        ("/webhooks/x/../sendcloud", PROTECTED),
        ("/a/b/../../webhooks/sendcloud", PROTECTED),
        ("/../../webhooks/sendcloud", PROTECTED),  # above the root stays at the root
        ("/webhooks/%2e/sendcloud", PROTECTED),
        ("/webhooks/x/%2e%2e/sendcloud", PROTECTED),
        ("/webhooks/x/%2E%2E/sendcloud", PROTECTED),
        ("/webhooks/x/.%2e/sendcloud", PROTECTED),
        ("/webhooks/x/%252e%252e/sendcloud", PROTECTED),
        ("/webhooks/x%2f..%2fsendcloud", PROTECTED),
        ("/webhooks/x\\..\\sendcloud", PROTECTED),
        ("/webhooks/sendcloud/.", PROTECTED),
        ("/webhooks/sendcloud/x/..", PROTECTED),
        ("/webhooks/...", "/webhooks/..."),  # three dots are a name, not a dot segment
        ("/webhooks/.hidden", "/webhooks/.hidden"),
        # ;parameters of a segment dropped
        ("/webhooks;v=1/sendcloud", PROTECTED),
        ("/webhooks/sendcloud;jsessionid=abc", PROTECTED),
        ("/webhooks/sendcloud;", PROTECTED),
        ("/webhooks/sendcloud%3bx", PROTECTED),
        ("/webhooks/x/..;/sendcloud", PROTECTED),  # Tomcat's reading: '..;' is '..'
        # trailing slash dropped
        ("/webhooks/sendcloud/", PROTECTED),
        ("/webhooks/sendcloud%2f", PROTECTED),
        # case folded
        ("/WEBHOOKS/SendCloud", PROTECTED),
        ("/webhooks/SENDCLOUD/", PROTECTED),
        ("/webhooks/%53endcloud", PROTECTED),
        # the root and the empty path
        ("/", "/"),
        ("", "/"),
        ("//", "/"),
        ("/..", "/"),
        # a '%' that is not an escape stays
        ("/100%", "/100%"),
        ("/%zz", "/%zz"),
        ("/%2", "/%2"),
    ],
)
def test_each_rule_of_the_normal_form(spelling, normal):
    assert paths.normalise_path(spelling) == normal


def test_case_is_folded_not_only_lowered():
    # A router that folds case (PHP's mb_convert_case MB_CASE_FOLD) reads the long s as 's'.
    assert paths.normalise_path("/webhooks/\u017fendcloud") == PROTECTED
    assert paths.normalise_path("/STRASSE") == paths.normalise_path("/straße")


def test_valid_utf8_decodes_to_its_characters():
    assert paths.normalise_path("/caf%C3%A9") == "/café"
    assert paths.normalise_path("/CAF%C3%89") == "/café"
    assert paths.normal_forms("/caf%C3%A9") == ("/café",)


def test_a_plain_path_has_one_form():
    assert paths.normal_forms("/index.php/webhooks/sendcloud") == ("/index.php/webhooks/sendcloud",)


def test_normalising_is_idempotent_on_the_tricky_cases():
    for spelling in ("/a%3fb", "/a%23b", "/a%00b", "/%ff/..", "/x;%2e%2e", "/%c0%ae%c0%ae/x", "/%\ufb03"):
        once = paths.normalise_path(spelling)
        assert paths.normalise_path(once) == once, spelling


# --- invalid UTF-8 and the other readings (fail closed) ---------------------------
#
# Decision: after percent-decoding, bytes that are not valid UTF-8 are read four ways, and the
# request is protected when any reading matches: as U+FFFD (the primary form), as Latin-1, with the
# invalid bytes dropped, and by a lenient decoder that accepts overlong forms. Nothing is refused
# for being invalid (legacy shops still have Latin-1 URLs), but no reading can escape a route.


@pytest.mark.parametrize(
    "spelling",
    [
        "/webhooks%c0%afsendcloud",  # overlong '/'
        "/webhooks%e0%80%afsendcloud",  # three-byte overlong '/'
        "/webhooks%f0%80%80%afsendcloud",  # four-byte overlong '/'
        "/webhooks%c1%9csendcloud",  # overlong '\'
        "/webhooks/x/%c0%ae%c0%ae/sendcloud",  # overlong '..'
        "/webhooks/sendcl%c1%afud",  # overlong 'o'
        "/webhooks/send%ffcloud",  # an invalid byte a sanitiser drops
        "/webhooks/send%c3cloud",  # a truncated sequence
        "/webhooks/send%80cloud",  # a lone continuation byte
        "/webhooks/send%ed%a0%80cloud",  # an encoded surrogate
        "/webhooks/sendcloud%fe",
        "/webhooks/sendcloud/%ff%ff/..",
        "/webhooks/x/.%ff./sendcloud",  # dropping the byte makes '..'
        "/webhooks%25c0%25afsendcloud",  # double-encoded overlong
        "/webhooks/sendcloud%c0%a5%32%66",  # overlong '%' that forms an escape
    ],
)
def test_invalid_utf8_spellings_of_a_protected_path_are_protected(spelling):
    assert PROTECTED in paths.normal_forms(spelling)


def test_invalid_utf8_primary_form_is_the_replacement_character():
    assert paths.normalise_path("/send%ffcloud") == "/send\ufffdcloud"


def test_latin_1_reading_matches_a_configured_non_ascii_path():
    assert "/café" in paths.normal_forms("/caf%E9")


def test_raw_non_ascii_bytes_are_read_like_encoded_ones():
    # mitmproxy hands over undecodable request-target bytes as surrogate escapes.
    raw = b"/webhooks\xc0\xafsendcloud".decode("utf-8", "surrogateescape")
    assert PROTECTED in paths.normal_forms(raw)


@pytest.mark.parametrize(
    "spelling",
    [
        "/webhooks/sendcloud%3fx=1",  # an application that decodes again, then parses
        "/webhooks/sendcloud%253fx",
        "/webhooks/sendcloud%23frag",
        "/webhooks/sendcloud#frag",  # a raw fragment in the request target
        "/webhooks/sendcloud%00.php",  # a C string ends at NUL
        "/webhooks/sendcloud%00/../../x",
        "/x#/../webhooks/sendcloud",  # cut at '#' for some, resolved whole by others
    ],
)
def test_cut_readings_are_protected(spelling):
    assert PROTECTED in paths.normal_forms(spelling)


def test_parameters_kept_reading_protects_prefix_routes():
    # nginx and Apache keep '..;x' as a segment: for them this stays under /webhooks/sendcloud/.
    forms = paths.normal_forms("/webhooks/sendcloud/..;x")
    assert paths.normalise_path("/webhooks/sendcloud/..;x") == "/webhooks"
    assert any(paths.under_prefix(form, PROTECTED) for form in forms)


def test_unresolved_reading_protects_prefix_routes():
    # A router that prefix-matches the raw path reads /webhooks/../admin as under /webhooks/.
    forms = paths.normal_forms("/webhooks/../admin")
    assert paths.normalise_path("/webhooks/../admin") == "/admin"
    assert any(paths.under_prefix(form, "/webhooks") for form in forms)


def test_the_primary_form_comes_first():
    for spelling in ("/a%ffb", "/a;b/../c", "/a%3fb"):
        assert paths.normal_forms(spelling)[0] == paths.normalise_path(spelling)


def test_readings_beyond_the_budget_are_ambiguous():
    crafted = "/a;b/../%ff%3f%23%00/" * 400
    with pytest.raises(paths.AmbiguousPath):
        paths.normal_forms(crafted)


def test_a_long_plain_path_is_within_the_budget():
    assert paths.normal_forms("/x" * 30000) == ("/x" * 30000,)


# --- prefixes: whole segments ---------------------------------------------------


@pytest.mark.parametrize(
    ("path", "covered"),
    [("/hooks", True), ("/hooks/a", True), ("/hooks/a/b", True), ("/hooksx", False), ("/hook", False), ("/", False)],
)
def test_a_prefix_covers_whole_segments(path, covered):
    assert paths.under_prefix(path, "/hooks") is covered


def test_the_root_prefix_covers_everything():
    assert paths.under_prefix("/anything", "/")
    assert paths.under_prefix("/", "/")


# --- query strings --------------------------------------------------------------


def test_query_pairs_are_decoded_and_repeated_names_kept():
    values = paths.split_query("route=sendcloud%2Fwebhook&route=other&flag")
    assert {"sendcloud/webhook", "other"} <= values["route"]
    assert "" in values["flag"]


def test_query_values_are_in_the_path_normal_form():
    values = paths.split_query("route=Sendcloud%252F%2E/WEBHOOK/")
    assert "sendcloud/webhook" in values["route"]


def test_plus_is_a_space_in_query_strings():
    assert "a b" in paths.split_query("q=a+b")["q"]


def test_semicolon_also_separates_query_pairs():
    assert "sendcloud/webhook" in paths.split_query("a=1;route=sendcloud/webhook")["route"]


@pytest.mark.parametrize("name", ["%20route", "+route", "%72oute", "ROUTE"])
def test_query_names_as_php_reads_them(name):
    # PHP drops leading spaces of a name; names are compared decoded and case folded.
    assert "route" in paths.split_query(f"{name}=x")


@pytest.mark.parametrize("name", ["route.name", "route name", "route[name", "route%2Ename"])
def test_php_turns_dot_space_and_bracket_into_underscore(name):
    assert "route_name" in paths.split_query(f"{name}=x")


@pytest.mark.parametrize(
    "value",
    [
        "sendcloud/webhook",
        "sendcloud%2Fwebhook",
        "sendcloud%252Fwebhook",
        "SENDCLOUD/Webhook",
        "sendcloud//webhook/",
        "sendcloud/./webhook",
        # OpenCart keeps only [A-Za-z0-9_/] of its route parameter:
        "send-cloud/webhook",
        "sendcloud/web%20hook",
        "sendcloud/webhook%00",
        "sendcloud/web.hook",
        "sendcloud/webhook/..",
    ],
)
def test_every_reading_of_a_query_value_matches(value):
    values = paths.split_query(f"route={value}")
    assert paths.query_matches(values, [("route", "sendcloud/webhook")])


def test_a_different_query_value_does_not_match():
    values = paths.split_query("route=product/search&q=sendcloud/webhook")
    assert not paths.query_matches(values, [("route", "sendcloud/webhook")])


def test_any_occurrence_of_a_repeated_parameter_matches():
    # PHP reads the last one, other frameworks the first: either must be protected.
    for query in ("route=x&route=sendcloud/webhook", "route=sendcloud/webhook&route=x"):
        assert paths.query_matches(paths.split_query(query), [("route", "sendcloud/webhook")])


def test_every_required_pair_must_be_present():
    required = [("route", "sendcloud/webhook"), ("shop", "1")]
    assert paths.query_matches(paths.split_query("shop=1&route=sendcloud/webhook"), required)
    assert not paths.query_matches(paths.split_query("route=sendcloud/webhook"), required)


# --- route matching through the configuration ------------------------------------


def routes(*raw_routes):
    config = parse_config(
        {"upstream": "http://127.0.0.1:8000", "secrets": {"s": {"value": "x" * 20}}, "routes": list(raw_routes)}
    )
    return config.routes


def route(**fields):
    return {"secrets": ["s"], **fields}


def name_of(matched):
    return matched.name if matched else None


def test_a_list_of_paths_are_aliases_of_one_route():
    found = routes(route(name="a", path=["/webhooks/sendcloud", "/index.php/webhooks/sendcloud"]))
    for target in ("/webhooks/sendcloud", "/index.php/webhooks/sendcloud", "/INDEX.PHP//webhooks/sendcloud/"):
        assert name_of(decision.match_route(found, target)) == "a"
    assert decision.match_route(found, "/index.php") is None
    assert decision.match_route(found, "/webhooks/sendcloud/x") is None


def test_the_configured_path_is_normalised_too():
    found = routes(route(name="a", path="/Webhooks//SendCloud/"))
    assert name_of(decision.match_route(found, "/webhooks/sendcloud")) == "a"


def test_a_path_prefix_matches_whole_segments():
    found = routes(route(name="hooks", path_prefix="/hooks/"))
    assert name_of(decision.match_route(found, "/hooks")) == "hooks"
    assert name_of(decision.match_route(found, "/hooks/a/b?x=1")) == "hooks"
    assert name_of(decision.match_route(found, "/HOOKS%2Fa")) == "hooks"
    assert decision.match_route(found, "/hooksx") is None
    assert decision.match_route(found, "/hooksx/a") is None


def test_prefix_route_protects_unresolved_and_parameter_readings():
    found = routes(route(name="hooks", path_prefix="/hooks/"))
    assert name_of(decision.match_route(found, "/hooks/a/..;x/")) == "hooks"
    assert name_of(decision.match_route(found, "/hooks/../shop")) == "hooks"


def test_the_query_is_not_part_of_the_path():
    found = routes(route(name="a", path="/webhooks/sendcloud"))
    assert name_of(decision.match_route(found, "/webhooks/sendcloud?x=/../../y")) == "a"


def test_a_query_route_needs_its_path_and_its_parameter():
    found = routes(route(name="q", path="/index.php", query={"route": "sendcloud/webhook"}))
    assert name_of(decision.match_route(found, "/index.php?route=sendcloud/webhook")) == "q"
    assert name_of(decision.match_route(found, "/index.php?a=1&route=sendcloud%2Fwebhook&b")) == "q"
    assert name_of(decision.match_route(found, "/INDEX.PHP?route=Sendcloud/Webhook")) == "q"
    assert name_of(decision.match_route(found, "/index.php?route=send-cloud/webhook")) == "q"
    assert decision.match_route(found, "/index.php?route=product/search") is None
    assert decision.match_route(found, "/index.php") is None
    assert decision.match_route(found, "/other.php?route=sendcloud/webhook") is None


def test_a_query_only_route_matches_any_path():
    found = routes(route(name="q", query={"route": "sendcloud/webhook"}))
    assert name_of(decision.match_route(found, "/?route=sendcloud/webhook")) == "q"
    assert name_of(decision.match_route(found, "/shop/index.php?route=sendcloud/webhook")) == "q"
    assert decision.match_route(found, "/shop/index.php?route=checkout") is None


def test_the_first_matching_route_wins():
    found = routes(route(name="first", path_prefix="/hooks"), route(name="second", path="/hooks/sendcloud"))
    assert name_of(decision.match_route(found, "/hooks/sendcloud")) == "first"


def test_an_ambiguous_target_is_protected_by_the_first_route():
    found = routes(route(name="first", path="/webhooks/sendcloud"), route(name="second", path="/other"))
    assert name_of(decision.match_route(found, "/a;b/../%ff%3f%23%00/" * 400)) == "first"


def test_an_ambiguous_query_is_protected_too():
    found = routes(route(name="q", path="/index.php", query={"route": "sendcloud/webhook"}))
    crafted = "&".join(f"a{index}=%ff%3f%23%00;b/.." for index in range(1000))
    assert name_of(decision.match_route(found, "/index.php?" + crafted)) == "q"
    assert decision.match_route(found, "/shop?" + crafted) is None  # the query is only read for /index.php


# --- forged verdict headers -------------------------------------------------------


def test_verdict_header_names_match_in_every_spelling():
    config = parse_config(
        {"upstream": "http://127.0.0.1:8000", "secrets": {"s": {"env": "S"}}, "routes": [route(path="/a")]}
    )
    names = decision.verdict_header_names(config.headers)
    given = [
        "X-Webhook-Verified",
        "x-webhook-verified",
        "X_WEBHOOK_VERIFIED",
        "x_webhook-Key_Id",
        "X-Webhook-Verify-Error",
        "X.Webhook.Verified",  # lighttpd's CGI maps every non-alphanumeric character to '_'
        "Content-Type",
        "X-Webhook-Verifiedx",
        "Sendcloud-Signature",
    ]
    assert decision.forged_headers(given, names) == given[:6]
