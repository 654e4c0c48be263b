"""Upstream's GetNodeAddressesFromNodeIP: the kubelet's node IP first, the cloud's order kept."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccm.nodeutil import addresses_changed, addresses_from_node_ip
from providers.model import NodeAddress

CLOUD = (
    NodeAddress("InternalIP", "10.0.0.5"),
    NodeAddress("InternalIP", "10.0.0.6"),
    NodeAddress("ExternalIP", "198.51.100.7"),
    NodeAddress("InternalIP", "fd00::6"),
    NodeAddress("Hostname", "ip-10-0-0-5"),
)


def test_the_node_ip_goes_first() -> None:
    assert addresses_from_node_ip("10.0.0.6", CLOUD)[0] == NodeAddress("InternalIP", "10.0.0.6")
    dual = addresses_from_node_ip("10.0.0.6,fd00::6", CLOUD)
    assert dual[:2] == (NodeAddress("InternalIP", "10.0.0.6"), NodeAddress("InternalIP", "fd00::6"))


@pytest.mark.parametrize("bad", ["10.9.9.9", "nonsense", "10.0.0.5,10.0.0.6", "1,2,3"])
def test_an_unknown_or_malformed_node_ip_is_an_error(bad: str) -> None:
    with pytest.raises(ValueError, match=r"node IP|matches ip"):
        addresses_from_node_ip(bad, CLOUD)


@given(st.permutations(CLOUD), st.sampled_from(["10.0.0.5", "10.0.0.6", "198.51.100.7", "fd00::6"]))
def test_sorting_keeps_every_address_once(cloud: list[NodeAddress], ip: str) -> None:
    result = addresses_from_node_ip(ip, tuple(cloud))
    assert sorted(result, key=repr) == sorted(cloud, key=repr)
    assert result[0].address == ip
    assert [a for a in result if a.address != ip] == [a for a in cloud if a.address != ip]


def test_change_detection_is_by_type_and_length() -> None:
    assert not addresses_changed(CLOUD[:1], (NodeAddress("InternalIP", "10.0.0.5"),))
    assert addresses_changed(CLOUD[:1], CLOUD[:2])
    assert addresses_changed(CLOUD[:1], (NodeAddress("InternalIP", "10.0.0.9"),))
