"""Done-when 3 of the cloud issue: chaos. A real `pinnace server --cloud-provider aws` against
moto's server, with throttling and 5xx errors injected into 20% of its AWS calls (the cloud
config's `aws.faultInjection`, a botocore before-call hook inside the server process).

20 EC2 instances register as Nodes while 50 LoadBalancer Services are created: every Node is
initialised and routed in both route tables, every Service gets an NLB whose target groups hold
all 20 instances. Then everything is deleted, and the cloud shows nothing tagged as owned by the
cluster: no instance, load balancer, target group, security group, rule or route.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from ccm.nodeutil import TAINT_UNINITIALIZED
from controlplane.api import errors
from controlplane.client import Client
from controlplane.controllers.runtime import R
from tests.integration.conftest import ServerProcess, start_server
from tests.integration.controller_harness import client_for, eventually
from tests.integration.moto_server import (
    Account,
    MotoServer,
    aws_environment,
    lay_out,
    lb_service,
    load_balancer_name,
    register,
    shared_moto,
)

CLUSTER = "chaos"
NODES = 20
SERVICES = 50
FAULT_RATE = 0.2
CIDR_INDEX = 1  # the VPC's 10.<i>.0.0/16: each module sharing moto has its own


@pytest.fixture(scope="module")
def moto(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> MotoServer:
    return shared_moto(request.config, tmp_path_factory.mktemp("moto"))


@pytest.fixture(scope="module")
def account(moto: MotoServer) -> Account:
    return lay_out(moto.url, CLUSTER, cidr_index=CIDR_INDEX)


@pytest.fixture(scope="module")
def configs(account: Account, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the server's config, with faults; the test's own, without)."""
    base = tmp_path_factory.mktemp("ccm-aws-chaos")
    faulty = account.cloud_config(
        base / "cloud.yaml", aws={"faultInjection": {"rate": FAULT_RATE, "seed": 20}}
    )
    return faulty, account.cloud_config(base / "observer.yaml")


@pytest.fixture(scope="module")
def chaos_server(
    tmp_path_factory: pytest.TempPathFactory, configs: tuple[Path, Path]
) -> Iterator[ServerProcess]:
    with aws_environment():
        proc = start_server(
            tmp_path_factory.mktemp("ccm-aws-chaos-server") / "data",
            "--cloud-provider",
            "aws",
            "--cloud-config",
            str(configs[0]),
            "--disable-scheduler",
        )
    yield proc
    code = proc.stop()
    assert code == 0, f"server did not shut down cleanly ({code}):\n{proc.log()[-4000:]}"


@pytest.fixture
async def client(chaos_server: ServerProcess) -> AsyncIterator[Client]:
    async with client_for(chaos_server) as c:
        yield c


async def test_fifty_load_balancers_and_twenty_nodes_converge_under_faults(
    client: Client, account: Account, configs: tuple[Path, Path], chaos_server: ServerProcess
) -> None:
    started = time.monotonic()
    inventory = account.provider(configs[1]).inventory
    assert inventory is not None
    instances = account.launch(NODES)
    ids = sorted(i["InstanceId"] for i in instances)
    ns = f"chaos-{uuid.uuid4().hex[:6]}"
    await client.create(R.NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    # Nodes and Services arrive together: load balancers are made while the node set still moves.
    names = await asyncio.gather(*(register(client, inst) for inst in instances))
    services = await asyncio.gather(
        *(client.create(R.SERVICES, lb_service(f"s{i:02d}", [80]), ns) for i in range(SERVICES))
    )
    uids = {s["metadata"]["name"]: s["metadata"]["uid"] for s in services}

    # -- Nodes: initialised, and routed in both route tables -------------------------------------
    async def nodes_converged() -> bool:
        items = {n["metadata"]["name"]: n for n in (await client.list(R.NODES)).get("items") or []}
        cidrs: dict[str, str] = {}
        for name, inst in zip(names, instances, strict=True):
            node = items[name]
            if any(t["key"] == TAINT_UNINITIALIZED for t in node["spec"].get("taints") or []):
                return False
            if "node.kubernetes.io/instance-type" not in node["metadata"]["labels"]:
                return False
            for cidr in node["spec"].get("podCIDRs") or []:
                cidrs[cidr] = inst["InstanceId"]
        if len(cidrs) != NODES:
            return False
        return all(
            {c: t for c, t in routes.items() if c in cidrs} == cidrs
            for routes in account.route_targets().values()
        )

    await eventually(nodes_converged, timeout=150, interval=1)

    # -- Services: an ingress each, an NLB each whose target group holds every instance ----------
    async def ingresses() -> bool:
        items = (await client.list(R.SERVICES, ns)).get("items") or []
        return len(items) == SERVICES and all(
            ((s.get("status") or {}).get("loadBalancer") or {}).get("ingress") for s in items
        )

    await eventually(ingresses, timeout=150, interval=1)
    elbv2 = account.client("elbv2")

    def balancers_converged() -> bool:
        lbs = account.in_vpc(
            elbv2.get_paginator("describe_load_balancers").paginate().build_full_result()["LoadBalancers"]
        )
        wanted = {load_balancer_name(uid) for uid in uids.values()}
        assert len(lbs) == SERVICES, "one load balancer per Service, no duplicates"
        assert {lb["LoadBalancerName"] for lb in lbs} == wanted
        groups = account.in_vpc(
            elbv2.get_paginator("describe_target_groups").paginate().build_full_result()["TargetGroups"]
        )
        assert len(groups) == SERVICES, "one target group per Service port, no strays"
        for group in groups:
            health = elbv2.describe_target_health(TargetGroupArn=group["TargetGroupArn"])
            targets = sorted(h["Target"]["Id"] for h in health["TargetHealthDescriptions"])
            if targets != ids:
                return False
        return True

    async def converged() -> bool:
        return await asyncio.to_thread(balancers_converged)

    await eventually(converged, timeout=120, interval=2)
    converged_after = time.monotonic() - started
    # The faults really were there (the injector logs each one), and were retried through.
    injected = len(re.findall(r"injected fault", chaos_server.log()))
    assert injected > 50, injected
    print(f"converged after {converged_after:.1f}s with {injected} faults injected")

    # -- delete everything: no resource of the cluster remains -----------------------------------
    await asyncio.gather(*(client.delete(R.SERVICES, name, ns) for name in uids))
    account.client("ec2").terminate_instances(InstanceIds=ids)
    await asyncio.gather(*(client.delete(R.NODES, name) for name in names))

    async def services_gone() -> bool:
        return not (await client.list(R.SERVICES, ns)).get("items")

    await eventually(services_gone, timeout=120, interval=1)

    async def nothing_left() -> bool:
        return not await inventory.list_owned(CLUSTER)

    try:
        await eventually(nothing_left, timeout=60, interval=1)
    except AssertionError:
        left = await inventory.list_owned(CLUSTER)
        raise AssertionError(f"left in the cloud: {[(r.kind, r.id, r.owner) for r in left]}") from None
    assert not account.in_vpc(elbv2.describe_load_balancers()["LoadBalancers"])
    assert not account.in_vpc(elbv2.describe_target_groups()["TargetGroups"])
    group = account.client("ec2").describe_security_groups(GroupIds=[account.node_group])["SecurityGroups"][0]
    assert not [
        r
        for p in group["IpPermissions"]
        for r in p.get("IpRanges", [])
        if "kubernetes.io/rule" in r.get("Description", "")
    ]
    assert all(not routes for routes in account.route_targets().values())
    # And EC2's own tag listing: nothing tagged owned by the cluster but terminated instances.
    ec2 = account.client("ec2")
    tagged = ec2.describe_tags(
        Filters=[
            {"Name": "key", "Values": [f"kubernetes.io/cluster/{CLUSTER}"]},
            {"Name": "value", "Values": ["owned"]},
        ]
    )["Tags"]
    assert {t["ResourceType"] for t in tagged} <= {"instance"}, tagged
    states = ec2.describe_instances(InstanceIds=[t["ResourceId"] for t in tagged])["Reservations"]
    assert {i["State"]["Name"] for r in states for i in r["Instances"]} <= {"terminated", "shutting-down"}
    print(f"everything deleted after {time.monotonic() - started:.1f}s")
    for name in names:
        with pytest.raises(errors.NotFound):
            await client.get(R.NODES, name)
