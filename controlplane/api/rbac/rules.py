"""PolicyRules and how one of them matches a request, exactly as upstream's rbac/v1 evaluation
helpers decide (`VerbMatches`, `APIGroupMatches`, `ResourceMatches`, `ResourceNameMatches`,
`NonResourceURLMatches`, the authorizer's `RuleAllows`).

Rules are frozen records of tuples so they can be shared between cached roles and compared;
`rule_from_dict` reads the wire form (missing or null lists are empty, as Go's nil slices).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "API_GROUP_ALL",
    "NON_RESOURCE_ALL",
    "RESOURCE_ALL",
    "VERB_ALL",
    "PolicyRule",
    "Request",
    "api_group_matches",
    "compact_string",
    "go_quote",
    "non_resource_url_matches",
    "resource_matches",
    "resource_name_matches",
    "rule",
    "rule_allows",
    "rule_from_dict",
    "rule_to_dict",
    "rules_allow",
    "rules_from_list",
    "verb_matches",
]

VERB_ALL = "*"
API_GROUP_ALL = "*"
RESOURCE_ALL = "*"
NON_RESOURCE_ALL = "*"


@dataclass(frozen=True)
class PolicyRule:
    verbs: tuple[str, ...] = ()
    api_groups: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()


@dataclass(frozen=True)
class Request:
    """The attributes a rule is matched against (upstream's authorizer.Attributes, minus the user)."""

    verb: str
    resource_request: bool = True
    api_group: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    namespace: str = ""
    path: str = ""


def rule(
    verbs: Iterable[str],
    *,
    groups: Iterable[str] = (),
    resources: Iterable[str] = (),
    names: Iterable[str] = (),
    urls: Iterable[str] = (),
) -> PolicyRule:
    """A rule as upstream's `rbacv1helpers.NewRule(verbs...).Groups(...).Resources(...)` builds it:
    every list sorted (the builder's `Rule()` sorts them)."""
    return PolicyRule(
        verbs=tuple(sorted(verbs)),
        api_groups=tuple(sorted(groups)),
        resources=tuple(sorted(resources)),
        resource_names=tuple(sorted(names)),
        non_resource_urls=tuple(sorted(urls)),
    )


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(str(v) for v in value)


def rule_from_dict(obj: Mapping[str, Any]) -> PolicyRule:
    return PolicyRule(
        verbs=_strings(obj.get("verbs")),
        api_groups=_strings(obj.get("apiGroups")),
        resources=_strings(obj.get("resources")),
        resource_names=_strings(obj.get("resourceNames")),
        non_resource_urls=_strings(obj.get("nonResourceURLs")),
    )


def rules_from_list(value: Any) -> tuple[PolicyRule, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(rule_from_dict(r) for r in value if isinstance(r, Mapping))


def rule_to_dict(r: PolicyRule) -> dict[str, Any]:
    """The wire form in rbac/v1's field order; empty lists are left out (`omitempty`), except
    `apiGroups` on a resource rule, where `[""]` is meaningful."""
    out: dict[str, Any] = {"verbs": list(r.verbs)}
    if r.api_groups:
        out["apiGroups"] = list(r.api_groups)
    if r.resources:
        out["resources"] = list(r.resources)
    if r.resource_names:
        out["resourceNames"] = list(r.resource_names)
    if r.non_resource_urls:
        out["nonResourceURLs"] = list(r.non_resource_urls)
    return out


def verb_matches(r: PolicyRule, verb: str) -> bool:
    return verb in r.verbs or VERB_ALL in r.verbs


def api_group_matches(r: PolicyRule, group: str) -> bool:
    return group in r.api_groups or API_GROUP_ALL in r.api_groups


def resource_matches(r: PolicyRule, combined: str, subresource: str) -> bool:
    """`combined` is `resource` or `resource/subresource`. A rule resource `*` matches anything,
    an exact string matches itself, and `*/sub` matches any resource's `sub` subresource
    (upstream's length, prefix and suffix test is exactly equality with `*/` + sub).
    `pods/*` is not special upstream: it matches only the literal subresource `*`."""
    resources = r.resources
    return (
        combined in resources
        or RESOURCE_ALL in resources
        or (bool(subresource) and f"*/{subresource}" in resources)
    )


def resource_name_matches(r: PolicyRule, name: str) -> bool:
    return not r.resource_names or name in r.resource_names


def non_resource_url_matches(r: PolicyRule, path: str) -> bool:
    for url in r.non_resource_urls:
        if url in (NON_RESOURCE_ALL, path):
            return True
        if url.endswith("*") and path.startswith(url.rstrip("*")):
            return True
    return False


def rule_allows(request: Request, r: PolicyRule) -> bool:
    if request.resource_request:
        combined = f"{request.resource}/{request.subresource}" if request.subresource else request.resource
        return (
            verb_matches(r, request.verb)
            and api_group_matches(r, request.api_group)
            and resource_matches(r, combined, request.subresource)
            and resource_name_matches(r, request.name)
        )
    return verb_matches(r, request.verb) and non_resource_url_matches(r, request.path)


def rules_allow(request: Request, rules: Sequence[PolicyRule]) -> bool:
    return any(rule_allows(request, r) for r in rules)


def go_quote(value: str) -> str:
    """Go's %q for the printable strings RBAC names are made of."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{escaped}"'


def _quoted_list(values: Sequence[str]) -> str:
    """Go's %q of a []string: `["a" "b"]`."""
    return "[" + " ".join(go_quote(v) for v in values) + "]"


def compact_string(r: PolicyRule) -> str:
    """`rbacv1helpers.CompactString`, as escalation errors list the rules a user lacks."""
    parts: list[str] = []
    if r.api_groups:
        parts.append(f"APIGroups:{_quoted_list(r.api_groups)}")
    if r.resources:
        parts.append(f"Resources:{_quoted_list(r.resources)}")
    if r.non_resource_urls:
        parts.append(f"NonResourceURLs:{_quoted_list(r.non_resource_urls)}")
    if r.resource_names:
        parts.append(f"ResourceNames:{_quoted_list(r.resource_names)}")
    if r.verbs:
        parts.append(f"Verbs:{_quoted_list(r.verbs)}")
    return "{" + ", ".join(parts) + "}"
