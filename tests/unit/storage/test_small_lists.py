"""Latest lists of small prefixes answered from memory: every answer is the prefix's content at
the revision it reports (checked against a historical read of the log at that revision), also
while writes under and beside the prefix race the lists, and a cached answer costs no read."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

from controlplane.storage import SqliteStorage
from controlplane.storage.errors import KeyExists, KeyNotFound, RevisionConflict

P = "/registry/limitranges/ns/"
OTHER = "/registry/limitranges/other/"


def _db(tmp_path: Path) -> str:
    return str(tmp_path / "state.db")


async def test_a_repeated_list_is_served_from_memory_until_a_write_under_it(tmp_path: Path) -> None:
    async with SqliteStorage(_db(tmp_path), compaction_interval=0) as store:
        reads = 0
        assert store._readers is not None
        run = store._readers.run

        async def counting(fn):  # type: ignore[no-untyped-def]
            nonlocal reads
            reads += 1
            return await run(fn)

        store._readers.run = counting  # type: ignore[method-assign]
        first = await store.list(P)
        assert first.items == [] and reads == 1
        await store.create(OTHER + "x", b"x")  # beside the prefix: the entry stays
        second = await store.list(P)
        assert second.items == [] and reads == 1
        assert second.revision == await store.current_revision()
        kv = await store.create(P + "a", b"a")
        third = await store.list(P)
        assert [i.key for i in third.items] == [P + "a"] and reads == 2
        assert third.revision >= kv.mod_revision
        assert (await store.list(P)).items == third.items and reads == 2
        await store.delete(P + "a")
        assert (await store.list(P)).items == [] and reads == 3


async def test_lists_racing_writes_report_what_the_log_held_at_their_revision(tmp_path: Path) -> None:
    rng = random.Random(5)
    async with SqliteStorage(_db(tmp_path), compaction_interval=0, retain_revisions=100_000) as store:
        seen: list[tuple[int, list[tuple[str, bytes, int]]]] = []

        async def write(i: int) -> None:
            prefix = rng.choice([P, P, OTHER])
            key = prefix + rng.choice("abcd")
            try:
                if rng.random() < 0.5:
                    await store.create(key, f"v{i}".encode())
                else:
                    current = await store.get(key)
                    if current is None:
                        return
                    if rng.random() < 0.5:
                        await store.delete(key, expected_revision=current.mod_revision)
                    else:
                        await store.update(key, f"v{i}".encode(), expected_revision=current.mod_revision)
            except (KeyExists, KeyNotFound, RevisionConflict):
                pass

        async def read() -> None:
            result = await store.list(P)
            seen.append((result.revision, [(kv.key, kv.value, kv.mod_revision) for kv in result.items]))

        for round_ in range(40):
            ops = [write(round_ * 10 + i) for i in range(rng.randrange(0, 5))]
            ops += [read() for _ in range(rng.randrange(1, 4))]
            rng.shuffle(ops)
            await asyncio.gather(*ops)
        assert len(seen) >= 40
        for revision, items in seen:
            at = await store.list(P, revision=revision)
            assert items == [(kv.key, kv.value, kv.mod_revision) for kv in at.items], revision


async def test_peek_list_is_the_same_object_until_the_prefix_changes(tmp_path: Path) -> None:
    async with SqliteStorage(_db(tmp_path), compaction_interval=0) as store:
        assert store.peek_list(P) is None  # nothing listed yet: nothing held
        await store.create(P + "a", b"a")
        listed = await store.list(P)
        held = store.peek_list(P)
        assert held is not None and [kv.key for kv in held] == [kv.key for kv in listed.items]
        await store.create(OTHER + "x", b"x")  # beside the prefix
        assert store.peek_list(P) is held
        await store.update(P + "a", b"b", expected_revision=listed.items[0].mod_revision)
        assert store.peek_list(P) is None  # the change dropped it; the next list holds a new one
        await store.list(P)
        again = store.peek_list(P)
        assert again is not None and again is not held and again[0].value == b"b"
