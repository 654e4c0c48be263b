"""Pod-CIDR routes in the local cloud's route tables (the `Routes` capability).

Like cloud-provider-aws, but in every route table of the cluster, not just one: a route per
pod CIDR whose next hop is the node's instance, in each table (one call per table, so a route
table that is full fails alone, with `RouteLimitExceeded`); the instance's source/destination
check is turned off first, as EC2 needs for forwarded traffic. A route whose instance is gone is
listed as a blackhole, so the route controller deletes it. Routes carry the cluster and owner
(the Node) tags, so the garbage sweep finds them too.
"""

from __future__ import annotations

import ipaddress

from providers.errors import InvalidConfiguration, NotFound, RouteLimitExceeded
from providers.local.cloud import INSTANCE, ROUTE, ROUTE_TABLE, LocalCloud
from providers.local.nodes import find_instance
from providers.local.state import Record, Tx
from providers.model import InstanceState, NodeRef, Owner, Route
from providers.tags import is_owned, owner_tags

__all__ = ["LocalRoutes", "route_name"]


def route_name(cluster_id: str, destination_cidr: str) -> str:
    """cloud-provider-aws's name for a route: the cluster and the destination."""
    return f"{cluster_id}-{destination_cidr}"


def _route_id(table_id: str, destination_cidr: str) -> str:
    return f"{table_id}|{destination_cidr}"


def _cidr(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=True))
    except ValueError as exc:
        raise InvalidConfiguration(
            f"route destination {value!r} is not a CIDR: {exc}", code="InvalidParameterValue"
        ) from exc


class LocalRoutes:
    def __init__(self, cloud: LocalCloud) -> None:
        self._cloud = cloud

    async def _table_ids(self, cluster_id: str, only: str) -> list[str]:
        def run(tx: Tx) -> list[str]:
            tables = [t.id for t in self._cloud.route_tables(tx, cluster_id)]
            if only:
                if only not in tables:
                    raise NotFound(
                        f"route table {only!r} is not a route table of cluster {cluster_id!r}",
                        code="InvalidRouteTableID.NotFound",
                    )
                return [only]
            return tables

        return await self._cloud.call("DescribeRouteTables", run)

    async def list_routes(self, cluster_id: str) -> list[Route]:
        def run(tx: Tx) -> list[Route]:
            self._cloud.refresh(tx)
            tables = {t.id for t in self._cloud.route_tables(tx, cluster_id)}
            routes = []
            for record in tx.owned_by(ROUTE, cluster_id):
                if record.data["route_table"] not in tables:
                    continue
                instance = tx.get(INSTANCE, record.data["instance_id"])
                gone = instance is None or instance.data["state"] == InstanceState.TERMINATED
                routes.append(
                    Route(
                        destination_cidr=record.data["destination_cidr"],
                        target_node=record.data["target_node"],
                        target_provider_id=record.data["target_provider_id"],
                        name=record.name,
                        blackhole=gone,
                        route_table=record.data["route_table"],
                    )
                )
            return sorted(routes, key=lambda r: (r.route_table, r.destination_cidr))

        return await self._cloud.call("DescribeRouteTables", run)

    async def create_route(self, cluster_id: str, name_hint: str, route: Route) -> None:
        cidr = _cidr(route.destination_cidr)
        if not route.target_node and not route.target_provider_id:
            raise InvalidConfiguration(f"route to {cidr} has no target node", code="InvalidParameterValue")
        node = NodeRef(name=route.target_node, provider_id=route.target_provider_id)

        def disable_source_dest_check(tx: Tx) -> Record:
            instance = find_instance(tx, node, cluster_id)
            if instance is None or instance.data["state"] == InstanceState.TERMINATED:
                raise NotFound(
                    f"no instance for node {route.target_node!r} to route {cidr} to",
                    code="InvalidInstanceID.NotFound",
                )
            if instance.data.get("source_dest_check", True):
                instance = instance.with_data(source_dest_check=False)
                tx.put(instance)
            return instance

        instance = await self._cloud.call("ModifyInstanceAttribute", disable_source_dest_check)
        provider_id = f"local:///{instance.data['zone']}/{instance.id}"
        owner = Owner(kind="Node", name=route.target_node or instance.name, uid=name_hint)
        tables = await self._table_ids(cluster_id, route.route_table)
        if not tables:
            raise InvalidConfiguration(
                f"cluster {cluster_id!r} has no route table: tag one kubernetes.io/cluster/{cluster_id} "
                "or list it in routeTableIDs",
                code="NoRouteTable",
            )
        for table_id in tables:

            def put(tx: Tx, table_id: str = table_id) -> None:
                route_id = _route_id(table_id, cidr)
                existing = tx.get(ROUTE, route_id)
                if existing is not None and not is_owned(existing.tags, cluster_id):
                    raise InvalidConfiguration(
                        f"route table {table_id} already routes {cidr} for another cluster",
                        code="RouteAlreadyExists",
                    )
                if existing is None:
                    table = tx.get(ROUTE_TABLE, table_id)
                    limit = int(table.data.get("limit", self._cloud.settings.route_limit)) if table else 0
                    in_table = tx.where(ROUTE, "route_table", table_id)
                    if len(in_table) >= limit:
                        raise RouteLimitExceeded(
                            f"The maximum number of routes ({limit}) has been reached for route table "
                            f"{table_id}; cannot route {cidr} to node {owner.name}",
                            code="RouteLimitExceeded",
                        )
                elif (
                    existing.data["instance_id"] == instance.id and existing.data["target_node"] == owner.name
                ):
                    return  # already there: CreateRoute is idempotent for us
                # A new route, or ReplaceRoute: same destination, new next hop.
                tx.put(
                    Record(
                        kind=ROUTE,
                        id=route_id,
                        name=route_name(cluster_id, cidr),
                        tags={**self._cloud.settings.tags, **owner_tags(cluster_id, owner)},
                        data={
                            "route_table": table_id,
                            "destination_cidr": cidr,
                            "instance_id": instance.id,
                            "target_node": owner.name,
                            "target_provider_id": provider_id,
                        },
                    )
                )

            await self._cloud.call("CreateRoute", put)

    async def delete_route(self, cluster_id: str, route: Route) -> None:
        cidr = _cidr(route.destination_cidr)
        try:
            tables = await self._table_ids(cluster_id, route.route_table)
        except NotFound:
            return  # the table is gone, and its routes with it
        for table_id in tables:

            def delete(tx: Tx, table_id: str = table_id) -> None:
                existing = tx.get(ROUTE, _route_id(table_id, cidr))
                if existing is not None and is_owned(existing.tags, cluster_id):
                    tx.delete(ROUTE, existing.id)

            await self._cloud.call("DeleteRoute", delete)
