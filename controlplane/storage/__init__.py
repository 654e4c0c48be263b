"""The storage layer: an etcd-style revision log behind one `Storage` protocol.

`open_storage(url)` picks a backend by URL: `sqlite:///abs/path/state.db` (or a plain path) for
the embedded default, `memory://` for unit tests. The store is returned unstarted; call
`await store.start()` (or use it as an async context manager) before use.
"""

from __future__ import annotations

import time

from controlplane.storage.compaction import Clock
from controlplane.storage.errors import (
    Compacted,
    KeyExists,
    KeyNotFound,
    RevisionConflict,
    StorageError,
    Unavailable,
)
from controlplane.storage.fanout import DEFAULT_QUEUE_LIMIT, WatchOverflow
from controlplane.storage.interface import Event, KeyValue, ListResult, Storage, Trigger, Watch
from controlplane.storage.memory import MemoryStorage
from controlplane.storage.revlog import FutureRevision
from controlplane.storage.sqlite import SqliteStorage

__all__ = [
    "Compacted",
    "Event",
    "FutureRevision",
    "KeyExists",
    "KeyNotFound",
    "KeyValue",
    "ListResult",
    "MemoryStorage",
    "RevisionConflict",
    "SqliteStorage",
    "Storage",
    "StorageError",
    "Trigger",
    "Unavailable",
    "Watch",
    "WatchOverflow",
    "open_storage",
]


def open_storage(
    url: str,
    *,
    synchronous: str = "FULL",
    compaction_interval: float = 60.0,
    retain_revisions: int = 1000,
    retain_seconds: float = 300.0,
    clock: Clock = time.monotonic,
    watch_queue_limit: int = DEFAULT_QUEUE_LIMIT,
) -> Storage:
    """A storage backend for `url`, not yet started.

    `compaction_interval` <= 0 turns the background compactor off. Only revisions older than both
    `retain_revisions` and `retain_seconds` are compacted automatically."""
    if url in {"memory://", "memory:"}:
        return MemoryStorage(
            compaction_interval=compaction_interval,
            retain_revisions=retain_revisions,
            retain_seconds=retain_seconds,
            clock=clock,
            watch_queue_limit=watch_queue_limit,
        )
    if url.startswith("sqlite://"):
        path = url.removeprefix("sqlite://")
        if not path:
            raise ValueError(f"sqlite URL needs a path: {url!r} (sqlite:///abs/path/state.db)")
    elif "://" in url:
        raise ValueError(f"unsupported storage URL {url!r}: use sqlite:///path or memory://")
    else:
        path = url
    return SqliteStorage(
        path,
        synchronous=synchronous,
        compaction_interval=compaction_interval,
        retain_revisions=retain_revisions,
        retain_seconds=retain_seconds,
        clock=clock,
        watch_queue_limit=watch_queue_limit,
    )
