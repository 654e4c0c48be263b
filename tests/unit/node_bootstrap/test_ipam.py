"""Pod addresses from a node's podCIDR, host-local style."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node_bootstrap.agent.ipam import Exhausted, PodIPAllocator, fallback_cidr


def test_skips_network_gateway_and_broadcast() -> None:
    ipam = PodIPAllocator(["10.244.1.0/29"])
    got = [ipam.allocate(f"p{i}")[0] for i in range(5)]
    assert got == ["10.244.1.2", "10.244.1.3", "10.244.1.4", "10.244.1.5", "10.244.1.6"]
    with pytest.raises(Exhausted):
        ipam.allocate("one-too-many")


def test_same_pod_same_address_and_round_robin_after_release() -> None:
    ipam = PodIPAllocator(["10.244.1.0/29"])
    first = ipam.allocate("a")
    assert ipam.allocate("a") == first
    ipam.allocate("b")
    ipam.release("a")
    # Host-local continues after the last address it gave, so "a"'s address is not reused yet.
    assert ipam.allocate("c") == ["10.244.1.4"]


def test_dual_stack() -> None:
    ipam = PodIPAllocator(["10.244.1.0/24", "fd00:10:244:1::/64"])
    assert ipam.allocate("a") == ["10.244.1.2", "fd00:10:244:1::2"]


def test_reserve_for_adoption() -> None:
    ipam = PodIPAllocator(["10.244.1.0/24"])
    assert ipam.reserve("a", ["10.244.1.7"])
    assert not ipam.reserve("b", ["10.244.1.7"])  # taken
    assert not ipam.reserve("c", ["10.9.9.9"])  # not ours
    assert "10.244.1.7" not in [ipam.allocate(f"x{i}")[0] for i in range(10)]


def test_fallback_ranges_are_distinct_per_node() -> None:
    assert fallback_cidr("100.64.0.0/10", 0) == "100.64.0.0/24"
    assert fallback_cidr("100.64.0.0/10", 257) == "100.65.1.0/24"
    with pytest.raises(ValueError):
        fallback_cidr("10.0.0.0/23", 2)


@given(st.lists(st.sampled_from(["alloc", "release"]), max_size=80), st.integers(min_value=24, max_value=28))
def test_addresses_stay_distinct_and_inside(ops: list[str], prefix: int) -> None:
    network = ipaddress.ip_network(f"10.244.0.0/{prefix}")
    ipam = PodIPAllocator([str(network)])
    held: dict[str, str] = {}
    n = 0
    for op in ops:
        if op == "alloc":
            try:
                (ip,) = ipam.allocate(f"p{n}")
            except Exhausted:
                assert len(held) == network.num_addresses - 3
                continue
            held[f"p{n}"] = ip
            n += 1
        elif held:
            uid = next(iter(held))
            ipam.release(uid)
            del held[uid]
        assert len(set(held.values())) == len(held)
        for ip in held.values():
            addr = ipaddress.ip_address(ip)
            assert addr in network
            assert addr not in (
                network.network_address,
                network.network_address + 1,
                network.broadcast_address,
            )
