"""The `sigwarden` command: run, check, sign, send, --version (SPEC §2)."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import http.client
import os
import sys
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import yaml

from . import __version__
from .config import DEFAULT_CONFIG_PATH, ConfigError, parse_address, parse_upstream
from .dedupe import redact_url
from .reload import ConfigSource
from .schemes import SCHEMES
from .secrets import SecretStore
from .sendcloud_events import EVENTS, event_body
from .units import format_size

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2


def _config_path(given: str | None) -> str:
    return given or os.environ.get("SIGWARDEN_CONFIG") or DEFAULT_CONFIG_PATH


def _mitmproxy_version() -> str:
    from mitmproxy import version

    return version.VERSION


def _source(args: argparse.Namespace) -> ConfigSource:
    """The config file and the command-line overrides of it (kept by every reload)."""
    overrides: dict[str, object] = {}
    problems = []
    for flag, parse in (("listen", parse_address), ("upstream", parse_upstream), ("admin_listen", parse_address)):
        value = getattr(args, flag, None)
        if value is None:
            continue
        try:
            overrides[flag] = parse(value)
        except ValueError as error:
            problems.append(f"--{flag.replace('_', '-')}: {error}")
    if problems:
        raise ConfigError("command line", problems)
    return ConfigSource(_config_path(args.config), overrides)


def command_run(args: argparse.Namespace) -> int:
    try:
        source = _source(args)
        config, baseline = source.load_with_baseline()
    except ConfigError as error:
        print(f"sigwarden: invalid configuration\n{error}", file=sys.stderr)
        return EXIT_INVALID
    from .proxy import serve

    return asyncio.run(serve(config, source, baseline))


def command_check(args: argparse.Namespace) -> int:
    try:
        config = _source(args).load()
    except ConfigError as error:
        print(f"sigwarden: invalid configuration\n{error}", file=sys.stderr)
        return EXIT_INVALID
    store = SecretStore(config.secrets)
    now = datetime.datetime.now(datetime.UTC)
    problems = store.problems(now)
    print(f"config: {config.source}")
    listen = f"{config.listen[0]}:{config.listen[1]}"
    print(f"listen: {listen} → upstream {config.upstream} (mode {config.mode}, unmatched {config.unmatched})")
    admin = f"{config.admin_listen[0]}:{config.admin_listen[1]}" if config.admin_listen else "off"
    print(f"admin: {admin}")
    print("secrets:")
    for name, spec in config.secrets.items():
        expiry = f", expires {spec.expires.isoformat()}" if spec.expires else ""
        state = problems.get(name, "ok")
        print(f"  {name}: {spec.describe()}{expiry}: {state}")
    print("routes:")
    for route in config.routes:
        where = list(route.paths) or ([f"{route.path_prefix}/…"] if route.path_prefix else ["any path"])
        query = " ".join(f"{name}={value}" for name, value in route.query)
        replay = "".join(
            f" {name}={_duration(value)}"
            for name, value in (("dedupe_window", route.dedupe_window), ("max_age", route.max_age))
            if value is not None
        )
        print(
            f"  {route.name}: {', '.join(where)}{' ?' + query if query else ''} scheme={route.scheme} "
            f"secrets=[{', '.join(route.secrets)}] max_body={format_size(route.max_body)} "
            f"mode={config.route_mode(route)}{replay}"
        )
    if any(route.dedupe_window is not None for route in config.routes):
        bound = f", at most {config.dedupe_max_entries} entries" if config.dedupe_store == "memory" else ""
        print(f"dedupe store: {redact_url(config.dedupe_store)}{bound}")
    for warning in config.warnings() + store.warnings():
        print(f"warning: {warning}", file=sys.stderr)
    for name, problem in problems.items():
        print(f"error: secrets.{name}: {problem}", file=sys.stderr)
    return EXIT_INVALID if problems else EXIT_OK


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _secret(args: argparse.Namespace) -> bytes:
    if args.secret_env:
        value = os.environ.get(args.secret_env)
        if value is None:
            raise SystemExit(f"sigwarden: environment variable {args.secret_env} is not set")
        secret = value.strip().encode()
    else:
        try:
            with open(args.secret_file, "rb") as file:
                secret = file.read().strip()
        except OSError as error:
            raise SystemExit(f"sigwarden: cannot read {args.secret_file}: {error.strerror}") from None
    if not secret:
        raise SystemExit("sigwarden: the secret is empty")
    return secret


def _read_body(path: str | None) -> bytes:
    if path is None or path == "-":
        return sys.stdin.buffer.read()
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as error:
        raise SystemExit(f"sigwarden: cannot read {path}: {error.strerror}") from None


def _option_value(text: str) -> Any:
    """A `--option` value as YAML would read it when that is a boolean or a number, else the text itself."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value if isinstance(value, bool | int | float) else text


def _scheme_options(args: argparse.Namespace) -> Mapping[str, Any]:
    """The scheme's options from `--option KEY=VALUE`, validated as a route's would be."""
    scheme = SCHEMES[args.scheme]
    given: dict[str, Any] = {}
    for item in args.option or []:
        key, equals, text = item.partition("=")
        if not equals or key not in scheme.option_keys:
            known = ", ".join(scheme.option_keys) or "none"
            raise SystemExit(
                f"sigwarden: --option {item!r}: expected KEY=VALUE with a key of scheme {scheme.name} ({known})"
            )
        given[key] = _option_value(text)
    try:
        return scheme.parse_options(given)
    except ValueError as error:
        raise SystemExit(f"sigwarden: --option: {error}") from None


def _signature_headers(args: argparse.Namespace, body: bytes) -> dict[str, str]:
    options = _scheme_options(args)
    secret = _secret(args)
    try:
        return SCHEMES[args.scheme].sign(body, secret, options)
    except ValueError as error:
        raise SystemExit(f"sigwarden: {error}") from None


def command_sign(args: argparse.Namespace) -> int:
    body = _read_body(args.body_file)
    headers = _signature_headers(args, body)
    if len(headers) == 1:
        print(next(iter(headers.values())))
    else:
        for name, value in headers.items():
            print(f"{name}: {value}")
    return EXIT_OK


def command_send(args: argparse.Namespace) -> int:
    body = _read_body(args.body) if args.body else event_body(args.event)
    headers = {"Content-Type": "application/json", "User-Agent": f"sigwarden-send/{__version__}"}
    headers.update(_signature_headers(args, body))
    parts = urlsplit(args.url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SystemExit(f"sigwarden: expected an http:// or https:// URL, got {args.url!r}")
    connection_type = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = connection_type(parts.hostname, parts.port, timeout=args.timeout)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        connection.request("POST", target, body=body, headers=headers)
        response = connection.getresponse()
        answer = response.read()
    except OSError as error:
        print(f"sigwarden: cannot send to {args.url}: {error}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        connection.close()
    print(f"{response.status} {response.reason}")
    print(answer.decode("utf-8", "replace"))
    return EXIT_OK if 200 <= response.status < 300 else EXIT_FAILED


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sigwarden", description="A sidecar reverse proxy that verifies webhook signatures."
    )
    parser.add_argument(
        "--version", action="version", version=f"sigwarden {__version__} (mitmproxy {_mitmproxy_version()})"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    config_help = f"the YAML config (default: $SIGWARDEN_CONFIG, else {DEFAULT_CONFIG_PATH})"

    run = commands.add_parser("run", help="run the proxy")
    run.add_argument("-c", "--config", help=config_help)
    run.add_argument("--listen", help="proxy listener, host:port (overrides the config)")
    run.add_argument("--upstream", help="the application's URL (overrides the config)")
    run.add_argument("--admin-listen", dest="admin_listen", help="admin listener, host:port (overrides the config)")
    run.set_defaults(handler=command_run)

    check = commands.add_parser("check", help="validate the config and resolve every secret")
    check.add_argument("-c", "--config", help=config_help)
    check.set_defaults(handler=command_check)

    for name, handler, helptext in (
        ("sign", command_sign, "print the signature of a body (file or stdin); header lines when several"),
        ("send", command_send, "send a realistic signed Sendcloud webhook (or --body) with any scheme"),
    ):
        sub = commands.add_parser(name, help=helptext)
        secret = sub.add_mutually_exclusive_group(required=True)
        secret.add_argument("--secret-env", metavar="VAR", help="read the secret from this environment variable")
        secret.add_argument("--secret-file", metavar="FILE", help="read the secret from this file")
        sub.add_argument("--scheme", default="sendcloud", choices=sorted(SCHEMES), help="signature scheme")
        sub.add_argument(
            "--option",
            action="append",
            metavar="KEY=VALUE",
            help="a route option of the scheme, as in the config (repeatable), e.g. auth=basic or header=X-Signature",
        )
        sub.set_defaults(handler=handler)
        if name == "sign":
            sub.add_argument("body_file", nargs="?", metavar="BODY_FILE", help="the body (default: stdin)")
        else:
            sub.add_argument("url", metavar="URL")
            sub.add_argument("--event", default="parcel_status_changed", choices=EVENTS)
            sub.add_argument("--body", metavar="FILE", help="send this body instead of a generated event")
            sub.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the answer")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
