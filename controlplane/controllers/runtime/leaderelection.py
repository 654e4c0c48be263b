"""Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it.

A candidate takes the lease when it is free or when its holder has not renewed it for
`lease_duration` as observed on the candidate's *own* clock (time since the lease record last
changed, never the holder's timestamps, so clock skew between machines does not matter). The
leader renews every `retry_period`; if it cannot renew for `renew_deadline` it stops leading
before anyone else may take over (renew_deadline < lease_duration), so two leaders never overlap.
On a clean stop the leader releases the lease so a successor takes over at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from controlplane.api import errors
from controlplane.client import Client
from controlplane.controllers.runtime import resources as R
from controlplane.controllers.runtime.clock import Clock, RealClock

__all__ = ["LeaderElector"]

log = logging.getLogger("pinnace.leaderelection")


def _micro_time(clock: Clock) -> str:
    # metav1.MicroTime: RFC 3339 with microseconds.
    return clock.now().strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(
        self,
        client: Client,
        name: str,
        identity: str,
        *,
        namespace: str = "kube-system",
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        clock: Clock | None = None,
    ) -> None:
        if renew_deadline >= lease_duration:
            raise ValueError("renew_deadline must be shorter than lease_duration")
        self._client = client
        self.name = name
        self.namespace = namespace
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self._clock = clock or RealClock()
        self._observed: dict[str, Any] | None = None  # the lease spec as last read
        self._observed_rv = ""
        self._observed_at = 0.0  # our monotonic clock when that record last changed
        self.is_leader = False

    async def run(self, stop: asyncio.Event, lead: Callable[[asyncio.Event], Awaitable[None]]) -> None:
        """Campaign until `stop`; while leading, run `lead(lost)`, which must return once `lost` is set."""
        while not stop.is_set():
            if not await self._acquire(stop):
                return
            log.info("%s became the leader of %s/%s", self.identity, self.namespace, self.name)
            lost = asyncio.Event()
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._renew(stop, lost))
                await lead(lost)
                lost.set()
            self.is_leader = False
            if stop.is_set():
                await self._release()
                return
            log.warning("%s lost the lease %s/%s", self.identity, self.namespace, self.name)

    async def _acquire(self, stop: asyncio.Event) -> bool:
        while not stop.is_set():
            with contextlib.suppress(errors.StatusError, OSError, TimeoutError):
                if await self._try_acquire_or_renew():
                    self.is_leader = True
                    return True
            await self._wait(stop, self.retry_period)
        return False

    async def _renew(self, stop: asyncio.Event, lost: asyncio.Event) -> None:
        """Renew until stopped or unable to; either way the term ends (`lost` is set)."""
        try:
            last_ok = self._clock.monotonic()
            while not stop.is_set() and not lost.is_set():
                await self._wait(stop, self.retry_period, lost)
                if stop.is_set() or lost.is_set():
                    return
                ok = False
                with contextlib.suppress(errors.StatusError, OSError, TimeoutError):
                    ok = await self._try_acquire_or_renew()
                now = self._clock.monotonic()
                if ok:
                    last_ok = now
                elif now - last_ok >= self.renew_deadline or not self._still_ours():
                    return
        finally:
            lost.set()

    def _still_ours(self) -> bool:
        return self._observed is not None and self._observed.get("holderIdentity") == self.identity

    async def _wait(self, stop: asyncio.Event, seconds: float, other: asyncio.Event | None = None) -> None:
        waiters = [asyncio.ensure_future(self._clock.sleep(seconds)), asyncio.ensure_future(stop.wait())]
        if other is not None:
            waiters.append(asyncio.ensure_future(other.wait()))
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()

    def _spec(self, *, transitions: int, acquire_time: str) -> dict[str, Any]:
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": int(self.lease_duration),
            "acquireTime": acquire_time,
            "renewTime": _micro_time(self._clock),
            "leaseTransitions": transitions,
        }

    async def _try_acquire_or_renew(self) -> bool:
        now_mono = self._clock.monotonic()
        try:
            lease = await self._client.get(R.LEASES, self.name, self.namespace)
        except errors.NotFound:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": self._spec(transitions=0, acquire_time=_micro_time(self._clock)),
            }
            created = await self._client.create(R.LEASES, body, self.namespace)
            self._observe(created, now_mono)
            return True
        spec = lease.get("spec") or {}
        rv = str(lease["metadata"].get("resourceVersion", ""))
        if rv != self._observed_rv:
            self._observe(lease, now_mono)
        holder = spec.get("holderIdentity") or ""
        duration = float(spec.get("leaseDurationSeconds") or self.lease_duration)
        if holder and holder != self.identity and now_mono < self._observed_at + duration:
            return False
        ours = holder == self.identity
        transitions = int(spec.get("leaseTransitions") or 0) + (0 if ours else 1)
        acquire_time = (
            spec.get("acquireTime") if ours and spec.get("acquireTime") else _micro_time(self._clock)
        )
        lease["spec"] = self._spec(transitions=transitions, acquire_time=str(acquire_time))
        # A PUT against the resourceVersion we read: two candidates racing cannot both win.
        updated = await self._client.request("PUT", R.LEASES.url(self.namespace, self.name), body=lease)
        self._observe(updated, self._clock.monotonic())
        return True

    def _observe(self, lease: dict[str, Any], at: float) -> None:
        self._observed = dict(lease.get("spec") or {})
        self._observed_rv = str(lease["metadata"].get("resourceVersion", ""))
        self._observed_at = at

    async def _release(self) -> None:
        """Give the lease up so a successor need not wait for it to expire (ReleaseOnCancel)."""
        with contextlib.suppress(errors.StatusError, OSError, TimeoutError):
            lease = await self._client.get(R.LEASES, self.name, self.namespace)
            spec = lease.get("spec") or {}
            if spec.get("holderIdentity") != self.identity:
                return
            lease["spec"] = {
                "leaseDurationSeconds": 1,
                "leaseTransitions": int(spec.get("leaseTransitions") or 0),
                "renewTime": _micro_time(self._clock),
                "acquireTime": _micro_time(self._clock),
            }
            await self._client.request("PUT", R.LEASES.url(self.namespace, self.name), body=lease)
            log.info("%s released the lease %s/%s", self.identity, self.namespace, self.name)
