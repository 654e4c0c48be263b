"""Escalation prevention: may a user grant these rules? (upstream's `validation.Covers`,
`CompactRules` and `ConfirmNoEscalation`).

A user may put into a Role, or bind through a RoleBinding, only permissions they hold
themselves. `covers` breaks the wanted rules into atoms (one group, resource, verb and name,
or one URL and verb) and checks each against the owner's rules; the atoms left over are what
the user lacks, listed in the Forbidden message.
"""

from __future__ import annotations

from collections.abc import Sequence

from controlplane.api.rbac.policy import UserLike
from controlplane.api.rbac.rules import (
    API_GROUP_ALL,
    RESOURCE_ALL,
    VERB_ALL,
    PolicyRule,
    compact_string,
    go_quote,
)

__all__ = [
    "FULL_AUTHORITY",
    "breakdown_rule",
    "compact_rules",
    "covers",
    "escalation_message",
    "rule_covers",
]

FULL_AUTHORITY = (
    PolicyRule(verbs=("*",), api_groups=("*",), resources=("*",)),
    PolicyRule(verbs=("*",), non_resource_urls=("*",)),
)


def breakdown_rule(r: PolicyRule) -> list[PolicyRule]:
    atoms: list[PolicyRule] = []
    for group in r.api_groups:
        for resource in r.resources:
            for verb in r.verbs:
                if r.resource_names:
                    atoms.extend(
                        PolicyRule(
                            verbs=(verb,), api_groups=(group,), resources=(resource,), resource_names=(n,)
                        )
                        for n in r.resource_names
                    )
                else:
                    atoms.append(PolicyRule(verbs=(verb,), api_groups=(group,), resources=(resource,)))
    for url in r.non_resource_urls:
        atoms.extend(PolicyRule(verbs=(verb,), non_resource_urls=(url,)) for verb in r.verbs)
    return atoms


def _has_all(owned: Sequence[str], wanted: Sequence[str]) -> bool:
    have = set(owned)
    return all(w in have for w in wanted)


def _url_covers(owner: str, path: str) -> bool:
    if owner == path:
        return True
    return owner.endswith("*") and path.startswith(owner.rstrip("*"))


def rule_covers(owner: PolicyRule, sub: PolicyRule) -> bool:
    """Whether `owner` covers the atom `sub`. Note that, as upstream, only `*` itself is a
    wildcard here: an owner's `*/scale` does not cover `deployments/scale`."""
    verbs = VERB_ALL in owner.verbs or _has_all(owner.verbs, sub.verbs)
    groups = API_GROUP_ALL in owner.api_groups or _has_all(owner.api_groups, sub.api_groups)
    resources = RESOURCE_ALL in owner.resources or _has_all(owner.resources, sub.resources)
    urls = all(any(_url_covers(o, p) for o in owner.non_resource_urls) for p in sub.non_resource_urls)
    if not sub.resource_names:
        names = not owner.resource_names
    else:
        names = not owner.resource_names or _has_all(owner.resource_names, sub.resource_names)
    return verbs and groups and resources and names and urls


def covers(
    owner_rules: Sequence[PolicyRule], servant_rules: Sequence[PolicyRule]
) -> tuple[bool, list[PolicyRule]]:
    uncovered: list[PolicyRule] = []
    for servant in servant_rules:
        for atom in breakdown_rule(servant):
            if not any(rule_covers(owner, atom) for owner in owner_rules):
                uncovered.append(atom)
    return not uncovered, uncovered


def compact_rules(rules: Sequence[PolicyRule]) -> list[PolicyRule]:
    """Merge atoms that differ only by verb (one group, one resource, at most one name)."""
    compacted: list[PolicyRule] = []
    simple: dict[tuple[str, str, bool, str], PolicyRule] = {}
    for r in rules:
        is_simple = (
            len(r.resource_names) <= 1
            and not r.non_resource_urls
            and len(r.api_groups) == 1
            and len(r.resources) == 1
        )
        if not is_simple:
            compacted.append(r)
            continue
        key = (
            r.api_groups[0],
            r.resources[0],
            bool(r.resource_names),
            r.resource_names[0] if r.resource_names else "",
        )
        existing = simple.get(key)
        if existing is None:
            simple[key] = r
        else:
            simple[key] = PolicyRule(
                verbs=existing.verbs + r.verbs,
                api_groups=existing.api_groups,
                resources=existing.resources,
                resource_names=existing.resource_names,
            )
    return compacted + list(simple.values())


def escalation_message(
    user: UserLike, missing: Sequence[PolicyRule], resolution_errors: Sequence[str] = ()
) -> str:
    """ConfirmNoEscalation's error text, the detail of the Forbidden it becomes."""
    descriptions = sorted({compact_string(r) for r in compact_rules(missing)})
    groups = "[" + " ".join(go_quote(g) for g in user.groups) + "]"
    message = (
        f"user {go_quote(user.name)} (groups={groups}) is attempting to grant RBAC permissions not currently held:\n"
        + "\n".join(descriptions)
    )
    if resolution_errors:
        message += f"; resolution errors: [{' '.join(resolution_errors)}]"
    return message
