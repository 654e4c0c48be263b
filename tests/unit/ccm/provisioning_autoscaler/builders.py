"""Plain API objects for the autoscaler's planner tests."""

from __future__ import annotations

from typing import Any

from ccm.provisioning.api import ANNOTATION_DELETE_MACHINE, LABEL_MACHINE, LABEL_NODE_POOL

Obj = dict[str, Any]


def pool(
    name: str = "workers",
    *,
    replicas: int = 1,
    min_replicas: int = 0,
    max_replicas: int | None = 5,
    delay: str = "10m",
    enabled: bool = True,
    instance_type: str = "t3.medium",
    labels: dict[str, str] | None = None,
    taints: list[Obj] | None = None,
    zones: list[str] | None = None,
) -> Obj:
    autoscaling: Obj = {"enabled": enabled, "minReplicas": min_replicas, "scaleDownDelay": delay}
    if max_replicas is not None:
        autoscaling["maxReplicas"] = max_replicas
    return {
        "apiVersion": "infra.pinnace.dev/v1alpha1",
        "kind": "NodePool",
        "metadata": {"name": name, "resourceVersion": "7"},
        "spec": {
            "replicas": replicas,
            "instanceType": instance_type,
            "labels": labels or {},
            "taints": taints or [],
            "zones": zones or [],
            "autoscaling": autoscaling,
        },
    }


def machine(
    name: str, pool_name: str = "workers", *, phase: str = "Running", node: str = "", marked: bool = False
) -> Obj:
    meta: Obj = {"name": name, "labels": {LABEL_NODE_POOL: pool_name}}
    if marked:
        meta["annotations"] = {ANNOTATION_DELETE_MACHINE: "2026-01-01T00:00:00Z"}
    status: Obj = {"phase": phase}
    if node:
        status["nodeName"] = node
    return {"kind": "Machine", "metadata": meta, "spec": {"nodePool": pool_name}, "status": status}


def node(
    name: str,
    pool_name: str | None = "workers",
    *,
    cpu: str = "2",
    memory: str = "4Gi",
    pods: str = "110",
    ready: bool = True,
    taints: list[Obj] | None = None,
    labels: dict[str, str] | None = None,
    unschedulable: bool = False,
) -> Obj:
    all_labels = {"kubernetes.io/hostname": name, **(labels or {})}
    if pool_name is not None:
        all_labels[LABEL_NODE_POOL] = pool_name
        all_labels[LABEL_MACHINE] = f"m-{name}"
    resources = {"cpu": cpu, "memory": memory, "pods": pods, "ephemeral-storage": "20Gi"}
    return {
        "kind": "Node",
        "metadata": {"name": name, "labels": all_labels},
        "spec": {"taints": taints or [], "unschedulable": unschedulable},
        "status": {
            "capacity": resources,
            "allocatable": resources,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def pod(
    name: str,
    *,
    cpu: str = "100m",
    memory: str = "64Mi",
    node_name: str = "",
    daemonset: bool = False,
    mirror: bool = False,
    node_selector: dict[str, str] | None = None,
    tolerations: list[Obj] | None = None,
    phase: str = "",
    pending: bool | None = None,
) -> Obj:
    meta: Obj = {"name": name, "namespace": "default", "uid": f"uid-{name}"}
    if daemonset:
        meta["ownerReferences"] = [
            {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "ds", "uid": "ds", "controller": True}
        ]
    if mirror:
        meta["annotations"] = {"kubernetes.io/config.mirror": "x"}
    spec: Obj = {
        "containers": [
            {"name": "c", "image": "pause", "resources": {"requests": {"cpu": cpu, "memory": memory}}}
        ]
    }
    if node_name:
        spec["nodeName"] = node_name
    if node_selector:
        spec["nodeSelector"] = node_selector
    if tolerations:
        spec["tolerations"] = tolerations
    status: Obj = {"phase": phase or ("Running" if node_name else "Pending")}
    if pending if pending is not None else not node_name:
        status["conditions"] = [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/1 nodes"}
        ]
    return {"kind": "Pod", "metadata": meta, "spec": spec, "status": status}
