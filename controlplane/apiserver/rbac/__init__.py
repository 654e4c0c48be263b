"""RBAC in the API server: the policy cache (list + watch of storage), the authorizer, the
escalation check on writes of RBAC objects, ClusterRole aggregation and the bootstrap policy.

`RBAC.start(ctx)` reconciles the bootstrap policy and fills the cache before the server serves;
`RBAC.run()` then follows storage until cancelled (a task of the server's TaskGroup).
"""

from __future__ import annotations

from controlplane.apiserver.context import ServerContext
from controlplane.apiserver.rbac.aggregation import ClusterRoleAggregator
from controlplane.apiserver.rbac.authorizer import RBACAuthorizer
from controlplane.apiserver.rbac.bootstrap import reconcile_bootstrap_policy
from controlplane.apiserver.rbac.cache import PolicyCache
from controlplane.apiserver.rbac.escalation import RBACEscalation

__all__ = ["RBAC", "PolicyCache", "RBACAuthorizer", "RBACEscalation"]


class RBAC:
    def __init__(self, ctx: ServerContext) -> None:
        self.cache = PolicyCache(ctx.storage)
        self.authorizer = RBACAuthorizer(self.cache)
        self._ctx = ctx
        self._aggregator = ClusterRoleAggregator(self.cache, ctx.store, ctx.registry)

    async def start(self) -> None:
        await reconcile_bootstrap_policy(self._ctx)
        await self.cache.sync()
        # Aggregated roles are complete before the first request: list again after writing them
        # (the new watch only delivers once it is iterated).
        if await self._aggregator.sync():
            await self.cache.sync()
        self.cache.on_cluster_roles_changed(self._aggregator)

    async def run(self) -> None:
        await self.cache.run()
