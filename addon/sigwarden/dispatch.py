"""Hook dispatch for the lean master: each hook goes only to the addons that implement it.

mitmproxy's AddonManager walks every addon (and its children) for every hook, with a context
manager and a coroutine per addon, and follows every flow hook with an `update` hook across all
addons again. With four flow hooks per request that is most of what the "hook dispatch" share of a
profile is. This manager keeps mitmproxy's behaviour — the order of the chain, errors logged by
`safecall`, `AddonHalt`, sync and async handlers — and looks the handlers of a hook up once; the
lookup is forgotten whenever an addon is added or removed. Only the lean master uses it.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from mitmproxy import addonmanager, exceptions, flow, hooks
from mitmproxy.proxy import commands

# The flow hooks of each request. Run where the layer yields them (`run_inline`) instead of as
# a task of their own: mitmproxy creates a task per hook, awaits it, and feeds its completion back
# through the connection's event lock, which is a good part of the per-request cost.
INLINE_HOOKS = frozenset({"requestheaders", "request", "responseheaders", "response", "error"})


@dataclass
class PendingHook(commands.StartHook):
    """The rest of an inline hook whose handler had to wait (a dedupe store): awaited as a hook of its own."""

    name = "sigwarden_pending"
    pending: Awaitable[None]


class HookDispatcher(addonmanager.AddonManager):
    def __init__(self, master: Any):
        super().__init__(master)
        self._handlers: dict[str, list[Callable[..., Any]]] = {}

    def register(self, addon: Any) -> Any:
        self._handlers.clear()
        return super().register(addon)

    def add(self, *addons: Any) -> None:
        super().add(*addons)
        self._handlers.clear()

    def remove(self, addon: Any) -> None:
        super().remove(addon)
        self._handlers.clear()

    def clear(self) -> None:
        super().clear()
        self._handlers.clear()

    def handlers(self, name: str) -> list[Callable[..., Any]]:
        """The callables for hook `name`, in chain order (children after their parent)."""
        found = self._handlers.get(name)
        if found is None:
            found = []
            for addon in addonmanager.traverse(self.chain):
                function = getattr(addon, name, None)
                if function is None or inspect.ismodule(function):
                    continue  # mitmproxy skips module imports named like a hook too
                if not callable(function):
                    raise exceptions.AddonManagerError(f"Addon handler {name} ({addon}) not callable")
                found.append(function)
            self._handlers[name] = found
        return found

    async def trigger_event(self, event: hooks.Hook) -> None:
        functions = self.handlers(event.name)
        if not functions:
            return
        args = event.args()
        for function in functions:
            try:
                with addonmanager.safecall():
                    result = function(*args)
                    if result is not None and inspect.isawaitable(result):
                        await result
            except exceptions.AddonHalt:
                return

    async def handle_lifecycle(self, event: hooks.Hook) -> None:
        if isinstance(event, PendingHook):
            await event.pending  # the rest of an inline hook: its `update` was decided then (none)
            return
        await self.trigger_event(event)
        if self.handlers("update"):
            message = event.args()[0]
            if isinstance(message, flow.Flow):
                await self.trigger_event(hooks.UpdateHook([message]))

    def run_inline(self, hook: hooks.Hook) -> tuple[bool, Awaitable[None] | None]:
        """Run a flow hook's handlers now, as `handle_lifecycle` would: (handled, what is left to await).

        Not handled (False) when the hook is not a flow hook of a request or some addon wants
        `update` hooks; then the caller yields it to mitmproxy as usual. A handler that returns an
        awaitable ends the synchronous part: the awaitable and the handlers after it are returned.
        """
        if hook.name not in INLINE_HOOKS or self.handlers("update"):
            return False, None
        functions = self.handlers(hook.name)
        args = hook.args()
        for index, function in enumerate(functions):
            try:
                with addonmanager.safecall():
                    result = function(*args)
            except exceptions.AddonHalt:
                return True, None
            if result is not None and inspect.isawaitable(result):
                return True, self._rest_of_chain(result, functions[index + 1 :], args)
        return True, None

    async def _rest_of_chain(self, result: Awaitable[Any], functions: list[Callable[..., Any]], args: list) -> None:
        try:
            with addonmanager.safecall():
                await result
            for function in functions:
                with addonmanager.safecall():
                    following = function(*args)
                    if following is not None and inspect.isawaitable(following):
                        await following
        except exceptions.AddonHalt:
            return
