"""Where the local cloud keeps its state: one SQLite database, so that every process that opens
the same file (`pinnace server --cloud-provider local`, a test, the node-provisioning operator)
sees the same cloud.

Every resource is one row of `resources`: its kind, id, name, the cluster that owns it (from its
`kubernetes.io/cluster/<id>=owned` tag, for indexed listing), its tags and a JSON document of
kind-specific data. Each cloud API call is one `BEGIN IMMEDIATE` transaction, so concurrent
calls from threads or processes serialise the way a real cloud's API does, and a call that
fails leaves nothing half-written. These methods block: callers run them in a worker thread.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from providers.errors import InvalidConfiguration
from providers.tags import CLUSTER_TAG_PREFIX, OWNED

__all__ = ["Record", "StateStore", "Tx"]

T = TypeVar("T")

_SCHEMA_VERSION = 1
# `due` is when the resource next changes by itself (an instance done booting, a terminated one
# to forget), indexed so that letting time pass costs nothing when nothing is due.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS resources (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    cluster TEXT NOT NULL,
    tags TEXT NOT NULL,
    data TEXT NOT NULL,
    due REAL,
    PRIMARY KEY (kind, id)
);
CREATE INDEX IF NOT EXISTS resources_by_cluster ON resources (kind, cluster);
CREATE INDEX IF NOT EXISTS resources_by_name ON resources (kind, name);
CREATE INDEX IF NOT EXISTS resources_by_due ON resources (kind, due) WHERE due IS NOT NULL;
"""


@dataclass(frozen=True)
class Record:
    kind: str
    id: str
    name: str
    tags: Mapping[str, str] = field(default_factory=dict)
    data: Mapping[str, Any] = field(default_factory=dict)
    due: float | None = None

    @property
    def owning_cluster(self) -> str:
        for key, value in self.tags.items():
            if key.startswith(CLUSTER_TAG_PREFIX) and value == OWNED:
                return key[len(CLUSTER_TAG_PREFIX) :]
        return ""

    def with_data(self, **changes: Any) -> Record:
        return replace(self, data={**self.data, **changes})


class Tx:
    """One transaction's view of the store."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    @staticmethod
    def _record(row: tuple[str, str, str, str, str, float | None]) -> Record:
        kind, id_, name, tags, data, due = row
        return Record(kind=kind, id=id_, name=name, tags=json.loads(tags), data=json.loads(data), due=due)

    def _select(self, where: str, params: tuple[Any, ...]) -> Iterator[Record]:
        cursor = self._conn.execute(
            f"SELECT kind, id, name, tags, data, due FROM resources WHERE {where} ORDER BY id", params
        )
        for row in cursor.fetchall():
            yield self._record(row)

    def get(self, kind: str, id_: str) -> Record | None:
        return next(self._select("kind = ? AND id = ?", (kind, id_)), None)

    def by_name(self, kind: str, name: str) -> list[Record]:
        return list(self._select("kind = ? AND name = ?", (kind, name)))

    def owned_by(self, kind: str, cluster_id: str) -> list[Record]:
        return list(self._select("kind = ? AND cluster = ?", (kind, cluster_id)))

    def all_of(self, kind: str) -> list[Record]:
        return list(self._select("kind = ?", (kind,)))

    def all_owned(self, cluster_id: str) -> list[Record]:
        return list(self._select("cluster = ?", (cluster_id,)))

    def where(self, kind: str, key: str, value: Any) -> list[Record]:
        """Records whose data has `key` equal to `value` (SQLite's JSON1, so nothing else is decoded)."""
        return list(self._select("kind = ? AND json_extract(data, ?) = ?", (kind, f"$.{key}", value)))

    def due(self, kind: str, now: float) -> list[Record]:
        """Records whose next change of their own is due by `now`."""
        return list(self._select("kind = ? AND due IS NOT NULL AND due <= ?", (kind, now)))

    def column(self, kind: str, key: str, *, unless_state: str = "") -> list[Any]:
        """One field of every record of a kind, optionally skipping those in a state."""
        query = "SELECT json_extract(data, ?) FROM resources WHERE kind = ?"
        params: tuple[Any, ...] = (f"$.{key}", kind)
        if unless_state:
            query += " AND coalesce(json_extract(data, '$.state'), '') != ?"
            params += (unless_state,)
        return [row[0] for row in self._conn.execute(query, params).fetchall()]

    def put(self, record: Record) -> None:
        self._conn.execute(
            "INSERT OR REPLACE INTO resources (kind, id, name, cluster, tags, data, due)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                record.kind,
                record.id,
                record.name,
                record.owning_cluster,
                json.dumps(dict(record.tags), sort_keys=True),
                json.dumps(dict(record.data), sort_keys=True),
                record.due,
            ),
        )

    def delete(self, kind: str, id_: str) -> bool:
        cursor = self._conn.execute("DELETE FROM resources WHERE kind = ? AND id = ?", (kind, id_))
        return cursor.rowcount > 0


class StateStore:
    """One connection, shared by the worker threads of one process under a lock; other processes
    coordinate through SQLite's file locks (WAL, a generous busy timeout)."""

    def __init__(self, path: str = ":memory:") -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30.0)
            if path != ":memory:":
                self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA busy_timeout=30000")
            columns = {row[1] for row in self._conn.execute("PRAGMA table_info(resources)")}
            if columns and "due" not in columns:  # a state file from before `due` existed
                self._conn.execute("ALTER TABLE resources ADD COLUMN due REAL")
            self._conn.executescript(_SCHEMA)
            self._conn.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            raise InvalidConfiguration(f"local cloud: cannot open the state file {path!r}: {exc}") from exc

    def transact(self, fn: Callable[[Tx], T]) -> T:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(Tx(self._conn))
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
            return result

    def close(self) -> None:
        with self._lock:
            self._conn.close()
