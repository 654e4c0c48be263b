"""A node with the pods the scheduler believes are on it (framework.NodeInfo): the sums of their
requests, the host ports they hold and the pods with (anti-)affinity that other pods' placements
must respect. Every change bumps `generation`, which is how snapshots copy only what changed."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Mapping
from typing import Any

from controlplane.scheduler.podinfo import PodInfo
from controlplane.scheduler.resources import Resource, resource_list

__all__ = ["HostPortInfo", "NodeInfo", "next_generation"]

_generations = itertools.count(1)

DEFAULT_BIND_ALL_HOST_IP = "0.0.0.0"


def next_generation() -> int:
    return next(_generations)


class HostPortInfo:
    """Host ports in use per host IP; 0.0.0.0 conflicts with every IP (framework.HostPortInfo).
    Counted, so two pods holding the same port do not free it when one leaves."""

    def __init__(self) -> None:
        self._ports: dict[str, Counter[tuple[str, int]]] = {}

    @staticmethod
    def _sanitize(ip: str, protocol: str) -> tuple[str, str]:
        return ip or DEFAULT_BIND_ALL_HOST_IP, protocol or "TCP"

    def add(self, ip: str, protocol: str, port: int) -> None:
        if port <= 0:
            return
        ip, protocol = self._sanitize(ip, protocol)
        self._ports.setdefault(ip, Counter())[(protocol, port)] += 1

    def remove(self, ip: str, protocol: str, port: int) -> None:
        if port <= 0:
            return
        ip, protocol = self._sanitize(ip, protocol)
        counter = self._ports.get(ip)
        if counter is None:
            return
        counter[(protocol, port)] -= 1
        if counter[(protocol, port)] <= 0:
            del counter[(protocol, port)]
        if not counter:
            del self._ports[ip]

    def check_conflict(self, ip: str, protocol: str, port: int) -> bool:
        if port <= 0:
            return False
        ip, protocol = self._sanitize(ip, protocol)
        wanted = (protocol, port)
        if ip == DEFAULT_BIND_ALL_HOST_IP:
            return any(wanted in counter for counter in self._ports.values())
        return any(wanted in self._ports.get(key, ()) for key in (DEFAULT_BIND_ALL_HOST_IP, ip))

    def __len__(self) -> int:
        return sum(len(c) for c in self._ports.values())

    def clone(self) -> HostPortInfo:
        out = HostPortInfo()
        out._ports = {ip: Counter(c) for ip, c in self._ports.items()}
        return out


class NodeInfo:
    def __init__(self, node: dict[str, Any] | None = None, *pods: PodInfo) -> None:
        self.node: dict[str, Any] | None = None
        self.name = ""
        self.labels: Mapping[str, str] = {}
        self.taints: list[Mapping[str, Any]] = []
        self.unschedulable = False
        self.allocatable = Resource()
        self.pods: list[PodInfo] = []
        self.pods_with_affinity: list[PodInfo] = []
        self.pods_with_required_anti_affinity: list[PodInfo] = []
        self.used_ports = HostPortInfo()
        self.requested = Resource()
        self.non_zero_requested = Resource()
        self.generation = next_generation()
        # Per-node results plugins computed against this exact state (scores, fit verdicts),
        # keyed by plugin and the pod's relevant requests; emptied by every change.
        self.memo: dict[Any, Any] = {}
        if node is not None:
            self.set_node(node)
        for pod in pods:
            self.add_pod(pod)

    def __repr__(self) -> str:
        return f"NodeInfo({self.name}, pods={len(self.pods)})"

    def set_node(self, node: dict[str, Any]) -> None:
        meta = node.get("metadata") or {}
        spec = node.get("spec") or {}
        self.node = node
        self.name = str(meta.get("name") or "")
        self.labels = meta.get("labels") or {}
        self.taints = list(spec.get("taints") or [])
        self.unschedulable = bool(spec.get("unschedulable"))
        self.allocatable = Resource.from_list(resource_list((node.get("status") or {}).get("allocatable")))
        self.generation = next_generation()
        self.memo = {}

    def remove_node(self) -> None:
        self.node = None
        self.generation = next_generation()
        self.memo = {}

    def add_pod(self, pod: PodInfo) -> None:
        self.pods.append(pod)
        if pod.has_affinity:
            self.pods_with_affinity.append(pod)
        if pod.required_anti_affinity_terms:
            self.pods_with_required_anti_affinity.append(pod)
        self._account(pod, 1)

    def remove_pod(self, pod: PodInfo) -> bool:
        """Remove the pod with `pod`'s uid; False when it is not on this node."""
        for i, existing in enumerate(self.pods):
            if existing.uid == pod.uid:
                del self.pods[i]
                self.pods_with_affinity = [p for p in self.pods_with_affinity if p.uid != pod.uid]
                self.pods_with_required_anti_affinity = [
                    p for p in self.pods_with_required_anti_affinity if p.uid != pod.uid
                ]
                # Account with the pod as it was added, not as it is now.
                self._account(existing, -1)
                return True
        return False

    def _account(self, pod: PodInfo, sign: int) -> None:
        self.requested.add_resource(pod.requests, sign)
        cpu, memory = pod.non_zero_requests
        self.non_zero_requested.milli_cpu += sign * cpu
        self.non_zero_requested.memory += sign * memory
        for ip, protocol, port in pod.host_ports:
            if sign > 0:
                self.used_ports.add(ip, protocol, port)
            else:
                self.used_ports.remove(ip, protocol, port)
        self.generation = next_generation()
        self.memo = {}

    def clone(self) -> NodeInfo:
        out = NodeInfo.__new__(NodeInfo)
        out.node = self.node
        out.name = self.name
        out.labels = self.labels
        out.taints = self.taints
        out.unschedulable = self.unschedulable
        out.allocatable = self.allocatable.clone()
        out.pods = list(self.pods)
        out.pods_with_affinity = list(self.pods_with_affinity)
        out.pods_with_required_anti_affinity = list(self.pods_with_required_anti_affinity)
        out.used_ports = self.used_ports.clone()
        out.requested = self.requested.clone()
        out.non_zero_requested = self.non_zero_requested.clone()
        out.generation = self.generation
        out.memo = {}
        return out
