"""Which requests a webhook sees: upstream's rules.Matcher, the namespace and object selector
matchers, and the exemption of the admission configuration objects themselves."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from controlplane.api import selectors
from controlplane.apiserver.webhooks.config import Rule

__all__ = [
    "RequestFacts",
    "is_exempt",
    "matches_namespace_labels",
    "matches_object",
    "needs_namespace_labels",
    "rule_matches",
    "rules_match",
]

Obj = dict[str, Any]

# admission/plugin/webhook/predicates/rules: the configurations are never sent to webhooks, so a
# broken webhook cannot lock the cluster out of fixing it.
_EXEMPT = frozenset(
    {
        ("admissionregistration.k8s.io", "validatingwebhookconfigurations"),
        ("admissionregistration.k8s.io", "mutatingwebhookconfigurations"),
        ("admissionregistration.k8s.io", "validatingadmissionpolicies"),
        ("admissionregistration.k8s.io", "validatingadmissionpolicybindings"),
        ("admissionregistration.k8s.io", "mutatingadmissionpolicies"),
        ("admissionregistration.k8s.io", "mutatingadmissionpolicybindings"),
    }
)


@dataclass(frozen=True)
class RequestFacts:
    """The parts of a request the rules look at. `namespace` is the namespace's own name for a
    request on a namespace object, as upstream's attributes carry it."""

    operation: str
    group: str
    version: str
    resource: str
    subresource: str
    namespace: str


def is_exempt(group: str, resource: str) -> bool:
    return (group, resource) in _EXEMPT


def _split_resource(text: str) -> tuple[str, str]:
    resource, _, sub = text.partition("/")
    return resource, sub


def rule_matches(rule: Rule, req: RequestFacts) -> bool:
    return (
        _scope(rule.scope, req)
        and ("*" in rule.operations or req.operation in rule.operations)
        and ("*" in rule.api_groups or req.group in rule.api_groups)
        and ("*" in rule.api_versions or req.version in rule.api_versions)
        and _resource(rule.resources, req)
    )


def rules_match(rules: tuple[Rule, ...], req: RequestFacts) -> bool:
    return any(rule_matches(rule, req) for rule in rules)


def _scope(scope: str, req: RequestFacts) -> bool:
    is_namespace = req.group == "" and req.resource == "namespaces"
    if scope == "Namespaced":
        return not is_namespace and req.namespace != ""
    if scope == "Cluster":
        return is_namespace or req.namespace == ""
    return True


def _resource(resources: tuple[str, ...], req: RequestFacts) -> bool:
    for text in resources:
        resource, sub = _split_resource(text)
        if resource in ("*", req.resource) and sub in ("*", req.subresource):
            return True
    return False


def matches_namespace_labels(
    selector: selectors.LabelSelector, req: RequestFacts, namespace_labels: Mapping[str, str] | None
) -> bool:
    """Cluster-scoped objects other than namespaces are never exempted by a namespaceSelector.
    `namespace_labels` is None when the labels were not needed (an empty selector)."""
    if req.namespace == "" and not (req.group == "" and req.resource == "namespaces"):
        return True
    if selector.empty:
        return True
    return selector.matches(namespace_labels or {})


def needs_namespace_labels(selector: selectors.LabelSelector, req: RequestFacts) -> bool:
    if selector.empty:
        return False
    return req.namespace != "" or (req.group == "" and req.resource == "namespaces")


def _labels(obj: Obj | None) -> Mapping[str, str] | None:
    if obj is None:
        return None
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return labels if isinstance(labels, Mapping) else {}


def matches_object(selector: selectors.LabelSelector, obj: Obj | None, old: Obj | None) -> bool:
    """The new or the old object's labels, as upstream's object matcher."""
    if selector.empty:
        return True
    for candidate in (obj, old):
        labels = _labels(candidate)
        if labels is not None and selector.matches(labels):
            return True
    return False
