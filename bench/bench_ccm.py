"""Cloud-controller-manager against moto: AWS calls counted by operation through botocore's event
hooks (`before-call.*.*` on the provider's own clients), at 1000 nodes and 100 LoadBalancer
Services (issue 6, Performance).

Processes: moto's server (`python -m moto.server`) and `pinnace server --cloud-provider none
--controllers=` (no kube controllers: nothing else writes Nodes, so they stay Ready without
heartbeats) as separate processes; this process runs the CCM's controllers (cloud-node,
cloud-node-lifecycle, route, service, cloud-garbage-sweep) with the aws provider pointed at moto,
and drives the workload.

Setup (plain boto3, not counted): a VPC with two subnets, a node security group and a route table
tagged for the cluster, N instances, and one route per node pod CIDR already in the table (a
converged cluster; the route controller then only checks them). N Nodes are registered as a
kubelet with `--cloud-provider=external --provider-id` would: named by the instance's private DNS
name, providerID set, tainted `node.cloudprovider.kubernetes.io/uninitialized`, Ready, a pod CIDR;
all but `--uninitialized` (default 50) of them already as the cloud node controller leaves them
(labels, no taint): the converged cluster the issue asks about. The cloud node controller
initialises one Node at a time (upstream ConcurrentNodeSyncs 1), so 1000 fresh Nodes would keep
the warm-up busy for many minutes against a loaded moto.

Phases, each with its own counts:
1. warm-up: the CCM initialises every Node (taint off, labels, addresses) and sets
   NetworkUnavailable=False on each;
2. ingress: S LoadBalancer Services are created at once; time until every one has
   `status.loadBalancer.ingress`. Same-run baseline: the essential calls made directly with
   boto3 against the same moto, serially (upstream ConcurrentServiceSyncs is 1) and with no
   client rate limit - CreateLoadBalancer (NLB), CreateTargetGroup, RegisterTargets (every node),
   CreateListener per Service;
3. steady state: a window of 3 node-status periods (so it holds 3 of every periodic sync);
   mutating calls must be 0, DescribeInstances per sync per 150 nodes must be <= 1. Each call is
   attributed to the sync that made it (a context variable set around each controller's sync;
   the batching InstanceLookup makes a call in the sync that led the batch). Calls per node per
   hour are the calls per sync of each controller times its upstream frequency (RouteReconciliation
   10 s, NodeMonitor 5 s, NodeStatusUpdate 5 min, nodeSync 100 s, sweep 5 min), compared with what
   upstream's defaults and cloud-provider-aws's batching (150 names per DescribeInstances) imply.

Warm-up and ingress run at upstream's periods. For the steady-state window the CCM's clock (every
period, work-queue delay and the instance cache's 10 s TTL) runs `1 / --period-scale` times as
fast (default 0.1), so 3 x 5 min take 90 s; calls per sync do not depend on it, and the per-hour
figures are computed at upstream's periods. The provider's client rate limit stays in real time.

    .venv/bin/python bench/run.py --only ccm
    .venv/bin/python bench/bench_ccm.py --nodes 100 --services 10     # quick look
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import contextvars
import datetime
import functools
import ipaddress
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from common import (
    REPO,
    BenchResult,
    Row,
    pinnace_server,
    print_result,
    scratch_dir,
)

REGION = "us-east-1"
ZONES = (f"{REGION}a", f"{REGION}b")
CLUSTER = "bench"
CLUSTER_CIDR = "100.64.0.0/14"  # 1024 /24 pod CIDRs, outside the VPC
IMAGE = "ami-0123456789abcdef0"
NAMESPACE = "default"
FILTER_NODE_LIMIT = 150  # cloud-provider-aws filterNodeLimit
TAINT_UNINITIALIZED = "node.cloudprovider.kubernetes.io/uninitialized"

# Upstream periods (seconds) of the CCM's periodic syncs, and which sync each one is here.
UPSTREAM_PERIODS = {
    "route": 10.0,  # RouteReconciliationPeriod
    "node-lifecycle": 5.0,  # NodeMonitorPeriod
    "node-status": 300.0,  # NodeStatusUpdateFrequency
    "service-nodes": 100.0,  # service controller nodeSyncPeriod
    "sweep": 300.0,  # Pinnace's garbage sweep (no upstream counterpart)
}
READ_PREFIXES = ("Describe", "List", "Get")

Obj = dict[str, Any]


# --- counting ----------------------------------------------------------------------------------

# (sync name, sync number) of the controller sync a call belongs to; copied into asyncio.to_thread.
CURRENT_SYNC: contextvars.ContextVar[tuple[str, int]] = contextvars.ContextVar(
    "current_sync", default=("other", 0)
)


@dataclass
class Call:
    t: float
    service: str
    op: str
    sync: str
    sync_id: int


@dataclass
class Ledger:
    calls: list[Call] = field(default_factory=list)
    syncs: list[tuple[float, str, int]] = field(default_factory=list)  # (start, name, id)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _next: int = 0

    def hook(self, model: Any, **_: Any) -> None:
        sync, sync_id = CURRENT_SYNC.get()
        call = Call(time.monotonic(), model.service_model.service_name, model.name, sync, sync_id)
        with self._lock:
            self.calls.append(call)

    def attach(self, clients: Any) -> None:
        for client in (clients.ec2, clients.elb, clients.elbv2):
            client.meta.events.register("before-call.*.*", self.hook)

    def start_sync(self, name: str) -> int:
        with self._lock:
            self._next += 1
            self.syncs.append((time.monotonic(), name, self._next))
            return self._next

    def between(self, t0: float, t1: float) -> list[Call]:
        return [c for c in self.calls if t0 <= c.t < t1]

    def syncs_between(self, t0: float, t1: float) -> list[tuple[float, str, int]]:
        return [s for s in self.syncs if t0 <= s[0] < t1]


def mutating(op: str) -> bool:
    return not op.startswith(READ_PREFIXES)


def instrument(ledger: Ledger) -> Callable[[], None]:
    """Wrap each controller's sync so the calls it makes carry its name; returns the undo."""
    from ccm.node import CloudNodeController
    from ccm.nodelifecycle import CloudNodeLifecycleController
    from ccm.route import RouteController
    from ccm.service import ServiceController
    from ccm.sweep import GarbageSweep

    targets: list[tuple[type, str, str]] = [
        (RouteController, "reconcile", "route"),
        (CloudNodeLifecycleController, "monitor_nodes", "node-lifecycle"),
        (CloudNodeController, "update_node_status", "node-status"),
        (CloudNodeController, "reconcile", "node-init"),
        (ServiceController, "reconcile", "service"),
        (ServiceController, "sync_nodes", "service-nodes"),
        (GarbageSweep, "sweep", "sweep"),
    ]
    saved: list[tuple[type, str, Any]] = []
    for cls, attr, name in targets:
        original = cls.__dict__[attr]

        def wrap(fn: Callable[..., Awaitable[Any]], name: str = name) -> Callable[..., Awaitable[Any]]:
            @functools.wraps(fn)
            async def wrapper(*args: Any, **kwargs: Any) -> Any:
                token = CURRENT_SYNC.set((name, ledger.start_sync(name)))
                try:
                    return await fn(*args, **kwargs)
                finally:
                    CURRENT_SYNC.reset(token)

            return wrapper

        saved.append((cls, attr, original))
        setattr(cls, attr, wrap(original))

    def undo() -> None:
        for cls, attr, original in saved:
            setattr(cls, attr, original)

    return undo


class VirtualClock:
    """The CCM's clock (controller periods, work queue delays) and the instance cache's: virtual
    seconds that pass `1 / scale` times as fast as real ones, the scale settable at any time (a
    sleep already under way follows the new scale), so the periodic syncs of hours fit a short
    window while every period and the cache TTL keep their upstream proportions."""

    def __init__(self) -> None:
        self.scale = 1.0
        self._real0 = time.monotonic()
        self._virt0 = self._real0

    def set_scale(self, scale: float) -> None:
        self._virt0 = self.monotonic()
        self._real0 = time.monotonic()
        self.scale = scale

    def now(self) -> datetime.datetime:
        return datetime.datetime.now(datetime.UTC)  # wall-clock timestamps stay real

    def monotonic(self) -> float:
        return self._virt0 + (time.monotonic() - self._real0) / self.scale

    async def sleep(self, seconds: float) -> None:
        deadline = self.monotonic() + max(0.0, seconds)
        while True:
            left = deadline - self.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(min(left * self.scale, 0.25))


# --- moto and the AWS layout ---------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# moto's server with EC2's "inbound rules per security group" quota raised from its default (60)
# to the most AWS grants (1000): the NLBs' rules all go to the one node security group, one per
# Service, so at the default quota the 61st LoadBalancer Service fails RulesPerSecurityGroupLimitExceeded.
RULES_PER_GROUP = 1000
_MOTO_MAIN = f"""
import sys
from moto.ec2.exceptions import RulesPerSecurityGroupLimitExceededError
from moto.ec2.models import security_groups

def _limit(self, group, current_rule_nb, ip_ranges, source_groups=None, egress=False):
    if current_rule_nb + len(ip_ranges or []) + len(source_groups or []) > {RULES_PER_GROUP}:
        raise RulesPerSecurityGroupLimitExceededError

security_groups.SecurityGroupBackend._verify_group_will_respect_rule_count_limit = _limit
from moto.server import main
sys.exit(main(sys.argv[1:]))
"""


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    port = _free_port()
    env = {**os.environ, "MOTO_EC2_LOAD_DEFAULT_AMIS": "false"}
    proc = subprocess.Popen(
        [sys.executable, "-c", _MOTO_MAIN, "-H", "127.0.0.1", "-p", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Layout:
    vpc: str
    subnets: tuple[str, ...]
    group: str
    route_table: str
    instances: list[Obj]  # InstanceId, PrivateDnsName, PrivateIpAddress, zone, cidr


def pod_cidrs(count: int) -> list[str]:
    net = ipaddress.ip_network(CLUSTER_CIDR)
    return [str(s) for s, _ in zip(net.subnets(new_prefix=24), range(count), strict=False)]


def build_layout(session: boto3.Session, url: str, nodes: int) -> Layout:
    ec2 = session.client("ec2", region_name=REGION, endpoint_url=url)
    shared = [{"Key": f"kubernetes.io/cluster/{CLUSTER}", "Value": "shared"}]
    owned = [{"Key": f"kubernetes.io/cluster/{CLUSTER}", "Value": "owned"}]
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = []
    for index, zone in enumerate(ZONES):
        subnets.append(
            ec2.create_subnet(
                VpcId=vpc,
                CidrBlock=f"10.0.{index * 16}.0/20",
                AvailabilityZone=zone,
                TagSpecifications=[
                    {
                        "ResourceType": "subnet",
                        "Tags": [*shared, {"Key": "kubernetes.io/role/elb", "Value": "1"}],
                    }
                ],
            )["Subnet"]["SubnetId"]
        )
    group = ec2.create_security_group(
        GroupName="nodes",
        Description="cluster nodes",
        VpcId=vpc,
        TagSpecifications=[{"ResourceType": "security-group", "Tags": shared}],
    )["GroupId"]
    table = ec2.create_route_table(
        VpcId=vpc, TagSpecifications=[{"ResourceType": "route-table", "Tags": shared}]
    )["RouteTable"]["RouteTableId"]
    launched: list[Obj] = []
    batch = 100
    for start in range(0, nodes, batch):
        count = min(batch, nodes - start)
        subnet = subnets[(start // batch) % len(subnets)]
        reply = ec2.run_instances(
            ImageId=IMAGE,
            InstanceType="m5.large",
            MinCount=count,
            MaxCount=count,
            SubnetId=subnet,
            SecurityGroupIds=[group],
            TagSpecifications=[{"ResourceType": "instance", "Tags": owned}],
        )
        launched.extend(reply["Instances"])
    instances = []
    for inst, cidr in zip(launched, pod_cidrs(nodes), strict=True):
        instances.append(
            {
                "InstanceId": inst["InstanceId"],
                "PrivateDnsName": inst["PrivateDnsName"],
                "PrivateIpAddress": inst["PrivateIpAddress"],
                "zone": inst["Placement"]["AvailabilityZone"],
                "cidr": cidr,
            }
        )
        ec2.modify_instance_attribute(InstanceId=inst["InstanceId"], SourceDestCheck={"Value": False})
        ec2.create_route(RouteTableId=table, DestinationCidrBlock=cidr, InstanceId=inst["InstanceId"])
    return Layout(vpc, tuple(subnets), group, table, instances)


# --- the API side --------------------------------------------------------------------------------


def make_node(inst: Obj, *, initialised: bool) -> Obj:
    """A kubelet's Node (`--cloud-provider=external --provider-id`), or, `initialised`, the same
    Node as the cloud node controller leaves it (labels set, taint gone)."""
    name = inst["PrivateDnsName"]
    labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}
    taints = [{"key": TAINT_UNINITIALIZED, "value": "true", "effect": "NoSchedule"}]
    if initialised:
        taints = []
        zone = str(inst["zone"])
        for keys, value in (
            (("node.kubernetes.io/instance-type", "beta.kubernetes.io/instance-type"), "m5.large"),
            (("topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone"), zone),
            (("topology.kubernetes.io/region", "failure-domain.beta.kubernetes.io/region"), REGION),
        ):
            labels.update(dict.fromkeys(keys, value))
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    resources = {"pods": "110", "cpu": "2", "memory": "8Gi"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "providerID": f"aws:///{inst['zone']}/{inst['InstanceId']}",
            "podCIDR": inst["cidr"],
            "podCIDRs": [inst["cidr"]],
            "taints": taints,
        },
        "status": {
            "capacity": resources,
            "allocatable": resources,
            "addresses": [
                {"type": "InternalIP", "address": inst["PrivateIpAddress"]},
                {"type": "Hostname", "address": name},
            ],
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "kubelet is posting ready status",
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": now,
                }
            ],
        },
    }


def make_service(name: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "type": "LoadBalancer",
            "selector": {"app": name},
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
        },
    }


async def _gather_bounded(coros: list[Awaitable[Any]], limit: int = 32) -> None:
    sem = asyncio.Semaphore(limit)

    async def one(c: Awaitable[Any]) -> None:
        async with sem:
            await c

    await asyncio.gather(*(one(c) for c in coros))


async def _wait_until(
    check: Callable[[], Awaitable[bool]], timeout: float, what: str, every: float = 0.5
) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(every)


def _condition(node: Obj, kind: str) -> Obj | None:
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return c  # type: ignore[no-any-return]
    return None


# --- the direct-boto3 baseline -------------------------------------------------------------------


def direct_ingress_seconds(session: boto3.Session, url: str, layout: Layout, services: int) -> float:
    """The essential calls for `services` NLBs, made serially with boto3 (no rate limit)."""
    elbv2 = session.client("elbv2", region_name=REGION, endpoint_url=url)
    targets = [{"Id": i["InstanceId"], "Port": 30080} for i in layout.instances]
    made: list[tuple[str, str]] = []
    t0 = time.perf_counter()
    for k in range(services):
        lb = elbv2.create_load_balancer(
            Name=f"base-{k}", Subnets=list(layout.subnets), Scheme="internet-facing", Type="network"
        )["LoadBalancers"][0]
        tg = elbv2.create_target_group(
            Name=f"base-tg-{k}", Protocol="TCP", Port=30080, VpcId=layout.vpc, TargetType="instance"
        )["TargetGroups"][0]
        elbv2.register_targets(TargetGroupArn=tg["TargetGroupArn"], Targets=targets)
        elbv2.create_listener(
            LoadBalancerArn=lb["LoadBalancerArn"],
            Protocol="TCP",
            Port=80,
            DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}],
        )
        made.append((lb["LoadBalancerArn"], tg["TargetGroupArn"]))
    elapsed = time.perf_counter() - t0
    for lb_arn, tg_arn in made:  # not timed: leave moto as the CCM found it
        elbv2.delete_load_balancer(LoadBalancerArn=lb_arn)
        elbv2.delete_target_group(TargetGroupArn=tg_arn)
    return elapsed


# --- the run -------------------------------------------------------------------------------------


@dataclass
class CcmRun:
    nodes: int
    services: int
    scale: float
    qps: float
    uninitialised: int
    warmup_s: float = 0.0
    ingress_s: float = 0.0
    direct_s: float = 0.0
    window_s: float = 0.0
    t_warm: tuple[float, float] = (0.0, 0.0)
    t_ingress: tuple[float, float] = (0.0, 0.0)
    t_steady: tuple[float, float] = (0.0, 0.0)


def _log(msg: str) -> None:
    print(f"[ccm {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


async def drive(
    run: CcmRun, kubeconfig: Path, url: str, layout: Layout, session: boto3.Session, ledger: Ledger
) -> None:
    from ccm.manager import USER_AGENT, build_manager
    from ccm.settings import CloudSettings
    from controlplane.client import Client, load_kubeconfig
    from controlplane.controllers.runtime import LeaderElectionConfig, R
    from providers.aws import build
    from providers.aws.describe import InstanceLookup
    from providers.aws.session import make_clients
    from providers.config import CloudConfig

    s = run.scale
    config = CloudConfig(
        cluster_id=CLUSTER,
        region=REGION,
        zone=ZONES[0],
        vpc_id=layout.vpc,
        subnet_ids=layout.subnets,
        security_group_ids=(layout.group,),
        endpoint_url=url,
        qps=run.qps,
        burst=20,
    )
    clients = make_clients(config, session=session)
    ledger.attach(clients)
    clock = VirtualClock()
    # The cache TTL is the provider's default (10 s), on the virtual clock like the periods.
    provider = build(clients, config, lookup=InstanceLookup(clients, clock=clock.monotonic))
    settings = CloudSettings(
        provider=provider,
        cluster_id=CLUSTER,
        cluster_cidr=CLUSTER_CIDR,
        node_status_update_frequency=UPSTREAM_PERIODS["node-status"],
        node_monitor_period=UPSTREAM_PERIODS["node-lifecycle"],
        route_reconciliation_period=UPSTREAM_PERIODS["route"],
        node_sync_period=UPSTREAM_PERIODS["service-nodes"],
        sweep_period=UPSTREAM_PERIODS["sweep"],
    )
    async with (
        Client(load_kubeconfig(kubeconfig), user_agent="pinnace-bench") as api,
        Client(load_kubeconfig(kubeconfig), user_agent=USER_AGENT) as ccm_client,
    ):
        _log(f"registering {run.nodes} nodes")
        await _gather_bounded(
            [
                api.create(R.NODES, make_node(inst, initialised=k >= run.uninitialised))
                for k, inst in enumerate(layout.instances)
            ]
        )

        stop = asyncio.Event()
        manager = build_manager(
            ccm_client, settings, leader_election=LeaderElectionConfig(enabled=False), clock=clock
        )
        t0 = time.monotonic()
        ccm_task = asyncio.create_task(manager.run(stop))
        try:

            async def converged() -> bool:
                if ccm_task.done():
                    ccm_task.result()
                    raise RuntimeError("the CCM stopped")
                items = (await api.list(R.NODES)).get("items") or []
                done = 0
                for n in items:
                    tainted = any(
                        t.get("key") == TAINT_UNINITIALIZED for t in (n.get("spec") or {}).get("taints") or []
                    )
                    net = _condition(n, "NetworkUnavailable")
                    if not tainted and net is not None and net.get("status") == "False":
                        done += 1
                return done == run.nodes

            await _wait_until(converged, 600, "every node initialised and routed", every=1.0)
            run.warmup_s = time.monotonic() - t0
            run.t_warm = (t0, time.monotonic())
            _log(f"warm-up done in {run.warmup_s:.1f} s; creating {run.services} LoadBalancer Services")

            names = [f"lb-{k:03d}" for k in range(run.services)]
            t1 = time.monotonic()
            await _gather_bounded([api.create(R.SERVICES, make_service(n), NAMESPACE) for n in names])

            async def all_ingress() -> bool:
                if ccm_task.done():
                    ccm_task.result()
                    raise RuntimeError("the CCM stopped")
                items = (await api.list(R.SERVICES, NAMESPACE)).get("items") or []
                ready = sum(
                    1
                    for svc in items
                    if svc["metadata"]["name"] in names
                    and ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress")
                )
                return ready == len(names)

            await _wait_until(all_ingress, 1800, "every Service's ingress", every=0.25)
            run.ingress_s = time.monotonic() - t1
            run.t_ingress = (t1, time.monotonic())
            _log(f"{run.services} ingresses in {run.ingress_s:.1f} s; settling at period scale {s:g}")
            clock.set_scale(s)

            # Settled: no mutating call for two route periods (retries and late updates are done).
            quiet = max(2 * UPSTREAM_PERIODS["route"] * s, 3.0)

            async def settled() -> bool:
                last = max((c.t for c in ledger.calls if mutating(c.op)), default=0.0)
                return time.monotonic() - last > quiet

            await _wait_until(settled, 300, "no more mutating calls", every=0.5)
            run.window_s = 3 * UPSTREAM_PERIODS["node-status"] * s
            _log(f"steady-state window of {run.window_s:.0f} s")
            t2 = time.monotonic()
            await asyncio.sleep(run.window_s)
            run.t_steady = (t2, time.monotonic())
            if ccm_task.done():
                ccm_task.result()
        finally:
            stop.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ccm_task, 30)
    _log("measuring the direct-boto3 baseline")
    run.direct_s = direct_ingress_seconds(session, url, layout, run.services)


def ccm_run(
    nodes: int,
    services: int,
    scale: float,
    qps: float,
    uninitialised: int,
    server_args: tuple[str, ...] = (),
) -> tuple[CcmRun, Ledger]:
    for key, value in (
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_DEFAULT_REGION", REGION),
    ):
        os.environ.setdefault(key, value)
    run = CcmRun(
        nodes=nodes, services=services, scale=scale, qps=qps, uninitialised=min(uninitialised, nodes)
    )
    ledger = Ledger()
    undo = instrument(ledger)
    try:
        with scratch_dir("pinnace-bench-ccm-") as root, moto_server() as url:
            session = boto3.Session(region_name=REGION)
            _log(f"moto at {url}; launching {nodes} instances and their routes")
            layout = build_layout(session, url, nodes)
            args = ("--cloud-provider", "none", "--controllers=", *server_args)
            with pinnace_server(root, args, name="ccm") as server:
                asyncio.run(drive(run, server.data_dir / "admin.kubeconfig", url, layout, session, ledger))
    finally:
        undo()
    return run, ledger


# --- the report ----------------------------------------------------------------------------------


def _by_op(calls: list[Call]) -> str:
    counts = collections.Counter(f"{c.op}" for c in calls)
    return ", ".join(f"{op} {n}" for op, n in counts.most_common()) or "none"


def upstream_calls_per_node_hour(nodes: int) -> float:
    """What upstream's defaults imply for a converged cluster of Ready nodes whose node set does
    not change, read favourably to upstream: the route controller's ListRoutes every 10 s is one
    DescribeRouteTables plus one DescribeInstances naming every route target by InstanceIds
    (cloud-provider-aws getInstancesByIDs: one unfiltered, unpaginated call, which draws on EC2's
    smaller 50/10 bucket); the node controller's address refresh every 5 min costs one
    DescribeInstances per 150 nodes (filterNodeLimit batching; without a batcher it is one per
    node); the lifecycle controller asks only about NotReady nodes and the service controller's
    node sync calls nothing when the hosts did not change."""
    batches = math.ceil(nodes / FILTER_NODE_LIMIT)
    per_hour = 3600 / UPSTREAM_PERIODS["route"] * 2 + 3600 / UPSTREAM_PERIODS["node-status"] * batches
    return per_hour / nodes


def rows(run: CcmRun, ledger: Ledger) -> tuple[list[Row], list[str]]:
    out: list[Row] = []
    notes: list[str] = []
    warm = ledger.between(*run.t_warm)
    ingress = ledger.between(*run.t_ingress)
    steady = ledger.between(*run.t_steady)
    syncs = ledger.syncs_between(*run.t_steady)

    out.append(
        Row(
            f"time for {run.services} new LoadBalancer Services to all have an ingress ({run.nodes} nodes)",
            run.ingress_s,
            "s",
            baseline=run.direct_s,
            baseline_label="the essential elbv2 calls made directly with boto3, serially",
            target="informational",
        )
    )
    floor = len(ingress) / run.qps
    out.append(
        Row(
            "AWS calls during the ingress phase",
            float(len(ingress)),
            "calls",
            target=f"informational: {len(ingress) / max(run.services, 1):.1f} per Service; "
            f"the client rate limit ({run.qps:g} qps) alone needs {floor:.0f} s for them",
        )
    )
    muts = [c for c in steady if mutating(c.op)]
    out.append(
        Row(
            f"mutating AWS calls in steady state ({run.window_s:.0f} s window)",
            float(len(muts)),
            "calls",
            target="0",
            passed=not muts,
        )
    )
    # DescribeInstances per sync, for every sync that made any.
    per_sync: collections.Counter[tuple[str, int]] = collections.Counter(
        (c.sync, c.sync_id) for c in steady if c.op == "DescribeInstances"
    )
    worst = max(per_sync.values(), default=0)
    worst_by: dict[str, int] = {}
    for (name, _), n in per_sync.items():
        worst_by[name] = max(worst_by.get(name, 0), n)
    notes.append(
        "DescribeInstances in the worst sync of each kind: "
        + (", ".join(f"{k} {v}" for k, v in sorted(worst_by.items())) or "none")
    )
    groups = max(1.0, run.nodes / FILTER_NODE_LIMIT)
    out.append(
        Row(
            "DescribeInstances calls per sync per 150 nodes (worst sync in the window)",
            worst / groups,
            "calls",
            target="<= 1",
            passed=worst / groups <= 1.0,
        )
    )
    # Calls per node per hour at upstream's periods.
    counted = collections.Counter(name for _, name, _ in syncs)
    calls_by_sync = collections.Counter(c.sync for c in steady)
    per_hour = 0.0
    detail = []
    for name, period in UPSTREAM_PERIODS.items():
        n = counted.get(name, 0)
        if not n:
            continue
        mean = calls_by_sync.get(name, 0) / n
        per_hour += mean * 3600 / period
        detail.append(f"{name}: {n} syncs, {mean:.2f} calls/sync")
    stray = sum(v for k, v in calls_by_sync.items() if k not in UPSTREAM_PERIODS)
    upstream = upstream_calls_per_node_hour(run.nodes)
    out.append(
        Row(
            "AWS calls per node per hour (steady state, at upstream periods)",
            per_hour / run.nodes,
            "calls",
            baseline=upstream,
            baseline_label="upstream defaults + cloud-provider-aws batching, modelled",
            target="compare (informational)",
        )
    )
    describe_budget = 20 * 3600  # EC2 non-mutating Describe bucket refill: 20/s
    notes.append(
        f"scale: {run.nodes} nodes (EC2 instances in moto), {run.services} LoadBalancer Services (NLB), "
        "warm-up and ingress at upstream periods; the steady-state window with every CCM period and "
        f"the instance-cache TTL x{run.scale:g} (route {10 * run.scale:g} s, lifecycle "
        f"{5 * run.scale:g} s, node status {300 * run.scale:g} s, node sync {100 * run.scale:g} s); "
        f"client rate limit {run.qps:g} qps / burst 20"
    )
    notes.append(
        f"warm-up ({run.uninitialised} nodes to initialise, every node's route condition to set): "
        f"{run.warmup_s:.1f} s, {len(warm)} calls: {_by_op(warm)}"
    )
    notes.append(f"ingress phase calls: {_by_op(ingress)}")
    notes.append(f"steady-state calls: {_by_op(steady)}; by sync: {'; '.join(detail) or 'none'}")
    if stray:
        notes.append(
            f"{stray} steady-state calls outside any periodic sync: {_by_op([c for c in steady if c.sync not in UPSTREAM_PERIODS])}"
        )
    notes.append(
        f"at this rate the cluster draws {per_hour / describe_budget * 100:.2f}% of EC2's Describe bucket "
        f"refill (20/s per account and region); upstream's model: {upstream * run.nodes / describe_budget * 100:.2f}%"
    )
    return out, notes


def run(
    nodes: int = 1000,
    services: int = 100,
    scale: float = 0.1,
    qps: float = 10.0,
    server_args: tuple[str, ...] = (),
    uninitialised: int = 50,
) -> BenchResult:
    result = BenchResult(
        f"Cloud controller manager against moto ({nodes} nodes, {services} LoadBalancer Services)"
    )
    ccm, ledger = ccm_run(nodes, services, scale, qps, uninitialised, server_args)
    result.rows, result.notes = rows(ccm, ledger)
    return result


def main() -> None:
    # SIGTERM as an exception, so moto and the API server are stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--services", type=int, default=100)
    parser.add_argument("--period-scale", type=float, default=0.1)
    parser.add_argument(
        "--uninitialized", type=int, default=50, help="nodes registered tainted, for the CCM to initialise"
    )
    parser.add_argument("--qps", type=float, default=10.0, help="the provider's client-side rate limit")
    args = parser.parse_args()
    print_result(
        run(args.nodes, args.services, args.period_scale, args.qps, uninitialised=args.uninitialized)
    )


if __name__ == "__main__":
    main()
