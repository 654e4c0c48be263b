from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from providers.errors import CloudError, Transient
from providers.local.cloud import translate
from providers.local.state import Record, StateStore, Tx


def test_a_failed_call_leaves_nothing_half_written() -> None:
    store = StateStore()

    def half(tx: Tx) -> None:
        tx.put(Record(kind="instance", id="i-1", name="one", tags={"kubernetes.io/cluster/c": "owned"}))
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        store.transact(half)
    assert store.transact(lambda tx: tx.all_of("instance")) == []
    store.close()


def test_records_round_trip_and_are_indexed_by_owning_cluster(tmp_path: Path) -> None:
    store = StateStore(str(tmp_path / "s.db"))
    owned = Record(
        kind="route", id="r-1", name="r", tags={"kubernetes.io/cluster/c": "owned"}, data={"n": [1, 2]}
    )
    shared = Record(kind="route", id="r-2", name="r", tags={"kubernetes.io/cluster/c": "shared"})
    store.transact(lambda tx: (tx.put(owned), tx.put(shared)))
    assert store.transact(lambda tx: tx.get("route", "r-1")) == owned
    assert store.transact(lambda tx: tx.owned_by("route", "c")) == [owned]
    assert store.transact(lambda tx: tx.all_owned("c")) == [owned]
    assert [r.id for r in store.transact(lambda tx: tx.by_name("route", "r"))] == ["r-1", "r-2"]
    assert store.transact(lambda tx: tx.delete("route", "r-1"))
    assert not store.transact(lambda tx: tx.delete("route", "r-1"))
    store.close()
    reopened = StateStore(str(tmp_path / "s.db"))
    assert reopened.transact(lambda tx: tx.all_of("route")) == [shared]
    reopened.close()


def test_a_locked_database_is_worth_retrying() -> None:
    assert isinstance(translate(sqlite3.OperationalError("database is locked")), Transient)
    other = translate(sqlite3.IntegrityError("UNIQUE constraint failed"))
    assert type(other) is CloudError
    assert other.code == "InternalFailure"


def test_column_and_where_read_single_fields() -> None:
    store = StateStore()
    store.transact(
        lambda tx: [
            tx.put(Record(kind="instance", id="i-1", name="a", data={"state": "running", "ip": "10.0.0.4"})),
            tx.put(
                Record(kind="instance", id="i-2", name="b", data={"state": "terminated", "ip": "10.0.0.5"})
            ),
            tx.put(Record(kind="load-balancer", id="lb", name="lb", data={"ip": "192.0.2.4"})),
        ]
    )
    assert sorted(store.transact(lambda tx: tx.column("instance", "ip"))) == ["10.0.0.4", "10.0.0.5"]
    assert store.transact(lambda tx: tx.column("instance", "ip", unless_state="terminated")) == ["10.0.0.4"]
    assert store.transact(lambda tx: tx.column("load-balancer", "ip")) == ["192.0.2.4"]
    assert [r.id for r in store.transact(lambda tx: tx.where("instance", "ip", "10.0.0.5"))] == ["i-2"]
    store.close()
