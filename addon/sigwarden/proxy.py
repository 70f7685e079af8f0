"""`sigwarden run`: a lean mitmproxy master with only the addons a sidecar needs (SPEC §7), and its lifecycle.

Start: admin listener (readiness 503), proxy listener, then ready.
SIGTERM: readiness 503 at once; keep accepting for `drain_delay`; close the
listener; let requests in flight finish for up to `shutdown_grace`; exit 0.
Plain mitmdump drops requests in flight instead.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import ssl
import tempfile
import time

from mitmproxy import http, master, options
from mitmproxy.addons import core, proxyserver, tlsconfig

from . import layers
from .addon import Sigwarden
from .config import Config, UpstreamTLS
from .dispatch import HookDispatcher
from .logs import configure_logging, log_event
from .reload import Baseline, ConfigSource

_DRAIN_POLL = 0.05


def upstream_trust(tls: UpstreamTLS) -> dict[str, str | None]:
    """The CAs that verify an https upstream: `ca_file`, else the system's (`SSL_CERT_FILE` and
    `SSL_CERT_DIR` honoured), else mitmproxy's default (certifi's bundle)."""
    if tls.ca_file:
        return {"ssl_verify_upstream_trusted_ca": tls.ca_file, "ssl_verify_upstream_trusted_confdir": None}
    system = ssl.get_default_verify_paths()
    if system.cafile:
        return {"ssl_verify_upstream_trusted_ca": system.cafile, "ssl_verify_upstream_trusted_confdir": None}
    if system.capath and os.path.isdir(system.capath):
        return {"ssl_verify_upstream_trusted_ca": None, "ssl_verify_upstream_trusted_confdir": system.capath}
    return {"ssl_verify_upstream_trusted_ca": None, "ssl_verify_upstream_trusted_confdir": None}


def proxy_options(config: Config, confdir: str) -> dict[str, object]:
    """mitmproxy options for a sidecar in front of `config.upstream`."""
    host, port = config.listen
    return {
        "mode": [f"reverse:{config.upstream}@{host}:{port}"],
        "connection_strategy": "lazy",  # refused requests open no upstream connection
        "keep_host_header": True,
        "confdir": confdir,  # mitmproxy writes its CA here: keep it off a read-only root
        "ssl_insecure": not config.upstream_tls.verify,
        **upstream_trust(config.upstream_tls),
        # mitmproxy's inactivity watchdog closes connections that never send a byte; once one does,
        # sigwarden's layers time it (and keep the watchdog off while they do, see layers.py).
        "tcp_timeout": layers.watchdog_timeout(config.limits),
        "http2": False,  # the listener speaks HTTP/1.1; upstreams get HTTP/1.1 too
        "rawtcp": False,  # no raw tunnel after a 101 that is not WebSocket (the addon answers 502 for it)
        "server_replay_kill_extra": False,
    }


def _no_type_check(self: http.MessageData) -> None:
    pass


def skip_debug_type_checks() -> None:
    """Skip the type check of every field of each Request and Response mitmproxy builds.

    mitmproxy runs it only when Python runs without -O (`MessageData.__post_init__`, under
    `if __debug__`); it checks mitmproxy's own programming, not the traffic, and costs about 12 % of
    the proxy's CPU per request. The running proxy skips it as `python -O` would; tests keep it.
    """
    if "__post_init__" in vars(http.MessageData):
        http.MessageData.__post_init__ = _no_type_check  # type: ignore[method-assign]


class SigwardenMaster(master.Master):
    def __init__(self, config: Config, addon: Sigwarden):
        super().__init__(options.Options(), with_termlog=False)
        # Each hook only to the addons that implement it (dispatch.py): about 13 % of the CPU per request.
        self.options.changed.disconnect(self.addons._configure_all)
        self.addons = HookDispatcher(self)
        self.sigwarden = addon
        addon.owns_options = True  # reloads may retune mitmproxy's options (they are ours here)
        addon.run_hook_inline = self.addons.run_inline
        self.confdir = tempfile.TemporaryDirectory(prefix="sigwarden-")
        self.addons.add(
            core.Core(),
            proxyserver.Proxyserver(),
            layers.NextLayer(addon),
            layers.ConnectionCap(addon),
            tlsconfig.TlsConfig(),
            addon,
        )
        wanted = proxy_options(config, self.confdir.name)
        self.options.update(**{key: value for key, value in wanted.items() if key in self.options})


def _address(address: tuple[str, int]) -> str:
    return f"{address[0]}:{address[1]}"


async def drain(addon: Sigwarden, servers: proxyserver.Servers, config: Config) -> None:
    """Stop taking work without dropping any: the order of SPEC §5."""
    addon.state = "draining"
    log_event("draining", drain_delay=config.drain_delay, shutdown_grace=config.shutdown_grace)
    await asyncio.sleep(config.drain_delay)
    await servers.update([])  # closes the listener; connections already open carry on
    deadline = time.monotonic() + config.shutdown_grace
    while addon.in_flight > 0 and time.monotonic() < deadline:
        await asyncio.sleep(_DRAIN_POLL)
    if addon.in_flight > 0:
        log_event("shutdown_grace_exceeded", logging.WARNING, in_flight=addon.in_flight)


async def serve(config: Config, source: ConfigSource | None = None, baseline: Baseline | None = None) -> int:
    """Run until SIGTERM or SIGINT; 0 after a clean shutdown, 1 when a listener cannot start."""
    configure_logging(config.log_format, config.log_level)
    skip_debug_type_checks()
    addon = Sigwarden(source=source, baseline=baseline)
    addon.install(config)
    addon.start_reloader()  # from the first moment: SIGHUP must never kill a starting process
    proxy_master = SigwardenMaster(config, addon)
    servers = proxy_master.addons.get("proxyserver")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals_seen: list[int] = []

    def on_signal(signum: int) -> None:
        signals_seen.append(signum)
        if len(signals_seen) > 1:
            log_event("stopping_now", logging.WARNING, signal=signal.Signals(signum).name)
            raise SystemExit(0)  # a second signal: no more patience
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        await addon.start_admin()
    except OSError as error:
        log_event("listen_failed", logging.ERROR, listener="admin", listen=_address(config.admin_listen or ("", 0)),
                  reason=str(error))  # fmt: skip
        await addon.done()
        return 1
    if not await servers.setup_servers():
        problems = [str(server.last_exception) for server in servers.servers if server.last_exception]
        log_event("listen_failed", logging.ERROR, listener="proxy", listen=_address(config.listen),
                  reason="; ".join(problems))  # fmt: skip
        await addon.done()
        return 1
    await proxy_master.running()
    log_event("started", listen=_address(config.listen), upstream=config.upstream,
              routes=[route.name for route in config.routes])  # fmt: skip
    try:
        await stop.wait()
        current = addon.runtime.config if addon.runtime else config
        await drain(addon, servers.servers, current)
    finally:
        await proxy_master.done()
        proxy_master.confdir.cleanup()
    log_event("stopped")
    return 0
