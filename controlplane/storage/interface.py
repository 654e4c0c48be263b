"""The storage contract: an etcd-style revision log.

One global revision increases by one on every write. An object's `mod_revision` is the revision
that last wrote it; `resourceVersion` on the wire is that number. A watch from revision R replays
every event with revision > R and then tails; asking for a revision at or below the compacted
revision raises `Compacted`. Every backend passes the same contract suite
(`tests/unit/storage/test_contract.py`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

__all__ = [
    "Event",
    "KeyValue",
    "ListResult",
    "Storage",
    "Trigger",
    "TriggerIndex",
    "Watch",
]


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: bytes
    mod_revision: int
    create_revision: int


@dataclass(frozen=True, slots=True)
class Event:
    """One change. For DELETE, `kv.value` is the last value and `kv.mod_revision` the delete's revision."""

    type: Literal["PUT", "DELETE"]
    kv: KeyValue
    prev: KeyValue | None  # the value before this change; None for a create
    revision: int

    @property
    def is_create(self) -> bool:
        return self.type == "PUT" and self.prev is None


@dataclass(frozen=True, slots=True)
class ListResult:
    items: list[KeyValue]
    revision: int  # the revision the list was read at
    more: bool  # True when `limit` cut the list short
    remaining: int = 0  # items left after this page (0 when not known or none)


# An event's index values (see Trigger).
TriggerIndex = Callable[[Event], Collection[str]]


@dataclass(frozen=True, slots=True)
class Trigger:
    """Narrows a watch's live events to those whose index values include `value` (upstream's
    cacher "indexed triggers", e.g. pods by spec.nodeName): with a thousand kubelets each watching
    its own pods, an event then reaches one watcher, not a thousand that would each discard it.

    `index` gives an event's values: those of the new object and of the previous one, so that
    a watcher also sees an object leave its selection. Watchers share an index by the identity
    of the function. A trigger only narrows: the consumer still applies its full selector, and
    replayed history is not narrowed."""

    index: TriggerIndex
    value: str


class Watch(Protocol):
    """An open watch: iterate for events, close to release it. Iteration ends once closed."""

    def __aiter__(self) -> AsyncIterator[Event]: ...

    def ready(self, limit: int = 256) -> list[Event]:
        """Events available right now, in order, without waiting (may be empty)."""

    def progress(self) -> int:
        """A revision up to which every event of this watch has been yielded: a bookmark may carry
        it. Past the last yielded event once the watch is live and has nothing queued, since events
        the prefix or trigger left out were never for it."""

    async def close(self) -> None: ...


class Storage(Protocol):
    async def start(self) -> None:
        """Open files and start background work (group commit, compaction)."""

    async def close(self) -> None:
        """Flush acknowledged writes, stop background work, end every open watch."""

    async def current_revision(self) -> int: ...

    async def compacted_revision(self) -> int:
        """The highest revision whose history is gone; reads and watches at or below it are `Compacted`."""

    async def get(self, key: str, *, revision: int | None = None) -> KeyValue | None:
        """The value at `revision` (latest when None); None when absent."""

    async def list(
        self,
        prefix: str,
        *,
        revision: int | None = None,
        limit: int = 0,
        start_after: str = "",
    ) -> ListResult:
        """Live keys under `prefix` in key order, as of `revision` (latest when None).
        `limit` > 0 pages; `start_after` resumes after a key (exclusive)."""

    def peek_list(self, prefix: str) -> Sequence[KeyValue] | None:
        """The latest list of `prefix` when the storage holds it in memory, else None; never does
        IO. The same object is returned until something under the prefix changes, so a caller can
        tell "unchanged" by identity. Read-only: callers must not modify it."""

    async def create(self, key: str, value: bytes) -> KeyValue:
        """Raises `KeyExists` when the key is live."""

    async def update(self, key: str, value: bytes, *, expected_revision: int) -> KeyValue:
        """Write only if the key's mod_revision is `expected_revision`.
        Raises `KeyNotFound` when absent and `RevisionConflict` when it moved."""

    async def delete(self, key: str, *, expected_revision: int | None = None) -> KeyValue:
        """Delete the key (conditionally when `expected_revision` is given); returns the tombstone
        (last value, mod_revision = the delete's revision). Raises `KeyNotFound`, `RevisionConflict`."""

    async def watch(self, prefix: str, *, revision: int, trigger: Trigger | None = None) -> Watch:
        """Events under `prefix` with revision > `revision`, replayed then tailed (live events
        narrowed by `trigger`). Raises `Compacted` when `revision` < the compacted revision."""

    async def compact(self, revision: int) -> None:
        """Drop history at or below `revision`; later reads/watches below it raise `Compacted`."""
