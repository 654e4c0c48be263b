"""The bootstrap policy, reconciled at every start (upstream's rbac/bootstrap-roles post-start
hook): missing roles and bindings are created; existing ones gain what they lack unless
annotated `rbac.authorization.kubernetes.io/autoupdate: "false"`."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from controlplane.api import errors
from controlplane.api.rbac.bootstrap_policy import (
    cluster_role_binding_objects,
    cluster_role_objects,
    role_binding_objects,
    role_objects,
)
from controlplane.api.rbac.reconcile import reconcile_binding, reconcile_role
from controlplane.api.resources import ResourceInfo
from controlplane.apiserver import rest
from controlplane.apiserver.context import ServerContext
from controlplane.apiserver.requestinfo import RequestInfo

__all__ = ["reconcile_bootstrap_policy"]

log = logging.getLogger("pinnace.rbac")
GROUP = "rbac.authorization.k8s.io"


async def _reconcile(ctx: ServerContext, info: ResourceInfo, expected: dict[str, Any], *, role: bool) -> str:
    name = expected["metadata"]["name"]
    namespace = expected["metadata"].get("namespace", "")
    existing = await ctx.store.get_or_none(info, namespace, name)
    opts = rest.WriteOptions(dry_run=False, field_manager="kube-apiserver", field_validation="Ignore")
    ri = RequestInfo(True, "", verb="create", group=GROUP, resource=info.plural, namespace=namespace)
    if existing is None:
        with contextlib.suppress(errors.AlreadyExists):
            await rest.create_object(ctx, info, ri, expected, opts, [])
            return "created"
        return "none"
    operation, result = (reconcile_role if role else reconcile_binding)(existing, expected)
    if result is None:
        return "none"
    if operation == "recreate":
        revision = int(existing["metadata"]["resourceVersion"])
        await ctx.store.delete(info, namespace, name, expected_revision=revision)
        fresh = {k: v for k, v in result.items() if k != "metadata"}
        fresh["metadata"] = {
            k: v for k, v in result["metadata"].items() if k in ("name", "namespace", "labels", "annotations")
        }
        await rest.create_object(ctx, info, ri, fresh, opts, [])
        return "recreated"
    await ctx.store.update(info, result, expected_revision=int(existing["metadata"]["resourceVersion"]))
    return "updated"


async def reconcile_bootstrap_policy(ctx: ServerContext) -> dict[str, int]:
    """Counts of what was done, by operation."""
    counts: dict[str, int] = {}
    for plural, objects, role in (
        ("clusterroles", cluster_role_objects(), True),
        ("clusterrolebindings", cluster_role_binding_objects(), False),
        ("roles", role_objects(), True),
        ("rolebindings", role_binding_objects(), False),
    ):
        info = ctx.registry.get(GROUP, "v1", plural)
        assert info is not None
        for obj in objects:
            done = await _reconcile(ctx, info, obj, role=role)
            counts[done] = counts.get(done, 0) + 1
    if counts.keys() - {"none"}:
        log.info("reconciled the bootstrap RBAC policy", extra={"counts": counts})
    return counts
