"""Load balancers on moto: NLB by default, classic ELB on request, security-group rules, tags,
convergence, crash leftovers and clean deletion."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import pytest

import providers.aws.annotations as a
from providers.aws.load_balancers import AwsLoadBalancers
from providers.aws.load_balancers_nlb import target_group_name
from providers.aws.security_groups import cidr_rules, group_rules
from providers.errors import InvalidConfiguration
from providers.model import LoadBalancerService, NodeRef, ServicePort
from providers.tags import OWNER_UID_TAG, SERVICE_NAME_TAG, cluster_tag_key
from tests.unit.providers.aws.conftest import Calls, Faults
from tests.unit.providers.aws.moto_env import AwsEnv


def svc(
    name: str = "web",
    ports: Sequence[tuple[str, int, int]] = (("TCP", 80, 30080),),
    annotations: dict[str, str] | None = None,
    uid: str | None = None,
    **kw: Any,
) -> LoadBalancerService:
    return LoadBalancerService(
        namespace="default",
        name=name,
        uid=uid or str(uuid.uuid4()),
        ports=tuple(ServicePort(f"p{p}", proto, p, np) for proto, p, np in ports),
        annotations=annotations or {},
        **kw,
    )


def nodes(env: AwsEnv, count: int, **labels: str) -> list[NodeRef]:
    reply = env.ec2.run_instances(
        ImageId=env.image,
        MinCount=count,
        MaxCount=count,
        SubnetId=env.subnets["us-east-1a"],
        SecurityGroupIds=[env.node_group],
    )
    return [
        NodeRef(name=i["PrivateDnsName"], provider_id=f"aws:///us-east-1a/{i['InstanceId']}", labels=labels)
        for i in reply["Instances"]
    ]


def ids(refs: Sequence[NodeRef]) -> set[str]:
    return {n.provider_id.rsplit("/", 1)[1] for n in refs}


def lbs(env: AwsEnv) -> AwsLoadBalancers:
    capability = env.provider().load_balancers
    assert isinstance(capability, AwsLoadBalancers)
    return capability


def node_group(env: AwsEnv) -> dict[str, Any]:
    return env.ec2.describe_security_groups(GroupIds=[env.node_group])["SecurityGroups"][0]


def elbv2_state(env: AwsEnv, name: str) -> dict[str, Any]:
    elbv2 = env.clients.elbv2
    lb = elbv2.describe_load_balancers(Names=[name])["LoadBalancers"][0]
    listeners = elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
    groups = {}
    for li in listeners:
        arn = li["DefaultActions"][0]["TargetGroupArn"]
        tg = elbv2.describe_target_groups(TargetGroupArns=[arn])["TargetGroups"][0]
        health = elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
        groups[(li["Protocol"], li["Port"])] = (tg, {h["Target"]["Id"] for h in health})
    tags = {
        t["Key"]: t["Value"]
        for t in elbv2.describe_tags(ResourceArns=[lb["LoadBalancerArn"]])["TagDescriptions"][0]["Tags"]
    }
    return {"lb": lb, "groups": groups, "tags": tags}


def all_target_groups(env: AwsEnv) -> list[dict[str, Any]]:
    try:
        return env.clients.elbv2.describe_target_groups()["TargetGroups"]
    except env.clients.elbv2.exceptions.TargetGroupNotFoundException:
        return []


async def test_nlb_by_default_with_listeners_targets_and_tags(env: AwsEnv, calls: Calls) -> None:
    cluster = env.config.cluster_id
    members = nodes(env, 3)
    service = svc("web", [("TCP", 80, 30080), ("UDP", 53, 30053)], {a.ADDITIONAL_TAGS: "team=infra"})
    status = await lbs(env).ensure_load_balancer(cluster, service, members)
    name = lbs(env).load_balancer_name(cluster, service)
    assert name == "a" + service.uid.replace("-", "")[:31]
    state = elbv2_state(env, name)
    assert state["lb"]["Type"] == "network"
    assert state["lb"]["Scheme"] == "internet-facing"
    assert status.ingress[0].hostname == state["lb"]["DNSName"]
    assert state["tags"][cluster_tag_key(cluster)] == "owned"
    assert state["tags"][SERVICE_NAME_TAG] == "default/web"
    assert state["tags"][OWNER_UID_TAG] == service.uid
    assert state["tags"]["team"] == "infra"
    assert set(state["groups"]) == {("TCP", 80), ("UDP", 53)}
    for (protocol, _port), (tg, targets) in state["groups"].items():
        assert targets == ids(members)
        assert tg["Protocol"] == protocol
        assert tg["TargetGroupName"].startswith("k8s-default-web-")
        assert len(tg["TargetGroupName"]) <= 32
        assert tg["HealthCheckProtocol"] == "TCP" and tg["HealthCheckPort"] == "traffic-port"
    assert {tg["Port"] for tg, _ in state["groups"].values()} == {30080, 30053}

    # Clients may come from anywhere: one rule per node port, described with the LB's name.
    rules = {(r.protocol, r.from_port, r.cidr, r.description) for r in cidr_rules(node_group(env))}
    assert rules == {
        ("tcp", 30080, "0.0.0.0/0", f"kubernetes.io/rule/nlb/client={name}"),
        ("udp", 30053, "0.0.0.0/0", f"kubernetes.io/rule/nlb/client={name}"),
        ("tcp", 30053, "10.0.0.0/24", f"kubernetes.io/rule/nlb/health={name}"),
        ("tcp", 30053, "10.0.1.0/24", f"kubernetes.io/rule/nlb/health={name}"),
        ("tcp", 30080, "10.0.0.0/24", f"kubernetes.io/rule/nlb/health={name}"),
        ("tcp", 30080, "10.0.1.0/24", f"kubernetes.io/rule/nlb/health={name}"),
    }

    calls.reset()
    assert await lbs(env).ensure_load_balancer(cluster, service, members) == status
    assert calls.mutating() == []  # converged: reads only


async def test_source_ranges_and_local_policy(env: AwsEnv) -> None:
    cluster = env.config.cluster_id
    service = svc(
        "local",
        load_balancer_source_ranges=("192.168.0.0/16",),
        external_traffic_policy="Local",
        health_check_node_port=32000,
    )
    await lbs(env).ensure_load_balancer(cluster, service, nodes(env, 1))
    name = lbs(env).load_balancer_name(cluster, service)
    [(tg, _)] = elbv2_state(env, name)["groups"].values()
    assert (tg["HealthCheckProtocol"], tg["HealthCheckPort"], tg["HealthCheckPath"]) == (
        "HTTP",
        "32000",
        "/healthz",
    )
    rules = {(r.protocol, r.from_port, r.cidr) for r in cidr_rules(node_group(env))}
    assert rules == {
        ("tcp", 30080, "192.168.0.0/16"),
        ("tcp", 32000, "10.0.0.0/24"),
        ("tcp", 32000, "10.0.1.0/24"),
    }


async def test_changes_converge_and_delete_removes_everything(env: AwsEnv) -> None:
    cluster = env.config.cluster_id
    first, second, third = nodes(env, 3)
    uid = str(uuid.uuid4())
    cap = lbs(env)
    await cap.ensure_load_balancer(cluster, svc("conv", [("TCP", 80, 30080)], uid=uid), [first, second])
    changed = svc("conv", [("TCP", 80, 30081), ("TCP", 8080, 30082)], uid=uid)
    await cap.update_load_balancer(cluster, changed, [second, third])
    name = cap.load_balancer_name(cluster, changed)
    state = elbv2_state(env, name)
    assert {k: tg["Port"] for k, (tg, _) in state["groups"].items()} == {
        ("TCP", 80): 30081,
        ("TCP", 8080): 30082,
    }
    assert all(t == ids([second, third]) for _, t in state["groups"].values())
    assert len(all_target_groups(env)) == 2  # the old port's group is gone
    assert {r.from_port for r in cidr_rules(node_group(env))} == {30081, 30082}

    await cap.ensure_load_balancer_deleted(cluster, changed)
    await cap.ensure_load_balancer_deleted(cluster, changed)
    assert env.clients.elbv2.describe_load_balancers()["LoadBalancers"] == []
    assert all_target_groups(env) == []
    assert cidr_rules(node_group(env)) == []


async def test_a_port_that_changes_protocol_is_moved(env: AwsEnv, calls: Calls) -> None:
    cluster = env.config.cluster_id
    uid = str(uuid.uuid4())
    members = nodes(env, 1)
    cap = lbs(env)
    await cap.ensure_load_balancer(cluster, svc("dns", [("TCP", 53, 30053)], uid=uid), members)
    calls.reset()
    await cap.ensure_load_balancer(cluster, svc("dns", [("UDP", 53, 30054)], uid=uid), members)
    assert calls.log.index("DeleteListener") < calls.log.index("CreateListener")
    state = elbv2_state(env, cap.load_balancer_name(cluster, svc("dns", uid=uid)))
    assert {k: tg["Port"] for k, (tg, _) in state["groups"].items()} == {("UDP", 53): 30054}
    assert len(all_target_groups(env)) == 1


async def test_target_node_labels_pick_the_nodes(env: AwsEnv) -> None:
    edge = nodes(env, 2, role="edge")
    other = nodes(env, 1, role="batch")
    service = svc("edge", annotations={a.TARGET_NODE_LABELS: "role=edge"})
    await lbs(env).ensure_load_balancer(env.config.cluster_id, service, [*edge, *other])
    [(_, targets)] = elbv2_state(env, lbs(env).load_balancer_name(env.config.cluster_id, service))[
        "groups"
    ].values()
    assert targets == ids(edge)


async def test_internal_scheme_and_recreation_when_it_changes(env: AwsEnv) -> None:
    cluster = env.config.cluster_id
    uid = str(uuid.uuid4())
    members = nodes(env, 1)
    cap = lbs(env)
    await cap.ensure_load_balancer(cluster, svc("int", annotations={a.INTERNAL: "true"}, uid=uid), members)
    name = cap.load_balancer_name(cluster, svc("int", uid=uid))
    assert elbv2_state(env, name)["lb"]["Scheme"] == "internal"
    await cap.ensure_load_balancer(cluster, svc("int", uid=uid), members)
    assert elbv2_state(env, name)["lb"]["Scheme"] == "internet-facing"
    assert len(env.clients.elbv2.describe_load_balancers()["LoadBalancers"]) == 1
    assert len(all_target_groups(env)) == 1


async def test_classic_elb_on_request(env: AwsEnv, calls: Calls) -> None:
    cluster = env.config.cluster_id
    members = nodes(env, 2)
    service = svc(
        "old",
        [("TCP", 80, 30080), ("TCP", 443, 30443)],
        {a.TYPE: "classic"},
        load_balancer_source_ranges=("10.9.0.0/16",),
    )
    cap = lbs(env)
    status = await cap.ensure_load_balancer(cluster, service, members)
    name = cap.load_balancer_name(cluster, service)
    elb = env.clients.elb
    lb = elb.describe_load_balancers(LoadBalancerNames=[name])["LoadBalancerDescriptions"][0]
    assert status.ingress[0].hostname == lb["DNSName"]
    assert {
        (d["Listener"]["LoadBalancerPort"], d["Listener"]["InstancePort"]) for d in lb["ListenerDescriptions"]
    } == {
        (80, 30080),
        (443, 30443),
    }
    assert {i["InstanceId"] for i in lb["Instances"]} == ids(members)
    assert lb["HealthCheck"]["Target"] == "TCP:30080"
    [own] = env.ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [f"k8s-elb-{name}"]}])[
        "SecurityGroups"
    ]
    assert lb["SecurityGroups"] == [own["GroupId"]]
    assert {(r.protocol, r.from_port, r.to_port, r.cidr) for r in cidr_rules(own)} == {
        ("tcp", 80, 80, "10.9.0.0/16"),
        ("tcp", 443, 443, "10.9.0.0/16"),
        ("icmp", 3, 4, "10.9.0.0/16"),
    }
    assert {t["Key"]: t["Value"] for t in own["Tags"]}[cluster_tag_key(cluster)] == "owned"
    assert [r.source_group for r in group_rules(node_group(env))] == [own["GroupId"]]
    calls.reset()
    assert await cap.ensure_load_balancer(cluster, service, members) == status
    assert calls.mutating() == []

    await cap.ensure_load_balancer_deleted(cluster, service)
    assert elb.describe_load_balancers()["LoadBalancerDescriptions"] == []
    assert group_rules(node_group(env)) == []
    assert (
        env.ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [f"k8s-elb-{name}"]}])[
            "SecurityGroups"
        ]
        == []
    )


async def test_switching_type_deletes_the_other_kind(env: AwsEnv) -> None:
    cluster = env.config.cluster_id
    uid = str(uuid.uuid4())
    members = nodes(env, 1)
    cap = lbs(env)
    await cap.ensure_load_balancer(cluster, svc("sw", uid=uid), members)
    await cap.ensure_load_balancer(cluster, svc("sw", annotations={a.TYPE: "classic"}, uid=uid), members)
    assert env.clients.elbv2.describe_load_balancers()["LoadBalancers"] == []
    assert all_target_groups(env) == []
    assert {r.description for r in cidr_rules(node_group(env))} == set()
    assert len(env.clients.elb.describe_load_balancers()["LoadBalancerDescriptions"]) == 1


async def test_leftovers_of_an_interrupted_sync_are_reused_or_deleted(env: AwsEnv) -> None:
    cluster = env.config.cluster_id
    service = svc("crash")
    members = nodes(env, 1)
    cap = lbs(env)
    options = cap.options(service)
    elbv2 = env.clients.elbv2
    tags = [
        {"Key": cluster_tag_key(cluster), "Value": "owned"},
        {"Key": OWNER_UID_TAG, "Value": service.uid},
    ]
    # A crash right after CreateTargetGroup: the group exists, no listener uses it.
    name = target_group_name(cluster, service, options.ports[0], options.health_check)
    elbv2.create_target_group(Name=name, Protocol="TCP", Port=30080, VpcId=env.vpc_id, Tags=tags)
    # ... and one made for ports the Service no longer has.
    stale = target_group_name(cluster, service, ServicePort("x", "TCP", 81, 30081), options.health_check)
    elbv2.create_target_group(Name=stale, Protocol="TCP", Port=30081, VpcId=env.vpc_id, Tags=tags)
    await cap.ensure_load_balancer(cluster, service, members)
    assert sorted(tg["TargetGroupName"] for tg in all_target_groups(env)) == sorted([name, stale])
    await cap.ensure_load_balancer_deleted(cluster, service)
    assert all_target_groups(env) == []


@pytest.mark.parametrize(
    "annotations",
    [{a.TYPE: "alb"}, {a.HC_INTERVAL: "1"}, {a.ADDITIONAL_TAGS: "aws:x=y"}, {a.SOURCE_RANGES: "300.0.0.0/8"}],
)
async def test_bad_input_makes_no_call_at_all(env: AwsEnv, calls: Calls, annotations: dict[str, str]) -> None:
    members = nodes(env, 1)
    calls.reset()
    with pytest.raises(InvalidConfiguration):
        await lbs(env).ensure_load_balancer(
            env.config.cluster_id, svc("bad", annotations=annotations), members
        )
    assert calls.log == []


async def test_converges_under_throttling_and_server_errors(env: AwsEnv) -> None:
    cluster = env.config.cluster_id
    members = nodes(env, 3)
    provider = env.provider()
    cap = provider.load_balancers
    inventory = provider.inventory
    assert cap is not None and inventory is not None
    faults = Faults(env.clients, rate=0.2, seed=11)
    services = [svc(f"chaos{i}", [("TCP", 80, 30100 + i)]) for i in range(4)]
    for service in services:
        await cap.ensure_load_balancer(cluster, service, members)
    faults.rate = 0
    for service in services:
        state = elbv2_state(env, cap.load_balancer_name(cluster, service))
        assert [t for _, t in state["groups"].values()] == [ids(members)]
    faults.rate = 0.2
    for service in services:
        await cap.ensure_load_balancer_deleted(cluster, service)
    assert faults.injected > 10
    faults.rate = 0
    assert [r for r in await inventory.list_owned(cluster) if r.kind != "instance"] == []
    assert cidr_rules(node_group(env)) == []


async def test_nodes_without_a_cluster_security_group_are_refused_before_anything_is_made(
    env: AwsEnv, calls: Calls
) -> None:
    stray = env.ec2.create_security_group(
        GroupName="stray", Description="not the cluster's", VpcId=env.vpc_id
    )
    reply = env.ec2.run_instances(
        ImageId=env.image,
        MinCount=1,
        MaxCount=1,
        SubnetId=env.subnets["us-east-1a"],
        SecurityGroupIds=[stray["GroupId"]],
    )
    node = NodeRef(name="x", provider_id=f"aws:///us-east-1a/{reply['Instances'][0]['InstanceId']}")
    calls.reset()
    with pytest.raises(InvalidConfiguration, match="securityGroupIDs"):
        await lbs(env).ensure_load_balancer(env.config.cluster_id, svc("nosg"), [node])
    assert calls.mutating() == []
