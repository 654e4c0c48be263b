"""Which nodes a DaemonSet's pods belong on (upstream pkg/controller/daemon: NodeShouldRunDaemonPod,
and daemon/util: the tolerations daemon pods get and the node affinity that pins them).

The DaemonSet controller decides eligibility itself: a node runs the daemon pod when the pod's
nodeName (if any), nodeSelector and required node affinity match it and every NoSchedule/NoExecute
taint is tolerated, counting the tolerations upstream adds to every daemon pod. A node whose only
untolerated taints are NoSchedule keeps an already running pod ("should continue running").
The pod itself is then left to the default scheduler with a required node affinity on
`metadata.name` (matchFields), as upstream does since 1.12.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "DAEMON_TOLERATIONS",
    "OBJECT_NAME_FIELD",
    "add_daemon_tolerations",
    "add_or_update_toleration",
    "find_untolerated_taint",
    "node_matches_pod",
    "node_selector_term_matches",
    "pin_to_node",
    "should_run_on_node",
    "target_node_name",
    "tolerates",
]

Obj = Mapping[str, Any]

OBJECT_NAME_FIELD = "metadata.name"

TAINT_NOT_READY = "node.kubernetes.io/not-ready"
TAINT_UNREACHABLE = "node.kubernetes.io/unreachable"
TAINT_DISK_PRESSURE = "node.kubernetes.io/disk-pressure"
TAINT_MEMORY_PRESSURE = "node.kubernetes.io/memory-pressure"
TAINT_PID_PRESSURE = "node.kubernetes.io/pid-pressure"
TAINT_UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
TAINT_NETWORK_UNAVAILABLE = "node.kubernetes.io/network-unavailable"

# AddOrUpdateDaemonPodTolerations, in upstream's order: daemon pods survive node problems
# (no tolerationSeconds, so taint-based eviction never removes them) and the condition taints.
DAEMON_TOLERATIONS: tuple[dict[str, str], ...] = (
    {"key": TAINT_NOT_READY, "operator": "Exists", "effect": "NoExecute"},
    {"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoExecute"},
    {"key": TAINT_DISK_PRESSURE, "operator": "Exists", "effect": "NoSchedule"},
    {"key": TAINT_MEMORY_PRESSURE, "operator": "Exists", "effect": "NoSchedule"},
    {"key": TAINT_PID_PRESSURE, "operator": "Exists", "effect": "NoSchedule"},
    {"key": TAINT_UNSCHEDULABLE, "operator": "Exists", "effect": "NoSchedule"},
)
_HOST_NETWORK_TOLERATION = {"key": TAINT_NETWORK_UNAVAILABLE, "operator": "Exists", "effect": "NoSchedule"}


# --- taints and tolerations -------------------------------------------------------------------


def tolerates(toleration: Obj, taint: Obj) -> bool:
    """Toleration.ToleratesTaint: empty effect and empty key (with Exists) match everything."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    if key and key != taint.get("key"):
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Equal":
        return (toleration.get("value") or "") == (taint.get("value") or "")
    return operator == "Exists"


def find_untolerated_taint(
    taints: Iterable[Obj], tolerations: Sequence[Obj], effects: Iterable[str]
) -> Obj | None:
    """FindMatchingUntoleratedTaint restricted to the given effects."""
    wanted = set(effects)
    for taint in taints:
        if taint.get("effect") not in wanted:
            continue
        if not any(tolerates(t, taint) for t in tolerations):
            return taint
    return None


def _same_toleration(a: Obj, b: Obj) -> bool:
    # Toleration.MatchToleration: key, effect, operator and value (tolerationSeconds aside).
    return all((a.get(f) or "") == (b.get(f) or "") for f in ("key", "effect", "operator", "value"))


def add_or_update_toleration(tolerations: Sequence[Obj], toleration: Obj) -> list[dict[str, Any]]:
    """AddOrUpdateTolerationInPodSpec: replace a matching toleration (e.g. one with a
    tolerationSeconds) by this one, or append it."""
    out: list[dict[str, Any]] = []
    replaced = False
    for existing in tolerations:
        if _same_toleration(existing, toleration):
            out.append(dict(toleration))
            replaced = True
        else:
            out.append(dict(existing))
    if not replaced:
        out.append(dict(toleration))
    return out


def add_daemon_tolerations(spec: dict[str, Any]) -> None:
    """AddOrUpdateDaemonPodTolerations, in place on a pod spec."""
    tolerations: list[dict[str, Any]] = [t for t in spec.get("tolerations") or [] if isinstance(t, dict)]
    wanted = list(DAEMON_TOLERATIONS)
    if spec.get("hostNetwork"):
        wanted.append(_HOST_NETWORK_TOLERATION)
    for toleration in wanted:
        tolerations = add_or_update_toleration(tolerations, toleration)
    spec["tolerations"] = tolerations


# --- node selectors and affinity --------------------------------------------------------------


def _int(text: str) -> int | None:
    try:
        return int(text, 10)
    except ValueError:
        return None


def _label_requirement(req: Obj, labels: Mapping[str, str]) -> bool | None:
    """One NodeSelectorRequirement against labels; None when the requirement is invalid."""
    key = str(req.get("key") or "")
    op = req.get("operator")
    values = [str(v) for v in req.get("values") or []]
    if op in ("In", "NotIn"):
        if not values:
            return None
        present = key in labels and labels[key] in values
        return present if op == "In" else not present
    if op in ("Exists", "DoesNotExist"):
        if values:
            return None
        return (key in labels) == bool(op == "Exists")
    if op in ("Gt", "Lt"):
        if len(values) != 1 or _int(values[0]) is None:
            return None
        have = _int(labels[key]) if key in labels else None
        if have is None:
            return False
        want = _int(values[0])
        assert want is not None
        return have > want if op == "Gt" else have < want
    return None


def _field_requirement(req: Obj, node_name: str) -> bool | None:
    # Only metadata.name is a node field selector key, with In/NotIn of exactly one value.
    values = [str(v) for v in req.get("values") or []]
    if req.get("key") != OBJECT_NAME_FIELD or req.get("operator") not in ("In", "NotIn") or len(values) != 1:
        return None
    return (node_name == values[0]) == (req.get("operator") == "In")


def node_selector_term_matches(term: Obj, node: Obj) -> bool:
    """A term ANDs its expressions and fields; an empty or invalid term matches nothing."""
    expressions = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not expressions and not fields:
        return False
    meta = node.get("metadata") or {}
    labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
    for req in expressions:
        if _label_requirement(req, labels) is not True:
            return False
    name = str(meta.get("name", ""))
    return all(_field_requirement(req, name) is True for req in fields)


def node_matches_pod(pod_spec: Obj, node: Obj) -> bool:
    """GetRequiredNodeAffinity(pod).Match(node): nodeSelector labels and the OR of the
    required node affinity terms."""
    labels = (node.get("metadata") or {}).get("labels") or {}
    for key, value in (pod_spec.get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            return False
    required = ((pod_spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    )
    if required is None:
        return True
    return any(node_selector_term_matches(term, node) for term in required.get("nodeSelectorTerms") or [])


def should_run_on_node(node: Obj, ds: Obj) -> tuple[bool, bool]:
    """NodeShouldRunDaemonPod -> (should run, should continue running)."""
    template_spec = ((ds.get("spec") or {}).get("template") or {}).get("spec") or {}
    node_name = str((node.get("metadata") or {}).get("name", ""))
    wanted_node = template_spec.get("nodeName") or ""
    if wanted_node and wanted_node != node_name:
        return False, False
    # Only what eligibility reads, so that checking every node stays cheap.
    spec: dict[str, Any] = {
        "nodeSelector": template_spec.get("nodeSelector"),
        "affinity": template_spec.get("affinity"),
        "hostNetwork": template_spec.get("hostNetwork"),
        "tolerations": template_spec.get("tolerations"),
    }
    add_daemon_tolerations(spec)
    if not node_matches_pod(spec, node):
        return False, False
    taints = (node.get("spec") or {}).get("taints") or []
    tolerations = spec["tolerations"]
    if find_untolerated_taint(taints, tolerations, ("NoSchedule", "NoExecute")) is None:
        return True, True
    # Scheduled daemon pods keep running unless a NoExecute taint is not tolerated.
    return False, find_untolerated_taint(taints, tolerations, ("NoExecute",)) is None


def pin_to_node(affinity: Obj | None, node_name: str) -> dict[str, Any]:
    """ReplaceDaemonSetPodNodeNameNodeAffinity: the required node affinity becomes one term,
    matchFields metadata.name In [node]; preferred terms and pod (anti-)affinity stay."""
    term = {"matchFields": [{"key": OBJECT_NAME_FIELD, "operator": "In", "values": [node_name]}]}
    out: dict[str, Any] = copy.deepcopy(dict(affinity or {}))
    node_affinity = out.get("nodeAffinity")
    if not isinstance(node_affinity, dict):
        node_affinity = {}
        out["nodeAffinity"] = node_affinity
    required = node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
    if not isinstance(required, dict):
        node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": [term]}
    else:
        required["nodeSelectorTerms"] = [term]
    return out


def target_node_name(pod: Obj) -> str | None:
    """GetTargetNodeName: spec.nodeName, else the node a pending daemon pod is pinned to."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return str(spec["nodeName"])
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    for term in required.get("nodeSelectorTerms") or []:
        for req in term.get("matchFields") or []:
            if req.get("key") == OBJECT_NAME_FIELD and req.get("operator") == "In":
                values = req.get("values") or []
                return str(values[0]) if len(values) == 1 else None
    return None
