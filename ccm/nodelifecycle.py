"""Cloud node lifecycle controller (k8s.io/cloud-provider controllers/nodelifecycle).

Every `NodeMonitorPeriod` (5 s): a Ready Node loses the shutdown taint; a Node that is not Ready
is deleted when its instance no longer exists (Events DeletingNode, DeletingNodeFailed), and
tainted `node.cloudprovider.kubernetes.io/shutdown:NoSchedule` while its instance is stopped.

Unlike upstream, which asks the cloud about every Node, only Nodes whose providerID belongs to
this cloud are considered: a Node the cloud cannot be asked about by providerID (a simulated
agent, another cloud's machine, a kubelet that set none) is never deleted on a name lookup's
say-so (cloud-anchors (b)2, Nodes deleted over a DNS-name mismatch).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

from ccm.base import CloudController
from ccm.nodeutil import (
    LABEL_LIFECYCLE_EXCLUDE,
    TAINT_SHUTDOWN,
    has_taint,
    is_ready,
    node_ref,
    provider_id,
    taints,
    without_taint,
)
from ccm.settings import CloudSettings, cloud_settings
from controlplane.api import errors
from controlplane.controllers.runtime import R
from providers.capabilities import InstanceMetadata
from providers.errors import CloudError

__all__ = ["SHUTDOWN_TAINT", "CloudNodeLifecycleController"]

MONITOR_CONCURRENCY = 64
SHUTDOWN_TAINT = {"key": TAINT_SHUTDOWN, "effect": "NoSchedule"}


class CloudNodeLifecycleController(CloudController):
    name = "cloud-node-lifecycle"
    event_source = "cloud-node-lifecycle-controller"
    workers = 0  # a periodic monitor, no queue

    def setup(self) -> None:
        self.settings: CloudSettings = cloud_settings(self.ctx)
        self.instances: InstanceMetadata = self.settings.provider.require(
            self.settings.provider.instance_metadata, "instance metadata"
        )
        self.nodes = self.ctx.informers.informer(R.NODES)

    async def run_extra(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.monitor_nodes()
            await self.sleep_or_stop(stop, self.settings.node_monitor_period)

    async def monitor_nodes(self) -> None:
        """Upstream MonitorNodes; the cloud is asked about NotReady nodes only, concurrently
        (bounded) so that a provider that batches lookups sees them together."""
        limit = asyncio.Semaphore(MONITOR_CONCURRENCY)

        async def monitor(node: Mapping[str, Any]) -> None:
            async with limit:
                try:
                    await self._monitor(node)
                except (errors.StatusError, OSError, TimeoutError) as exc:
                    self.log.warning("error patching node %s: %s", node["metadata"]["name"], exc)

        await asyncio.gather(
            *(
                monitor(node)
                for node in self.nodes.list()
                if LABEL_LIFECYCLE_EXCLUDE not in ((node.get("metadata") or {}).get("labels") or {})
                and self.settings.owns_provider_id(provider_id(node))
            )
        )

    async def _monitor(self, node: Mapping[str, Any]) -> None:
        name = str(node["metadata"]["name"])
        if is_ready(node):
            if has_taint(node, TAINT_SHUTDOWN):
                await self._set_taints(node, without_taint(node, TAINT_SHUTDOWN))
            return
        ref = node_ref(node)
        try:
            exists = await self.instances.instance_exists(ref)
        except CloudError as exc:
            self.log.error("error checking if node %s exists: %s", name, exc)  # noqa: TRY400
            return
        if not exists:
            self.log.info("deleting node since it is no longer present in cloud provider: %s", name)
            event_obj = {**node, "apiVersion": "v1", "kind": "Node"}
            self.ctx.recorder.event(
                event_obj,
                "Normal",
                "DeletingNode",
                f"Deleting node {name} because it does not exist in the cloud provider",
            )
            try:
                await self.ctx.client.delete(
                    R.NODES, name, options={"preconditions": {"uid": node["metadata"].get("uid")}}
                )
            except errors.NotFound:
                pass
            except errors.StatusError as exc:
                self.ctx.recorder.event(
                    event_obj, "Warning", "DeletingNodeFailed", f"Failed deleting node {name}: {exc.message}"
                )
            return
        try:
            shutdown = await self.instances.instance_shutdown(ref)
        except CloudError as exc:
            self.log.error("error checking if node %s is shutdown: %s", name, exc)  # noqa: TRY400
            return
        if shutdown and not has_taint(node, TAINT_SHUTDOWN):
            await self._set_taints(node, [*taints(node), dict(SHUTDOWN_TAINT)])

    async def _set_taints(self, node: Mapping[str, Any], wanted: list[dict[str, Any]]) -> None:
        """A merge patch replaces the list; the resourceVersion makes it a compare-and-swap."""
        meta = node["metadata"]
        patch = {
            "metadata": {"resourceVersion": meta.get("resourceVersion")},
            "spec": {"taints": wanted or None},
        }
        with contextlib.suppress(errors.NotFound, errors.Conflict):  # the next period looks again
            await self.ctx.client.patch(R.NODES, meta["name"], patch)
