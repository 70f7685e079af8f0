"""The mitmproxy addon: the only code that touches flows. Each hook asks the core and acts."""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from mitmproxy import ctx, exceptions, http
from mitmproxy import version as mitmproxy_version
from mitmproxy.addonmanager import Loader
from mitmproxy.proxy import layer
from mitmproxy.proxy.commands import StartHook

from . import __version__, decision, dedupe, layers, replay
from .admin import AdminServer
from .config import Config, ConfigError, Limits, Route, canonical_field_name
from .forwarded import client_address
from .logs import configure_logging, log_event, log_line, logger
from .metrics import CONTENT_TYPE, UNKNOWN_ROUTE, UNMATCHED_ROUTE, Metrics
from .outcomes import Outcome
from .reload import Baseline, ConfigSource, Reloader
from .responses import json_response
from .runtime import Runtime
from .schemes import SignedRequest, Verdict

RECORD = "sigwarden"
# Settings that belong to listeners and upstream connections made at start: a reload keeps the old ones.
RESTART_ONLY = ("listen", "admin_listen", "upstream", "upstream_tls")


@dataclass
class FlowRecord:
    """What sigwarden knows about one request, kept in `flow.metadata`."""

    runtime: Runtime
    route: Route | None
    started: float = field(default_factory=time.perf_counter)
    request_id: str | None = None
    key_id: str | None = None
    verdict: Outcome | None = None
    verify_seconds: float | None = None
    upstream_started: float | None = None
    finished: bool = False
    forwarded_for: list[str] = field(default_factory=list)  # X-Forwarded-For values, for `client` in logs
    client_request_id: bool = False  # the client sent X-Request-Id (an exact spelling of it)
    claim: dedupe.Claim | None = None  # a delivery in flight on a route with dedupe_window


class Sigwarden:
    """Verifies webhook signatures on protected routes; passes everything else untouched."""

    def __init__(
        self, config: Config | None = None, source: ConfigSource | None = None, baseline: Baseline | None = None
    ):
        self.runtime: Runtime | None = None
        self.source = source
        self.baseline = baseline or Baseline(None, None)
        self.metrics = Metrics(__version__, mitmproxy_version.VERSION)
        self.state = "starting"  # starting | ready | draining
        self.in_flight = 0
        self.admin: AdminServer | None = None
        self.reloader: Reloader | None = None
        self.route_state: dict[str, bool] = {}
        self.owns_options = False
        # Set by the lean master: flow hooks run inline in the layers (dispatch.HookDispatcher.run_inline).
        self.run_hook_inline: Callable[[StartHook], tuple[bool, Awaitable[None] | None]] | None = None
        self.dedupe: dedupe.DedupeStore | None = None
        self.closing: set[asyncio.Task] = set()
        if config is not None:
            self.install(config)

    # -- configuration -------------------------------------------------------

    def load(self, loader: Loader) -> None:
        loader.add_option(
            "sigwarden_config",
            str,
            "",
            "Path of sigwarden's YAML configuration (see config/example.yaml).",
        )

    def configure(self, updated: set[str]) -> None:
        if "sigwarden_config" in updated and ctx.options.sigwarden_config:
            self.source = ConfigSource(ctx.options.sigwarden_config)
            try:
                config, self.baseline = self.source.load_with_baseline()
            except ConfigError as error:
                raise exceptions.OptionsError(str(error)) from None
            if self.runtime is None:
                self.install(config)
            else:
                self.config_accepted(config, "option changed")

    def install(self, config: Config) -> Runtime:
        """Serve with this config from now on; requests under way keep the snapshot they started with."""
        configure_logging(config.log_format, config.log_level)
        runtime = Runtime.from_config(config)
        now = datetime.datetime.now(datetime.UTC)
        for name, problem in runtime.secrets.problems(now).items():
            log_event("secret_unavailable", logging.ERROR, secret=name, reason=problem)
        for warning in config.warnings() + runtime.secrets.warnings():
            log_event("config_warning", logging.WARNING, message=warning)
        self.keep_dedupe_store(config)
        self.runtime = runtime
        self.metrics.show_secret_expiries(
            {spec.name: spec.expires for spec in config.secrets.values() if spec.expires is not None}
        )
        self.route_state = {}
        self.update_route_state(now)
        return runtime

    def config_accepted(self, config: Config, reason: str) -> None:
        """A reload that validated: applied whole, except what needs a restart (said in the log)."""
        assert self.runtime is not None
        old = self.runtime.config
        kept = {key: getattr(old, key) for key in RESTART_ONLY if getattr(config, key) != getattr(old, key)}
        for key in kept:
            log_event("restart_required", logging.WARNING, key=key, message=f"{key} changes only on a restart")
        self.install(replace(config, **kept) if kept else config)
        if self.owns_options:
            ctx.options.update(tcp_timeout=layers.watchdog_timeout(config.limits))
        self.metrics.config_reloads.labels(result="success").inc()
        log_event("config_reloaded", reason=reason, source=config.source, routes=[r.name for r in config.routes])

    def config_rejected(self, error: ConfigError, reason: str) -> None:
        self.metrics.config_reloads.labels(result="failure").inc()
        log_event("config_rejected", logging.ERROR, reason=reason, source=error.source, problems=error.problems)

    def refresh_secrets(self, force: bool = False) -> None:
        """Re-read secret files that changed; log each change and each route that turns degraded or ready."""
        if self.runtime is None:
            return
        now = datetime.datetime.now(datetime.UTC)
        secrets = self.runtime.secrets
        for name in secrets.refresh(force):
            status = secrets.secrets[name].status_at(now)
            if status == "ok":
                log_event("secret_loaded", secret=name)
            else:
                log_event("secret_unavailable", logging.ERROR, secret=name, reason=status)
        self.update_route_state(now)

    def update_route_state(self, now: datetime.datetime) -> None:
        assert self.runtime is not None
        ready = {
            route.name: bool(self.runtime.secrets.usable(route.secrets, now)) for route in self.runtime.config.routes
        }
        if ready == self.route_state:
            return
        for route, is_ready in ready.items():
            if self.route_state.get(route, True) != is_ready:
                if is_ready:
                    log_event("route_ready", route=route)
                else:
                    log_event("route_degraded", logging.ERROR, route=route, reason="no usable secret: fails closed")
        self.route_state = ready
        self.metrics.show_routes(ready)

    # -- lifecycle and the admin listener ---------------------------------------

    async def start_admin(self) -> None:
        """Start the admin listener (idempotent); OSError when its port is taken."""
        assert self.runtime is not None
        address = self.runtime.config.admin_listen
        if self.admin is None and address is not None:
            admin = AdminServer(self.readiness, self.metrics_exposition)
            await admin.start(*address)
            self.admin = admin
            log_event("admin_listening", listen=f"{address[0]}:{address[1]}")

    def start_reloader(self) -> None:
        """Watch the config file and secrets, and take SIGHUP (idempotent)."""
        if self.source is not None and self.reloader is None:
            self.reloader = Reloader(self.source, self, self.baseline)
            self.reloader.start()

    async def running(self) -> None:
        if self.runtime is None:  # loaded into mitmdump without its config: nothing could be verified
            logger.error("sigwarden needs its config: --set sigwarden_config=FILE")
            ctx.master.shutdown()
            return
        try:
            await self.start_admin()
        except OSError as error:
            log_event("listen_failed", logging.ERROR, listener="admin", reason=str(error))
        self.start_reloader()
        if self.state == "starting":
            self.state = "ready"

    async def done(self) -> None:
        if self.reloader is not None:
            self.reloader.stop()
            self.reloader = None
        if self.admin is not None:
            await self.admin.stop()
            self.admin = None
        if self.dedupe is not None:
            await self.dedupe.close()

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        degraded = sorted(route for route, ready in self.route_state.items() if not ready)
        return self.state == "ready", {"status": self.state, "degraded_routes": degraded}

    def metrics_exposition(self) -> tuple[bytes, str]:
        if self.runtime is not None:
            self.update_route_state(datetime.datetime.now(datetime.UTC))  # expiry is a matter of time
        return self.metrics.exposition(), CONTENT_TYPE

    def dedupe_store_error(self, operation: str) -> None:
        self.metrics.dedupe_store_errors.inc()

    def keep_dedupe_store(self, config: Config) -> None:
        """One dedupe store for the process: kept across reloads while `dedupe_store` is unchanged."""
        store = self.dedupe
        if store is not None and store.url == config.dedupe_store:
            if isinstance(store, dedupe.MemoryStore):
                store.max_entries = config.dedupe_max_entries
            return
        self.dedupe = dedupe.open_store(config.dedupe_store, config.dedupe_max_entries, self.dedupe_store_error)
        if store is not None:  # the old one is closed in the background; claims in flight just miss it
            try:
                task = asyncio.get_running_loop().create_task(store.close())
            except RuntimeError:  # no event loop: the old store never served
                return
            self.closing.add(task)
            task.add_done_callback(self.closing.discard)

    # -- the policy the layers ask -------------------------------------------

    def next_layer(self, nextlayer: layer.NextLayer) -> None:
        if nextlayer.layer is None:
            nextlayer.layer = layers.reverse_proxy_layer(nextlayer.context, self)

    def limits(self) -> Limits:
        assert self.runtime is not None
        return self.runtime.config.limits

    def connection_refused(self, outcome: Outcome, peer: str | None) -> None:
        self.metrics.count_request(UNKNOWN_ROUTE, outcome)
        log_event("connection_refused", logging.INFO, outcome=outcome.code, client=peer)

    def body_limit_outcome(self, flow: http.HTTPFlow, size: int) -> Outcome | None:
        record = self.classify(flow)
        if record.route is None:
            if record.runtime.config.unmatched == "reject":
                return Outcome.NO_ROUTE
            return None
        return Outcome.BODY_TOO_LARGE if size > record.route.max_body else None

    def classify(self, flow: http.HTTPFlow) -> FlowRecord:
        """The flow's record, made on first sight: forged verdicts stripped, route matched."""
        record = flow.metadata.get(RECORD)
        if record is None:
            assert self.runtime is not None
            runtime = self.runtime
            request = flow.request
            # One pass over the raw fields (Headers.keys() would look every name up again): verdict
            # headers in any spelling are dropped, and the few headers sigwarden reads are noted.
            overrides = []
            request_id = None
            forwarded_for = []
            forged = False
            for name, value in request.headers.fields:
                canonical = canonical_field_name(name)
                if canonical not in runtime.noted_headers:
                    continue
                if canonical in runtime.verdict_names:
                    forged = True
                    continue
                text = value.decode("utf-8", "surrogateescape")
                exact = name.lower()
                if exact == b"x-request-id":
                    request_id = request_id or text
                elif exact == b"x-forwarded-for":
                    forwarded_for.append(text)
                elif canonical in decision.PATH_OVERRIDE_HEADERS:
                    overrides.append((canonical, text))
            if forged:
                request.headers.fields = tuple(
                    (name, value)
                    for name, value in request.headers.fields
                    if canonical_field_name(name) not in runtime.verdict_names
                )
            request.authority = ""  # absolute-form targets are forwarded in origin form
            record = FlowRecord(runtime, runtime.match(request.path, overrides))
            record.forwarded_for = forwarded_for
            record.client_request_id = request_id is not None
            if record.route is not None:
                record.request_id = request_id or new_request_id()
            flow.metadata[RECORD] = record
            self.in_flight += 1
            self.metrics.in_flight.inc()
        return record

    # -- hooks ----------------------------------------------------------------

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        record = self.classify(flow)
        if record.route is not None:
            flow.request.stream = False  # buffered: the body is verified in `request`
            return
        if record.runtime.config.unmatched == "reject":
            self.refuse(flow, Outcome.NO_ROUTE)
        else:
            flow.request.stream = True
            record.upstream_started = time.perf_counter()

    def request(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        """Verify a protected request. Synchronous, except for a route's dedupe claim: then the
        coroutine to await is returned (mitmproxy awaits what a hook returns)."""
        try:
            return self.verify_request(flow)
        except Exception as error:
            # mitmproxy logs a hook's exception and carries on: here that would forward the request.
            self.fail_closed(flow, error)
            return None

    def fail_closed(self, flow: http.HTTPFlow, error: Exception) -> None:
        """A bug while deciding: answer 500 internal_error, forward nothing (and say where, not what)."""
        frames = traceback.extract_tb(error.__traceback__)[-3:]
        where = [f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno} {frame.name}" for frame in frames]
        log_event("internal_error", logging.ERROR, exception=type(error).__name__, where=where)
        self.refuse(flow, Outcome.INTERNAL_ERROR)

    def verify_request(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        if flow.response or flow.error:
            return None
        record = self.classify(flow)  # normally made in requestheaders; never skip verification
        if record.route is None:
            return None
        runtime, route = record.runtime, record.route
        if flow.request.raw_content is None:
            # Streamed by someone else (another addon): there is no body to verify. Fail closed.
            self.decide(flow, record, Verdict(Outcome.BAD_REQUEST), Outcome.BAD_REQUEST)
            return None
        started = time.perf_counter()
        verdict = decision.verify(
            route,
            runtime.secrets,
            SignedRequest(flow.request.method, flow.request.path, flow.request.headers, flow.request.raw_content),
            datetime.datetime.now(datetime.UTC),
        )
        record.verify_seconds = time.perf_counter() - started
        if not verdict.verified:
            self.decide(flow, record, verdict, verdict.outcome)
            return None
        record.key_id = verdict.key_id
        body = flow.request.raw_content
        now = time.time()
        timestamp = None
        if route.max_age is not None:
            timestamp = replay.body_timestamp(body)
            refusal = replay.timestamp_outcome(timestamp, route.max_age, now)
            if refusal is not None:
                self.decide(flow, record, verdict, refusal)
                return None
        if route.dedupe_window is None or self.dedupe is None:
            self.decide(flow, record, verdict, Outcome.VERIFIED)
            return None
        window = replay.remember_for(route.dedupe_window, route.max_age, timestamp, now)
        return self.claim_delivery(flow, record, verdict, replay.delivery_key(route.name, body), window)

    async def claim_delivery(
        self, flow: http.HTTPFlow, record: FlowRecord, verdict: Verdict, key: bytes, window: float
    ) -> None:
        """A verified delivery on a dedupe route: a copy of an accepted one is a duplicate (SPEC §6)."""
        try:
            assert self.dedupe is not None
            limits = record.runtime.config.limits
            # How long a claim may block an identical delivery: the longest the upstream may take, plus a margin.
            hold = limits.upstream_connect_timeout + limits.upstream_timeout + 5.0
            claim = await self.dedupe.claim(key, window, hold)
            if claim is not None:
                record.claim = claim
            self.decide(flow, record, verdict, Outcome.VERIFIED if claim is not None else Outcome.DUPLICATE)
        except Exception as error:
            self.fail_closed(flow, error)

    def decide(self, flow: http.HTTPFlow, record: FlowRecord, verdict: Verdict, outcome: Outcome) -> None:
        """Refuse, or forward with the verdict headers (report mode forwards refusals, marked)."""
        record.verdict = outcome
        runtime = record.runtime
        assert record.route is not None
        if not decision.forwards(runtime.config, record.route, outcome):
            self.refuse(flow, outcome)
            return
        request_headers = flow.request.headers
        if verdict.remove_headers:
            names = [name.decode("utf-8", "surrogateescape") for name, _ in request_headers.fields]
            for name in decision.forged_headers(names, verdict.remove_headers):
                request_headers.pop(name, None)  # the route's credential: the upstream never sees it
        if outcome is Outcome.VERIFIED:
            verdict_fields = [(b"true", "verified"), ((verdict.key_id or "").encode(), "key_id")]
        else:
            verdict_fields = [(b"false", "verified"), (outcome.code.encode(), "error")]
        added = [(runtime.header_bytes[key], value) for value, key in verdict_fields]
        if not record.client_request_id:
            added.insert(0, (b"X-Request-Id", (record.request_id or new_request_id()).encode()))
        if runtime.verdict_headers_appendable:
            # classify() removed every verdict header: append ours in one go, without another scan.
            request_headers.fields = request_headers.fields + tuple(added)
        else:
            for field_name, field_value in added:
                request_headers[field_name.decode()] = field_value.decode("utf-8", "surrogateescape")
        record.upstream_started = time.perf_counter()

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response is None:
            return
        if self.state == "draining":
            flow.response.headers["Connection"] = "close"  # keep-alive clients reconnect elsewhere
        record = flow.metadata.get(RECORD)
        if record is not None and record.upstream_started is None:
            return  # our own answer, already complete
        flow.response.stream = True

    def response(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        if flow.response is not None and flow.response.status_code == 101 and flow.websocket is None:
            # An upstream's 101 that is no WebSocket handshake: mitmproxy would relay raw bytes both ways
            # from here on (its `rawtcp` layer), a tunnel in which sigwarden reads nothing, so that an
            # application answering 101 without switching would read any request a client sends, forged
            # webhooks and verdicts included. mitmproxy marks a WebSocket before this hook (`flow.websocket`).
            self.refuse(flow, Outcome.UPSTREAM_UNAVAILABLE, close=True)
        return self.end(flow)

    def error(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        return self.end(flow)

    def end(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        """The flow is over: settle its dedupe claim if it has one (awaited), then count and log it."""
        record = flow.metadata.get(RECORD)
        if record is not None and record.claim is not None:
            return self.settle_delivery(flow, record)
        self.finish(flow)
        return None

    # -- replay and duplicates (SPEC §6) ---------------------------------------

    async def settle_delivery(self, flow: http.HTTPFlow, record: FlowRecord) -> None:
        """Remember a claimed delivery the upstream answered 2xx; release it on any failure."""
        claim, record.claim = record.claim, None
        if claim is not None:
            response = flow.response
            accepted = flow.error is None and response is not None and 200 <= response.status_code < 300
            await claim.settle(accepted)
        self.finish(flow)

    # -- acting on decisions --------------------------------------------------

    def refuse(self, flow: http.HTTPFlow, outcome: Outcome, close: bool = False) -> None:
        """Answer in sigwarden's JSON form, with the request's id; `close` ends the connection after it."""
        record = flow.metadata.get(RECORD)
        flow.metadata[layers.OUTCOME] = outcome
        answer = json_response(outcome, record.request_id if record is not None else None, flow.request.method)
        if close:
            answer.headers["Connection"] = "close"
        flow.response = answer

    def finish(self, flow: http.HTTPFlow) -> None:
        """Once per flow: count it, and log it (protected requests at info, the rest at debug)."""
        record = flow.metadata.get(RECORD)
        if record is None or record.finished:
            return
        record.finished = True
        self.in_flight -= 1
        self.metrics.in_flight.dec()
        outcome = (
            flow.metadata.get(layers.OUTCOME) or record.verdict or (Outcome.PASSED if record.route is None else None)
        )
        if outcome is None:
            return  # a client that went away before anything was decided
        route_name = record.route.name if record.route else UNMATCHED_ROUTE
        forwarded = record.upstream_started is not None
        upstream_status = flow.response.status_code if flow.response is not None and forwarded else None
        if upstream_status is not None and layers.OUTCOME in flow.metadata:
            upstream_status = None  # our 502/504 in place of an answer
        self.metrics.count_request(route_name, outcome)
        if record.verify_seconds is not None:
            self.metrics.verify_duration.observe(record.verify_seconds)
        if record.upstream_started is not None:
            self.metrics.observe_upstream(route_name, upstream_status, time.perf_counter() - record.upstream_started)
        level = logging.DEBUG if record.route is None else logging.INFO
        if not logger.isEnabledFor(level):
            return
        config = record.runtime.config
        peer = flow.client_conn.peername[0] if flow.client_conn.peername else None
        status = flow.response.status_code if flow.response else (outcome.status if outcome.is_refusal else None)
        fields = {
            "route": route_name,
            "outcome": outcome.code,
            "key_id": record.key_id,
            "method": flow.request.method,
            "path": flow.request.path.split("?", 1)[0],
            "client": client_address(peer, record.forwarded_for, config.trusted_proxies),
            "status": status,
            "upstream_status": upstream_status,
            "duration_ms": round((time.perf_counter() - record.started) * 1000, 3),
            "body_bytes": len(flow.request.raw_content) if flow.request.raw_content is not None else None,
            "request_id": record.request_id,
        }
        log_line("request", level, fields)


def new_request_id() -> str:
    """32 random hex digits, like a uuid4's (without building a UUID object per request)."""
    return os.urandom(16).hex()
