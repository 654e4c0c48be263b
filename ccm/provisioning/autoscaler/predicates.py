""" "Would the scheduler put this pod on this node", asked with the scheduler's own pure
predicates, so that the autoscaler and the scheduler mean the same thing by "fits".

Checked: NodeUnschedulable, NodeName, NodeResourcesFit, NodeAffinity (nodeSelector and required
node affinity), TaintToleration (NoSchedule / NoExecute) and NodePorts. Not simulated: inter-pod
(anti-)affinity, topology spread and volumes; a pod held back only by those may trigger a
scale-up that does not help it (cluster-autoscaler runs every filter plugin; see the report).
"""

from __future__ import annotations

from functools import lru_cache

from controlplane.scheduler.nodeaffinity import RequiredNodeAffinity, required_node_affinity
from controlplane.scheduler.nodeinfo import NodeInfo
from controlplane.scheduler.plugins.node_resources_fit import fits_request
from controlplane.scheduler.podinfo import PodInfo
from controlplane.scheduler.taints import (
    NO_SCHEDULE,
    TAINT_NODE_UNSCHEDULABLE,
    do_not_schedule_taints,
    find_matching_untolerated_taint,
    tolerations_tolerate_taint,
)

__all__ = ["fits", "forget"]

_UNSCHEDULABLE_TAINT = {"key": TAINT_NODE_UNSCHEDULABLE, "effect": NO_SCHEDULE}


@lru_cache(maxsize=16384)
def _required(pod: PodInfo) -> RequiredNodeAffinity:
    # Parsed once per pod per pass (PodInfos hash by identity and are made anew each pass),
    # not once per pod and node.
    return required_node_affinity(pod.pod)


def forget() -> None:
    """Drop what was parsed for this pass's pods, so that the cache holds no pod past it."""
    _required.cache_clear()


def fits(pod: PodInfo, node: NodeInfo) -> bool:
    if node.node is None:
        return False
    if node.unschedulable and not tolerations_tolerate_taint(pod.tolerations, _UNSCHEDULABLE_TAINT):
        return False
    if pod.node_name and pod.node_name != node.name:
        return False
    if find_matching_untolerated_taint(node.taints, pod.tolerations, do_not_schedule_taints) is not None:
        return False
    if not _required(pod).match(node.node):
        return False
    if any(node.used_ports.check_conflict(ip, protocol, port) for ip, protocol, port in pod.host_ports):
        return False
    return not fits_request(pod.requests, node)
