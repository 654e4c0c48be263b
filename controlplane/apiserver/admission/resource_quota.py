"""ResourceQuota: a write that would take a namespace past a quota's `spec.hard` is refused.

Usage is counted live from storage when a request is checked (no cache yet), and the check and
the write happen under one lock per namespace, so two creates racing for the last slot cannot
both pass (within one API server; several servers would need upstream's compare-and-swap on the
quota's status). After a write lands, the quota's `status.used` for the resources it charged is
updated here, as upstream's admission does; releases (deletes) are left to the ResourceQuota
controller's recalculation.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from controlplane.api import errors
from controlplane.api.quantity import ResourceList, add, mask, pretty_print, subtract_non_negative
from controlplane.api.quota import (
    Evaluator,
    GroupResource,
    ObjectCountEvaluator,
    evaluator_for,
    hard_limits,
    quota_matches,
    quota_scope_selectors,
    usage_stats,
)
from controlplane.api.resources import ResourceInfo
from controlplane.apiserver.admission.interface import Attributes, ValidationScope, forbidden

if TYPE_CHECKING:
    from controlplane.apiserver.context import ServerContext

__all__ = ["ResourceQuota", "check_request"]

log = logging.getLogger("pinnace.admission.quota")

Obj = dict[str, Any]

# Resources quota never charges (upstream's default ignored resources that can be stored).
_IGNORED = {("", "events"), ("events.k8s.io", "events")}
_STATUS_RETRIES = 5


def check_request(
    attrs: Attributes,
    evaluator: Evaluator,
    quotas: list[Obj],
    used: dict[str, ResourceList],
    obj: Obj,
    old: Obj | None,
    now: datetime,
) -> dict[str, ResourceList]:
    """upstream's CheckRequest against live usage: `used` maps a quota's name to what the
    namespace already uses of its resources. Returns each charged quota's usage after the
    request; raises Forbidden when a constraint or a hard limit is not met."""
    interesting: list[Obj] = []
    for quota in quotas:
        if not quota_matches(evaluator, quota, obj):
            continue
        restricted = evaluator.matching_resources(hard_limits(quota))
        problem = evaluator.constraints(restricted, obj)
        if problem:
            raise forbidden(attrs, f"failed quota: {quota['metadata']['name']}: {problem}")
        interesting.append(quota)
    if not interesting:
        return {}
    input_usage = evaluator.usage(obj, now)
    negative = sorted(name for name, q in input_usage.items() if q.sign < 0)
    if negative:
        raise forbidden(attrs, f"quota usage is negative for resource(s): {','.join(negative)}")
    deltas = {quota["metadata"]["name"]: input_usage for quota in interesting}
    if attrs.operation == "UPDATE" and old is not None:
        delta = subtract_non_negative(input_usage, evaluator.usage(old, now))
        for quota in interesting:
            if quota_matches(evaluator, quota, old):
                deltas[quota["metadata"]["name"]] = delta
    result: dict[str, ResourceList] = {}
    for quota in interesting:
        name = quota["metadata"]["name"]
        delta = {k: v for k, v in deltas[name].items() if v.sign != 0}
        if not delta:
            continue
        hard = hard_limits(quota)
        requested = mask(delta, hard)
        quota_used = used.get(name, {})
        new_used = add(quota_used, requested)
        masked = mask(new_used, requested)
        exceeded = [k for k, limit in hard.items() if k in masked and masked[k] > limit]
        if exceeded:
            raise forbidden(
                attrs,
                f"exceeded quota: {name}, requested: {pretty_print(mask(requested, exceeded))}, "
                f"used: {pretty_print(mask(quota_used, exceeded))}, limited: {pretty_print(mask(hard, exceeded))}",
            )
        if requested:
            result[name] = mask(new_used, requested)
    return result


@dataclass
class ResourceQuota:
    name: str = "ResourceQuota"
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    def _lock(self, namespace: str) -> asyncio.Lock:
        lock = self._locks.get(namespace)
        if lock is None:
            lock = self._locks[namespace] = asyncio.Lock()
        return lock

    @staticmethod
    def _quota_info(ctx: ServerContext) -> ResourceInfo:
        info = ctx.registry.get("", "v1", "resourcequotas")
        assert info is not None
        return info

    async def validate(
        self, ctx: ServerContext, attrs: Attributes, obj: Obj, old: Obj | None, scope: ValidationScope
    ) -> None:
        info = attrs.info
        if not info.namespaced or not attrs.namespace or (info.group, info.plural) in _IGNORED:
            return
        evaluator = evaluator_for(GroupResource(info.group, info.plural))
        if not evaluator.handles(attrs.operation, attrs.subresource):
            return
        quota_info = self._quota_info(ctx)
        if not await ctx.store.latest_objects(quota_info, attrs.namespace):
            return  # most namespaces have no quota: no lock, no counting
        # From here to the end of the write, no other quota-checked write in this namespace runs.
        await scope.hold(self._lock(attrs.namespace))
        quotas = (await ctx.store.list(quota_info, attrs.namespace)).items
        now = ctx.clock()
        try:
            relevant = [q for q in quotas if quota_matches(evaluator, q, obj)]
            if not relevant:
                return
            used = await self._usage(ctx, info, attrs.namespace, evaluator, relevant, now)
            charged = check_request(attrs, evaluator, relevant, used, obj, old, now)
        except ValueError as exc:  # a malformed quantity in the request
            raise errors.BadRequest(message=str(exc)) from exc
        if charged and not attrs.dry_run:

            async def record() -> None:
                await self._record(ctx, quota_info, attrs.namespace, charged)

            scope.on_commit(record)

    async def _usage(
        self,
        ctx: ServerContext,
        info: ResourceInfo,
        namespace: str,
        evaluator: Evaluator,
        quotas: list[Obj],
        now: datetime,
    ) -> dict[str, ResourceList]:
        """What the namespace's stored objects use of each quota's resources (zero included, so
        messages show `used: pods=0`)."""
        page = await ctx.store.list(info, namespace)
        used: dict[str, ResourceList] = {}
        for quota in quotas:
            names = evaluator.matching_resources(hard_limits(quota))
            if isinstance(evaluator, ObjectCountEvaluator):
                # Each stored object counts once and no scope selects any: no need to decode them.
                total = evaluator.usage_of(len(page.kvs))
            else:
                total = usage_stats(evaluator, page.items, names, quota_scope_selectors(quota), now)
            used[quota["metadata"]["name"]] = mask(total, names)
        return used

    async def _record(
        self, ctx: ServerContext, info: ResourceInfo, namespace: str, charged: dict[str, ResourceList]
    ) -> None:
        """Write the new usage into each charged quota's status, retrying on a concurrent write."""
        for name, usage in charged.items():
            for _ in range(_STATUS_RETRIES):
                current = await ctx.store.get_or_none(info, namespace, name)
                if current is None:
                    break
                updated = copy.deepcopy(current)
                status = updated.setdefault("status", {})
                status["hard"] = copy.deepcopy((current.get("spec") or {}).get("hard") or {})
                status["used"] = {**(status.get("used") or {}), **{k: str(v) for k, v in usage.items()}}
                if updated == current:
                    break
                try:
                    await ctx.store.update(
                        info, updated, expected_revision=int(current["metadata"]["resourceVersion"])
                    )
                    break
                except errors.Conflict:
                    continue
            else:
                log.warning("could not record quota usage", extra={"quota": f"{namespace}/{name}"})
