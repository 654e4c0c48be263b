"""RBAC objects as the authorizer reads them, and how a binding's subjects match a user.

`Role`, `Binding` and friends are parsed once from the stored objects (the cache keeps these,
not dicts), so evaluating a request walks tuples only. Subject matching is upstream's
`appliesToUser`: a User by name, a Group by membership, a ServiceAccount by the username
`system:serviceaccount:<namespace>:<name>` (the namespace defaulting to the binding's own).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from controlplane.api.rbac.rules import PolicyRule, go_quote, rules_from_list

__all__ = [
    "SERVICE_ACCOUNT_PREFIX",
    "Binding",
    "Role",
    "RoleRef",
    "Subject",
    "UserLike",
    "applies_to",
    "applies_to_user",
    "binding_from_dict",
    "describe_binding",
    "role_from_dict",
    "service_account_username",
]

SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"


class UserLike(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def groups(self) -> Sequence[str]: ...


@dataclass(frozen=True)
class Subject:
    kind: str
    name: str
    namespace: str = ""
    api_group: str = ""


@dataclass(frozen=True)
class RoleRef:
    api_group: str
    kind: str
    name: str


@dataclass(frozen=True)
class Role:
    """A Role (namespace set) or ClusterRole (namespace empty)."""

    name: str
    namespace: str
    rules: tuple[PolicyRule, ...]
    labels: Mapping[str, str]
    aggregation_selectors: tuple[Mapping[str, Any], ...] | None = None


@dataclass(frozen=True)
class Binding:
    """A RoleBinding (namespace set) or ClusterRoleBinding (namespace empty)."""

    name: str
    namespace: str
    role_ref: RoleRef
    subjects: tuple[Subject, ...]


def service_account_username(namespace: str, name: str) -> str:
    return f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}"


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def role_from_dict(obj: Mapping[str, Any]) -> Role:
    meta = _meta(obj)
    labels = meta.get("labels")
    aggregation = obj.get("aggregationRule")
    selectors: tuple[Mapping[str, Any], ...] | None = None
    if isinstance(aggregation, Mapping):
        raw = aggregation.get("clusterRoleSelectors")
        selectors = tuple(s for s in raw if isinstance(s, Mapping)) if isinstance(raw, list) else ()
    return Role(
        name=str(meta.get("name", "")),
        namespace=str(meta.get("namespace", "") or ""),
        rules=rules_from_list(obj.get("rules")),
        labels={str(k): str(v) for k, v in labels.items()} if isinstance(labels, Mapping) else {},
        aggregation_selectors=selectors,
    )


def binding_from_dict(obj: Mapping[str, Any]) -> Binding:
    meta = _meta(obj)
    ref = obj.get("roleRef")
    ref = ref if isinstance(ref, Mapping) else {}
    subjects: list[Subject] = []
    raw = obj.get("subjects")
    if isinstance(raw, list):
        for s in raw:
            if isinstance(s, Mapping):
                subjects.append(
                    Subject(
                        kind=str(s.get("kind", "")),
                        name=str(s.get("name", "")),
                        namespace=str(s.get("namespace", "") or ""),
                        api_group=str(s.get("apiGroup", "") or ""),
                    )
                )
    return Binding(
        name=str(meta.get("name", "")),
        namespace=str(meta.get("namespace", "") or ""),
        role_ref=RoleRef(str(ref.get("apiGroup", "")), str(ref.get("kind", "")), str(ref.get("name", ""))),
        subjects=tuple(subjects),
    )


def applies_to_user(user: UserLike, subject: Subject, namespace: str) -> bool:
    if subject.kind == "User":
        return user.name == subject.name
    if subject.kind == "Group":
        return subject.name in user.groups
    if subject.kind == "ServiceAccount":
        sa_namespace = subject.namespace or namespace
        if not sa_namespace:
            return False
        return user.name == service_account_username(sa_namespace, subject.name)
    return False


def applies_to(user: UserLike, subjects: Sequence[Subject], namespace: str) -> int | None:
    """The index of the first subject that is this user, or None."""
    for index, subject in enumerate(subjects):
        if applies_to_user(user, subject, namespace):
            return index
    return None


def _describe_subject(subject: Subject, binding_namespace: str) -> str:
    if subject.kind == "ServiceAccount":
        return f"{subject.kind} {go_quote(subject.name + '/' + (subject.namespace or binding_namespace))}"
    return f"{subject.kind} {go_quote(subject.name)}"


def describe_binding(binding: Binding, subject: Subject) -> str:
    """How an allow names its source: `ClusterRoleBinding "x" of ClusterRole "y" to Group "z"`."""
    ref = binding.role_ref
    if binding.namespace:
        return (
            f"RoleBinding {go_quote(binding.name + '/' + binding.namespace)} of {ref.kind} "
            f"{go_quote(ref.name)} to {_describe_subject(subject, binding.namespace)}"
        )
    return (
        f"ClusterRoleBinding {go_quote(binding.name)} of {ref.kind} {go_quote(ref.name)} "
        f"to {_describe_subject(subject, '')}"
    )
