"""The audit policy: which requests are recorded, at what level and at which stages.

An `audit.k8s.io/v1` Policy, evaluated as upstream's policy checker
(k8s.io/apiserver/pkg/audit/policy/checker.go): the first rule that matches decides the level;
a request no rule matches is not recorded (level None). Stages omitted by the policy are omitted
for every rule, added to those the rule omits itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from controlplane.apiserver.authz import Attributes

__all__ = [
    "LEVELS",
    "LEVEL_METADATA",
    "LEVEL_NONE",
    "LEVEL_REQUEST",
    "LEVEL_REQUEST_RESPONSE",
    "STAGES",
    "GroupResources",
    "Policy",
    "PolicyError",
    "PolicyRule",
    "RequestAuditConfig",
    "level_at_least",
    "load_policy_file",
    "parse_policy",
]

LEVEL_NONE = "None"
LEVEL_METADATA = "Metadata"
LEVEL_REQUEST = "Request"
LEVEL_REQUEST_RESPONSE = "RequestResponse"
LEVELS = (LEVEL_NONE, LEVEL_METADATA, LEVEL_REQUEST, LEVEL_REQUEST_RESPONSE)
STAGES = ("RequestReceived", "ResponseStarted", "ResponseComplete", "Panic")


def level_at_least(level: str, minimum: str) -> bool:
    return LEVELS.index(level) >= LEVELS.index(minimum)


class PolicyError(ValueError):
    """The policy file is not a valid audit.k8s.io/v1 Policy."""


@dataclass(frozen=True)
class GroupResources:
    group: str = ""
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class PolicyRule:
    level: str
    users: tuple[str, ...] = ()
    user_groups: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ()
    resources: tuple[GroupResources, ...] = ()
    namespaces: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()
    omit_stages: tuple[str, ...] = ()
    omit_managed_fields: bool | None = None

    def matches(self, attrs: Attributes) -> bool:
        user = attrs.user
        if self.users and user.name not in self.users:
            return False
        if self.user_groups and not any(g in self.user_groups for g in user.groups):
            return False
        if self.verbs and attrs.verb not in self.verbs:
            return False
        if self.namespaces or self.resources:
            return self._matches_resource(attrs)
        if self.non_resource_urls:
            return not attrs.resource_request and any(
                _path_matches(attrs.path, spec) for spec in self.non_resource_urls
            )
        return True

    def _matches_resource(self, attrs: Attributes) -> bool:
        if not attrs.resource_request:
            return False
        # Cluster-scoped resources have the empty namespace, which a rule may list.
        if self.namespaces and attrs.namespace not in self.namespaces:
            return False
        if not self.resources:
            return True
        resource, sub = attrs.resource, attrs.subresource
        combined = f"{resource}/{sub}" if sub else resource
        for gr in self.resources:
            if gr.group != attrs.api_group:
                continue
            if not gr.resources:
                return True
            if gr.resource_names and attrs.name not in gr.resource_names:
                continue
            for res in gr.resources:
                if res in (combined, "*"):
                    return True
                # Go's strings.TrimLeft/TrimRight take a set of characters, hence lstrip/rstrip.
                if sub and res.startswith("*/") and sub == res.lstrip("*/"):
                    return True
                if res.endswith("/*") and resource == res.rstrip("/*"):
                    return True
        return False


def _path_matches(path: str, spec: str) -> bool:
    if spec in ("*", path):
        return True
    return spec.endswith("*") and path.startswith(spec.rstrip("*"))


@dataclass(frozen=True)
class RequestAuditConfig:
    level: str
    omit_stages: frozenset[str] = frozenset()
    omit_managed_fields: bool = False


@dataclass(frozen=True)
class Policy:
    rules: tuple[PolicyRule, ...] = ()
    omit_stages: tuple[str, ...] = ()
    omit_managed_fields: bool = False
    _none: RequestAuditConfig = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "_none",
            RequestAuditConfig(LEVEL_NONE, frozenset(self.omit_stages), self.omit_managed_fields),
        )

    def evaluate(self, attrs: Attributes) -> RequestAuditConfig:
        for rule in self.rules:
            if rule.matches(attrs):
                managed = (
                    self.omit_managed_fields if rule.omit_managed_fields is None else rule.omit_managed_fields
                )
                return RequestAuditConfig(
                    rule.level, frozenset(self.omit_stages) | frozenset(rule.omit_stages), managed
                )
        return self._none


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PolicyError(f"{where}: must be a list of strings")
    return tuple(value)


def _stages(value: Any, where: str) -> tuple[str, ...]:
    stages = _strings(value, where)
    for i, stage in enumerate(stages):
        if stage not in STAGES:
            raise PolicyError(
                f'{where}[{i}]: Unsupported value: "{stage}": supported values: {", ".join(STAGES)}'
            )
    return stages


def _bool(value: Any, where: str) -> bool | None:
    if value is None:
        return None
    if not isinstance(value, bool):
        raise PolicyError(f"{where}: must be a boolean")
    return value


def _rule(raw: Any, where: str) -> PolicyRule:
    if not isinstance(raw, Mapping):
        raise PolicyError(f"{where}: must be an object")
    level = raw.get("level", "")
    if level not in LEVELS:
        raise PolicyError(
            f'{where}.level: Unsupported value: "{level}": supported values: {", ".join(LEVELS)}'
        )
    groups: list[GroupResources] = []
    raw_resources = raw.get("resources") or []
    if not isinstance(raw_resources, list):
        raise PolicyError(f"{where}.resources: must be a list")
    for i, gr in enumerate(raw_resources):
        gr_where = f"{where}.resources[{i}]"
        if not isinstance(gr, Mapping):
            raise PolicyError(f"{gr_where}: must be an object")
        group = gr.get("group") or ""
        if not isinstance(group, str):
            raise PolicyError(f"{gr_where}.group: must be a string")
        names = _strings(gr.get("resourceNames"), f"{gr_where}.resourceNames")
        resources = _strings(gr.get("resources"), f"{gr_where}.resources")
        if names and not resources:
            raise PolicyError(f"{gr_where}.resourceNames: Invalid value: resourceNames require resources")
        groups.append(GroupResources(group, resources, names))
    urls = _strings(raw.get("nonResourceURLs"), f"{where}.nonResourceURLs")
    namespaces = _strings(raw.get("namespaces"), f"{where}.namespaces")
    if urls and (groups or namespaces):
        raise PolicyError(
            f"{where}.nonResourceURLs: Invalid value: rules cannot apply to both regular resources and non-resource URLs"
        )
    for i, url in enumerate(urls):
        if "*" in url[:-1]:
            raise PolicyError(
                f'{where}.nonResourceURLs[{i}]: Invalid value: "{url}": wildcard is only allowed at the end'
            )
    return PolicyRule(
        level=level,
        users=_strings(raw.get("users"), f"{where}.users"),
        user_groups=_strings(raw.get("userGroups"), f"{where}.userGroups"),
        verbs=_strings(raw.get("verbs"), f"{where}.verbs"),
        resources=tuple(groups),
        namespaces=namespaces,
        non_resource_urls=urls,
        omit_stages=_stages(raw.get("omitStages"), f"{where}.omitStages"),
        omit_managed_fields=_bool(raw.get("omitManagedFields"), f"{where}.omitManagedFields"),
    )


def parse_policy(doc: Any) -> Policy:
    if not isinstance(doc, Mapping):
        raise PolicyError("the audit policy must be an object")
    api_version, kind = doc.get("apiVersion"), doc.get("kind")
    if api_version != "audit.k8s.io/v1" or kind != "Policy":
        raise PolicyError(
            f"unsupported audit policy {api_version}, Kind={kind}: want audit.k8s.io/v1, Kind=Policy"
        )
    raw_rules = doc.get("rules") or []
    if not isinstance(raw_rules, Sequence) or isinstance(raw_rules, str):
        raise PolicyError("rules: must be a list")
    rules = tuple(_rule(r, f"rules[{i}]") for i, r in enumerate(raw_rules))
    return Policy(
        rules=rules,
        omit_stages=_stages(doc.get("omitStages"), "omitStages"),
        omit_managed_fields=bool(_bool(doc.get("omitManagedFields"), "omitManagedFields")),
    )


def load_policy_file(path: Path) -> Policy:
    """Read a policy file (YAML or JSON). Upstream refuses a policy without rules; so do we."""
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise PolicyError(f"{path}: {exc}") from exc
    policy = parse_policy(doc)
    if not policy.rules:
        raise PolicyError(f"loaded illegal policy with 0 rules from file {path}")
    return policy
