"""The memory dedupe store: claims, the window (on a fake clock), the bound, least recently used out first."""

from __future__ import annotations

import asyncio
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sigwarden.dedupe import DedupeStoreError, MemoryStore, open_store

WINDOW = 100.0
HOLD = 5.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def run(coroutine):
    return asyncio.run(coroutine)


async def accept(store: MemoryStore, key: bytes, window: float = WINDOW) -> None:
    claim = await store.claim(key, window, HOLD)
    assert claim is not None and claim.token is not None
    await claim.settle(True)


async def is_duplicate(store: MemoryStore, key: bytes) -> bool:
    claim = await store.claim(key, WINDOW, HOLD)
    if claim is None:
        return True
    await claim.settle(False)
    return False


def test_accepted_delivery_is_a_duplicate_until_its_window_has_passed():
    clock = FakeClock()
    store = MemoryStore(10, clock=clock)

    async def scenario() -> None:
        await accept(store, b"k")
        assert await is_duplicate(store, b"k")
        clock.now += WINDOW - 0.001
        assert await is_duplicate(store, b"k")
        clock.now += 0.001
        assert not await is_duplicate(store, b"k")

    run(scenario())


def test_a_duplicate_does_not_extend_the_window():
    clock = FakeClock()
    store = MemoryStore(10, clock=clock)

    async def scenario() -> None:
        await accept(store, b"k")
        clock.now += WINDOW / 2
        assert await is_duplicate(store, b"k")
        clock.now += WINDOW / 2
        assert not await is_duplicate(store, b"k")

    run(scenario())


def test_each_route_window_applies_to_its_own_entries():
    clock = FakeClock()
    store = MemoryStore(10, clock=clock)

    async def scenario() -> None:
        await accept(store, b"short", window=1)
        await accept(store, b"long", window=WINDOW)
        clock.now += 2
        assert not await is_duplicate(store, b"short")
        assert await is_duplicate(store, b"long")

    run(scenario())


def test_released_delivery_is_not_remembered():
    store = MemoryStore(10, clock=FakeClock())

    async def scenario() -> None:
        claim = await store.claim(b"k", WINDOW, HOLD)
        assert claim is not None
        await claim.settle(False)
        assert not await is_duplicate(store, b"k")
        assert len(store) == 0

    run(scenario())


def test_settling_twice_changes_nothing():
    store = MemoryStore(10, clock=FakeClock())

    async def scenario() -> None:
        claim = await store.claim(b"k", WINDOW, HOLD)
        assert claim is not None
        await claim.settle(False)
        await claim.settle(True)  # already settled: no effect
        assert not await is_duplicate(store, b"k")

    run(scenario())


def test_bound_drops_the_least_recently_used_first():
    store = MemoryStore(3, clock=FakeClock())

    async def scenario() -> None:
        for key in (b"a", b"b", b"c"):
            await accept(store, key)
        assert await is_duplicate(store, b"a")  # a is now the most recently used
        await accept(store, b"d")  # over the bound: b goes
        assert len(store) == 3
        assert [await is_duplicate(store, key) for key in (b"a", b"c", b"d")] == [True, True, True]
        assert not await is_duplicate(store, b"b")

    run(scenario())


def test_expired_entries_at_the_old_end_are_dropped_on_acceptance():
    clock = FakeClock()
    store = MemoryStore(100, clock=clock)

    async def scenario() -> None:
        for key in (b"a", b"b", b"c"):
            await accept(store, key)
        clock.now += WINDOW
        await accept(store, b"d")
        assert len(store) == 1

    run(scenario())


def test_lowering_the_bound_takes_effect_at_the_next_acceptance():
    store = MemoryStore(10, clock=FakeClock())

    async def scenario() -> None:
        for index in range(10):
            await accept(store, bytes([index]))
        store.max_entries = 4  # what a reload with a smaller dedupe_max_entries does
        await accept(store, b"new")
        assert len(store) == 4
        assert await is_duplicate(store, b"new")
        assert not await is_duplicate(store, bytes([0]))

    run(scenario())


def test_identical_delivery_in_flight_waits_and_is_a_duplicate_once_the_first_is_accepted():
    store = MemoryStore(10)

    async def scenario() -> None:
        first = await store.claim(b"k", WINDOW, HOLD)
        assert first is not None
        second = asyncio.create_task(store.claim(b"k", WINDOW, HOLD))
        await asyncio.sleep(0.01)
        assert not second.done()  # waiting for the first
        await first.settle(True)
        assert await asyncio.wait_for(second, 1) is None

    run(scenario())


def test_identical_delivery_in_flight_claims_when_the_first_fails():
    store = MemoryStore(10)

    async def scenario() -> None:
        first = await store.claim(b"k", WINDOW, HOLD)
        assert first is not None
        waiting = [asyncio.create_task(store.claim(b"k", WINDOW, HOLD)) for _ in range(3)]
        await asyncio.sleep(0.01)
        await first.settle(False)
        await asyncio.sleep(0.01)
        done = [task for task in waiting if task.done()]
        [claimed] = done  # one of them takes over; the others wait for it
        retry = claimed.result()
        assert retry is not None and retry.token is not None
        await retry.settle(True)
        assert [await asyncio.wait_for(task, 1) for task in waiting if task is not claimed] == [None, None]

    run(scenario())


def test_a_claim_never_settled_blocks_others_for_hold_at_most():
    store = MemoryStore(10)

    async def scenario() -> None:
        stuck = await store.claim(b"k", WINDOW, 0.2)
        assert stuck is not None
        started = time.monotonic()
        taken_over = await store.claim(b"k", WINDOW, 0.2)
        waited = time.monotonic() - started
        assert taken_over is not None and taken_over.token is not None
        assert 0.15 <= waited < 2.0
        # The stuck holder's late failure must not release the new claim...
        await stuck.settle(False)
        third = asyncio.create_task(store.claim(b"k", WINDOW, 5))
        await asyncio.sleep(0.01)
        assert not third.done()
        # ...and the new holder's acceptance settles it for everyone.
        await taken_over.settle(True)
        assert await asyncio.wait_for(third, 1) is None

    run(scenario())


def test_a_late_acceptance_of_a_taken_over_claim_is_still_remembered():
    store = MemoryStore(10)

    async def scenario() -> None:
        stuck = await store.claim(b"k", WINDOW, 0.05)
        assert stuck is not None
        taken_over = await store.claim(b"k", WINDOW, 0.05)
        assert taken_over is not None
        await stuck.settle(True)  # the upstream did accept it, late
        await taken_over.settle(False)
        assert await is_duplicate(store, b"k")

    run(scenario())


def test_close_wakes_waiters_and_forgets_everything():
    store = MemoryStore(10)

    async def scenario() -> None:
        await accept(store, b"old")
        first = await store.claim(b"k", WINDOW, HOLD)
        assert first is not None
        second = asyncio.create_task(store.claim(b"k", WINDOW, HOLD))
        await asyncio.sleep(0.01)
        await store.close()
        claim = await asyncio.wait_for(second, 1)
        assert claim is not None
        assert len(store) == 0

    run(scenario())


def test_open_store_makes_a_memory_store():
    store = open_store("memory", 7)
    assert isinstance(store, MemoryStore) and store.max_entries == 7 and store.errors == 0


def test_open_store_without_the_redis_package_says_how_to_install_it(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "redis", None)
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    with pytest.raises(DedupeStoreError, match=r"pip install 'sigwarden\[redis\]'"):
        open_store("redis://127.0.0.1:6379/0", 10)


operations = st.lists(
    st.one_of(
        st.tuples(st.just("accept"), st.integers(0, 7)),
        st.tuples(st.just("look"), st.integers(0, 7)),
        st.tuples(st.just("tick"), st.floats(0, WINDOW / 2)),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(operations, st.integers(1, 5))
def test_invariants_hold_for_any_sequence(ops, bound):
    """Never more than the bound; never a duplicate that was not accepted within its window."""
    clock = FakeClock()
    store = MemoryStore(bound, clock=clock)
    accepted_at: dict[int, float] = {}

    async def scenario() -> None:
        for op, value in ops:
            if op == "tick":
                clock.now += value
            elif op == "accept":
                claim = await store.claim(bytes([value]), WINDOW, HOLD)
                if claim is not None:
                    await claim.settle(True)
                    accepted_at[value] = clock.now
                    assert await is_duplicate(store, bytes([value]))  # just accepted: remembered
            else:
                duplicate = await is_duplicate(store, bytes([value]))
                if duplicate:
                    assert value in accepted_at and clock.now - accepted_at[value] < WINDOW
            assert len(store) <= bound

    run(scenario())
