"""Prometheus metrics (SPEC §5), in a registry of their own so that tests and reloads stay independent.

Label children are cached: `Counter.labels()` takes a lock and builds a key on
every call, which is measurable on the per-request path.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from .outcomes import Outcome

# Verification is microseconds; the upstream is milliseconds to a minute.
_VERIFY_BUCKETS = (0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.01, 0.1)
_UPSTREAM_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
UNMATCHED_ROUTE = "unmatched"
UNKNOWN_ROUTE = "unknown"  # refused before the request line was known (head too large or too slow)
CONTENT_TYPE = CONTENT_TYPE_LATEST
disable_created_metrics()  # `*_created` series double the exposition and no dashboard uses them


class Metrics:
    def __init__(self, version: str, mitmproxy_version: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.requests = Counter(
            "sigwarden_requests", "Requests by route and outcome.", ["route", "outcome"], registry=registry
        )
        self.verify_duration = Histogram(
            "sigwarden_verify_duration_seconds",
            "Time spent verifying a protected request's signature.",
            buckets=_VERIFY_BUCKETS,
            registry=registry,
        )
        self.upstream_duration = Histogram(
            "sigwarden_upstream_duration_seconds",
            "Time from forwarding a protected request to the end of the upstream's answer.",
            ["route"],
            buckets=_UPSTREAM_BUCKETS,
            registry=registry,
        )
        self.upstream_responses = Counter(
            "sigwarden_upstream_responses",
            "Upstream answers to forwarded requests by route and status class.",
            ["route", "status_class"],
            registry=registry,
        )
        self.in_flight = Gauge("sigwarden_requests_in_flight", "Requests being handled now.", registry=registry)
        self.route_ready = Gauge(
            "sigwarden_route_ready", "1 when the route has a usable secret, else 0 (it fails closed).", ["route"],
            registry=registry,
        )  # fmt: skip
        self.config_reloads = Counter(
            "sigwarden_config_reloads", "Configuration reloads by result.", ["result"], registry=registry
        )
        self.secret_expiry = Gauge(
            "sigwarden_secret_expiry_timestamp_seconds",
            "When a secret with `expires` stops being accepted (Unix time).",
            ["secret"],
            registry=registry,
        )
        self.dedupe_store_errors = Counter(
            "sigwarden_dedupe_store_errors", "Dedupe store calls that failed or timed out.", registry=registry
        )
        build_info = Gauge(
            "sigwarden_build_info", "Versions of sigwarden and mitmproxy.", ["version", "mitmproxy"], registry=registry
        )
        build_info.labels(version=version, mitmproxy=mitmproxy_version).set(1)
        for result in ("success", "failure"):
            self.config_reloads.labels(result=result)
        self._request_children: dict[tuple[str, str], Counter] = {}
        self._upstream_children: dict[tuple[str, str], Counter] = {}
        self._upstream_duration_children: dict[str, Histogram] = {}

    # -- per request ----------------------------------------------------------

    def count_request(self, route: str, outcome: Outcome) -> None:
        key = (route, outcome.code)
        child = self._request_children.get(key)
        if child is None:
            child = self._request_children[key] = self.requests.labels(route=route, outcome=outcome.code)
        child.inc()

    def observe_upstream(self, route: str, status: int | None, seconds: float | None) -> None:
        if status is not None:
            key = (route, f"{status // 100}xx")
            child = self._upstream_children.get(key)
            if child is None:
                child = self._upstream_children[key] = self.upstream_responses.labels(route=route, status_class=key[1])
            child.inc()
        if seconds is not None:
            histogram = self._upstream_duration_children.get(route)
            if histogram is None:
                histogram = self._upstream_duration_children[route] = self.upstream_duration.labels(route=route)
            histogram.observe(seconds)

    # -- per configuration ------------------------------------------------------

    def show_routes(self, ready: dict[str, bool]) -> None:
        """Set `route_ready` for the configured routes; routes no longer configured disappear."""
        for labels in list(self._label_sets(self.route_ready)):
            if labels[0] not in ready:
                self.route_ready.remove(*labels)
        for route, is_ready in ready.items():
            self.route_ready.labels(route=route).set(1 if is_ready else 0)
            self._request_children.setdefault(
                (route, Outcome.VERIFIED.code), self.requests.labels(route=route, outcome=Outcome.VERIFIED.code)
            )

    def show_secret_expiries(self, expiries: dict[str, datetime.datetime]) -> None:
        for labels in list(self._label_sets(self.secret_expiry)):
            if labels[0] not in expiries:
                self.secret_expiry.remove(*labels)
        for name, instant in expiries.items():
            self.secret_expiry.labels(secret=name).set(instant.timestamp())

    @staticmethod
    def _label_sets(metric: Gauge) -> Iterable[tuple[str, ...]]:
        return [tuple(labels) for labels in metric._metrics]  # prometheus-client keeps children by label values

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
