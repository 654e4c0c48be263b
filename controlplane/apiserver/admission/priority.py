"""Priority: a pod's priority comes from its PriorityClass, never from the pod itself.

On create, `spec.priorityClassName` (or the one `globalDefault` class, or none) resolves to
`spec.priority` and `spec.preemptionPolicy`; on update the stored values carry over. A
PriorityClass may only be `globalDefault` while no other one is.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from controlplane.api.resources import ResourceInfo
from controlplane.apiserver.admission.interface import Attributes, ValidationScope, forbidden

if TYPE_CHECKING:
    from controlplane.apiserver.context import ServerContext

__all__ = [
    "DEFAULT_PREEMPTION_POLICY",
    "SYSTEM_PRIORITY_CLASSES",
    "Priority",
    "default_priority_class",
    "resolve_pod_priority",
    "system_priority_class_objects",
]

# pkg/apis/scheduling: SystemCriticalPriority = 2 * HighestUserDefinablePriority.
SYSTEM_CRITICAL_PRIORITY = 2_000_000_000
SYSTEM_PRIORITY_CLASSES: dict[str, tuple[int, str]] = {
    "system-node-critical": (
        SYSTEM_CRITICAL_PRIORITY + 1000,
        "Used for system critical pods that must not be moved from their current node.",
    ),
    "system-cluster-critical": (
        SYSTEM_CRITICAL_PRIORITY,
        "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
    ),
}
DEFAULT_PREEMPTION_POLICY = "PreemptLowerPriority"
# scheduling.DefaultPriorityWhenNoDefaultClassExists
DEFAULT_PRIORITY = 0

Obj = dict[str, Any]


def system_priority_class_objects() -> list[Obj]:
    """The classes every cluster has (upstream creates them in a post-start hook)."""
    return [
        {
            "apiVersion": "scheduling.k8s.io/v1",
            "kind": "PriorityClass",
            "metadata": {"name": name},
            "value": value,
            "description": description,
            "preemptionPolicy": DEFAULT_PREEMPTION_POLICY,
        }
        for name, (value, description) in SYSTEM_PRIORITY_CLASSES.items()
    ]


def default_priority_class(classes: Iterable[Obj]) -> Obj | None:
    """The globalDefault class; should a race leave two, the lower value wins, as upstream."""
    found: Obj | None = None
    for pc in classes:
        if pc.get("globalDefault") is True and (found is None or _value(pc) < _value(found)):
            found = pc
    return found


def _value(pc: Obj) -> int:
    value = pc.get("value")
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def resolve_pod_priority(attrs: Attributes, spec: Obj, named: Obj | None, default: Obj | None) -> None:
    """Fill priority fields of a new pod's spec from its class (`named`, already looked up) or
    the default class. Raises Forbidden when the pod states a priority the class disagrees with."""
    class_name = spec.get("priorityClassName") or ""
    if class_name:
        assert named is not None
        priority, policy = _value(named), named.get("preemptionPolicy") or DEFAULT_PREEMPTION_POLICY
    elif default is not None:
        spec["priorityClassName"] = default["metadata"]["name"]
        priority, policy = _value(default), default.get("preemptionPolicy") or DEFAULT_PREEMPTION_POLICY
    else:
        priority, policy = DEFAULT_PRIORITY, DEFAULT_PREEMPTION_POLICY
    given = spec.get("priority")
    if given is not None and given != priority:
        raise forbidden(
            attrs,
            f"the integer value of priority ({given}) must not be provided in pod spec; priority admission "
            f"controller computed {priority} from the given PriorityClass name",
        )
    spec["priority"] = priority
    given_policy = spec.get("preemptionPolicy")
    if given_policy and given_policy != policy:
        raise forbidden(
            attrs,
            f"the string value of PreemptionPolicy ({given_policy}) must not be provided in pod spec; priority "
            f"admission controller computed {policy} from the given PriorityClass name",
        )
    spec["preemptionPolicy"] = policy


@dataclass
class Priority:
    name: str = "Priority"

    def _info(self, ctx: ServerContext) -> ResourceInfo:
        info = ctx.registry.get("scheduling.k8s.io", "v1", "priorityclasses")
        assert info is not None
        return info

    async def admit(self, ctx: ServerContext, attrs: Attributes, obj: Obj, old: Obj | None) -> None:
        if not attrs.is_resource("", "pods") or attrs.subresource:
            return
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        if attrs.operation == "UPDATE":
            # Set on create; validation keeps them immutable, so a body without them keeps the old.
            old_spec = (old or {}).get("spec") or {}
            for key in ("priority", "preemptionPolicy"):
                if spec.get(key) is None and old_spec.get(key) is not None:
                    spec[key] = old_spec[key]
            return
        info = self._info(ctx)
        class_name = spec.get("priorityClassName") or ""
        named: Obj | None = None
        default: Obj | None = None
        if class_name:
            named = await ctx.store.get_or_none(info, "", class_name)
            if named is None:
                raise forbidden(attrs, f"no PriorityClass with name {class_name} was found")
        else:
            default = default_priority_class(await ctx.store.latest_objects(info, None))
        resolve_pod_priority(attrs, spec, named, default)

    async def validate(
        self, ctx: ServerContext, attrs: Attributes, obj: Obj, old: Obj | None, scope: ValidationScope
    ) -> None:
        if not attrs.is_resource("scheduling.k8s.io", "priorityclasses") or attrs.subresource:
            return
        if obj.get("globalDefault") is not True:
            return
        current = default_priority_class((await ctx.store.list(self._info(ctx), None)).items)
        if current is None:
            return
        if attrs.operation == "CREATE" or current["metadata"]["name"] != obj["metadata"]["name"]:
            raise forbidden(
                attrs,
                f"PriorityClass {current['metadata']['name']} is already marked as default. Only one default can exist",
            )
