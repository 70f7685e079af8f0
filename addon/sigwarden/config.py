"""The YAML configuration: one parse, whole validation, precise errors (SPEC §3).

Every mistake is reported as `FILE: KEY.PATH: reason` so that an operator can
find it without reading code. Parsing happens once; hooks use the result.
"""

from __future__ import annotations

import datetime
import functools
import ipaddress
import re
from collections.abc import Callable, Collection, Mapping, Set
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import yaml

from . import paths, units

DEFAULT_CONFIG_PATH = "/etc/sigwarden/config.yaml"
MODES = ("enforce", "report")
SECRET_SOURCES = ("file", "env", "value")
SHORT_SECRET_LENGTH = 16


class ConfigError(Exception):
    """A configuration that cannot be used; `problems` holds every `KEY: reason` found."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {problem}" for problem in problems))


@dataclass(frozen=True)
class SecretSpec:
    name: str
    source: str  # file | env | value
    location: str  # the path, the variable name, or the inline value
    expires: datetime.datetime | None = None

    def describe(self) -> str:
        """A redacted description: never the value itself."""
        where = {"file": f"file {self.location}", "env": f"env ${self.location}", "value": "inline value"}
        return where[self.source]


@dataclass(frozen=True)
class Route:
    name: str
    paths: tuple[str, ...] = ()  # normal forms
    path_prefix: str | None = None  # normal form
    query: tuple[tuple[str, str], ...] = ()  # normal forms
    scheme: str = "sendcloud"
    scheme_options: Mapping[str, Any] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()
    max_body: int = 1024 * 1024
    mode: str | None = None
    dedupe_window: float | None = None
    max_age: float | None = None

    def matches(self, normal_path: str, query_values: Mapping[str, Set[str]] | None) -> bool:
        if not self.matches_path(normal_path):
            return False
        if self.query:
            return paths.query_matches(query_values or {}, self.query)
        return True

    def matches_path(self, normal_path: str) -> bool:
        """The path part of `matches` (a route without path or path_prefix matches every path)."""
        if self.paths and normal_path not in self.paths:
            return False
        return self.path_prefix is None or paths.under_prefix(normal_path, self.path_prefix)


@dataclass(frozen=True)
class VerdictHeaders:
    verified: str = "X-Webhook-Verified"
    key_id: str = "X-Webhook-Key-Id"
    error: str = "X-Webhook-Verify-Error"

    def names(self) -> tuple[str, ...]:
        return (self.verified, self.key_id, self.error)


@dataclass(frozen=True)
class UpstreamTLS:
    verify: bool = True
    ca_file: str | None = None


@dataclass(frozen=True)
class Limits:
    max_header_bytes: int = 64 * 1024
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_connections: int = 1024
    upstream_connect_timeout: float = 5.0
    upstream_timeout: float = 60.0
    idle_timeout: float = 75.0


@dataclass(frozen=True)
class Config:
    source: str
    upstream: str
    routes: tuple[Route, ...]
    secrets: Mapping[str, SecretSpec] = field(default_factory=dict)
    listen: tuple[str, int] = ("0.0.0.0", 8080)
    upstream_tls: UpstreamTLS = UpstreamTLS()
    admin_listen: tuple[str, int] | None = ("0.0.0.0", 9090)
    mode: str = "enforce"
    unmatched: str = "pass"
    headers: VerdictHeaders = VerdictHeaders()
    dedupe_store: str = "memory"
    dedupe_max_entries: int = 100_000
    limits: Limits = Limits()
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    drain_delay: float = 0.0
    shutdown_grace: float = 10.0
    log_format: str = "json"
    log_level: str = "info"

    def route_mode(self, route: Route) -> str:
        return route.mode or self.mode

    def warnings(self) -> list[str]:
        """Accepted but unwise: inline secret values (shown by `check` and at start)."""
        return [
            f"secrets.{spec.name}.value: an inline secret ends up in the config file; prefer file or env"
            for spec in self.secrets.values()
            if spec.source == "value"
        ]


# --- parsing -----------------------------------------------------------------

_TOP_LEVEL_KEYS = {
    "listen", "upstream", "upstream_tls", "admin_listen", "mode", "unmatched", "headers",
    "secrets", "routes", "dedupe_store", "dedupe_max_entries", "limits", "trusted_proxies",
    "drain_delay", "shutdown_grace", "log_format", "log_level",
}  # fmt: skip
_ROUTE_KEYS = {
    "name", "path", "path_prefix", "query", "scheme", "secrets", "max_body", "mode",
    "dedupe_window", "max_age",
}  # fmt: skip
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_LOG_LEVELS = ("debug", "info", "warning", "error")


class _Problems:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, key: str, reason: str) -> None:
        self.items.append(f"{key}: {reason}")

    def convert(self, key: str, value: Any, converter: Callable[[Any], Any], default: Any = None) -> Any:
        try:
            return converter(value)
        except (ValueError, TypeError) as error:
            self.add(key, str(error))
            return default


def parse_address(value: Any) -> tuple[str, int]:
    """`host:port`, `[::1]:port` or `:port` (all interfaces)."""
    if not isinstance(value, str):
        raise ValueError(f"expected host:port such as 0.0.0.0:8080, got {value!r}")
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected host:port such as 0.0.0.0:8080, got {value!r}")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


def shown_url(value: Any) -> str:
    """A URL quoted in an error message, any userinfo (a password) in it replaced by `***`."""
    if not isinstance(value, str) or "@" not in value:
        return repr(value)
    scheme, separator, rest = value.partition("//")
    if not separator:
        scheme, rest = "", value
    return repr(f"{scheme}{separator}***@{rest.rsplit('@', 1)[1]}")


def parse_upstream(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a URL such as http://127.0.0.1:8000, got {value!r}")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as error:
        # urllib's message quotes the part it could not read: with userinfo about, that may be a password.
        reason = "its host or port cannot be read" if "@" in value else str(error)
        raise ValueError(f"malformed URL {shown_url(value)}: {reason}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an http:// or https:// URL with a host, got {shown_url(value)}")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"the upstream URL takes no path, query or credentials, got {shown_url(value)}")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    default_port = 443 if parts.scheme == "https" else 80
    return f"{parts.scheme}://{host}:{port or default_port}"


def parse_instant(value: Any) -> datetime.datetime:
    if isinstance(value, datetime.datetime):
        instant = value
    elif isinstance(value, str):
        try:
            instant = datetime.datetime.fromisoformat(re.sub(r"[zZ]$", "+00:00", value.strip()))
        except ValueError:
            raise ValueError(f"expected an RFC 3339 instant such as 2027-01-31T00:00:00Z, got {value!r}") from None
    else:
        raise ValueError(f"expected an RFC 3339 instant such as 2027-01-31T00:00:00Z, got {_shown(value)}")
    if instant.tzinfo is None:
        raise ValueError(f"the instant needs a time zone (Z or +01:00), got {_shown(value)}")
    return instant


def _shown(value: Any) -> str:
    """A config value as the operator wrote it (YAML turns unquoted dates into objects)."""
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _choice(options: tuple[str, ...]) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        if value not in options:
            raise ValueError(f"expected one of {', '.join(options)}, got {value!r}")
        return value

    return convert


def _positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"expected a positive whole number, got {value!r}")
    return value


def _positive(parse: Callable[[Any], float]) -> Callable[[Any], float]:
    def parse_positive(value: Any) -> float:
        parsed = parse(value)
        if parsed <= 0:
            raise ValueError(f"a limit must be above zero, got {value!r}")
        return parsed

    return parse_positive


def _ca_file(value: Any) -> str:
    """A readable PEM file with at least one certificate (checked at load: a bad one would fail every connect)."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected the path of a PEM file of CA certificates, got {value!r}")
    try:
        with open(value, "rb") as file:
            text = file.read()
    except OSError as error:
        raise ValueError(f"cannot read {value}: {error.strerror or error}") from None
    if b"-----BEGIN CERTIFICATE-----" not in text:
        raise ValueError(f"{value} holds no PEM certificate")
    return value


def _header_name(value: Any) -> str:
    if not isinstance(value, str) or not _HEADER_NAME.match(value):
        raise ValueError(f"expected an HTTP header name, got {value!r}")
    return value


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def _mapping(problems: _Problems, key: str, value: Any) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.add(key, f"expected a mapping, got {type(value).__name__}")
        return {}
    return value


def _list(problems: _Problems, key: str, value: Any) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        problems.add(key, f"expected a list, got {_shown(value)}")
        return []
    return value


def _unknown_keys(problems: _Problems, prefix: str, given: Mapping, known: set[str]) -> None:
    for key in given:
        if key not in known:
            suggestion = f"; known keys: {', '.join(sorted(known))}"
            problems.add(f"{prefix}{key}", f"unknown key{suggestion}")


def _parse_secrets(problems: _Problems, raw: Any) -> dict[str, SecretSpec]:
    specs: dict[str, SecretSpec] = {}
    for name, body in _mapping(problems, "secrets", raw).items():
        key = f"secrets.{name}"
        if not isinstance(body, dict):
            problems.add(key, "expected a mapping with one of file, env or value")
            continue
        _unknown_keys(problems, f"{key}.", body, {"file", "env", "value", "expires"})
        sources = [source for source in SECRET_SOURCES if source in body]
        if len(sources) != 1:
            found = ", ".join(sources) if sources else "none"
            problems.add(key, f"needs exactly one of file, env or value (found: {found})")
            continue
        source = sources[0]
        location = body[source]
        if not isinstance(location, str) or not location:
            problems.add(f"{key}.{source}", "expected a non-empty string")
            continue
        expires = None
        if body.get("expires") is not None:
            expires = problems.convert(f"{key}.expires", body["expires"], parse_instant)
        specs[str(name)] = SecretSpec(str(name), source, location, expires)
    return specs


def _parse_paths(problems: _Problems, key: str, value: Any) -> tuple[str, ...]:
    values = value if isinstance(value, list) else [value]
    normal = []
    for index, item in enumerate(values):
        item_key = f"{key}[{index}]" if isinstance(value, list) else key
        if not isinstance(item, str) or not item.startswith("/"):
            problems.add(item_key, f"expected a path starting with '/', got {item!r}")
            continue
        if "?" in item:
            problems.add(item_key, f"a path has no query string; match it with query: {{name: value}}, got {item!r}")
            continue
        normal.append(paths.normalise_path(item))
    if not normal and isinstance(value, list):
        problems.add(key, "expected at least one path")
    return tuple(normal)


def _parse_route(problems: _Problems, index: int, raw: Any, secrets: Collection[str] | None) -> Route | None:
    from .schemes import SCHEMES, OptionError  # the registry imports config types

    key = f"routes[{index}]"
    if not isinstance(raw, dict):
        problems.add(key, "expected a mapping with name, path and secrets")
        return None
    scheme_name = raw.get("scheme", "sendcloud")
    scheme = SCHEMES.get(scheme_name) if isinstance(scheme_name, str) else None
    scheme_keys = set(scheme.option_keys) if scheme else set()
    _unknown_keys(problems, f"{key}.", raw, _ROUTE_KEYS | scheme_keys)
    if scheme is None:
        problems.add(f"{key}.scheme", f"unknown scheme {scheme_name!r} (known: {', '.join(sorted(SCHEMES))})")

    name = raw.get("name", f"route{index}")
    if not isinstance(name, str) or not re.match(r"^[A-Za-z0-9_.-]+$", name):
        problems.add(f"{key}.name", f"expected a name of letters, digits, '-', '_' or '.', got {name!r}")
        name = f"route{index}"

    route_paths: tuple[str, ...] = ()
    prefix = None
    if "path" in raw and "path_prefix" in raw:
        problems.add(key, "give either path or path_prefix, not both")
    if "path" in raw:
        route_paths = _parse_paths(problems, f"{key}.path", raw["path"])
    elif "path_prefix" in raw:
        if isinstance(raw["path_prefix"], list):
            problems.add(f"{key}.path_prefix", "expected one path prefix (a route for each prefix), got a list")
        else:
            prefixes = _parse_paths(problems, f"{key}.path_prefix", raw["path_prefix"])
            prefix = prefixes[0] if prefixes else None
    elif not raw.get("query"):
        problems.add(key, "needs path, path_prefix or query")

    query: list[tuple[str, str]] = []
    for param, value in _mapping(problems, f"{key}.query", raw.get("query")).items():
        if not isinstance(value, str | int) or isinstance(value, bool):
            problems.add(f"{key}.query.{param}", f"expected a string, got {value!r}")
            continue
        query.append((paths.normalise_value(str(param)), paths.normalise_value(str(value))))

    route_secrets = raw.get("secrets")
    if isinstance(route_secrets, str):
        route_secrets = [route_secrets]
    if not isinstance(route_secrets, list) or not route_secrets:
        problems.add(f"{key}.secrets", "expected a list of secret names (at least one)")
        route_secrets = []
    for secret_index, secret_name in enumerate(route_secrets):
        if secrets is not None and secret_name not in secrets:
            defined = ", ".join(sorted(secrets)) or "none"
            problems.add(f"{key}.secrets[{secret_index}]", f"unknown secret {secret_name!r} (defined: {defined})")

    max_body = problems.convert(f"{key}.max_body", raw.get("max_body", "1MiB"), units.parse_size, 1024 * 1024)
    mode = None
    if raw.get("mode") is not None:
        mode = problems.convert(f"{key}.mode", raw["mode"], _choice(MODES))
    dedupe_window = max_age = None
    if raw.get("dedupe_window") is not None:
        dedupe_window = problems.convert(f"{key}.dedupe_window", raw["dedupe_window"], units.parse_duration)
    if raw.get("max_age") is not None:
        max_age = problems.convert(f"{key}.max_age", raw["max_age"], units.parse_duration)
    if dedupe_window is not None and max_age is not None and dedupe_window < max_age:
        problems.add(f"{key}.dedupe_window", "must be at least as long as max_age, or a replay fits between them")

    scheme_options: Mapping[str, Any] = {}
    if scheme is not None:
        given = {option: raw[option] for option in scheme.option_keys if option in raw}
        try:
            scheme_options = scheme.parse_options(given)
        except OptionError as error:
            for option, reason in error.problems:
                problems.add(f"{key}.{option}", reason)
        except ValueError as error:
            problems.add(key, str(error))

    return Route(
        name=name,
        paths=route_paths,
        path_prefix=prefix,
        query=tuple(query),
        scheme=scheme_name if scheme else "sendcloud",
        scheme_options=scheme_options,
        secrets=tuple(str(secret) for secret in route_secrets),
        max_body=max_body,
        mode=mode,
        dedupe_window=dedupe_window,
        max_age=max_age,
    )


def _parse_limits(problems: _Problems, raw: Any) -> Limits:
    given = _mapping(problems, "limits", raw)
    defaults = Limits()
    _unknown_keys(problems, "limits.", given, set(Limits.__dataclass_fields__))
    values: dict[str, Any] = {}
    for name in Limits.__dataclass_fields__:
        if name not in given:
            continue
        if name == "max_header_bytes":
            converter: Callable[[Any], Any] = _positive(units.parse_size)
        elif name == "max_connections":
            converter = _positive_int
        else:
            converter = _positive(units.parse_duration)
        values[name] = problems.convert(f"limits.{name}", given[name], converter, getattr(defaults, name))
    return Limits(**values)


def _redis_installed() -> bool:
    try:
        import redis.asyncio  # noqa: F401 - only whether it imports
    except ImportError:
        return False
    return True


# Headers that sigwarden must never strip from a request, as the verdict names are stripped.
_RESERVED_HEADERS = {
    "host", "content-length", "transfer-encoding", "connection", "te", "trailer", "upgrade", "expect",
    "content-type", "content-encoding", "sendcloud-signature", "x-request-id", "authorization",
}  # fmt: skip


def _check_verdict_headers(problems: _Problems, headers: VerdictHeaders) -> None:
    """The verdict names are stripped from every request: distinct, and none a header requests need."""
    seen: dict[str, str] = {}
    for key in ("verified", "key_id", "error"):
        canonical = canonical_header_name(getattr(headers, key))
        if canonical in _RESERVED_HEADERS:
            problems.add(f"headers.{key}", f"{getattr(headers, key)!r} is needed by requests; choose another name")
        elif canonical in seen:
            problems.add(f"headers.{key}", f"the same header as headers.{seen[canonical]}; choose another name")
        seen.setdefault(canonical, key)


def _parse_dedupe_store(value: Any) -> str:
    if value == "memory":
        return value
    if isinstance(value, str) and value.startswith(("redis://", "rediss://", "unix://")):
        parts = urlsplit(value)
        if parts.scheme != "unix" and not parts.hostname:
            raise ValueError(f"expected redis://host:6379/0, got {shown_url(value)}")
        if not _redis_installed():
            raise ValueError("a redis:// store needs the redis package: pip install 'sigwarden[redis]'")
        return value
    raise ValueError(f"expected memory or redis://host:6379/0, got {shown_url(value)}")


def _parse_network(value: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(str(value), strict=False)
    except ValueError:
        raise ValueError(f"expected a CIDR such as 10.0.0.0/8, got {value!r}") from None


_NOT_ALPHANUMERIC = re.compile(r"[^a-z0-9]")


@functools.lru_cache(maxsize=4096)  # header names repeat from request to request; bounded for hostile ones
def canonical_header_name(name: str) -> str:
    """How PHP and CGI see a header name: case does not matter, and `_` (or any other
    character than a letter or digit: lighttpd's CGI maps them all to `_`) reads as `-`."""
    return _NOT_ALPHANUMERIC.sub("-", name.lower())


@functools.lru_cache(maxsize=4096)
def canonical_field_name(name: bytes) -> str:
    """canonical_header_name of a raw header name as it came off the wire."""
    return canonical_header_name(name.decode("utf-8", "surrogateescape"))


def _check_header_clashes(problems: _Problems, raw_routes: Any, headers: VerdictHeaders) -> None:
    """A scheme reading one of the verdict headers could never verify: they are stripped on arrival."""
    verdict = {canonical_header_name(name) for name in headers.names()}
    for index, raw in enumerate(raw_routes if isinstance(raw_routes, list) else []):
        for option in ("header", "timestamp_header"):
            value = raw.get(option) if isinstance(raw, dict) else None
            if isinstance(value, str) and canonical_header_name(value) in verdict:
                problems.add(
                    f"routes[{index}].{option}",
                    f"{value!r} is one of sigwarden's verdict headers (see headers:), removed from every request",
                )


def parse_config(data: Any, source: str = "<config>") -> Config:
    """A validated Config from already-loaded YAML data; ConfigError lists every problem."""
    problems = _Problems()
    if not isinstance(data, dict):
        raise ConfigError(source, ["(top level): expected a mapping of settings"])
    _unknown_keys(problems, "", data, _TOP_LEVEL_KEYS)

    if "upstream" not in data:
        problems.add("upstream", "required: the application's URL, such as http://127.0.0.1:8000")
    upstream = problems.convert("upstream", data.get("upstream"), parse_upstream, "") if "upstream" in data else ""
    secrets = _parse_secrets(problems, data.get("secrets"))
    # Routes may name a secret whose own definition is wrong: that is reported once, at the secret.
    raw_secrets = data.get("secrets")
    declared = {str(name) for name in raw_secrets or {}} if isinstance(raw_secrets, dict | None) else None
    raw_routes = data.get("routes")
    routes: list[Route] = []
    if raw_routes is not None and not isinstance(raw_routes, list):
        problems.add("routes", f"expected a list of routes, got {_shown(raw_routes)}")
    elif not raw_routes:
        problems.add("routes", "required: a list with at least one route")
    else:
        for index, raw_route in enumerate(raw_routes):
            route = _parse_route(problems, index, raw_route, declared)
            if route is not None:
                routes.append(route)
        names = [route.name for route in routes]
        for index, name in enumerate(names):
            if name in names[:index]:
                problems.add(f"routes[{index}].name", f"duplicate route name {name!r}")

    headers_raw = _mapping(problems, "headers", data.get("headers"))
    _unknown_keys(problems, "headers.", headers_raw, {"verified", "key_id", "error"})
    header_values = {
        name: problems.convert(f"headers.{name}", headers_raw[name], _header_name, getattr(VerdictHeaders(), name))
        for name in ("verified", "key_id", "error")
        if name in headers_raw
    }
    _check_verdict_headers(problems, VerdictHeaders(**header_values))
    tls_raw = _mapping(problems, "upstream_tls", data.get("upstream_tls"))
    _unknown_keys(problems, "upstream_tls.", tls_raw, {"verify", "ca_file"})
    tls = UpstreamTLS(
        verify=problems.convert("upstream_tls.verify", tls_raw.get("verify", True), _boolean, True),
        ca_file=problems.convert("upstream_tls.ca_file", tls_raw["ca_file"], _ca_file)
        if tls_raw.get("ca_file") is not None
        else None,
    )
    admin_listen = None
    if data.get("admin_listen", "0.0.0.0:9090") is not None:
        admin_listen = problems.convert("admin_listen", data.get("admin_listen", "0.0.0.0:9090"), parse_address)

    def setting(key: str, converter: Callable[[Any], Any], default: Any) -> Any:
        if data.get(key) is None:
            return default
        return problems.convert(key, data[key], converter, default)

    config = Config(
        source=source,
        upstream=upstream,
        routes=tuple(routes),
        secrets=secrets,
        listen=setting("listen", parse_address, ("0.0.0.0", 8080)),
        upstream_tls=tls,
        admin_listen=admin_listen,
        mode=setting("mode", _choice(MODES), "enforce"),
        unmatched=setting("unmatched", _choice(("pass", "reject")), "pass"),
        headers=VerdictHeaders(**header_values),
        dedupe_store=setting("dedupe_store", _parse_dedupe_store, "memory"),
        dedupe_max_entries=setting("dedupe_max_entries", _positive_int, 100_000),
        limits=_parse_limits(problems, data.get("limits")),
        trusted_proxies=tuple(
            problems.convert(f"trusted_proxies[{index}]", cidr, _parse_network, None)
            or ipaddress.ip_network("0.0.0.0/32")
            for index, cidr in enumerate(_list(problems, "trusted_proxies", data.get("trusted_proxies")))
        ),
        drain_delay=setting("drain_delay", units.parse_duration, 0.0),
        shutdown_grace=setting("shutdown_grace", units.parse_duration, 10.0),
        log_format=setting("log_format", _choice(("json", "text")), "json"),
        log_level=setting("log_level", _choice(_LOG_LEVELS), "info"),
    )
    _check_header_clashes(problems, raw_routes, config.headers)
    if problems.items:
        raise ConfigError(source, problems.items)
    return config


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys without a word: a second `routes:` would drop the first's routes."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_lines: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *anchor` keys are merged, and may be overridden, by the constructor below
            key = self.construct_object(key_node, deep=deep)
            try:
                if key in first_lines:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r} (first on line {first_lines[key] + 1})", key_node.start_mark
                    )
                first_lines[key] = key_node.start_mark.line
            except TypeError:  # an unhashable key: the constructor below says what is wrong
                pass
        return super().construct_mapping(node, deep)


def read_config_text(path: str) -> str:
    """The config file's text; ConfigError when it cannot be read."""
    try:
        with open(path, encoding="utf-8") as file:
            return file.read()
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise ConfigError(path, [f"(file): cannot read it: {reason}"]) from None


def parse_config_text(text: str, source: str) -> Config:
    """Validate YAML text; ConfigError names the file, the key and the reason."""
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        reason = getattr(error, "problem", None) or str(error)
        raise ConfigError(source, [f"{where}: invalid YAML: {reason}"]) from None
    return parse_config(data, source=source)


def load_config(path: str) -> Config:
    """Read and validate the YAML file at `path`; ConfigError names the file, the key and the reason."""
    return parse_config_text(read_config_text(path), path)
