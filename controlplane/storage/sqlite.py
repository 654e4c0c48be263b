"""The embedded SQLite backend: an append-only revision log in the shape of kine's table.

Schema. `log` is the history: one row per write, its INTEGER PRIMARY KEY row id *is* the revision
(AUTOINCREMENT, so a revision is never reused even when compaction deletes the newest rows).
UNIQUE(name, prev_revision) makes the database itself refuse a lost update: two writes built on
the same base row cannot both land. `current` maps each live key to its latest row id and is kept
in the same transaction as the log. We keep it, rather than kine's `MAX(id) ... GROUP BY name`,
because a latest-state list then costs one index range scan over live keys only, however long the
history or however many deleted keys the prefix once held; reads at an older revision use the
kine query over the (name, id) index. `meta` holds the compacted revision durably.

Writes. One writer thread owns the only writing connection. Callers queue a request and await
a future; the writer drains whatever is queued (up to `batch_limit`), applies each request under
its own SAVEPOINT (a failed check rolls back only that request), commits once, and only then
resolves the futures and publishes the events, in revision order, on the event loop. Nothing is
acknowledged before its COMMIT returned, and with WAL + synchronous=FULL (the default) a COMMIT is
on disk. Group commit is what makes FULL affordable: one fsync covers a whole batch.

Reads run on a small thread pool, each thread with its own connection; every read is one
transaction, so a list and the revision it reports come from the same WAL snapshot.

One process owns a database file: an exclusive lock on `<path>.lock` refuses a second opener,
since live watch events only fan out inside the process that wrote them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import fcntl
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from controlplane.storage.compaction import Clock, Compactor, RetentionPolicy
from controlplane.storage.errors import (
    Compacted,
    KeyExists,
    KeyNotFound,
    RevisionConflict,
    StorageError,
    Unavailable,
)
from controlplane.storage.fanout import DEFAULT_QUEUE_LIMIT, Watcher, WatchHub
from controlplane.storage.interface import Event, KeyValue, ListResult, Trigger
from controlplane.storage.latest import DEFAULT_LIMIT as LATEST_LIMIT
from controlplane.storage.latest import LatestValues
from controlplane.storage.metrics import COMPACTIONS, CURRENT_REVISION, GROUP_COMMIT_BATCH_SIZE, timed
from controlplane.storage.revlog import FutureRevision, Row, check_read_revision, prefix_end

__all__ = ["SCHEMA", "SqliteStorage"]

log = logging.getLogger(__name__)

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    created INTEGER NOT NULL,
    deleted INTEGER NOT NULL,
    create_revision INTEGER NOT NULL,
    prev_revision INTEGER NOT NULL,
    value BLOB NOT NULL,
    old_value BLOB
);
CREATE UNIQUE INDEX IF NOT EXISTS log_name_prev_revision ON log (name, prev_revision);
CREATE INDEX IF NOT EXISTS log_name_id ON log (name, id);
CREATE TABLE IF NOT EXISTS current (
    name TEXT PRIMARY KEY,
    id INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
"""

_ROW_COLUMNS = "id, name, created, deleted, create_revision, prev_revision, value, old_value"
_REPLAY_CHUNK = 1000
_COMPACT_CHUNK = 1000  # revisions per compaction transaction, so writers never wait long


def _row(r: Any) -> Row:
    return Row(r[0], r[1], bool(r[2]), bool(r[3]), r[4], r[5], bytes(r[6]), r[7])


def _connect(path: str) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)


# --- the writer: runs only on the writer thread --------------------------------------------------


@dataclass(slots=True)
class _Write:
    op: Literal["create", "update", "delete", "compact"]
    key: str
    value: bytes
    expected: int | None  # for compact: the target revision
    future: asyncio.Future[Row | None]


Outcome = Row | StorageError | None


class _LogWriter:
    """The single writing connection and the revision counter it owns."""

    def __init__(self, path: str, synchronous: str) -> None:
        self.path = path
        self.synchronous = synchronous
        self.revision = 0
        self.compacted = 0
        self._conn: sqlite3.Connection | None = None
        self._lock_fd: int | None = None

    @property
    def conn(self) -> sqlite3.Connection:
        assert self._conn is not None, "writer not open"
        return self._conn

    def open(self) -> None:
        fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise Unavailable(f"database {self.path} is in use by another process") from None
        self._lock_fd = fd
        conn = self._conn = _connect(self.path)
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise Unavailable(f"cannot enable WAL on {self.path} (journal_mode={mode})")
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        conn.executescript(SCHEMA)
        seq, top, compacted = conn.execute(
            "SELECT (SELECT seq FROM sqlite_sequence WHERE name = 'log'), (SELECT MAX(id) FROM log),"
            " (SELECT value FROM meta WHERE key = 'compacted')"
        ).fetchone()
        self.revision = max(seq or 0, top or 0)
        self.compacted = compacted or 0

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def commit(self, batch: list[_Write]) -> list[Outcome]:
        """Apply `batch` in one transaction; one outcome per request, in order."""
        base = self.revision, self.compacted
        outcomes: list[Outcome] = []
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            for req in batch:
                before = self.revision, self.compacted
                conn.execute("SAVEPOINT request")
                try:
                    outcome: Outcome = self._apply(req)
                except StorageError as exc:
                    conn.execute("ROLLBACK TO request")
                    self.revision, self.compacted = before
                    outcome = exc
                conn.execute("RELEASE request")
                outcomes.append(outcome)
            conn.execute("COMMIT")
        except Exception as exc:  # the whole transaction is lost: nothing in it was written
            log.exception("storage commit of %d requests failed", len(batch))
            self.revision, self.compacted = base
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            return [Unavailable(f"storage write failed: {exc}")] * len(batch)
        return outcomes

    def _apply(self, req: _Write) -> Row | None:
        if req.op == "compact":
            assert req.expected is not None
            self._compact(req.expected)
            return None
        try:
            if req.op == "create":
                return self._create(req.key, req.value)
            if req.op == "update":
                assert req.expected is not None
                return self._update(req.key, req.value, req.expected)
            return self._delete(req.key, req.expected)
        except sqlite3.IntegrityError:
            # UNIQUE(name, prev_revision): another write already superseded the same base row.
            current = self._current(req.key)
            if req.op == "create":
                raise KeyExists(req.key) from None
            if current is None:
                raise KeyNotFound(req.key) from None
            raise RevisionConflict(req.key, req.expected or 0, current.kv()) from None

    def _current(self, key: str) -> Row | None:
        r = self.conn.execute(
            f"SELECT {', '.join('l.' + c for c in _ROW_COLUMNS.split(', '))}"
            " FROM current c JOIN log l ON l.id = c.id WHERE c.name = ?",
            (key,),
        ).fetchone()
        return _row(r) if r is not None else None

    def _append(self, row: Row) -> Row:
        self.conn.execute(
            f"INSERT INTO log ({_ROW_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                row.id,
                row.name,
                int(row.created),
                int(row.deleted),
                row.create_revision,
                row.prev_revision,
                row.value,
                row.old_value,
            ),
        )
        if row.deleted:
            self.conn.execute("DELETE FROM current WHERE name = ?", (row.name,))
        else:
            self.conn.execute("INSERT OR REPLACE INTO current (name, id) VALUES (?, ?)", (row.name, row.id))
        self.revision = row.id
        return row

    def _create(self, key: str, value: bytes) -> Row:
        if self.conn.execute("SELECT 1 FROM current WHERE name = ?", (key,)).fetchone() is not None:
            raise KeyExists(key)
        # A re-created key continues its chain from its tombstone, so UNIQUE(name, prev) still holds.
        (prev,) = self.conn.execute("SELECT MAX(id) FROM log WHERE name = ?", (key,)).fetchone()
        rev = self.revision + 1
        return self._append(Row(rev, key, True, False, rev, prev or 0, value, None))

    def _live(self, key: str, expected: int | None) -> Row:
        current = self._current(key)
        if current is None:
            raise KeyNotFound(key)
        if expected is not None and current.id != expected:
            raise RevisionConflict(key, expected, current.kv())
        return current

    def _update(self, key: str, value: bytes, expected: int) -> Row:
        old = self._live(key, expected)
        rev = self.revision + 1
        return self._append(Row(rev, key, False, False, old.create_revision, old.id, value, old.value))

    def _delete(self, key: str, expected: int | None) -> Row:
        old = self._live(key, expected)
        rev = self.revision + 1
        return self._append(Row(rev, key, False, True, old.create_revision, old.id, old.value, None))

    def _compact(self, target: int) -> None:
        lo = self.compacted
        if target <= lo:
            return
        # Rows superseded by a write at or below the target, and tombstones at or below it. The
        # latest row of a live key is never anyone's prev_revision, so current values stay.
        self.conn.execute(
            "DELETE FROM log WHERE id IN"
            " (SELECT prev_revision FROM log WHERE id > ? AND id <= ? AND prev_revision > 0)",
            (lo, target),
        )
        self.conn.execute("DELETE FROM log WHERE id > ? AND id <= ? AND deleted = 1", (lo, target))
        self.conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('compacted', ?)", (target,))
        self.compacted = target


# --- reads: run on the reader pool, one transaction (one snapshot) each -----------------------


def _bounds(conn: sqlite3.Connection) -> tuple[int, int]:
    """(current revision, compacted revision) in this snapshot."""
    seq, compacted = conn.execute(
        "SELECT (SELECT seq FROM sqlite_sequence WHERE name = 'log'),"
        " (SELECT value FROM meta WHERE key = 'compacted')"
    ).fetchone()
    return seq or 0, compacted or 0


def _key_range(column: str, prefix: str, start_after: str) -> tuple[str, list[object]]:
    conds = [f"{column} >= ?"]
    params: list[object] = [prefix]
    end = prefix_end(prefix)
    if end is not None:
        conds.append(f"{column} < ?")
        params.append(end)
    if start_after:
        conds.append(f"{column} > ?")
        params.append(start_after)
    return " AND ".join(conds), params


def _read_get(conn: sqlite3.Connection, key: str, revision: int | None) -> KeyValue | None:
    if revision is None:
        r = conn.execute(
            "SELECT l.value, l.id, l.create_revision FROM current c JOIN log l ON l.id = c.id"
            " WHERE c.name = ?",
            (key,),
        ).fetchone()
        return KeyValue(key, bytes(r[0]), r[1], r[2]) if r is not None else None
    current, compacted = _bounds(conn)
    check_read_revision(revision, current=current, compacted=compacted)
    r = conn.execute(
        "SELECT value, id, create_revision, deleted FROM log WHERE name = ? AND id <= ?"
        " ORDER BY id DESC LIMIT 1",
        (key, revision),
    ).fetchone()
    if r is None or r[3]:
        return None
    return KeyValue(key, bytes(r[0]), r[1], r[2])


def _read_list(
    conn: sqlite3.Connection, prefix: str, revision: int | None, limit: int, start_after: str
) -> ListResult:
    current, compacted = _bounds(conn)

    def page(after: str, n: int) -> tuple[str, list[object]]:
        if revision is None:
            where, params = _key_range("c.name", prefix, after)
            sql = (
                "SELECT l.name, l.value, l.id, l.create_revision FROM current c JOIN log l ON l.id = c.id"
                f" WHERE {where} ORDER BY c.name"
            )
        else:
            where, params = _key_range("name", prefix, after)
            sql = (
                "SELECT l.name, l.value, l.id, l.create_revision FROM log l JOIN"
                f" (SELECT MAX(id) AS id FROM log WHERE {where} AND id <= ? GROUP BY name) m ON l.id = m.id"
                " WHERE l.deleted = 0 ORDER BY l.name"
            )
            params.append(revision)
        if n:
            sql += " LIMIT ?"
            params.append(n)
        return sql, params

    if revision is not None:
        check_read_revision(revision, current=current, compacted=compacted)
    sql, params = page(start_after, limit)
    items = [KeyValue(r[0], bytes(r[1]), r[2], r[3]) for r in conn.execute(sql, params)]
    remaining = 0
    if limit and len(items) == limit:
        sql, params = page(items[-1].key, 0)
        (remaining,) = conn.execute(f"SELECT COUNT(*) FROM ({sql})", params).fetchone()
    return ListResult(
        items, current if revision is None else revision, more=remaining > 0, remaining=remaining
    )


def _read_events(conn: sqlite3.Connection, prefix: str, after: int, limit: int) -> list[Event]:
    _, compacted = _bounds(conn)
    if after < compacted:
        raise Compacted(after, compacted)
    where, params = _key_range("name", prefix, "") if prefix else ("1", [])
    rows = conn.execute(
        f"SELECT {_ROW_COLUMNS} FROM log WHERE id > ? AND {where} ORDER BY id LIMIT ?",
        [after, *params, limit],
    )
    return [_row(r).event() for r in rows]


class _ReaderPool:
    """A few threads, each with its own read-only connection (WAL lets them read concurrently)."""

    def __init__(self, path: str, size: int) -> None:
        self._path = path
        self._executor = concurrent.futures.ThreadPoolExecutor(size, thread_name_prefix="pinnace-sqlite-read")
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, self._call, fn)
        except RuntimeError as exc:  # submitted after shutdown
            raise Unavailable("storage is closed") from exc

    def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = _connect(self._path)
            conn.execute("PRAGMA query_only = ON")
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        try:
            conn.execute("BEGIN")
            try:
                return fn(conn)
            finally:
                conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            raise Unavailable(f"storage read failed: {exc}") from exc

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        with self._lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()


# --- the store ---------------------------------------------------------------------------------


# Latest lists of small prefixes (at most _SMALL_LIST items), answered from memory: admission
# lists webhook configurations, LimitRanges, ResourceQuotas and PriorityClasses on every write,
# almost always the same few (or no) items, and each list is otherwise a round trip through the
# reader threads. An entry is dropped by the delivery of any event under its prefix; a read
# that raced such a delivery, or whose snapshot held commits not yet delivered, is not kept.
# A hit reports the delivered revision: every event up to it has been applied and none since
# the entry was made touched the prefix, so the items are the prefix's content at it.
_SMALL_LIST = 32
_SMALL_LIST_PREFIXES = 4096


class SqliteStorage:
    def __init__(
        self,
        path: str,
        *,
        synchronous: str = "FULL",
        compaction_interval: float = 60.0,
        retain_revisions: int = 1000,
        retain_seconds: float = 300.0,
        clock: Clock = time.monotonic,
        watch_queue_limit: int = DEFAULT_QUEUE_LIMIT,
        batch_limit: int = 512,
        readers: int = 4,
        latest_limit: int = LATEST_LIMIT,
    ) -> None:
        synchronous = synchronous.upper()
        if synchronous not in ("FULL", "NORMAL", "EXTRA"):
            raise ValueError(f"synchronous must be FULL or NORMAL, got {synchronous!r}")
        self.path = os.path.abspath(path)
        self._writer = _LogWriter(self.path, synchronous)
        self._batch_limit = batch_limit
        self._reader_count = readers
        # The loop hands the writer whole ticks' worth of requests: `_pending` collects what one
        # loop iteration submits and `_flush` (scheduled once per tick) queues it as one list.
        self._queue: queue.SimpleQueue[list[_Write] | None] = queue.SimpleQueue()
        self._pending: list[_Write] = []
        self._latest = LatestValues(latest_limit)
        self._small_lists: dict[str, list[KeyValue]] = {}
        self._lists_reading: dict[str, int] = {}  # prefix -> latest lists of it in flight
        self._lists_touched: set[str] = set()  # ... and written under while in flight
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._readers: _ReaderPool | None = None
        self._hub = WatchHub(watch_queue_limit)
        self._revision = 0
        self._compacted = 0
        self._closed = False
        self.compactor = Compactor(
            self, RetentionPolicy(retain_revisions, retain_seconds), clock, compaction_interval
        )
        self.largest_batch = 0  # for tests and debugging: the biggest group commit so far

    # lifecycle

    async def start(self) -> None:
        if self._thread is not None:
            return
        self._loop = asyncio.get_running_loop()
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(
            target=self._writer_main, args=(ready,), name="pinnace-sqlite-writer", daemon=True
        )
        self._thread.start()
        await asyncio.wrap_future(ready)
        self._revision = self._writer.revision
        self._compacted = self._writer.compacted
        CURRENT_REVISION.set(self._revision)
        self._readers = _ReaderPool(self.path, self._reader_count)
        self.compactor.start()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self.compactor.stop()
        if self._thread is not None:
            self._flush()
            self._queue.put(None)  # after every accepted write: they are committed first
            await asyncio.to_thread(self._thread.join)
        self._hub.close_all()
        if self._readers is not None:
            await asyncio.to_thread(self._readers.close)

    async def __aenter__(self) -> SqliteStorage:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _check_open(self) -> _ReaderPool:
        if self._closed or self._readers is None:
            raise Unavailable("storage is closed" if self._closed else "storage is not started")
        return self._readers

    # the writer thread

    def _writer_main(self, ready: concurrent.futures.Future[None]) -> None:
        try:
            self._writer.open()
        except Exception as exc:
            self._writer.close()
            ready.set_exception(exc if isinstance(exc, StorageError) else Unavailable(f"cannot open: {exc}"))
            return
        ready.set_result(None)
        try:
            stop = False
            while not stop:
                first = self._queue.get()
                if first is None:
                    break
                batch = first
                while len(batch) < self._batch_limit:
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        stop = True
                        break
                    batch += more
                outcomes = self._writer.commit(batch)
                assert self._loop is not None
                self._loop.call_soon_threadsafe(self._deliver, batch, outcomes)
        finally:
            self._writer.close()

    def _deliver(self, batch: list[_Write], outcomes: list[Outcome]) -> None:
        """On the loop, after COMMIT: acknowledge every request, then publish in revision order."""
        events: list[Event] = []
        for req, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, StorageError):
                if not req.future.done():
                    req.future.set_exception(outcome)
                continue
            if isinstance(outcome, Row):
                events.append(outcome.event())
                self._revision = max(self._revision, outcome.id)
            elif req.op == "compact" and req.expected is not None:
                self._compacted = max(self._compacted, req.expected)
            if not req.future.done():
                req.future.set_result(outcome)
        for event in events:
            self._latest.written(event.kv.key, event.kv if event.type == "PUT" else None)
        if self._small_lists or self._lists_reading:
            self._invalidate_lists(events)
        GROUP_COMMIT_BATCH_SIZE.observe(len(batch))
        self.largest_batch = max(self.largest_batch, len(batch))
        CURRENT_REVISION.set(self._revision)
        self._hub.publish(events)

    def _invalidate_lists(self, events: list[Event]) -> None:
        """Forget the cached lists of every "/"-terminated prefix of each event's key (the only
        prefixes cached), and mark in-flight reads of them as raced."""
        cached, reading = self._small_lists, self._lists_reading
        for event in events:
            key = event.kv.key
            cut = key.find("/")
            while cut != -1:
                prefix = key[: cut + 1]
                cached.pop(prefix, None)
                if prefix in reading:
                    self._lists_touched.add(prefix)
                cut = key.find("/", cut + 1)

    async def _latest_small_list(self, readers: _ReaderPool, prefix: str) -> ListResult:
        hit = self._small_lists.get(prefix)
        if hit is not None:
            return ListResult(list(hit), self._revision, more=False)
        self._lists_reading[prefix] = self._lists_reading.get(prefix, 0) + 1
        try:
            result = await readers.run(lambda conn: _read_list(conn, prefix, None, 0, ""))
        finally:
            left = self._lists_reading[prefix] - 1
            if left:
                self._lists_reading[prefix] = left
                raced = prefix in self._lists_touched
            else:
                del self._lists_reading[prefix]
                raced = prefix in self._lists_touched
                self._lists_touched.discard(prefix)
        if not raced and len(result.items) <= _SMALL_LIST and result.revision <= self._revision:
            if len(self._small_lists) >= _SMALL_LIST_PREFIXES:
                self._small_lists.clear()
            self._small_lists[prefix] = list(result.items)
        return result

    async def _submit(
        self,
        op: Literal["create", "update", "delete", "compact"],
        key: str,
        value: bytes,
        expected: int | None,
    ) -> Row | None:
        self._check_open()
        assert self._loop is not None
        future: asyncio.Future[Row | None] = self._loop.create_future()
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(_Write(op, key, value, expected, future))
        return await future

    def _flush(self) -> None:
        if self._pending:
            self._queue.put(self._pending)
            self._pending = []

    async def _write(
        self, op: Literal["create", "update", "delete"], key: str, value: bytes, expected: int | None
    ) -> KeyValue:
        row = await self._submit(op, key, value, expected)
        assert row is not None
        return row.kv()

    # the Storage protocol

    async def current_revision(self) -> int:
        return self._revision

    async def compacted_revision(self) -> int:
        return self._compacted

    async def get(self, key: str, *, revision: int | None = None) -> KeyValue | None:
        with timed("get"):
            readers = self._check_open()
            if revision is not None:
                return await readers.run(lambda conn: _read_get(conn, key, revision))
            hit, cached = self._latest.lookup(key)
            if hit:
                return cached
            token = self._latest.read_started()
            found = await readers.run(lambda conn: _read_get(conn, key, None))
            self._latest.read_done(key, found, token)
            return found

    async def list(
        self,
        prefix: str,
        *,
        revision: int | None = None,
        limit: int = 0,
        start_after: str = "",
    ) -> ListResult:
        if limit < 0:
            raise ValueError(f"limit must not be negative, got {limit}")
        with timed("list"):
            readers = self._check_open()
            if revision is None and not limit and not start_after and prefix.endswith("/"):
                return await self._latest_small_list(readers, prefix)
            return await readers.run(lambda conn: _read_list(conn, prefix, revision, limit, start_after))

    def peek_list(self, prefix: str) -> Sequence[KeyValue] | None:
        # The small-list cache's own list: replaced, never changed in place, when the prefix moves.
        return self._small_lists.get(prefix)

    async def create(self, key: str, value: bytes) -> KeyValue:
        with timed("create"):
            return await self._write("create", key, value, None)

    async def update(self, key: str, value: bytes, *, expected_revision: int) -> KeyValue:
        with timed("update"):
            return await self._write("update", key, value, expected_revision)

    async def delete(self, key: str, *, expected_revision: int | None = None) -> KeyValue:
        with timed("delete"):
            return await self._write("delete", key, b"", expected_revision)

    async def watch(self, prefix: str, *, revision: int, trigger: Trigger | None = None) -> Watcher:
        readers = self._check_open()
        if revision < self._compacted:
            raise Compacted(revision, self._compacted)

        async def replay(after: int) -> tuple[list[Event], bool]:
            events = await readers.run(lambda conn: _read_events(conn, prefix, after, _REPLAY_CHUNK))
            return events, len(events) < _REPLAY_CHUNK

        return self._hub.subscribe(prefix, revision, replay, trigger)

    async def compact(self, revision: int) -> None:
        self._check_open()
        if revision > self._revision:
            raise FutureRevision(revision, self._revision)
        if revision <= self._compacted:
            return
        for target in range(self._compacted + _COMPACT_CHUNK, revision, _COMPACT_CHUNK):
            await self._submit("compact", "", b"", target)
        await self._submit("compact", "", b"", revision)
        COMPACTIONS.inc()
