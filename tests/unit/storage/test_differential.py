"""Random operation sequences give the same answers, histories and watch streams on every backend."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from controlplane.storage.interface import Event, KeyValue, Storage
from tests.unit.storage.backends import FACTORIES, make, take

KEYS = ["/r/a", "/r/b", "/r/c/x", "/s/a"]

ops = st.lists(
    st.one_of(
        st.tuples(st.just("create"), st.sampled_from(KEYS), st.integers(0, 0)),
        st.tuples(st.just("update"), st.sampled_from(KEYS), st.integers(0, 12)),
        st.tuples(st.just("delete"), st.sampled_from(KEYS), st.integers(-1, 12)),
        st.tuples(st.just("compact"), st.just(""), st.integers(0, 12)),
    ),
    max_size=25,
)

Outcome = KeyValue | str | None


async def _apply(store: Storage, op: str, key: str, n: int, step: int) -> Outcome:
    try:
        if op == "create":
            return await store.create(key, f"{step}".encode())
        if op == "update":
            return await store.update(key, f"{step}".encode(), expected_revision=n)
        if op == "delete":
            return await store.delete(key, expected_revision=None if n < 0 else n)
        await store.compact(min(n, await store.current_revision()))
        return None
    except Exception as exc:  # the error type is part of the contract
        return type(exc).__name__


async def _run(backend: str, sequence: list[tuple[str, str, int]]) -> tuple[object, ...]:
    with tempfile.TemporaryDirectory() as tmp:
        store = make(backend, Path(tmp))
        await store.start()
        try:
            outcomes = [await _apply(store, op, key, n, i) for i, (op, key, n) in enumerate(sequence)]
            current = await store.current_revision()
            compacted = await store.compacted_revision()
            lists = [await store.list("/r/", revision=rev) for rev in range(compacted + 1, current + 1)]
            latest = await store.list("")
            watch = await store.watch("/r/", revision=compacted)
            marker = await store.create("/r/zz-marker", b"")  # the stream ends exactly here
            events: list[Event] = []
            while not events or events[-1].revision != marker.mod_revision:
                events += await take(watch, 1)
            await watch.close()
            return outcomes, current, compacted, lists, latest, events
        finally:
            await store.close()


@settings(deadline=None, max_examples=30)
@given(ops)
def test_backends_agree(sequence: list[tuple[str, str, int]]) -> None:
    results = {backend: asyncio.run(_run(backend, sequence)) for backend in sorted(FACTORIES)}
    reference = results.pop("memory")
    for backend, result in results.items():
        assert result == reference, backend
