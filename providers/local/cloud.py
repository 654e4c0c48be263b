"""The local simulated cloud: its state, how calls reach it, and what tests may do to it.

`LocalCloud` is what the capability classes share: the SQLite state (`StateStore`), the SDK
caller (off the event loop, rate-limited, retried), the fault injector, and a wall clock (wall
time, not monotonic, because other processes read the same state). Its console methods
(`stop_instance`, `terminate_instance`, `user_data`, ...) are what a test or the simulated node
operator uses: they change the cloud out of band, as a person or a failure would, bypassing
faults and the rate limit.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

from providers.calls import SdkCaller
from providers.errors import CloudError, NotFound, Transient
from providers.local.addresses import provider_id
from providers.local.faults import FaultInjector
from providers.local.settings import LocalSettings
from providers.local.state import Record, StateStore, Tx
from providers.model import Instance, InstanceState, NodeAddress
from providers.tags import SHARED, cluster_tag_key, owner_from_tags

__all__ = [
    "FIREWALL",
    "INSTANCE",
    "LOAD_BALANCER",
    "ROUTE",
    "ROUTE_TABLE",
    "TARGET_GROUP",
    "Clock",
    "LocalCloud",
    "instance_from_record",
    "translate",
]

T = TypeVar("T")
Clock = Callable[[], float]

INSTANCE = "instance"
LOAD_BALANCER = "load-balancer"
TARGET_GROUP = "target-group"
FIREWALL = "security-group"
ROUTE_TABLE = "route-table"
ROUTE = "route"

_LIVE = (InstanceState.PENDING, InstanceState.RUNNING, InstanceState.STOPPING, InstanceState.STOPPED)


def translate(exc: Exception) -> CloudError:
    """SQLite is the local cloud's 'SDK': a locked database is a fault worth retrying."""
    text = str(exc)
    if "locked" in text or "busy" in text:
        return Transient(f"local cloud: {text}", code="DatabaseLocked")
    return CloudError(f"local cloud: {type(exc).__name__}: {text}", code="InternalFailure")


def instance_from_record(record: Record) -> Instance:
    data = record.data
    addresses: list[NodeAddress] = [NodeAddress("InternalIP", data["private_ip"])]
    if data.get("public_ip"):
        addresses.append(NodeAddress("ExternalIP", data["public_ip"]))
    addresses.append(NodeAddress("InternalDNS", data["private_dns"]))
    addresses.append(NodeAddress("Hostname", data["private_dns"]))
    return Instance(
        id=record.id,
        provider_id=provider_id(data["zone"], record.id),
        name=record.name,
        state=InstanceState(data["state"]),
        instance_type=data["instance_type"],
        zone=data["zone"],
        region=data["region"],
        addresses=tuple(addresses),
        tags=dict(record.tags),
        owner=owner_from_tags(record.tags),
    )


class LocalCloud:
    def __init__(
        self,
        settings: LocalSettings,
        *,
        store: StateStore | None = None,
        caller: SdkCaller | None = None,
        faults: FaultInjector | None = None,
        clock: Clock = time.time,
    ) -> None:
        self.settings = settings
        self.store = store or StateStore(settings.state_file)
        f = settings.faults
        self.faults = faults or FaultInjector(
            f.rate,
            seed=f.seed,
            throttle_share=f.throttle_share,
            after_share=f.after_share,
            retry_after=f.retry_after,
        )
        self.caller = caller or SdkCaller(translate, qps=settings.qps, burst=settings.burst)
        self.clock = clock
        self.calls: Counter[str] = Counter()  # operation -> calls that reached the cloud (retries included)
        self._call_ids = itertools.count()

    # -- how every capability reaches the state ---------------------------------------------

    async def call(self, operation: str, fn: Callable[[Tx], T]) -> T:
        """One cloud API call: one transaction, in a worker thread, under the caller's limits."""
        return await self.caller.call(self._run, operation, fn)

    def _run(self, operation: str, fn: Callable[[Tx], T]) -> T:
        call_id = next(self._call_ids)
        self.calls[operation] += 1
        self.faults.before(operation, call_id)
        result = self.store.transact(fn)
        self.faults.after(operation, call_id)
        return result

    def close(self) -> None:
        self.store.close()

    # -- shared pieces of transactions -------------------------------------------------------

    def refresh(self, tx: Tx) -> None:
        """Let time pass: pending instances whose boot is over run; long-terminated ones vanish."""
        for record in tx.due(INSTANCE, self.clock()):
            if record.data["state"] == InstanceState.PENDING:
                tx.put(self.transition(record, InstanceState.RUNNING))
            elif record.data["state"] == InstanceState.TERMINATED:
                tx.delete(INSTANCE, record.id)

    def transition(self, record: Record, state: InstanceState) -> Record:
        """An instance in its new state, with the time of its next change of its own."""
        now = self.clock()
        if state == InstanceState.PENDING:
            ready = now + self.settings.boot_seconds
            return replace(record.with_data(state=state.value, ready_at=ready), due=ready)
        if state == InstanceState.TERMINATED:
            forget = now + self.settings.terminated_retention
            return replace(record.with_data(state=state.value, terminated_at=now), due=forget)
        return replace(record.with_data(state=state.value), due=None)

    def live_instances(self, tx: Tx, cluster_id: str) -> list[Record]:
        return [r for r in tx.owned_by(INSTANCE, cluster_id) if r.data["state"] in _LIVE]

    def route_tables(self, tx: Tx, cluster_id: str) -> list[Record]:
        """The cluster's route tables: those configured by id, else every table tagged for the
        cluster (owned or shared). The first call for a cluster makes `routeTables` of them,
        tagged `shared`, as the network's Terraform would have."""
        if ids := self.settings.route_table_ids:
            tables = [t for i in ids if (t := tx.get(ROUTE_TABLE, i)) is not None]
            missing = set(ids) - {t.id for t in tables}
            if missing:
                raise NotFound(
                    f"route tables {', '.join(sorted(missing))} do not exist",
                    code="InvalidRouteTableID.NotFound",
                )
            return tables
        key = cluster_tag_key(cluster_id)
        tables = [t for t in tx.all_of(ROUTE_TABLE) if key in t.tags]
        if not tables and self.settings.route_tables > 0 and not self._route_tables_made(tx, cluster_id):
            for index in range(self.settings.route_tables):
                table = Record(
                    kind=ROUTE_TABLE,
                    id=f"rtb-{cluster_id}-{index}",
                    name=f"{cluster_id}-{index}",
                    tags={key: SHARED, "Name": f"{cluster_id}-{index}"},
                    data={"limit": self.settings.route_limit},
                )
                tx.put(table)
                tables.append(table)
            tx.put(Record(kind="marker", id=f"route-tables/{cluster_id}", name=cluster_id))
        return tables

    @staticmethod
    def _route_tables_made(tx: Tx, cluster_id: str) -> bool:
        return tx.get("marker", f"route-tables/{cluster_id}") is not None

    # -- the console: out-of-band changes for tests and the simulated node operator -----------

    async def _set_state(self, instance_id: str, state: InstanceState) -> Instance:
        def run(tx: Tx) -> Instance:
            self.refresh(tx)
            record = tx.get(INSTANCE, instance_id)
            if record is None or record.data["state"] == InstanceState.TERMINATED:
                raise NotFound(f"instance {instance_id} does not exist", code="InvalidInstanceID.NotFound")
            record = self.transition(record, state)
            tx.put(record)
            return instance_from_record(record)

        return await self.console(run)

    async def console(self, fn: Callable[[Tx], T]) -> T:
        """A console action: no faults, no rate limit; it is not the cluster calling the cloud."""
        return await asyncio.to_thread(self.store.transact, fn)

    async def stop_instance(self, instance_id: str) -> Instance:
        return await self._set_state(instance_id, InstanceState.STOPPED)

    async def start_instance(self, instance_id: str) -> Instance:
        """Back to pending (running after `bootSeconds`)."""
        return await self._set_state(instance_id, InstanceState.PENDING)

    async def terminate_instance(self, instance_id: str) -> Instance:
        return await self._set_state(instance_id, InstanceState.TERMINATED)

    async def mark_running(self, instance_id: str) -> Instance:
        return await self._set_state(instance_id, InstanceState.RUNNING)

    async def user_data(self, instance_id: str) -> bytes:
        """What the instance was launched with (the simulated node agent boots from it)."""

        def run(tx: Tx) -> bytes:
            record = tx.get(INSTANCE, instance_id)
            if record is None:
                raise NotFound(f"instance {instance_id} does not exist", code="InvalidInstanceID.NotFound")
            return base64.b64decode(record.data.get("user_data", ""))

        return await self.console(run)

    async def add_route_table(
        self, cluster_id: str, *, table_id: str = "", tag_value: str = SHARED, limit: int | None = None
    ) -> str:
        """Another route table tagged for the cluster (its routes go into every such table);
        `table_id` for one the cloud config's `routeTableIDs` names."""

        def run(tx: Tx) -> str:
            if not self.settings.route_table_ids:
                self.route_tables(tx, cluster_id)  # make the defaults first, so they are not skipped later
            new_id = table_id or f"rtb-{uuid.uuid4().hex[:17]}"
            tx.put(
                Record(
                    kind=ROUTE_TABLE,
                    id=new_id,
                    name=new_id,
                    tags={cluster_tag_key(cluster_id): tag_value},
                    data={"limit": limit or self.settings.route_limit},
                )
            )
            return new_id

        return await self.console(run)

    async def describe(self, kind: str, resource_id: str) -> Record | None:
        """The raw record (listeners, targets, rules...), for tests that look inside."""
        return await self.console(lambda tx: tx.get(kind, resource_id))

    async def describe_all(self, kind: str) -> list[Record]:
        return await self.console(lambda tx: tx.all_of(kind))

    @staticmethod
    def new_instance_id() -> str:
        return f"i-{uuid.uuid4().hex[:17]}"
