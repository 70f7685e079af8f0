"""mitmproxy layer subclasses for what hooks cannot do (SPEC §7).

mitmproxy checks body sizes before any hook runs, writes its own HTML error
pages, and reads request heads without a size limit. These small subclasses
consult sigwarden's policy at those points and answer in sigwarden's JSON
form. Everything else is mitmproxy's own behaviour.
"""

from __future__ import annotations

import logging
import re
from typing import Protocol

from mitmproxy import flow as mitmproxy_flow
from mitmproxy import http
from mitmproxy.net.http import http1
from mitmproxy.proxy import commands, events, layer, tunnel
from mitmproxy.proxy.context import Context
from mitmproxy.proxy.layers import tls
from mitmproxy.proxy.layers.http import HttpLayer, HTTPMode, HttpStream, SendHttp
from mitmproxy.proxy.layers.http._base import ReceiveHttp
from mitmproxy.proxy.layers.http._events import ErrorCode, RequestProtocolError, ResponseProtocolError
from mitmproxy.proxy.layers.http._hooks import HttpErrorHook, HttpRequestHeadersHook
from mitmproxy.proxy.layers.http._http1 import Http1Server
from mitmproxy.proxy.mode_specs import ReverseMode

from . import wire
from .outcomes import Outcome
from .responses import json_response

logger = logging.getLogger("sigwarden.layers")
_BLANK_LINE = re.compile(rb"\n\r?\n")


class Policy(Protocol):
    """The questions the layers ask; answered by the addon from the current configuration."""

    def body_limit_outcome(self, flow: http.HTTPFlow, size: int) -> Outcome | None:
        """The refusal for a request whose body has (or declares) `size` bytes, or None to go on."""
        ...

    def max_header_bytes(self) -> int: ...


class OutcomeError(ResponseProtocolError):
    """A protocol error that carries the outcome sigwarden answers with."""

    def __init__(self, stream_id: int, outcome: Outcome, code: ErrorCode):
        super().__init__(stream_id, outcome.code, code)
        self.outcome = outcome


_OUTCOME_FOR_CODE = {
    ErrorCode.GENERIC_CLIENT_ERROR: Outcome.BAD_REQUEST,
    ErrorCode.REQUEST_VALIDATION_FAILED: Outcome.BAD_REQUEST,
    ErrorCode.DESTINATION_UNKNOWN: Outcome.BAD_REQUEST,
    ErrorCode.REQUEST_TOO_LARGE: Outcome.BODY_TOO_LARGE,
    ErrorCode.CONNECT_FAILED: Outcome.UPSTREAM_UNAVAILABLE,
    ErrorCode.GENERIC_SERVER_ERROR: Outcome.UPSTREAM_UNAVAILABLE,
    ErrorCode.RESPONSE_VALIDATION_FAILED: Outcome.UPSTREAM_UNAVAILABLE,
    ErrorCode.RESPONSE_TOO_LARGE: Outcome.UPSTREAM_UNAVAILABLE,
}


def outcome_for_error(event: ResponseProtocolError) -> Outcome | None:
    """The outcome a protocol error is answered with; None where mitmproxy answers nothing (kill, close)."""
    return getattr(event, "outcome", None) or _OUTCOME_FOR_CODE.get(event.code)


def error_response_bytes(outcome: Outcome) -> bytes:
    """A whole HTTP/1.1 answer in sigwarden's JSON form that closes the connection."""
    response = json_response(outcome)
    response.headers["Connection"] = "close"
    return http1.assemble_response(response)


OUTCOME = "sigwarden.outcome"


def record_outcome(flow: mitmproxy_flow.Flow, outcome: Outcome) -> None:
    flow.metadata[OUTCOME] = outcome


class GuardedHttp1Server(Http1Server):
    """HTTP/1 server side: JSON error answers, no raw request heads in logs, a head size limit."""

    def __init__(self, context: Context, policy: Policy):
        super().__init__(context)
        self.policy = policy

    def send(self, event):  # type: ignore[no-untyped-def]
        if isinstance(event, ResponseProtocolError) and not self.response:
            outcome = outcome_for_error(event)
            if outcome is not None and self.conn.state & self.conn.state.CAN_WRITE:
                yield commands.SendData(self.conn, error_response_bytes(outcome))
            yield commands.CloseConnection(self.conn)
            return
        yield from super().send(event)

    def read_headers(self, event: events.ConnectionEvent) -> layer.CommandGenerator[None]:
        limit = self.policy.max_header_bytes()
        if isinstance(event, events.DataReceived) and len(self.buf) > limit:
            # h11 ends a head at a blank line, with or without CR.
            if not _BLANK_LINE.search(bytes(self.buf), 0, limit + 3):
                yield from self._refuse_head(Outcome.HEADERS_TOO_LARGE)
                return
        for command in super().read_headers(event):
            if isinstance(command, commands.SendData):
                # mitmproxy's only write here is its HTML 400 page for an unparsable head.
                command = commands.SendData(self.conn, error_response_bytes(Outcome.BAD_REQUEST))
            elif isinstance(command, commands.Log):
                # These lines quote raw request heads (signatures, tokens): never print them.
                command = commands.Log("request head refused or incomplete", logging.DEBUG)
            elif isinstance(command, ReceiveHttp) and isinstance(command.event, RequestProtocolError):
                command = ReceiveHttp(
                    RequestProtocolError(command.event.stream_id, Outcome.BAD_REQUEST.code, command.event.code)
                )
            yield command

    def read_body(self, event: events.Event) -> layer.CommandGenerator[None]:
        try:
            yield from super().read_body(event)
        except NotImplementedError:
            # mitmproxy 12 cannot carry request trailers and crashes the connection: refuse them instead.
            if not self.response:
                yield commands.SendData(self.conn, error_response_bytes(Outcome.BAD_REQUEST))
            yield commands.CloseConnection(self.conn)
            yield ReceiveHttp(
                RequestProtocolError(self.stream_id, Outcome.BAD_REQUEST.code, ErrorCode.GENERIC_CLIENT_ERROR)
            )
            self.state = self.done

    def _refuse_head(self, outcome: Outcome) -> layer.CommandGenerator[None]:
        self.buf = type(self.buf)()
        yield commands.SendData(self.conn, error_response_bytes(outcome))
        yield commands.CloseConnection(self.conn)
        yield commands.Log(f"refused request head: {outcome.code}", logging.DEBUG)
        self.state = self.done


class GuardedHttpStream(HttpStream):
    """One request/response exchange: the body limit of the route decided before the body is read."""

    def __init__(self, context: Context, stream_id: int, policy: Policy):
        super().__init__(context, stream_id)
        self.policy = policy

    def check_body_size(self, request: bool) -> layer.CommandGenerator[bool]:
        if not request:
            return False  # responses are streamed, never limited
        if self.request_body_buf:
            size: int | None = len(self.request_body_buf)
        else:
            try:
                size = http1.expected_http_body_size(self.flow.request, None)
            except ValueError:
                size = None
        outcome = self.policy.body_limit_outcome(self.flow, size or 0)
        if outcome is None:
            return False
        if not self.request_body_buf:
            yield HttpRequestHeadersHook(self.flow)
        record_outcome(self.flow, outcome)
        self.flow.error = mitmproxy_flow.Error(outcome.code)
        yield HttpErrorHook(self.flow)
        yield SendHttp(OutcomeError(self.stream_id, outcome, ErrorCode.REQUEST_TOO_LARGE), self.context.client)
        self.client_state = self.state_errored
        self.flow.live = False
        return True

    def check_invalid(self, request: bool) -> layer.CommandGenerator[bool]:
        if request:
            problem = wire.head_problem(self.flow.request.data.path, self.flow.request.headers.fields)
            if problem is not None:
                # As mitmproxy does for its own checks: error hooks, then a 400 that closes the connection.
                record_outcome(self.flow, Outcome.BAD_REQUEST)
                self.flow.error = mitmproxy_flow.Error(problem)
                yield HttpRequestHeadersHook(self.flow)
                yield HttpErrorHook(self.flow)
                yield SendHttp(
                    ResponseProtocolError(self.stream_id, problem, ErrorCode.REQUEST_VALIDATION_FAILED),
                    self.context.client,
                )
                self.flow.live = False
                self.client_state = self.server_state = self.state_errored
                return True
        return (yield from super().check_invalid(request))

    def handle_protocol_error(self, event):  # type: ignore[no-untyped-def]
        if isinstance(event, ResponseProtocolError) and OUTCOME not in self.flow.metadata:
            outcome = outcome_for_error(event)
            if outcome is not None:
                record_outcome(self.flow, outcome)
        elif isinstance(event, RequestProtocolError) and event.code is not ErrorCode.CLIENT_DISCONNECTED:
            self.flow.metadata.setdefault(OUTCOME, Outcome.BAD_REQUEST)
        yield from super().handle_protocol_error(event)


class GuardedHttpLayer(HttpLayer):
    """mitmproxy's HttpLayer with sigwarden's HTTP/1 server and streams."""

    def __init__(self, context: Context, mode: HTTPMode, policy: Policy):
        super().__init__(context, mode)
        self.policy = policy

    def _handle_event(self, event: events.Event) -> layer.CommandGenerator[None]:
        if isinstance(event, events.Start) and not self.context.client.alpn:
            self.connections[self.context.client] = GuardedHttp1Server(self.context.fork(), self.policy)
        yield from super()._handle_event(event)

    def make_stream(self, stream_id: int) -> layer.CommandGenerator[None]:
        self.streams[stream_id] = GuardedHttpStream(self.context.fork(), stream_id, self.policy)
        yield from self.event_to_child(self.streams[stream_id], events.Start())


def reverse_proxy_layer(context: Context, policy: Policy) -> layer.Layer | None:
    """The layer stack for a reverse-proxy connection; None for other modes (left to mitmproxy)."""
    if not isinstance(context.client.proxy_mode, ReverseMode):
        return None
    if context.client.proxy_mode.scheme not in ("http", "https"):
        return None
    stack = tunnel.LayerStack()
    if context.client.proxy_mode.scheme == "https":
        stack /= tls.ServerTLSLayer(context)
    # The listener speaks plain HTTP: a TLS hello fails to parse and is answered 400, never forwarded.
    stack /= GuardedHttpLayer(context, HTTPMode.transparent, policy)
    return stack[0]


class NextLayer:
    """The lean master's layer installer (named like mitmproxy's, which it replaces)."""

    def __init__(self, policy: Policy):
        self.policy = policy

    def next_layer(self, nextlayer: layer.NextLayer) -> None:
        if nextlayer.layer is None:
            nextlayer.layer = reverse_proxy_layer(nextlayer.context, self.policy)
