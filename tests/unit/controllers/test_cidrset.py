"""The CIDR set behind node IPAM: allocation order, exhaustion, occupy/release, IPv6."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controlplane.controllers.cidrset import (
    CIDRRangeNoCIDRsRemainingError,
    CIDRSet,
    CIDRSetSubNetTooBigError,
    parse_cidrs,
)


def net(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(text)


def test_allocates_in_order_until_exhausted() -> None:
    cidrs = CIDRSet(net("10.244.0.0/22"), 24)
    got = [str(cidrs.allocate_next()) for _ in range(4)]
    assert got == ["10.244.0.0/24", "10.244.1.0/24", "10.244.2.0/24", "10.244.3.0/24"]
    with pytest.raises(CIDRRangeNoCIDRsRemainingError, match="no remaining CIDRs left"):
        cidrs.allocate_next()
    assert cidrs.allocated == 4


def test_released_cidrs_come_back_round_robin() -> None:
    cidrs = CIDRSet(net("10.244.0.0/22"), 24)
    first = [cidrs.allocate_next() for _ in range(3)]
    cidrs.release(first[0])
    # Round robin: the next free one after the last allocation, then the released one.
    assert str(cidrs.allocate_next()) == "10.244.3.0/24"
    assert str(cidrs.allocate_next()) == "10.244.0.0/24"


def test_occupied_ranges_are_skipped() -> None:
    cidrs = CIDRSet(net("10.244.0.0/16"), 24)
    cidrs.occupy(net("10.244.0.0/23"))  # a bigger block takes two subnets
    cidrs.occupy(net("10.244.2.128/25"))  # a smaller one still takes its whole subnet
    assert cidrs.allocated == 3
    assert str(cidrs.allocate_next()) == "10.244.3.0/24"
    assert cidrs.is_used(net("10.244.2.0/24"))


def test_occupying_outside_the_cluster_range_fails() -> None:
    cidrs = CIDRSet(net("10.244.0.0/16"), 24)
    with pytest.raises(ValueError, match="out the range"):
        cidrs.occupy(net("192.168.0.0/24"))


def test_a_service_range_covering_the_cluster_takes_everything() -> None:
    cidrs = CIDRSet(net("10.244.0.0/22"), 24)
    cidrs.occupy(net("10.0.0.0/8"))
    with pytest.raises(CIDRRangeNoCIDRsRemainingError):
        cidrs.allocate_next()


def test_ipv6_allocation_and_size_limit() -> None:
    cidrs = CIDRSet(net("fd00:10:244::/56"), 64)
    assert [str(cidrs.allocate_next()) for _ in range(2)] == ["fd00:10:244::/64", "fd00:10:244:1::/64"]
    with pytest.raises(CIDRSetSubNetTooBigError):
        CIDRSet(net("fd00::/8"), 64)


def test_dual_stack_cluster_cidr_parses_as_a_pair() -> None:
    assert [str(c) for c in parse_cidrs("10.244.0.0/16, fd00:10:244::/56")] == [
        "10.244.0.0/16",
        "fd00:10:244::/56",
    ]


@given(st.lists(st.booleans(), max_size=40))
def test_allocations_are_always_distinct_and_inside_the_cluster(ops: list[bool]) -> None:
    cluster = net("10.0.0.0/27")
    cidrs = CIDRSet(cluster, 30)
    held: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for allocate in ops:
        if allocate or not held:
            try:
                block = cidrs.allocate_next()
            except CIDRRangeNoCIDRsRemainingError:
                assert len(held) == cidrs.max_cidrs
                continue
            assert block.subnet_of(cluster)  # type: ignore[arg-type]
            assert block not in held
            held.append(block)
        else:
            cidrs.release(held.pop(0))
        assert cidrs.allocated == len(held)
