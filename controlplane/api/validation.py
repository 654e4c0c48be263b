"""Per-kind validation on wire (v1) objects, worded like `pkg/apis/core/validation` and friends.

`validate(info, obj, old)` returns `errors.Cause`s: `field` is upstream's field path
(`spec.containers[0].image`) and `message` is `field.Error.ErrorBody()` (`Required value`,
`Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain ...`), so the caller can build
`errors.Invalid.for_object(...)` and clients see upstream's text. It runs after defaulting, as
upstream's does. Object metadata is checked for every kind; the rules below it are a table keyed
by (group, plural) and cover the kinds clients create most.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from controlplane.api import certificates, errors, event_versions, names
from controlplane.api.errors import Cause
from controlplane.api.resources import ResourceInfo
from controlplane.api.selectors import LabelSelector, Operator, Requirement

__all__ = ["TOTAL_ANNOTATION_SIZE_LIMIT", "parse_cron_schedule", "validate"]

TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024
_MAX_SECRET_SIZE = 1024 * 1024

Obj = Mapping[str, Any]


def _render(value: Any) -> str:
    """`field.Error` rendering: strings quoted, ints and bools plain, anything else JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


class _Errors:
    """An ErrorList builder with upstream's constructors."""

    def __init__(self) -> None:
        self.causes: list[Cause] = []

    def _add(self, reason: str, path: str, body: str, detail: str = "") -> None:
        self.causes.append(Cause(reason=reason, message=f"{body}: {detail}" if detail else body, field=path))

    def required(self, path: str, detail: str = "") -> None:
        self._add(errors.FIELD_VALUE_REQUIRED, path, "Required value", detail)

    def invalid(self, path: str, value: Any, detail: str) -> None:
        self._add(errors.FIELD_VALUE_INVALID, path, f"Invalid value: {_render(value)}", detail)

    def invalid_each(self, path: str, value: Any, messages: Iterable[str]) -> None:
        for msg in messages:
            self.invalid(path, value, msg)

    def not_supported(self, path: str, value: Any, valid: Iterable[str]) -> None:
        quoted = ", ".join(json.dumps(v) for v in valid)
        detail = f"supported values: {quoted}" if quoted else ""
        self._add(errors.FIELD_VALUE_NOT_SUPPORTED, path, f"Unsupported value: {_render(value)}", detail)

    def duplicate(self, path: str, value: Any) -> None:
        self._add(errors.FIELD_VALUE_DUPLICATE, path, f"Duplicate value: {_render(value)}")

    def forbidden(self, path: str, detail: str) -> None:
        self._add(errors.FIELD_VALUE_FORBIDDEN, path, "Forbidden", detail)

    def too_long(self, path: str, max_length: int) -> None:
        unit = "byte" if max_length == 1 else "bytes"
        self._add(errors.FIELD_VALUE_TOO_LONG, path, "Too long", f"may not be more than {max_length} {unit}")

    def immutable(self, path: str, new: Any, old: Any) -> None:
        if new != old:
            self.invalid(path, new, "field is immutable")

    def non_negative(self, path: str, value: Any) -> None:
        if isinstance(value, int) and not isinstance(value, bool) and value < 0:
            self.invalid(path, value, "must be greater than or equal to 0")


def _d(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _l(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


# --- object metadata (apimachinery/pkg/api/validation/objectmeta.go) ---------------------------

NameFn = names.NameValidator

_NAME_RULES: dict[tuple[str, str], NameFn] = {
    ("", "namespaces"): names.name_is_dns1123_label,
    ("", "services"): names.name_is_dns1035_label,
    ("rbac.authorization.k8s.io", "roles"): names.name_is_path_segment,
    ("rbac.authorization.k8s.io", "rolebindings"): names.name_is_path_segment,
    ("rbac.authorization.k8s.io", "clusterroles"): names.name_is_path_segment,
    ("rbac.authorization.k8s.io", "clusterrolebindings"): names.name_is_path_segment,
    # "We don't care what you call your certificate requests" (beyond being a path segment).
    ("certificates.k8s.io", "certificatesigningrequests"): names.name_is_path_segment,
    # Through core/v1 an Event's name is only checked as a path segment (legacyValidateEvent
    # checks none); through events.k8s.io/v1 it must be a DNS subdomain, the default.
    ("", "events"): names.name_is_path_segment,
}


def _validate_labels(labels: Any, path: str, errs: _Errors) -> None:
    for key, value in _d(labels).items():
        errs.invalid_each(path, key, names.is_qualified_name(key))
        if not isinstance(value, str):
            errs.invalid(path, value, "must be a string")
            continue
        errs.invalid_each(path, value, names.is_valid_label_value(value))


def _validate_annotations(annotations: Any, path: str, errs: _Errors) -> None:
    total = 0
    for key, value in _d(annotations).items():
        errs.invalid_each(path, key, names.is_qualified_name(key.lower()))
        total += len(key.encode()) + len(str(value).encode())
    if total > TOTAL_ANNOTATION_SIZE_LIMIT:
        errs.too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT)


def _validate_owner_references(refs: Any, path: str, errs: _Errors) -> None:
    controllers: list[str] = []
    for raw_ref in _l(refs):
        ref = _d(raw_ref)
        if not ref.get("apiVersion"):
            errs.invalid(f"{path}.apiVersion", ref.get("apiVersion", ""), "version must not be empty")
        if not ref.get("kind"):
            errs.invalid(f"{path}.kind", ref.get("kind", ""), "kind must not be empty")
        if not ref.get("name"):
            errs.invalid(f"{path}.name", ref.get("name", ""), "name must not be empty")
        if not ref.get("uid"):
            errs.invalid(f"{path}.uid", ref.get("uid", ""), "uid must not be empty")
        if ref.get("controller") is True:
            controllers.append(f"{ref.get('kind', '')}/{ref.get('name', '')}")
    if len(controllers) > 1:
        errs.invalid(
            path,
            refs,
            'Only one reference can have Controller set to true. Found "true" in references for '
            + " and ".join(controllers),
        )


def _validate_object_meta(info: ResourceInfo, meta: Obj, name_fn: NameFn, errs: _Errors) -> None:
    name, generate_name = meta.get("name") or "", meta.get("generateName") or ""
    if generate_name:
        errs.invalid_each("metadata.generateName", generate_name, name_fn(generate_name, True))
    if not name:
        errs.required("metadata.name", "name or generateName is required")
    else:
        errs.invalid_each("metadata.name", name, name_fn(name, False))
    namespace = meta.get("namespace") or ""
    if info.namespaced:
        if not namespace:
            errs.required("metadata.namespace")
        else:
            errs.invalid_each("metadata.namespace", namespace, names.is_dns1123_label(namespace))
    elif namespace:
        errs.forbidden("metadata.namespace", "not allowed on this type")
    errs.non_negative("metadata.generation", meta.get("generation"))
    _validate_labels(meta.get("labels"), "metadata.labels", errs)
    _validate_annotations(meta.get("annotations"), "metadata.annotations", errs)
    _validate_owner_references(meta.get("ownerReferences"), "metadata.ownerReferences", errs)
    for finalizer in _l(meta.get("finalizers")):
        errs.invalid_each("metadata.finalizers", finalizer, names.is_qualified_name(str(finalizer)))


def _validate_object_meta_update(meta: Obj, old_meta: Obj, errs: _Errors) -> None:
    for key in ("name", "namespace", "uid", "creationTimestamp"):
        errs.immutable(f"metadata.{key}", meta.get(key, ""), old_meta.get(key, ""))
    if old_meta.get("deletionTimestamp"):
        old = set(_l(old_meta.get("finalizers")))
        extra = sorted(set(_l(meta.get("finalizers"))) - old)
        if extra:
            shown = ", ".join(json.dumps(f) for f in extra)
            errs.forbidden(
                "metadata.finalizers",
                f"no new finalizers can be added if the object is being deleted, found new finalizers []string{{{shown}}}",
            )


# --- label selectors (apimachinery/pkg/apis/meta/v1/validation) --------------------------------


def _validate_label_selector(sel: Obj, path: str, errs: _Errors) -> None:
    _validate_labels(sel.get("matchLabels"), f"{path}.matchLabels", errs)
    for i, raw_expr in enumerate(_l(sel.get("matchExpressions"))):
        expr = _d(raw_expr)
        epath = f"{path}.matchExpressions[{i}]"
        op, values = expr.get("operator", ""), _l(expr.get("values"))
        if op in ("In", "NotIn"):
            if not values:
                errs.required(f"{epath}.values", "must be specified when `operator` is 'In' or 'NotIn'")
        elif op in ("Exists", "DoesNotExist"):
            if values:
                errs.forbidden(
                    f"{epath}.values", "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"
                )
        else:
            errs.invalid(f"{epath}.operator", op, "not a valid selector operator")
        errs.invalid_each(
            f"{epath}.key", expr.get("key", ""), names.is_qualified_name(str(expr.get("key", "")))
        )
        for j, value in enumerate(values):
            errs.invalid_each(f"{epath}.values[{j}]", value, names.is_valid_label_value(str(value)))


_SELECTOR_OPS = {"In": Operator.IN, "NotIn": Operator.NOT_IN, "Exists": Operator.EXISTS}


def _lenient_selector(sel: Obj) -> LabelSelector:
    """The selector as a matcher without re-validating (validation reports problems itself)."""
    reqs = [Requirement(str(k), Operator.EQUALS, (str(v),)) for k, v in _d(sel.get("matchLabels")).items()]
    for raw_expr in _l(sel.get("matchExpressions")):
        expr = _d(raw_expr)
        op = _SELECTOR_OPS.get(expr.get("operator", ""), Operator.DOES_NOT_EXIST)
        reqs.append(
            Requirement(str(expr.get("key", "")), op, tuple(sorted(str(v) for v in _l(expr.get("values")))))
        )
    return LabelSelector(tuple(reqs))


# --- pods (pkg/apis/core/validation) --------------------------------------------------------------

_RESTART_POLICIES = ("Always", "OnFailure", "Never")
_DNS_POLICIES = ("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None")
_PROTOCOLS = ("SCTP", "TCP", "UDP")
_PULL_POLICIES = ("Always", "IfNotPresent", "Never")


def _validate_ports(ports: Any, path: str, errs: _Errors) -> None:
    seen: set[str] = set()
    for i, raw_port in enumerate(_l(ports)):
        port, ppath = _d(raw_port), f"{path}[{i}]"
        name = port.get("name")
        if name:
            errs.invalid_each(f"{ppath}.name", name, names.is_valid_port_name(str(name)))
            if name in seen:
                errs.duplicate(f"{ppath}.name", name)
            seen.add(name)
        container_port = port.get("containerPort")
        if container_port is None:
            errs.required(f"{ppath}.containerPort")
        elif isinstance(container_port, int):
            errs.invalid_each(
                f"{ppath}.containerPort", container_port, names.is_valid_port_num(container_port)
            )
        host_port = port.get("hostPort")
        if isinstance(host_port, int) and host_port != 0:
            errs.invalid_each(f"{ppath}.hostPort", host_port, names.is_valid_port_num(host_port))
        _validate_protocol(port.get("protocol"), f"{ppath}.protocol", errs)


def _validate_protocol(protocol: Any, path: str, errs: _Errors) -> None:
    if not protocol:
        errs.required(path)
    elif protocol not in _PROTOCOLS:
        errs.not_supported(path, protocol, _PROTOCOLS)


def _validate_containers(spec: Obj, path: str, for_pod: bool, errs: _Errors) -> None:
    containers = _l(spec.get("containers"))
    if not containers:
        errs.required(f"{path}.containers")
    seen: set[str] = set()
    for key in ("initContainers", "containers"):
        for i, raw_ctr in enumerate(_l(spec.get(key))):
            ctr, cpath = _d(raw_ctr), f"{path}.{key}[{i}]"
            name = ctr.get("name") or ""
            if not name:
                errs.required(f"{cpath}.name")
            else:
                errs.invalid_each(f"{cpath}.name", name, names.is_dns1123_label(name))
                if name in seen:
                    errs.duplicate(f"{cpath}.name", name)
                seen.add(name)
            image = ctr.get("image") or ""
            # Only pods need an image; templates may get one later (e.g. from a webhook).
            if for_pod and not image:
                errs.required(f"{cpath}.image")
            if image and image != image.strip():
                errs.invalid(f"{cpath}.image", image, "must not have leading or trailing whitespace")
            policy = ctr.get("imagePullPolicy")
            if not policy:
                errs.required(f"{cpath}.imagePullPolicy")
            elif policy not in _PULL_POLICIES:
                errs.not_supported(f"{cpath}.imagePullPolicy", policy, _PULL_POLICIES)
            _validate_ports(ctr.get("ports"), f"{cpath}.ports", errs)
            for j, env in enumerate(_l(ctr.get("env"))):
                if not _d(env).get("name"):
                    errs.required(f"{cpath}.env[{j}].name")


def _validate_pod_spec(spec: Obj, path: str, for_pod: bool, errs: _Errors) -> None:
    _validate_containers(spec, path, for_pod, errs)
    restart = spec.get("restartPolicy")
    if not restart:
        errs.required(f"{path}.restartPolicy")
    elif restart not in _RESTART_POLICIES:
        errs.not_supported(f"{path}.restartPolicy", restart, _RESTART_POLICIES)
    dns = spec.get("dnsPolicy")
    if not dns:
        errs.required(f"{path}.dnsPolicy")
    elif dns not in _DNS_POLICIES:
        errs.not_supported(f"{path}.dnsPolicy", dns, _DNS_POLICIES)
    deadline = spec.get("activeDeadlineSeconds")
    if isinstance(deadline, int) and deadline <= 0:
        errs.invalid(f"{path}.activeDeadlineSeconds", deadline, "must be greater than or equal to 1")
    volumes: set[str] = set()
    for i, vol in enumerate(_l(spec.get("volumes"))):
        vname = _d(vol).get("name") or ""
        if not vname:
            errs.required(f"{path}.volumes[{i}].name")
        else:
            errs.invalid_each(f"{path}.volumes[{i}].name", vname, names.is_dns1123_label(vname))
            if vname in volumes:
                errs.duplicate(f"{path}.volumes[{i}].name", vname)
            volumes.add(vname)
    node_selector = spec.get("nodeSelector")
    if node_selector:
        _validate_labels(node_selector, f"{path}.nodeSelector", errs)


def _validate_pod_template(raw_template: Any, path: str, errs: _Errors) -> dict[str, Any]:
    template = _d(raw_template)
    meta = _d(template.get("metadata"))
    _validate_labels(meta.get("labels"), f"{path}.metadata.labels", errs)
    _validate_annotations(meta.get("annotations"), f"{path}.metadata.annotations", errs)
    _validate_pod_spec(_d(template.get("spec")), f"{path}.spec", False, errs)
    return template


_POD_UPDATE_MESSAGE = (
    "pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` "
    "(only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
    "(allow it to be set to 1 if it was previously negative)"
)


def _pod(obj: Obj, old: Obj | None, errs: _Errors) -> None:
    spec = _d(obj.get("spec"))
    _validate_pod_spec(spec, "spec", True, errs)
    if old is None:
        return
    old_spec = _d(old.get("spec"))
    # Mask what a pod update may change, then require the rest to be equal.
    masked, old_masked = dict(spec), dict(old_spec)
    for key in ("initContainers", "containers"):
        old_ctrs = _l(old_spec.get(key))
        new_ctrs = _l(spec.get(key))
        if key in spec and len(old_ctrs) == len(new_ctrs):
            masked[key] = [
                {**_d(n), "image": _d(o).get("image")} for n, o in zip(new_ctrs, old_ctrs, strict=True)
            ]
    masked.pop("activeDeadlineSeconds", None)
    old_masked.pop("activeDeadlineSeconds", None)

    def take_old(key: str) -> None:
        if key in old_spec:
            masked[key] = old_spec[key]
        else:
            masked.pop(key, None)

    old_tolerations = _l(old_spec.get("tolerations"))
    if all(t in _l(spec.get("tolerations")) for t in old_tolerations):
        take_old("tolerations")
    old_grace = old_spec.get("terminationGracePeriodSeconds")
    if isinstance(old_grace, int) and old_grace < 0 and spec.get("terminationGracePeriodSeconds") == 1:
        take_old("terminationGracePeriodSeconds")
    # Scheduling gates may only be removed.
    if all(g in _l(old_spec.get("schedulingGates")) for g in _l(spec.get("schedulingGates"))):
        take_old("schedulingGates")
    if masked != old_masked:
        errs.forbidden("spec", _POD_UPDATE_MESSAGE)


# --- services -------------------------------------------------------------------------------------

_SERVICE_TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")
_SESSION_AFFINITIES = ("ClientIP", "None")


def _service(obj: Obj, old: Obj | None, errs: _Errors) -> None:
    spec = _d(obj.get("spec"))
    svc_type = spec.get("type") or ""
    if svc_type not in _SERVICE_TYPES:
        errs.not_supported("spec.type", svc_type, _SERVICE_TYPES)
    cluster_ip = spec.get("clusterIP") or ""
    headless = cluster_ip == "None"
    ports = _l(spec.get("ports"))
    if not ports and not headless and svc_type != "ExternalName":
        errs.required("spec.ports")
    seen: set[str] = set()
    for i, raw_port in enumerate(ports):
        port, ppath = _d(raw_port), f"spec.ports[{i}]"
        name = port.get("name") or ""
        if len(ports) > 1 and not name:
            errs.required(f"{ppath}.name")
        elif name:
            errs.invalid_each(f"{ppath}.name", name, names.is_dns1123_label(name))
            if name in seen:
                errs.duplicate(f"{ppath}.name", name)
            seen.add(name)
        number = port.get("port")
        if isinstance(number, int):
            errs.invalid_each(f"{ppath}.port", number, names.is_valid_port_num(number))
        else:
            errs.invalid(f"{ppath}.port", number, names.inclusive_range_error(1, 65535))
        _validate_protocol(port.get("protocol"), f"{ppath}.protocol", errs)
        target = port.get("targetPort")
        if isinstance(target, int):
            errs.invalid_each(f"{ppath}.targetPort", target, names.is_valid_port_num(target))
        elif isinstance(target, str):
            errs.invalid_each(f"{ppath}.targetPort", target, names.is_valid_port_name(target))
        node_port = port.get("nodePort")
        if node_port and svc_type == "ClusterIP":
            errs.forbidden(f"{ppath}.nodePort", "may not be used when `type` is 'ClusterIP'")
    if cluster_ip and not headless:
        errs.invalid_each("spec.clusterIPs[0]", cluster_ip, names.is_valid_ip(cluster_ip))
    if svc_type == "ExternalName":
        external = spec.get("externalName") or ""
        if cluster_ip:
            errs.forbidden("spec.clusterIPs", "may not be set for ExternalName services")
        if not external:
            errs.required("spec.externalName")
        else:
            errs.invalid_each("spec.externalName", external, names.is_dns1123_subdomain(external.rstrip(".")))
    affinity = spec.get("sessionAffinity")
    if affinity and affinity not in _SESSION_AFFINITIES:
        errs.not_supported("spec.sessionAffinity", affinity, _SESSION_AFFINITIES)
    for i, ip in enumerate(_l(spec.get("externalIPs"))):
        errs.invalid_each(f"spec.externalIPs[{i}]", ip, names.is_valid_ip(str(ip)))
    if old is not None:
        old_spec = _d(old.get("spec"))
        old_ip = old_spec.get("clusterIP") or ""
        crossing_external_name = "ExternalName" in (svc_type, old_spec.get("type"))
        if old_ip and cluster_ip and not crossing_external_name:
            errs.immutable("spec.clusterIPs[0]", cluster_ip, old_ip)


# --- workloads ------------------------------------------------------------------------------------

_STS_MUTABLE = (
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "revisionHistoryLimit",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
)


def _validate_int_or_percent(value: Any, path: str, errs: _Errors) -> None:
    if isinstance(value, str):
        msgs = names.is_valid_percent(value)
        errs.invalid_each(path, value, msgs)
        if not msgs and int(value[:-1]) > 100:
            errs.invalid(path, value, "must not be greater than 100%")
    elif isinstance(value, int):
        errs.non_negative(path, value)


def _is_zero(value: Any) -> bool:
    return value in (0, "0%")


def _workload(kind_word: str, restart_always: bool) -> Callable[[Obj, Obj | None, _Errors], None]:
    """Deployments, ReplicaSets, StatefulSets and DaemonSets share this shape (apps/v1)."""

    def check(obj: Obj, old: Obj | None, errs: _Errors) -> None:
        spec = _d(obj.get("spec"))
        errs.non_negative("spec.replicas", spec.get("replicas"))
        errs.non_negative("spec.minReadySeconds", spec.get("minReadySeconds"))
        errs.non_negative("spec.revisionHistoryLimit", spec.get("revisionHistoryLimit"))
        selector = spec.get("selector")
        template = _validate_pod_template(spec.get("template"), "spec.template", errs)
        if not isinstance(selector, dict):
            errs.required("spec.selector")
        else:
            _validate_label_selector(selector, "spec.selector", errs)
            if not _d(selector.get("matchLabels")) and not _l(selector.get("matchExpressions")):
                errs.invalid("spec.selector", selector, f"empty selector is invalid for {kind_word}")
            else:
                labels = _d(_d(template.get("metadata")).get("labels"))
                if not _lenient_selector(selector).matches(labels):
                    errs.invalid(
                        "spec.template.metadata.labels", labels, "`selector` does not match template `labels`"
                    )
        template_spec = _d(template.get("spec"))
        restart = template_spec.get("restartPolicy")
        if restart_always and restart and restart != "Always":
            errs.not_supported("spec.template.spec.restartPolicy", restart, ["Always"])
        if restart_always and template_spec.get("activeDeadlineSeconds") is not None:
            errs.forbidden(
                "spec.template.spec.activeDeadlineSeconds",
                "activeDeadlineSeconds in ReplicaSet is not Supported",
            )
        if old is not None:
            old_spec = _d(old.get("spec"))
            errs.immutable("spec.selector", spec.get("selector"), old_spec.get("selector"))
            if kind_word == "statefulset":
                rest = {k: v for k, v in spec.items() if k not in _STS_MUTABLE}
                old_rest = {k: v for k, v in old_spec.items() if k not in _STS_MUTABLE}
                if rest != old_rest:
                    errs.forbidden(
                        "spec",
                        "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', "
                        "'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' "
                        "and 'minReadySeconds' are forbidden",
                    )

    return check


def _deployment(obj: Obj, old: Obj | None, errs: _Errors) -> None:
    _workload("deployment", True)(obj, old, errs)
    spec = _d(obj.get("spec"))
    strategy = _d(spec.get("strategy"))
    stype = strategy.get("type")
    if stype not in ("Recreate", "RollingUpdate"):
        errs.not_supported("spec.strategy.type", stype or "", ["Recreate", "RollingUpdate"])
    rolling = strategy.get("rollingUpdate")
    if stype == "Recreate" and rolling is not None:
        errs.forbidden(
            "spec.strategy.rollingUpdate", "may not be specified when strategy `type` is 'Recreate'"
        )
    elif isinstance(rolling, dict):
        unavailable, surge = rolling.get("maxUnavailable"), rolling.get("maxSurge")
        _validate_int_or_percent(unavailable, "spec.strategy.rollingUpdate.maxUnavailable", errs)
        _validate_int_or_percent(surge, "spec.strategy.rollingUpdate.maxSurge", errs)
        if _is_zero(unavailable) and _is_zero(surge):
            errs.invalid(
                "spec.strategy.rollingUpdate.maxUnavailable", unavailable, "may not be 0 when `maxSurge` is 0"
            )
    deadline, min_ready = spec.get("progressDeadlineSeconds"), spec.get("minReadySeconds") or 0
    if isinstance(deadline, int):
        errs.non_negative("spec.progressDeadlineSeconds", deadline)
        if deadline <= min_ready:
            errs.invalid("spec.progressDeadlineSeconds", deadline, "must be greater than minReadySeconds")


def _replication_controller(obj: Obj, old: Obj | None, errs: _Errors) -> None:
    spec = _d(obj.get("spec"))
    errs.non_negative("spec.replicas", spec.get("replicas"))
    errs.non_negative("spec.minReadySeconds", spec.get("minReadySeconds"))
    selector = _d(spec.get("selector"))
    if not selector:
        errs.required("spec.selector")
    else:
        _validate_labels(selector, "spec.selector", errs)
    if spec.get("template") is None:
        errs.required("spec.template")
        return
    template = _validate_pod_template(spec.get("template"), "spec.template", errs)
    labels = _d(_d(template.get("metadata")).get("labels"))
    if selector and any(labels.get(k) != v for k, v in selector.items()):
        errs.invalid("spec.template.metadata.labels", labels, "selector does not match template labels")
    restart = _d(template.get("spec")).get("restartPolicy")
    if restart and restart != "Always":
        errs.not_supported("spec.template.spec.restartPolicy", restart, ["Always"])


def _validate_job_spec(spec: Obj, path: str, is_template: bool, errs: _Errors) -> None:
    for key in (
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
    ):
        errs.non_negative(f"{path}.{key}", spec.get(key))
    deadline = spec.get("activeDeadlineSeconds")
    if isinstance(deadline, int) and deadline == 0:
        errs.invalid(f"{path}.activeDeadlineSeconds", deadline, "must be greater than or equal to 1")
    mode = spec.get("completionMode")
    if mode and mode not in ("NonIndexed", "Indexed"):
        errs.not_supported(f"{path}.completionMode", mode, ["NonIndexed", "Indexed"])
    if mode == "Indexed" and spec.get("completions") is None:
        errs.required(f"{path}.completions", "when completion mode is Indexed")
    template = _validate_pod_template(spec.get("template"), f"{path}.template", errs)
    selector = spec.get("selector")
    if isinstance(selector, dict):
        _validate_label_selector(selector, f"{path}.selector", errs)
        labels = _d(_d(template.get("metadata")).get("labels"))
        if not _lenient_selector(selector).matches(labels):
            errs.invalid(
                f"{path}.template.metadata.labels", labels, "`selector` does not match template `labels`"
            )
    elif not is_template:
        errs.required(f"{path}.selector")
    restart = _d(template.get("spec")).get("restartPolicy")
    if restart not in ("OnFailure", "Never"):
        errs.not_supported(f"{path}.template.spec.restartPolicy", restart or "", ["OnFailure", "Never"])


def _job(obj: Obj, old: Obj | None, errs: _Errors) -> None:
    spec = _d(obj.get("spec"))
    _validate_job_spec(spec, "spec", False, errs)
    if old is not None:
        old_spec = _d(old.get("spec"))
        errs.immutable("spec.selector", spec.get("selector"), old_spec.get("selector"))
        errs.immutable("spec.completionMode", spec.get("completionMode"), old_spec.get("completionMode"))
        # The template may only change while the job is suspended.
        if not old_spec.get("suspend"):
            errs.immutable("spec.template", spec.get("template"), old_spec.get("template"))


def _cron_job(obj: Obj, old: Obj | None, errs: _Errors) -> None:
    name = str(_d(obj.get("metadata")).get("name") or "")
    # Job names get an 11-character suffix and must still fit a label value.
    if len(name) > 52:
        errs.invalid("metadata.name", name, "must be no more than 52 characters")
    spec = _d(obj.get("spec"))
    schedule = spec.get("schedule") or ""
    if not schedule:
        errs.required("spec.schedule")
    else:
        if "TZ" in schedule:
            errs.invalid(
                "spec.schedule", schedule, "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"
            )
        problem = parse_cron_schedule(re.sub(r"^(CRON_)?TZ=\S+\s+", "", schedule))
        if problem:
            errs.invalid("spec.schedule", schedule, problem)
    policy = spec.get("concurrencyPolicy")
    if not policy:
        errs.required("spec.concurrencyPolicy")
    elif policy not in ("Allow", "Forbid", "Replace"):
        errs.not_supported("spec.concurrencyPolicy", policy, ["Allow", "Forbid", "Replace"])
    for key in ("startingDeadlineSeconds", "successfulJobsHistoryLimit", "failedJobsHistoryLimit"):
        errs.non_negative(f"spec.{key}", spec.get(key))
    job_template = _d(spec.get("jobTemplate"))
    _validate_labels(_d(job_template.get("metadata")).get("labels"), "spec.jobTemplate.metadata.labels", errs)
    _validate_job_spec(_d(job_template.get("spec")), "spec.jobTemplate.spec", True, errs)


# --- cron schedules (robfig/cron/v3 ParseStandard) ------------------------------------------------

_CRON_DESCRIPTORS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MONTHS = {m: i + 1 for i, m in enumerate(_MONTH_NAMES)}
_DAYS = {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
_NO_NAMES: dict[str, int] = {}
_CRON_FIELDS: tuple[tuple[int, int, dict[str, int]], ...] = (
    (0, 59, _NO_NAMES),
    (0, 23, _NO_NAMES),
    (1, 31, _NO_NAMES),
    (1, 12, _MONTHS),
    (0, 6, _DAYS),
)
_DURATION = re.compile(r"^([0-9]*(\.[0-9]*)?(ns|us|µs|ms|s|m|h))+$")


def _cron_number(text: str, names_map: Mapping[str, int]) -> tuple[int | None, str]:
    if text.lower() in names_map:
        return names_map[text.lower()], ""
    if text.isascii() and text.isdigit():
        return int(text), ""
    return None, f'failed to parse int from {text}: strconv.Atoi: parsing "{text}": invalid syntax'


def _cron_range(expr: str, lo: int, hi: int, names_map: Mapping[str, int]) -> str:
    range_and_step = expr.split("/")
    low_and_high = range_and_step[0].split("-")
    single = len(low_and_high) == 1
    if low_and_high[0] in ("*", "?"):
        start, end = lo, hi
    else:
        first, err = _cron_number(low_and_high[0], names_map)
        if first is None:
            return err
        start = end = first
        if len(low_and_high) == 2:
            second, err = _cron_number(low_and_high[1], names_map)
            if second is None:
                return err
            end = second
        elif len(low_and_high) > 2:
            return f"too many hyphens: {expr}"
    if len(range_and_step) == 2:
        step, err = _cron_number(range_and_step[1], {})
        if step is None:
            return err
        if step == 0:
            return f"step of range should be a positive number: {expr}"
        if single and low_and_high[0] not in ("*", "?"):
            end = hi
    elif len(range_and_step) > 2:
        return f"too many slashes: {expr}"
    if start < lo:
        return f"beginning of range ({start}) below minimum ({lo}): {expr}"
    if end > hi:
        return f"end of range ({end}) above maximum ({hi}): {expr}"
    if start > end:
        return f"beginning of range ({start}) beyond end of range ({end}): {expr}"
    return ""


def parse_cron_schedule(schedule: str) -> str:
    """Check a standard 5-field cron expression or descriptor; returns robfig/cron's error, or ""."""
    spec = schedule.strip()
    if not spec:
        return "empty spec string"
    if spec.startswith("@"):
        if spec in _CRON_DESCRIPTORS:
            return ""
        if spec.startswith("@every "):
            duration = spec[len("@every ") :].strip()
            if not _DURATION.match(duration) or duration in ("", "."):
                return f'failed to parse duration {spec}: time: invalid duration "{duration}"'
            return ""
        return f"unrecognized descriptor: {spec}"
    fields = spec.split()
    if len(fields) != 5:
        shown = " ".join(fields)
        return f"expected exactly 5 fields, found {len(fields)}: [{shown}]"
    for text, (lo, hi, names_map) in zip(fields, _CRON_FIELDS, strict=True):
        for expr in text.split(","):
            problem = _cron_range(expr, lo, hi, names_map)
            if problem:
                return problem
    return ""


# --- config maps, secrets, namespaces -------------------------------------------------------------


def _validate_data_keys(data: Any, path: str, errs: _Errors) -> None:
    for key in _d(data):
        errs.invalid_each(f"{path}[{key}]", key, names.is_config_map_key(key))


def _immutable_data(obj: Obj, old: Obj | None, keys: tuple[str, ...], errs: _Errors) -> None:
    if old is None or old.get("immutable") is not True:
        return
    if obj.get("immutable") is not True:
        errs.forbidden("immutable", "field is immutable when `immutable` is set")
    for key in keys:
        if obj.get(key) != old.get(key):
            errs.forbidden(key, "field is immutable when `immutable` is set")


def _config_map(obj: Obj, old: Obj | None, errs: _Errors) -> None:
    data, binary = _d(obj.get("data")), _d(obj.get("binaryData"))
    _validate_data_keys(data, "data", errs)
    _validate_data_keys(binary, "binaryData", errs)
    for key in binary:
        if key in data:
            errs.invalid(f"binaryData[{key}]", key, "duplicate of key present in data")
    size = sum(len(str(v).encode()) for v in data.values()) + sum(
        len(_b64_decode(v) or b"") for v in binary.values()
    )
    if size > _MAX_SECRET_SIZE:
        errs.too_long("", _MAX_SECRET_SIZE)
    _immutable_data(obj, old, ("data", "binaryData"), errs)


def _b64_decode(value: Any) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def _illegal_base64_offset(value: str) -> int:
    """Where Go's `base64.StdEncoding` would report "illegal base64 data at input byte N"."""
    alphabet = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
    stripped = value.replace("\r", "").replace("\n", "")
    for i, c in enumerate(stripped):
        if c not in alphabet:
            if c == "=" and i % 4 >= 2 and stripped[i:].strip("=") == "":
                continue
            return i
    return len(stripped) - len(stripped) % 4 if len(stripped) % 4 else len(stripped)


_SECRET_REQUIRED_KEYS = {
    "kubernetes.io/dockercfg": (".dockercfg",),
    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
    "kubernetes.io/basic-auth": (),
    "kubernetes.io/ssh-auth": ("ssh-privatekey",),
    "kubernetes.io/tls": ("tls.crt", "tls.key"),
}


def _secret(obj: Obj, old: Obj | None, errs: _Errors) -> None:
    data = _d(obj.get("data"))
    size = 0
    for value in data.values():
        raw = _b64_decode(value)
        if raw is None:
            # Upstream fails while decoding the body, before validation, with a 400.
            offset = _illegal_base64_offset(str(value))
            raise errors.BadRequest(
                message=f'Secret in version "v1" cannot be handled as a Secret: illegal base64 data at input byte {offset}'
            )
        size += len(raw)
    _validate_data_keys(data, "data", errs)
    string_data = _d(obj.get("stringData"))
    _validate_data_keys(string_data, "stringData", errs)
    if size > _MAX_SECRET_SIZE:
        errs.too_long("data", _MAX_SECRET_SIZE)
    stype = obj.get("type") or ""
    keys = set(data) | set(string_data)
    for required in _SECRET_REQUIRED_KEYS.get(stype, ()):
        if required not in keys:
            errs.required(f"data[{required}]")
    if stype == "kubernetes.io/service-account-token":
        annotations = _d(_d(obj.get("metadata")).get("annotations"))
        if not annotations.get("kubernetes.io/service-account.name"):
            errs.required("metadata.annotations[kubernetes.io/service-account.name]")
    if stype == "kubernetes.io/basic-auth" and not ({"username", "password"} & keys):
        errs.required("data[username]")
        errs.required("data[password]")
    if old is not None:
        errs.immutable("type", stype, old.get("type") or "")
    _immutable_data(obj, old, ("data",), errs)


def _namespace(obj: Obj, old: Obj | None, errs: _Errors) -> None:
    for finalizer in _l(_d(obj.get("spec")).get("finalizers")):
        text = str(finalizer)
        msgs = names.is_qualified_name(text)
        errs.invalid_each("spec.finalizers", text, msgs)
        if not msgs and "/" not in text and text != "kubernetes":
            errs.invalid(
                "spec.finalizers", text, "name is neither a standard finalizer name nor is it fully qualified"
            )


def _csr(obj: Obj, old: Obj | None, errs: _Errors) -> None:
    # The main and status endpoints: approval conditions change only through /approval
    # (controlplane.apiserver.certificates), which validates with its own licence.
    errs.causes.extend(certificates.validate(obj, old, allow_certificate=True))


# --- events (pkg/apis/core/validation/events.go) ----------------------------------------------
# Upstream validates the internal (core-shaped) Event, so an events.k8s.io/v1 Event is checked
# in its core/v1 form and its errors name the core fields ("message", "firstTimestamp").

_REPORTING_INSTANCE_LIMIT = 128
_ACTION_LIMIT = 128
_REASON_LIMIT = 128
_NOTE_LIMIT = 1024


def _legacy_event(event: Obj, reporting_field: str, errs: _Errors) -> None:
    """`legacyValidateEvent`: every Event, through either group, on create and update."""
    namespace = str(_d(event.get("metadata")).get("namespace") or "")
    involved_namespace = str(_d(event.get("involvedObject")).get("namespace") or "")
    if not event.get("eventTime"):
        # An "old" Event (no eventTime): its namespace and its object's must agree.
        if (involved_namespace and namespace != involved_namespace) or (
            not involved_namespace and namespace not in ("", "default")
        ):
            errs.invalid("involvedObject.namespace", involved_namespace, "does not match event.namespace")
    else:
        if not involved_namespace and namespace not in ("default", "kube-system"):
            errs.invalid("involvedObject.namespace", involved_namespace, "does not match event.namespace")
        controller = str(event.get("reportingComponent") or "")
        if not controller:
            errs.required(reporting_field)
        errs.invalid_each(reporting_field, controller, names.is_qualified_name(controller))
        instance = str(event.get("reportingInstance") or "")
        if not instance:
            errs.required("reportingInstance")
        if len(instance) > _REPORTING_INSTANCE_LIMIT:
            errs.invalid("reportingInstance", "", f"can have at most {_REPORTING_INSTANCE_LIMIT} characters")
        action = str(event.get("action") or "")
        if not action:
            errs.required("action")
        if len(action) > _ACTION_LIMIT:
            errs.invalid("action", "", f"can have at most {_ACTION_LIMIT} characters")
        reason = str(event.get("reason") or "")
        if not reason:
            errs.required("reason")
        if len(reason) > _REASON_LIMIT:
            errs.invalid("reason", "", f"can have at most {_REASON_LIMIT} characters")
        if len(str(event.get("message") or "")) > _NOTE_LIMIT:
            errs.invalid("message", "", f"can have at most {_NOTE_LIMIT} characters")
    errs.invalid_each("namespace", namespace, names.is_dns1123_subdomain(namespace))


def _event_series(event: Obj, errs: _Errors) -> None:
    series = event.get("series")
    if isinstance(series, Mapping):
        count = series.get("count")
        if not isinstance(count, int) or count < 2:
            errs.invalid("series.count", "", "should be at least 2")
        if not series.get("lastObservedTime"):
            errs.required("series.lastObservedTime")


def _core_event(obj: Obj, old: Obj | None, errs: _Errors) -> None:
    # Through core/v1 only the legacy rules apply, on create and on update (backwards compatibility).
    _legacy_event(obj, "reportingComponent", errs)


_EVENT_IMMUTABLE = (
    "involvedObject",
    "reason",
    "message",
    "source",
    "firstTimestamp",
    "lastTimestamp",
    "count",
    "type",
    "eventTime",
    "action",
    "related",
)


def _events_v1_event(obj: Obj, old: Obj | None, errs: _Errors) -> None:
    """`ValidateEventCreate`/`ValidateEventUpdate` for a request through events.k8s.io/v1."""
    event = event_versions.to_core(obj)
    _legacy_event(event, "reportingController", errs)
    if old is None:
        _event_series(event, errs)
        if not event.get("eventTime"):
            errs.required("eventTime")
        kind = event.get("type")
        if kind not in ("Normal", "Warning"):
            errs.invalid("type", "", f"has invalid value: {'' if kind is None else kind}")
        for name in ("firstTimestamp", "lastTimestamp"):
            if event.get(name):
                errs.invalid(name, "", "needs to be unset")
        if event.get("count"):
            errs.invalid("count", "", "needs to be unset")
        source = _d(event.get("source"))
        if source.get("component") or source.get("host"):
            errs.invalid("source", "", "needs to be unset")
        return
    before = event_versions.to_core(old)
    if event.get("series") != before.get("series"):
        _event_series(event, errs)
    for name in _EVENT_IMMUTABLE:
        errs.immutable(name, event.get(name), before.get(name))
    errs.immutable("reportingController", event.get("reportingComponent"), before.get("reportingComponent"))
    errs.immutable("reportingInstance", event.get("reportingInstance"), before.get("reportingInstance"))


_KIND_RULES: dict[tuple[str, str], Callable[[Obj, Obj | None, _Errors], None]] = {
    ("", "pods"): _pod,
    ("", "services"): _service,
    ("", "configmaps"): _config_map,
    ("", "secrets"): _secret,
    ("", "namespaces"): _namespace,
    ("", "replicationcontrollers"): _replication_controller,
    ("apps", "deployments"): _deployment,
    ("apps", "replicasets"): _workload("deployment", True),
    ("apps", "statefulsets"): _workload("statefulset", True),
    ("apps", "daemonsets"): _workload("daemonset", True),
    ("batch", "jobs"): _job,
    ("batch", "cronjobs"): _cron_job,
    ("certificates.k8s.io", "certificatesigningrequests"): _csr,
    ("", "events"): _core_event,
    ("events.k8s.io", "events"): _events_v1_event,
}


def validate(info: ResourceInfo, obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[Cause]:
    """Every problem with `obj` (and with the change from `old`, on update), upstream-worded."""
    errs = _Errors()
    meta = _d(obj.get("metadata"))
    key = (info.group, info.plural)
    _validate_object_meta(info, meta, _NAME_RULES.get(key, names.name_is_dns1123_subdomain), errs)
    if old is not None:
        _validate_object_meta_update(meta, _d(old.get("metadata")), errs)
    rule = None if info.custom else _KIND_RULES.get(key)
    if rule is not None:
        rule(obj, old, errs)
    return errs.causes
