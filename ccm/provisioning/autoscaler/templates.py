"""What a node a NodePool has yet to create will look like, so that "would this pod fit a new
node of this pool" can be asked before the node exists.

As cluster-autoscaler does (`GetNodeInfoFromTemplate` / `sanitizeNodeInfo`), the template is a
copy of an existing Ready node of the pool when there is one: its allocatable, its labels (a new
hostname) and its taints minus those describing a node's transient state (not ready, cordoned,
uninitialized: a new node's CCM removes that one within seconds, and pods are not expected to
tolerate it). The DaemonSet and mirror pods of that node come along, since a new node runs them
too. A pool with no node yet is built from a table of instance-type capacities plus the pool's
own labels and taints; DaemonSets are not simulated on such a node.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ccm.provisioning.api import LABEL_MACHINE, LABEL_NODE_POOL
from controlplane.scheduler.nodeinfo import NodeInfo
from controlplane.scheduler.podinfo import PodInfo

__all__ = [
    "IGNORED_TAINT_KEYS",
    "INSTANCE_TYPES",
    "Capacity",
    "is_daemonset_pod",
    "is_mirror_pod",
    "is_ready",
    "node_template",
    "sanitize_taints",
]

Obj = Mapping[str, Any]

LABEL_HOSTNAME = "kubernetes.io/hostname"
LABEL_INSTANCE_TYPE = "node.kubernetes.io/instance-type"
LABEL_ZONE = "topology.kubernetes.io/zone"
LABEL_OS = "kubernetes.io/os"
LABEL_ARCH = "kubernetes.io/arch"
ANNOTATION_MIRROR = "kubernetes.io/config.mirror"

# Taints that say what state a node is in rather than what may run on it (cluster-autoscaler's
# taints.SanitizeTaints drops these, plus the ones it sets itself while deleting a node).
IGNORED_TAINT_KEYS = frozenset(
    {
        "node.cloudprovider.kubernetes.io/uninitialized",
        "node.cloudprovider.kubernetes.io/shutdown",
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
        "node.kubernetes.io/unschedulable",
        "node.kubernetes.io/network-unavailable",
        "node.kubernetes.io/memory-pressure",
        "node.kubernetes.io/disk-pressure",
        "node.kubernetes.io/pid-pressure",
        "node.kubernetes.io/out-of-disk",
        "ToBeDeletedByClusterAutoscaler",
        "DeletionCandidateOfClusterAutoscaler",
    }
)


@dataclass(frozen=True)
class Capacity:
    cpu: str
    memory: str
    pods: str = "110"
    ephemeral_storage: str = "20Gi"
    arch: str = "amd64"

    def resources(self) -> dict[str, str]:
        return {
            "cpu": self.cpu,
            "memory": self.memory,
            "pods": self.pods,
            "ephemeral-storage": self.ephemeral_storage,
        }


# The simulated node agent reports 4 CPUs / 32Gi / 110 pods / 100Gi whatever the local type.
_LOCAL = Capacity("4", "32Gi", "110", "100Gi")

INSTANCE_TYPES: Mapping[str, Capacity] = {
    "local.small": _LOCAL,
    "local.medium": _LOCAL,
    "local.large": _LOCAL,
    "t3.micro": Capacity("2", "1Gi"),
    "t3.small": Capacity("2", "2Gi"),
    "t3.medium": Capacity("2", "4Gi"),
    "t3.large": Capacity("2", "8Gi"),
    "t3.xlarge": Capacity("4", "16Gi"),
    "t3.2xlarge": Capacity("8", "32Gi"),
    "m5.large": Capacity("2", "8Gi"),
    "m5.xlarge": Capacity("4", "16Gi"),
    "m5.2xlarge": Capacity("8", "32Gi"),
    "m5.4xlarge": Capacity("16", "64Gi"),
    "c5.large": Capacity("2", "4Gi"),
    "c5.xlarge": Capacity("4", "8Gi"),
    "c5.2xlarge": Capacity("8", "16Gi"),
    "r5.large": Capacity("2", "16Gi"),
    "r5.xlarge": Capacity("4", "32Gi"),
    "m6g.large": Capacity("2", "8Gi", arch="arm64"),
    "m6g.xlarge": Capacity("4", "16Gi", arch="arm64"),
    "e2-standard-2": Capacity("2", "8Gi"),
    "e2-standard-4": Capacity("4", "16Gi"),
    "n2-standard-2": Capacity("2", "8Gi"),
    "n2-standard-4": Capacity("4", "16Gi"),
}


def _meta(obj: Obj) -> Mapping[str, Any]:
    meta: Mapping[str, Any] = obj.get("metadata") or {}
    return meta


def is_ready(node: Obj) -> bool:
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


def is_daemonset_pod(pod: Obj) -> bool:
    return any(
        ref.get("kind") == "DaemonSet" and ref.get("controller")
        for ref in _meta(pod).get("ownerReferences") or []
    )


def is_mirror_pod(pod: Obj) -> bool:
    return ANNOTATION_MIRROR in (_meta(pod).get("annotations") or {})


def sanitize_taints(taints: Iterable[Obj]) -> list[dict[str, Any]]:
    return [dict(t) for t in taints if t.get("key") not in IGNORED_TAINT_KEYS]


def _node(
    name: str, labels: Mapping[str, str], taints: Sequence[Obj], resources: Mapping[str, Any]
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": dict(labels)},
        "spec": {"taints": sanitize_taints(taints)},
        "status": {"capacity": dict(resources), "allocatable": dict(resources), "conditions": []},
    }


def _from_node(name: str, node: Obj, pods: Iterable[PodInfo]) -> NodeInfo:
    labels = {k: v for k, v in (_meta(node).get("labels") or {}).items() if k != LABEL_MACHINE}
    labels[LABEL_HOSTNAME] = name
    status = node.get("status") or {}
    clone = _node(name, labels, (node.get("spec") or {}).get("taints") or [], status.get("allocatable") or {})
    daemons = [p for p in pods if is_daemonset_pod(p.pod) or is_mirror_pod(p.pod)]
    return NodeInfo(clone, *daemons)


def _from_spec(name: str, pool: Obj) -> NodeInfo | None:
    spec = pool.get("spec") or {}
    capacity = INSTANCE_TYPES.get(str(spec.get("instanceType") or ""))
    if capacity is None:
        return None
    labels: dict[str, str] = {
        LABEL_OS: "linux",
        LABEL_ARCH: capacity.arch,
        LABEL_INSTANCE_TYPE: str(spec.get("instanceType")),
        **{str(k): str(v) for k, v in (spec.get("labels") or {}).items()},
        LABEL_NODE_POOL: str(_meta(pool).get("name") or ""),
        LABEL_HOSTNAME: name,
    }
    zones = spec.get("zones") or []
    if len(zones) == 1:
        labels[LABEL_ZONE] = str(zones[0])
    return NodeInfo(_node(name, labels, spec.get("taints") or [], capacity.resources()))


def node_template(
    pool: Obj, nodes: Sequence[Obj], pods_by_node: Mapping[str, Sequence[PodInfo]], index: int = 0
) -> NodeInfo | None:
    """A fresh node of `pool` (`nodes` are the pool's own), named `template-<pool>-<index>` so
    that pods pinning a node by name (DaemonSet pods) never fit it; None when neither a Ready
    node of the pool nor its instance type tells what the node would hold."""
    name = f"template-{_meta(pool).get('name', '')}-{index}"
    for node in sorted(nodes, key=lambda n: str(_meta(n).get("name") or "")):
        if is_ready(node) and not _meta(node).get("deletionTimestamp"):
            return _from_node(name, node, pods_by_node.get(str(_meta(node).get("name") or ""), ()))
    return _from_spec(name, pool)
