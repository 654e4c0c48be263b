"""Pure helpers the Endpoints and EndpointSlice controllers share (upstream k8s.io/endpointslice/util
and the pod helpers it copies): which pods back which Services, which pod changes matter, how a
Service port resolves on a pod, and the last-change trigger time both controllers annotate.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from controlplane.controllers.podutil import condition, is_pod_ready, is_pod_terminal, parse_time
from controlplane.controllers.runtime import key_of

__all__ = [
    "HEADLESS_LABEL",
    "LAST_CHANGE_TRIGGER_TIME",
    "TriggerTimeTracker",
    "find_port",
    "is_ipv6",
    "is_service_ip_set",
    "managed_selector",
    "pod_service_memberships",
    "pod_target_ref",
    "rfc3339nano",
    "selected_pods",
    "selector_of",
    "services_for_pod_event",
    "services_to_update_on_pod_change",
    "set_trigger_time",
    "should_pod_be_in_endpoints",
    "should_set_hostname",
    "stable_hash",
]

Obj = Mapping[str, Any]

LAST_CHANGE_TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"
# v1.IsHeadlessService: on the Endpoints and EndpointSlices of a Service without a cluster IP.
HEADLESS_LABEL = "service.kubernetes.io/headless"


def stable_hash(value: Any) -> str:
    """A deterministic hash of a JSON value: upstream orders ports and subsets by a hash of the
    object, so the order is arbitrary but stable; this keeps it stable across processes."""
    return hashlib.md5(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()


def rfc3339nano(moment: datetime) -> str:
    """Go's time.RFC3339Nano: fractional seconds with trailing zeros trimmed, `Z` for UTC."""
    moment = moment.astimezone(UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += "." + f"{moment.microsecond:06d}".rstrip("0")
    return text + "Z"


def is_ipv6(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).version == 6
    except ValueError:
        return False


def is_service_ip_set(service: Obj) -> bool:
    """helper.IsServiceIPSet: a cluster IP that is neither unset nor "None" (headless)."""
    cluster_ip = (service.get("spec") or {}).get("clusterIP") or ""
    return cluster_ip not in ("", "None")


def set_trigger_time(annotations: dict[str, str], trigger: datetime | None) -> None:
    """Stamp (or clear) the last-change-trigger-time annotation both controllers write."""
    if trigger is not None:
        annotations[LAST_CHANGE_TRIGGER_TIME] = rfc3339nano(trigger)
    else:
        annotations.pop(LAST_CHANGE_TRIGGER_TIME, None)


def pod_target_ref(pod: Obj) -> dict[str, Any]:
    """The ObjectReference an endpoint address points back to its pod with."""
    meta = pod.get("metadata") or {}
    return {
        "kind": "Pod",
        "namespace": meta.get("namespace", ""),
        "name": meta.get("name", ""),
        "uid": meta.get("uid", ""),
    }


def selector_of(service: Obj) -> Mapping[str, str] | None:
    """A Service's selector, or None when it has none: a missing selector selects nothing (the
    Service's endpoints are managed by hand), while an empty one selects every pod."""
    selector = (service.get("spec") or {}).get("selector")
    return selector if isinstance(selector, Mapping) else None


def _matches(selector: Mapping[str, str], labels: Mapping[str, str] | None) -> bool:
    labels = labels or {}
    return all(labels.get(k) == v for k, v in selector.items())


def managed_selector(service: Obj) -> Mapping[str, str] | None:
    """The selector of a Service whose endpoints the controllers manage: None for an
    ExternalName Service (it gets no endpoints) and for one without a selector."""
    if (service.get("spec") or {}).get("type") == "ExternalName":
        return None
    return selector_of(service)


def selected_pods(selector: Mapping[str, str], pods: Iterable[Obj]) -> list[Obj]:
    """The pods whose labels carry every key and value of a Service's selector."""
    return [p for p in pods if _matches(selector, (p.get("metadata") or {}).get("labels"))]


def pod_service_memberships(services: Iterable[Obj], pod: Obj) -> set[str]:
    """Keys of the Services (in the pod's namespace) whose selector matches the pod."""
    labels = (pod.get("metadata") or {}).get("labels")
    found: set[str] = set()
    for service in services:
        selector = selector_of(service)
        if selector is not None and _matches(selector, labels):
            found.add(key_of(service))
    return found


def _host_and_domain(pod: Obj) -> tuple[str, str]:
    spec = pod.get("spec") or {}
    return str(spec.get("hostname") or ""), str(spec.get("subdomain") or "")


def _pod_ips(pod: Obj) -> list[str]:
    return [str(entry.get("ip", "")) for entry in (pod.get("status") or {}).get("podIPs") or []]


def pod_endpoints_changed(old: Obj, new: Obj) -> tuple[bool, bool]:
    """(the pod changed in a way that changes its endpoint, its Service membership may have changed)."""
    old_meta, new_meta = old.get("metadata") or {}, new.get("metadata") or {}
    labels_changed = (old_meta.get("labels") or {}) != (new_meta.get("labels") or {}) or _host_and_domain(
        old
    ) != _host_and_domain(new)
    if old_meta.get("deletionTimestamp") != new_meta.get("deletionTimestamp"):
        return True, labels_changed
    if is_pod_ready(old) != is_pod_ready(new):
        return True, labels_changed
    if _pod_ips(old) != _pod_ips(new):
        return True, labels_changed
    return False, labels_changed


def services_to_update_on_pod_change(services: Iterable[Obj], old: Obj, new: Obj) -> set[str]:
    """Upstream GetServicesToUpdateOnPodChange."""
    if (old.get("metadata") or {}).get("resourceVersion") == (new.get("metadata") or {}).get(
        "resourceVersion"
    ):
        return set()
    pod_changed, labels_changed = pod_endpoints_changed(old, new)
    if not pod_changed and not labels_changed:
        return set()
    service_list = list(services)
    current = pod_service_memberships(service_list, new)
    if not labels_changed:
        return current
    previous = pod_service_memberships(service_list, old)
    if pod_changed:
        return current | previous
    # Only the labels changed: the Services the pod joined or left.
    return current ^ previous


def services_for_pod_event(
    services_in: Callable[[str], Iterable[Obj]], event: str, old: Obj | None, new: Obj | None
) -> set[str]:
    """Keys of the Services a pod event concerns (upstream addPod, updatePod and deletePod of both
    controllers): an added pod's Services, a deleted pod's last ones, and for an update
    GetServicesToUpdateOnPodChange. `services_in` lists a namespace's Services."""
    pod = new if new is not None else old
    if pod is None:
        return set()
    services = services_in(str((pod.get("metadata") or {}).get("namespace", "")))
    if event == "MODIFIED" and old is not None and new is not None:
        return services_to_update_on_pod_change(services, old, new)
    return pod_service_memberships(services, old if event == "DELETED" and old else pod)


def should_pod_be_in_endpoints(pod: Obj, include_terminating: bool) -> bool:
    if is_pod_terminal(pod):
        return False
    status = pod.get("status") or {}
    if not status.get("podIP") and not status.get("podIPs"):
        return False
    return include_terminating or not (pod.get("metadata") or {}).get("deletionTimestamp")


def should_set_hostname(pod: Obj, service: Obj) -> bool:
    hostname, subdomain = _host_and_domain(pod)
    pod_ns = (pod.get("metadata") or {}).get("namespace")
    svc_meta = service.get("metadata") or {}
    return bool(hostname) and subdomain == svc_meta.get("name") and svc_meta.get("namespace") == pod_ns


def find_port(pod: Obj, service_port: Obj) -> int | None:
    """The container port a Service port targets on this pod: a number is used as is, a name is
    looked up among the containers' (and restartable init containers') named ports with the same
    protocol. None when the pod has no such port."""
    target = service_port.get("targetPort", service_port.get("port"))
    protocol = service_port.get("protocol") or "TCP"
    if isinstance(target, int) and not isinstance(target, bool):
        return target
    if not isinstance(target, str):
        return None
    spec = pod.get("spec") or {}
    candidates = list(spec.get("containers") or [])
    candidates += [c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]
    for container in candidates:
        for port in container.get("ports") or []:
            if port.get("name") == target and (port.get("protocol") or "TCP") == protocol:
                return int(port["containerPort"])
    return None


@dataclass
class _ServiceState:
    service_trigger: datetime | None = None
    pod_triggers: dict[str, datetime] = field(default_factory=dict)


def _pod_trigger_time(pod: Obj) -> datetime | None:
    ready = condition(pod, "Ready")
    return parse_time(ready.get("lastTransitionTime")) if ready else None


class TriggerTimeTracker:
    """Upstream TriggerTimeTracker: the time of the earliest change (a pod's Ready transition, or
    the Service's creation) not yet reflected in the endpoints, for the
    `endpoints.kubernetes.io/last-change-trigger-time` annotation."""

    def __init__(self) -> None:
        self._states: dict[str, _ServiceState] = {}

    def compute(self, service: Obj, pods: Iterable[Obj]) -> datetime | None:
        key = key_of(service)
        known = key in self._states
        state = self._states.get(key) or _ServiceState()
        earliest: datetime | None = None
        pod_triggers: dict[str, datetime] = {}
        for pod in pods:
            trigger = _pod_trigger_time(pod)
            if trigger is None:
                continue
            name = str((pod.get("metadata") or {}).get("name", ""))
            pod_triggers[name] = trigger
            last = state.pod_triggers.get(name)
            if last is None or trigger > last:
                earliest = trigger if earliest is None or trigger < earliest else earliest
        created = parse_time((service.get("metadata") or {}).get("creationTimestamp"))
        if created is not None and (state.service_trigger is None or created > state.service_trigger):
            earliest = created if earliest is None or created < earliest else earliest
        self._states[key] = _ServiceState(service_trigger=created, pod_triggers=pod_triggers)
        if not known:
            return created
        return earliest

    def delete_service(self, key: str) -> None:
        self._states.pop(key, None)
