"""Start-up reconciliation of the bootstrap policy, as upstream's `reconciliation` package does
it with `confirm` on and `removeExtraPermissions` off: create what is missing; in an existing
role or binding add missing labels, annotations, rules, aggregation selectors and subjects;
never remove anything; leave alone objects annotated `rbac.authorization.kubernetes.io/autoupdate: "false"`.
A binding whose roleRef differs is recreated (a roleRef cannot be updated).
"""

from __future__ import annotations

import copy
from typing import Any

from controlplane.api.rbac.bootstrap_policy import AUTOUPDATE_ANNOTATION
from controlplane.api.rbac.escalation import covers
from controlplane.api.rbac.rules import rule_to_dict, rules_from_list

__all__ = ["ReconcileResult", "reconcile_binding", "reconcile_role"]

ReconcileResult = tuple[str, dict[str, Any] | None]
"""(operation, object): ("none", None), ("update", obj) or ("recreate", obj)."""


def _protected(existing: dict[str, Any]) -> bool:
    annotations = (existing.get("metadata") or {}).get("annotations") or {}
    return annotations.get(AUTOUPDATE_ANNOTATION) == "false"


def _merge_meta(result: dict[str, Any], expected: dict[str, Any]) -> None:
    meta = result.setdefault("metadata", {})
    for key in ("labels", "annotations"):
        want = (expected.get("metadata") or {}).get(key) or {}
        have = meta.get(key) or {}
        merged = {**want, **have}  # what is already there wins, as upstream's merge
        if merged:
            meta[key] = merged


def reconcile_role(existing: dict[str, Any], expected: dict[str, Any]) -> ReconcileResult:
    if _protected(existing):
        return "none", None
    result = copy.deepcopy(existing)
    _merge_meta(result, expected)
    expected_agg = expected.get("aggregationRule")
    if expected_agg is not None:
        have = result.get("aggregationRule") or {}
        selectors = list(have.get("clusterRoleSelectors") or [])
        for selector in expected_agg.get("clusterRoleSelectors") or []:
            if selector not in selectors:
                selectors.append(selector)
        result["aggregationRule"] = {**have, "clusterRoleSelectors": selectors}
    _, missing = covers(rules_from_list(existing.get("rules")), rules_from_list(expected.get("rules")))
    if missing:
        result["rules"] = list(existing.get("rules") or []) + [rule_to_dict(r) for r in missing]
    return ("update", result) if result != existing else ("none", None)


def reconcile_binding(existing: dict[str, Any], expected: dict[str, Any]) -> ReconcileResult:
    if _protected(existing):
        return "none", None
    result = copy.deepcopy(existing)
    _merge_meta(result, expected)
    subjects = list(result.get("subjects") or [])
    for subject in expected.get("subjects") or []:
        if not any(_same_subject(subject, s) for s in subjects):
            subjects.append(subject)
    if subjects:
        result["subjects"] = subjects
    if result.get("roleRef") != expected.get("roleRef"):
        result["roleRef"] = expected.get("roleRef")
        return "recreate", result
    return ("update", result) if result != existing else ("none", None)


def _same_subject(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all((a.get(k) or "") == (b.get(k) or "") for k in ("kind", "name", "namespace")) and (
        a.get("apiGroup") or "" if a.get("kind") != "ServiceAccount" else ""
    ) == (b.get("apiGroup") or "" if b.get("kind") != "ServiceAccount" else "")
