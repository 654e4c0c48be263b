"""Pod addresses on one node, as the host-local IPAM plugin hands them out.

Each range skips its network address, its first host (the bridge's gateway) and, for IPv4, the
broadcast address; allocation walks round-robin from the last address given, so a freed address
is not reused at once (host-local does the same, which keeps stale endpoints from pointing at a
new pod).
"""

from __future__ import annotations

import ipaddress

__all__ = ["Exhausted", "PodIPAllocator", "fallback_cidr"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class Exhausted(Exception):
    """No free address is left in a range."""


class _Range:
    def __init__(self, network: Network) -> None:
        self.network = network
        self._first = int(network.network_address) + 2
        last = int(network.broadcast_address)
        self._last = last - 1 if network.version == 4 else last
        if self._last < self._first:
            raise ValueError(f"pod CIDR {network} has no usable addresses")
        self._cursor = self._first - 1
        self.used: set[int] = set()

    def contains(self, ip: Address) -> bool:
        return ip.version == self.network.version and self._first <= int(ip) <= self._last

    def allocate(self) -> Address:
        size = self._last - self._first + 1
        if len(self.used) >= size:
            raise Exhausted(f"no free address in {self.network}")
        candidate = self._cursor
        for _ in range(size):
            candidate = candidate + 1 if candidate < self._last else self._first
            if candidate not in self.used:
                self.used.add(candidate)
                self._cursor = candidate
                return ipaddress.ip_address(candidate)
        raise Exhausted(f"no free address in {self.network}")  # pragma: no cover - size checked


class PodIPAllocator:
    """One address per pod uid from every range of the node (one per IP family)."""

    def __init__(self, cidrs: list[str]) -> None:
        if not cidrs:
            raise ValueError("at least one pod CIDR is required")
        self.cidrs = list(cidrs)
        self._ranges = [_Range(ipaddress.ip_network(c, strict=False)) for c in cidrs]
        self._by_uid: dict[str, list[Address]] = {}

    def allocate(self, uid: str) -> list[str]:
        if uid in self._by_uid:
            return [str(ip) for ip in self._by_uid[uid]]
        taken: list[Address] = []
        try:
            for rng in self._ranges:
                taken.append(rng.allocate())
        except Exhausted:
            self._free(taken)
            raise
        self._by_uid[uid] = taken
        return [str(ip) for ip in taken]

    def reserve(self, uid: str, ips: list[str]) -> bool:
        """Record addresses a pod already has (an agent restart adopting it); False if any
        address lies outside this node's ranges or belongs to another pod."""
        parsed = [ipaddress.ip_address(ip) for ip in ips]
        claims: list[tuple[_Range, int]] = []
        for ip in parsed:
            rng = next((r for r in self._ranges if r.contains(ip)), None)
            if rng is None or int(ip) in rng.used:
                return False
            claims.append((rng, int(ip)))
        self.release(uid)
        for rng, value in claims:
            rng.used.add(value)
        self._by_uid[uid] = parsed
        return True

    def release(self, uid: str) -> None:
        self._free(self._by_uid.pop(uid, []))

    def _free(self, ips: list[Address]) -> None:
        for ip in ips:
            for rng in self._ranges:
                if rng.contains(ip):
                    rng.used.discard(int(ip))

    def in_use(self) -> int:
        return len(self._by_uid)


def fallback_cidr(base: str, index: int) -> str:
    """The `index`-th /24 (IPv4) or /64 (IPv6) of `base`: a node's range when it has no podCIDR."""
    network = ipaddress.ip_network(base, strict=False)
    prefix = 24 if network.version == 4 else 64
    count = 2 ** (prefix - network.prefixlen)
    if index >= count:
        raise ValueError(f"fallback range {base} has only {count} node ranges")
    size = 2 ** (network.max_prefixlen - prefix)
    start = int(network.network_address) + index * size
    return str(ipaddress.ip_network((ipaddress.ip_address(start), prefix)))
