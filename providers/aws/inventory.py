"""Inventory: everything the cluster owns in AWS, for the garbage sweep, and a way to delete any
of it. Kinds: instance, load-balancer (NLB, id = ARN), target-group (ARN), classic-load-balancer
(id = name), security-group, route (id = `<route table>|<cidr>`).

Only resources tagged `kubernetes.io/cluster/<id>=owned` are listed and deleted. Routes carry
no tags: those in the cluster's route tables that point to an instance owned by the cluster
(or to nothing any more, a blackhole) are listed, with the instance's owner.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from providers.config import CloudConfig
from providers.errors import InvalidConfiguration, NotFound, NotSupported
from providers.model import CloudResource
from providers.tags import cluster_tag_key, is_owned, owner_from_tags

from .describe import BY_ID, InstanceLookup
from .instances import AwsInstances
from .routes import AwsRoutes
from .security_groups import SecurityGroups
from .session import AwsClients
from .shapes import chunks, tags_of

__all__ = ["KINDS", "AwsInventory"]

KINDS = ("instance", "load-balancer", "target-group", "classic-load-balancer", "security-group", "route")


class AwsInventory:
    def __init__(
        self,
        clients: AwsClients,
        config: CloudConfig,
        lookup: InstanceLookup,
        instances: AwsInstances,
        routes: AwsRoutes,
        groups: SecurityGroups,
    ) -> None:
        self._c = clients
        self._config = config
        self._lookup = lookup
        self._instances = instances
        self._routes = routes
        self._groups = groups

    async def list_owned(self, cluster_id: str) -> list[CloudResource]:
        out: list[CloudResource] = []
        for inst in await self._instances.list_instances(cluster_id):
            out.append(CloudResource("instance", inst.id, inst.name, inst.tags, inst.owner))
        out += await self._elbv2_owned(cluster_id)
        out += await self._classic_owned(cluster_id)
        for group in await self._groups.find(
            [{"Name": f"tag:{cluster_tag_key(cluster_id)}", "Values": ["owned"]}]
        ):
            tags = tags_of(group)
            out.append(
                CloudResource(
                    "security-group",
                    str(group["GroupId"]),
                    str(group.get("GroupName", "")),
                    tags,
                    owner_from_tags(tags),
                )
            )
        out += await self._routes_owned(cluster_id)
        return out

    async def _paged(self, fn: Any, key: str, **kwargs: Any) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        marker: str | None = None
        while True:
            args = dict(kwargs)
            if marker:
                args["Marker"] = marker
            try:
                reply = await self._c.caller.call(fn, **args)
            except NotFound:
                return out
            out.extend(reply.get(key, []))
            marker = reply.get("NextMarker")
            if not marker:
                return out

    async def _elbv2_owned(self, cluster_id: str) -> list[CloudResource]:
        elbv2 = self._c.elbv2
        lbs = await self._paged(elbv2.describe_load_balancers, "LoadBalancers")
        tgs = await self._paged(elbv2.describe_target_groups, "TargetGroups")
        names = {str(lb["LoadBalancerArn"]): ("load-balancer", str(lb["LoadBalancerName"])) for lb in lbs}
        names |= {str(tg["TargetGroupArn"]): ("target-group", str(tg["TargetGroupName"])) for tg in tgs}
        out = []
        for chunk in chunks(names, 20):
            reply = await self._c.caller.call(elbv2.describe_tags, ResourceArns=chunk)
            for desc in reply.get("TagDescriptions", []):
                tags = tags_of(desc)
                arn = str(desc["ResourceArn"])
                if is_owned(tags, cluster_id):
                    kind, name = names[arn]
                    out.append(CloudResource(kind, arn, name, tags, owner_from_tags(tags)))
        return out

    async def _classic_owned(self, cluster_id: str) -> list[CloudResource]:
        lbs = await self._paged(self._c.elb.describe_load_balancers, "LoadBalancerDescriptions")
        out = []
        for chunk in chunks([str(lb["LoadBalancerName"]) for lb in lbs], 20):
            reply = await self._c.caller.call(self._c.elb.describe_tags, LoadBalancerNames=chunk)
            for desc in reply.get("TagDescriptions", []):
                tags = tags_of(desc)
                if is_owned(tags, cluster_id):
                    name = str(desc["LoadBalancerName"])
                    out.append(
                        CloudResource("classic-load-balancer", name, name, tags, owner_from_tags(tags))
                    )
        return out

    async def _routes_owned(self, cluster_id: str) -> list[CloudResource]:
        try:
            tables = await self._routes.route_tables(cluster_id)
        except InvalidConfiguration:
            return []  # no route tables: no routes
        ids = {str(r["InstanceId"]) for t in tables for r in t.get("Routes", []) if r.get("InstanceId")}
        found = await self._lookup.get_many(BY_ID, ids)
        out = []
        for table in tables:
            for r in table.get("Routes", []):
                cidr = r.get("DestinationCidrBlock")
                iid = r.get("InstanceId")
                if not cidr or not iid:
                    continue
                inst = found.get(str(iid))
                # Only routes to instances the cluster owns are provably ours; the route
                # controller deletes routes to vanished instances (blackholes) itself.
                tags = tags_of(inst) if inst is not None else {}
                if not is_owned(tags, cluster_id):
                    continue
                out.append(
                    CloudResource(
                        "route",
                        f"{table['RouteTableId']}|{cidr}",
                        str(cidr),
                        {**tags, "instance-id": str(iid)},
                        owner_from_tags(tags),
                    )
                )
        return out

    async def delete_resource(self, cluster_id: str, resource: CloudResource) -> None:
        kind, rid = resource.kind, resource.id
        try:
            if kind == "instance":
                await self._instances.delete_instance(cluster_id, rid)
            elif kind in {"load-balancer", "target-group"}:
                await self._delete_elbv2(cluster_id, kind, rid)
            elif kind == "classic-load-balancer":
                reply = await self._c.caller.call(self._c.elb.describe_tags, LoadBalancerNames=[rid])
                descs = reply.get("TagDescriptions", [])
                if descs and is_owned(tags_of(descs[0]), cluster_id):
                    await self._c.caller.call(self._c.elb.delete_load_balancer, LoadBalancerName=rid)
            elif kind == "security-group":
                groups = await self._groups.describe([rid])
                if rid in groups and is_owned(tags_of(groups[rid]), cluster_id):
                    await self._c.caller.call(self._c.ec2.delete_security_group, GroupId=rid)
            elif kind == "route":
                table, _, cidr = rid.partition("|")
                try:
                    ipaddress.ip_network(cidr)
                except ValueError:
                    return  # names no route
                if table not in {str(t["RouteTableId"]) for t in await self._routes.route_tables(cluster_id)}:
                    return
                await self._c.caller.call(
                    self._c.ec2.delete_route, RouteTableId=table, DestinationCidrBlock=cidr
                )
            else:
                raise NotSupported(f"aws inventory: unknown resource kind {kind!r}")
        except NotFound:
            pass

    async def _delete_elbv2(self, cluster_id: str, kind: str, arn: str) -> None:
        elbv2 = self._c.elbv2
        reply = await self._c.caller.call(elbv2.describe_tags, ResourceArns=[arn])
        descs = reply.get("TagDescriptions", [])
        if not descs or not is_owned(tags_of(descs[0]), cluster_id):
            return
        if kind == "load-balancer":
            # Listeners go with their load balancer; their target groups are listed on their own.
            await self._c.caller.call(elbv2.delete_load_balancer, LoadBalancerArn=arn)
        else:
            await self._c.caller.call(elbv2.delete_target_group, TargetGroupArn=arn)
