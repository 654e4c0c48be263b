"""How the storage tests build each backend; a new backend (etcd) joins by adding a factory here."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from controlplane.storage import MemoryStorage, SqliteStorage
from controlplane.storage.interface import Event, Storage, Watch

Factory = Callable[..., Storage]


def _memory(tmp_path: Path, **options: Any) -> Storage:
    return MemoryStorage(**options)


def _sqlite(tmp_path: Path, **options: Any) -> Storage:
    return SqliteStorage(str(tmp_path / "state.db"), **options)


# Every factory takes the test's tmp_path plus backend options; the background compactor is off
# (compaction_interval=0) so tests decide when compaction happens.
FACTORIES: dict[str, Factory] = {"memory": _memory, "sqlite": _sqlite}


def make(backend: str, tmp_path: Path, **options: Any) -> Storage:
    options.setdefault("compaction_interval", 0)
    return FACTORIES[backend](tmp_path, **options)


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def take(watch: Watch, n: int, timeout: float = 5.0) -> list[Event]:
    """The next `n` events of `watch`; fails the test if they do not come within `timeout`."""
    events: list[Event] = []
    iterator = aiter(watch)
    async with asyncio.timeout(timeout):
        while len(events) < n:
            events.append(await anext(iterator))
    return events
