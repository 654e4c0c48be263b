"""The scheduler cache: assumed pods, confirmation, forgetting, snapshots and zone order."""

from __future__ import annotations

from controlplane.scheduler.cache import Cache, NodeTree, Snapshot
from controlplane.scheduler.nodeinfo import HostPortInfo, NodeInfo
from controlplane.scheduler.podinfo import PodInfo
from tests.unit.scheduler.builders import node, pod


def _bound(name: str, host: str, **kw: object) -> PodInfo:
    return PodInfo(pod(name, node_name=host, **kw))  # type: ignore[arg-type]


def test_assume_then_confirm() -> None:
    cache = Cache()
    cache.add_node(node("n"))
    assumed = _bound("p", "n", cpu="1")
    cache.assume_pod(assumed)
    assert cache.is_assumed(assumed.uid)
    info = cache.node_info("n")
    assert info is not None and info.requested.milli_cpu == 1000
    # The informer delivers the bound pod: no longer assumed, still counted once.
    cache.add_pod(_bound("p", "n", cpu="1"))
    assert not cache.is_assumed(assumed.uid)
    assert info.requested.milli_cpu == 1000
    assert len(info.pods) == 1


def test_forget_releases_the_room() -> None:
    cache = Cache()
    cache.add_node(node("n"))
    assumed = _bound("p", "n", cpu="1")
    cache.assume_pod(assumed)
    cache.forget_pod(assumed)
    info = cache.node_info("n")
    assert info is not None and info.requested.milli_cpu == 0 and not info.pods
    assert cache.get_pod(assumed.uid) is None


def test_bound_elsewhere_than_assumed_moves_the_pod() -> None:
    cache = Cache()
    cache.add_node(node("a"))
    cache.add_node(node("b"))
    cache.assume_pod(_bound("p", "a", cpu="1"))
    cache.add_pod(_bound("p", "b", cpu="1"))
    assert cache.node_info("a").requested.milli_cpu == 0  # type: ignore[union-attr]
    assert cache.node_info("b").requested.milli_cpu == 1000  # type: ignore[union-attr]


def test_update_and_remove_pods() -> None:
    cache = Cache()
    cache.add_node(node("n"))
    old = _bound("p", "n", cpu="1")
    cache.add_pod(old)
    new = _bound("p", "n", cpu="2")
    cache.update_pod(old, new)
    assert cache.node_info("n").requested.milli_cpu == 2000  # type: ignore[union-attr]
    cache.remove_pod(new)
    assert cache.node_info("n").requested.milli_cpu == 0  # type: ignore[union-attr]


def test_a_removed_node_lingers_while_pods_point_at_it() -> None:
    cache = Cache()
    n = node("n")
    cache.add_node(n)
    p = _bound("p", "n")
    cache.add_pod(p)
    cache.remove_node(n)
    assert cache.node_count() == 0
    assert cache.node_info("n") is not None
    snap = Snapshot()
    cache.update_snapshot(snap)
    assert snap.num_nodes() == 0
    cache.remove_pod(p)
    assert cache.node_info("n") is None


def test_snapshots_copy_only_changed_nodes() -> None:
    cache = Cache()
    for name in ("a", "b"):
        cache.add_node(node(name))
    snap = Snapshot()
    cache.update_snapshot(snap)
    a_before, b_before = snap.get("a"), snap.get("b")
    cache.add_pod(
        _bound(
            "p",
            "a",
            cpu="1",
            affinity={
                "podAntiAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": [
                        {
                            "labelSelector": {"matchLabels": {"x": "y"}},
                            "topologyKey": "kubernetes.io/hostname",
                        }
                    ]
                }
            },
        )
    )
    cache.update_snapshot(snap)
    assert snap.get("b") is b_before
    assert snap.get("a") is not a_before
    assert a_before is not None and not a_before.pods  # the old copy is untouched
    assert [n.name for n in snap.have_pods_with_required_anti_affinity] == ["a"]
    assert [n.name for n in snap.list()] == ["a", "b"]


def test_node_tree_interleaves_zones() -> None:
    tree = NodeTree()
    for name, zone in [("a1", "a"), ("a2", "a"), ("a3", "a"), ("b1", "b"), ("c1", "c"), ("c2", "c")]:
        tree.add(node(name, zone=zone))
    assert tree.list() == ["a1", "b1", "c1", "a2", "c2", "a3"]
    tree.remove(node("b1", zone="b"))
    assert tree.list() == ["a1", "c1", "a2", "c2", "a3"]
    tree.update(node("a3", zone="a"), node("a3", zone="c"))
    assert tree.list() == ["a1", "c1", "a2", "c2", "a3"]


def test_host_ports() -> None:
    ports = HostPortInfo()
    ports.add("", "TCP", 80)
    ports.add("10.0.0.1", "UDP", 53)
    assert ports.check_conflict("10.0.0.2", "TCP", 80)  # 0.0.0.0 covers every IP
    assert not ports.check_conflict("10.0.0.2", "UDP", 53)
    assert ports.check_conflict("", "UDP", 53)  # binding all IPs conflicts with any
    ports.add("", "TCP", 80)
    ports.remove("", "TCP", 80)
    assert ports.check_conflict("", "TCP", 80)  # still held by the second pod


def test_node_info_accounts_non_zero_requests() -> None:
    info = NodeInfo(node("n"), PodInfo(pod("best-effort", node_name="n")))
    assert info.requested.milli_cpu == 0
    assert info.non_zero_requested.milli_cpu == 100
    assert info.non_zero_requested.memory == 200 * 2**20
