"""Routes: one route per node pod CIDR in every route table of the cluster.

Upstream cloud-provider-aws manages a single route table and fails when it finds several;
here every table tagged `kubernetes.io/cluster/<id>` (or the configured `routeTableIDs`) gets
every route, so multi-AZ VPCs with one table per subnet work. `list_routes` lists each table's
routes to instances (with `route_table` set), so a table that lacks a node's route shows; a
`create_route` fills every table (CreateRoute, or ReplaceRoute where the CIDR points to another
instance or to one that is gone); `delete_route` removes the route from its own table, or from
every table when the route names none. The target node is named by the instance's private DNS
name, as upstream (the name a kubelet on EC2 registers with).

Before the first route to an instance its source/destination check is turned off (it forwards
pod traffic not addressed to it). A full table is reported as RouteLimitExceeded with a message
that says what to do.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
from collections.abc import Mapping
from typing import Any

from providers.config import CloudConfig
from providers.errors import InvalidConfiguration, NotFound, QuotaExceeded, RouteLimitExceeded
from providers.model import Route

from .describe import BY_ID, BY_PRIVATE_DNS, InstanceLookup
from .session import AwsClients
from .shapes import instance_zone, parse_provider_id, provider_id

__all__ = ["AwsRoutes"]

log = logging.getLogger(__name__)

_LIMIT_HELP = (
    "route table {table} is full: AWS allows 50 routes per route table by default (the "
    "'Routes per route table' quota, at most 1000); raise the quota, use fewer nodes per VPC "
    "route table, or use an overlay network (VXLAN) instead of VPC routes"
)


def _check_cidr(cidr: str) -> None:
    try:
        ipaddress.ip_network(cidr, strict=True)
    except ValueError:
        raise InvalidConfiguration(f"invalid pod CIDR {cidr!r}", code="InvalidCIDR") from None


def _target(route: Mapping[str, Any]) -> str:
    """The instance a route points to ("" for routes to gateways etc.)."""
    return str(route.get("InstanceId", ""))


class AwsRoutes:
    def __init__(self, clients: AwsClients, config: CloudConfig, lookup: InstanceLookup) -> None:
        self._c = clients
        self._config = config
        self._lookup = lookup

    async def route_tables(self, cluster_id: str) -> list[dict[str, Any]]:
        ec2 = self._c.ec2
        if self._config.route_table_ids:
            reply = await self._c.caller.call(
                ec2.describe_route_tables, RouteTableIds=list(self._config.route_table_ids)
            )
            tables: list[Mapping[str, Any]] = list(reply.get("RouteTables", []))
        else:
            filters: list[dict[str, Any]] = [
                {"Name": "tag-key", "Values": [f"kubernetes.io/cluster/{cluster_id}"]}
            ]
            if self._config.vpc_id:
                filters.append({"Name": "vpc-id", "Values": [self._config.vpc_id]})
            tables = []
            token: str | None = None
            while True:
                kwargs: dict[str, Any] = {"Filters": filters}
                if token:
                    kwargs["NextToken"] = token
                reply = await self._c.caller.call(ec2.describe_route_tables, **kwargs)
                tables.extend(reply.get("RouteTables", []))
                token = reply.get("NextToken")
                if not token:
                    break
        if not tables:
            raise InvalidConfiguration(
                f"no route table for cluster {cluster_id}: tag the VPC's route tables "
                f"kubernetes.io/cluster/{cluster_id}=owned (or shared) or set routeTableIDs in the cloud config"
            )
        return sorted((dict(t) for t in tables), key=lambda t: str(t["RouteTableId"]))

    async def _names(self, instance_ids: set[str]) -> dict[str, tuple[str, str]]:
        """instance id -> (node name, providerID) of the instances that still run; the node name is
        the private DNS name, as upstream. A route to any other is as good as a blackhole (moto
        never marks one)."""
        found = await self._lookup.get_many(BY_ID, instance_ids)
        out: dict[str, tuple[str, str]] = {}
        for iid, inst in found.items():
            if inst is not None and (inst.get("State") or {}).get("Name") not in {
                "terminated",
                "shutting-down",
            }:
                out[iid] = (str(inst.get("PrivateDnsName", "")), provider_id(instance_zone(inst), iid))
        return out

    async def list_routes(self, cluster_id: str) -> list[Route]:
        tables = await self.route_tables(cluster_id)
        ids = {_target(r) for t in tables for r in t.get("Routes", []) if _target(r)}
        names = await self._names(ids)
        routes: list[Route] = []
        for table in tables:
            table_id = str(table["RouteTableId"])
            for r in table.get("Routes", []):
                cidr = r.get("DestinationCidrBlock")
                iid = _target(r)
                blackhole = r.get("State") == "blackhole"
                if not cidr or not (iid or blackhole):
                    continue
                if not iid and (r.get("GatewayId") or r.get("NatGatewayId") or r.get("TransitGatewayId")):
                    continue
                node, pid = names.get(iid, ("", f"aws:////{iid}" if iid else ""))
                routes.append(
                    Route(
                        destination_cidr=str(cidr),
                        target_node=node,
                        target_provider_id=pid,
                        name=f"{cluster_id}-{cidr}",
                        blackhole=blackhole or iid not in names,
                        route_table=table_id,
                    )
                )
        return routes

    async def _instance_for(self, route: Route) -> Mapping[str, Any]:
        if route.target_provider_id:
            _, iid = parse_provider_id(route.target_provider_id)
            inst = await self._lookup.get(BY_ID, iid)
        elif route.target_node:
            inst = await self._lookup.get(BY_PRIVATE_DNS, route.target_node)
        else:
            raise InvalidConfiguration(f"route {route.destination_cidr} has no target node")
        if inst is None or (inst.get("State") or {}).get("Name") in {"terminated", "shutting-down"}:
            raise NotFound(
                f"no live instance for node {route.target_node or route.target_provider_id}; "
                f"cannot route {route.destination_cidr}"
            )
        return inst

    async def create_route(self, cluster_id: str, name_hint: str, route: Route) -> None:
        _check_cidr(route.destination_cidr)
        inst = await self._instance_for(route)
        iid = str(inst["InstanceId"])
        ec2 = self._c.ec2
        if inst.get("SourceDestCheck", True):
            await self._c.caller.call(
                ec2.modify_instance_attribute, InstanceId=iid, SourceDestCheck={"Value": False}
            )
            self._lookup.invalidate(iid)
        cidr = route.destination_cidr
        for table in await self.route_tables(cluster_id):
            table_id = str(table["RouteTableId"])
            existing = next(
                (r for r in table.get("Routes", []) if r.get("DestinationCidrBlock") == cidr), None
            )
            try:
                if existing is None:
                    await self._c.caller.call(
                        ec2.create_route, RouteTableId=table_id, DestinationCidrBlock=cidr, InstanceId=iid
                    )
                elif _target(existing) != iid or existing.get("State") == "blackhole":
                    if not _target(existing) and existing.get("State") != "blackhole":
                        raise InvalidConfiguration(
                            f"route table {table_id} already routes {cidr} to something that is not an instance"
                        )
                    log.info("replacing route %s in %s: %s -> %s", cidr, table_id, _target(existing), iid)
                    await self._c.caller.call(
                        ec2.replace_route, RouteTableId=table_id, DestinationCidrBlock=cidr, InstanceId=iid
                    )
            except QuotaExceeded as exc:
                if isinstance(exc, RouteLimitExceeded) or exc.code == "RouteLimitExceeded":
                    raise RouteLimitExceeded(_LIMIT_HELP.format(table=table_id), code=exc.code) from exc
                raise
            except InvalidConfiguration as exc:
                if exc.code != "RouteAlreadyExists":  # a concurrent create got there first
                    raise

    async def delete_route(self, cluster_id: str, route: Route) -> None:
        target = ""
        if route.target_provider_id:
            target = parse_provider_id(route.target_provider_id)[1]
        try:
            _check_cidr(route.destination_cidr)
        except InvalidConfiguration:
            return  # no route has a malformed destination
        for table in await self.route_tables(cluster_id):
            table_id = str(table["RouteTableId"])
            if route.route_table and route.route_table != table_id:
                continue
            for r in table.get("Routes", []):
                if r.get("DestinationCidrBlock") != route.destination_cidr:
                    continue
                if not _target(r) and r.get("State") != "blackhole":
                    continue  # never delete a route to a gateway, it is not ours
                if target and _target(r) and _target(r) != target and r.get("State") != "blackhole":
                    continue  # the CIDR now points to another node: leave it
                with contextlib.suppress(NotFound):
                    await self._c.caller.call(
                        self._c.ec2.delete_route,
                        RouteTableId=table_id,
                        DestinationCidrBlock=route.destination_cidr,
                    )
