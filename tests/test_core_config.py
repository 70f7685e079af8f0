"""Configuration parsing and validation (SPEC §3): defaults, and each mistake's exact message."""

from __future__ import annotations

import datetime
import ipaddress
import textwrap
from pathlib import Path

import pytest
import yaml

from sigwarden import paths
from sigwarden.config import ConfigError, Limits, VerdictHeaders, load_config, parse_config

# The configuration of SPEC §3, every key written out.
SPEC_EXAMPLE = """\
listen: 0.0.0.0:8080            # proxy listener
upstream: http://127.0.0.1:8000 # the application (http or https)
upstream_tls:                   # only for https upstreams
  verify: true
  ca_file: null                 # PEM bundle; default: the system's
admin_listen: 0.0.0.0:9090      # health, readiness, metrics; null turns it off
mode: enforce                   # enforce | report   (report: forward everything, mark the verdict)
unmatched: pass                 # requests that match no route: pass | reject
headers:                        # names of the headers sigwarden sets upstream
  verified: X-Webhook-Verified  # "true" on verified requests ("false" in report mode)
  key_id: X-Webhook-Key-Id      # name of the secret that matched
  error: X-Webhook-Verify-Error # report mode only: why verification failed
secrets:
  sendcloud:                    # the name is the key id (headers, logs, metrics)
    file: /var/run/secrets/sendcloud/key   # exactly one of: file | env | value
  sendcloud-old:
    env: SENDCLOUD_OLD_KEY
    expires: 2027-01-31T00:00:00Z          # optional RFC 3339 instant (quoted or not): refused after it
routes:
  - name: sendcloud
    path: /webhooks/sendcloud   # exact path, or a list of paths (aliases such as /index.php/webhooks/sendcloud)
    # path_prefix: /webhooks/   # instead of path: everything under it
    # query: {route: sendcloud/webhook}   # optional, for query-routed apps (index.php?route=…)
    scheme: sendcloud           # default; see §9 for more
    secrets: [sendcloud, sendcloud-old]    # any one of them may match
    max_body: 1MiB              # default 1MiB
    mode: enforce               # optional, overrides the global mode
    dedupe_window: 12h          # optional, §6
    max_age: null               # optional, §6
dedupe_store: memory            # memory | redis://host:6379/0
dedupe_max_entries: 100000      # memory store bound
limits:
  max_header_bytes: 64KiB       # 431 above it
  header_timeout: 10s           # 408 if the request head has not arrived
  body_timeout: 30s             # 408 if a protected body has not arrived
  max_connections: 1024         # further clients are refused
  upstream_connect_timeout: 5s  # 502 upstream_unavailable
  upstream_timeout: 60s         # 504 upstream_timeout
  idle_timeout: 75s             # keep-alive connections closed after it
trusted_proxies: []             # CIDRs whose X-Forwarded-For is believed for `client`
drain_delay: 0s                 # §5
shutdown_grace: 10s             # §5
log_format: json                # json | text
log_level: info
"""

MINIMAL = {
    "upstream": "http://127.0.0.1:8000",
    "secrets": {"sendcloud": {"env": "SENDCLOUD_KEY"}, "sendcloud-old": {"env": "SENDCLOUD_OLD_KEY"}},
    "routes": [{"name": "sendcloud", "path": "/webhooks/sendcloud", "secrets": ["sendcloud"]}],
}


def with_changes(**top_level):
    data = {**MINIMAL, **top_level}
    return data


def with_route(**fields):
    route = {**MINIMAL["routes"][0], **fields}
    for key in [key for key, value in fields.items() if value is ...]:
        del route[key]
    return {**MINIMAL, "routes": [route]}


def problems_of(data, source="config.yaml"):
    with pytest.raises(ConfigError) as raised:
        parse_config(data, source)
    return str(raised.value).splitlines()


# --- what a valid config gives -------------------------------------------------


def test_the_spec_example_is_valid_and_means_what_it_says():
    config = parse_config(yaml.safe_load(SPEC_EXAMPLE), "spec.yaml")
    assert config.source == "spec.yaml"
    assert config.listen == ("0.0.0.0", 8080)
    assert config.upstream == "http://127.0.0.1:8000"
    assert config.upstream_tls.verify is True and config.upstream_tls.ca_file is None
    assert config.admin_listen == ("0.0.0.0", 9090)
    assert (config.mode, config.unmatched) == ("enforce", "pass")
    assert config.headers == VerdictHeaders()
    assert config.secrets["sendcloud"].source == "file"
    assert config.secrets["sendcloud"].location == "/var/run/secrets/sendcloud/key"
    assert config.secrets["sendcloud-old"].source == "env"
    assert config.secrets["sendcloud-old"].expires == datetime.datetime(2027, 1, 31, tzinfo=datetime.UTC)
    [route] = config.routes
    assert route.name == "sendcloud"
    assert route.paths == ("/webhooks/sendcloud",)
    assert route.secrets == ("sendcloud", "sendcloud-old")
    assert (route.scheme, route.max_body, route.mode) == ("sendcloud", 1024 * 1024, "enforce")
    assert (route.dedupe_window, route.max_age) == (12 * 3600, None)
    assert (config.dedupe_store, config.dedupe_max_entries) == ("memory", 100_000)
    assert config.limits == Limits(65536, 10, 30, 1024, 5, 60, 75)
    assert config.trusted_proxies == ()
    assert (config.drain_delay, config.shutdown_grace) == (0, 10)
    assert (config.log_format, config.log_level) == ("json", "info")


def test_only_upstream_and_a_route_are_required_and_every_default_is_the_spec_s():
    config = parse_config(MINIMAL)
    spec = parse_config(yaml.safe_load(SPEC_EXAMPLE))
    for key in ("listen", "upstream_tls", "admin_listen", "mode", "unmatched", "headers", "dedupe_store"):
        assert getattr(config, key) == getattr(spec, key), key
    for key in ("dedupe_max_entries", "limits", "trusted_proxies", "drain_delay", "shutdown_grace"):
        assert getattr(config, key) == getattr(spec, key), key
    assert (config.log_format, config.log_level) == ("json", "info")
    [route] = config.routes
    assert (route.scheme, route.max_body, route.mode, route.dedupe_window, route.max_age) == (
        "sendcloud",
        1024 * 1024,
        None,
        None,
        None,
    )


def test_a_quoted_expiry_is_the_same_instant():
    data = with_changes(secrets={"a": {"env": "A", "expires": "2027-01-31T01:00:00+01:00"}})
    data["routes"] = [{"name": "r", "path": "/a", "secrets": ["a"]}]
    expires = parse_config(data).secrets["a"].expires
    assert expires == datetime.datetime(2027, 1, 31, tzinfo=datetime.UTC)


@pytest.mark.parametrize("written", ["2027-01-31T00:00:00z", "2027-01-31 00:00:00Z", "2027-01-31T00:00:00.000Z"])
def test_rfc3339_spellings_of_an_instant(written):
    data = with_changes(secrets={"a": {"env": "A", "expires": written}})
    data["routes"] = [{"name": "r", "path": "/a", "secrets": ["a"]}]
    assert parse_config(data).secrets["a"].expires == datetime.datetime(2027, 1, 31, tzinfo=datetime.UTC)


def test_a_list_of_paths_is_normalised():
    config = parse_config(with_route(path=["/webhooks/sendcloud", "/Index.php//webhooks/sendcloud/"]))
    assert config.routes[0].paths == ("/webhooks/sendcloud", "/index.php/webhooks/sendcloud")


def test_path_prefix_and_query_are_normalised():
    config = parse_config(with_route(path=..., path_prefix="/Hooks/", query={"Route": "Sendcloud%2FWebhook"}))
    route = config.routes[0]
    assert route.path_prefix == "/hooks"
    assert route.query == (("route", "sendcloud/webhook"),)


def test_a_single_secret_may_be_written_without_a_list():
    assert parse_config(with_route(secrets="sendcloud")).routes[0].secrets == ("sendcloud",)


def test_the_route_mode_overrides_the_global_mode():
    config = parse_config({**with_route(mode="report"), "mode": "enforce"})
    assert config.route_mode(config.routes[0]) == "report"
    config = parse_config({**with_route(), "mode": "report"})
    assert config.route_mode(config.routes[0]) == "report"


def test_null_admin_listen_turns_it_off():
    assert parse_config(with_changes(admin_listen=None)).admin_listen is None


@pytest.mark.parametrize(
    ("written", "parsed"),
    [("127.0.0.1:8080", ("127.0.0.1", 8080)), (":8080", ("0.0.0.0", 8080)), ("[::1]:8080", ("::1", 8080))],
)
def test_listen_addresses(written, parsed):
    assert parse_config(with_changes(listen=written)).listen == parsed


@pytest.mark.parametrize(
    ("written", "parsed"),
    [
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("http://app", "http://app:80"),
        ("https://app", "https://app:443"),
        ("http://app:8000/", "http://app:8000"),
        ("http://[::1]:8000", "http://[::1]:8000"),
    ],
)
def test_upstream_urls(written, parsed):
    assert parse_config(with_changes(upstream=written)).upstream == parsed


def test_trusted_proxies_are_networks():
    config = parse_config(with_changes(trusted_proxies=["10.0.0.0/8", "192.168.1.7", "fd00::/8"]))
    assert config.trusted_proxies == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("192.168.1.7/32"),
        ipaddress.ip_network("fd00::/8"),
    )


def test_inline_values_are_accepted_with_a_warning():
    data = with_changes(secrets={"sendcloud": {"value": "an-inline-secret-value"}})
    config = parse_config(data)
    assert config.warnings() == [
        "secrets.sendcloud.value: an inline secret ends up in the config file; prefer file or env"
    ]
    assert "an-inline-secret-value" not in config.secrets["sendcloud"].describe()


def test_describe_never_shows_an_inline_value():
    config = parse_config(with_changes(secrets={"sendcloud": {"value": "an-inline-secret-value"}}))
    assert config.secrets["sendcloud"].describe() == "inline value"


# --- every mistake: the file, the key path, the reason -----------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        # SPEC §3's own examples
        (
            with_changes(listen_port=8080),
            "config.yaml: listen_port: unknown key; known keys: admin_listen, dedupe_max_entries, dedupe_store, "
            "drain_delay, headers, limits, listen, log_format, log_level, mode, routes, secrets, shutdown_grace, "
            "trusted_proxies, unmatched, upstream, upstream_tls",
        ),
        (
            with_route(secrets=["sendcloud", "sendclod"]),
            "config.yaml: routes[0].secrets[1]: unknown secret 'sendclod' (defined: sendcloud, sendcloud-old)",
        ),
        (
            with_changes(secrets={"sendcloud": {"file": "/k", "env": "K"}}),
            "config.yaml: secrets.sendcloud: needs exactly one of file, env or value (found: file, env)",
        ),
        (
            with_changes(upstream="htp://127.0.0.1:8000"),
            "config.yaml: upstream: expected an http:// or https:// URL with a host, got 'htp://127.0.0.1:8000'",
        ),
        (
            with_route(max_body="1MB"),
            "config.yaml: routes[0].max_body: expected a size such as 512B, 64KiB or 1MiB, got '1MB'",
        ),
        (
            with_changes(drain_delay="5 minutes"),
            "config.yaml: drain_delay: expected a duration such as 30s, 5m, 12h or 1d, got '5 minutes'",
        ),
        (
            with_route(dedupe_window="1h", max_age="24h"),
            "config.yaml: routes[0].dedupe_window: must be at least as long as max_age, or a replay fits between them",
        ),
        (
            with_changes(secrets={"sendcloud": {"file": ""}}),
            "config.yaml: secrets.sendcloud.file: expected a non-empty string",
        ),
        # the rest of the file, key by key
        (
            with_changes(secrets={"sendcloud": {"file": 3}}),
            "config.yaml: secrets.sendcloud.file: expected a non-empty string",
        ),
        (
            with_changes(secrets={"sendcloud": {"expires": "2027-01-31T00:00:00Z"}}),
            "config.yaml: secrets.sendcloud: needs exactly one of file, env or value (found: none)",
        ),
        (
            with_changes(secrets={"sendcloud": {"env": "K", "rotate": True}}),
            "config.yaml: secrets.sendcloud.rotate: unknown key; known keys: env, expires, file, value",
        ),
        (
            with_changes(secrets={"sendcloud": "/var/run/key"}),
            "config.yaml: secrets.sendcloud: expected a mapping with one of file, env or value",
        ),
        (
            with_changes(secrets={"sendcloud": {"env": "K", "expires": "tomorrow"}}),
            "config.yaml: secrets.sendcloud.expires: expected an RFC 3339 instant such as 2027-01-31T00:00:00Z, "
            "got 'tomorrow'",
        ),
        (
            with_changes(secrets={"sendcloud": {"env": "K", "expires": "2027-01-31T00:00:00"}}),
            "config.yaml: secrets.sendcloud.expires: the instant needs a time zone (Z or +01:00), "
            "got '2027-01-31T00:00:00'",
        ),
        (
            with_changes(secrets={"sendcloud": {"env": "K", "expires": datetime.date(2027, 1, 31)}}),
            "config.yaml: secrets.sendcloud.expires: expected an RFC 3339 instant such as 2027-01-31T00:00:00Z, "
            "got 2027-01-31",
        ),
        (
            with_changes(secrets={"sendcloud": {"env": "K", "expires": datetime.datetime(2027, 1, 31)}}),
            "config.yaml: secrets.sendcloud.expires: the instant needs a time zone (Z or +01:00), "
            "got 2027-01-31T00:00:00",
        ),
        (with_changes(secrets=["sendcloud"]), "config.yaml: secrets: expected a mapping, got list"),
        (
            with_changes(upstream="http://"),
            "config.yaml: upstream: expected an http:// or https:// URL with a host, got 'http://'",
        ),
        (
            with_changes(upstream="http://app:99999"),
            "config.yaml: upstream: malformed URL 'http://app:99999': Port out of range 0-65535",
        ),
        (
            with_changes(upstream="http://app:8000/shop"),
            "config.yaml: upstream: the upstream URL takes no path, query or credentials, got 'http://app:8000/shop'",
        ),
        (
            with_changes(upstream="http://user:pw@app:8000"),
            "config.yaml: upstream: the upstream URL takes no path, query or credentials, got 'http://***@app:8000'",
        ),
        (
            with_changes(upstream=8000),
            "config.yaml: upstream: expected a URL such as http://127.0.0.1:8000, got 8000",
        ),
        (
            {"secrets": MINIMAL["secrets"], "routes": MINIMAL["routes"]},
            "config.yaml: upstream: required: the application's URL, such as http://127.0.0.1:8000",
        ),
        (with_changes(listen="8080"), "config.yaml: listen: expected host:port such as 0.0.0.0:8080, got '8080'"),
        (
            with_changes(listen="0.0.0.0:80800"),
            "config.yaml: listen: expected host:port such as 0.0.0.0:8080, got '0.0.0.0:80800'",
        ),
        (
            with_changes(admin_listen="localhost"),
            "config.yaml: admin_listen: expected host:port such as 0.0.0.0:8080, got 'localhost'",
        ),
        (
            with_changes(upstream_tls={"verify": "yes"}),
            "config.yaml: upstream_tls.verify: expected true or false, got 'yes'",
        ),
        (
            with_changes(upstream_tls={"ca_file": 5}),
            "config.yaml: upstream_tls.ca_file: expected the path of a PEM file of CA certificates, got 5",
        ),
        (
            with_changes(upstream_tls={"ca": "/x.pem"}),
            "config.yaml: upstream_tls.ca: unknown key; known keys: ca_file, verify",
        ),
        (with_changes(mode="strict"), "config.yaml: mode: expected one of enforce, report, got 'strict'"),
        (with_changes(unmatched="drop"), "config.yaml: unmatched: expected one of pass, reject, got 'drop'"),
        (
            with_changes(headers={"verified": "X Verified"}),
            "config.yaml: headers.verified: expected an HTTP header name, got 'X Verified'",
        ),
        (
            with_changes(headers={"verdict": "X-Verdict"}),
            "config.yaml: headers.verdict: unknown key; known keys: error, key_id, verified",
        ),
        (with_changes(headers=["X-A"]), "config.yaml: headers: expected a mapping, got list"),
        (
            with_changes(headers={"key_id": "x_webhook_verified"}),
            "config.yaml: headers.key_id: the same header as headers.verified; choose another name",
        ),
        (
            with_changes(headers={"verified": "Content-Length"}),
            "config.yaml: headers.verified: 'Content-Length' is needed by requests; choose another name",
        ),
        (
            with_changes(headers={"error": "Sendcloud_Signature"}),
            "config.yaml: headers.error: 'Sendcloud_Signature' is needed by requests; choose another name",
        ),
        (
            with_changes(dedupe_store="mysql://db"),
            "config.yaml: dedupe_store: expected memory or redis://host:6379/0, got 'mysql://db'",
        ),
        (
            with_changes(dedupe_store="redis://"),
            "config.yaml: dedupe_store: expected redis://host:6379/0, got 'redis://'",
        ),
        (
            with_changes(dedupe_max_entries=0),
            "config.yaml: dedupe_max_entries: expected a positive whole number, got 0",
        ),
        (
            with_changes(limits={"max_body": "1MiB"}),
            "config.yaml: limits.max_body: unknown key; known keys: body_timeout, header_timeout, idle_timeout, "
            "max_connections, max_header_bytes, upstream_connect_timeout, upstream_timeout",
        ),
        (
            with_changes(limits={"header_timeout": "fast"}),
            "config.yaml: limits.header_timeout: expected a duration such as 30s, 5m, 12h or 1d, got 'fast'",
        ),
        (
            with_changes(limits={"max_header_bytes": "64KB"}),
            "config.yaml: limits.max_header_bytes: expected a size such as 512B, 64KiB or 1MiB, got '64KB'",
        ),
        (
            with_changes(limits={"max_connections": "many"}),
            "config.yaml: limits.max_connections: expected a positive whole number, got 'many'",
        ),
        (
            with_changes(trusted_proxies=["10.0.0.0/33"]),
            "config.yaml: trusted_proxies[0]: expected a CIDR such as 10.0.0.0/8, got '10.0.0.0/33'",
        ),
        (with_changes(trusted_proxies="10.0.0.0/8"), "config.yaml: trusted_proxies: expected a list, got '10.0.0.0/8'"),
        (
            with_changes(shutdown_grace=-1),
            "config.yaml: shutdown_grace: a duration must be a finite number of seconds, not negative, got -1",
        ),
        (
            with_changes(shutdown_grace=float("inf")),
            "config.yaml: shutdown_grace: a duration must be a finite number of seconds, not negative, got inf",
        ),
        (with_changes(log_format="xml"), "config.yaml: log_format: expected one of json, text, got 'xml'"),
        (
            with_changes(log_level="trace"),
            "config.yaml: log_level: expected one of debug, info, warning, error, got 'trace'",
        ),
        # routes
        (with_changes(routes=[]), "config.yaml: routes: required: a list with at least one route"),
        (with_changes(routes={"name": "x"}), "config.yaml: routes: expected a list of routes, got a mapping"),
        (with_changes(routes=["/webhooks"]), "config.yaml: routes[0]: expected a mapping with name, path and secrets"),
        (with_route(path=...), "config.yaml: routes[0]: needs path, path_prefix or query"),
        (with_route(path_prefix="/hooks"), "config.yaml: routes[0]: give either path or path_prefix, not both"),
        (
            with_route(path="webhooks/sendcloud"),
            "config.yaml: routes[0].path: expected a path starting with '/', got 'webhooks/sendcloud'",
        ),
        (
            with_route(path=["/webhooks/sendcloud", 7]),
            "config.yaml: routes[0].path[1]: expected a path starting with '/', got 7",
        ),
        (with_route(path=[]), "config.yaml: routes[0].path: expected at least one path"),
        (
            with_route(path="/index.php?route=sendcloud/webhook"),
            "config.yaml: routes[0].path: a path has no query string; match it with query: {name: value}, "
            "got '/index.php?route=sendcloud/webhook'",
        ),
        (
            with_route(path=..., path_prefix="hooks"),
            "config.yaml: routes[0].path_prefix: expected a path starting with '/', got 'hooks'",
        ),
        (with_route(query={"route": None}), "config.yaml: routes[0].query.route: expected a string, got None"),
        (
            with_route(path=..., path_prefix=["/a/", "/b/"]),
            "config.yaml: routes[0].path_prefix: expected one path prefix (a route for each prefix), got a list",
        ),
        (with_route(path=..., query={}), "config.yaml: routes[0]: needs path, path_prefix or query"),
        (with_route(query=["route"]), "config.yaml: routes[0].query: expected a mapping, got list"),
        (
            with_route(scheme="gitlab"),
            "config.yaml: routes[0].scheme: unknown scheme 'gitlab' "
            "(known: github, hmac, sendcloud, shopify, standard-webhooks, stripe, token)",
        ),
        (
            with_route(secret=["sendcloud"]),
            "config.yaml: routes[0].secret: unknown key; known keys: dedupe_window, max_age, max_body, mode, name, "
            "path, path_prefix, query, scheme, secrets",
        ),
        (with_route(secrets=[]), "config.yaml: routes[0].secrets: expected a list of secret names (at least one)"),
        (with_route(secrets=...), "config.yaml: routes[0].secrets: expected a list of secret names (at least one)"),
        (
            with_route(name="send cloud"),
            "config.yaml: routes[0].name: expected a name of letters, digits, '-', '_' or '.', got 'send cloud'",
        ),
        (with_route(max_body=-1), "config.yaml: routes[0].max_body: a size cannot be negative, got -1"),
        (with_route(max_body="0.5B"), "config.yaml: routes[0].max_body: expected a whole number of bytes, got '0.5B'"),
        (with_route(mode="off"), "config.yaml: routes[0].mode: expected one of enforce, report, got 'off'"),
        (
            with_route(dedupe_window="forever"),
            "config.yaml: routes[0].dedupe_window: expected a duration such as 30s, 5m, 12h or 1d, got 'forever'",
        ),
        (
            with_route(max_age="1 day"),
            "config.yaml: routes[0].max_age: expected a duration such as 30s, 5m, 12h or 1d, got '1 day'",
        ),
    ],
)
def test_each_mistake_names_the_file_the_key_and_the_reason(data, expected):
    assert problems_of(data) == [expected]


def test_two_routes_with_one_name():
    data = {**MINIMAL, "routes": [MINIMAL["routes"][0], {**MINIMAL["routes"][0], "path": "/other"}]}
    assert problems_of(data) == ["config.yaml: routes[1].name: duplicate route name 'sendcloud'"]


def test_every_mistake_is_reported_at_once():
    data = {**with_route(max_body="big", mode="never"), "mode": "strict", "listen": "nowhere", "extra": 1}
    assert problems_of(data) == [
        "config.yaml: extra: unknown key; known keys: admin_listen, dedupe_max_entries, dedupe_store, drain_delay, "
        "headers, limits, listen, log_format, log_level, mode, routes, secrets, shutdown_grace, trusted_proxies, "
        "unmatched, upstream, upstream_tls",
        "config.yaml: routes[0].max_body: expected a size such as 512B, 64KiB or 1MiB, got 'big'",
        "config.yaml: routes[0].mode: expected one of enforce, report, got 'never'",
        "config.yaml: listen: expected host:port such as 0.0.0.0:8080, got 'nowhere'",
        "config.yaml: mode: expected one of enforce, report, got 'strict'",
    ]


def test_a_broken_secret_is_reported_once_not_again_at_its_routes():
    data = with_changes(secrets={"sendcloud": {"file": "/k", "env": "K"}, "sendcloud-old": {"env": "O"}})
    assert problems_of(data) == [
        "config.yaml: secrets.sendcloud: needs exactly one of file, env or value (found: file, env)"
    ]


def test_no_secrets_at_all_names_the_unknown_secret():
    data = {"upstream": MINIMAL["upstream"], "routes": MINIMAL["routes"]}
    assert problems_of(data) == ["config.yaml: routes[0].secrets[0]: unknown secret 'sendcloud' (defined: none)"]


def test_the_top_level_must_be_a_mapping():
    assert problems_of(["upstream"]) == ["config.yaml: (top level): expected a mapping of settings"]


# --- files ------------------------------------------------------------------------


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "sigwarden.yaml"
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_load_config_reads_a_file(tmp_path):
    config = load_config(write(tmp_path, SPEC_EXAMPLE))
    assert config.source.endswith("sigwarden.yaml")
    assert config.routes[0].name == "sendcloud"


def test_a_mistake_in_a_file_names_the_file(tmp_path):
    path = write(
        tmp_path,
        """\
        upstream: http://127.0.0.1:8000
        secrets:
          sendcloud: {env: K}
          sendcloud-old: {env: O}
        routes:
          - name: sendcloud
            path: /webhooks/sendcloud
            secrets: [sendcloud, sendclod]
        """,
    )
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert (
        str(raised.value)
        == f"{path}: routes[0].secrets[1]: unknown secret 'sendclod' (defined: sendcloud, sendcloud-old)"
    )
    assert raised.value.source == path
    assert raised.value.problems == [
        "routes[0].secrets[1]: unknown secret 'sendclod' (defined: sendcloud, sendcloud-old)"
    ]


def test_invalid_yaml_names_the_line_and_column(tmp_path):
    path = write(tmp_path, "upstream: http://127.0.0.1:8000\nroutes: [\n  - name: x\n")
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    [problem] = raised.value.problems
    assert problem.startswith("line ") and ", column " in problem and ": invalid YAML: " in problem
    assert str(raised.value).startswith(f"{path}: line ")


def test_a_missing_file_is_a_config_error(tmp_path):
    path = str(tmp_path / "absent.yaml")
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert str(raised.value) == f"{path}: (file): cannot read it: No such file or directory"


def test_an_empty_file_is_not_a_mapping(tmp_path):
    with pytest.raises(ConfigError) as raised:
        load_config(write(tmp_path, ""))
    assert raised.value.problems == ["(top level): expected a mapping of settings"]


def test_an_unquoted_yaml_date_is_shown_as_written(tmp_path):
    path = write(
        tmp_path,
        """\
        upstream: http://127.0.0.1:8000
        secrets:
          sendcloud: {env: K, expires: 2027-01-31}
        routes: [{name: s, path: /a, secrets: [sendcloud]}]
        """,
    )
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert raised.value.problems == [
        "secrets.sendcloud.expires: expected an RFC 3339 instant such as 2027-01-31T00:00:00Z, got 2027-01-31"
    ]


def test_the_example_config_of_the_repository_is_valid():
    repository = Path(__file__).resolve().parent.parent
    config = load_config(str(repository / "config" / "example.yaml"))
    assert config.routes[0].paths == (paths.normalise_path("/webhooks/sendcloud"), "/index.php/webhooks/sendcloud")


def test_a_key_given_twice_is_an_error_not_a_silent_override(tmp_path):
    # PyYAML would keep the second `routes:` and drop the first route: its path unprotected.
    path = write(
        tmp_path,
        """\
        upstream: http://127.0.0.1:8000
        secrets:
          sendcloud: {env: K}
        routes:
          - {name: sendcloud, path: /webhooks/sendcloud, secrets: [sendcloud]}
        routes:
          - {name: other, path: /webhooks/other, secrets: [sendcloud]}
        """,
    )
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert raised.value.problems == ["line 6, column 1: invalid YAML: duplicate key 'routes' (first on line 4)"]


def test_a_nested_key_given_twice_is_an_error(tmp_path):
    path = write(
        tmp_path,
        """\
        upstream: http://127.0.0.1:8000
        secrets:
          sendcloud: {env: K, env: L}
        routes: [{name: s, path: /a, secrets: [sendcloud]}]
        """,
    )
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert raised.value.problems == ["line 3, column 23: invalid YAML: duplicate key 'env' (first on line 3)"]


def test_yaml_merge_keys_still_work_and_may_be_overridden(tmp_path):
    path = write(
        tmp_path,
        """\
        upstream: http://127.0.0.1:8000
        secrets:
          sendcloud: &source {env: K}
          sendcloud-old: {<<: *source, env: OLD}
        routes: [{name: s, path: /a, secrets: [sendcloud, sendcloud-old]}]
        """,
    )
    assert load_config(path).secrets["sendcloud-old"].location == "OLD"
