"""One webhook of a Validating/MutatingWebhookConfiguration, read with the v1 defaults applied
(upstream's webhook accessor): what the dispatchers match on and how they call it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from controlplane.api import selectors

__all__ = [
    "DEFAULT_TIMEOUT_SECONDS",
    "Rule",
    "Webhook",
    "webhooks_of",
]

DEFAULT_TIMEOUT_SECONDS = 10

Kind = Literal["mutating", "validating"]


@dataclass(frozen=True)
class Rule:
    operations: tuple[str, ...]
    api_groups: tuple[str, ...]
    api_versions: tuple[str, ...]
    resources: tuple[str, ...]
    scope: str = "*"

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Rule:
        return cls(
            operations=tuple(str(v) for v in raw.get("operations") or ()),
            api_groups=tuple(str(v) for v in raw.get("apiGroups") or ()),
            api_versions=tuple(str(v) for v in raw.get("apiVersions") or ()),
            resources=tuple(str(v) for v in raw.get("resources") or ()),
            scope=str(raw.get("scope") or "*"),
        )


@dataclass(frozen=True)
class Webhook:
    """A webhook with its configuration's name; `uid` tells webhooks of the same name in two
    configurations apart (reinvocation bookkeeping), as upstream's accessor UID does."""

    kind: Kind
    configuration: str
    index: int
    name: str
    client_config: Mapping[str, Any]
    rules: tuple[Rule, ...]
    failure_policy: str = "Fail"
    match_policy: str = "Equivalent"
    namespace_selector: selectors.LabelSelector = field(default_factory=selectors.LabelSelector)
    object_selector: selectors.LabelSelector = field(default_factory=selectors.LabelSelector)
    side_effects: str = "None"
    timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS
    admission_review_versions: tuple[str, ...] = ("v1",)
    reinvocation_policy: str = "Never"
    match_conditions: tuple[tuple[str, str], ...] = ()

    @property
    def uid(self) -> str:
        return f"{self.configuration}/{self.name}/{self.index}"

    @property
    def ignores_failures(self) -> bool:
        return self.failure_policy == "Ignore"

    @property
    def supports_dry_run(self) -> bool:
        return self.side_effects in ("None", "NoneOnDryRun")


def _selector(raw: Any) -> selectors.LabelSelector:
    # An absent selector is defaulted to `{}` (everything), unlike a plain LabelSelector's nil.
    return selectors.label_selector_from_dict(raw if isinstance(raw, Mapping) else {})


def webhooks_of(configuration: Mapping[str, Any], kind: Kind) -> list[Webhook]:
    name = str((configuration.get("metadata") or {}).get("name", ""))
    out: list[Webhook] = []
    for index, raw in enumerate(configuration.get("webhooks") or []):
        if not isinstance(raw, Mapping):
            continue
        timeout = raw.get("timeoutSeconds")
        out.append(
            Webhook(
                kind=kind,
                configuration=name,
                index=index,
                name=str(raw.get("name", "")),
                client_config=raw.get("clientConfig") or {},
                rules=tuple(Rule.from_dict(r) for r in raw.get("rules") or () if isinstance(r, Mapping)),
                failure_policy=str(raw.get("failurePolicy") or "Fail"),
                match_policy=str(raw.get("matchPolicy") or "Equivalent"),
                namespace_selector=_selector(raw.get("namespaceSelector")),
                object_selector=_selector(raw.get("objectSelector")),
                side_effects=str(raw.get("sideEffects") or "Unknown"),
                timeout_seconds=int(timeout) if timeout is not None else DEFAULT_TIMEOUT_SECONDS,
                admission_review_versions=tuple(
                    str(v) for v in raw.get("admissionReviewVersions") or ("v1",)
                ),
                reinvocation_policy=str(raw.get("reinvocationPolicy") or "Never")
                if kind == "mutating"
                else "Never",
                match_conditions=tuple(
                    (str(c.get("name", "")), str(c.get("expression", "")))
                    for c in raw.get("matchConditions") or ()
                    if isinstance(c, Mapping)
                ),
            )
        )
    return out
