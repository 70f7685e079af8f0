"""The decision for one request (SPEC §4), as pure functions of plain values."""

from __future__ import annotations

import dataclasses
import datetime
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
