"""A pod as the scheduler looks at it (framework.PodInfo / QueuedPodInfo): the API object plus
what every cycle would otherwise re-derive from it - parsed affinity terms, priority, resource
requests and host ports. PodInfos are shared between the cache, snapshots and the queue, and are
replaced (never mutated) when the pod changes."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from controlplane.api import errors
from controlplane.api.selectors import LabelSelector, label_selector_from_dict
from controlplane.scheduler.resources import NON_MISSING_DEFAULTS, Resource, pod_requests

__all__ = ["AffinityTerm", "PodInfo", "QueuedPodInfo", "WeightedAffinityTerm", "pod_key"]

Obj = Mapping[str, Any]
NOTHING = LabelSelector(nothing=True)
_MISSING = object()


def pod_key(pod: Obj) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


@dataclass(frozen=True)
class AffinityTerm:
    namespaces: frozenset[str]
    selector: LabelSelector
    topology_key: str
    namespace_selector: LabelSelector = NOTHING

    def matches(self, pod: PodInfo, ns_labels: Mapping[str, str] | None) -> bool:
        """The pod is in one of the term's namespaces and carries matching labels."""
        if pod.namespace in self.namespaces or self.namespace_selector.matches(ns_labels or {}):
            return self.selector.matches(pod.labels)
        return False

    def with_namespaces(self, extra: set[str]) -> AffinityTerm:
        return AffinityTerm(self.namespaces | frozenset(extra), self.selector, self.topology_key, NOTHING)


@dataclass(frozen=True)
class WeightedAffinityTerm:
    term: AffinityTerm
    weight: int


def _term(namespace: str, raw: Obj) -> AffinityTerm:
    names = raw.get("namespaces") or []
    ns_selector_raw = raw.get("namespaceSelector")
    # No namespaces and no namespace selector: the pod's own namespace.
    namespaces = frozenset([namespace]) if not names and ns_selector_raw is None else frozenset(names)
    return AffinityTerm(
        namespaces=namespaces,
        selector=label_selector_from_dict(raw.get("labelSelector")),
        topology_key=str(raw.get("topologyKey") or ""),
        namespace_selector=label_selector_from_dict(ns_selector_raw),
    )


def _terms(namespace: str, raw: Sequence[Obj] | None) -> tuple[AffinityTerm, ...]:
    return tuple(_term(namespace, t) for t in raw or [])


def _weighted(namespace: str, raw: Sequence[Obj] | None) -> tuple[WeightedAffinityTerm, ...]:
    return tuple(
        WeightedAffinityTerm(_term(namespace, t.get("podAffinityTerm") or {}), int(t.get("weight") or 0))
        for t in raw or []
    )


class PodInfo:
    def __init__(self, pod: dict[str, Any], *, priority: int | None = None) -> None:
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        self.pod = pod
        self.uid = str(meta.get("uid") or pod_key(pod))
        self.name = str(meta.get("name") or "")
        self.namespace = str(meta.get("namespace") or "")
        self.labels: Mapping[str, str] = meta.get("labels") or {}
        self.priority = int(spec.get("priority") or 0) if priority is None else priority
        # Read on every node of every cycle: plain attributes, not lookups.
        self.spec: Mapping[str, Any] = spec
        self.node_name = str(spec.get("nodeName") or "")
        self.scheduler_name = str(spec.get("schedulerName") or "default-scheduler")
        self.nominated_node_name = str((pod.get("status") or {}).get("nominatedNodeName") or "")
        self.deleting = bool(meta.get("deletionTimestamp"))
        self.tolerations: list[Mapping[str, Any]] = spec.get("tolerations") or []
        self.parse_error: str | None = None
        affinity = spec.get("affinity") or {}
        pod_aff = affinity.get("podAffinity") or {}
        pod_anti = affinity.get("podAntiAffinity") or {}
        self.required_affinity_terms: tuple[AffinityTerm, ...] = ()
        self.required_anti_affinity_terms: tuple[AffinityTerm, ...] = ()
        self.preferred_affinity_terms: tuple[WeightedAffinityTerm, ...] = ()
        self.preferred_anti_affinity_terms: tuple[WeightedAffinityTerm, ...] = ()
        ns = self.namespace
        # A term list that fails to parse is dropped, as upstream's NewPodInfo leaves it nil.
        try:
            self.required_affinity_terms = _terms(
                ns, pod_aff.get("requiredDuringSchedulingIgnoredDuringExecution")
            )
        except errors.StatusError as exc:
            self.parse_error = exc.message
        try:
            self.required_anti_affinity_terms = _terms(
                ns, pod_anti.get("requiredDuringSchedulingIgnoredDuringExecution")
            )
        except errors.StatusError as exc:
            self.parse_error = exc.message
        try:
            self.preferred_affinity_terms = _weighted(
                ns, pod_aff.get("preferredDuringSchedulingIgnoredDuringExecution")
            )
        except errors.StatusError as exc:
            self.parse_error = exc.message
        try:
            self.preferred_anti_affinity_terms = _weighted(
                ns, pod_anti.get("preferredDuringSchedulingIgnoredDuringExecution")
            )
        except errors.StatusError as exc:
            self.parse_error = exc.message

    def __repr__(self) -> str:
        return f"PodInfo({self.namespace}/{self.name})"

    def same_inputs(self, pod: Mapping[str, Any]) -> bool:
        """Whether `pod` (a newer copy of this pod) has the labels and spec this PodInfo parsed,
        nodeName aside: binding changes only that (and status), so what was parsed still holds."""
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        return (
            (meta.get("labels") or {}) == self.labels
            and str(meta.get("uid") or pod_key(pod)) == self.uid
            and len(spec) - ("nodeName" in spec) == len(self.spec) - ("nodeName" in self.spec)
            and all(k == "nodeName" or self.spec.get(k, _MISSING) == v for k, v in spec.items())
        )

    def with_pod(self, pod: dict[str, Any], *, priority: int | None = None) -> PodInfo:
        """This PodInfo for `pod`, a copy for which `same_inputs` holds: the parsed terms,
        requests and ports are shared; what comes from elsewhere in the object is read anew."""
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        out = copy.copy(self)
        out.__dict__.pop("start_time", None)
        out.pod = pod
        out.spec = spec
        out.labels = meta.get("labels") or {}
        out.priority = int(spec.get("priority") or 0) if priority is None else priority
        out.node_name = str(spec.get("nodeName") or "")
        out.nominated_node_name = str((pod.get("status") or {}).get("nominatedNodeName") or "")
        out.deleting = bool(meta.get("deletionTimestamp"))
        out.tolerations = spec.get("tolerations") or []
        return out

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def has_affinity(self) -> bool:
        return bool(
            self.required_affinity_terms
            or self.required_anti_affinity_terms
            or self.preferred_affinity_terms
            or self.preferred_anti_affinity_terms
        )

    @cached_property
    def requests(self) -> Resource:
        return Resource.from_list(pod_requests(self.pod))

    @cached_property
    def non_zero_requests(self) -> tuple[int, int]:
        """CPU and memory with the scoring defaults for containers that request none."""
        reqs = pod_requests(self.pod, non_missing=NON_MISSING_DEFAULTS)
        return reqs.get("cpu", 0), reqs.get("memory", 0)

    @cached_property
    def host_ports(self) -> tuple[tuple[str, str, int], ...]:
        """(hostIP, protocol, hostPort) of every container port that binds the host."""
        out: list[tuple[str, str, int]] = []
        containers = list(self.spec.get("containers") or [])
        # Sidecars run for the pod's whole life, so their host ports are held like app ones.
        containers += [c for c in self.spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]
        for container in containers:
            for port in container.get("ports") or []:
                host_port = int(port.get("hostPort") or 0)
                if host_port > 0:
                    out.append((str(port.get("hostIP") or ""), str(port.get("protocol") or "TCP"), host_port))
        return tuple(out)

    @cached_property
    def start_time(self) -> str:
        return str((self.pod.get("status") or {}).get("startTime") or "")


@dataclass(eq=False)
class QueuedPodInfo:
    """A pod in the scheduling queue, with its attempt bookkeeping."""

    pod_info: PodInfo
    timestamp: float  # the queue clock's monotonic time when it last entered the queue
    attempts: int = 0
    initial_attempt_timestamp: float | None = None
    unschedulable_plugins: set[str] = field(default_factory=set)
    pending_plugins: set[str] = field(default_factory=set)
    gated: bool = False

    @property
    def uid(self) -> str:
        return self.pod_info.uid

    @property
    def pod(self) -> dict[str, Any]:
        return self.pod_info.pod
