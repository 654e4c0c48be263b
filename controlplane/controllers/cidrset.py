"""A set of equal-sized subnets carved out of one cluster CIDR (upstream
pkg/controller/nodeipam/ipam/cidrset): a bitmap of which are taken, allocated round-robin.

Subnet i of cluster CIDR C with node mask m is C's network address plus i << (bits - m); any
CIDR can be occupied or released, marking every subnet it overlaps.
"""

from __future__ import annotations

import ipaddress

__all__ = [
    "CIDRRangeNoCIDRsRemainingError",
    "CIDRSet",
    "CIDRSetSubNetTooBigError",
    "IPNetwork",
    "parse_cidrs",
]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# The bitmap grows with 2**(node mask - cluster mask); upstream caps the difference at 16.
CLUSTER_SUBNET_MAX_DIFF = 16


class CIDRRangeNoCIDRsRemainingError(Exception):
    def __init__(self) -> None:
        super().__init__(
            "CIDR allocation failed; there are no remaining CIDRs left to allocate in the accepted range"
        )


class CIDRSetSubNetTooBigError(Exception):
    def __init__(self) -> None:
        super().__init__("New CIDR set failed; the node CIDR size is too big")


def parse_cidrs(text: str) -> list[IPNetwork]:
    """`--cluster-cidr`: one CIDR, or a comma-separated dual-stack pair."""
    return [ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip()]


class CIDRSet:
    def __init__(self, cluster: IPNetwork, node_mask: int) -> None:
        if node_mask < cluster.prefixlen or node_mask > cluster.max_prefixlen:
            raise ValueError(f"node CIDR mask size {node_mask} does not fit cluster CIDR {cluster}")
        if cluster.version == 6 and node_mask - cluster.prefixlen > CLUSTER_SUBNET_MAX_DIFF:
            raise CIDRSetSubNetTooBigError
        self.cluster = cluster
        self.node_mask = node_mask
        self.max_cidrs = 1 << (node_mask - cluster.prefixlen)
        self._shift = cluster.max_prefixlen - node_mask
        self._used = 0  # bit i set: subnet i is taken
        self._next = 0

    @property
    def allocated(self) -> int:
        return self._used.bit_count()

    def _block(self, index: int) -> IPNetwork:
        base = int(self.cluster.network_address) | (index << self._shift)
        return ipaddress.ip_network((base, self.node_mask))

    def _index_of(self, address: int) -> int:
        index = (int(self.cluster.network_address) ^ address) >> self._shift
        if index >= self.max_cidrs:
            raise ValueError(
                f"CIDR: {ipaddress.ip_address(address)}/{self.node_mask} is out of the range of CIDR allocator"
            )
        return index

    def allocate_next(self) -> IPNetwork:
        for i in range(self.max_cidrs):
            candidate = (i + self._next) % self.max_cidrs
            if not self._used >> candidate & 1:
                self._next = (candidate + 1) % self.max_cidrs
                self._used |= 1 << candidate
                return self._block(candidate)
        raise CIDRRangeNoCIDRsRemainingError

    def _indices(self, cidr: IPNetwork) -> range:
        if cidr.version != self.cluster.version or not cidr.overlaps(self.cluster):
            raise ValueError(f"cidr {cidr} is out the range of cluster cidr {self.cluster}")
        if cidr.prefixlen <= self.cluster.prefixlen:
            return range(self.max_cidrs)  # it covers the whole cluster range
        first = int(cidr.network_address) >> self._shift << self._shift
        last = int(cidr.broadcast_address) >> self._shift << self._shift
        return range(self._index_of(first), self._index_of(last) + 1)

    def occupy(self, cidr: IPNetwork) -> None:
        for i in self._indices(cidr):
            self._used |= 1 << i

    def release(self, cidr: IPNetwork) -> None:
        for i in self._indices(cidr):
            self._used &= ~(1 << i)

    def is_used(self, cidr: IPNetwork) -> bool:
        return all(self._used >> i & 1 for i in self._indices(cidr))
