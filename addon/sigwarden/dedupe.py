"""The dedupe stores (SPEC §6): which verified deliveries the upstream already accepted.

A delivery is first *claimed* (in flight: an identical one arriving meanwhile
waits for its result), then *settled*: remembered for the route's window when
the upstream answered 2xx, released otherwise so that a retry gets through.

- `MemoryStore`: this process only; at most `max_entries` accepted deliveries,
  least recently used out first; a claim is an asyncio future.
- `RedisStore`: shared by every replica; `SET key pending:<token> NX PX hold`
  claims, `SET key accepted PX window` remembers, a compare-and-delete releases.
  Every call is bounded by a short timeout. A store fault never refuses a
  delivery: it is forwarded unguarded (duplicates are the lesser evil), and the
  fault counted (`errors`, `on_error`) and logged.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from .logs import log_event

ErrorCallback = Callable[[str], None]
"""Called with the operation (`claim`, `accept`, `release`) after each store fault, e.g. to count it."""

REDIS_TIMEOUT = 0.5  # seconds, for connecting and for each command
REDIS_KEY_PREFIX = "sigwarden:dedupe:"
_ACCEPTED = b"accepted"
_PENDING = b"pending:"
_POLL_FIRST, _POLL_MAX = 0.02, 0.2  # seconds between looks at another replica's claim
# Deletes the key only while it still holds this claim's marker (another claim may have replaced it).
_RELEASE_SCRIPT = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


class DedupeStoreError(Exception):
    """The store cannot be used as configured (e.g. redis:// without the redis package)."""


@dataclass
class Claim:
    """The right to forward one delivery; settle it once the upstream has answered (or failed)."""

    store: DedupeStore
    key: bytes
    window: float
    token: bytes | None  # None: unguarded (store fault or wait exhausted), settling does nothing

    async def settle(self, accepted: bool) -> None:
        """Remember the delivery for the window (`accepted`: the upstream answered 2xx) or let it go."""
        token, self.token = self.token, None
        if token is not None:
            await self.store.settle(self, token, accepted)


class DedupeStore(Protocol):
    url: str
    errors: int
    on_error: ErrorCallback | None

    async def claim(self, key: bytes, window: float, hold: float) -> Claim | None:
        """A claim to forward this delivery, or None when it was accepted within its window (a duplicate).

        An identical delivery in flight is waited for, up to `hold` seconds: None if it gets accepted,
        else this one claims. `hold` also bounds how long a claim blocks others if it is never settled.
        """
        ...

    async def settle(self, claim: Claim, token: bytes, accepted: bool) -> None: ...

    async def close(self) -> None: ...


def open_store(url: str, max_entries: int, on_error: ErrorCallback | None = None) -> DedupeStore:
    """The store for `dedupe_store` (already validated by config): `memory` or a redis:// URL."""
    if url == "memory":
        return MemoryStore(max_entries, on_error=on_error)
    return RedisStore(url, on_error=on_error)


def key_hint(key: bytes) -> str:
    """A short prefix of the key's hash for logs: enough to correlate, useless to replay."""
    return key.hex()[:12]


def redact_url(url: str) -> str:
    """The store URL without its password, for logs and summaries."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = f"[{parts.hostname}]" if parts.hostname and ":" in parts.hostname else parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class _FaultCounter:
    url: str
    errors: int
    on_error: ErrorCallback | None

    def fault(self, operation: str, key: bytes, error: BaseException) -> None:
        self.errors += 1
        reason = "timeout" if isinstance(error, TimeoutError) else type(error).__name__
        log_event(
            "dedupe_store_error",
            logging.WARNING,
            store=redact_url(self.url),
            operation=operation,
            key=key_hint(key),
            reason=reason,
            errors_total=self.errors,
        )
        if self.on_error is not None:
            try:
                self.on_error(operation)
            except Exception as callback_error:  # a broken metric must not break the delivery
                log_event("dedupe_error_callback_failed", logging.ERROR, reason=type(callback_error).__name__)


# --- memory ---------------------------------------------------------------------


@dataclass
class _Pending:
    token: bytes
    expires: float
    result: asyncio.Future[bool] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class MemoryStore(_FaultCounter):
    """Accepted deliveries of this process: bounded, least recently used out first, expiring with the window."""

    def __init__(
        self, max_entries: int, clock: Callable[[], float] = time.monotonic, on_error: ErrorCallback | None = None
    ):
        self.url = "memory"
        self.max_entries = max_entries  # may be changed on reload; the next acceptance evicts down to it
        self.clock = clock
        self.errors = 0
        self.on_error = on_error
        self._accepted: OrderedDict[bytes, float] = OrderedDict()  # key → expiry, least recently used first
        self._pending: dict[bytes, _Pending] = {}

    def __len__(self) -> int:
        return len(self._accepted)

    def remembers(self, key: bytes) -> bool:
        """Whether the delivery is remembered now (and mark it used)."""
        expires = self._accepted.get(key)
        if expires is None:
            return False
        if expires <= self.clock():
            del self._accepted[key]
            return False
        self._accepted.move_to_end(key)
        return True

    async def claim(self, key: bytes, window: float, hold: float) -> Claim | None:
        loop = asyncio.get_running_loop()
        wait_until = loop.time() + hold  # waiting runs on the loop's time; expiry on `clock`
        while True:
            if self.remembers(key):
                return None
            now = self.clock()
            pending = self._pending.get(key)
            if pending is None or pending.expires <= now:
                if pending is not None and not pending.result.done():
                    pending.result.set_result(False)  # its holder never settled: wake its waiters, take over
                token = secrets.token_bytes(8)
                self._pending[key] = _Pending(token, now + hold)
                return Claim(self, key, window, token)
            remaining = min(wait_until - loop.time(), pending.expires - now)
            if remaining <= 0:
                return Claim(self, key, window, None)  # waited long enough: forward unguarded
            try:
                if await asyncio.wait_for(asyncio.shield(pending.result), remaining):
                    return None
            except TimeoutError:
                pass  # look again: the holder's claim or our wait has run out

    async def settle(self, claim: Claim, token: bytes, accepted: bool) -> None:
        pending = self._pending.get(claim.key)
        if accepted:
            self._remember(claim.key, claim.window)
        if pending is not None and pending.token == token:
            del self._pending[claim.key]
            if not pending.result.done():
                pending.result.set_result(accepted)

    def _remember(self, key: bytes, window: float) -> None:
        now = self.clock()
        self._accepted[key] = now + window
        self._accepted.move_to_end(key)
        while self._accepted:  # expired entries at the old end go first, then the bound
            oldest_key, oldest_expiry = next(iter(self._accepted.items()))
            if oldest_expiry > now and len(self._accepted) <= self.max_entries:
                break
            del self._accepted[oldest_key]

    async def close(self) -> None:
        for pending in self._pending.values():
            if not pending.result.done():
                pending.result.set_result(False)
        self._pending.clear()
        self._accepted.clear()


# --- redis ----------------------------------------------------------------------


class RedisStore(_FaultCounter):
    """Accepted deliveries shared by every replica through Redis; keys expire with the window."""

    def __init__(self, url: str, on_error: ErrorCallback | None = None, timeout: float = REDIS_TIMEOUT):
        try:
            from redis.asyncio import Redis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff
        except ImportError:
            raise DedupeStoreError(
                "dedupe_store: a redis:// store needs the redis package: pip install 'sigwarden[redis]'"
            ) from None
        self.url = url
        self.errors = 0
        self.on_error = on_error
        self.timeout = timeout
        # No retries inside the client: one bounded attempt per call, the delivery goes on without it.
        self._client: Any = Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )
        self._release = self._client.register_script(_RELEASE_SCRIPT)

    async def _call(self, operation: str, key: bytes, command: Awaitable[Any]) -> tuple[bool, Any]:
        """(True, result) or (False, None) after a fault, which is counted and logged."""
        try:
            return True, await asyncio.wait_for(command, self.timeout)
        except Exception as error:  # any store fault: the delivery goes on unguarded
            self.fault(operation, key, error)
            return False, None

    async def claim(self, key: bytes, window: float, hold: float) -> Claim | None:
        name = REDIS_KEY_PREFIX + key.hex()
        token = secrets.token_bytes(8)
        marker = _PENDING + token.hex().encode()
        hold_ms = max(1, int(hold * 1000))
        deadline = time.monotonic() + hold
        poll = _POLL_FIRST
        while True:
            ok, claimed = await self._call("claim", key, self._client.set(name, marker, nx=True, px=hold_ms))
            if not ok:
                return Claim(self, key, window, None)
            if claimed:
                return Claim(self, key, window, marker)
            ok, current = await self._call("claim", key, self._client.get(name))
            if not ok:
                return Claim(self, key, window, None)
            if current == _ACCEPTED:
                return None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return Claim(self, key, window, None)  # waited long enough: forward unguarded
            if current is not None:
                # The same body is in flight (here or on another replica): look again until it settles.
                await asyncio.sleep(min(poll, remaining))
                poll = min(poll * 2, _POLL_MAX)

    async def settle(self, claim: Claim, token: bytes, accepted: bool) -> None:
        name = REDIS_KEY_PREFIX + claim.key.hex()
        if accepted:
            window_ms = max(1, int(claim.window * 1000))
            await self._call("accept", claim.key, self._client.set(name, _ACCEPTED, px=window_ms))
        else:
            await self._call("release", claim.key, self._release(keys=[name], args=[token]))

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self._client.aclose(), self.timeout)
        except Exception as error:  # closing a dead connection must not stop a shutdown
            log_event("dedupe_store_close_failed", logging.DEBUG, reason=type(error).__name__)
