"""Hot reload (SPEC §3): the config file and secret files re-read when they change, and on SIGHUP.

Kubernetes updates a mounted ConfigMap or Secret by pointing the `..data`
link at a new folder; `os.stat` follows the links, so a changed device,
inode, size or mtime of the file's path is how a swap (or an edit in place)
is noticed. Polling once a second is cheap and needs no inotify.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
from collections.abc import Mapping
from typing import Any, Protocol

from .config import DEFAULT_CONFIG_PATH, Config, ConfigError, parse_config_text, read_config_text
from .logs import log_event
from .secrets import file_stamp

POLL_INTERVAL = 0.5  # SPEC §3: at least every 2 s; a rotation shows within a second
Stamp = tuple[int, int, int, int]


@dataclasses.dataclass(frozen=True)
class ConfigSource:
    """Where the config comes from: a file, plus command-line overrides that every reload keeps."""

    path: str = DEFAULT_CONFIG_PATH
    overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def parse(self, text: str) -> Config:
        return dataclasses.replace(parse_config_text(text, self.path), **self.overrides)

    def load(self) -> Config:
        return self.parse(read_config_text(self.path))

    def load_with_baseline(self) -> tuple[Config, Baseline]:
        """The config and what a reloader compares later changes with (stat taken before the read)."""
        stamp = file_stamp(self.path)
        text = read_config_text(self.path)
        return self.parse(text), Baseline(stamp, text)


@dataclasses.dataclass(frozen=True)
class Baseline:
    """The config file as it was when the config in use was read."""

    stamp: Stamp | None
    text: str | None


class ReloadTarget(Protocol):
    """What a reload acts on: the addon."""

    def config_accepted(self, config: Config, reason: str) -> None: ...

    def config_rejected(self, error: ConfigError, reason: str) -> None: ...

    def refresh_secrets(self, force: bool = False) -> None: ...


class Reloader:
    """Polls the config file and the secrets; `reload()` is what SIGHUP does."""

    def __init__(
        self, source: ConfigSource, target: ReloadTarget, baseline: Baseline, interval: float = POLL_INTERVAL
    ) -> None:
        self.source = source
        self.target = target
        self.interval = interval
        self.stamp = baseline.stamp
        self.text = baseline.text
        self.task: asyncio.Task[None] | None = None

    def check(self) -> None:
        """One poll: reload the config if its file changed, re-read secret files that changed."""
        stamp = file_stamp(self.source.path)
        if stamp is not None and stamp != self.stamp:
            self.reload_config("file changed", stamp)
        self.target.refresh_secrets()

    def reload(self) -> None:
        """SIGHUP: the config and every secret, read again whether or not they look changed."""
        self.reload_config("SIGHUP", file_stamp(self.source.path), force=True)
        self.target.refresh_secrets(force=True)

    def reload_config(self, reason: str, stamp: Stamp | None, force: bool = False) -> None:
        self.stamp = stamp  # a refused file is not retried until it changes again
        try:
            text = read_config_text(self.source.path)
            if text == self.text and not force:
                return  # touched, or swapped for the same content
            config = self.source.parse(text)
        except ConfigError as error:
            self.target.config_rejected(error, reason)
            return
        self.text = text
        self.target.config_accepted(config, reason)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                self.check()
            except Exception as error:  # one bad poll must not end reloading for good
                log_event("reload_error", logging.ERROR, exception=type(error).__name__)

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.task = loop.create_task(self.run(), name="sigwarden reload")
        try:
            loop.add_signal_handler(signal.SIGHUP, self.reload)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no SIGHUP here
            pass

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.task = None
            try:
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            except (NotImplementedError, RuntimeError, ValueError):
                pass
