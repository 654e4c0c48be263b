"""Namespace controller (upstream pkg/controller/namespace): empties a namespace being deleted,
then removes the `kubernetes` finalizer through `namespaces/<name>/finalize`, which lets the API
server delete the namespace itself.

Every namespaced resource the server serves is found through discovery (custom resources
included) and deleted with deletecollection where supported, else item by item, with Background
propagation so the garbage collector never orphans anything. The namespace waits, requeued after
an estimate (pods' graceful termination) or with backoff, until each list comes back empty; the
Namespace's conditions say what remains and why.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from controlplane.api import errors
from controlplane.client import ResourcePath
from controlplane.controllers.namespace_conditions import (
    ConditionUpdater,
    GroupVersionResource,
    RemainingContent,
)
from controlplane.controllers.podutil import is_pod_terminal, parse_time
from controlplane.controllers.runtime import Controller, R, rfc3339

__all__ = ["FINALIZER", "NamespaceController", "estimate_pod_termination"]

Obj = Mapping[str, Any]

FINALIZER = "kubernetes"
# Upstream namespaceDeletionGracePeriod: lets every API server see the deletion (and refuse new
# content) before the controller starts listing.
DELETION_GRACE_PERIOD = 5.0
# Assumed wait for items held only by finalizers (upstream finalizerEstimateSeconds).
FINALIZER_ESTIMATE = 15
BACKGROUND = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}


@dataclass(frozen=True)
class _Resource:
    gvr: GroupVersionResource
    verbs: frozenset[str]

    @property
    def path(self) -> ResourcePath:
        return ResourcePath(self.gvr.group, self.gvr.version, self.gvr.resource)


@dataclass
class _Outcome:
    estimate: int = 0
    remaining: int = 0
    finalizers: dict[str, int] | None = None
    error: str = ""


def estimate_pod_termination(pods: Iterable[Obj]) -> int:
    """The longest grace period among pods that have not finished (upstream
    estimateGracefulTerminationForPods)."""
    estimate = 0
    for pod in pods:
        if is_pod_terminal(pod):
            continue
        grace = (pod.get("spec") or {}).get("terminationGracePeriodSeconds")
        if grace is not None and int(grace) > estimate:
            estimate = int(grace)
    return estimate


class NamespaceController(Controller):
    name = "namespace"
    event_source = "namespace-controller"
    workers = 10

    def setup(self) -> None:
        self.namespaces = self.ctx.informers.informer(R.NAMESPACES)
        self.grace = float(
            self.ctx.config.extra.get("namespace_deletion_grace_period", DELETION_GRACE_PERIOD)
        )
        self.namespaces.add_handler(self._on_namespace)

    def _on_namespace(self, event: str, _old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        if event != "DELETED" and new is not None and (new.get("metadata") or {}).get("deletionTimestamp"):
            self.enqueue_after(new["metadata"]["name"], self.grace)

    async def run_extra(self, stop: asyncio.Event) -> None:
        # Upstream's informer resync: look at every terminating namespace again now and then.
        period = self.ctx.config.namespace_sync_period
        while not stop.is_set():
            await self.ctx.clock.sleep(period)
            for namespace in self.namespaces.list():
                if (namespace.get("metadata") or {}).get("deletionTimestamp"):
                    self.enqueue(namespace["metadata"]["name"])

    async def reconcile(self, key: str) -> float | None:
        client = self.ctx.client
        try:
            namespace = await client.get(R.NAMESPACES, key)
        except errors.NotFound:
            return None
        if not namespace["metadata"].get("deletionTimestamp"):
            return None
        terminating = await self._ensure_terminating(namespace)
        if terminating is None or not terminating["metadata"].get("deletionTimestamp"):
            return None
        namespace = terminating
        if not (namespace.get("spec") or {}).get("finalizers"):
            return None  # finalized already; the API server deletes it
        estimate, failure = await self._delete_all_content(namespace)
        if failure:
            raise errors.InternalError(message=failure)
        if estimate > 0:
            # Upstream waits half the estimate (plus a second) before looking again.
            return float(estimate // 2 + 1)
        await self._finalize(namespace)
        return None

    async def _ensure_terminating(self, namespace: dict[str, Any]) -> dict[str, Any] | None:
        """Phase Terminating on the latest copy, retrying on conflict (upstream retryOnConflictError)."""
        uid = namespace["metadata"].get("uid")
        while True:
            if not namespace["metadata"].get("deletionTimestamp") or (
                (namespace.get("status") or {}).get("phase") == "Terminating"
            ):
                return namespace
            updated = copy.deepcopy(namespace)
            updated.setdefault("status", {})["phase"] = "Terminating"
            name = namespace["metadata"]["name"]
            try:
                result: dict[str, Any] = await self.ctx.client.request(
                    "PUT", R.NAMESPACES.url(None, name, "status"), body=updated
                )
                return result
            except errors.NotFound:
                return None
            except errors.Conflict:
                try:
                    namespace = await self.ctx.client.get(R.NAMESPACES, name)
                except errors.NotFound:
                    return None
                if namespace["metadata"].get("uid") != uid:
                    raise errors.InternalError(message="namespace uid has changed across retries") from None

    async def _finalize(self, namespace: dict[str, Any]) -> None:
        name = namespace["metadata"]["name"]
        uid = namespace["metadata"].get("uid")
        while True:
            remaining = sorted(
                {f for f in namespace.get("spec", {}).get("finalizers") or [] if f != FINALIZER}
            )
            body = {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": namespace["metadata"],
                "spec": {**namespace.get("spec", {}), "finalizers": remaining},
            }
            try:
                await self.ctx.client.request("PUT", R.NAMESPACES.url(None, name, "finalize"), body=body)
                return
            except errors.NotFound:
                return  # another copy of the controller finished first
            except errors.Conflict:
                try:
                    namespace = await self.ctx.client.get(R.NAMESPACES, name)
                except errors.NotFound:
                    return
                if namespace["metadata"].get("uid") != uid:
                    raise errors.InternalError(message="namespace uid has changed across retries") from None

    # -- discovery -------------------------------------------------------------------------

    async def _discover(self) -> tuple[list[_Resource], dict[str, str]]:
        """Namespaced, deletable resources of each group's preferred version, and the groups
        whose discovery failed (deletion goes on with what could be found)."""
        client = self.ctx.client
        found: list[_Resource] = []
        failures: dict[str, str] = {}
        group_versions: list[tuple[str, str]] = [("", "v1")]
        try:
            groups = await client.request("GET", "/apis")
            for group in groups.get("groups") or []:
                preferred = (group.get("preferredVersion") or {}).get("version") or (
                    (group.get("versions") or [{}])[0].get("version", "")
                )
                group_versions.append((str(group["name"]), str(preferred)))
        except errors.StatusError as exc:
            failures["apis"] = exc.message
        for group, version in group_versions:
            path = "/api/v1" if not group else f"/apis/{group}/{version}"
            gv = version if not group else f"{group}/{version}"
            try:
                doc = await client.request("GET", path)
            except (errors.StatusError, OSError) as exc:
                failures[gv] = str(getattr(exc, "message", exc))
                continue
            for res in doc.get("resources") or []:
                verbs = frozenset(res.get("verbs") or [])
                if "/" in res["name"] or not res.get("namespaced") or "delete" not in verbs:
                    continue
                found.append(_Resource(GroupVersionResource(group, version, res["name"]), verbs))
        return found, failures

    # -- deleting --------------------------------------------------------------------------

    async def _delete_all_content(self, namespace: dict[str, Any]) -> tuple[int, str]:
        """(seconds to wait before looking again, aggregated failure or "")."""
        name = namespace["metadata"]["name"]
        deleted_at = parse_time(namespace["metadata"].get("deletionTimestamp"))
        updater = ConditionUpdater(now=rfc3339(self.ctx.clock.now()))
        resources, failures = await self._discover()
        messages: list[str] = []
        if failures:
            updater.discovery_failed(failures)
            messages.append(
                "unable to retrieve the complete list of server APIs: "
                + ", ".join(sorted(f"{gv}: {err}" for gv, err in failures.items()))
            )
        remaining = RemainingContent()
        estimate = 0
        outcomes = await asyncio.gather(*(self._delete_resource(r, name, deleted_at) for r in resources))
        for resource, outcome in zip(resources, outcomes, strict=True):
            if outcome.error:
                messages.append(outcome.error)
                updater.delete_content_failed(outcome.error)
            estimate = max(estimate, outcome.estimate)
            if outcome.remaining:
                remaining.by_resource[resource.gvr] = outcome.remaining
                for finalizer, count in (outcome.finalizers or {}).items():
                    remaining.by_finalizer[finalizer] = remaining.by_finalizer.get(finalizer, 0) + count
        updater.content_totals(remaining)
        status = copy.deepcopy(namespace.get("status") or {})
        if updater.apply(status):
            updated = {**namespace, "status": status}
            with contextlib.suppress(errors.Conflict, errors.NotFound):
                await self.ctx.client.request("PUT", R.NAMESPACES.url(None, name, "status"), body=updated)
        return estimate, ", ".join(messages)

    async def _delete_resource(self, resource: _Resource, namespace: str, deleted_at: Any) -> _Outcome:
        client = self.ctx.client
        rp = resource.path
        try:
            estimate = 0
            if resource.gvr == GroupVersionResource("", "v1", "pods"):
                pods = await client.list(rp, namespace)
                estimate = estimate_pod_termination(pods.get("items") or [])
                if deleted_at is not None and (self.ctx.clock.now() - deleted_at).total_seconds() >= estimate:
                    estimate = 0
            if "deletecollection" in resource.verbs:
                try:
                    await client.request("DELETE", rp.url(namespace), body=BACKGROUND)
                except (errors.MethodNotSupported, errors.NotFound):
                    await self._delete_each(resource, namespace)
            else:
                await self._delete_each(resource, namespace)
            if "list" not in resource.verbs:
                return _Outcome(estimate=estimate)
            try:
                items = (await client.list(rp, namespace)).get("items") or []
            except (errors.MethodNotSupported, errors.NotFound):
                return _Outcome(estimate=estimate)
        except errors.StatusError as exc:
            return _Outcome(error=exc.message)
        if not items:
            return _Outcome()
        finalizers: dict[str, int] = {}
        for item in items:
            for finalizer in (item.get("metadata") or {}).get("finalizers") or []:
                finalizers[finalizer] = finalizers.get(finalizer, 0) + 1
        if estimate:
            return _Outcome(estimate=estimate, remaining=len(items), finalizers=finalizers)
        if finalizers:
            return _Outcome(estimate=FINALIZER_ESTIMATE, remaining=len(items), finalizers=finalizers)
        return _Outcome(
            remaining=len(items),
            error=f"unexpected items still remain in namespace: {namespace} for gvr: {resource.gvr}",
        )

    async def _delete_each(self, resource: _Resource, namespace: str) -> None:
        if "list" not in resource.verbs:
            return
        client = self.ctx.client
        try:
            items = (await client.list(resource.path, namespace)).get("items") or []
        except (errors.MethodNotSupported, errors.NotFound):
            return
        for item in items:
            with contextlib.suppress(errors.NotFound, errors.MethodNotSupported):
                await client.delete(resource.path, item["metadata"]["name"], namespace, options=BACKGROUND)
