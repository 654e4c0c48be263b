"""Cloud node controller (k8s.io/cloud-provider controllers/node): initialises the Nodes a kubelet
registered with `--cloud-provider=external`, and keeps their addresses current.

A Node carrying `node.cloudprovider.kubernetes.io/uninitialized` gets, in one update retried on
conflict: its providerID (when the kubelet left it empty), the instance-type, zone and region
labels (GA and legacy beta), the cloud's additional labels, and the taint removed. Its
`status.addresses` follow, honouring the kubelet's `alpha.kubernetes.io/provided-node-ip`. Every
`NodeStatusUpdateFrequency` (5 min) the addresses of initialised Nodes of this cloud are refreshed.

Doing better than upstream where users complain (nodes stuck tainted, cloud-anchors (b)1): when
initialisation fails, the Node gets a Warning Event that says why, so `kubectl describe node`
answers the question instead of the CCM's log.
"""

from __future__ import annotations

import asyncio
import copy
import random
import re
from collections.abc import Callable, Mapping
from typing import Any

from ccm.base import CloudController
from ccm.nodeutil import (
    ANNOTATION_PROVIDED_NODE_IP,
    TAINT_UNINITIALIZED,
    addresses_changed,
    addresses_from_node_ip,
    has_taint,
    node_addresses,
    node_ref,
    provider_id,
    to_api_addresses,
    without_taint,
)
from ccm.settings import CloudSettings, cloud_settings
from controlplane.api import errors
from controlplane.controllers.runtime import R
from providers.capabilities import InstanceMetadata
from providers.errors import CloudError, InvalidConfiguration, NotFound
from providers.model import InstanceDetails, NodeAddress

__all__ = [
    "EVENT_INIT_FAILED",
    "LABEL_RECONCILE",
    "CloudNodeController",
    "node_modifiers",
    "status_addresses",
]

Obj = dict[str, Any]
Modifier = Callable[[Obj], None]

LABEL_INSTANCE_TYPE = "node.kubernetes.io/instance-type"
LABEL_INSTANCE_TYPE_BETA = "beta.kubernetes.io/instance-type"
LABEL_ZONE = "topology.kubernetes.io/zone"
LABEL_ZONE_BETA = "failure-domain.beta.kubernetes.io/zone"
LABEL_REGION = "topology.kubernetes.io/region"
LABEL_REGION_BETA = "failure-domain.beta.kubernetes.io/region"

# (primary, secondary): upstream reconciles the GA label from the beta one, its source of truth.
LABEL_RECONCILE = (
    (LABEL_ZONE_BETA, LABEL_ZONE),
    (LABEL_REGION_BETA, LABEL_REGION),
    (LABEL_INSTANCE_TYPE_BETA, LABEL_INSTANCE_TYPE),
)
EVENT_INIT_FAILED = "FailedToInitializeNode"
_K8S_NAMESPACE = re.compile(r"(^|\.)(kubernetes|k8s)\.io/")
REFRESH_CONCURRENCY = 64
_UPDATE_ATTEMPTS = 20  # upstream UpdateNodeSpecBackoff: 20 steps of 50 ms with jitter


def node_modifiers(node: Obj, details: InstanceDetails) -> list[Modifier]:
    """Upstream's getNodeModifiersFromCloudProvider, plus removing the taint. Each is idempotent:
    they are re-applied to a fresh copy of the Node on every conflict retry."""
    mods: list[Modifier] = []

    def labels(n: Obj) -> dict[str, str]:
        meta = n.setdefault("metadata", {})
        if meta.get("labels") is None:
            meta["labels"] = {}
        found: dict[str, str] = meta["labels"]
        return found

    def set_label(value: str, keys: tuple[str, str]) -> Modifier:
        return lambda n: labels(n).update(dict.fromkeys(keys, value))

    if not provider_id(node) and details.provider_id:
        mods.append(lambda n: n.setdefault("spec", {}).__setitem__("providerID", details.provider_id))
    for value, keys in (
        (details.instance_type, (LABEL_INSTANCE_TYPE_BETA, LABEL_INSTANCE_TYPE)),
        (details.zone, (LABEL_ZONE_BETA, LABEL_ZONE)),
        (details.region, (LABEL_REGION_BETA, LABEL_REGION)),
    ):
        if value:
            mods.append(set_label(value, keys))
    if details.additional_labels:

        def additional(n: Obj) -> None:
            current = labels(n)
            for key, value in details.additional_labels.items():
                # A cloud must not write in the kubernetes namespaces, nor override a label.
                if _K8S_NAMESPACE.search(key) or key in current:
                    continue
                current[key] = value

        mods.append(additional)

    def untaint(n: Obj) -> None:
        spec = n.setdefault("spec", {})
        spec["taints"] = without_taint(n, TAINT_UNINITIALIZED)
        if not spec["taints"]:
            del spec["taints"]

    mods.append(untaint)
    return mods


def status_addresses(
    node: Mapping[str, Any], cloud: tuple[NodeAddress, ...]
) -> tuple[NodeAddress, ...] | None:
    """The addresses to write (upstream updateNodeAddress), or None to leave them: the cloud's,
    with the kubelet's Hostname when the cloud gave none, the provided node IP first."""
    if not cloud:
        return None
    addresses = list(cloud)
    if not any(a.type == "Hostname" for a in addresses):
        addresses.extend(a for a in node_addresses(node) if a.type == "Hostname")
    provided = ((node.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_PROVIDED_NODE_IP)
    result = tuple(addresses)
    if provided:
        result = addresses_from_node_ip(str(provided), result)
    return result


class CloudNodeController(CloudController):
    name = "cloud-node"
    event_source = "cloud-node-controller"
    workers = 1  # upstream ConcurrentNodeSyncs

    def setup(self) -> None:
        self.settings: CloudSettings = cloud_settings(self.ctx)
        self.instances: InstanceMetadata = self.settings.provider.require(
            self.settings.provider.instance_metadata, "instance metadata"
        )
        self.nodes = self.ctx.informers.informer(R.NODES)
        self.nodes.add_handler(lambda event, _old, new: None if event == "DELETED" else self.enqueue_obj(new))

    def cloud_retry_delay(self, key: str, exc: CloudError) -> float:
        # No instance yet may be one still launching (or an eventually consistent listing):
        # keep backing off as for a transient fault rather than waiting the longest delay.
        if isinstance(exc, NotFound):
            return self.queue.when(key)
        return super().cloud_retry_delay(key, exc)

    def _event(self, node: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        self.ctx.recorder.event({**node, "apiVersion": "v1", "kind": "Node"}, type_, reason, message)

    async def reconcile(self, key: str) -> float | None:
        node = self.nodes.get(key)
        if node is None:
            return None
        if not has_taint(node, TAINT_UNINITIALIZED):
            await self._reconcile_labels(node)
            return None
        await self._initialise(node)
        return None

    async def _reconcile_labels(self, node: Mapping[str, Any]) -> None:
        labels = (node.get("metadata") or {}).get("labels") or {}
        changes = {
            secondary: labels[primary]
            for primary, secondary in LABEL_RECONCILE
            if primary in labels and labels.get(secondary) != labels[primary]
        }
        if changes:
            name = node["metadata"]["name"]
            patch = {
                "metadata": {"labels": changes, "resourceVersion": node["metadata"].get("resourceVersion")}
            }
            await self.ctx.client.patch(R.NODES, name, patch)

    async def _initialise(self, node: Obj) -> None:
        name = str(node["metadata"]["name"])
        self.log.info("Initializing node %s with cloud provider", name)
        try:
            details = await self.instances.instance_metadata(node_ref(node))
            if not details.provider_id and not provider_id(node):
                raise InvalidConfiguration(f"cloud provider does not set node provider ID for node {name}")
            try:
                status_addresses(node, details.addresses)
            except ValueError as exc:
                raise InvalidConfiguration(
                    f"provided node ip for node {name!r} is not valid: {exc}"
                ) from None
        except CloudError as exc:
            self._event(
                node,
                "Warning",
                EVENT_INIT_FAILED,
                f"Node {name} is still tainted {TAINT_UNINITIALIZED}: "
                f"failed to get instance metadata for node {name}: {exc}",
            )
            raise
        modifiers = node_modifiers(node, details)
        updated = await self._update_with_retry(node, modifiers)
        if updated is None:
            return  # deleted meanwhile
        await self._update_addresses(updated, details.addresses)
        self.log.info("Successfully initialized node %s with cloud provider", name)
        self._event(node, "Normal", "Synced", "Node synced successfully")

    async def _update_with_retry(self, node: Obj, modifiers: list[Modifier]) -> Obj | None:
        name = str(node["metadata"]["name"])
        current: Obj = node
        for attempt in range(_UPDATE_ATTEMPTS):
            if attempt:
                await self.ctx.clock.sleep(0.05 * (1 + random.random()))
                try:
                    current = await self.ctx.client.get(R.NODES, name)
                except errors.NotFound:
                    return None
            fresh = copy.deepcopy(current)
            for modify in modifiers:
                modify(fresh)
            try:
                result: Obj = await self.ctx.client.request("PUT", R.NODES.url(None, name), body=fresh)
                return result
            except errors.NotFound:
                return None
            except errors.Conflict:
                continue
        raise errors.Conflict(message=f"node {name}: too many conflicts initialising it")

    async def _update_addresses(self, node: Mapping[str, Any], cloud: tuple[NodeAddress, ...]) -> None:
        """Upstream's updateNodeAddress; failures are logged, the next refresh tries again."""
        name = node["metadata"]["name"]
        if has_taint(node, TAINT_UNINITIALIZED):
            return
        try:
            wanted = status_addresses(node, cloud)
        except ValueError as exc:
            self.log.error("Failed to update node addresses for node %r: %s", name, exc)  # noqa: TRY400
            return
        if wanted is None or not addresses_changed(node_addresses(node), wanted):
            return
        try:
            await self.ctx.client.patch(
                R.NODES, name, {"status": {"addresses": to_api_addresses(wanted)}}, subresource="status"
            )
        except errors.StatusError as exc:
            self.log.error("Error patching node with cloud ip addresses = [%s]", exc)  # noqa: TRY400

    # -- the periodic address refresh (upstream UpdateNodeStatus) -----------------------------

    async def run_extra(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.update_node_status()
            await self.sleep_or_stop(stop, self.settings.node_status_update_frequency)

    async def update_node_status(self) -> None:
        """Every Node's lookup at once, so that a provider that batches lookups sees them together
        (aws: one DescribeInstances per 200 nodes; with the lookups bounded to 64 at a time it
        was one per 64); only the API writes are bounded."""
        limit = asyncio.Semaphore(REFRESH_CONCURRENCY)

        async def refresh(node: Obj) -> None:
            try:
                details = await self.instances.instance_metadata(node_ref(node))
            except CloudError as exc:
                self.log.warning("Error getting instance metadata for node addresses: %s", exc)
                return
            async with limit:
                await self._update_addresses(node, details.addresses)

        await asyncio.gather(
            *(
                refresh(node)
                for node in self.nodes.list()
                if not has_taint(node, TAINT_UNINITIALIZED)
                and self.settings.owns_provider_id(provider_id(node))
            )
        )
