"""Done-when 1 of the cloud issue: a real `pinnace server --cloud-provider aws` against moto's
server on loopback.

EC2 instances registered as Nodes (the uninitialized taint, providerID `aws:///<zone>/<id>`) are
initialised; each pod CIDR gets a route in every cluster route table (there are two); a
LoadBalancer Service gets an NLB with a listener per port, target groups on the NodePorts and
the instances registered, and its DNS name as the ingress (`kubectl get svc` shows it); a
Service annotated for a classic ELB gets one; port and node changes follow; deleting the
Services deletes everything made for them; terminating an instance deletes its Node.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from ccm.nodeutil import TAINT_UNINITIALIZED
from controlplane.api import errors
from controlplane.client import Client
from controlplane.controllers.runtime import R
from providers.capabilities import CloudProvider
from tests.integration.conftest import ServerProcess, kubectl_binaries, start_server
from tests.integration.controller_harness import client_for, eventually
from tests.integration.kubectl_helpers import Kubectl, parse_table, row_named
from tests.integration.moto_server import (
    REGION,
    Account,
    MotoServer,
    aws_environment,
    lay_out,
    lb_service,
    load_balancer_name,
    register,
    set_ready,
    shared_moto,
)

CLUSTER = "itest-aws"
CIDR_INDEX = 0  # the VPC's 10.<i>.0.0/16: each module sharing moto has its own
POLL = 0.2  # checks that ask moto: polling it harder only takes CPU from the server under test
TYPE_ANNOTATION = "service.beta.kubernetes.io/aws-load-balancer-type"
CLEANUP = "service.kubernetes.io/load-balancer-cleanup"


@pytest.fixture(scope="module")
def moto(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> MotoServer:
    return shared_moto(request.config, tmp_path_factory.mktemp("moto"))


@pytest.fixture(scope="module")
def account(moto: MotoServer) -> Account:
    return lay_out(moto.url, CLUSTER, cidr_index=CIDR_INDEX)


@pytest.fixture(scope="module")
def cloud_config(account: Account, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return account.cloud_config(tmp_path_factory.mktemp("ccm-aws") / "cloud.yaml")


@pytest.fixture(scope="module")
def aws_server(tmp_path_factory: pytest.TempPathFactory, cloud_config: Path) -> Iterator[ServerProcess]:
    with aws_environment():
        proc = start_server(
            tmp_path_factory.mktemp("ccm-aws-server") / "data",
            "--cloud-provider",
            "aws",
            "--cloud-config",
            str(cloud_config),
            "--disable-scheduler",
        )
    yield proc
    code = proc.stop()
    assert code == 0, f"server did not shut down cleanly ({code}):\n{proc.log()[-4000:]}"


@pytest.fixture
async def client(aws_server: ServerProcess) -> AsyncIterator[Client]:
    async with client_for(aws_server) as c:
        yield c


@pytest.fixture
def kubectl(aws_server: ServerProcess, tmp_path: Path) -> Kubectl:
    binaries = kubectl_binaries()
    if not binaries:
        pytest.skip("no kubectl")
    env = {**os.environ, "KUBECONFIG": str(aws_server.kubeconfig), "HOME": str(tmp_path)}
    return Kubectl(binaries[-1], env)


def nlb_view(account: Account, uid: str) -> dict[str, Any] | None:
    """The Service's NLB as AWS shows it: {port: (protocol, target group port, [instance ids])}."""
    elbv2 = account.client("elbv2")
    try:
        (lb,) = elbv2.describe_load_balancers(Names=[load_balancer_name(uid)])["LoadBalancers"]
    except elbv2.exceptions.LoadBalancerNotFoundException:
        return None
    listeners: dict[int, Any] = {}
    for li in elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]:
        tg_arn = li["DefaultActions"][0]["TargetGroupArn"]
        (tg,) = elbv2.describe_target_groups(TargetGroupArns=[tg_arn])["TargetGroups"]
        health = elbv2.describe_target_health(TargetGroupArn=tg_arn)["TargetHealthDescriptions"]
        targets = sorted({h["Target"]["Id"] for h in health if h["Target"].get("Port") == tg["Port"]})
        listeners[li["Port"]] = (li["Protocol"], tg["Port"], targets)
    return {"type": lb["Type"], "dns": lb["DNSName"], "listeners": listeners}


def node_ports(svc: dict[str, Any]) -> dict[int, int]:
    return {int(p["port"]): int(p["nodePort"]) for p in svc["spec"]["ports"]}


async def ingress_of(client: Client, name: str, ns: str) -> str:
    svc = await client.get(R.SERVICES, name, ns)
    found = (svc.get("status", {}).get("loadBalancer") or {}).get("ingress") or []
    return str(found[0].get("hostname", "")) if found else ""


async def test_nodes_routes_load_balancers_and_lifecycle(
    client: Client, account: Account, cloud_config: Path, kubectl: Kubectl, aws_server: ServerProcess
) -> None:
    provider: CloudProvider = account.provider(cloud_config)
    inventory = provider.inventory
    assert inventory is not None
    instances = account.launch(2)
    ids = sorted(i["InstanceId"] for i in instances)
    # The second registers under a name of its own: found by providerID, routed all the same.
    names = [
        await register(client, instances[0]),
        await register(client, instances[1], f"w-{instances[1]['InstanceId'][2:10]}"),
    ]
    by_name = dict(zip(names, instances, strict=True))

    # -- initialised: providerID, labels, addresses (the provided node IP first), taint gone ----
    async def initialised() -> bool:
        for name, inst in by_name.items():
            node = await client.get(R.NODES, name)
            if any(t["key"] == TAINT_UNINITIALIZED for t in node["spec"].get("taints") or []):
                return False
            zone = inst["Placement"]["AvailabilityZone"]
            assert node["spec"]["providerID"] == f"aws:///{zone}/{inst['InstanceId']}"
            labels = node["metadata"]["labels"]
            assert labels["node.kubernetes.io/instance-type"] == "t3.medium"
            assert labels["beta.kubernetes.io/instance-type"] == "t3.medium"
            assert labels["topology.kubernetes.io/zone"] == zone
            assert labels["failure-domain.beta.kubernetes.io/zone"] == zone
            assert labels["topology.kubernetes.io/region"] == REGION
            addresses = node["status"].get("addresses") or []
            if not addresses:
                return False  # as upstream, written right after the taint comes off
            assert addresses[0] == {"type": "InternalIP", "address": inst["PrivateIpAddress"]}
            assert {"type": "InternalDNS", "address": inst["PrivateDnsName"]} in addresses
            assert {"type": "Hostname", "address": inst["PrivateDnsName"]} in addresses
        return True

    await eventually(initialised, timeout=40)

    # -- a route per pod CIDR in EVERY cluster route table; NetworkUnavailable False ------------
    async def routed() -> bool:
        tables = account.route_targets()
        assert sorted(tables) == sorted(account.route_tables)
        for name, inst in by_name.items():
            node = await client.get(R.NODES, name)
            cidrs = node["spec"].get("podCIDRs") or []
            if not cidrs:
                return False
            for routes in tables.values():
                if any(routes.get(c) != inst["InstanceId"] for c in cidrs):
                    return False
            cond = next((c for c in node["status"]["conditions"] if c["type"] == "NetworkUnavailable"), None)
            if cond is None or (cond["status"], cond["reason"]) != ("False", "RouteCreated"):
                return False
        return True

    await eventually(routed, timeout=40, interval=POLL)
    described = account.client("ec2").describe_instances(InstanceIds=ids)["Reservations"]
    for reservation in described:
        for inst in reservation["Instances"]:
            assert inst["SourceDestCheck"] is False, "routed instances forward pod traffic"

    # -- an NLB by default: listeners, target groups on the NodePorts, instances registered ------
    ns = f"aws-{uuid.uuid4().hex[:6]}"
    await client.create(R.NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    web = await client.create(R.SERVICES, lb_service("web", [80]), ns)
    web_uid = web["metadata"]["uid"]
    hostname = await eventually(lambda: ingress_of(client, "web", ns), timeout=40)
    view = nlb_view(account, web_uid)
    assert view is not None and view["type"] == "network" and view["dns"] == hostname
    assert view["listeners"] == {80: ("TCP", node_ports(web)[80], ids)}
    assert (await client.get(R.SERVICES, "web", ns))["metadata"]["finalizers"] == [CLEANUP]
    table = parse_table(kubectl.run("get", "svc", "web", "-n", ns).stdout)
    assert row_named(table, "web")["EXTERNAL-IP"] == hostname

    # -- a classic ELB when the annotation asks ---------------------------------------------------
    classic = await client.create(R.SERVICES, lb_service("old", [8080], {TYPE_ANNOTATION: "classic"}), ns)
    classic_name = load_balancer_name(classic["metadata"]["uid"])
    classic_host = await eventually(lambda: ingress_of(client, "old", ns), timeout=40)
    elb = account.client("elb")
    (desc,) = elb.describe_load_balancers(LoadBalancerNames=[classic_name])["LoadBalancerDescriptions"]
    assert desc["DNSName"] == classic_host
    assert [
        (li["Listener"]["LoadBalancerPort"], li["Listener"]["InstancePort"])
        for li in desc["ListenerDescriptions"]
    ] == [(8080, node_ports(classic)[8080])]
    assert sorted(i["InstanceId"] for i in desc["Instances"]) == ids

    # -- changing ports: a listener and target group per port, on the new NodePorts -------------
    current = await client.get(R.SERVICES, "web", ns)
    ports = [*current["spec"]["ports"], {"name": "p443", "port": 443, "targetPort": 8443, "protocol": "TCP"}]
    await client.patch(R.SERVICES, "web", {"spec": {"ports": ports}}, ns)

    async def two_listeners() -> bool:
        svc = await client.get(R.SERVICES, "web", ns)
        np = node_ports(svc)
        seen = nlb_view(account, web_uid)
        return seen is not None and seen["listeners"] == {
            80: ("TCP", np[80], ids),
            443: ("TCP", np[443], ids),
        }

    await eventually(two_listeners, timeout=40, interval=POLL)

    # -- changing nodes: an excluded node leaves every target group and the classic ELB ---------
    excluded, kept = names[1], by_name[names[0]]["InstanceId"]
    label = {"node.kubernetes.io/exclude-from-external-load-balancers": "true"}
    await client.patch(R.NODES, excluded, {"metadata": {"labels": label}})

    async def one_target() -> bool:
        seen = nlb_view(account, web_uid)
        (now,) = elb.describe_load_balancers(LoadBalancerNames=[classic_name])["LoadBalancerDescriptions"]
        return (
            seen is not None
            and all(targets == [kept] for _, _, targets in seen["listeners"].values())
            and [i["InstanceId"] for i in now["Instances"]] == [kept]
        )

    await eventually(one_target, timeout=40, interval=POLL)
    owned = await inventory.list_owned(CLUSTER)
    kinds = sorted(r.kind for r in owned if r.owner is not None and r.owner.namespace == ns)
    # The classic ELB has a security group of its own, as upstream's k8s-elb-<name>.
    assert kinds == [
        "classic-load-balancer",
        "load-balancer",
        "security-group",
        "target-group",
        "target-group",
    ], kinds
    rules = [
        r.get("Description", "")
        for p in account.client("ec2").describe_security_groups(GroupIds=[account.node_group])[
            "SecurityGroups"
        ][0]["IpPermissions"]
        for r in p.get("IpRanges", [])
    ]
    assert any(d.startswith("kubernetes.io/rule/nlb/") for d in rules), rules

    # -- deleting the Services deletes every cloud resource made for them -----------------------
    await client.delete(R.SERVICES, "web", ns)
    await client.delete(R.SERVICES, "old", ns)

    async def gone() -> bool:
        for name in ("web", "old"):
            try:
                await client.get(R.SERVICES, name, ns)
                return False
            except errors.NotFound:
                pass
        left = await inventory.list_owned(CLUSTER)
        return not [r for r in left if r.owner is not None and r.owner.kind == "Service"]

    await eventually(gone, timeout=40, interval=POLL)
    assert nlb_view(account, web_uid) is None
    assert not account.in_vpc(account.client("elbv2").describe_target_groups()["TargetGroups"])
    assert classic_name not in {
        d["LoadBalancerName"] for d in elb.describe_load_balancers()["LoadBalancerDescriptions"]
    }
    group = account.client("ec2").describe_security_groups(GroupIds=[account.node_group])["SecurityGroups"][0]
    leftover = [
        r
        for p in group["IpPermissions"]
        for r in p.get("IpRanges", [])
        if "kubernetes.io/rule" in r.get("Description", "")
    ]
    assert not leftover, leftover

    # The routes stayed put all along: made once, never taken for stale and replaced (the
    # renamed node's route is listed under the instance's DNS name, matched by providerID).
    log = aws_server.log()
    assert "Deleted route" not in log
    for name in names:
        assert log.count(f"Created route for node {name} ") == 1, log

    # -- terminating an instance deletes its (NotReady) Node, and its routes go -----------------
    victim = names[0]
    victim_id = by_name[victim]["InstanceId"]
    account.client("ec2").terminate_instances(InstanceIds=[victim_id])
    await set_ready(client, victim, "False")

    async def deleted() -> bool:
        try:
            await client.get(R.NODES, victim)
            return False
        except errors.NotFound:
            return True

    await eventually(deleted, timeout=60, interval=POLL)

    async def deleting_event() -> bool:
        events = (await client.list(R.EVENTS, "default")).get("items") or []
        return any(e["involvedObject"]["name"] == victim and e["reason"] == "DeletingNode" for e in events)

    await eventually(deleting_event, timeout=10)  # Events are posted in the background

    async def routes_gone() -> bool:
        return all(victim_id not in routes.values() for routes in account.route_targets().values())

    await eventually(routes_gone, timeout=40, interval=POLL)
