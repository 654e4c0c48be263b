"""LatestValues: a hit is always the current value, however reads race writes and evictions."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest

from controlplane.storage.interface import KeyValue
from controlplane.storage.latest import LatestValues


def kv(key: str, revision: int) -> KeyValue:
    return KeyValue(key=key, value=b"v%d" % revision, create_revision=1, mod_revision=revision)


def test_lru_keeps_the_recently_used() -> None:
    latest = LatestValues(limit=2)
    latest.written("a", kv("a", 1))
    latest.written("b", kv("b", 2))
    assert latest.lookup("a") == (True, kv("a", 1))  # "a" is now the most recent
    latest.written("c", kv("c", 3))
    assert latest.lookup("b") == (False, None)
    assert latest.lookup("a") == (True, kv("a", 1))
    assert latest.lookup("c") == (True, kv("c", 3))
    assert len(latest) == 2


def test_known_absent_is_a_hit() -> None:
    latest = LatestValues()
    latest.written("gone", None)
    assert latest.lookup("gone") == (True, None)


def test_read_result_never_replaces_a_write() -> None:
    latest = LatestValues()
    token = latest.read_started()
    latest.written("k", kv("k", 5))
    latest.read_done("k", kv("k", 4), token)
    assert latest.lookup("k") == (True, kv("k", 5))


def test_read_result_dropped_when_the_write_was_evicted_meanwhile() -> None:
    latest = LatestValues(limit=1)
    token = latest.read_started()
    latest.written("k", kv("k", 5))
    latest.written("other", kv("other", 6))  # evicts k's newer value
    latest.read_done("k", kv("k", 4), token)
    assert latest.lookup("k") == (False, None)


def test_quiet_read_is_cached() -> None:
    latest = LatestValues()
    token = latest.read_started()
    latest.read_done("k", kv("k", 4), token)
    assert latest.lookup("k") == (True, kv("k", 4))


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError):
        LatestValues(limit=0)


@dataclass
class _Read:
    key: str
    token: int
    result: KeyValue | None = None
    ran: bool = False


# Every script of up to five steps over two keys (small-scope exhaustive: the races need only a
# read, a write to its key and a write that evicts it, in some order).
STEPS = [
    ("write", "a", True),
    ("write", "a", False),  # delete
    ("write", "b", True),
    ("start", "a", True),  # the read takes its snapshot at once
    ("start", "a", False),  # ... or when it runs
    ("run", "", False),  # the oldest read not yet run takes its snapshot
    ("done", "", False),  # the oldest read comes back
    ("done", "", True),  # the newest read comes back
]


def _run(limit: int, script: tuple[tuple[str, str, bool], ...]) -> None:
    """A model of the store: writes commit to `db` and are delivered at once; a read that missed
    snapshots `db` at some point after it started and comes back later, in any order."""
    latest = LatestValues(limit=limit)
    db: dict[str, KeyValue | None] = {}
    reads: list[_Read] = []
    for revision, (op, key, flag) in enumerate(script, start=1):
        if op == "write":
            db[key] = kv(key, revision) if flag else None
            latest.written(key, db[key])
        elif op == "start":
            read = _Read(key, latest.read_started())
            if flag:
                read.result, read.ran = db.get(key), True
            reads.append(read)
        elif op == "run":
            for read in reads:
                if not read.ran:
                    read.result, read.ran = db.get(read.key), True
                    break
        elif op == "done" and reads:
            read = reads.pop(-1 if flag else 0)
            if not read.ran:
                read.result = db.get(read.key)
            latest.read_done(read.key, read.result, read.token)
        assert len(latest) <= limit
        for k in ("a", "b"):
            hit, value = latest.lookup(k)
            if hit:
                assert value == db.get(k), (limit, script)


@pytest.mark.parametrize("limit", [1, 2])
def test_a_hit_is_always_the_database_value(limit: int) -> None:
    for length in range(1, 6):
        for script in itertools.product(STEPS, repeat=length):
            _run(limit, script)
