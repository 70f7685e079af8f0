"""The limits and upstream_tls settings as parsed, and the mitmproxy options they become."""

from __future__ import annotations

import pytest

from sigwarden.config import ConfigError, parse_config
from sigwarden.proxy import proxy_options, upstream_trust

MINIMAL = {
    "upstream": "https://app.internal:8443",
    "secrets": {"sendcloud": {"value": "0123456789abcdef0123"}},
    "routes": [{"name": "sendcloud", "path": "/webhooks/sendcloud", "secrets": ["sendcloud"]}],
}


def parse(**overrides):
    return parse_config({**MINIMAL, **overrides}, source="config.yaml")


def problems(**overrides) -> list[str]:
    with pytest.raises(ConfigError) as error:
        parse(**overrides)
    return error.value.problems


@pytest.mark.parametrize("key", ["header_timeout", "body_timeout", "idle_timeout", "upstream_timeout"])
def test_a_zero_timeout_is_refused(key):
    assert problems(limits={key: "0s"}) == [f"limits.{key}: a limit must be above zero, got '0s'"]


def test_a_zero_header_size_and_connection_cap_are_refused():
    found = problems(limits={"max_header_bytes": 0, "max_connections": 0})
    assert found[0].startswith("limits.max_header_bytes: a limit must be above zero")
    assert found[1].startswith("limits.max_connections: expected a positive whole number")


def test_missing_ca_file_names_the_key_and_the_file(tmp_path):
    missing = tmp_path / "nope.pem"
    [problem] = problems(upstream_tls={"ca_file": str(missing)})
    assert problem.startswith(f"upstream_tls.ca_file: cannot read {missing}: ")


def test_ca_file_without_a_certificate_is_refused(tmp_path):
    empty = tmp_path / "empty.pem"
    empty.write_text("not a certificate\n")
    assert problems(upstream_tls={"ca_file": str(empty)}) == [f"upstream_tls.ca_file: {empty} holds no PEM certificate"]


def test_ca_file_is_what_verifies_the_upstream(tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    config = parse(upstream_tls={"ca_file": str(bundle)})
    options = proxy_options(config, str(tmp_path))
    assert options["ssl_verify_upstream_trusted_ca"] == str(bundle)
    assert options["ssl_verify_upstream_trusted_confdir"] is None
    assert options["ssl_insecure"] is False


def test_without_ca_file_the_system_bundle_is_used(monkeypatch, tmp_path):
    bundle = tmp_path / "system.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    assert upstream_trust(parse().upstream_tls)["ssl_verify_upstream_trusted_ca"] == str(bundle)


def test_verify_false_turns_verification_off():
    assert proxy_options(parse(upstream_tls={"verify": False}), "/tmp")["ssl_insecure"] is True


def test_mitmproxy_watchdog_only_covers_the_first_byte():
    assert proxy_options(parse(limits={"header_timeout": "2.5s", "idle_timeout": "5m"}), "/tmp")["tcp_timeout"] == 3
