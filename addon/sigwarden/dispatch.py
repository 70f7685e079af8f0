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
from collections.abc import Callable
from typing import Any

from mitmproxy import addonmanager, exceptions, flow, hooks


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
        await self.trigger_event(event)
        if self.handlers("update"):
            message = event.args()[0]
            if isinstance(message, flow.Flow):
                await self.trigger_event(hooks.UpdateHook([message]))
