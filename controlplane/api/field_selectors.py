"""Which fields each built-in resource can be filtered on, and how an object renders them.

Two upstream tables meet here. The field-label conversion functions registered per kind
(`pkg/apis/*/v1/conversion.go`) decide which names a `?fieldSelector=` may use, and word the
refusal; the registry's `GetAttrs`/`ToSelectableFields` (`pkg/registry/*/strategy.go`) decide
what value each name has on a stored object. Kinds with no conversion function accept only
`metadata.name` and `metadata.namespace` (`runtime.DefaultMetaV1FieldSelectorConversion`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from controlplane.api import errors
from controlplane.api.selectors import FieldRequirement, FieldSelector

__all__ = [
    "check_supported",
    "convert_field_selector",
    "object_fields",
    "supported_fields",
]

_META = frozenset({"metadata.name", "metadata.namespace"})

_EVENT_FIELDS = frozenset(
    {
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    }
)


@dataclass(frozen=True)
class _Conversion:
    """One kind's registered field-label conversion: accepted names, renames, refusal wording."""

    fields: frozenset[str]
    aliases: Mapping[str, str]
    refusal: Callable[[str], str]


def _not_supported(label: str) -> str:
    return f"field label not supported: {label}"


def _job_refusal(label: str) -> str:
    return f'field label "{label}" not supported for Job'


def _default_refusal(label: str) -> str:
    return f'"{label}" is not a known field selector: only "metadata.name", "metadata.namespace"'


_CONVERSIONS: dict[tuple[str, str], _Conversion] = {
    ("", "pods"): _Conversion(
        _META
        | {
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.podIPs",
            "status.nominatedNodeName",
        },
        # Old v1 clients send spec.host.
        {"spec.host": "spec.nodeName"},
        _not_supported,
    ),
    # Nodes and namespaces are cluster-scoped; upstream's lists omit metadata.namespace.
    ("", "nodes"): _Conversion(frozenset({"metadata.name", "spec.unschedulable"}), {}, _not_supported),
    ("", "namespaces"): _Conversion(frozenset({"metadata.name", "status.phase"}), {}, _not_supported),
    ("", "replicationcontrollers"): _Conversion(_META | {"status.replicas"}, {}, _not_supported),
    ("", "events"): _Conversion(_META | _EVENT_FIELDS, {}, _not_supported),
    ("", "secrets"): _Conversion(_META | {"type"}, {}, _not_supported),
    ("", "services"): _Conversion(_META | {"spec.clusterIP", "spec.type"}, {}, _not_supported),
    # ReplicaSet's registry exposes status.replicas like ReplicationController does.
    ("apps", "replicasets"): _Conversion(_META | {"status.replicas"}, {}, _not_supported),
    ("batch", "jobs"): _Conversion(_META | {"status.successful"}, {}, _job_refusal),
    ("certificates.k8s.io", "certificatesigningrequests"): _Conversion(
        frozenset({"metadata.name", "spec.signerName"}), {}, _not_supported
    ),
    ("events.k8s.io", "events"): _Conversion(_META | _EVENT_FIELDS, {}, _not_supported),
}

_DEFAULT = _Conversion(_META, {}, _default_refusal)


def supported_fields(group: str, plural: str) -> frozenset[str]:
    return _CONVERSIONS.get((group, plural), _DEFAULT).fields


def convert_field_selector(group: str, plural: str, selector: FieldSelector) -> FieldSelector:
    """Check every field name against the kind's conversion and apply its renames; an unknown
    name is a 400 worded as that kind's conversion function words it."""
    conversion = _CONVERSIONS.get((group, plural), _DEFAULT)
    out: list[FieldRequirement] = []
    for req in selector.requirements:
        name = conversion.aliases.get(req.field, req.field)
        if name not in conversion.fields:
            raise errors.BadRequest(message=conversion.refusal(req.field))
        out.append(FieldRequirement(name, req.operator, req.value))
    return FieldSelector(tuple(out))


def check_supported(group: str, plural: str, selector: FieldSelector) -> None:
    convert_field_selector(group, plural, selector)


def _get(obj: Mapping[str, Any], *path: str) -> Any:
    cur: Any = obj
    for part in path:
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(part)
    return cur


def _s(value: Any) -> str:
    """Go's rendering of a scalar field: strings as-is, bools lower-case, absent as ""."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _pod_fields(obj: Mapping[str, Any]) -> dict[str, str]:
    pod_ips = _get(obj, "status", "podIPs") or []
    first_ip = pod_ips[0].get("ip") if pod_ips and isinstance(pod_ips[0], Mapping) else None
    # status.podIPs is accepted by the conversion but absent from upstream's field set, so it
    # reads as "" like any missing field.
    return {
        "spec.nodeName": _s(_get(obj, "spec", "nodeName")),
        "spec.restartPolicy": _s(_get(obj, "spec", "restartPolicy")),
        "spec.schedulerName": _s(_get(obj, "spec", "schedulerName")),
        "spec.serviceAccountName": _s(_get(obj, "spec", "serviceAccountName")),
        "spec.hostNetwork": _s(bool(_get(obj, "spec", "hostNetwork"))),
        "status.phase": _s(_get(obj, "status", "phase")),
        # Upstream reads the primary IP from podIPs[0], not status.podIP.
        "status.podIP": _s(first_ip if first_ip is not None else _get(obj, "status", "podIP")),
        "status.nominatedNodeName": _s(_get(obj, "status", "nominatedNodeName")),
    }


def _event_fields(
    obj: Mapping[str, Any], ref: Mapping[str, Any], reporting: Any, source: Any
) -> dict[str, str]:
    fields = {f"involvedObject.{name}": _s(ref.get(name)) for name in _INVOLVED_OBJECT_FIELDS}
    fields.update(
        {
            "reason": _s(obj.get("reason")),
            "reportingComponent": _s(reporting),
            "source": _s(source),
            "type": _s(obj.get("type")),
        }
    )
    return fields


_INVOLVED_OBJECT_FIELDS = ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")


def _core_event_fields(obj: Mapping[str, Any]) -> dict[str, str]:
    source = _get(obj, "source", "component") or obj.get("reportingComponent") or ""
    return _event_fields(obj, obj.get("involvedObject") or {}, obj.get("reportingComponent"), source)


def _events_v1_fields(obj: Mapping[str, Any]) -> dict[str, str]:
    # events.k8s.io/v1 objects are filtered through the core Event shape they convert to:
    # regarding -> involvedObject, reportingController -> reportingComponent,
    # deprecatedSource -> source, note -> message.
    source = _get(obj, "deprecatedSource", "component") or obj.get("reportingController") or ""
    return _event_fields(obj, obj.get("regarding") or {}, obj.get("reportingController"), source)


def _int_field(*path: str) -> Callable[[Mapping[str, Any]], str]:
    def read(obj: Mapping[str, Any]) -> str:
        value = _get(obj, *path)
        return str(int(value)) if isinstance(value, int | float) and not isinstance(value, bool) else "0"

    return read


_SPECIFIC: dict[tuple[str, str], Callable[[Mapping[str, Any]], dict[str, str]]] = {
    ("", "pods"): _pod_fields,
    ("", "events"): _core_event_fields,
    ("events.k8s.io", "events"): _events_v1_fields,
    ("", "secrets"): lambda o: {"type": _s(o.get("type"))},
    ("", "services"): lambda o: {
        "spec.clusterIP": _s(_get(o, "spec", "clusterIP")),
        "spec.type": _s(_get(o, "spec", "type")),
    },
    ("", "nodes"): lambda o: {"spec.unschedulable": _s(bool(_get(o, "spec", "unschedulable")))},
    ("", "namespaces"): lambda o: {"status.phase": _s(_get(o, "status", "phase"))},
    ("", "replicationcontrollers"): lambda o: {"status.replicas": _int_field("status", "replicas")(o)},
    ("apps", "replicasets"): lambda o: {"status.replicas": _int_field("status", "replicas")(o)},
    ("batch", "jobs"): lambda o: {"status.successful": _int_field("status", "succeeded")(o)},
    ("certificates.k8s.io", "certificatesigningrequests"): lambda o: {
        "spec.signerName": _s(_get(o, "spec", "signerName"))
    },
}

# Cluster-scoped kinds whose upstream field set carries no metadata.namespace.
_NO_NAMESPACE_FIELD = frozenset(
    {("", "nodes"), ("", "namespaces"), ("certificates.k8s.io", "certificatesigningrequests")}
)


def object_fields(group: str, plural: str, obj: Mapping[str, Any]) -> dict[str, str]:
    """The object's selectable fields as strings, for `FieldSelector.matches`."""
    meta = obj.get("metadata") or {}
    out = {"metadata.name": _s(meta.get("name"))}
    if (group, plural) not in _NO_NAMESPACE_FIELD:
        out["metadata.namespace"] = _s(meta.get("namespace"))
    specific = _SPECIFIC.get((group, plural))
    if specific is not None:
        out.update(specific(obj))
    return out
