"""The storage contract: every backend passes these tests unchanged."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from controlplane.storage import FutureRevision, WatchOverflow
from controlplane.storage.errors import Compacted, KeyExists, KeyNotFound, RevisionConflict, Unavailable
from controlplane.storage.interface import Event, Storage, Trigger, Watch
from tests.unit.storage.backends import FACTORIES, make, take

P = "/registry/pods/"


@pytest.fixture(params=sorted(FACTORIES))
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def storage(backend: str, tmp_path: Path) -> AsyncIterator[Storage]:
    store = make(backend, tmp_path)
    await store.start()
    yield store
    await store.close()


async def test_create_get_and_exists(storage: Storage) -> None:
    kv = await storage.create(P + "a", b"one")
    assert (kv.key, kv.value, kv.mod_revision, kv.create_revision) == (P + "a", b"one", 1, 1)
    assert await storage.get(P + "a") == kv
    assert await storage.get(P + "missing") is None
    with pytest.raises(KeyExists) as info:
        await storage.create(P + "a", b"two")
    assert info.value.key == P + "a"
    assert (await storage.get(P + "a")) == kv
    assert await storage.current_revision() == 1


async def test_update_with_right_and_wrong_expected_revision(storage: Storage) -> None:
    created = await storage.create(P + "a", b"v1")
    updated = await storage.update(P + "a", b"v2", expected_revision=created.mod_revision)
    assert (updated.value, updated.mod_revision, updated.create_revision) == (b"v2", 2, 1)
    with pytest.raises(RevisionConflict) as info:
        await storage.update(P + "a", b"v3", expected_revision=created.mod_revision)
    assert info.value.expected == 1
    assert info.value.current == updated
    with pytest.raises(KeyNotFound):
        await storage.update(P + "missing", b"x", expected_revision=1)
    assert await storage.get(P + "a") == updated
    assert await storage.current_revision() == 2


async def test_delete_conditional_and_unconditional(storage: Storage) -> None:
    a = await storage.create(P + "a", b"a1")
    await storage.create(P + "b", b"b1")
    with pytest.raises(RevisionConflict) as info:
        await storage.delete(P + "a", expected_revision=a.mod_revision + 5)
    assert info.value.current == a
    tomb = await storage.delete(P + "a", expected_revision=a.mod_revision)
    assert (tomb.key, tomb.value, tomb.mod_revision, tomb.create_revision) == (P + "a", b"a1", 3, 1)
    assert await storage.get(P + "a") is None
    tomb_b = await storage.delete(P + "b")
    assert (tomb_b.value, tomb_b.mod_revision) == (b"b1", 4)
    with pytest.raises(KeyNotFound):
        await storage.delete(P + "b")
    with pytest.raises(KeyNotFound):
        await storage.update(P + "b", b"x", expected_revision=2)


async def test_recreate_after_delete_starts_a_new_life(storage: Storage) -> None:
    await storage.create(P + "a", b"first")
    await storage.delete(P + "a")
    again = await storage.create(P + "a", b"second")
    assert (again.mod_revision, again.create_revision) == (3, 3)
    assert await storage.get(P + "a", revision=1) is not None
    assert await storage.get(P + "a", revision=2) is None


async def test_revisions_increase_by_one_per_write_and_failures_take_none(storage: Storage) -> None:
    seen = [
        (await storage.create(P + "a", b"1")).mod_revision,
        (await storage.create(P + "b", b"1")).mod_revision,
    ]
    with pytest.raises(KeyExists):
        await storage.create(P + "a", b"again")
    seen.append((await storage.update(P + "a", b"2", expected_revision=1)).mod_revision)
    with pytest.raises(RevisionConflict):
        await storage.update(P + "a", b"3", expected_revision=1)
    seen.append((await storage.delete(P + "b")).mod_revision)
    seen.append((await storage.create(P + "c", b"1")).mod_revision)
    assert seen == [1, 2, 3, 4, 5]
    assert await storage.current_revision() == 5


async def test_get_at_revision(storage: Storage) -> None:
    await storage.create(P + "a", b"v1")
    await storage.update(P + "a", b"v2", expected_revision=1)
    await storage.delete(P + "a")
    v1 = await storage.get(P + "a", revision=1)
    v2 = await storage.get(P + "a", revision=2)
    assert v1 is not None and (v1.value, v1.mod_revision) == (b"v1", 1)
    assert v2 is not None and (v2.value, v2.mod_revision) == (b"v2", 2)
    assert await storage.get(P + "a", revision=3) is None
    assert await storage.get(P + "a", revision=0) is None
    with pytest.raises(FutureRevision):
        await storage.get(P + "a", revision=4)


async def test_list_at_latest_and_at_an_older_revision(storage: Storage) -> None:
    await storage.create(P + "ns1/b", b"b1")  # 1
    await storage.create(P + "ns1/a", b"a1")  # 2
    await storage.create(P + "ns2/c", b"c1")  # 3
    await storage.create("/registry/services/ns1/s", b"s")  # 4
    await storage.update(P + "ns1/a", b"a2", expected_revision=2)  # 5
    await storage.delete(P + "ns1/b")  # 6

    latest = await storage.list(P)
    assert [(kv.key, kv.value) for kv in latest.items] == [(P + "ns1/a", b"a2"), (P + "ns2/c", b"c1")]
    assert (latest.revision, latest.more, latest.remaining) == (6, False, 0)

    ns1 = await storage.list(P + "ns1/")
    assert [kv.key for kv in ns1.items] == [P + "ns1/a"]

    old = await storage.list(P, revision=4)
    assert [(kv.key, kv.value, kv.mod_revision) for kv in old.items] == [
        (P + "ns1/a", b"a1", 2),
        (P + "ns1/b", b"b1", 1),
        (P + "ns2/c", b"c1", 3),
    ]
    assert old.revision == 4
    assert (await storage.list(P, revision=0)).items == []
    everything = await storage.list("")
    assert len(everything.items) == 3
    with pytest.raises(FutureRevision):
        await storage.list(P, revision=7)


@pytest.mark.parametrize("revision", [None, 12])
async def test_list_pagination(storage: Storage, revision: int | None) -> None:
    for i in range(10):
        await storage.create(f"{P}k{i:02d}", str(i).encode())
    await storage.create("/registry/other/x", b"x")
    await storage.delete(P + "k03")  # 12
    await storage.create(P + "k10", b"10")  # 13: invisible at revision 12

    first = await storage.list(P, revision=revision, limit=4)
    assert [kv.key[-3:] for kv in first.items] == ["k00", "k01", "k02", "k04"]
    assert first.more
    expected_total = 9 if revision == 12 else 10
    assert first.remaining == expected_total - 4

    keys = [kv.key for kv in first.items]
    page = first
    while page.more:
        page = await storage.list(P, revision=page.revision, limit=4, start_after=page.items[-1].key)
        keys += [kv.key for kv in page.items]
    assert len(keys) == expected_total == len(set(keys))
    assert keys == sorted(keys)
    assert page.remaining == 0

    exact = await storage.list(P, revision=revision, limit=expected_total)
    assert (exact.more, exact.remaining, len(exact.items)) == (False, 0, expected_total)
    after = await storage.list(P, revision=revision, start_after=P + "k05")
    expected_after = ["k06", "k07", "k08", "k09"] + ([] if revision == 12 else ["k10"])
    assert [kv.key[-3:] for kv in after.items] == expected_after


async def test_watch_replays_from_a_past_revision_then_tails(storage: Storage) -> None:
    await storage.create(P + "a", b"1")  # 1
    await storage.create(P + "b", b"1")  # 2
    await storage.update(P + "a", b"2", expected_revision=1)  # 3
    watch = await storage.watch(P, revision=1)
    replayed = await take(watch, 2)
    assert [(e.type, e.kv.key, e.revision) for e in replayed] == [("PUT", P + "b", 2), ("PUT", P + "a", 3)]
    assert replayed[0].is_create
    assert replayed[1].prev is not None and (replayed[1].prev.value, replayed[1].prev.mod_revision) == (
        b"1",
        1,
    )

    await storage.delete(P + "b")  # 4
    await storage.create(P + "c", b"1")  # 5
    live = await take(watch, 2)
    assert [(e.type, e.kv.key, e.revision) for e in live] == [("DELETE", P + "b", 4), ("PUT", P + "c", 5)]
    await watch.close()


async def test_watch_from_zero_on_an_empty_store(storage: Storage) -> None:
    watch = await storage.watch("", revision=0)
    await storage.create(P + "a", b"1")
    [event] = await take(watch, 1)
    assert (event.type, event.revision, event.kv.value, event.prev) == ("PUT", 1, b"1", None)
    await watch.close()


async def test_ready_hands_over_queued_events_in_order_without_waiting(storage: Storage) -> None:
    watch = await storage.watch(P, revision=0)
    assert watch.ready() == []  # nothing yet, and it does not block
    for name in ("a", "b", "c"):
        await storage.create(P + name, b"1")
    [first] = await take(watch, 1)
    rest = watch.ready()
    while len(rest) < 2:  # live events may arrive in more than one publication
        rest += await take(watch, 1)
    assert [e.revision for e in [first, *rest]] == [1, 2, 3]
    assert watch.ready() == []
    await watch.close()


async def test_watch_filters_by_prefix(storage: Storage) -> None:
    pods = await storage.watch(P + "ns1/", revision=0)
    everything = await storage.watch("/registry/", revision=0)
    await storage.create(P + "ns1/a", b"1")
    await storage.create(P + "ns2/a", b"1")
    await storage.create("/registry/services/ns1/a", b"1")
    await storage.create(P + "ns1/b", b"1")
    assert [e.kv.key for e in await take(pods, 2)] == [P + "ns1/a", P + "ns1/b"]
    assert [e.revision for e in await take(everything, 4)] == [1, 2, 3, 4]
    # a replaying watch filters history the same way
    late = await storage.watch(P + "ns2/", revision=0)
    await storage.create(P + "ns2/b", b"1")
    assert [(e.kv.key, e.revision) for e in await take(late, 2)] == [(P + "ns2/a", 2), (P + "ns2/b", 5)]
    for w in (pods, everything, late):
        await w.close()


async def test_delete_event_carries_the_last_value_and_put_its_prev(storage: Storage) -> None:
    watch = await storage.watch(P, revision=0)
    await storage.create(P + "a", b"v1")
    await storage.update(P + "a", b"v2", expected_revision=1)
    await storage.delete(P + "a")
    create, update, delete = await take(watch, 3)
    assert create.prev is None and create.is_create
    assert update.prev is not None and (update.prev.value, update.prev.mod_revision) == (b"v1", 1)
    assert not update.is_create and (update.kv.value, update.kv.create_revision) == (b"v2", 1)
    assert delete.type == "DELETE"
    assert (delete.kv.value, delete.kv.mod_revision, delete.kv.create_revision) == (b"v2", 3, 1)
    assert delete.prev is not None and (delete.prev.value, delete.prev.mod_revision) == (b"v2", 2)
    # the same shapes come back when replayed from history
    replayed = await storage.watch(P, revision=0)
    assert await take(replayed, 3) == [create, update, delete]
    await watch.close()
    await replayed.close()


async def test_watch_handoff_from_history_to_live_has_no_gap_or_duplicate(storage: Storage) -> None:
    for i in range(50):
        await storage.create(f"{P}pre{i}", b"x")

    async def writer() -> None:
        for i in range(150):
            await storage.create(f"{P}live{i}", b"x")

    task = asyncio.create_task(writer())
    watches = []
    for start in (0, 10, 49):
        watches.append((start, await storage.watch(P, revision=start)))
        await asyncio.sleep(0)  # let writes interleave with the subscriptions
    await task
    for start, watch in watches:
        events = await take(watch, 200 - start)
        assert [e.revision for e in events] == list(range(start + 1, 201))
        await watch.close()


async def test_closing_a_watch_ends_iteration(storage: Storage) -> None:
    watch = await storage.watch(P, revision=0)
    await storage.create(P + "a", b"1")
    assert [e.revision for e in await take(watch, 1)] == [1]

    async def drain() -> list[int]:
        return [event.revision async for event in watch]

    task = asyncio.create_task(drain())
    await asyncio.sleep(0)  # the drain is now waiting for the next event
    await watch.close()
    async with asyncio.timeout(5):
        assert await task == []
    await storage.create(P + "b", b"1")  # publishing to a closed watch is harmless


async def test_storage_close_ends_every_watch_and_refuses_work(backend: str, tmp_path: Path) -> None:
    store = make(backend, tmp_path)
    await store.start()
    watches = [await store.watch("", revision=0) for _ in range(3)]
    await store.create(P + "a", b"1")
    for w in watches:
        assert [e.revision for e in await take(w, 1)] == [1]
    await store.close()
    for w in watches:
        async with asyncio.timeout(5):
            assert [e async for e in w] == []
    with pytest.raises(Unavailable):
        await store.create(P + "b", b"1")
    with pytest.raises(Unavailable):
        await store.get(P + "a")


async def test_a_watcher_that_falls_behind_is_dropped(
    backend: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = make(backend, tmp_path, watch_queue_limit=5)
    await store.start()
    try:
        slow = await store.watch(P, revision=0)
        for i in range(10):
            await store.create(f"{P}{i}", b"x")
        with pytest.raises(WatchOverflow) as info:
            await take(slow, 10)
        assert isinstance(info.value, Compacted)  # the API server answers it as 410 Expired
        assert any("fell 5 events behind" in r.getMessage() for r in caplog.records)  # operators see it
        # the writer went on and a fresh watch from the last revision it saw works
        fresh = await store.watch(P, revision=0)
        assert len(await take(fresh, 10)) == 10
        await fresh.close()
    finally:
        await store.close()


async def test_compaction_drops_history_but_keeps_current_values(storage: Storage) -> None:
    await storage.create(P + "a", b"a1")  # 1
    await storage.create(P + "b", b"b1")  # 2
    await storage.update(P + "a", b"a2", expected_revision=1)  # 3
    await storage.delete(P + "b")  # 4
    await storage.create(P + "c", b"c1")  # 5
    await storage.update(P + "c", b"c2", expected_revision=5)  # 6

    await storage.compact(4)
    assert await storage.compacted_revision() == 4
    for rev in (1, 3, 4):
        with pytest.raises(Compacted) as info:
            await storage.get(P + "a", revision=rev)
        assert (info.value.requested, info.value.compacted) == (rev, 4)
        with pytest.raises(Compacted):
            await storage.list(P, revision=rev)
    with pytest.raises(Compacted):
        await storage.watch(P, revision=3)

    latest = await storage.list(P)
    assert [(kv.key, kv.value, kv.mod_revision) for kv in latest.items] == [
        (P + "a", b"a2", 3),
        (P + "c", b"c2", 6),
    ]
    at5 = await storage.list(P, revision=5)
    assert [(kv.key, kv.value) for kv in at5.items] == [(P + "a", b"a2"), (P + "c", b"c1")]
    assert await storage.get(P + "b", revision=5) is None

    watch = await storage.watch(P, revision=4)  # at the compacted revision: history after it is whole
    assert [e.revision for e in await take(watch, 2)] == [5, 6]
    await watch.close()

    # writes go on from the same revision counter, and updates from the kept rows still work
    kv = await storage.update(P + "a", b"a3", expected_revision=3)
    assert kv.mod_revision == 7
    await storage.compact(2)  # already compacted past: no change
    assert await storage.compacted_revision() == 4
    with pytest.raises(FutureRevision):
        await storage.compact(100)


async def test_compaction_of_everything_keeps_the_revision_counter(storage: Storage) -> None:
    await storage.create(P + "a", b"1")
    await storage.delete(P + "a")
    await storage.compact(2)
    assert (await storage.list(P)).items == []
    again = await storage.create(P + "a", b"2")
    assert (again.mod_revision, again.create_revision) == (3, 3)
    assert (await storage.list(P)).revision == 3


async def test_two_concurrent_updates_from_the_same_base_exactly_one_wins(storage: Storage) -> None:
    base = await storage.create(P + "a", b"base")
    results = await asyncio.gather(
        storage.update(P + "a", b"left", expected_revision=base.mod_revision),
        storage.update(P + "a", b"right", expected_revision=base.mod_revision),
        return_exceptions=True,
    )
    winners = [r for r in results if not isinstance(r, BaseException)]
    losers = [r for r in results if isinstance(r, BaseException)]
    assert len(winners) == 1 and len(losers) == 1
    assert isinstance(losers[0], RevisionConflict)
    assert losers[0].current == winners[0]
    assert await storage.get(P + "a") == winners[0]


async def test_many_concurrent_creates_land_with_distinct_revisions(storage: Storage) -> None:
    kvs = await asyncio.gather(*(storage.create(f"{P}k{i}", str(i).encode()) for i in range(300)))
    assert sorted(kv.mod_revision for kv in kvs) == list(range(1, 301))
    listed = await storage.list(P)
    assert len(listed.items) == 300
    assert {kv.key: kv.value for kv in listed.items} == {f"{P}k{i}": str(i).encode() for i in range(300)}


async def test_a_failing_write_does_not_poison_writes_committed_with_it(storage: Storage) -> None:
    results = await asyncio.gather(
        *(storage.create(f"{P}k{i % 20}", str(i).encode()) for i in range(100)),
        return_exceptions=True,
    )
    created = [r for r in results if not isinstance(r, BaseException)]
    failed = [r for r in results if isinstance(r, BaseException)]
    assert len(created) == 20
    assert len(failed) == 80 and all(isinstance(f, KeyExists) for f in failed)
    assert sorted(kv.mod_revision for kv in created) == list(range(1, 21))
    assert await storage.current_revision() == 20


def _value_index(event: Event) -> tuple[str, ...]:
    """A toy index: the stored value (and the previous one), as a pod's spec.nodeName would be."""
    values = (event.kv.value.decode(),)
    return values if event.prev is None else (*values, event.prev.value.decode())


async def _drain_publications(storage: Storage, watch: Watch) -> None:
    """Let published events reach `watch` (a plain watch of everything, used as a marker)."""
    revision = await storage.current_revision()
    await storage.create(f"/registry/markers/m{revision}", b"x")
    await take(watch, 1)


async def test_a_triggered_watch_gets_only_the_live_events_of_its_value(storage: Storage) -> None:
    await storage.create(P + "old", b"node-2")  # 1: history, not narrowed
    on_one = await storage.watch(P, revision=0, trigger=Trigger(_value_index, "node-1"))
    on_two = await storage.watch(P, revision=0, trigger=Trigger(_value_index, "node-2"))
    everything = await storage.watch("/registry/markers/", revision=0)
    assert [e.revision for e in await take(on_one, 1)] == [1]
    assert [e.revision for e in await take(on_two, 1)] == [1]

    a = await storage.create(P + "a", b"node-1")  # 2: node-1
    await storage.create(P + "b", b"node-2")  # 3: node-2
    await storage.update(P + "a", b"node-2", expected_revision=a.mod_revision)  # 4: leaves node-1
    await storage.delete(P + "a")  # 5: node-2 (its last value)
    await _drain_publications(storage, everything)  # 6

    assert [e.revision for e in await take(on_one, 2)] == [2, 4]  # it sees "a" leave
    assert [e.revision for e in await take(on_two, 3)] == [3, 4, 5]
    assert on_one.ready() == [] and on_two.ready() == []
    for watch in (on_one, on_two, everything):
        await watch.close()


async def test_progress_passes_events_a_trigger_left_out_only_when_nothing_is_queued(
    storage: Storage,
) -> None:
    watch = await storage.watch(P, revision=0, trigger=Trigger(_value_index, "node-1"))
    everything = await storage.watch("/registry/markers/", revision=0)
    assert watch.progress() == 0  # still to read its history
    await storage.create(P + "a", b"node-1")  # 1
    assert [e.revision for e in await take(watch, 1)] == [1]  # history read: it is live now
    await storage.create(P + "b", b"node-9")  # 2: not for it
    await _drain_publications(storage, everything)  # 3
    # Nothing queued: revisions 2 and 3 were not for this watch.
    assert watch.progress() == 3
    await storage.create(P + "c", b"node-1")  # 4
    await _drain_publications(storage, everything)  # 5
    # "c" is queued and not yet taken: progress must not pass it.
    assert watch.progress() < 4
    assert [e.revision for e in await take(watch, 1)] == [4]
    assert watch.progress() == 5
    for w in (watch, everything):
        await w.close()


async def test_closing_triggered_watches_leaves_the_hub_clean(storage: Storage) -> None:
    watches = [
        await storage.watch(P, revision=0, trigger=Trigger(_value_index, f"n{i % 2}")) for i in range(4)
    ]
    for watch in watches:
        await watch.close()
        await watch.close()  # twice is harmless
    await storage.create(P + "a", b"n0")
    for watch in watches:
        assert watch.ready() == []


def _broken_index(event: Event) -> tuple[str, ...]:
    if event.kv.value == b"unreadable":
        raise ValueError("cannot read it")
    return (event.kv.value.decode(),)


async def test_an_index_that_fails_on_an_event_hands_it_to_every_watch_of_that_index(
    storage: Storage, caplog: pytest.LogCaptureFixture
) -> None:
    one = await storage.watch(P, revision=0, trigger=Trigger(_broken_index, "n1"))
    two = await storage.watch(P, revision=0, trigger=Trigger(_broken_index, "n2"))
    await storage.create(P + "seed", b"n1")  # 1
    await storage.create(P + "seed2", b"n2")  # 2
    # History is not narrowed; reading it makes both live.
    assert [e.revision for e in await take(one, 2)] == [1, 2]
    assert [e.revision for e in await take(two, 2)] == [1, 2]
    await storage.create(P + "x", b"unreadable")  # 3
    await storage.create(P + "y", b"n2")  # 4
    assert [e.revision for e in await take(one, 1)] == [3]
    assert [e.revision for e in await take(two, 2)] == [3, 4]
    assert "watch trigger index failed" in caplog.text
    for watch in (one, two):
        await watch.close()
