"""ClusterRole aggregation, as the clusterrole-aggregation controller computes it: a ClusterRole
with an `aggregationRule` holds the rules of every other ClusterRole that one of its
`clusterRoleSelectors` selects, taken in name order, each distinct rule once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from controlplane.api import errors
from controlplane.api.rbac.policy import Role
from controlplane.api.rbac.rules import PolicyRule
from controlplane.api.selectors import label_selector_from_dict

__all__ = ["aggregate", "aggregate_all"]


def aggregate(target: Role, cluster_roles: Sequence[Role]) -> tuple[PolicyRule, ...]:
    """The rules `target` (which has selectors) should hold, given the current cluster roles."""
    selected: dict[str, Role] = {}
    for raw in target.aggregation_selectors or ():
        try:
            selector = label_selector_from_dict(raw)
        except errors.StatusError:
            continue  # an invalid selector selects nothing (validation refuses it on write)
        for role in cluster_roles:
            if selector.matches(role.labels):
                selected[role.name] = role
    rules: list[PolicyRule] = []
    for name in sorted(selected):
        if name == target.name:
            continue
        for r in selected[name].rules:
            if r not in rules:
                rules.append(r)
    return tuple(rules)


def aggregate_all(
    cluster_roles: Mapping[str, Role], max_rounds: int = 16
) -> dict[str, tuple[PolicyRule, ...]]:
    """Every aggregated role's rules at the fixed point (aggregated roles may select each other,
    as `edit` is aggregated into `admin`). Returns only the roles whose rules change."""
    current = dict(cluster_roles)
    changed: dict[str, tuple[PolicyRule, ...]] = {}
    for _ in range(max_rounds):
        progressed = False
        roles = list(current.values())
        for role in roles:
            if role.aggregation_selectors is None:
                continue
            rules = aggregate(role, roles)
            if rules != role.rules:
                current[role.name] = Role(
                    role.name, role.namespace, rules, role.labels, role.aggregation_selectors
                )
                changed[role.name] = rules
                progressed = True
        if not progressed:
            break
    return changed
