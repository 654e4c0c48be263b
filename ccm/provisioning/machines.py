"""One Machine, from a name to a Running node and back to nothing.

Pending -> (bootstrap token + its RBAC) -> Provisioning -> (user-data rendered, instance created,
idempotent by the Machine's name) -> Bootstrapping -> (the node reports its steps; its Node joins
and turns Ready) -> Running. Deletion (the finalizer `infra.pinnace.dev/machine`): Deleting ->
cordon and drain the Node -> delete the Node -> terminate the instance and wait until it is gone
-> delete the token and its RBAC -> remove the finalizer.

Every step reads the current state first and may run again after a crash: the token is found by
the Machine's annotation, the instance by its name (the cloud's Name tag), the Node by providerID.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

from ccm.provisioning import api
from ccm.provisioning.conditions import set_condition
from ccm.provisioning.context import MACHINES, NODEPOOLS, Context
from ccm.provisioning.drain import cordon, drain_pass
from ccm.provisioning.lifecycle import NodeView, evaluate
from ccm.provisioning.poolspec import PoolSpec
from ccm.provisioning.tokens import (
    CLUSTER_ROLE_BINDINGS,
    CLUSTER_ROLES,
    TOKEN_ANNOTATION,
    TOKEN_NAMESPACE,
    bootstrap_binding,
    bootstrap_role,
    generate_token,
    machine_token_secret,
    rbac_name,
    token_from_secret,
    token_secret_name,
)
from ccm.provisioning.userdata import bootstrap_spec
from controlplane.api import errors
from controlplane.controllers.runtime import R
from providers import errors as cloud_errors
from providers.model import Instance, InstanceSpec, InstanceState, Owner
from providers.tags import owner_from_tags

__all__ = ["FINALIZER", "INSTANCE_TERMINATED", "MachineReconciler", "instance_owner_name"]

log = logging.getLogger("pinnace.provisioner.machines")

FINALIZER = f"{api.GROUP}/machine"
# The instance of a Running Machine was terminated (or vanished) behind the operator's back.
INSTANCE_TERMINATED = "InstanceTerminated"
P = api.MachinePhase
_STATUS_KEYS = ("phase", "nodeName", "conditions", "failureReason", "failureMessage")


def instance_owner_name(instance: Instance) -> str | None:
    """The Machine an instance was made for ("" / None when it was not made for a Machine)."""
    owner = instance.owner or owner_from_tags(instance.tags)
    if owner is None or owner.kind != "Machine":
        return None
    return owner.name


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


class MachineReconciler:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    # -- the way up ---------------------------------------------------------------------------

    async def reconcile(self, name: str) -> float | None:
        """Seconds until the next look, or None when only an event should bring one."""
        try:
            machine = await self.ctx.client.get(MACHINES, name)
        except errors.NotFound:
            return None
        if _meta(machine).get("deletionTimestamp"):
            return await self.finalize(machine)
        if FINALIZER not in (_meta(machine).get("finalizers") or []):
            await self._add_finalizer(machine)
            return 0.0
        status = machine.get("status") or {}
        phase = status.get("phase") or P.PENDING
        if phase == P.FAILED:
            return None
        pool = await self._pool(machine)
        if phase in (P.PENDING, P.PROVISIONING):
            if pool is None:
                return None  # its pool is gone: the Machine is about to be deleted, launch nothing
            return await self._provision(machine, pool)
        return await self._watch_node(
            machine, pool or PoolSpec(name=str((machine.get("spec") or {}).get("nodePool")))
        )

    async def _pool(self, machine: Mapping[str, Any]) -> PoolSpec | None:
        pool_name = str((machine.get("spec") or {}).get("nodePool") or "")
        if not pool_name:
            return PoolSpec(name="")
        try:
            return PoolSpec.from_object(await self.ctx.client.get(NODEPOOLS, pool_name))
        except errors.NotFound:
            return None

    async def _add_finalizer(self, machine: Mapping[str, Any]) -> None:
        meta = _meta(machine)
        finalizers = [*(meta.get("finalizers") or []), FINALIZER]
        patch = {"metadata": {"finalizers": finalizers, "resourceVersion": meta.get("resourceVersion")}}
        await self.ctx.client.patch(MACHINES, str(meta.get("name")), patch)

    async def _patch_status(self, name: str, status: Mapping[str, Any]) -> dict[str, Any]:
        return await self.ctx.client.patch(MACHINES, name, {"status": dict(status)}, subresource="status")

    async def _ensure_token(self, machine: Mapping[str, Any], pool: PoolSpec) -> tuple[str, dict[str, Any]]:
        """The Machine's bootstrap token, made (with its RBAC) when it has none still valid."""
        client, now = self.ctx.client, self.ctx.settings.clock.now()
        meta = _meta(machine)
        name = str(meta.get("name"))
        token_id = str((meta.get("annotations") or {}).get(TOKEN_ANNOTATION) or "")
        token: str | None = None
        if token_id:
            try:
                secret = await client.get(R.SECRETS, token_secret_name(token_id), TOKEN_NAMESPACE)
                token = token_from_secret(secret, now)
            except errors.NotFound:
                token = None
        if token is None:
            token = generate_token()
            token_id = token.split(".", 1)[0]
            ttl = pool.token_ttl
            secret = machine_token_secret(token, machine, ttl_seconds=ttl, now=now)
            await client.create(R.SECRETS, secret, TOKEN_NAMESPACE)
            machine = await client.patch(
                MACHINES, name, {"metadata": {"annotations": {TOKEN_ANNOTATION: token_id}}}
            )
        await self._ensure_rbac(machine, token_id)
        return token, dict(machine)

    async def _ensure_rbac(self, machine: Mapping[str, Any], token_id: str) -> None:
        client = self.ctx.client
        role = bootstrap_role(machine)
        with contextlib.suppress(errors.AlreadyExists):
            await client.create(CLUSTER_ROLES, role)
        binding = bootstrap_binding(machine, token_id)
        try:
            await client.create(CLUSTER_ROLE_BINDINGS, binding)
        except errors.AlreadyExists:
            # A token made again (the first expired): the binding follows it to the new user.
            await client.patch(
                CLUSTER_ROLE_BINDINGS, binding["metadata"]["name"], {"subjects": binding["subjects"]}
            )

    async def _provision(self, machine: dict[str, Any], pool: PoolSpec) -> float | None:
        ctx = self.ctx
        meta, spec = _meta(machine), machine.get("spec") or {}
        name, uid = str(meta.get("name")), str(meta.get("uid"))
        status = machine.get("status") or {}
        if status.get("phase") != P.PROVISIONING:
            token, machine = await self._ensure_token(machine, pool)
            conditions = set_condition(
                status.get("conditions"), "InstanceProvisioned", False, "Provisioning", "", ctx.now()
            )
            await self._patch_status(name, {"phase": P.PROVISIONING, "conditions": conditions})
            status = {**status, "phase": P.PROVISIONING, "conditions": conditions}
        else:
            token, machine = await self._ensure_token(machine, pool)
        user_data = ctx.settings.render(bootstrap_spec(ctx.settings, pool, machine, token))
        zone = str(spec.get("zone") or "")
        request = InstanceSpec(
            name=name,
            owner=Owner(kind="Machine", name=name, uid=uid),
            instance_type=str(spec.get("instanceType") or pool.instance_type),
            image=str(spec.get("image") or pool.image),
            zone=zone,
            subnet=str(spec.get("subnet") or pool.subnet_for(zone)),
            user_data=user_data,
            tags={api.LABEL_NODE_POOL: pool.name, api.LABEL_MACHINE: name},
        )
        try:
            instance = await self._create_instance(request, pool)
        except cloud_errors.InvalidConfiguration as exc:
            # Retrying cannot help (no such zone, image or instance type): fail, visibly.
            message = f"cannot create the instance: {exc}"
            conditions = set_condition(
                status.get("conditions"),
                "InstanceProvisioned",
                False,
                "InstanceCreateFailed",
                message,
                ctx.now(),
            )
            ctx.recorder.event(machine, "Warning", "InstanceCreateFailed", message)
            await self._patch_status(
                name,
                {
                    "phase": P.FAILED,
                    "conditions": conditions,
                    "failureReason": "InstanceCreateFailed",
                    "failureMessage": message,
                },
            )
            ctx.enqueue_pool(pool.name)
            return None
        except cloud_errors.CloudError as exc:
            ctx.recorder.event(machine, "Warning", "InstanceCreateFailed", str(exc))
            raise
        conditions = set_condition(
            status.get("conditions"),
            "InstanceProvisioned",
            True,
            "InstanceProvisioned",
            f"instance {instance.id}",
            ctx.now(),
        )
        await self._patch_status(
            name,
            {
                "phase": P.BOOTSTRAPPING,
                "instanceID": instance.id,
                "providerID": instance.provider_id,
                "zone": instance.zone,
                "addresses": [{"type": a.type, "address": a.address} for a in instance.addresses],
                "conditions": conditions,
            },
        )
        ctx.nodes.machines[instance.provider_id] = name
        ctx.recorder.event(
            machine, "Normal", "InstanceCreated", f"Created instance {instance.id} in {instance.zone}"
        )
        return ctx.settings.machine_poll_interval

    async def _create_instance(self, request: InstanceSpec, pool: PoolSpec) -> Instance:
        ctx = self.ctx
        try:
            return await ctx.instances.create_instance(ctx.settings.cluster_id, request)
        except cloud_errors.InvalidConfiguration as exc:
            if not request.zone or request.subnet or pool.zones or pool.subnets:
                raise
            # The zone was the spread's pick among the provider's zones, not the pool's demand,
            # and this cloud configuration cannot launch there: the provider's default placement.
            log.warning("cannot launch in zone %s (%s); using the default zone", request.zone, exc)
            ctx.unusable_zones.add(request.zone)
            return await ctx.instances.create_instance(
                ctx.settings.cluster_id, dataclasses.replace(request, zone="")
            )

    # -- watching the node --------------------------------------------------------------------

    async def _find_node(self, status: Mapping[str, Any]) -> dict[str, Any] | None:
        provider_id = str(status.get("providerID") or "")
        if not provider_id:
            return None
        node = self.ctx.nodes.nodes.get(provider_id)
        if node is not None:
            return node
        # Not seen on the watch (yet): the Node is named after the instance, or was recorded.
        for candidate in dict.fromkeys(n for n in (status.get("nodeName"), status.get("instanceID")) if n):
            try:
                found = await self.ctx.client.get(R.NODES, str(candidate))
            except errors.NotFound:
                continue
            if (found.get("spec") or {}).get("providerID") == provider_id:
                return found
        return None

    async def _label_node(self, node: Mapping[str, Any], pool: str, machine: str) -> None:
        labels = _meta(node).get("labels") or {}
        wanted = {api.LABEL_MACHINE: machine}
        if pool:
            wanted[api.LABEL_NODE_POOL] = pool
        if all(labels.get(k) == v for k, v in wanted.items()):
            return
        with contextlib.suppress(errors.NotFound):
            await self.ctx.client.patch(
                R.NODES, str(_meta(node).get("name")), {"metadata": {"labels": wanted}}
            )

    async def _instance_gone(self, status: Mapping[str, Any]) -> str:
        """Why a Running Machine's instance is no more ("" while it lives).

        Only asked once the Machine is Running: the instance has been seen live since, so a
        NotFound is no launch-time eventual-consistency blip, and a Bootstrapping Machine's
        join timeout covers the rest. One cloud call per pass, and a Running Machine's passes
        are its resyncs and its Node's Ready flips."""
        instance_id = str(status.get("instanceID") or "")
        if status.get("phase") != P.RUNNING or not instance_id:
            return ""
        try:
            instance = await self.ctx.instances.get_instance(self.ctx.settings.cluster_id, instance_id)
        except cloud_errors.NotFound:
            return f"instance {instance_id} no longer exists"
        if instance.state in (InstanceState.SHUTTING_DOWN, InstanceState.TERMINATED):
            return f"instance {instance_id} is {instance.state}"
        return ""

    async def _fail_instance_gone(self, machine: Mapping[str, Any], pool: PoolSpec, message: str) -> None:
        name = str(_meta(machine).get("name"))
        status = machine.get("status") or {}
        conditions = set_condition(
            status.get("conditions"),
            "InstanceProvisioned",
            False,
            INSTANCE_TERMINATED,
            message,
            self.ctx.now(),
        )
        await self._patch_status(
            name,
            {
                "phase": P.FAILED,
                "conditions": conditions,
                "failureReason": INSTANCE_TERMINATED,
                "failureMessage": message,
            },
        )
        self.ctx.recorder.event(machine, "Warning", INSTANCE_TERMINATED, message)
        self.ctx.enqueue_pool(pool.name)

    async def _watch_node(self, machine: Mapping[str, Any], pool: PoolSpec) -> float | None:
        ctx, settings = self.ctx, self.ctx.settings
        name = str(_meta(machine).get("name"))
        status = machine.get("status") or {}
        gone = await self._instance_gone(status)
        if gone:
            # Fail now rather than after notReadyTimeout: no node of this instance can come back.
            await self._fail_instance_gone(machine, pool, gone)
            return None
        node = await self._find_node(status)
        view = NodeView.from_object(node) if node is not None else None
        result = evaluate(
            status,
            view,
            settings.clock.now(),
            join_timeout=settings.join_timeout if settings.join_timeout is not None else pool.join_timeout,
            not_ready_timeout=(
                settings.not_ready_timeout
                if settings.not_ready_timeout is not None
                else pool.not_ready_timeout
            ),
        )
        if node is not None:
            await self._label_node(node, pool.name, name)
        update: dict[str, Any] = {
            "phase": result.phase,
            "nodeName": result.node_name,
            "conditions": result.conditions,
        }
        if result.failure_reason:
            update["failureReason"] = result.failure_reason
            update["failureMessage"] = result.failure_message
        if result.phase == P.RUNNING and (status.get("bootstrap") or {}).get("completed"):
            # Joined and done reporting (the node's last reports may come after it is Ready, and
            # they use the token): the token has done its job. Deleted before the status that
            # records it is written, so a crash in between cannot leave a live token behind; a
            # node that never reports completion leaves it to expire (tokenTTL).
            was_done = status.get("phase") == P.RUNNING and any(
                c.get("type") == "BootstrapSucceeded" and c.get("status") == "True"
                for c in status.get("conditions") or ()
            )
            if not was_done:
                await self._delete_token(machine)
        current = {k: status.get(k) for k in _STATUS_KEYS}
        wanted = {k: update.get(k, status.get(k)) for k in _STATUS_KEYS}
        if current != wanted:
            await self._patch_status(name, update)
            self._transition_events(machine, str(status.get("phase") or ""), result.phase, update)
        if result.phase == P.FAILED:
            ctx.enqueue_pool(pool.name)
            return None
        if result.phase == P.RUNNING:
            ready = result.conditions and any(
                c["type"] == "NodeReady" and c["status"] == "True" for c in result.conditions
            )
            return settings.running_resync_interval if ready else settings.machine_poll_interval
        return settings.machine_poll_interval

    def _transition_events(
        self, machine: Mapping[str, Any], old: str, new: str, update: Mapping[str, Any]
    ) -> None:
        if old == new:
            return
        recorder = self.ctx.recorder
        if new == P.RUNNING:
            recorder.event(machine, "Normal", "NodeReady", f"Node {update.get('nodeName')} is Ready")
        elif new == P.FAILED:
            reason = str(update.get("failureReason") or "Failed")
            recorder.event(machine, "Warning", reason, str(update.get("failureMessage") or ""))

    # -- the way down -------------------------------------------------------------------------

    async def finalize(self, machine: Mapping[str, Any]) -> float | None:
        ctx = self.ctx
        meta = _meta(machine)
        name = str(meta.get("name"))
        if FINALIZER not in (meta.get("finalizers") or []):
            return None
        status = machine.get("status") or {}
        if status.get("phase") != P.DELETING:
            # The finalizer's removal below carries the resourceVersion: take the new one.
            machine = await self._patch_status(name, {"phase": P.DELETING})
            meta = _meta(machine)
        node = await self._find_node(status)
        if node is not None:
            node_name = str(_meta(node).get("name"))
            if await cordon(ctx.client, node_name):
                ctx.recorder.event(machine, "Normal", "Draining", f"Cordoned node {node_name}; draining it")
            # A node whose instance is gone confirms nothing, whatever its Ready still says.
            reachable = (
                NodeView.from_object(node).ready == "True"
                and status.get("failureReason") != INSTANCE_TERMINATED
            )
            result = await drain_pass(ctx.client, ctx.evict_client, node_name, node_reachable=reachable)
            if not result.done:
                if result.blocked:
                    message = "Cannot evict " + ", ".join(result.blocked[:5]) + " now: disruption budget"
                    ctx.recorder.event(machine, "Warning", "DrainBlocked", message)
                return ctx.settings.drain_poll_interval
            try:
                await ctx.client.delete(R.NODES, node_name)
                ctx.recorder.event(machine, "Normal", "NodeDeleted", f"Deleted node {node_name}")
            except errors.NotFound:
                pass
            ctx.nodes.nodes.pop(str(status.get("providerID") or ""), None)
        if await self._terminate_instances(machine):
            return ctx.settings.instance_poll_interval
        await self._delete_token(machine)
        await self._delete_rbac(name)
        finalizers = [f for f in meta.get("finalizers") or [] if f != FINALIZER]
        patch = {"metadata": {"finalizers": finalizers, "resourceVersion": meta.get("resourceVersion")}}
        with contextlib.suppress(errors.NotFound):
            await ctx.client.patch(MACHINES, name, patch)
        ctx.nodes.machines.pop(str(status.get("providerID") or ""), None)
        ctx.enqueue_pool(str((machine.get("spec") or {}).get("nodePool") or ""))
        return None

    async def _terminate_instances(self, machine: Mapping[str, Any]) -> bool:
        """Terminate the Machine's instance (by recorded id and by name, for a crash between
        launching and recording it); True while one is still not terminated."""
        ctx = self.ctx
        name = str(_meta(machine).get("name"))
        recorded = str((machine.get("status") or {}).get("instanceID") or "")
        live = [
            i
            for i in await ctx.instances.list_instances(ctx.settings.cluster_id)
            if i.id == recorded or (i.name == name and instance_owner_name(i) == name)
        ]
        for instance in live:
            if instance.state not in (InstanceState.SHUTTING_DOWN, InstanceState.TERMINATED):
                await ctx.instances.delete_instance(ctx.settings.cluster_id, instance.id)
                ctx.recorder.event(
                    machine, "Normal", "InstanceDeleted", f"Terminating instance {instance.id}"
                )
        return any(i.state != InstanceState.TERMINATED for i in live)

    async def _delete_token(self, machine: Mapping[str, Any]) -> None:
        token_id = str((_meta(machine).get("annotations") or {}).get(TOKEN_ANNOTATION) or "")
        if not token_id:
            return
        with contextlib.suppress(errors.NotFound):
            await self.ctx.client.delete(R.SECRETS, token_secret_name(token_id), TOKEN_NAMESPACE)

    async def _delete_rbac(self, name: str) -> None:
        for path in (CLUSTER_ROLE_BINDINGS, CLUSTER_ROLES):
            with contextlib.suppress(errors.NotFound):
                await self.ctx.client.delete(path, rbac_name(name))
