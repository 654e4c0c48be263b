"""ClusterIP and NodePort allocation with no double allocation.

Each allocated address or port is a key in the revision log (`/registry/_alloc/...`), created with
create-if-absent, so two API servers (or two concurrent requests) can never hand out the same one:
the log itself arbitrates. A write that fails after allocating releases what it took.
"""

from __future__ import annotations

import contextlib
import ipaddress
import random
from dataclasses import dataclass, field

from controlplane.api import errors
from controlplane.storage import errors as storage_errors
from controlplane.storage.interface import Storage

__all__ = ["Allocation", "NodePortAllocator", "ServiceIPAllocator"]

_PREFIX = "/registry/_alloc/"


@dataclass
class Allocation:
    """What one request allocated; released when the request fails or is a dry run."""

    keys: list[str] = field(default_factory=list)

    async def release(self, storage: Storage) -> None:
        for key in self.keys:
            with contextlib.suppress(storage_errors.KeyNotFound):
                await storage.delete(key)
        self.keys.clear()


class _KeyAllocator:
    def __init__(self, storage: Storage, kind: str, rand: random.Random | None = None) -> None:
        self._storage = storage
        self._kind = kind
        self._rand = rand or random.Random()

    def _key(self, value: str) -> str:
        return f"{_PREFIX}{self._kind}/{value}"

    async def claim(self, value: str, owner: str, allocation: Allocation) -> bool:
        try:
            await self._storage.create(self._key(value), owner.encode())
        except storage_errors.KeyExists:
            return False
        allocation.keys.append(self._key(value))
        return True

    async def release(self, value: str) -> None:
        with contextlib.suppress(storage_errors.KeyNotFound):
            await self._storage.delete(self._key(value))

    async def in_use(self) -> set[str]:
        prefix = f"{_PREFIX}{self._kind}/"
        page = await self._storage.list(prefix)
        return {kv.key[len(prefix) :] for kv in page.items}


class ServiceIPAllocator(_KeyAllocator):
    def __init__(self, storage: Storage, cidr: str, rand: random.Random | None = None) -> None:
        super().__init__(storage, "clusterips", rand)
        self.network = ipaddress.ip_network(cidr, strict=False)
        # The first address is reserved for the `kubernetes` Service, as upstream.
        self._first = int(self.network.network_address) + 1
        self._last = int(self.network.broadcast_address) - 1

    @property
    def kubernetes_service_ip(self) -> str:
        return str(ipaddress.ip_address(self._first))

    async def allocate(self, owner: str, allocation: Allocation, requested: str = "") -> str:
        if requested:
            try:
                address = ipaddress.ip_address(requested)
            except ValueError as exc:
                raise _invalid("spec.clusterIPs[0]", requested, "must be a valid IP address") from exc
            if address not in self.network:
                raise _invalid(
                    "spec.clusterIPs[0]",
                    requested,
                    f"failed to allocate IP {requested}: the provided IP ({requested}) is not in the valid range. "
                    f"The range of valid IPs is {self.network}",
                )
            if not await self.claim(requested, owner, allocation):
                raise _invalid(
                    "spec.clusterIPs[0]",
                    requested,
                    f"failed to allocate IP {requested}: provided IP is already allocated",
                )
            return requested
        size = self._last - self._first + 1
        start = self._rand.randrange(size)
        # Random probing first (cheap while the range is sparse), then a scan that is sure to finish.
        for attempt in range(min(size, 64)):
            candidate = str(ipaddress.ip_address(self._first + (start + attempt * 7919) % size))
            if await self.claim(candidate, owner, allocation):
                return candidate
        used = await self.in_use()
        for offset in range(size):
            candidate = str(ipaddress.ip_address(self._first + (start + offset) % size))
            if candidate not in used and await self.claim(candidate, owner, allocation):
                return candidate
        raise errors.InternalError(message="failed to allocate a serviceIP: range is full")


class NodePortAllocator(_KeyAllocator):
    def __init__(
        self, storage: Storage, low: int = 30000, high: int = 32767, rand: random.Random | None = None
    ) -> None:
        super().__init__(storage, "nodeports", rand)
        self.low = low
        self.high = high

    async def allocate(self, owner: str, allocation: Allocation, field_path: str, requested: int = 0) -> int:
        if requested:
            if not self.low <= requested <= self.high:
                raise _invalid(
                    field_path,
                    requested,
                    f"provided port is not in the valid range. The range of valid ports is {self.low}-{self.high}",
                )
            if not await self.claim(str(requested), owner, allocation):
                raise _invalid(field_path, requested, "provided port is already allocated")
            return requested
        size = self.high - self.low + 1
        start = self._rand.randrange(size)
        for attempt in range(min(size, 64)):
            candidate = self.low + (start + attempt * 104729) % size
            if await self.claim(str(candidate), owner, allocation):
                return candidate
        used = await self.in_use()
        for offset in range(size):
            candidate = self.low + (start + offset) % size
            if str(candidate) not in used and await self.claim(str(candidate), owner, allocation):
                return candidate
        raise errors.InternalError(message="failed to allocate a nodePort: range is full")


def _invalid(path: str, value: object, message: str) -> errors.Invalid:
    shown = f'"{value}"' if isinstance(value, str) else str(value)
    return errors.Invalid(
        message=f"{path}: Invalid value: {shown}: {message}",
        causes=[errors.Cause(errors.FIELD_VALUE_INVALID, f"Invalid value: {shown}: {message}", path)],
    )
