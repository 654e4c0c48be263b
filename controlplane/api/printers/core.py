"""Printers for the core (`""`) group, after upstream `pkg/printers/internalversion/printers.go`.

Pods, pod templates, replication controllers, services, endpoints, namespaces, nodes, events,
secrets, service accounts, config maps, persistent volumes and claims, resource quotas.
Events from `events.k8s.io` are printed by the same function after renaming their fields to
the core ones, as upstream prints both from the one internal type.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from controlplane.api import event_versions
from controlplane.api.printers.common import (
    AGE,
    CONTAINERS,
    IMAGES,
    NAME,
    Column,
    Doc,
    Printer,
    age,
    as_bool,
    as_int,
    as_list,
    as_map,
    as_str,
    container_cells,
    dig,
    format_labels,
    load_balancer_ingress,
    maps,
    name,
    parse_time,
    quantity,
    since,
)

__all__ = ["PRINTERS"]

_NONE = "<none>"
_UNKNOWN = "<unknown>"
_UNSET = "<unset>"


def _or(value: str, fallback: str) -> str:
    return value if value else fallback


# --- pods -------------------------------------------------------------------------------------


def _later(current: datetime | None, state: Any) -> datetime | None:
    """Track the latest `lastState.terminated.finishedAt` (Go: lastRestartDate.Before(&t))."""
    terminated = dig(state, "terminated")
    if not isinstance(terminated, Mapping):
        return current
    finished = parse_time(terminated.get("finishedAt"))
    if finished is None:
        return current
    return finished if current is None or current < finished else current


def _has_condition(conditions: Any, kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status") == "True" for c in maps(conditions))


def _exit_reason(terminated: Mapping[str, Any], prefix: str) -> str:
    signal = as_int(terminated.get("signal"))
    if signal:
        return f"{prefix}Signal:{signal}"
    return f"{prefix}ExitCode:{as_int(terminated.get('exitCode'))}"


def _pod_row(pod: Mapping[str, Any], now: datetime) -> list[Any]:
    spec, status = as_map(pod.get("spec")), as_map(pod.get("status"))
    init_containers = maps(spec.get("initContainers"))
    restartable = {as_str(c.get("name")) for c in init_containers if c.get("restartPolicy") == "Always"}
    total = len(maps(spec.get("containers"))) + sum(
        1 for c in init_containers if c.get("restartPolicy") == "Always"
    )
    ready = restarts = restartable_restarts = 0
    last_restart: datetime | None = None
    last_restartable_restart: datetime | None = None

    phase = as_str(status.get("phase"))
    reason = _or(as_str(status.get("reason")), phase)
    for condition in maps(status.get("conditions")):
        if condition.get("type") == "PodScheduled" and condition.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    initializing = False
    for i, cs in enumerate(maps(status.get("initContainerStatuses"))):
        count = as_int(cs.get("restartCount"))
        restarts += count
        last_restart = _later(last_restart, cs.get("lastState"))
        is_restartable = as_str(cs.get("name")) in restartable
        if is_restartable:
            restartable_restarts += count
            last_restartable_restart = _later(last_restartable_restart, cs.get("lastState"))
        terminated, waiting = dig(cs, "state", "terminated"), dig(cs, "state", "waiting")
        if isinstance(terminated, Mapping) and as_int(terminated.get("exitCode")) == 0:
            continue
        if is_restartable and as_bool(cs.get("started")):
            ready += 1 if as_bool(cs.get("ready")) else 0
            continue
        if isinstance(terminated, Mapping):
            term_reason = as_str(terminated.get("reason"))
            reason = "Init:" + term_reason if term_reason else _exit_reason(terminated, "Init:")
        elif isinstance(waiting, Mapping) and as_str(waiting.get("reason")) not in ("", "PodInitializing"):
            reason = "Init:" + as_str(waiting.get("reason"))
        else:
            reason = f"Init:{i}/{len(init_containers)}"
        initializing = True
        break

    if not initializing or _has_condition(status.get("conditions"), "Initialized"):
        restarts, last_restart = restartable_restarts, last_restartable_restart
        has_running = False
        for cs in reversed(maps(status.get("containerStatuses"))):
            restarts += as_int(cs.get("restartCount"))
            last_restart = _later(last_restart, cs.get("lastState"))
            state = as_map(cs.get("state"))
            terminated, waiting = state.get("terminated"), state.get("waiting")
            if isinstance(waiting, Mapping) and as_str(waiting.get("reason")):
                reason = as_str(waiting.get("reason"))
            elif isinstance(terminated, Mapping) and as_str(terminated.get("reason")):
                reason = as_str(terminated.get("reason"))
            elif isinstance(terminated, Mapping):
                reason = _exit_reason(terminated, "")
            elif as_bool(cs.get("ready")) and isinstance(state.get("running"), Mapping):
                has_running = True
                ready += 1
        # A pod whose last container completed but another still runs is not "Completed".
        if reason == "Completed" and has_running:
            reason = "Running" if _has_condition(status.get("conditions"), "Ready") else "NotReady"

    if dig(pod, "metadata", "deletionTimestamp") is not None:
        if status.get("reason") == "NodeLost":
            reason = "Unknown"
        elif phase not in ("Failed", "Succeeded"):
            reason = "Terminating"

    restarts_cell = str(restarts)
    if restarts != 0 and last_restart is not None:
        restarts_cell = f"{restarts} ({since(last_restart, now)} ago)"

    pod_ip = as_str(dig(status, "podIPs", 0, "ip")) or as_str(status.get("podIP"))
    gates = maps(spec.get("readinessGates"))
    readiness = _NONE
    if gates:
        conditions = maps(status.get("conditions"))
        true_count = 0
        for gate in gates:
            match = next((c for c in conditions if c.get("type") == gate.get("conditionType")), None)
            if match is not None and match.get("status") == "True":
                true_count += 1
        readiness = f"{true_count}/{len(gates)}"
    return [
        name(pod),
        f"{ready}/{total}",
        reason,
        restarts_cell,
        age(pod, now),
        _or(pod_ip, _NONE),
        _or(as_str(spec.get("nodeName")), _NONE),
        _or(as_str(status.get("nominatedNodeName")), _NONE),
        readiness,
    ]


def _pod_conditions(pod: Mapping[str, Any]) -> list[dict[str, Any]]:
    phase = dig(pod, "status", "phase")
    if phase == "Succeeded":
        message = "The pod has completed successfully."
    elif phase == "Failed":
        message = "The pod failed."
    else:
        return []
    return [{"type": "Completed", "status": "True", "reason": phase, "message": message}]


_POD = Printer(
    (
        NAME,
        Column("Ready", description="The aggregate readiness state of this pod for accepting traffic."),
        Column("Status", description="The aggregate status of the containers in this pod."),
        Column(
            "Restarts",
            description="The number of times the containers in this pod have been restarted and when the "
            "last container in this pod has restarted.",
        ),
        AGE,
        Column("IP", description=Doc("core.v1.PodStatus", "podIP"), priority=1),
        Column("Node", description=Doc("core.v1.PodSpec", "nodeName"), priority=1),
        Column("Nominated Node", description=Doc("core.v1.PodStatus", "nominatedNodeName"), priority=1),
        Column("Readiness Gates", description=Doc("core.v1.PodSpec", "readinessGates"), priority=1),
    ),
    _pod_row,
    _pod_conditions,
)


def _pod_template_row(obj: Mapping[str, Any], now: datetime) -> list[Any]:
    names, images = container_cells(dig(obj, "template", "spec", "containers"))
    return [name(obj), names, images, format_labels(dig(obj, "template", "metadata", "labels"))]


_POD_TEMPLATE = Printer(
    (
        NAME,
        Column("Containers", description="Names of each container in the template."),
        Column("Images", description="Images referenced by each container in the template."),
        Column("Pod Labels", description="The labels for the pod template."),
    ),
    _pod_template_row,
)


def _replicas(spec: Any) -> int:
    # Defaulting sets spec.replicas to 1; an object read before defaulting prints the same.
    value = dig(spec, "replicas")
    return 1 if value is None else as_int(value)


def _rc_row(obj: Mapping[str, Any], now: datetime) -> list[Any]:
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
        format_labels(spec.get("selector")),
    ]


_RC = Printer(
    (
        NAME,
        Column("Desired", "integer", Doc("core.v1.ReplicationControllerSpec", "replicas")),
        Column("Current", "integer", Doc("core.v1.ReplicationControllerStatus", "replicas")),
        Column("Ready", "integer", Doc("core.v1.ReplicationControllerStatus", "readyReplicas")),
        AGE,
        CONTAINERS,
        IMAGES,
        Column("Selector", description=Doc("core.v1.ReplicationControllerSpec", "selector"), priority=1),
    ),
    _rc_row,
)

# --- services and endpoints -------------------------------------------------------------------


def _external_ip(spec: Mapping[str, Any], status: Mapping[str, Any]) -> str:
    external_ips = [as_str(ip) for ip in as_list(spec.get("externalIPs"))]
    kind = spec.get("type")
    if kind in ("ClusterIP", "NodePort"):
        return ",".join(external_ips) if external_ips else _NONE
    if kind == "LoadBalancer":
        lb_ips = load_balancer_ingress(status.get("loadBalancer"))
        if external_ips:
            return ",".join(([*lb_ips.split(",")] if lb_ips else []) + external_ips)
        return lb_ips or "<pending>"
    if kind == "ExternalName":
        return as_str(spec.get("externalName"))
    return _UNKNOWN


def _ports(ports: Any) -> str:
    pieces = []
    for port in maps(ports):
        # Defaulting sets protocol TCP; print an undefaulted object the same way.
        protocol = as_str(port.get("protocol")) or "TCP"
        node_port = as_int(port.get("nodePort"))
        number = as_int(port.get("port"))
        pieces.append(f"{number}:{node_port}/{protocol}" if node_port > 0 else f"{number}/{protocol}")
    return ",".join(pieces)


def _service_row(obj: Mapping[str, Any], now: datetime) -> list[Any]:
    spec, status = as_map(obj.get("spec")), as_map(obj.get("status"))
    # The internal type always carries clusterIPs; a v1 object may still hold only clusterIP.
    cluster_ip = as_str(dig(spec, "clusterIPs", 0)) or as_str(spec.get("clusterIP")) or _NONE
    return [
        name(obj),
        as_str(spec.get("type")),
        cluster_ip,
        _external_ip(spec, status),
        _ports(spec.get("ports")) or _NONE,
        age(obj, now),
        format_labels(spec.get("selector")),
    ]


_SERVICE = Printer(
    (
        NAME,
        Column("Type", description=Doc("core.v1.ServiceSpec", "type")),
        Column("Cluster-IP", description=Doc("core.v1.ServiceSpec", "clusterIP")),
        Column("External-IP", description=Doc("core.v1.ServiceSpec", "externalIPs")),
        Column("Port(s)", description=Doc("core.v1.ServiceSpec", "ports")),
        AGE,
        Column("Selector", description=Doc("core.v1.ServiceSpec", "selector"), priority=1),
    ),
    _service_row,
)


def _join_host_port(host: str, port: int) -> str:
    """Go's `net.JoinHostPort`: brackets around hosts containing a colon (IPv6)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def format_endpoints(subsets: Any) -> str:
    """`formatEndpoints` for all ports: up to three `ip:port`, then "+ N more..."."""
    subsets = maps(subsets)
    if not subsets:
        return _NONE
    limit, more, count = 3, False, 0
    listed: list[str] = []
    for subset in subsets:
        addresses = [as_str(a.get("ip")) for a in maps(subset.get("addresses"))]
        ports = maps(subset.get("ports"))
        if not ports:
            # Headless services may have no ports at all.
            count += len(addresses)
            for ip in addresses:
                if len(listed) == limit:
                    more = True
                    break
                listed.append(ip)
            continue
        for port in ports:
            count += len(addresses)
            for ip in addresses:
                if len(listed) == limit:
                    more = True
                    break
                listed.append(_join_host_port(ip, as_int(port.get("port"))))
    text = ",".join(listed)
    return f"{text} + {count - limit} more..." if more else text


_ENDPOINTS = Printer(
    (NAME, Column("Endpoints", description=Doc("core.v1.Endpoints", "subsets")), AGE),
    lambda obj, now: [name(obj), format_endpoints(obj.get("subsets")), age(obj, now)],
)

# --- namespaces, nodes -------------------------------------------------------------------------

_NAMESPACE = Printer(
    (NAME, Column("Status", description="The status of the namespace"), AGE),
    lambda obj, now: [name(obj), as_str(dig(obj, "status", "phase")), age(obj, now)],
)

_NODE_ROLE_PREFIX = "node-role.kubernetes.io/"
_NODE_ROLE_LABEL = "kubernetes.io/role"


def node_roles(labels: Any) -> list[str]:
    """`findNodeRoles`: `node-role.kubernetes.io/<role>` keys and the `kubernetes.io/role` value."""
    roles: set[str] = set()
    for key, value in as_map(labels).items():
        if key.startswith(_NODE_ROLE_PREFIX):
            role = key[len(_NODE_ROLE_PREFIX) :]
            if role:
                roles.add(role)
        elif key == _NODE_ROLE_LABEL and as_str(value):
            roles.add(as_str(value))
    return sorted(roles)


def _node_address(status: Mapping[str, Any], kind: str) -> str:
    for address in maps(status.get("addresses")):
        if address.get("type") == kind:
            return as_str(address.get("address"))
    return _NONE


def _node_row(obj: Mapping[str, Any], now: datetime) -> list[Any]:
    spec, status = as_map(obj.get("spec")), as_map(obj.get("status"))
    conditions = {as_str(c.get("type")): c for c in maps(status.get("conditions"))}
    states = []
    if "Ready" in conditions:
        states.append("Ready" if conditions["Ready"].get("status") == "True" else "NotReady")
    if not states:
        states.append("Unknown")
    if as_bool(spec.get("unschedulable")):
        states.append("SchedulingDisabled")
    info = as_map(status.get("nodeInfo"))
    return [
        name(obj),
        ",".join(states),
        ",".join(node_roles(dig(obj, "metadata", "labels"))) or _NONE,
        age(obj, now),
        as_str(info.get("kubeletVersion")),
        _node_address(status, "InternalIP"),
        _node_address(status, "ExternalIP"),
        _or(as_str(info.get("osImage")), _UNKNOWN),
        _or(as_str(info.get("kernelVersion")), _UNKNOWN),
        _or(as_str(info.get("containerRuntimeVersion")), _UNKNOWN),
    ]


_NODE = Printer(
    (
        NAME,
        Column("Status", description="The status of the node"),
        Column("Roles", description="The roles of the node"),
        AGE,
        Column("Version", description=Doc("core.v1.NodeSystemInfo", "kubeletVersion")),
        Column("Internal-IP", description=Doc("core.v1.NodeStatus", "addresses"), priority=1),
        Column("External-IP", description=Doc("core.v1.NodeStatus", "addresses"), priority=1),
        Column("OS-Image", description=Doc("core.v1.NodeSystemInfo", "osImage"), priority=1),
        Column("Kernel-Version", description=Doc("core.v1.NodeSystemInfo", "kernelVersion"), priority=1),
        Column(
            "Container-Runtime",
            description=Doc("core.v1.NodeSystemInfo", "containerRuntimeVersion"),
            priority=1,
        ),
    ),
    _node_row,
)

# --- events -----------------------------------------------------------------------------------


def _event_source(obj: Mapping[str, Any]) -> str:
    """`formatEventSource`: component (or reporting controller), then ", host" when known."""
    source = as_map(obj.get("source"))
    component = as_str(source.get("component")) or as_str(obj.get("reportingComponent"))
    instance = as_str(source.get("host")) or as_str(obj.get("reportingInstance"))
    return f"{component}, {instance}" if instance else component


def _event_row(obj: Mapping[str, Any], now: datetime) -> list[Any]:
    first_time = parse_time(obj.get("firstTimestamp"))
    first = since(first_time if first_time else obj.get("eventTime"), now)
    last_time = parse_time(obj.get("lastTimestamp"))
    last = since(last_time, now) if last_time else first
    count = as_int(obj.get("count"))
    series = obj.get("series")
    if isinstance(series, Mapping):
        last = since(series.get("lastObservedTime"), now)
        count = as_int(series.get("count"))
    elif count == 0:
        # Singleton events of the new API carry no count.
        count = 1
    involved = as_map(obj.get("involvedObject"))
    kind, involved_name = as_str(involved.get("kind")).lower(), as_str(involved.get("name"))
    target = f"{kind}/{involved_name}" if involved_name else kind
    return [
        last,
        as_str(obj.get("type")),
        as_str(obj.get("reason")),
        target,
        as_str(involved.get("fieldPath")),
        _event_source(obj),
        as_str(obj.get("message")).strip(),
        first,
        count,
        name(obj),
    ]


_EVENT_COLUMNS = (
    Column("Last Seen", description=Doc("core.v1.Event", "lastTimestamp")),
    Column("Type", description=Doc("core.v1.Event", "type")),
    Column("Reason", description=Doc("core.v1.Event", "reason")),
    Column("Object", description=Doc("core.v1.Event", "involvedObject")),
    Column("Subobject", description=Doc("core.v1.ObjectReference", "fieldPath"), priority=1),
    Column("Source", description=Doc("core.v1.Event", "source"), priority=1),
    Column("Message", description=Doc("core.v1.Event", "message")),
    Column("First Seen", description=Doc("core.v1.Event", "firstTimestamp"), priority=1),
    Column("Count", description=Doc("core.v1.Event", "count"), priority=1),
    Column("Name", description=Doc("meta.v1.ObjectMeta", "name"), priority=1, format="name"),
)
_EVENT = Printer(_EVENT_COLUMNS, _event_row)
_EVENT_V1 = Printer(_EVENT_COLUMNS, lambda obj, now: _event_row(event_versions.to_core(obj), now))

# --- config, secrets, accounts ----------------------------------------------------------------


def _secret_row(obj: Mapping[str, Any], now: datetime) -> list[Any]:
    # stringData is write-only and merged into data; count it when an object still carries it.
    keys = set(as_map(obj.get("data"))) | set(as_map(obj.get("stringData")))
    return [name(obj), as_str(obj.get("type")), len(keys), age(obj, now)]


_SECRET = Printer(
    (
        NAME,
        Column("Type", description=Doc("core.v1.Secret", "type")),
        Column("Data", description=Doc("core.v1.Secret", "data")),
        AGE,
    ),
    _secret_row,
)

_SERVICE_ACCOUNT = Printer(
    (NAME, Column("Secrets", description=Doc("core.v1.ServiceAccount", "secrets")), AGE),
    lambda obj, now: [name(obj), len(as_list(obj.get("secrets"))), age(obj, now)],
)

_CONFIG_MAP = Printer(
    (NAME, Column("Data", description=Doc("core.v1.ConfigMap", "data")), AGE),
    lambda obj, now: [
        name(obj),
        len(as_map(obj.get("data"))) + len(as_map(obj.get("binaryData"))),
        age(obj, now),
    ],
)

# --- storage ----------------------------------------------------------------------------------

_ACCESS_MODES = (
    ("ReadWriteOnce", "RWO"),
    ("ReadOnlyMany", "ROX"),
    ("ReadWriteMany", "RWX"),
    ("ReadWriteOncePod", "RWOP"),
)
_BETA_STORAGE_CLASS = "volume.beta.kubernetes.io/storage-class"


def access_modes(modes: Any) -> str:
    """`GetAccessModesAsString`: RWO, ROX, RWX, RWOP in that fixed order."""
    present = set(as_list(modes))
    return ",".join(short for mode, short in _ACCESS_MODES if mode in present)


def _storage_class(obj: Mapping[str, Any]) -> str:
    """`GetPersistentVolumeClass` / `GetPersistentVolumeClaimClass`: the beta annotation wins."""
    annotations = as_map(dig(obj, "metadata", "annotations"))
    if _BETA_STORAGE_CLASS in annotations:
        return as_str(annotations[_BETA_STORAGE_CLASS])
    return as_str(dig(obj, "spec", "storageClassName"))


def _terminating_phase(obj: Mapping[str, Any]) -> str:
    if dig(obj, "metadata", "deletionTimestamp") is not None:
        return "Terminating"
    return as_str(dig(obj, "status", "phase"))


def _pv_row(obj: Mapping[str, Any], now: datetime) -> list[Any]:
    spec = as_map(obj.get("spec"))
    claim = spec.get("claimRef")
    claim_text = ""
    if isinstance(claim, Mapping):
        claim_text = f"{as_str(claim.get('namespace'))}/{as_str(claim.get('name'))}"
    return [
        name(obj),
        quantity(dig(spec, "capacity", "storage")),
        access_modes(spec.get("accessModes")),
        as_str(spec.get("persistentVolumeReclaimPolicy")),
        _terminating_phase(obj),
        claim_text,
        _storage_class(obj),
        as_str(spec.get("volumeAttributesClassName")) or _UNSET,
        as_str(dig(obj, "status", "reason")),
        age(obj, now),
        as_str(spec.get("volumeMode")) or _UNSET,
    ]


_PV = Printer(
    (
        NAME,
        Column("Capacity", description=Doc("core.v1.PersistentVolumeSpec", "capacity")),
        Column("Access Modes", description=Doc("core.v1.PersistentVolumeSpec", "accessModes")),
        Column(
            "Reclaim Policy",
            description=Doc("core.v1.PersistentVolumeSpec", "persistentVolumeReclaimPolicy"),
        ),
        Column("Status", description=Doc("core.v1.PersistentVolumeStatus", "phase")),
        Column("Claim", description=Doc("core.v1.PersistentVolumeSpec", "claimRef")),
        Column("StorageClass", description="StorageClass of the pv"),
        Column("VolumeAttributesClass", description="VolumeAttributesClass of the pv"),
        Column("Reason", description=Doc("core.v1.PersistentVolumeStatus", "reason")),
        AGE,
        Column("VolumeMode", description=Doc("core.v1.PersistentVolumeSpec", "volumeMode"), priority=1),
    ),
    _pv_row,
)


def _pvc_row(obj: Mapping[str, Any], now: datetime) -> list[Any]:
    spec, status = as_map(obj.get("spec")), as_map(obj.get("status"))
    volume = as_str(spec.get("volumeName"))
    capacity = modes = ""
    if volume:
        modes = access_modes(status.get("accessModes"))
        capacity = quantity(dig(status, "capacity", "storage"))
    return [
        name(obj),
        _terminating_phase(obj),
        volume,
        capacity,
        modes,
        _storage_class(obj),
        as_str(spec.get("volumeAttributesClassName")) or _UNSET,
        age(obj, now),
        as_str(spec.get("volumeMode")) or _UNSET,
    ]


_PVC = Printer(
    (
        NAME,
        Column("Status", description=Doc("core.v1.PersistentVolumeClaimStatus", "phase")),
        Column("Volume", description=Doc("core.v1.PersistentVolumeClaimSpec", "volumeName")),
        Column("Capacity", description=Doc("core.v1.PersistentVolumeClaimStatus", "capacity")),
        Column("Access Modes", description=Doc("core.v1.PersistentVolumeClaimStatus", "accessModes")),
        Column("StorageClass", description="StorageClass of the pvc"),
        Column("VolumeAttributesClass", description="VolumeAttributesClass of the pvc"),
        AGE,
        Column(
            "VolumeMode",
            description=Doc("core.v1.PersistentVolumeClaimSpec", "volumeMode"),
            priority=1,
        ),
    ),
    _pvc_row,
)


def _quota_row(obj: Mapping[str, Any], now: datetime) -> list[Any]:
    hard, used = as_map(dig(obj, "status", "hard")), as_map(dig(obj, "status", "used"))
    requests: list[str] = []
    limits: list[str] = []
    for resource in sorted(hard):
        pieces = resource.split(".")
        target = limits if len(pieces) > 1 and pieces[0] == "limits" else requests
        target.append(f"{resource}: {quantity(used.get(resource))}/{quantity(hard[resource])}")
    return [name(obj), ", ".join(requests), ", ".join(limits), age(obj, now)]


_RESOURCE_QUOTA = Printer(
    (
        NAME,
        Column(
            "Request",
            description="Request represents a minimum amount of cpu/memory that a container may consume.",
        ),
        Column(
            "Limit",
            description="Limits control the maximum amount of cpu/memory that a container may use "
            "independent of contention on the node.",
        ),
        AGE,
    ),
    _quota_row,
)


PRINTERS: dict[tuple[str, str], Printer] = {
    ("", "pods"): _POD,
    ("", "podtemplates"): _POD_TEMPLATE,
    ("", "replicationcontrollers"): _RC,
    ("", "services"): _SERVICE,
    ("", "endpoints"): _ENDPOINTS,
    ("", "namespaces"): _NAMESPACE,
    ("", "nodes"): _NODE,
    ("", "events"): _EVENT,
    ("events.k8s.io", "events"): _EVENT_V1,
    ("", "secrets"): _SECRET,
    ("", "serviceaccounts"): _SERVICE_ACCOUNT,
    ("", "configmaps"): _CONFIG_MAP,
    ("", "persistentvolumes"): _PV,
    ("", "persistentvolumeclaims"): _PVC,
    ("", "resourcequotas"): _RESOURCE_QUOTA,
}
