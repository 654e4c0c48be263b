"""`pinnace down`: take a cluster made by `pinnace up` out of its cloud.

With the control plane running, LoadBalancer Services are deleted (so the CCM removes their
load balancers and it does not recreate them after the sweep) and every NodePool is deleted
(the operator drains and terminates each Machine's instance); then whatever the cloud still
holds tagged `kubernetes.io/cluster/<id>=owned` is deleted through the provider's inventory, as
`kops delete cluster` sweeps by tag, and the inventory is listed once more to verify nothing
is left. The data directory (CA, state) stays: `pinnace up` on it starts the cluster again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import aiohttp

from controlplane.api import errors
from controlplane.client import Client, ResourcePath, load_kubeconfig
from controlplane.up.compose import MACHINES, NODEPOOLS
from controlplane.up.preflight import PreflightError
from controlplane.up.record import ClusterRecord, cloud_config_path
from providers.capabilities import Inventory
from providers.errors import RETRYABLE, CloudError, NotFound
from providers.model import CloudResource

__all__ = ["SweepResult", "down", "drain_cluster", "server_reachable", "sweep"]

log = logging.getLogger("pinnace.down")

SERVICES = ResourcePath("", "v1", "services")
USER_AGENT = "pinnace-down/v1.33.0"
# Deleted first what holds others: load balancers hold target groups and security groups,
# instances hold routes and security groups.
_ORDER = ("load-balancer", "classic-load-balancer", "target-group", "instance", "route", "security-group")


def _rank(resource: CloudResource) -> int:
    return _ORDER.index(resource.kind) if resource.kind in _ORDER else len(_ORDER)


@dataclass
class SweepResult:
    deleted: list[CloudResource] = field(default_factory=list)
    leftovers: list[CloudResource] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # resource id -> last error


async def sweep(
    inventory: Inventory,
    cluster_id: str,
    *,
    timeout: float,
    interval: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
) -> SweepResult:
    """Delete everything `list_owned` shows until it shows nothing (or `timeout`); busy resources
    (a security group still attached, a load balancer being deleted) are retried each round."""
    result = SweepResult()
    deadline = clock() + timeout
    while True:
        owned = sorted(await inventory.list_owned(cluster_id), key=_rank)
        if not owned:
            result.leftovers = []
            return result
        if clock() > deadline:
            result.leftovers = owned
            return result
        done = {(r.kind, r.id) for r in result.deleted}
        for resource in owned:
            try:
                await inventory.delete_resource(cluster_id, resource)
            except NotFound:
                pass
            except RETRYABLE as exc:
                result.errors[resource.id] = str(exc)
                continue
            except CloudError as exc:
                result.errors[resource.id] = str(exc)
                log.warning("deleting %s %s: %s", resource.kind, resource.id, exc)
                continue
            if (resource.kind, resource.id) not in done:
                result.deleted.append(resource)
                done.add((resource.kind, resource.id))
        await asyncio.sleep(interval)


async def server_reachable(kubeconfig: Path, *, timeout: float = 5.0) -> bool:
    if not await asyncio.to_thread(kubeconfig.exists):
        return False
    try:
        async with Client(load_kubeconfig(kubeconfig), user_agent=USER_AGENT, max_retries=0) as client:
            await asyncio.wait_for(client.request("GET", "/version"), timeout)
    except (aiohttp.ClientError, OSError, TimeoutError, errors.StatusError) as exc:
        log.info("API server not reachable: %s", exc)
        return False
    return True


def _is_load_balancer(service: dict[str, Any]) -> bool:
    return (service.get("spec", {}) or {}).get("type") == "LoadBalancer"


async def drain_cluster(client: Client, say: Callable[[str], None], *, timeout: float) -> list[str]:
    """Delete LoadBalancer Services and NodePools, and wait until their Machines and Services are
    gone; returns what is still there at the timeout."""
    services = [s for s in (await client.list(SERVICES)).get("items", []) if _is_load_balancer(s)]
    for svc in services:
        meta = svc["metadata"]
        say(f"deleting Service {meta['namespace']}/{meta['name']} (type LoadBalancer)")
        with contextlib.suppress(errors.NotFound):
            await client.delete(SERVICES, meta["name"], meta["namespace"])
    pools = (await client.list(NODEPOOLS)).get("items", [])
    for pool in pools:
        name = pool["metadata"]["name"]
        say(f"deleting NodePool {name} ({(pool.get('spec') or {}).get('replicas', 0)} replicas)")
        with contextlib.suppress(errors.NotFound):
            await client.delete(NODEPOOLS, name)
    deadline = time.monotonic() + timeout
    reported = -1
    while True:
        machines = [m["metadata"]["name"] for m in (await client.list(MACHINES)).get("items", [])]
        left_services = [
            f"service {s['metadata']['namespace']}/{s['metadata']['name']}"
            for s in (await client.list(SERVICES)).get("items", [])
            if _is_load_balancer(s)
        ]
        remaining = [f"machine {m}" for m in machines] + left_services
        if not remaining:
            return []
        if len(remaining) != reported:
            say(f"waiting for {len(machines)} machine(s) and {len(left_services)} load balancer service(s)")
            reported = len(remaining)
        if time.monotonic() > deadline:
            return remaining
        await asyncio.sleep(1.0)


def describe(resource: CloudResource) -> str:
    name = f" ({resource.name})" if resource.name and resource.name != resource.id else ""
    return f"{resource.kind} {resource.id}{name}"


async def down(
    data_dir: Path,
    record: ClusterRecord,
    *,
    force: bool,
    timeout: float,
    out: TextIO,
    sweep_interval: float = 1.0,
) -> int:
    def say(text: str) -> None:
        out.write(text + "\n")
        out.flush()

    kubeconfig = data_dir / "admin.kubeconfig"
    if await server_reachable(kubeconfig):
        async with Client(load_kubeconfig(kubeconfig), user_agent=USER_AGENT) as client:
            stuck = await drain_cluster(client, say, timeout=timeout)
        if stuck:
            say(f"warning: still there after {timeout:.0f}s: {', '.join(stuck)}; sweeping the cloud anyway")
        else:
            say("all node pools and their machines are gone")
    elif not force:
        raise PreflightError(
            f"the cluster's API server (kubeconfig {kubeconfig}) is not reachable, so its node pools "
            "cannot be drained.\n"
            f"  Start it with `pinnace up --data-dir {data_dir} --no-wait` (in another terminal) and run "
            "`pinnace down` again,\n  or pass --force to delete its cloud resources without draining."
        )
    else:
        say("the API server is not running (--force): deleting the cloud resources directly")

    from ccm.manager import open_provider

    provider, config = open_provider(
        record.provider, cloud_config_path(data_dir), cluster_name=record.cluster_name, data_dir=data_dir
    )
    inventory = provider.require(provider.inventory, "an inventory of the cluster's resources")
    result = await sweep(inventory, config.cluster_id, timeout=timeout, interval=sweep_interval)
    for resource in result.deleted:
        say(f"deleted {describe(resource)}")
    leftovers = await inventory.list_owned(config.cluster_id)
    tag = f"kubernetes.io/cluster/{config.cluster_id}=owned"
    if leftovers:
        say(f"error: {len(leftovers)} resource(s) tagged {tag} remain:")
        for resource in leftovers:
            why = result.errors.get(resource.id)
            say(f"  {describe(resource)}" + (f": {why}" if why else ""))
        say("Run `pinnace down` again, or delete them in the cloud console.")
        return 1
    say(
        f"Deleted {len(result.deleted)} resource(s); nothing tagged {tag} is left in the {record.provider} cloud."
    )
    return 0
