"""`sigwarden run`: a lean mitmproxy master with only the addons a sidecar needs (SPEC §7)."""

from __future__ import annotations

import asyncio
import logging
import signal
import tempfile

from mitmproxy import http, master, options
from mitmproxy.addons import core, proxyserver, tlsconfig

from . import layers
from .addon import Sigwarden
from .config import Config
from .dispatch import HookDispatcher
from .logs import configure_logging, log_event


def proxy_options(config: Config, confdir: str) -> dict[str, object]:
    """mitmproxy options for a sidecar in front of `config.upstream`."""
    host, port = config.listen
    return {
        "mode": [f"reverse:{config.upstream}@{host}:{port}"],
        "connection_strategy": "lazy",  # refused requests open no upstream connection
        "keep_host_header": True,
        "confdir": confdir,  # mitmproxy writes its CA here: keep it off a read-only root
        "ssl_insecure": not config.upstream_tls.verify,
        "ssl_verify_upstream_trusted_ca": config.upstream_tls.ca_file,
        "tcp_timeout": max(1, int(config.limits.idle_timeout)),
        "http2": False,  # the listener speaks HTTP/1.1; upstreams get HTTP/1.1 too
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
        self.confdir = tempfile.TemporaryDirectory(prefix="sigwarden-")
        self.addons.add(core.Core(), proxyserver.Proxyserver(), layers.NextLayer(addon), tlsconfig.TlsConfig(), addon)
        wanted = proxy_options(config, self.confdir.name)
        self.options.update(**{key: value for key, value in wanted.items() if key in self.options})


async def serve(config: Config) -> int:
    """Run until SIGTERM or SIGINT; 0 after a clean shutdown, 1 when the listener cannot start."""
    configure_logging(config.log_format, config.log_level)
    skip_debug_type_checks()
    addon = Sigwarden()
    addon.install(config)
    proxy_master = SigwardenMaster(config, addon)
    servers = proxy_master.addons.get("proxyserver")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if not await servers.setup_servers():
        problems = [str(server.last_exception) for server in servers.servers if server.last_exception]
        log_event(
            "listen_failed", logging.ERROR, listen=f"{config.listen[0]}:{config.listen[1]}", reason="; ".join(problems)
        )
        return 1
    await proxy_master.running()
    log_event(
        "started", listen=f"{config.listen[0]}:{config.listen[1]}", routes=[route.name for route in config.routes]
    )
    try:
        await stop.wait()
        log_event("stopping")
        await servers.servers.update([])
    finally:
        await proxy_master.done()
        proxy_master.confdir.cleanup()
    log_event("stopped")
    return 0
