"""Printers for `apps`: deployments, replica sets, stateful sets, daemon sets, controller revisions.

After upstream `pkg/printers/internalversion/printers.go`; every row carries the wide columns.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from controlplane.api.printers.common import (
    AGE,
    CONTAINERS,
    IMAGES,
    NAME,
    Column,
    Doc,
    Printer,
    age,
    as_int,
    as_map,
    as_str,
    container_cells,
    dig,
    format_label_selector,
    format_labels,
    maps,
    name,
    selector_string,
)

__all__ = ["PRINTERS"]


def _replicas(spec: Mapping[str, Any]) -> int:
    # Defaulting sets spec.replicas to 1; an object read before defaulting prints the same.
    value = spec.get("replicas")
    return 1 if value is None else as_int(value)


def _deployment_row(obj: Mapping[str, Any], now: datetime) -> list[Any]:
    spec, status = as_map(obj.get("spec")), as_map(obj.get("status"))
    names, images = container_cells(dig(spec, "template", "spec", "containers"))
    # Unlike the other workloads, upstream prints the bare selector string here ("" when empty).
    selector = selector_string(spec.get("selector"))
    return [
        name(obj),
        f"{as_int(status.get('readyReplicas'))}/{_replicas(spec)}",
        as_int(status.get("updatedReplicas")),
        as_int(status.get("availableReplicas")),
        age(obj, now),
        names,
        images,
        "<invalid>" if selector is None else selector,
    ]


_DEPLOYMENT = Printer(
    (
        NAME,
        Column("Ready", description="Number of the pod with ready state"),
        Column("Up-to-date", description=Doc("apps.v1.DeploymentStatus", "updatedReplicas")),
        Column("Available", description=Doc("apps.v1.DeploymentStatus", "availableReplicas")),
        AGE,
        CONTAINERS,
        IMAGES,
        Column("Selector", description=Doc("apps.v1.DeploymentSpec", "selector"), priority=1),
    ),
    _deployment_row,
)


def _replica_set_row(obj: Mapping[str, Any], now: datetime) -> list[Any]:
    spec, status = as_map(obj.get("spec")), as_map(obj.get("status"))
    names, images = container_cells(dig(spec, "template", "spec", "containers"))
    return [
        name(obj),
        _replicas(spec),
        as_int(status.get("replicas")),
        as_int(status.get("readyReplicas")),
        age(obj, now),
        names,
        images,
        format_label_selector(spec.get("selector")),
    ]


_REPLICA_SET = Printer(
    (
        NAME,
        Column("Desired", "integer", Doc("apps.v1.ReplicaSetSpec", "replicas")),
        Column("Current", "integer", Doc("apps.v1.ReplicaSetStatus", "replicas")),
        Column("Ready", "integer", Doc("apps.v1.ReplicaSetStatus", "readyReplicas")),
        AGE,
        CONTAINERS,
        IMAGES,
        Column("Selector", description=Doc("apps.v1.ReplicaSetSpec", "selector"), priority=1),
    ),
    _replica_set_row,
)


def _stateful_set_row(obj: Mapping[str, Any], now: datetime) -> list[Any]:
    spec = as_map(obj.get("spec"))
    names, images = container_cells(dig(spec, "template", "spec", "containers"))
    ready = as_int(dig(obj, "status", "readyReplicas"))
    return [name(obj), f"{ready}/{_replicas(spec)}", age(obj, now), names, images]


_STATEFUL_SET = Printer(
    (NAME, Column("Ready", description="Number of the pod with ready state"), AGE, CONTAINERS, IMAGES),
    _stateful_set_row,
)


def _daemon_set_row(obj: Mapping[str, Any], now: datetime) -> list[Any]:
    spec, status = as_map(obj.get("spec")), as_map(obj.get("status"))
    names, images = container_cells(dig(spec, "template", "spec", "containers"))
    return [
        name(obj),
        as_int(status.get("desiredNumberScheduled")),
        as_int(status.get("currentNumberScheduled")),
        as_int(status.get("numberReady")),
        as_int(status.get("updatedNumberScheduled")),
        as_int(status.get("numberAvailable")),
        format_labels(dig(spec, "template", "spec", "nodeSelector")),
        age(obj, now),
        names,
        images,
        format_label_selector(spec.get("selector")),
    ]


_DAEMON_SET = Printer(
    (
        NAME,
        Column("Desired", "integer", Doc("apps.v1.DaemonSetStatus", "desiredNumberScheduled")),
        Column("Current", "integer", Doc("apps.v1.DaemonSetStatus", "currentNumberScheduled")),
        Column("Ready", "integer", Doc("apps.v1.DaemonSetStatus", "numberReady")),
        Column("Up-to-date", "integer", Doc("apps.v1.DaemonSetStatus", "updatedNumberScheduled")),
        Column("Available", "integer", Doc("apps.v1.DaemonSetStatus", "numberAvailable")),
        Column("Node Selector", description=Doc("core.v1.PodSpec", "nodeSelector")),
        AGE,
        CONTAINERS,
        IMAGES,
        Column("Selector", description=Doc("apps.v1.DaemonSetSpec", "selector"), priority=1),
    ),
    _daemon_set_row,
)


def controller_name(obj: Mapping[str, Any]) -> str:
    """The controlling owner as `kind.group/name` in lower case (`formatResourceName`)."""
    owner = next(
        (o for o in maps(dig(obj, "metadata", "ownerReferences")) if o.get("controller") is True), None
    )
    if owner is None:
        return "<none>"
    api_version, kind = as_str(owner.get("apiVersion")), as_str(owner.get("kind"))
    group = api_version.split("/", 1)[0] if "/" in api_version else ""
    owner_name = as_str(owner.get("name"))
    if not group and not kind:
        return owner_name
    group_kind = f"{kind}.{group}" if group else kind
    return f"{group_kind.lower()}/{owner_name}"


_CONTROLLER_REVISION = Printer(
    (
        NAME,
        Column("Controller", description="Controller of the object"),
        Column("Revision", description=Doc("apps.v1.ControllerRevision", "revision")),
        AGE,
    ),
    lambda obj, now: [name(obj), controller_name(obj), as_int(obj.get("revision")), age(obj, now)],
)

PRINTERS: dict[tuple[str, str], Printer] = {
    ("apps", "deployments"): _DEPLOYMENT,
    ("apps", "replicasets"): _REPLICA_SET,
    ("apps", "statefulsets"): _STATEFUL_SET,
    ("apps", "daemonsets"): _DAEMON_SET,
    ("apps", "controllerrevisions"): _CONTROLLER_REVISION,
}
