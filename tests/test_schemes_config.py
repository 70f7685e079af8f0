"""Scheme options in the config: validated once, errors naming the key path; the decision applies them."""

from __future__ import annotations

import datetime

import pytest

from schemes_support import request
from sigwarden import cli, decision
from sigwarden.config import ConfigError, SecretSpec, parse_config
from sigwarden.outcomes import Outcome
from sigwarden.schemes import SCHEMES
from sigwarden.secrets import SecretStore


def config_with(*routes: dict) -> dict:
    return {
        "upstream": "http://127.0.0.1:8000",
        "secrets": {"key": {"env": "SCHEMES_TEST_KEY"}, "old": {"env": "SCHEMES_TEST_OLD"}},
        "routes": [{"name": f"r{index}", "path": f"/hooks/{index}", "secrets": ["key"], **route} for index, route
                   in enumerate(routes)],
    }  # fmt: skip


def problems_of(*routes: dict) -> list[str]:
    with pytest.raises(ConfigError) as error:
        parse_config(config_with(*routes), source="config.yaml")
    return error.value.problems


def test_sendcloud_stays_the_default_with_no_options():
    config = parse_config(config_with({}))
    assert config.routes[0].scheme == "sendcloud"
    assert config.routes[0].scheme_options == {}


def test_every_scheme_of_the_registry_parses_its_minimal_route():
    minimal = {"token": {}, "hmac": {"header": "X-Signature"}}
    for name in SCHEMES:
        route = parse_config(config_with({"scheme": name, **minimal.get(name, {})})).routes[0]
        assert route.scheme == name


@pytest.mark.parametrize(
    ("route", "expected"),
    [
        ({"scheme": "hmac"}, "routes[0].header: required for scheme hmac"),
        ({"scheme": "hmac", "header": "X Sig"}, "routes[0].header: expected an HTTP header name, got 'X Sig'"),
        ({"scheme": "hmac", "header": "X-S", "algorithm": "md5"}, "routes[0].algorithm: expected one of sha1, sha256"),
        ({"scheme": "hmac", "header": "X-S", "encoding": "base32"}, "routes[0].encoding: expected one of hex, base64"),
        ({"scheme": "hmac", "header": "X-S", "signed_content": "{bdy}"}, "routes[0].signed_content: unknown"),
        ({"scheme": "hmac", "header": "X-S", "signed_content": "{timestamp}.{body}"},
         "routes[0].signed_content: uses {timestamp}: set timestamp_header or timestamp_key"),
        ({"scheme": "hmac", "header": "X-S", "timestamp_header": "X-T"},
         "routes[0].signed_content: must include {timestamp}"),
        ({"scheme": "hmac", "header": "X-S", "tolerance": "5m"}, "routes[0].tolerance: needs a timestamp"),
        ({"scheme": "hmac", "header": "X-S", "timestamp_key": "t", "signed_content": "{timestamp}.{body}"},
         "routes[0].timestamp_key: needs signature_key"),
        ({"scheme": "hmac", "header": "X-S", "timestamp_header": "X-T", "signed_content": "{timestamp}{body}",
          "tolerance": "soon"}, "routes[0].tolerance: expected a duration"),
        ({"scheme": "hmac", "header": "X-S", "separator": ""}, "routes[0].separator: expected a non-empty string"),
        ({"scheme": "hmac", "header": "X-S", "secret_encoding": "hex"}, "routes[0].secret_encoding: expected one of"),
        ({"scheme": "token", "auth": "digest"}, "routes[0].auth: expected one of bearer, basic, api_key"),
        ({"scheme": "token", "auth": "api_key"}, "routes[0].header: required with auth: api_key"),
        ({"scheme": "token", "remove_credential": "yes"}, "routes[0].remove_credential: expected true or false"),
        ({"scheme": "stripe", "tolerance": "-5s"}, "routes[0].tolerance: expected a duration"),
        # Presets fix what the provider fixes: their other keys are unknown.
        ({"scheme": "github", "algorithm": "sha1"}, "routes[0].algorithm: unknown key"),
        ({"scheme": "shopify", "tolerance": "5m"}, "routes[0].tolerance: unknown key"),
        # Options of one scheme are unknown keys on another.
        ({"auth": "bearer"}, "routes[0].auth: unknown key"),
        ({"scheme": "token", "header": "X-Key", "prefix": "sha256="}, "routes[0].prefix: unknown key"),
    ],
)  # fmt: skip
def test_option_errors_name_the_key_path(route, expected):
    problems = problems_of(route)
    assert any(problem.startswith(expected) for problem in problems), problems


def test_every_bad_option_of_every_route_is_reported_at_once():
    problems = problems_of({"scheme": "hmac", "algorithm": "md5"}, {}, {"scheme": "token", "auth": "x"})
    keys = sorted(problem.split(":")[0] for problem in problems)
    assert keys == ["routes[0].algorithm", "routes[0].header", "routes[2].auth"]


def test_check_names_the_file_key_and_reason(tmp_path, capsys):
    path = tmp_path / "broken.yaml"
    path.write_text(
        "upstream: http://127.0.0.1:8000\n"
        "secrets: {key: {value: abcdefghijklmnopqrstuvwxyz}}\n"
        "routes:\n"
        "  - {name: a, path: /a, secrets: [key]}\n"
        "  - {name: b, path: /b, secrets: [key]}\n"
        "  - {name: c, path: /c, secrets: [key], scheme: hmac, header: 'bad header'}\n"
    )
    assert cli.main(["check", "-c", str(path)]) == 2
    assert f"{path}: routes[2].header: expected an HTTP header name, got 'bad header'" in capsys.readouterr().err


# --- the decision applies the scheme's options ----------------------------------


def store(expires: datetime.datetime | None = None) -> SecretStore:
    specs = {"key": SecretSpec("key", "env", "K", expires)}
    return SecretStore(specs, {"K": "token-0123456789abcdef"})


NOW = datetime.datetime(2026, 6, 1, tzinfo=datetime.UTC)


def token_route(**options):
    config = config_with({"scheme": "token", "path": "/t", **options})
    return parse_config(config).routes[0]


def test_the_verdict_names_the_credential_to_remove_in_canonical_form():
    route = token_route(auth="api_key", header="X-Api_Key", remove_credential=True)
    verdict = decision.verify(route, store(), request({"X-Api_Key": "token-0123456789abcdef"}), NOW)
    assert verdict.outcome is Outcome.VERIFIED
    assert verdict.remove_headers == frozenset({"x-api-key"})
    # The addon removes every header that reads as the same name, as forged verdicts are removed.
    names = ["X-API-KEY", "x_api_key", "X-Api-Keys", "Content-Type"]
    assert decision.forged_headers(names, verdict.remove_headers) == ["X-API-KEY", "x_api_key"]


def test_the_credential_is_removed_whatever_the_outcome():
    route = token_route(remove_credential=True)
    for headers, now, expected in (
        ({"Authorization": "Bearer wrong"}, NOW, Outcome.INVALID_SIGNATURE),
        ({}, NOW, Outcome.MISSING_SIGNATURE),
        ({"Authorization": "Bearer token-0123456789abcdef"}, NOW, Outcome.VERIFIED),
    ):
        verdict = decision.verify(route, store(), request(headers), now)
        assert (verdict.outcome, verdict.remove_headers) == (expected, frozenset({"authorization"}))


def test_an_expired_secret_fails_closed_for_any_scheme():
    route = token_route(remove_credential=True)
    expired = store(expires=NOW - datetime.timedelta(seconds=1))
    verdict = decision.verify(route, expired, request({"Authorization": "Bearer token-0123456789abcdef"}), NOW)
    assert verdict.outcome is Outcome.SECRET_UNAVAILABLE
    assert verdict.remove_headers == frozenset({"authorization"})  # report mode forwards it: still no credential


def test_without_the_option_nothing_is_removed():
    verdict = decision.verify(token_route(), store(), request({"Authorization": "Bearer x"}), NOW)
    assert verdict.remove_headers == frozenset()


def test_the_decision_passes_its_clock_to_the_scheme():
    config = config_with(
        {
            "scheme": "hmac",
            "path": "/h",
            "header": "X-S",
            "timestamp_header": "X-T",
            "signed_content": "{timestamp}{body}",
        }
    )
    route = parse_config(config).routes[0]
    headers = SCHEMES["hmac"].sign(b"{}", b"token-0123456789abcdef", route.scheme_options, NOW)
    assert decision.verify(route, store(), request(headers, b"{}"), NOW).outcome is Outcome.VERIFIED
    later = NOW + datetime.timedelta(minutes=6)
    assert decision.verify(route, store(), request(headers, b"{}"), later).outcome is Outcome.STALE_TIMESTAMP
