"""The aws cloud in the contract suite: moto in process, a VPC laid out for the cluster, no
rate-limit wait, no instance cache (the tests change instances out of band)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from providers.aws.shapes import provider_id
from providers.model import InstanceSpec, LoadBalancerService, Owner
from providers.tags import default_load_balancer_name
from tests.unit.providers.aws.moto_env import AwsEnv, aws_env
from tests.unit.providers.contract.harness import ContractCloud, LoadBalancerView, contract_provider


class AwsHelpers:
    def __init__(self, env: AwsEnv) -> None:
        self.env = env

    def instance_spec(self, name: str, owner: Owner, *, zone: str = "") -> InstanceSpec:
        return InstanceSpec(name=name, owner=owner, instance_type="t3.micro", image=self.env.image, zone=zone)

    def unknown_provider_id(self) -> str:
        return provider_id("us-east-1a", self.unknown_instance_id())

    def unknown_instance_id(self) -> str:
        return "i-0000000000000dead"

    async def stop_instance(self, instance_id: str) -> None:
        await asyncio.to_thread(self.env.ec2.stop_instances, InstanceIds=[instance_id])

    async def add_route_table(self, cluster_id: str) -> str:
        return await asyncio.to_thread(self.env.add_route_table, cluster_id)

    async def load_balancer_view(
        self, cluster_id: str, service: LoadBalancerService
    ) -> LoadBalancerView | None:
        return await asyncio.to_thread(self._view, cluster_id, service)

    def _view(self, cluster_id: str, service: LoadBalancerService) -> LoadBalancerView | None:
        name = default_load_balancer_name(service.uid)
        elbv2, elb = self.env.clients.elbv2, self.env.clients.elb
        try:
            lb = elbv2.describe_load_balancers(Names=[name])["LoadBalancers"][0]
        except elbv2.exceptions.LoadBalancerNotFoundException:
            lb = None
        if lb is not None:
            listeners: set[tuple[str, int, int]] = set()
            targets: dict[tuple[str, int], frozenset[str]] = {}
            health: set[int] = set()
            for li in elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]:
                tg_arn = li["DefaultActions"][0]["TargetGroupArn"]
                tg = elbv2.describe_target_groups(TargetGroupArns=[tg_arn])["TargetGroups"][0]
                listeners.add((li["Protocol"], li["Port"], tg["Port"]))
                found = elbv2.describe_target_health(TargetGroupArn=tg_arn)["TargetHealthDescriptions"]
                targets[(li["Protocol"], li["Port"])] = frozenset(d["Target"]["Id"] for d in found)
                port = tg["HealthCheckPort"]
                health.add(tg["Port"] if port == "traffic-port" else int(port))
            return LoadBalancerView(frozenset(listeners), targets, frozenset(health))
        try:
            classic = elb.describe_load_balancers(LoadBalancerNames=[name])["LoadBalancerDescriptions"][0]
        except elb.exceptions.AccessPointNotFoundException:
            return None
        ids = frozenset(i["InstanceId"] for i in classic.get("Instances", []))
        listeners = set()
        targets = {}
        for desc in classic["ListenerDescriptions"]:
            cl = desc["Listener"]
            listeners.add((cl["Protocol"], cl["LoadBalancerPort"], cl["InstancePort"]))
            targets[(cl["Protocol"], cl["LoadBalancerPort"])] = ids
        hc_port = int(classic["HealthCheck"]["Target"].split(":", 1)[1].split("/", 1)[0])
        return LoadBalancerView(frozenset(listeners), targets, frozenset({hc_port}))


@contract_provider("aws")
@asynccontextmanager
async def aws() -> AsyncIterator[ContractCloud]:
    with aws_env() as env:
        yield ContractCloud(env.provider(), env.config, AwsHelpers(env))
