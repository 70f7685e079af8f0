"""The decision for one request (SPEC §4), as pure functions of plain values."""

from __future__ import annotations

import dataclasses
import datetime
import re
from collections.abc import Iterable, Sequence

from . import paths
from .config import Config, Route, VerdictHeaders, canonical_header_name
from .outcomes import Outcome
from .schemes import SCHEMES, SignedRequest, Verdict
from .secrets import SecretStore


def verdict_header_names(headers: VerdictHeaders) -> frozenset[str]:
    return frozenset(canonical_header_name(name) for name in headers.names())


def forged_headers(names: Iterable[str], verdict_names: frozenset[str]) -> list[str]:
    """The request's header names that would pass for a verdict of ours (to be removed)."""
    return [name for name in names if canonical_header_name(name) in verdict_names]


def match_route(routes: Sequence[Route], target: str) -> Route | None:
    """The first route protecting this request target (path and query), or None.

    A route protects the request when any normal form of its path matches (paths.normal_forms).
    A target with more readings than can be checked is protected by the first route: fail closed.
    """
    path, _, query = target.partition("?")
    budget = paths.WorkBudget()
    try:
        forms = paths.normal_forms(path, budget)
        pairs = None
        for route in routes:
            if not any(route.matches_path(form) for form in forms):
                continue
            if route.query:
                if pairs is None:
                    pairs = paths.split_query(query, budget)
                if not paths.query_matches(pairs, route.query):
                    continue
            return route
    except paths.AmbiguousPath:
        return routes[0] if routes else None
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
    if route is None:
        for override in path_override_targets(headers):
            if (route := match_route(routes, override)) is not None:
                break
    return route


def verify(route: Route, secrets: SecretStore, request: SignedRequest, now: datetime.datetime) -> Verdict:
    """The verdict of the route's scheme over the route's usable secrets; fails closed without one.

    Whatever the outcome, it names the headers the scheme keeps from the upstream (a credential).
    """
    scheme = SCHEMES[route.scheme]
    usable = secrets.usable(route.secrets, now)
    if usable:
        verdict = scheme.verify(request, usable, route.scheme_options, now)
    else:
        verdict = Verdict(Outcome.SECRET_UNAVAILABLE)
    removed = frozenset(canonical_header_name(name) for name in scheme.removed_headers(route.scheme_options))
    return dataclasses.replace(verdict, remove_headers=removed) if removed else verdict


def forwards(config: Config, route: Route, outcome: Outcome) -> bool:
    """Whether a protected request with this outcome goes upstream (report mode forwards verdicts)."""
    if outcome is Outcome.VERIFIED:
        return True
    return config.route_mode(route) == "report" and outcome.is_signature_failure
