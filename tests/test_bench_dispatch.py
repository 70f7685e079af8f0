"""The lean master's hook dispatcher behaves like mitmproxy's AddonManager, only faster."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

import pytest
from mitmproxy import addonmanager, exceptions, hooks, master, options
from mitmproxy.proxy.layers.http import HttpRequestHook, HttpResponseHook
from mitmproxy.test import tflow

from sigwarden.dispatch import HookDispatcher


class Recorder:
    def __init__(self, name: str, calls: list, children: list | None = None):
        self.name, self.calls = name, calls
        if children is not None:
            self.addons = children

    def request(self, flow) -> None:
        self.calls.append((self.name, "request", flow.id))


class AsyncRecorder(Recorder):
    async def response(self, flow) -> None:
        await asyncio.sleep(0)
        self.calls.append((self.name, "response", flow.id))


class Failing(Recorder):
    def request(self, flow) -> None:
        self.calls.append((self.name, "request", flow.id))
        raise ValueError("boom")


class Halting(Recorder):
    def response(self, flow) -> None:
        self.calls.append((self.name, "response", flow.id))
        raise exceptions.AddonHalt()


class Updating(Recorder):
    def update(self, flows) -> None:
        self.calls.append((self.name, "update", tuple(flow.id for flow in flows)))


@contextlib.contextmanager
def a_master(manager_type: type = HookDispatcher) -> Iterator[master.Master]:
    """A mitmproxy master (inside a running loop) with the given addon manager."""
    proxy_master = master.Master(options.Options())
    if manager_type is not addonmanager.AddonManager:
        proxy_master.options.changed.disconnect(proxy_master.addons._configure_all)
        proxy_master.addons = manager_type(proxy_master)
    try:
        yield proxy_master
    finally:
        proxy_master._legacy_log_events.uninstall()  # its handler would outlive this event loop


def make_addons(calls: list) -> list:
    return [
        Recorder("first", calls, children=[AsyncRecorder("child", calls)]),
        Failing("failing", calls),
        Updating("updating", calls),
        Halting("halting", calls),
        AsyncRecorder("after-halt", calls),
    ]


async def run_hooks(manager_type: type, flows: list) -> list:
    calls: list = []
    with a_master(manager_type) as proxy_master:
        proxy_master.addons.add(*make_addons(calls))
        for flow in flows:
            await proxy_master.addons.handle_lifecycle(HttpRequestHook(flow))
            await proxy_master.addons.handle_lifecycle(HttpResponseHook(flow))
        await proxy_master.addons.trigger_event(hooks.RunningHook())
    return calls


def addon_errors(records: list[logging.LogRecord]) -> list[str]:
    # Only the addon manager's own records: an earlier test may have routed mitmproxy's log through sigwarden's.
    return [record.getMessage() for record in records if record.name == "mitmproxy.addonmanager"]


def test_same_calls_in_the_same_order_as_mitmproxy(caplog):
    flows = [tflow.tflow(resp=True) for _ in range(3)]
    with caplog.at_level(logging.ERROR, logger="mitmproxy.addonmanager"):
        expected = asyncio.run(run_hooks(addonmanager.AddonManager, flows))
        mitmproxy_errors = addon_errors(caplog.records)
        caplog.clear()
        got = asyncio.run(run_hooks(HookDispatcher, flows))
        our_errors = addon_errors(caplog.records)
    assert got == expected
    # the failing addon is logged, the ones after it still run, AddonHalt stops the rest
    assert our_errors == mitmproxy_errors == ["Addon error: boom"] * 3
    assert ("after-halt", "response", flows[0].id) not in got
    assert ("updating", "update", (flows[0].id,)) in got
    assert [name for name, hook, _ in got if hook == "request"][:3] == ["first", "child", "failing"]


def test_handlers_are_looked_up_again_after_an_addon_is_added_or_removed():
    async def scenario() -> list:
        calls: list = []
        with a_master() as proxy_master:
            first = Recorder("first", calls)
            proxy_master.addons.add(first)
            flow = tflow.tflow()
            await proxy_master.addons.handle_lifecycle(HttpRequestHook(flow))
            proxy_master.addons.add(Recorder("second", calls))
            await proxy_master.addons.handle_lifecycle(HttpRequestHook(flow))
            proxy_master.addons.remove(first)
            await proxy_master.addons.handle_lifecycle(HttpRequestHook(flow))
        return [name for name, _, _ in calls]

    assert asyncio.run(scenario()) == ["first", "first", "second", "second"]


def test_no_update_hook_when_no_addon_implements_it():
    async def scenario() -> HookDispatcher:
        with a_master() as proxy_master:
            proxy_master.addons.add(Recorder("only", []))
            await proxy_master.addons.handle_lifecycle(HttpRequestHook(tflow.tflow()))
            return proxy_master.addons

    manager = asyncio.run(scenario())
    assert manager.handlers("update") == []
    assert len(manager.handlers("request")) == 1


def test_a_hook_attribute_that_is_not_callable_is_an_error_like_in_mitmproxy():
    class Broken:
        request = 42

    async def scenario() -> None:
        with a_master() as proxy_master:
            proxy_master.addons.add(Broken())
            await proxy_master.addons.trigger_event(HttpRequestHook(tflow.tflow()))

    with pytest.raises(exceptions.AddonManagerError):
        asyncio.run(scenario())


# --- hooks run inline, where the layer yields them -------------------------------------------


def test_inline_hooks_run_the_same_chain_as_handle_lifecycle(caplog):
    flows = [tflow.tflow(resp=True) for _ in range(2)]

    async def inline() -> list:
        calls: list = []
        with a_master() as proxy_master:
            proxy_master.addons.add(*[addon for addon in make_addons(calls) if not isinstance(addon, Updating)])
            for flow in flows:
                for hook in (HttpRequestHook(flow), HttpResponseHook(flow)):
                    handled, pending = proxy_master.addons.run_inline(hook)
                    assert handled
                    if pending is not None:
                        await pending
        return calls

    async def as_hooks() -> list:
        calls: list = []
        with a_master(addonmanager.AddonManager) as proxy_master:
            proxy_master.addons.add(*[addon for addon in make_addons(calls) if not isinstance(addon, Updating)])
            for flow in flows:
                await proxy_master.addons.handle_lifecycle(HttpRequestHook(flow))
                await proxy_master.addons.handle_lifecycle(HttpResponseHook(flow))
        return calls

    with caplog.at_level(logging.ERROR, logger="mitmproxy.addonmanager"):
        assert asyncio.run(inline()) == asyncio.run(as_hooks())


def test_an_async_handler_leaves_the_rest_of_the_chain_to_await():
    async def scenario() -> tuple[list, list]:
        calls: list = []
        with a_master() as proxy_master:
            proxy_master.addons.add(AsyncRecorder("waits", calls), Recorder("after", calls))

            class Later(Recorder):
                def response(self, flow) -> None:
                    self.calls.append((self.name, "response", flow.id))

            proxy_master.addons.add(Later("later", calls))
            flow = tflow.tflow(resp=True)
            handled, pending = proxy_master.addons.run_inline(HttpResponseHook(flow))
            before = list(calls)
            assert handled and pending is not None
            await pending
        return before, calls

    before, after = asyncio.run(scenario())
    assert before == []  # nothing after the waiting handler ran early
    assert [name for name, _, _ in after] == ["waits", "later"]


def test_hooks_are_not_run_inline_when_someone_wants_update_hooks_or_it_is_no_flow_hook():
    async def scenario() -> list:
        results = []
        with a_master() as proxy_master:
            proxy_master.addons.add(Recorder("first", []))
            results.append(proxy_master.addons.run_inline(hooks.RunningHook()))
            proxy_master.addons.add(Updating("updating", []))
            results.append(proxy_master.addons.run_inline(HttpRequestHook(tflow.tflow())))
        return results

    assert asyncio.run(scenario()) == [(False, None), (False, None)]
