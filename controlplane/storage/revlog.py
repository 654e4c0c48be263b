"""The revision log's record shape, shared by every log-structured backend.

A `Row` is one entry of the append-only log, shaped like kine's table: the revision is the row id;
`created` marks the first write of a key's life, `deleted` a tombstone. A tombstone carries the
last value so a DELETE event can show what went away; an update carries the value it replaced
(`old_value`) so a PUT event can show `prev` even after the older row was compacted.

Also here: the revision checks every read applies (`check_read_revision`) and the key-range
arithmetic for prefix scans.
"""

from __future__ import annotations

from dataclasses import dataclass

from controlplane.storage.errors import Compacted, StorageError
from controlplane.storage.interface import Event, KeyValue

__all__ = ["FutureRevision", "Row", "check_read_revision", "prefix_end"]


class FutureRevision(StorageError):
    """A read asked for a revision the store has not reached yet (etcd's ErrFutureRev).

    Upstream maps this to a 504 "Too large resource version" that clients retry."""

    def __init__(self, requested: int, current: int) -> None:
        super().__init__(f"required revision {requested} is a future revision (current is {current})")
        self.requested = requested
        self.current = current


@dataclass(frozen=True, slots=True)
class Row:
    id: int  # the revision that wrote this row
    name: str
    created: bool
    deleted: bool
    create_revision: int
    prev_revision: int  # the row this one supersedes (0 for a key's first ever write)
    value: bytes  # for a tombstone: the last value
    old_value: bytes | None  # for an update: the value it replaced

    def kv(self) -> KeyValue:
        return KeyValue(self.name, self.value, self.id, self.create_revision)

    def event(self) -> Event:
        if self.deleted:
            prev = KeyValue(self.name, self.value, self.prev_revision, self.create_revision)
            return Event("DELETE", self.kv(), prev, self.id)
        if self.created:
            return Event("PUT", self.kv(), None, self.id)
        old = self.old_value if self.old_value is not None else b""
        prev = KeyValue(self.name, old, self.prev_revision, self.create_revision)
        return Event("PUT", self.kv(), prev, self.id)


def check_read_revision(revision: int, *, current: int, compacted: int) -> None:
    """Refuse a read at `revision` whose history is gone or not yet written.

    Revision 0 on a never-compacted store is the empty state before the first write."""
    if revision < 0:
        raise ValueError(f"revision must not be negative, got {revision}")
    if compacted > 0 and revision <= compacted:
        raise Compacted(revision, compacted)
    if revision > current:
        raise FutureRevision(revision, current)


def prefix_end(prefix: str) -> str | None:
    """The smallest key greater than every key starting with `prefix`; None when unbounded.

    Code point order equals UTF-8 byte order, so the bound works for Python and SQLite alike."""
    chars = list(prefix)
    while chars:
        last = ord(chars[-1])
        if last < 0x10FFFF:
            nxt = last + 1
            chars[-1] = chr(0xE000 if 0xD800 <= nxt <= 0xDFFF else nxt)  # skip surrogates
            return "".join(chars)
        chars.pop()
    return None
