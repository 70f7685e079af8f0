"""mitmproxy layer subclasses for what hooks cannot do (SPEC §7).

mitmproxy checks body sizes before any hook runs, writes its own HTML error
pages, reads request heads without a size or time limit, never gives up on an
upstream connect or a silent upstream, and has one inactivity timeout for the
whole connection. These small subclasses consult sigwarden's policy at those
points, keep the `limits` (README, "Limits"), and answer in sigwarden's JSON
form. Everything else is mitmproxy's own behaviour.

Timing: each client connection has one clock, one pending wakeup at a time
(`GuardedHttp1Server`). It enforces the head, keep-alive and stall limits, the
deadline the current exchange (`GuardedHttpStream`) asks for (its protected
body, the upstream's answer: an `ExchangeDeadline`, answered by an
`ExchangeTimedOut`), and, by waking up at least every `tcp_timeout / 2`, keeps
mitmproxy's connection-wide inactivity watchdog from firing while sigwarden's
own limits are in charge. `tcp_timeout` is therefore set to `header_timeout`
(proxy.py): it only closes connections that never sent a byte. The HTTP layer
times upstream connects, one wakeup per upstream connection.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from mitmproxy import connection, http
from mitmproxy import flow as mitmproxy_flow
from mitmproxy.net.http import http1
from mitmproxy.proxy import commands, events, layer, tunnel
from mitmproxy.proxy.context import Context
from mitmproxy.proxy.layers import tls
from mitmproxy.proxy.layers.http import (
    GetHttpConnection,
    HttpLayer,
    HTTPMode,
    HttpStream,
    SendHttp,
    validate_request,
)
from mitmproxy.proxy.layers.http._base import ReceiveHttp
from mitmproxy.proxy.layers.http._events import (
    ErrorCode,
    HttpEvent,
    RequestHeaders,
    RequestProtocolError,
    ResponseData,
    ResponseHeaders,
    ResponseProtocolError,
)
from mitmproxy.proxy.layers.http._hooks import HttpErrorHook, HttpRequestHeadersHook
from mitmproxy.proxy.layers.http._http1 import Http1Server
from mitmproxy.proxy.mode_specs import ReverseMode

from . import wire
from .config import Limits
from .dispatch import PendingHook
from .outcomes import Outcome
from .responses import json_response

logger = logging.getLogger("sigwarden.layers")
_HTTP_1_VERSIONS = ("HTTP/1.0", "HTTP/1.1")
_BLANK_LINE = re.compile(rb"\n\r?\n")

LINGER_SECONDS = 2.0  # after an error answer, drop what the client still sends so that it can read the answer
PIPELINE_ALLOWANCE = 64 * 1024  # bytes of a next request buffered beyond max_header_bytes while one is answered


def watchdog_timeout(limits: Limits) -> int:
    """mitmproxy's `tcp_timeout`: its watchdog closes connections that never send a byte within the head time."""
    return max(1, math.ceil(limits.header_timeout))


class Policy(Protocol):
    """The questions the layers ask; answered by the addon from the current configuration."""

    def body_limit_outcome(self, flow: http.HTTPFlow, size: int) -> Outcome | None:
        """The refusal for a request whose body has (or declares) `size` bytes, or None to go on."""
        ...

    def limits(self) -> Limits:
        """The limits for a new connection or exchange."""
        ...

    def connection_refused(self, outcome: Outcome, peer: str | None) -> None:
        """A connection refused before any flow existed (head too large or too slow, connection cap)."""
        ...

    # The lean master's HookDispatcher.run_inline, or None (mitmdump): flow hooks run where they are yielded.
    run_hook_inline: Callable[[commands.StartHook], tuple[bool, Awaitable[None] | None]] | None


class OutcomeError(ResponseProtocolError):
    """A protocol error that carries the outcome sigwarden answers with."""

    def __init__(self, stream_id: int, outcome: Outcome, code: ErrorCode):
        super().__init__(stream_id, outcome.code, code)
        self.outcome = outcome


class ClientOutcomeError(RequestProtocolError):
    """The client failed a limit mid-request; the answer is already written, the stream records the outcome."""

    def __init__(self, stream_id: int, outcome: Outcome):
        super().__init__(stream_id, outcome.code, ErrorCode.GENERIC_CLIENT_ERROR)
        self.outcome = outcome


@dataclass
class ExchangeDeadline(HttpEvent):
    """Stream → its client connection: time this phase of the exchange ("body" or "upstream")."""

    due: float  # time.monotonic()
    phase: str


@dataclass
class ExchangeTimedOut(HttpEvent):
    """Client connection → stream: the phase it asked to time has run out."""

    phase: str


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


def _peer(conn: connection.Connection) -> str | None:
    return str(conn.peername[0]) if conn.peername else None


class GuardedHttp1Server(Http1Server):
    """HTTP/1 server side: JSON error answers, no raw request heads in logs, head size and time limits,
    the keep-alive idle limit, the stall limit, and the connection's clock (see the module's docstring)."""

    def __init__(self, context: Context, policy: Policy):
        super().__init__(context)
        self.policy = policy
        self.limits = policy.limits()
        now = time.monotonic()
        connected = now - max(0.0, time.time() - (context.client.timestamp_start or time.time()))
        # The first head must be complete within header_timeout of the connection's start.
        self._head_deadline: float | None = connected + self.limits.header_timeout
        self._idle_deadline = now + self.limits.idle_timeout
        self._last_activity = now
        self._linger_deadline = now
        self._heartbeat = max(0.5, context.options.tcp_timeout / 2)
        self._timer: commands.RequestWakeup | None = None
        self._timer_due = now
        self._exchange: ExchangeDeadline | None = None

    # -- events ---------------------------------------------------------------

    def _handle_event(self, event: events.Event) -> layer.CommandGenerator[None]:
        if isinstance(event, events.Wakeup):
            if event.command is self._timer:
                self._timer = None
                yield from self._on_clock()
                yield from self._schedule()
            return  # a timer that was replaced
        now = time.monotonic()
        if isinstance(event, events.DataReceived):
            self._last_activity = now
            if self.state == self.read_headers and self._head_deadline is None:
                self._head_deadline = now + self.limits.header_timeout  # a keep-alive head starts now
        elif isinstance(event, ResponseHeaders | ResponseData):
            self._last_activity = now
        yield from super()._handle_event(event)
        if self.state == self.wait and len(self.buf) > self.limits.max_header_bytes + PIPELINE_ALLOWANCE:
            # A client pipelining more than a head ahead of its answer would grow this buffer without bound.
            self.policy.connection_refused(Outcome.HEADERS_TOO_LARGE, _peer(self.conn))
            self.buf = type(self.buf)()
            yield commands.CloseConnection(self.conn)
        yield from self._schedule()

    def send(self, event: HttpEvent) -> layer.CommandGenerator[None]:
        if self.state == self._linger:
            return  # already answered; nothing more goes out
        if isinstance(event, ExchangeDeadline):
            self._exchange = event
            return
        if isinstance(event, ResponseHeaders):
            self._exchange = None  # the upstream answered; what follows is the stall limit's
        if isinstance(event, ResponseProtocolError) and not self.response:
            outcome = outcome_for_error(event)
            if outcome is not None and self.conn.state & self.conn.state.CAN_WRITE:
                yield from self._answer_and_linger(outcome)
            else:
                yield commands.CloseConnection(self.conn)
            return
        yield from super().send(event)

    def read_headers(self, event: events.ConnectionEvent) -> layer.CommandGenerator[None]:
        limit = self.limits.max_header_bytes
        if isinstance(event, events.DataReceived) and len(self.buf) > limit:
            # h11 ends a head at a blank line, with or without CR.
            if not _BLANK_LINE.search(bytes(self.buf), 0, limit + 3):
                yield from self._refuse_head(Outcome.HEADERS_TOO_LARGE)
                return
        produced = super().read_headers(event)
        for command in produced:
            if isinstance(command, commands.SendData):
                # mitmproxy's only write here is its HTML 400 page for an unparsable head; it closes next.
                rest = list(produced)
                if not any(isinstance(later, ReceiveHttp) for later in rest):
                    self.policy.connection_refused(Outcome.BAD_REQUEST, _peer(self.conn))  # no flow was made
                yield from self._answer_and_linger(Outcome.BAD_REQUEST)
                for later in rest:
                    if not isinstance(later, commands.CloseConnection):  # lingering instead
                        yield self._sanitised(later)
                self.state = self._linger  # mitmproxy set `done`
                return
            yield self._sanitised(command)

    @staticmethod
    def _sanitised(command: commands.Command) -> commands.Command:
        if isinstance(command, commands.Log):
            # These lines quote raw request heads (signatures, tokens): never print them.
            return commands.Log("request head refused or incomplete", logging.DEBUG)
        if isinstance(command, ReceiveHttp) and isinstance(command.event, RequestProtocolError):
            return ReceiveHttp(
                RequestProtocolError(command.event.stream_id, Outcome.BAD_REQUEST.code, command.event.code)
            )
        return command

    def mark_done(self, *, request: bool = False, response: bool = False) -> layer.CommandGenerator[None]:
        yield from super().mark_done(request=request, response=response)
        if self.state == self.read_headers:  # keep-alive: the exchange is over, the next head may come
            self._exchange = None
            now = time.monotonic()
            self._idle_deadline = now + self.limits.idle_timeout
            self._head_deadline = now + self.limits.header_timeout if self.buf else None  # pipelined: begun

    # -- the clock --------------------------------------------------------------

    def _deadline(self) -> tuple[float, Callable[[], layer.CommandGenerator[None]]] | None:
        """The next limit to run out, and what to do then."""
        own = self._connection_deadline()
        if self._exchange is not None and (own is None or self._exchange.due < own[0]):
            return self._exchange.due, self._exchange_timed_out
        return own

    def _connection_deadline(self) -> tuple[float, Callable[[], layer.CommandGenerator[None]]] | None:
        """When the current phase of the connection runs out, and what to do then."""
        if self.state == self.read_headers:
            if self._head_deadline is not None:
                return self._head_deadline, self._head_timed_out
            return self._idle_deadline, self._idle_timed_out
        if self.state == self._linger:
            return self._linger_deadline, self._close
        if self.state in (self.read_body, self.passthrough) or (self.state == self.wait and self.response):
            return self._last_activity + self.limits.idle_timeout, self._stalled
        return None  # waiting for the answer: the exchange's own timers (upstream_timeout) are in charge

    def _schedule(self) -> layer.CommandGenerator[None]:
        if self.state in (self.start, self.done) or self.conn.state == connection.ConnectionState.CLOSED:
            return
        now = time.monotonic()
        due = now + self._heartbeat
        deadline = self._deadline()
        if deadline is not None:
            due = min(due, deadline[0])
        if self._timer is not None and self._timer_due <= due + 0.01:
            return
        self._timer = commands.RequestWakeup(max(0.0, due - now))
        self._timer_due = due
        yield self._timer

    def _on_clock(self) -> layer.CommandGenerator[None]:
        deadline = self._deadline()
        if deadline is not None and time.monotonic() >= deadline[0] - 0.005:
            yield from deadline[1]()

    def _exchange_timed_out(self) -> layer.CommandGenerator[None]:
        assert self._exchange is not None
        timed_out, self._exchange = self._exchange, None
        yield ReceiveHttp(ExchangeTimedOut(timed_out.stream_id, timed_out.phase))

    def _head_timed_out(self) -> layer.CommandGenerator[None]:
        if bytes(self.buf).strip():
            yield from self._refuse_head(Outcome.REQUEST_TIMEOUT)
        else:
            yield from self._close()  # nothing of a request: no answer

    def _idle_timed_out(self) -> layer.CommandGenerator[None]:
        yield commands.Log("closing an idle keep-alive connection", logging.DEBUG)
        yield from self._close()

    def _stalled(self) -> layer.CommandGenerator[None]:
        if self.state == self.read_body and not self.response:
            yield ReceiveHttp(ClientOutcomeError(self.stream_id, Outcome.REQUEST_TIMEOUT))
            yield from self._answer_and_linger(Outcome.REQUEST_TIMEOUT)
        else:
            # mitmproxy's states see the close and end the exchange as a client disconnect.
            yield commands.Log("closing a stalled connection", logging.DEBUG)
            yield commands.CloseConnection(self.conn)

    # -- answering and closing ----------------------------------------------------

    def read_body(self, event: events.Event) -> layer.CommandGenerator[None]:
        """mitmproxy closes on a malformed body without answering, and hangs on request trailers: answer 400."""
        held: commands.Command | None = None  # a close that an error may follow
        try:
            for command in super().read_body(event):
                if held is not None:
                    if isinstance(command, ReceiveHttp) and isinstance(command.event, RequestProtocolError):
                        yield from self._refuse_body()
                        return
                    yield held
                    held = None
                if isinstance(command, commands.CloseConnection) and command.connection is self.conn:
                    held = command
                    continue
                yield command
        except NotImplementedError:  # "HTTP trailers are not implemented yet" (mitmproxy 12.3.1)
            yield from self._refuse_body()
            return
        if held is not None:
            yield held

    def _refuse_body(self) -> layer.CommandGenerator[None]:
        if not self.response and self.conn.state & self.conn.state.CAN_WRITE:
            yield commands.SendData(self.conn, error_response_bytes(Outcome.BAD_REQUEST))
        yield commands.CloseConnection(self.conn)
        self.state = self.done
        error = RequestProtocolError(self.stream_id or 0, Outcome.BAD_REQUEST.code, ErrorCode.GENERIC_CLIENT_ERROR)
        yield ReceiveHttp(error)

    def _refuse_head(self, outcome: Outcome) -> layer.CommandGenerator[None]:
        self.policy.connection_refused(outcome, _peer(self.conn))
        yield commands.Log(f"refused request head: {outcome.code}", logging.DEBUG)
        yield from self._answer_and_linger(outcome)

    def _answer_and_linger(self, outcome: Outcome) -> layer.CommandGenerator[None]:
        """Answer, send FIN, and read (dropping it) what the client still sends for a moment:
        closing a socket with unread data sends a reset, which can destroy the answer before it is read."""
        self.buf = type(self.buf)()
        self._exchange = None
        yield commands.SendData(self.conn, error_response_bytes(outcome))
        yield commands.CloseTcpConnection(self.conn, half_close=True)
        self.state = self._linger
        self._linger_deadline = time.monotonic() + LINGER_SECONDS

    def _linger(self, event: events.Event) -> layer.CommandGenerator[None]:
        if isinstance(event, events.DataReceived):
            self.buf = type(self.buf)()
        elif isinstance(event, events.ConnectionClosed):
            yield from self._close()

    def _close(self) -> layer.CommandGenerator[None]:
        yield commands.CloseConnection(self.conn)
        self.state = self.done


async def _done() -> None:
    """A hook with nothing left to do: yielded only to end the call chain where mitmproxy would."""


class GuardedHttpStream(HttpStream):
    """One request/response exchange: the route's body limit decided before the body is read,
    `body_timeout` for a protected (buffered) body, `upstream_timeout` for the upstream's answer."""

    def __init__(self, context: Context, stream_id: int, policy: Policy):
        super().__init__(context, stream_id)
        self.policy = policy
        self.limits = policy.limits()
        self._upstream_timed = False
        self.http_layer: GuardedHttpLayer | None = None  # set by GuardedHttpLayer: it knows which connections are busy

    def handle_event(self, event: events.Event) -> layer.CommandGenerator[None]:
        if isinstance(event, ExchangeTimedOut) and (self._paused or not self._phase_applies(event.phase)):
            # The phase it timed has ended; a hook that is busy means so too (see `_phase_applies`).
            return
        yield from super().handle_event(event)

    def _phase_applies(self, phase: str) -> bool:
        if not self.flow.live:
            return False  # the exchange has ended (answered, failed, or the client left)
        if phase == "body":
            return self.client_state == self.state_consume_request_body
        return self.server_state == self.state_wait_for_response_headers and self.flow.response is None

    def _time(self, phase: str, seconds: float) -> layer.CommandGenerator[None]:
        yield SendHttp(ExchangeDeadline(self.stream_id, time.monotonic() + seconds, phase), self.context.client)

    def _handle_event(self, event: events.Event) -> layer.CommandGenerator[None]:
        run_inline = self.policy.run_hook_inline
        if run_inline is None or self.http_layer is None:
            yield from self._handle_stream_event(event)
            return
        # Drive the generator ourselves so that flow hooks run right here (dispatch.py).
        generator = self._handle_stream_event(event)
        reply = None
        while True:
            try:
                command = generator.send(reply)
            except StopIteration:
                return
            reply = None
            if isinstance(command, commands.StartHook):
                busy = self.http_layer.busy
                if len(busy) > 1:
                    reply = yield command  # nested in two connections' events: mitmproxy's way, to unwind
                    continue
                handled, pending = run_inline(command)
                if pending is None and handled and self.context.client in busy and self._answers_client(command):
                    # The client connection is in the middle of reading this request, and the stream is
                    # about to write to it: go through mitmproxy's hook task, which lets that finish first.
                    pending = _done()
                if pending is not None:
                    command = PendingHook(pending)
                elif handled:
                    continue
            reply = yield command  # a blocking command: the layer pauses us and sends its reply

    def _answers_client(self, hook: commands.StartHook) -> bool:
        """Whether, after this hook, the stream writes to the client (an answer, an error, 100 Continue)."""
        flow = self.flow
        if flow.response is not None or flow.error is not None or not flow.live:
            return True
        return isinstance(hook, HttpRequestHeadersHook) and "expect" in flow.request.headers

    def _handle_stream_event(self, event: events.Event) -> layer.CommandGenerator[None]:
        if isinstance(event, ExchangeTimedOut):
            if event.phase == "body":
                yield from self._refuse(Outcome.REQUEST_TIMEOUT, ErrorCode.GENERIC_CLIENT_ERROR)
            else:
                yield from self._upstream_timed_out()
            return
        yield from super()._handle_event(event)
        if (
            not self._upstream_timed
            and self.server_state == self.state_wait_for_response_headers
            and self.client_state == self.state_done
            and self.flow.live
            and self.flow.response is None
        ):
            # The whole request has gone upstream: its answer has upstream_timeout to begin.
            self._upstream_timed = True
            yield from self._time("upstream", self.limits.upstream_timeout)

    def state_wait_for_request_headers(self, event: RequestHeaders) -> layer.CommandGenerator[None]:
        yield from super().state_wait_for_request_headers(event)
        if not event.end_stream and self.client_state == self.state_consume_request_body:
            # A buffered (protected, or refused) body: it has body_timeout to arrive whole.
            yield from self._time("body", self.limits.body_timeout)

    def check_invalid(self, request: bool) -> layer.CommandGenerator[bool]:
        if request and (
            # h11 reads any HTTP/x.y; `GET / HTTP/9.9` or `PRI * HTTP/2.0` would otherwise go upstream.
            self.flow.request.http_version not in _HTTP_1_VERSIONS
            or wire.head_problem(self.flow.request.data.path, self.flow.request.headers.fields) is not None
            # mitmproxy's own checks (Content-Length with Transfer-Encoding, …), refused here so that the
            # addon sees the request before the error, and counts and logs it like any other refusal.
            or validate_request(self.mode, self.flow.request, self.context.options.validate_inbound_headers)
        ):
            yield HttpRequestHeadersHook(self.flow)  # seen by the addon: logged and counted
            yield from self._refuse(Outcome.BAD_REQUEST, ErrorCode.REQUEST_VALIDATION_FAILED)
            return True
        if request:
            return False  # mitmproxy's check of a request (validate_request) has just been made
        return (yield from super().check_invalid(request))

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
        yield from self._refuse(outcome, ErrorCode.REQUEST_TOO_LARGE)
        return True

    def _refuse(self, outcome: Outcome, code: ErrorCode) -> layer.CommandGenerator[None]:
        """Answer before the request is complete (no upstream connection); the client connection closes."""
        record_outcome(self.flow, outcome)
        self.flow.error = mitmproxy_flow.Error(outcome.code)
        yield HttpErrorHook(self.flow)
        yield SendHttp(OutcomeError(self.stream_id, outcome, code), self.context.client)
        self.client_state = self.state_errored
        self.flow.live = False

    def _upstream_timed_out(self) -> layer.CommandGenerator[None]:
        record_outcome(self.flow, Outcome.UPSTREAM_TIMEOUT)
        yield commands.CloseConnection(self.context.server)  # it may still answer later: never reuse it
        yield from self.handle_protocol_error(
            OutcomeError(self.stream_id, Outcome.UPSTREAM_TIMEOUT, ErrorCode.GENERIC_SERVER_ERROR)
        )
        self.client_state = self.state_errored  # the close of the upstream connection must not answer again

    def handle_protocol_error(
        self, event: RequestProtocolError | ResponseProtocolError
    ) -> layer.CommandGenerator[None]:
        if OUTCOME not in self.flow.metadata:
            outcome: Outcome | None = None
            if isinstance(event, ResponseProtocolError):
                outcome = outcome_for_error(event)
            elif event.code is not ErrorCode.CLIENT_DISCONNECTED:
                outcome = getattr(event, "outcome", None) or Outcome.BAD_REQUEST
            if outcome is not None:
                record_outcome(self.flow, outcome)
        yield from super().handle_protocol_error(event)


class GuardedHttpLayer(HttpLayer):
    """mitmproxy's HttpLayer with sigwarden's HTTP/1 server and streams, and `upstream_connect_timeout`."""

    def __init__(self, context: Context, mode: HTTPMode, policy: Policy):
        super().__init__(context, mode)
        self.policy = policy
        self.limits = policy.limits()
        self._connect_timers: dict[commands.RequestWakeup, connection.Connection] = {}
        self.busy: dict[object, int] = {}  # connection → its layer's events under way (nested ones count)

    def _handle_event(self, event: events.Event) -> layer.CommandGenerator[None]:
        if isinstance(event, events.Wakeup) and event.command in self._connect_timers:
            server = self._connect_timers.pop(event.command)
            if server in self.waiting_for_establishment:
                # Closing it cancels the connect (or the TLS handshake): its streams fail with CONNECT_FAILED (502).
                yield commands.Log("upstream connect timed out", logging.DEBUG)
                yield commands.CloseConnection(server)
            return
        if isinstance(event, events.Start) and not self.context.client.alpn:
            self.connections[self.context.client] = GuardedHttp1Server(self.context.fork(), self.policy)
        yield from super()._handle_event(event)

    def event_to_child(self, child: layer.Layer | HttpStream, event: events.Event) -> layer.CommandGenerator[None]:
        if isinstance(child, HttpStream):
            yield from super().event_to_child(child, event)
            return
        # A connection layer in the middle of an event must not be called again from within it:
        # streams consult `busy` before running a hook inline (GuardedHttpStream._handle_event).
        conn = getattr(child, "conn", child)  # HTTP connection layers hold their connection
        self.busy[conn] = self.busy.get(conn, 0) + 1
        try:
            yield from super().event_to_child(child, event)
        finally:
            self.busy[conn] -= 1
            if not self.busy[conn]:
                del self.busy[conn]

    def make_stream(self, stream_id: int) -> layer.CommandGenerator[None]:
        stream = GuardedHttpStream(self.context.fork(), stream_id, self.policy)
        stream.http_layer = self
        self.streams[stream_id] = stream
        yield from self.event_to_child(stream, events.Start())

    def get_connection(self, event: GetHttpConnection, *, reuse: bool = True) -> layer.CommandGenerator[None]:
        yield from super().get_connection(event, reuse=reuse)
        timed = set(self._connect_timers.values())
        for server, waiting in self.waiting_for_establishment.items():
            if server not in timed and any(command is event for command in waiting):
                timer = commands.RequestWakeup(self.limits.upstream_connect_timeout)
                self._connect_timers[timer] = server
                yield timer


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


class ConnectionCap:
    """`limits.max_connections`: clients beyond it are closed at once, before a byte is read (SPEC §7)."""

    def __init__(self, policy: Policy):
        self.policy = policy
        self.clients: set[str] = set()

    def client_connected(self, client: connection.Client) -> None:
        if len(self.clients) >= self.policy.limits().max_connections:
            client.error = Outcome.TOO_MANY_CONNECTIONS.code  # mitmproxy closes the connection
            self.policy.connection_refused(Outcome.TOO_MANY_CONNECTIONS, _peer(client))
            return
        self.clients.add(client.id)

    def client_disconnected(self, client: connection.Client) -> None:
        self.clients.discard(client.id)


class NextLayer:
    """The lean master's layer installer, named like mitmproxy's (proxyserver looks for `nextlayer`)."""

    def __init__(self, policy: Policy):
        self.policy = policy

    def next_layer(self, nextlayer: layer.NextLayer) -> None:
        if nextlayer.layer is None:
            nextlayer.layer = reverse_proxy_layer(nextlayer.context, self.policy)
