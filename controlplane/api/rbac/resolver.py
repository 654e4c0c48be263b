"""Which rules apply to a user in a namespace, and whether they allow a request: upstream's
DefaultRuleResolver and RBACAuthorizer over any `PolicySource` (the API server's in-memory
cache, or a plain snapshot in tests).

ClusterRoleBindings are visited first, then the RoleBindings of the request's namespace; a
binding whose role is missing contributes an error (`clusterrole.rbac.authorization.k8s.io "x"
not found`), which becomes the denial's reason when nothing allows the request.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from controlplane.api.rbac.policy import Binding, Role, RoleRef, UserLike, applies_to, describe_binding
from controlplane.api.rbac.rules import PolicyRule, Request, go_quote, rule_allows

__all__ = [
    "Decision",
    "PolicySnapshot",
    "PolicySource",
    "RuleResolver",
    "Visit",
    "aggregate_errors",
    "decide",
]


class PolicySource(Protocol):
    def get_role(self, namespace: str, name: str) -> Role | None: ...

    def get_cluster_role(self, name: str) -> Role | None: ...

    def role_bindings(self, namespace: str) -> Iterable[Binding]: ...

    def cluster_role_bindings(self) -> Iterable[Binding]: ...


@dataclass
class PolicySnapshot:
    """A PolicySource over plain collections."""

    roles: Mapping[tuple[str, str], Role] = field(default_factory=dict)
    cluster_roles: Mapping[str, Role] = field(default_factory=dict)
    bindings: Sequence[Binding] = ()
    cluster_bindings: Sequence[Binding] = ()

    @classmethod
    def of(
        cls,
        roles: Iterable[Role] = (),
        cluster_roles: Iterable[Role] = (),
        bindings: Iterable[Binding] = (),
        cluster_bindings: Iterable[Binding] = (),
    ) -> PolicySnapshot:
        return cls(
            {(r.namespace, r.name): r for r in roles},
            {r.name: r for r in cluster_roles},
            tuple(bindings),
            tuple(cluster_bindings),
        )

    def get_role(self, namespace: str, name: str) -> Role | None:
        return self.roles.get((namespace, name))

    def get_cluster_role(self, name: str) -> Role | None:
        return self.cluster_roles.get(name)

    def role_bindings(self, namespace: str) -> Iterable[Binding]:
        return [b for b in self.bindings if b.namespace == namespace]

    def cluster_role_bindings(self) -> Iterable[Binding]:
        return self.cluster_bindings


@dataclass(frozen=True)
class Visit:
    """One step of the walk: a rule with where it came from, or an error."""

    rule: PolicyRule | None
    source: str = ""
    error: str = ""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""


def aggregate_errors(messages: Sequence[str]) -> str:
    """utilerrors.NewAggregate's Error(): one message alone, several as `[a, b]`."""
    unique: list[str] = []
    for m in messages:
        if m not in unique:
            unique.append(m)
    if len(unique) == 1:
        return unique[0]
    return "[" + ", ".join(unique) + "]"


class RuleResolver:
    def __init__(self, source: PolicySource) -> None:
        self.source = source

    def role_reference_rules(self, ref: RoleRef, binding_namespace: str) -> tuple[PolicyRule, ...]:
        """The rules a roleRef points at; raises LookupError with upstream's message."""
        if ref.kind == "Role":
            role = self.source.get_role(binding_namespace, ref.name)
            if role is None:
                raise LookupError(f"role.rbac.authorization.k8s.io {go_quote(ref.name)} not found")
            return role.rules
        if ref.kind == "ClusterRole":
            cluster_role = self.source.get_cluster_role(ref.name)
            if cluster_role is None:
                raise LookupError(f"clusterrole.rbac.authorization.k8s.io {go_quote(ref.name)} not found")
            return cluster_role.rules
        raise LookupError(f"unsupported role reference kind: {go_quote(ref.kind)}")

    def _visit_bindings(self, user: UserLike, bindings: Iterable[Binding], namespace: str) -> Iterator[Visit]:
        for binding in bindings:
            index = applies_to(user, binding.subjects, namespace)
            if index is None:
                continue
            try:
                rules = self.role_reference_rules(binding.role_ref, namespace)
            except LookupError as exc:
                yield Visit(None, error=str(exc))
                continue
            source = describe_binding(binding, binding.subjects[index])
            for r in rules:
                yield Visit(r, source)

    def visit_rules_for(self, user: UserLike, namespace: str) -> Iterator[Visit]:
        yield from self._visit_bindings(user, self.source.cluster_role_bindings(), "")
        if namespace:
            yield from self._visit_bindings(user, self.source.role_bindings(namespace), namespace)

    def rules_for(self, user: UserLike, namespace: str) -> tuple[list[PolicyRule], list[str]]:
        rules: list[PolicyRule] = []
        errors: list[str] = []
        for visit in self.visit_rules_for(user, namespace):
            if visit.rule is not None:
                rules.append(visit.rule)
            if visit.error:
                errors.append(visit.error)
        return rules, errors

    def authorize(self, user: UserLike, request: Request) -> Decision:
        """RBACAuthorizer.Authorize: allowed with `RBAC: allowed by <binding>`, else no opinion
        with the resolution errors (if any) as the reason."""
        return decide(self.visit_rules_for(user, request.namespace), request)


def decide(visits: Iterable[Visit], request: Request) -> Decision:
    """The first rule that allows `request` wins; otherwise the errors met are the reason."""
    errors: list[str] = []
    for visit in visits:
        if visit.rule is not None and rule_allows(request, visit.rule):
            return Decision(True, f"RBAC: allowed by {visit.source}")
        if visit.error:
            errors.append(visit.error)
    return Decision(False, f"RBAC: {aggregate_errors(errors)}" if errors else "")
