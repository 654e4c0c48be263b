"""ClusterRole aggregation, run by the API server itself (upstream runs the
clusterrole-aggregation controller in kube-controller-manager; here it needs no client, no
identity and no `escalate` grant): whenever a ClusterRole changes, every aggregated role gets
the rules its selectors gather, written straight to storage. A write that lost a race is
simply redone on the next event.
"""

from __future__ import annotations

import logging

from controlplane.api import errors
from controlplane.api.rbac.aggregation import aggregate_all
from controlplane.api.rbac.rules import rule_to_dict
from controlplane.api.resources import Registry
from controlplane.apiserver.rbac.cache import PolicyCache
from controlplane.apiserver.store import ObjectStore

__all__ = ["ClusterRoleAggregator"]

log = logging.getLogger("pinnace.rbac")


class ClusterRoleAggregator:
    def __init__(self, cache: PolicyCache, store: ObjectStore, registry: Registry) -> None:
        self._cache = cache
        self._store = store
        info = registry.get("rbac.authorization.k8s.io", "v1", "clusterroles")
        assert info is not None
        self._info = info

    async def __call__(self, changed: set[str]) -> None:
        await self.sync()

    async def sync(self) -> int:
        """Write every aggregated role whose rules are out of date; how many were written."""
        written = 0
        for name, rules in aggregate_all(self._cache.cluster_roles()).items():
            found = self._cache.cluster_role_object(name)
            if found is None:
                continue
            obj, revision = found
            updated = {**obj, "rules": [rule_to_dict(r) for r in rules]}
            try:
                await self._store.update(self._info, updated, expected_revision=revision)
                written += 1
            except (errors.Conflict, errors.NotFound):
                log.debug("aggregated clusterrole %s moved; the next event redoes it", name)
        return written
