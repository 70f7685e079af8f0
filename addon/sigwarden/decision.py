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
    """How PHP and CGI see a header name: case does not matter, and `_` (or any other
    character than a letter or digit: lighttpd's CGI maps them all to `_`) reads as `-`."""
    return _NOT_ALPHANUMERIC.sub("-", name.lower())


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
