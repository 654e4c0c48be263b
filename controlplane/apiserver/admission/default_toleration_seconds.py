"""DefaultTolerationSeconds: pods tolerate a not-ready or unreachable node for a while.

Without these tolerations the node lifecycle controller would evict a pod the moment its node
is tainted NoExecute; with them the pod stays `tolerationSeconds` (300 by default, the
`--default-not-ready-toleration-seconds` / `--default-unreachable-toleration-seconds` flags).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from controlplane.apiserver.admission.interface import Attributes

if TYPE_CHECKING:
    from controlplane.apiserver.context import ServerContext

__all__ = ["DEFAULT_TOLERATION_SECONDS", "NOT_READY_TAINT", "UNREACHABLE_TAINT", "DefaultTolerationSeconds"]

NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
DEFAULT_TOLERATION_SECONDS = 300

Obj = dict[str, Any]


def tolerates_no_execute(tolerations: list[Any], key: str) -> bool:
    """Upstream's test: an empty key tolerates every key, an empty effect every effect; the
    operator is not looked at."""
    return any(
        isinstance(t, dict)
        and (t.get("key") or "") in (key, "")
        and (t.get("effect") or "") in ("NoExecute", "")
        for t in tolerations
    )


def add_default_tolerations(spec: Obj, not_ready_seconds: int, unreachable_seconds: int) -> None:
    tolerations = spec.get("tolerations")
    if not isinstance(tolerations, list):
        tolerations = []
    added = [
        {"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": seconds}
        for key, seconds in ((NOT_READY_TAINT, not_ready_seconds), (UNREACHABLE_TAINT, unreachable_seconds))
        if not tolerates_no_execute(tolerations, key)
    ]
    if added:
        spec["tolerations"] = [*tolerations, *added]


@dataclass
class DefaultTolerationSeconds:
    not_ready_seconds: int = DEFAULT_TOLERATION_SECONDS
    unreachable_seconds: int = DEFAULT_TOLERATION_SECONDS
    name: str = "DefaultTolerationSeconds"

    async def admit(self, ctx: ServerContext, attrs: Attributes, obj: Obj, old: Obj | None) -> None:
        # Upstream handles CREATE and UPDATE; on an update the stored pod already carries them.
        if not attrs.is_resource("", "pods") or attrs.subresource:
            return
        spec = obj.get("spec")
        if isinstance(spec, dict):
            add_default_tolerations(spec, self.not_ready_seconds, self.unreachable_seconds)
