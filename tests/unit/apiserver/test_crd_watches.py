"""Custom resource watches end once their version stops being served, after delivering what was
written before (upstream tears the version's storage down when the CRD goes)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from controlplane.apiserver.crd.watches import EndableWatch, WatchTracker
from controlplane.storage.memory import MemoryStorage


@pytest.fixture
async def storage() -> AsyncIterator[MemoryStorage]:
    store = MemoryStorage()
    await store.start()
    yield store
    await store.close()


async def drain(watch: EndableWatch, timeout: float = 5) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    async with asyncio.timeout(timeout):
        async for event in watch:
            out.append((event.type, event.kv.key))
            out.extend((e.type, e.kv.key) for e in watch.ready())
    return out


async def test_an_ending_watch_delivers_what_came_before_then_ends(storage: MemoryStorage) -> None:
    start = await storage.current_revision()
    tracker = WatchTracker()
    watch = tracker.track("foos.example.com", "v1", await storage.watch("/foos/", revision=start))
    a = await storage.create("/foos/a", b"{}")
    await storage.create("/foos/b", b"{}")
    await storage.delete("/foos/a", expected_revision=a.mod_revision)
    assert tracker.end("foos.example.com", set(), await storage.current_revision()) == 1
    await storage.create("/foos/c", b"{}")  # after the end: never delivered
    events = await drain(watch)
    assert events == [("PUT", "/foos/a"), ("PUT", "/foos/b"), ("DELETE", "/foos/a")]
    await watch.close()
    assert tracker.count("foos.example.com") == 0


async def test_a_waiting_watch_ends_when_told(storage: MemoryStorage) -> None:
    tracker = WatchTracker()
    watch = tracker.track("foos.example.com", "v1", await storage.watch("/foos/", revision=0))
    waiting = asyncio.ensure_future(drain(watch))
    await asyncio.sleep(0.01)
    tracker.end("foos.example.com", set(), await storage.current_revision())
    assert await waiting == []
    await watch.close()


async def test_versions_still_served_and_other_crds_keep_their_watches(storage: MemoryStorage) -> None:
    tracker = WatchTracker()
    kept = tracker.track("foos.example.com", "v2", await storage.watch("/foos/", revision=0))
    gone = tracker.track("foos.example.com", "v1", await storage.watch("/foos/", revision=0))
    other = tracker.track("bars.example.com", "v1", await storage.watch("/bars/", revision=0))
    assert tracker.end("foos.example.com", {"v2"}, await storage.current_revision()) == 1
    assert gone.ending and not kept.ending and not other.ending
    await storage.create("/foos/x", b"{}")
    async with asyncio.timeout(5):
        assert (await kept.__anext__()).kv.key == "/foos/x"
    assert await drain(gone) == []
    for watch in (kept, gone, other):
        await watch.close()
    assert tracker.count("foos.example.com") == 0 and tracker.count("bars.example.com") == 0


async def test_a_cancelled_wait_loses_no_event(storage: MemoryStorage) -> None:
    """The watch handler cancels its wait for the next event to send bookmarks."""
    watch = EndableWatch(await storage.watch("/foos/", revision=0))
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await watch.__anext__()
    assert watch.ready() == []
    await storage.create("/foos/a", b"{}")
    await storage.create("/foos/b", b"{}")
    async with asyncio.timeout(5):
        first = await watch.__anext__()
    assert [first.kv.key, *(e.kv.key for e in watch.ready())] == ["/foos/a", "/foos/b"]
    await watch.close()
    with pytest.raises(StopAsyncIteration):
        await watch.__anext__()


async def test_closing_ends_a_waiting_reader(storage: MemoryStorage) -> None:
    """Server shutdown closes open watches from another task: the handler's read ends cleanly."""
    watch = EndableWatch(await storage.watch("/foos/", revision=0))
    reader = asyncio.ensure_future(drain(watch))
    await asyncio.sleep(0.01)
    await watch.close()
    assert await reader == []
