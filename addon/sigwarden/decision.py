"""The decision for one request (SPEC §4), as pure functions of plain values."""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable, Sequence

from . import paths
from .config import Config, Route, VerdictHeaders
from .outcomes import Outcome
from .schemes import SCHEMES, SignedRequest, Verdict
from .secrets import SecretStore

_NOT_ALPHANUMERIC = re.compile(r"[^a-z0-9]")


def canonical_header_name(name: str) -> str:
    """How PHP and CGI see a header name: case does not matter, and `-`, `_`, `.` (any punctuation) are one.

    PHP's `$_SERVER` turns `-` into `_` and, when it registers the variable, `.` and ` ` too;
    so `X-Webhook.Verified` is `HTTP_X_WEBHOOK_VERIFIED` there. Read every non-alphanumeric as `-`.
    """
    return _NOT_ALPHANUMERIC.sub("-", name.lower())


def verdict_header_names(headers: VerdictHeaders) -> frozenset[str]:
    return frozenset(canonical_header_name(name) for name in headers.names())


def forged_headers(names: Iterable[str], verdict_names: frozenset[str]) -> list[str]:
    """The request's header names that would pass for a verdict of ours (to be removed)."""
    return [name for name in names if canonical_header_name(name) in verdict_names]


def match_route(routes: Sequence[Route], target: str) -> Route | None:
    """The first route protecting this request target (path and query), or None."""
    path, _, query = target.partition("?")
    forms = paths.normal_forms(path)
    pairs = None
    for route in routes:
        if route.query and pairs is None:
            pairs = paths.split_query(query, {name for each in routes for name, _ in each.query})
        if any(route.matches(normal, pairs) for normal in forms):
            return route
    return None


# Headers through which PHP frameworks of legacy shops (Zend Framework 1 / Magento 1, older Symfony)
# take the request path from the client instead of the request line.
PATH_OVERRIDE_HEADERS = frozenset({"x-original-url", "x-rewrite-url", "x-original-uri", "x-forwarded-uri"})
_SCHEME_AND_AUTHORITY = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*")


def path_override_targets(headers: Iterable[tuple[str, str]]) -> list[str]:
    """The request targets that path-override headers name (in any spelling), origin form."""
    return [
        _SCHEME_AND_AUTHORITY.sub("", value.strip()) or "/"
        for name, value in headers
        if canonical_header_name(name) in PATH_OVERRIDE_HEADERS
    ]


def match_request(routes: Sequence[Route], target: str, headers: Iterable[tuple[str, str]] = ()) -> Route | None:
    """The route protecting the request: by its target, else by a path-override header (fail closed)."""
    route = match_route(routes, target)
    for override in path_override_targets(headers) if route is None else ():
        route = route or match_route(routes, override)
    return route


def verify(route: Route, secrets: SecretStore, request: SignedRequest, now: datetime.datetime) -> Verdict:
    """The verdict of the route's scheme over the route's usable secrets; fails closed without one."""
    usable = secrets.usable(route.secrets, now)
    if not usable:
        return Verdict(Outcome.SECRET_UNAVAILABLE)
    return SCHEMES[route.scheme].verify(request, usable, route.scheme_options)


def forwards(config: Config, route: Route, outcome: Outcome) -> bool:
    """Whether a protected request with this outcome goes upstream (report mode forwards verdicts)."""
    if outcome is Outcome.VERIFIED:
        return True
    return config.route_mode(route) == "report" and outcome.is_signature_failure
