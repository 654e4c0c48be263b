"""Which Node events make the route controller look again."""

from __future__ import annotations

from typing import Any

from ccm.route import _route_relevant


def node(
    cidr: str = "10.244.1.0/24", pid: str = "local:///zone-a/i-1", ip: str = "10.0.0.5"
) -> dict[str, Any]:
    return {
        "metadata": {"name": "n1"},
        "spec": {"podCIDR": cidr, "podCIDRs": [cidr], "providerID": pid},
        "status": {"addresses": [{"type": "InternalIP", "address": ip}]},
    }


def test_a_departure_always_matters() -> None:
    # The informer hands a deleted Node over as both old and new.
    last = node()
    assert _route_relevant("DELETED", last, last)


def test_arrival_matters() -> None:
    assert _route_relevant("ADDED", None, node())


def test_updates_matter_only_when_routing_facts_change() -> None:
    assert not _route_relevant("MODIFIED", node(), node())
    assert _route_relevant("MODIFIED", node(), node(cidr="10.244.2.0/24"))
    assert _route_relevant("MODIFIED", node(), node(pid="local:///zone-a/i-2"))
    assert _route_relevant("MODIFIED", node(), node(ip="10.0.0.6"))
