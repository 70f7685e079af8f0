"""The mitmproxy addon: the only code that touches flows. Each hook asks the core and acts."""

from __future__ import annotations

import datetime
import logging
import time
import uuid
from dataclasses import dataclass, field

from mitmproxy import ctx, exceptions, http
from mitmproxy.addonmanager import Loader
from mitmproxy.proxy import layer

from . import decision, layers
from .config import Config, ConfigError, Route, load_config
from .logs import configure_logging, log_event
from .outcomes import Outcome
from .responses import json_response
from .runtime import Runtime
from .schemes import SignedRequest

RECORD = "sigwarden"


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


class Sigwarden:
    """Verifies webhook signatures on protected routes; passes everything else untouched."""

    def __init__(self, config: Config | None = None):
        self.runtime: Runtime | None = Runtime.from_config(config) if config else None

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
            try:
                config = load_config(ctx.options.sigwarden_config)
            except ConfigError as error:
                raise exceptions.OptionsError(str(error)) from None
            configure_logging(config.log_format, config.log_level)
            self.install(config)

    def install(self, config: Config) -> Runtime:
        """Serve with a new config from now on; requests under way keep the snapshot they started with."""
        runtime = Runtime.from_config(config)
        now = datetime.datetime.now(datetime.UTC)
        for name, problem in runtime.secrets.problems(now).items():
            log_event("secret_unavailable", logging.ERROR, secret=name, reason=problem)
        for warning in config.warnings() + runtime.secrets.warnings():
            log_event("config_warning", logging.WARNING, message=warning)
        self.runtime = runtime
        return runtime

    # -- the policy the layers ask -------------------------------------------

    def next_layer(self, nextlayer: layer.NextLayer) -> None:
        if nextlayer.layer is None:
            nextlayer.layer = layers.reverse_proxy_layer(nextlayer.context, self)

    def max_header_bytes(self) -> int:
        assert self.runtime is not None
        return self.runtime.config.limits.max_header_bytes

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
            # The raw fields: Headers.keys() looks every name up again, O(n²) in the number of headers.
            names = [name.decode("utf-8", "surrogateescape") for name, _ in request.headers.fields]
            forged = decision.forged_headers(names, runtime.verdict_names)
            for name in forged:
                request.headers.pop(name, None)
            request.authority = ""  # absolute-form targets are forwarded in origin form
            record = FlowRecord(runtime, runtime.match(request.path))
            flow.metadata[RECORD] = record
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
            self.refuse(flow, record, Outcome.NO_ROUTE)
        else:
            flow.request.stream = True

    def request(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error:
            return
        record = self.classify(flow)  # normally made in requestheaders; never skip verification
        if record.route is None:
            return
        runtime, route = record.runtime, record.route
        started = time.perf_counter()
        verdict = decision.verify(
            route,
            runtime.secrets,
            SignedRequest(
                flow.request.method, flow.request.path, flow.request.headers, flow.request.raw_content or b""
            ),
            datetime.datetime.now(datetime.UTC),
        )
        record.verify_seconds = time.perf_counter() - started
        record.verdict = verdict.outcome
        headers = runtime.config.headers
        if not decision.forwards(runtime.config, route, verdict.outcome):
            self.refuse(flow, record, verdict.outcome)
            return
        request_headers = flow.request.headers
        given = request_headers.get_all("X-Request-Id")
        if len(given) == 1 and given[0]:
            record.request_id = given[0]  # kept as it is
        else:
            record.request_id = ", ".join(given) or uuid.uuid4().hex
            request_headers["X-Request-Id"] = record.request_id
        # classify() removed every verdict header: append ours without another scan of the headers.
        put = request_headers.add if runtime.verdict_headers_appendable else request_headers.__setitem__
        if verdict.verified:
            record.key_id = verdict.key_id
            put(headers.verified, "true")
            put(headers.key_id, verdict.key_id or "")
        else:
            put(headers.verified, "false")
            put(headers.error, verdict.outcome.code)
        record.upstream_started = time.perf_counter()

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        record = flow.metadata.get(RECORD)
        if record is not None and record.upstream_started is None and record.route is not None:
            return  # our own answer, already complete
        if flow.response is not None:
            flow.response.stream = True

    def response(self, flow: http.HTTPFlow) -> None:
        self.finish(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self.finish(flow)

    # -- acting on decisions --------------------------------------------------

    def refuse(self, flow: http.HTTPFlow, record: FlowRecord, outcome: Outcome) -> None:
        flow.metadata[layers.OUTCOME] = outcome
        flow.response = json_response(outcome, flow.request.headers.get("X-Request-Id"))

    def finish(self, flow: http.HTTPFlow) -> None:
        record = flow.metadata.get(RECORD)
        if record is None or record.finished:
            return
        record.finished = True
        outcome = (
            flow.metadata.get(layers.OUTCOME) or record.verdict or (Outcome.PASSED if record.route is None else None)
        )
        if outcome is None:
            return  # a client that went away before anything was decided
        status = flow.response.status_code if flow.response else (outcome.status if outcome.is_refusal else None)
        forwarded = record.upstream_started is not None or record.route is None
        fields = {
            "route": record.route.name if record.route else "unmatched",
            "outcome": outcome.code,
            "key_id": record.key_id,
            "method": flow.request.method,
            "path": flow.request.path.split("?", 1)[0],
            "client": flow.client_conn.peername[0] if flow.client_conn.peername else None,
            "status": status,
            "upstream_status": flow.response.status_code if flow.response and forwarded else None,
            "duration_ms": round((time.perf_counter() - record.started) * 1000, 3),
            "body_bytes": len(flow.request.raw_content) if flow.request.raw_content is not None else None,
            "request_id": record.request_id,
        }
        level = logging.DEBUG if record.route is None else logging.INFO
        log_event("request", level, **fields)
