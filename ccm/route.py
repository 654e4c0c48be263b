"""Route controller (k8s.io/cloud-provider controllers/route): one cloud route per Node pod CIDR,
next hop the Node's instance, in every route table of the cluster (the provider keeps them all).

Each pass (every `RouteReconciliationPeriod`, 10 s, and on Node changes that matter: pod CIDRs,
providerID, addresses, arrival or departure) lists the cluster's routes; deletes ours that are
blackholes or no longer match a Node's pod CIDR and instance (only inside `--cluster-cidr`: a
route outside it is someone else's); creates the missing ones; then sets each Node's
`NetworkUnavailable` condition: False/RouteCreated, or True/NoRouteCreated with the reason.
A full route table (`RouteLimitExceeded`: 50 routes on AWS by default) says so in the condition
and in a Warning Event on the Node, rather than only in the CCM's log.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any

from ccm.base import CloudController
from ccm.nodeutil import condition, node_addresses, pod_cidrs, provider_id
from ccm.settings import CloudSettings, cloud_settings
from controlplane.api import errors
from controlplane.controllers.cidrset import parse_cidrs
from controlplane.controllers.runtime import R, rfc3339
from providers.capabilities import Routes
from providers.errors import CloudError, RouteLimitExceeded
from providers.model import Route

__all__ = ["ROUTES_KEY", "RouteController", "plan_routes"]

Obj = Mapping[str, Any]
ROUTES_KEY = "routes"
MAX_CONCURRENT_ROUTE_OPERATIONS = 200  # upstream maxConcurrentRouteOperations
STRATEGIC = "application/strategic-merge-patch+json"


def _networks(cluster_cidr: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return list(parse_cidrs(cluster_cidr)) if cluster_cidr else []


def responsible_for(route: Route, cluster: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    """Upstream isResponsibleForRoute: the route's first or last address is inside a cluster CIDR."""
    try:
        cidr = ipaddress.ip_network(route.destination_cidr, strict=False)
    except ValueError:
        return False
    return any(
        c.version == cidr.version and (cidr.network_address in c or cidr.broadcast_address in c)
        for c in cluster
    )


def plan_routes(
    nodes: Sequence[Obj],
    routes: Sequence[Route],
    cluster: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network],
) -> tuple[list[Route], list[tuple[Obj, Route]]]:
    """(routes to delete, (node, route) pairs to create) for the Nodes that want routes.

    A pod CIDR is kept when a route to the Node's current instance exists in every route table
    the listing shows; a route is deleted when it is ours to judge and is a blackhole, targets no
    Node we route to, a CIDR the Node no longer has, or an instance the Node no longer is.
    """
    wanted: dict[tuple[str, str], str] = {}
    by_instance: dict[str, str] = {}
    for node in nodes:
        if provider_id(node):
            by_instance[provider_id(node)] = node["metadata"]["name"]
        for cidr in pod_cidrs(node):
            wanted[(node["metadata"]["name"], cidr)] = provider_id(node)
    tables = {r.route_table for r in routes if r.route_table}
    present: dict[tuple[str, str], set[str]] = {}
    delete: list[Route] = []
    for route in routes:
        # The route's next hop is an instance: the Node that is that instance owns it, whatever
        # name the cloud gives it (AWS answers the private DNS name, which a Node registered
        # under another name does not have; matching by name only would churn its routes).
        owner = by_instance.get(route.target_provider_id, route.target_node)
        key = (owner, route.destination_cidr)
        target = wanted.get(key)
        stale = (
            route.blackhole
            or target is None
            or (bool(route.target_provider_id) and route.target_provider_id != target)
        )
        if stale:
            if responsible_for(route, cluster):
                delete.append(route)
            continue
        present.setdefault(key, set()).add(route.route_table)
    create: list[tuple[Obj, Route]] = []
    for node in nodes:
        name = node["metadata"]["name"]
        for cidr in pod_cidrs(node):
            have = present.get((name, cidr))
            if have is not None and (not tables or tables <= have):
                continue
            create.append(
                (node, Route(destination_cidr=cidr, target_node=name, target_provider_id=provider_id(node)))
            )
    return delete, create


def _route_relevant(event: str, old: Obj | None, new: Obj | None) -> bool:
    # A departure carries the last known object as both old and new: it always matters.
    if event != "MODIFIED" or old is None or new is None:
        return True
    return (
        pod_cidrs(old) != pod_cidrs(new)
        or provider_id(old) != provider_id(new)
        or node_addresses(old) != node_addresses(new)
    )


class RouteController(CloudController):
    name = "route"
    event_source = "route_controller"
    workers = 1  # one pass at a time over every Node

    def setup(self) -> None:
        self.settings: CloudSettings = cloud_settings(self.ctx)
        self.routes: Routes = self.settings.provider.require(self.settings.provider.routes, "routes")
        self.cluster = _networks(self.settings.cluster_cidr)
        if not self.cluster:
            raise ValueError("the route controller needs --cluster-cidr")
        self.nodes = self.ctx.informers.informer(R.NODES)
        self.nodes.add_handler(
            lambda event, old, new: self.enqueue(ROUTES_KEY) if _route_relevant(event, old, new) else None
        )

    async def run_extra(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.enqueue(ROUTES_KEY)
            await self.sleep_or_stop(stop, self.settings.route_reconciliation_period)

    def _ours(self) -> list[Obj]:
        return [
            n for n in self.nodes.list() if pod_cidrs(n) and self.settings.owns_provider_id(provider_id(n))
        ]

    async def reconcile(self, key: str) -> float | None:
        cluster_id = self.settings.cluster_id
        listed = await self.routes.list_routes(cluster_id)
        nodes = self._ours()
        delete, create = plan_routes(nodes, listed, self.cluster)
        limit = asyncio.Semaphore(MAX_CONCURRENT_ROUTE_OPERATIONS)

        async def remove(route: Route) -> None:
            async with limit:
                try:
                    await self.routes.delete_route(cluster_id, route)
                    self.log.info("Deleted route %s %s", route.name, route.destination_cidr)
                except CloudError as exc:
                    self.log.warning(
                        "Could not delete route %s %s: %s", route.name, route.destination_cidr, exc
                    )

        failures: dict[str, str] = {}

        async def add(node: Obj, route: Route) -> None:
            name = node["metadata"]["name"]
            hint = str(node["metadata"].get("uid") or name)
            async with limit:
                try:
                    await self.routes.create_route(cluster_id, hint, route)
                    self.log.info(
                        "Created route for node %s %s with hint %s", name, route.destination_cidr, hint
                    )
                except CloudError as exc:
                    message = f"Could not create route {hint} {route.destination_cidr} for node {name}: {exc}"
                    if isinstance(exc, RouteLimitExceeded):
                        message += " (the route table is full: raise its route limit or use fewer nodes)"
                    failures[name] = message
                    self.ctx.recorder.event(
                        {**node, "apiVersion": "v1", "kind": "Node"},
                        "Warning",
                        "FailedToCreateRoute",
                        message,
                    )

        # Deletions first: a route being replaced must be gone before its successor is made.
        await asyncio.gather(*(remove(r) for r in delete))
        await asyncio.gather(*(add(n, r) for n, r in create))
        await asyncio.gather(*(self._set_condition(n, failures.get(n["metadata"]["name"])) for n in nodes))
        return None

    async def _set_condition(self, node: Obj, failure: str | None) -> None:
        """Upstream updateNetworkingCondition, through a strategic merge patch keyed by type."""
        created = failure is None
        status = "False" if created else "True"
        reason = "RouteCreated" if created else "NoRouteCreated"
        message = (
            "RouteController created a route"
            if created
            else f"RouteController failed to create a route: {failure}"
        )
        current = condition(node, "NetworkUnavailable")
        if (
            current is not None
            and current.get("status") == status
            and current.get("reason") == reason
            and (created or current.get("message") == message)
        ):
            return
        now = rfc3339(self.ctx.clock.now())
        transition = (
            current.get("lastTransitionTime", now)
            if current is not None and current.get("status") == status
            else now
        )
        cond = {
            "type": "NetworkUnavailable",
            "status": status,
            "reason": reason,
            "message": message,
            "lastTransitionTime": transition,
            "lastHeartbeatTime": now,
        }
        try:
            await self.ctx.client.patch(
                R.NODES,
                node["metadata"]["name"],
                {"status": {"conditions": [cond]}},
                subresource="status",
                patch_type=STRATEGIC,
            )
        except errors.NotFound:
            pass
        except errors.StatusError as exc:
            self.log.error("Error updating node %s: %s", node["metadata"]["name"], exc)  # noqa: TRY400
