"""One simulated node: its Node object, its Lease heartbeat, its status, its pods' addresses.

Registration follows the kubelet's `registerWithAPIServer`: create the Node with the labels,
taints and providerID of the flags; if it exists, adopt it and reconcile only the default
labels (hostname, os, arch, instance type, zone, region), as upstream does. The Lease in
`kube-node-lease` is renewed every quarter of its duration (10 s of 40 s), owned by the Node.
NodeStatus is checked every `node_status_update_frequency` and written when something changed or
`node_status_report_frequency` has passed, with a strategic merge patch so conditions other
components own (NetworkUnavailable) stay theirs.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import platform
import random
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from node_bootstrap.agent import config as cfg
from node_bootstrap.agent.clock import Clock, format_micro_time, format_time, wait_event
from node_bootstrap.agent.ipam import PodIPAllocator, fallback_cidr
from node_bootstrap.agent.kube import (
    LEASES,
    NODE_LEASE_NAMESPACE,
    NODES,
    STRATEGIC_MERGE_PATCH,
    Api,
    is_already_exists,
    is_not_found,
)

__all__ = [
    "ANNOTATION_NODE_READY",
    "KUBELET_VERSION",
    "NodeIdentity",
    "SimNode",
    "identities",
    "initial_node",
    "node_conditions",
]

log = logging.getLogger("pinnace.nodeagent.node")

Obj = dict[str, Any]

KUBELET_VERSION = "v1.33.0"
CONTAINER_RUNTIME_VERSION = "containerd://1.7.24"
OS_IMAGE = "Pinnace simulated node"

ANNOTATION_CMAD = "volumes.kubernetes.io/controller-managed-attach-detach"
ANNOTATION_PROVIDED_NODE_IP = "alpha.kubernetes.io/provided-node-ip"
TAINT_UNINITIALIZED = "node.cloudprovider.kubernetes.io/uninitialized"

# Annotations on the Node that make the simulated kubelet report trouble.
ANNOTATION_NODE_READY = "sim.pinnace.dev/ready"
ANNOTATION_MEMORY_PRESSURE = "sim.pinnace.dev/memory-pressure"
ANNOTATION_DISK_PRESSURE = "sim.pinnace.dev/disk-pressure"
ANNOTATION_PID_PRESSURE = "sim.pinnace.dev/pid-pressure"

# (type, annotation, (reason, message) when True, (reason, message) when False)
_PRESSURE = (
    (
        "MemoryPressure",
        ANNOTATION_MEMORY_PRESSURE,
        ("KubeletHasInsufficientMemory", "kubelet has insufficient memory available"),
        ("KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
    ),
    (
        "DiskPressure",
        ANNOTATION_DISK_PRESSURE,
        ("KubeletHasDiskPressure", "kubelet has disk pressure"),
        ("KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    ),
    (
        "PIDPressure",
        ANNOTATION_PID_PRESSURE,
        ("KubeletHasInsufficientPID", "kubelet has insufficient PID available"),
        ("KubeletHasSufficientPID", "kubelet has sufficient PID available"),
    ),
)
OWN_CONDITIONS = ("MemoryPressure", "DiskPressure", "PIDPressure", "Ready")
DEFAULT_LABELS = (
    cfg.LABEL_HOSTNAME,
    cfg.LABEL_ZONE,
    cfg.LABEL_REGION,
    cfg.LABEL_INSTANCE_TYPE,
    cfg.LABEL_OS,
    cfg.LABEL_ARCH,
    "beta.kubernetes.io/os",
    "beta.kubernetes.io/arch",
)


@dataclass(frozen=True)
class NodeIdentity:
    name: str
    index: int
    ip: str
    provider_id: str = ""


def identities(config: cfg.AgentConfig) -> list[NodeIdentity]:
    ips = cfg.node_ips(config.node_ip, len(config.node_names))
    return [
        NodeIdentity(
            name=name,
            index=i,
            ip=ips[i],
            provider_id=config.provider_id.format(name=name, index=i) if config.provider_id else "",
        )
        for i, name in enumerate(config.node_names)
    ]


def _true(annotations: Mapping[str, Any], key: str) -> bool:
    return str(annotations.get(key, "")).strip().lower() == "true"


def node_conditions(annotations: Mapping[str, Any]) -> list[Obj]:
    """MemoryPressure, DiskPressure, PIDPressure and Ready as the kubelet reports them (no times)."""
    out: list[Obj] = []
    for kind, key, when_true, when_false in _PRESSURE:
        pressure = _true(annotations, key)
        reason, message = when_true if pressure else when_false
        out.append(
            {"type": kind, "status": "True" if pressure else "False", "reason": reason, "message": message}
        )
    if str(annotations.get(ANNOTATION_NODE_READY, "")).strip().lower() == "false":
        out.append(
            {
                "type": "Ready",
                "status": "False",
                "reason": "KubeletNotReady",
                "message": f'simulated: node annotation {ANNOTATION_NODE_READY} is "false"',
            }
        )
    else:
        out.append(
            {
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "message": "kubelet is posting ready status",
            }
        )
    return out


def _default_labels(config: cfg.AgentConfig, ident: NodeIdentity) -> dict[str, str]:
    labels = {
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        cfg.LABEL_ARCH: "amd64",
        cfg.LABEL_HOSTNAME: ident.name,
        cfg.LABEL_OS: "linux",
    }
    if config.instance_type:
        labels[cfg.LABEL_INSTANCE_TYPE] = config.instance_type
    if config.zone:
        labels[cfg.LABEL_ZONE] = config.zone
    if config.region:
        labels[cfg.LABEL_REGION] = config.region
    return labels


def initial_node(config: cfg.AgentConfig, ident: NodeIdentity) -> Obj:
    """The Node a kubelet registers (`initialNode`)."""
    labels = _default_labels(config, ident)
    labels.update(config.labels)  # --node-labels win over defaults, as upstream
    annotations = {ANNOTATION_CMAD: "true"}
    taints: list[Obj] = [dict(t) for t in config.taints]
    if config.cloud_provider == "external":
        annotations[ANNOTATION_PROVIDED_NODE_IP] = ident.ip
        if not any(t.get("key") == TAINT_UNINITIALIZED for t in taints):
            taints.append({"key": TAINT_UNINITIALIZED, "value": "true", "effect": "NoSchedule"})
    spec: Obj = {}
    if taints:
        spec["taints"] = taints
    if ident.provider_id:
        spec["providerID"] = ident.provider_id
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": ident.name, "labels": labels, "annotations": annotations},
        "spec": spec,
    }


def _hex_id(*parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:32]


class SimNode:
    """Registration, heartbeat and status for one node, and its pod address allocation."""

    def __init__(
        self,
        config: cfg.AgentConfig,
        ident: NodeIdentity,
        *,
        api: Api,
        clock: Clock,
        port: int,
        heartbeat_api: Api | None = None,
    ) -> None:
        self.config = config
        self.ident = ident
        self.name = ident.name
        self._api = api
        # The kubelet's heartbeatClient: Lease renewals and NodeStatus go through their own
        # connections, so they never queue behind pod status writes.
        self._heartbeat = heartbeat_api or api
        self._clock = clock
        self._port = port
        self.node: Obj | None = None
        self.lease: Obj | None = None
        self.uid = ""
        self.images: set[str] = set()
        self._last_report: float | None = None
        self._last_reported: Obj | None = None
        self._cidr_known = asyncio.Event()
        self._cidr_wait_over = False
        self._ipam: PodIPAllocator | None = None
        self._fallback: PodIPAllocator | None = None
        self._jitter = random.Random(ident.name)
        self.registered = asyncio.Event()
        self.heartbeating = asyncio.Event()  # set after the first Lease renewal went through
        self.deleted = False

    @property
    def heartbeat_timeout(self) -> float:
        """How long one heartbeat call may take; upstream's heartbeat client uses the shorter of
        the lease duration and the status update frequency."""
        return min(float(self.config.node_lease_duration_seconds), self.config.node_status_update_frequency)

    @property
    def host_ips(self) -> list[str]:
        return [self.ident.ip]

    # -- the Node object -------------------------------------------------------------------------

    def observe(self, node: Obj) -> None:
        """A newer Node from the watch or from a write's response."""
        if self.node is not None and _rv(node) < _rv(self.node):
            return
        self.node = node
        self.deleted = False
        self.uid = str((node.get("metadata") or {}).get("uid") or self.uid)
        if self.pod_cidrs():
            self._cidr_known.set()

    def observe_deleted(self) -> None:
        # Upstream a kubelet whose Node is deleted does not re-register until it restarts.
        log.warning("node %s was deleted from the API", self.name)
        self.deleted = True

    def pod_cidrs(self) -> list[str]:
        spec = (self.node or {}).get("spec") or {}
        cidrs = [str(c) for c in spec.get("podCIDRs") or [] if c]
        if not cidrs and spec.get("podCIDR"):
            cidrs = [str(spec["podCIDR"])]
        return cidrs

    async def register(self) -> None:
        """Create or adopt the Node, retrying with back-off (upstream caps it at 7 s)."""
        delay = 0.1
        while True:
            try:
                async with asyncio.timeout(self.heartbeat_timeout):
                    await self._try_register()
                    await self.sync_status(force=True)
                self.registered.set()
                return
            except Exception as exc:
                log.warning("registering node %s failed: %s; retrying in %.1fs", self.name, exc, delay)
                await self._clock.sleep(delay)
                delay = min(delay * 2, 7.0)

    async def _try_register(self) -> None:
        wanted = initial_node(self.config, self.ident)
        try:
            created = await self._api.create(NODES, wanted)
            log.info("registered node %s", self.name)
            self.observe(created)
            return
        except Exception as exc:
            if not is_already_exists(exc):
                raise
        existing = await self._api.get(NODES, self.name)
        self.observe(existing)
        meta = existing.get("metadata") or {}
        labels = dict(meta.get("labels") or {})
        annotations = dict(meta.get("annotations") or {})
        label_patch: dict[str, str | None] = {}
        for key in DEFAULT_LABELS:
            if key in wanted["metadata"]["labels"] and labels.get(key) != wanted["metadata"]["labels"][key]:
                label_patch[key] = wanted["metadata"]["labels"][key]
        meta_patch: Obj = {}
        if label_patch:
            meta_patch["labels"] = label_patch
        if annotations.get(ANNOTATION_CMAD) != "true":
            meta_patch["annotations"] = {ANNOTATION_CMAD: "true"}
        if meta_patch:
            meta_patch["resourceVersion"] = meta.get("resourceVersion")
            self.observe(await self._api.patch(NODES, self.name, {"metadata": meta_patch}))
        log.info("adopted existing node %s", self.name)

    # -- status ----------------------------------------------------------------------------------

    def desired_status(self, now: float) -> Obj:
        """The NodeStatus fields the kubelet owns, conditions stamped with `now` as heartbeat."""
        node = self.node or {}
        annotations = (node.get("metadata") or {}).get("annotations") or {}
        old = {
            c.get("type"): c
            for c in (node.get("status") or {}).get("conditions") or []
            if isinstance(c, dict)
        }
        stamp = format_time(now)
        conditions = []
        for cond in node_conditions(annotations):
            before = old.get(cond["type"])
            transition = (
                before["lastTransitionTime"]
                if before and before.get("status") == cond["status"] and before.get("lastTransitionTime")
                else stamp
            )
            conditions.append(
                {
                    "type": cond["type"],
                    "status": cond["status"],
                    "lastHeartbeatTime": stamp,
                    "lastTransitionTime": transition,
                    "reason": cond["reason"],
                    "message": cond["message"],
                }
            )
        capacity = dict(self.config.capacity)
        capacity.setdefault("hugepages-1Gi", "0")
        capacity.setdefault("hugepages-2Mi", "0")
        status: Obj = {
            "capacity": capacity,
            "allocatable": dict(capacity),
            "conditions": conditions,
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self._port}},
            "nodeInfo": {
                "machineID": _hex_id("machine", self.name),
                "systemUUID": str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{self.name}.sim.pinnace.dev")),
                "bootID": str(uuid.uuid5(uuid.NAMESPACE_DNS, f"boot.{self.name}.sim.pinnace.dev")),
                "kernelVersion": platform.release(),
                "osImage": OS_IMAGE,
                "containerRuntimeVersion": CONTAINER_RUNTIME_VERSION,
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        }
        existing_addresses = (node.get("status") or {}).get("addresses") or []
        # With an external cloud provider, addresses the CCM set take precedence (as upstream).
        if not (self.config.cloud_provider == "external" and existing_addresses):
            status["addresses"] = [
                {"type": "InternalIP", "address": self.ident.ip},
                {"type": "Hostname", "address": self.name},
            ]
        return status

    @staticmethod
    def _significant(status: Obj) -> Obj:
        """What counts as a change worth reporting before the report interval is up."""
        out = {k: v for k, v in status.items() if k != "conditions"}
        out["conditions"] = [
            {k: v for k, v in c.items() if k not in ("lastHeartbeatTime", "lastTransitionTime")}
            for c in status["conditions"]
        ]
        return out

    async def sync_status(self, *, force: bool = False) -> bool:
        """Write the status if it changed or is due; True when it wrote."""
        if self.deleted:
            return False
        now = self._clock.now().timestamp()
        status = self.desired_status(now)
        significant = self._significant(status)
        due = self._last_report is None or now - self._last_report >= self.config.node_status_report_frequency
        if not force and not due and significant == self._last_reported:
            return False
        try:
            result = await self._heartbeat.patch(
                NODES, self.name, {"status": status}, subresource="status", patch_type=STRATEGIC_MERGE_PATCH
            )
        except Exception as exc:
            if is_not_found(exc):
                self.observe_deleted()
                return False
            raise
        self.observe(result)
        self._last_report = now
        self._last_reported = significant
        return True

    async def status_loop(self) -> None:
        await self.registered.wait()
        # Nodes of one process start in step; spread them over the first interval.
        await self._clock.sleep(self._jitter.uniform(0, self.config.node_status_update_frequency))
        while True:
            try:
                async with asyncio.timeout(self.heartbeat_timeout):
                    await self.sync_status()
            except Exception as exc:
                log.warning("updating status of node %s failed: %s", self.name, exc)
            await self._clock.sleep(self.config.node_status_update_frequency)

    # -- the Lease -------------------------------------------------------------------------------

    def _new_lease(self, now: float) -> Obj:
        meta: Obj = {"name": self.name, "namespace": NODE_LEASE_NAMESPACE}
        if self.uid:
            meta["ownerReferences"] = [
                {"apiVersion": "v1", "kind": "Node", "name": self.name, "uid": self.uid}
            ]
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": meta,
            "spec": {
                "holderIdentity": self.name,
                "leaseDurationSeconds": self.config.node_lease_duration_seconds,
                "renewTime": format_micro_time(now),
            },
        }

    def _renewed(self, lease: Obj, now: float) -> Obj:
        out = {**lease, "spec": dict(lease.get("spec") or {}), "metadata": dict(lease.get("metadata") or {})}
        out["spec"]["holderIdentity"] = self.name
        out["spec"]["leaseDurationSeconds"] = self.config.node_lease_duration_seconds
        out["spec"]["renewTime"] = format_micro_time(now)
        if self.uid and not out["metadata"].get("ownerReferences"):
            out["metadata"]["ownerReferences"] = [
                {"apiVersion": "v1", "kind": "Node", "name": self.name, "uid": self.uid}
            ]
        return out

    async def renew_lease(self) -> None:
        """One heartbeat: update the lease we hold, else read (or create) it and update that."""
        if self.deleted:
            return  # its owner is gone; the garbage collector would only delete it again
        now = self._clock.now().timestamp()
        path = LEASES.url(NODE_LEASE_NAMESPACE, self.name)
        if self.lease is not None:
            try:
                self.lease = await self._heartbeat.request("PUT", path, body=self._renewed(self.lease, now))
                return
            except Exception as exc:
                log.debug("renewing lease of %s from cache failed (%s); reading it", self.name, exc)
                self.lease = None
        try:
            current = await self._heartbeat.get(LEASES, self.name, NODE_LEASE_NAMESPACE)
        except Exception as exc:
            if not is_not_found(exc):
                raise
            self.lease = await self._heartbeat.create(LEASES, self._new_lease(now), NODE_LEASE_NAMESPACE)
            return
        self.lease = await self._heartbeat.request("PUT", path, body=self._renewed(current, now))

    async def lease_loop(self) -> None:
        await self.registered.wait()
        interval = self.config.lease_renew_interval
        # Real kubelets start at unrelated times, so their renewals are spread over the interval;
        # nodes simulated together would otherwise renew in step and hit the server in bursts.
        # The first wait is a random part of the interval, never longer.
        phase: float | None = random.random() * interval
        while True:
            delay = interval
            try:
                async with asyncio.timeout(self.heartbeat_timeout):
                    await self.renew_lease()
                self.heartbeating.set()
                if phase is not None:
                    delay, phase = phase, None
            except Exception as exc:
                log.warning("renewing lease of node %s failed: %s", self.name, exc)
                delay = min(1.0, interval)
            await self._clock.sleep(delay)

    # -- pod addresses ---------------------------------------------------------------------------

    async def pod_ips(self, uid: str) -> tuple[list[str], str]:
        """Addresses for a pod, and a note when they come from the fallback range.

        Waits (once per node) up to `pod_cidr_wait` for spec.podCIDR, which node IPAM sets
        shortly after registration."""
        if not self.pod_cidrs() and not self._cidr_wait_over:
            await wait_event(self._clock, self._cidr_known, self.config.pod_cidr_wait)
            self._cidr_wait_over = True
        cidrs = self.pod_cidrs()
        if cidrs:
            if self._ipam is None or self._ipam.cidrs != cidrs:
                self._ipam = PodIPAllocator(cidrs)
            return self._ipam.allocate(uid), ""
        if self._fallback is None:
            cidr = fallback_cidr(self.config.fallback_pod_cidr, self.ident.index)
            self._fallback = PodIPAllocator([cidr])
            log.warning(
                "node %s has no spec.podCIDR after %.0fs; giving pods addresses from %s",
                self.name,
                self.config.pod_cidr_wait,
                cidr,
            )
        ips = self._fallback.allocate(uid)
        note = (
            f"node {self.name} has no spec.podCIDR; pod address {ips[0]} comes from the node agent's "
            f"fallback range {self._fallback.cidrs[0]}"
        )
        return ips, note

    def reserve_ips(self, uid: str, ips: list[str]) -> bool:
        """Keep the addresses of a pod adopted after a restart."""
        cidrs = self.pod_cidrs()
        if cidrs:
            if self._ipam is None or self._ipam.cidrs != cidrs:
                self._ipam = PodIPAllocator(cidrs)
            if self._ipam.reserve(uid, ips):
                return True
        if self._fallback is None:
            self._fallback = PodIPAllocator([fallback_cidr(self.config.fallback_pod_cidr, self.ident.index)])
        return self._fallback.reserve(uid, ips)

    def release_ips(self, uid: str) -> None:
        for allocator in (self._ipam, self._fallback):
            if allocator is not None:
                allocator.release(uid)


def _rv(obj: Obj) -> int:
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0
