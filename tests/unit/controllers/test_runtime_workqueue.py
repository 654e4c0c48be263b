"""The work queue's guarantees: deduplication, one worker per key, delays and backoff on a fake clock."""

from __future__ import annotations

import asyncio

import pytest

from controlplane.controllers.runtime import FakeClock, QueueShutDown, WorkQueue


async def test_a_key_added_twice_is_queued_once() -> None:
    q = WorkQueue()
    q.add("a")
    q.add("a")
    q.add("b")
    assert len(q) == 2
    assert await q.get() == "a"
    assert await q.get() == "b"


async def test_a_key_is_never_handed_out_twice_at_once() -> None:
    q = WorkQueue()
    q.add("a")
    key = await q.get()
    q.add("a")  # changed while being processed: dirty, not queued
    assert len(q) == 0
    getter = asyncio.ensure_future(q.get())
    await asyncio.sleep(0)
    assert not getter.done()
    q.done(key)  # ...so it comes back once the worker is done
    assert await asyncio.wait_for(getter, 1) == "a"


async def test_add_after_waits_for_the_clock() -> None:
    clock = FakeClock()
    q = WorkQueue(clock=clock)
    runner = asyncio.ensure_future(q.run_delays())
    q.add_after("a", 5)
    while clock.sleepers == 0:  # the delay loop is now asleep on the fake clock
        await asyncio.sleep(0)
    clock.advance(4.9)
    await asyncio.sleep(0)
    assert len(q) == 0
    clock.advance(0.2)
    for _ in range(5):
        await asyncio.sleep(0)
    assert len(q) == 1
    q.shutdown()
    await asyncio.wait_for(runner, 1)


def test_rate_limited_backoff_doubles_per_key_and_forget_resets() -> None:
    q = WorkQueue(clock=FakeClock(), burst=1000)
    delays = [q.when("a") for _ in range(5)]
    assert delays == pytest.approx([0.005, 0.01, 0.02, 0.04, 0.08])
    assert q.num_requeues("a") == 5
    assert q.when("b") == pytest.approx(0.005)
    q.forget("a")
    assert q.num_requeues("a") == 0
    assert q.when("a") == pytest.approx(0.005)


def test_the_global_bucket_limits_everyone_past_its_burst() -> None:
    q = WorkQueue(clock=FakeClock(), qps=10, burst=2)
    assert q.when("a") == pytest.approx(0.005)
    assert q.when("b") == pytest.approx(0.005)
    # Third key in the same instant: the bucket is empty, one token takes 1/qps.
    assert q.when("c") == pytest.approx(0.1)


async def test_shutdown_releases_waiting_workers() -> None:
    q = WorkQueue()
    getter = asyncio.ensure_future(q.get())
    await asyncio.sleep(0)
    q.shutdown()
    with pytest.raises(QueueShutDown):
        await asyncio.wait_for(getter, 1)
