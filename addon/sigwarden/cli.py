"""The `sigwarden` command: run, check, sign, send, --version (SPEC §2)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime
import http.client
import os
import sys
from urllib.parse import urlsplit

from . import __version__
from .config import DEFAULT_CONFIG_PATH, Config, ConfigError, load_config, parse_address, parse_upstream
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


def _load(args: argparse.Namespace) -> Config:
    config = load_config(_config_path(args.config))
    overrides: dict[str, object] = {}
    problems = []
    for flag, key, parse in (
        ("listen", "listen", parse_address),
        ("upstream", "upstream", parse_upstream),
        ("admin_listen", "admin_listen", parse_address),
    ):
        value = getattr(args, flag, None)
        if value is None:
            continue
        try:
            overrides[key] = parse(value)
        except ValueError as error:
            problems.append(f"--{flag.replace('_', '-')}: {error}")
    if problems:
        raise ConfigError("command line", problems)
    return dataclasses.replace(config, **overrides)  # type: ignore[arg-type]


def command_run(args: argparse.Namespace) -> int:
    try:
        config = _load(args)
    except ConfigError as error:
        print(f"sigwarden: invalid configuration\n{error}", file=sys.stderr)
        return EXIT_INVALID
    from .proxy import serve

    return asyncio.run(serve(config))


def command_check(args: argparse.Namespace) -> int:
    try:
        config = _load(args)
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
        print(
            f"  {route.name}: {', '.join(where)}{' ?' + query if query else ''} scheme={route.scheme} "
            f"secrets=[{', '.join(route.secrets)}] max_body={format_size(route.max_body)} "
            f"mode={config.route_mode(route)}"
        )
    for warning in config.warnings() + store.warnings():
        print(f"warning: {warning}", file=sys.stderr)
    for name, problem in problems.items():
        print(f"error: secrets.{name}: {problem}", file=sys.stderr)
    return EXIT_INVALID if problems else EXIT_OK


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


def command_sign(args: argparse.Namespace) -> int:
    secret = _secret(args)
    body = _read_body(args.body_file)
    headers = SCHEMES[args.scheme].sign(body, secret, {})
    if len(headers) == 1:
        print(next(iter(headers.values())))
    else:
        for name, value in headers.items():
            print(f"{name}: {value}")
    return EXIT_OK


def command_send(args: argparse.Namespace) -> int:
    secret = _secret(args)
    body = _read_body(args.body) if args.body else event_body(args.event)
    headers = {"Content-Type": "application/json", "User-Agent": f"sigwarden-send/{__version__}"}
    headers.update(SCHEMES[args.scheme].sign(body, secret, {}))
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
        ("sign", command_sign, "print the signature of a body (file or stdin)"),
        ("send", command_send, "send a realistic signed Sendcloud webhook"),
    ):
        sub = commands.add_parser(name, help=helptext)
        secret = sub.add_mutually_exclusive_group(required=True)
        secret.add_argument("--secret-env", metavar="VAR", help="read the secret from this environment variable")
        secret.add_argument("--secret-file", metavar="FILE", help="read the secret from this file")
        sub.add_argument("--scheme", default="sendcloud", choices=sorted(SCHEMES), help="signature scheme")
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
