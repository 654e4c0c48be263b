"""The conditions a terminating Namespace reports while its content is deleted (upstream
pkg/controller/namespace/deletion/status_condition_utils.go), as pure functions.

Each of the five condition types is always present once deletion has started: True with the
failure when something is wrong, False with upstream's "all is well" reason otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CONDITION_TYPES",
    "ConditionUpdater",
    "GroupVersionResource",
    "RemainingContent",
    "update_conditions",
]

CONTENT_FAILURE = "NamespaceDeletionContentFailure"
CONDITION_TYPES = (
    "NamespaceDeletionDiscoveryFailure",
    "NamespaceDeletionGroupVersionParsingFailure",
    CONTENT_FAILURE,
    "NamespaceContentRemaining",
    "NamespaceFinalizersRemaining",
)
OK_MESSAGES = {
    "NamespaceDeletionDiscoveryFailure": "All resources successfully discovered",
    "NamespaceDeletionGroupVersionParsingFailure": "All legacy kube types successfully parsed",
    CONTENT_FAILURE: "All content successfully deleted, may be waiting on finalization",
    "NamespaceContentRemaining": "All content successfully removed",
    "NamespaceFinalizersRemaining": "All content-preserving finalizers finished",
}
OK_REASONS = {
    "NamespaceDeletionDiscoveryFailure": "ResourcesDiscovered",
    "NamespaceDeletionGroupVersionParsingFailure": "ParsedGroupVersions",
    CONTENT_FAILURE: "ContentDeleted",
    "NamespaceContentRemaining": "ContentRemoved",
    "NamespaceFinalizersRemaining": "ContentHasNoFinalizers",
}


@dataclass(frozen=True, order=True)
class GroupVersionResource:
    group: str
    version: str
    resource: str

    def __str__(self) -> str:
        # Go's %v of the struct, as upstream's error messages print it.
        return f"{{{self.group} {self.version} {self.resource}}}"


@dataclass
class RemainingContent:
    by_resource: dict[GroupVersionResource, int] = field(default_factory=dict)
    by_finalizer: dict[str, int] = field(default_factory=dict)


@dataclass
class ConditionUpdater:
    now: str
    new_conditions: list[dict[str, Any]] = field(default_factory=list)
    delete_errors: list[str] = field(default_factory=list)

    def _add(self, type_: str, reason: str, message: str) -> None:
        self.new_conditions.append(
            {
                "type": type_,
                "status": "True",
                "lastTransitionTime": self.now,
                "reason": reason,
                "message": message,
            }
        )

    def discovery_failed(self, failures: Mapping[str, str]) -> None:
        """`failures`: group/version -> error, as client-go's ErrGroupDiscoveryFailed carries."""
        detail = ", ".join(sorted(f"{gv}: {err}" for gv, err in failures.items()))
        self._add(
            "NamespaceDeletionDiscoveryFailure",
            "DiscoveryFailed",
            f"Discovery failed for some groups, {len(failures)} failing: "
            f"unable to retrieve the complete list of server APIs: {detail}",
        )

    def delete_content_failed(self, message: str) -> None:
        self.delete_errors.append(message)

    def content_totals(self, remaining: RemainingContent) -> None:
        if remaining.by_resource:
            parts = sorted(
                f"{gvr.resource}.{gvr.group} has {n} resource instances"
                for gvr, n in remaining.by_resource.items()
                if n
            )
            self._add(
                "NamespaceContentRemaining",
                "SomeResourcesRemain",
                f"Some resources are remaining: {', '.join(parts)}",
            )
        if remaining.by_finalizer:
            parts = sorted(f"{f} in {n} resource instances" for f, n in remaining.by_finalizer.items() if n)
            self._add(
                "NamespaceFinalizersRemaining",
                "SomeFinalizersRemain",
                f"Some content in the namespace has finalizers remaining: {', '.join(parts)}",
            )

    def apply(self, status: dict[str, Any]) -> bool:
        """Write the conditions into a namespace status; True when anything changed."""
        if self.delete_errors and not any(c["type"] == CONTENT_FAILURE for c in self.new_conditions):
            msgs = sorted(self.delete_errors)
            self._add(
                CONTENT_FAILURE,
                "ContentDeletionFailed",
                f"Failed to delete all resource types, {len(msgs)} remaining: {', '.join(msgs)}",
            )
        return update_conditions(status, self.new_conditions, self.now)


def update_conditions(status: dict[str, Any], new_conditions: list[dict[str, Any]], now: str) -> bool:
    conditions: list[dict[str, Any]] = status.setdefault("conditions", [])
    changed = False
    for type_ in CONDITION_TYPES:
        new = next((c for c in new_conditions if c["type"] == type_), None)
        if new is None:
            new = {
                "type": type_,
                "status": "False",
                "lastTransitionTime": now,
                "reason": OK_REASONS[type_],
                "message": OK_MESSAGES[type_],
            }
        old = next((c for c in conditions if c.get("type") == type_), None)
        if old is None:
            conditions.append(dict(new))
            changed = True
        elif (old.get("status"), old.get("message"), old.get("reason")) != (
            new["status"],
            new["message"],
            new["reason"],
        ):
            if old.get("status") != new["status"]:
                old["lastTransitionTime"] = now
            old["status"], old["reason"], old["message"] = new["status"], new["reason"], new["message"]
            changed = True
    return changed
