"""What only the SQLite backend promises: durability across reopen, the database-level lost-update
guard, group commit, the compaction schedule, list speed and single-process ownership."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from controlplane.storage import SqliteStorage, Unavailable
from controlplane.storage.errors import Compacted
from tests.unit.storage.backends import FakeClock, take

P = "/registry/pods/"


def _db(tmp_path: Path) -> str:
    return str(tmp_path / "state.db")


async def test_data_survives_close_and_reopen(tmp_path: Path) -> None:
    async with SqliteStorage(_db(tmp_path), compaction_interval=0) as store:
        await store.create(P + "a", b"a1")  # 1
        await store.create(P + "b", b"b1")  # 2
        await store.update(P + "a", b"a2", expected_revision=1)  # 3
        await store.delete(P + "b")  # 4
        await store.create(P + "c", b"c1")  # 5
        await store.compact(2)

    async with SqliteStorage(_db(tmp_path), compaction_interval=0) as store:
        assert await store.current_revision() == 5
        assert await store.compacted_revision() == 2
        latest = await store.list(P)
        assert [(kv.key, kv.value, kv.mod_revision) for kv in latest.items] == [
            (P + "a", b"a2", 3),
            (P + "c", b"c1", 5),
        ]
        with pytest.raises(Compacted):
            await store.get(P + "a", revision=2)
        watch = await store.watch(P, revision=2)
        replayed = await take(watch, 3)
        assert [(e.type, e.kv.key, e.revision) for e in replayed] == [
            ("PUT", P + "a", 3),
            ("DELETE", P + "b", 4),
            ("PUT", P + "c", 5),
        ]
        assert replayed[0].prev is not None and replayed[0].prev.value == b"a1"
        kv = await store.create(P + "d", b"d1")  # the revision continues
        assert kv.mod_revision == 6
        assert [e.revision for e in await take(watch, 1)] == [6]
        await watch.close()


async def test_compacting_the_newest_rows_never_reuses_a_revision(tmp_path: Path) -> None:
    async with SqliteStorage(_db(tmp_path), compaction_interval=0) as store:
        await store.create(P + "a", b"1")
        await store.delete(P + "a")
        await store.compact(2)  # the log is now empty
    async with SqliteStorage(_db(tmp_path), compaction_interval=0) as store:
        assert await store.current_revision() == 2
        assert (await store.create(P + "a", b"2")).mod_revision == 3


async def test_the_database_refuses_a_lost_update(tmp_path: Path) -> None:
    async with SqliteStorage(_db(tmp_path), compaction_interval=0) as store:
        await store.create(P + "a", b"v1")
        await store.update(P + "a", b"v2", expected_revision=1)
    conn = sqlite3.connect(_db(tmp_path))
    try:
        # a second update built on revision 1, as a racing writer would append it
        with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
            conn.execute(
                "INSERT INTO log (name, created, deleted, create_revision, prev_revision, value, old_value)"
                " VALUES (?, 0, 0, 1, 1, ?, ?)",
                (P + "a", b"v2-lost", b"v1"),
            )
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


async def test_group_commit_batches_concurrent_writes(tmp_path: Path) -> None:
    name = "pinnace_storage_group_commit_batch_size"
    count_before = REGISTRY.get_sample_value(f"{name}_count") or 0.0
    sum_before = REGISTRY.get_sample_value(f"{name}_sum") or 0.0
    async with SqliteStorage(_db(tmp_path), compaction_interval=0) as store:
        kvs = await asyncio.gather(*(store.create(f"{P}k{i}", b"x") for i in range(200)))
        assert sorted(kv.mod_revision for kv in kvs) == list(range(1, 201))
        assert store.largest_batch > 1
    commits = (REGISTRY.get_sample_value(f"{name}_count") or 0.0) - count_before
    written = (REGISTRY.get_sample_value(f"{name}_sum") or 0.0) - sum_before
    assert written == 200
    assert commits < 200  # fewer transactions than writes: they were grouped


async def test_operation_metrics_are_recorded(tmp_path: Path) -> None:
    def count(op: str) -> float:
        value = REGISTRY.get_sample_value(
            "pinnace_storage_operation_duration_seconds_count", {"operation": op}
        )
        return value or 0.0

    before = {op: count(op) for op in ("get", "list", "create", "update", "delete")}
    async with SqliteStorage(_db(tmp_path), compaction_interval=0) as store:
        await store.create(P + "a", b"1")
        await store.update(P + "a", b"2", expected_revision=1)
        await store.get(P + "a")
        await store.list(P)
        await store.delete(P + "a")
        watch = await store.watch(P, revision=0)
        assert REGISTRY.get_sample_value("pinnace_storage_watchers") is not None
        assert REGISTRY.get_sample_value("pinnace_storage_current_revision") == 3
        await watch.close()
    assert all(count(op) == before[op] + 1 for op in before)


async def test_compactor_keeps_1000_revisions_and_300_seconds(tmp_path: Path) -> None:
    clock = FakeClock()
    compactions_before = REGISTRY.get_sample_value("pinnace_storage_compactions_total") or 0.0
    async with SqliteStorage(_db(tmp_path), compaction_interval=0, clock=clock) as store:

        async def write(n: int) -> None:
            await asyncio.gather(*(store.create(f"{P}{clock.now}-{i}", b"x") for i in range(n)))

        await write(1500)
        assert await store.compactor.tick() == 0  # t=0: nothing is 5 minutes old yet
        clock.now += 200
        await write(10)
        assert await store.compactor.tick() == 0  # t=200: still inside the time window
        clock.now += 101
        # t=301: revision 1500 was current 301 s ago, but the newest 1000 of 1510 must stay
        assert await store.compactor.tick() == 510
        assert await store.compacted_revision() == 510
        assert (await store.list(P, revision=511)).revision == 511
        with pytest.raises(Compacted):
            await store.list(P, revision=510)

        await write(3000)  # revision 4510 at t=301
        clock.now += 100
        await store.compactor.tick()  # t=401: the newest sample old enough is still 1500's at t=0
        assert await store.compacted_revision() == 1500
        clock.now += 250
        # t=651: the newest sample at or before t=351 was taken at t=301, before the 3000 writes;
        # samples only ever err towards keeping history
        assert await store.compactor.tick() == 1510
        clock.now += 100
        # t=751: the t=401 sample (4510) is old enough; now the count bound (4510 - 1000) is lower
        assert await store.compactor.tick() == 3510
        assert await store.current_revision() - await store.compacted_revision() >= 1000
        assert len((await store.list(P)).items) == 4510  # compaction never drops current values
    compactions = (REGISTRY.get_sample_value("pinnace_storage_compactions_total") or 0.0) - compactions_before
    assert compactions == 4


async def test_start_runs_the_compactor_and_close_stops_it(tmp_path: Path) -> None:
    clock = FakeClock()
    store = SqliteStorage(_db(tmp_path), compaction_interval=3600, clock=clock, retain_revisions=1)
    await store.start()
    task = store.compactor._task
    assert task is not None and not task.done()
    await store.close()
    assert task.done()


async def test_listing_3000_keys_is_fast(tmp_path: Path) -> None:
    async with SqliteStorage(_db(tmp_path), compaction_interval=0) as store:
        value = b"x" * 1024
        kvs = await asyncio.gather(*(store.create(f"{P}ns/pod-{i:05d}", value) for i in range(3000)))
        # history and other keys around the prefix must not slow the latest-state list down
        await asyncio.gather(*(store.update(kv.key, value, expected_revision=kv.mod_revision) for kv in kvs))
        await asyncio.gather(*(store.create(f"/registry/secrets/ns/s-{i}", value) for i in range(1000)))
        started = time.perf_counter()
        listed = await store.list(P + "ns/")
        latest = time.perf_counter() - started
        started = time.perf_counter()
        old = await store.list(P + "ns/", revision=6000)
        historic = time.perf_counter() - started
    assert len(listed.items) == 3000 == len(old.items)
    assert latest < 0.5 and historic < 0.5, (latest, historic)


async def test_a_second_process_cannot_open_the_same_database(tmp_path: Path) -> None:
    async with SqliteStorage(_db(tmp_path), compaction_interval=0):
        with pytest.raises(Unavailable, match="in use"):
            await SqliteStorage(_db(tmp_path), compaction_interval=0).start()
    async with SqliteStorage(_db(tmp_path), compaction_interval=0) as again:  # released on close
        assert await again.current_revision() == 0


def test_synchronous_must_be_known(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="synchronous"):
        SqliteStorage(_db(tmp_path), synchronous="OFF")
