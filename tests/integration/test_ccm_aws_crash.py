"""Done-when 4 of the cloud issue: a CCM SIGKILLed in the middle of creating and in the middle
of deleting load balancers leaves nothing leaked and nothing duplicated once it restarts.

`pinnace ccm --cloud-provider aws` runs alone against a server running none in process, so it
can be killed alone; every AWS call it makes is slowed down (the cloud config's
`aws.faultInjection.latency`) so that a kill lands between the calls of one ensure or delete.
Each round creates three Services (two NLBs, one classic ELB), kills the CCM a little after the
first load balancer started being made, lets a fresh copy take over and checks one load
balancer per Service with the right listeners and target groups; then deletes them, kills the
copy at work a little after the first delete started, lets another fresh copy take over and
checks that nothing owned by the Services is left. The fresh copies are standbys waiting for the
lease (see `Ccms`), so a takeover costs the lease's expiry, not an interpreter's start-up.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from controlplane.client import Client
from controlplane.controllers.runtime import R
from providers.tags import OWNER_UID_TAG
from tests.integration.conftest import REPO, ServerProcess, start_server
from tests.integration.controller_harness import client_for, eventually
from tests.integration.moto_server import (
    AWS_ENV,
    Account,
    MotoServer,
    lay_out,
    lb_service,
    load_balancer_name,
    register,
    shared_moto,
)

CLUSTER = "crash"
CLASSIC = {"service.beta.kubernetes.io/aws-load-balancer-type": "classic"}
LATENCY = 0.15  # seconds added to every AWS call of the CCM
# How long after the first "creating ..." / "deleting ..." line the CCM is killed, per round.
KILL_AFTER = ((0.4, 0.3), (1.5, 1.0))
CIDR_INDEX = 2  # the VPC's 10.<i>.0.0/16: each module sharing moto has its own


@pytest.fixture(scope="module")
def moto(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> MotoServer:
    return shared_moto(request.config, tmp_path_factory.mktemp("moto"))


@pytest.fixture(scope="module")
def plain_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = start_server(
        tmp_path_factory.mktemp("ccm-aws-crash") / "data", "--cloud-provider", "none", "--disable-scheduler"
    )
    yield proc
    assert proc.stop() == 0, proc.log()[-4000:]


@pytest.fixture
async def client(plain_server: ServerProcess) -> AsyncIterator[Client]:
    async with client_for(plain_server) as c:
        yield c


class Ccm:
    """`pinnace ccm` as a process of its own, with a log of its own."""

    def __init__(self, server: ServerProcess, config: Path, log: Path) -> None:
        self.log = log
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "controlplane",
                "--log-format",
                "text",
                "ccm",
                "--kubeconfig",
                str(server.kubeconfig),
                "--cloud-provider",
                "aws",
                "--cloud-config",
                str(config),
                "--controllers",
                "cloud-node,service,cloud-garbage-sweep",
                "--leader-elect-lease-duration",
                "2",
                "--leader-elect-renew-deadline",
                "1.5",
                "--leader-elect-retry-period",
                "0.25",
            ],
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env={**os.environ, **AWS_ENV},
        )

    def alive(self) -> bool:
        return self.process.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def kill(self) -> None:
        assert self.alive(), self.output()[-3000:]
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> int:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


class Ccms:
    """Two copies of the CCM at all times, as an HA deployment runs them: one leads, the other
    waits for the lease. A killed leader's successor is a fresh process that has never led (each
    term of leadership starts from nothing), as a restarted one would be; starting it ahead of
    the kill only spares the wait for an interpreter to start."""

    def __init__(self, server: ServerProcess, config: Path, log_dir: Path) -> None:
        self.server, self.config, self.log_dir = server, config, log_dir
        self.all: list[Ccm] = []

    def live(self) -> list[Ccm]:
        return [c for c in self.all if c.alive()]

    def top_up(self) -> None:
        while len(self.live()) < 2:
            self.all.append(Ccm(self.server, self.config, self.log_dir / f"ccm-{len(self.all)}.log"))

    def logs(self) -> str:
        return "".join(f"--- {c.log.name}\n{c.output()[-2000:]}" for c in self.all)

    def wait_for_line(self, needle: str, timeout: float = 60) -> Ccm:
        """The live copy that logged `needle` (the leader at work)."""
        deadline = time.monotonic() + timeout
        while True:
            for ccm in self.live():
                if needle in ccm.output():
                    return ccm
            if time.monotonic() > deadline:
                raise AssertionError(f"no CCM logged {needle!r}:\n{self.logs()}")
            time.sleep(0.02)

    def kill_leader_at(self, needle: str, after: float) -> None:
        """SIGKILL the copy at work `after` seconds after it logged `needle`; a new standby is
        started in its place."""
        leader = self.wait_for_line(needle)
        time.sleep(after)
        leader.kill()
        self.top_up()

    def leader(self, holder: str) -> Ccm:
        """The live copy whose identity `holder` (the Lease's holderIdentity) is."""
        (found,) = [c for c in self.live() if f"{holder} became the leader" in c.output()]
        return found

    def stop(self) -> list[int]:
        return [c.stop() for c in self.all]


def owned_by(account: Account, uids: set[str]) -> dict[str, list[tuple[str, str]]]:
    """Every load balancer, target group and security group tagged with one of the Services'
    UIDs, by UID: (kind, name)."""
    found: dict[str, list[tuple[str, str]]] = {uid: [] for uid in uids}
    elbv2, elb, ec2 = account.client("elbv2"), account.client("elb"), account.client("ec2")
    arns: dict[str, tuple[str, str]] = {}
    for lb in elbv2.describe_load_balancers()["LoadBalancers"]:
        arns[lb["LoadBalancerArn"]] = ("nlb", lb["LoadBalancerName"])
    for tg in elbv2.describe_target_groups()["TargetGroups"]:
        arns[tg["TargetGroupArn"]] = ("target-group", tg["TargetGroupName"])
    for i in range(0, len(arns), 20):
        chunk = list(arns)[i : i + 20]
        for desc in elbv2.describe_tags(ResourceArns=chunk)["TagDescriptions"]:
            uid = {t["Key"]: t["Value"] for t in desc["Tags"]}.get(OWNER_UID_TAG)
            if uid in found:
                found[uid].append(arns[desc["ResourceArn"]])
    names = [d["LoadBalancerName"] for d in elb.describe_load_balancers()["LoadBalancerDescriptions"]]
    if names:
        for desc in elb.describe_tags(LoadBalancerNames=names)["TagDescriptions"]:
            uid = {t["Key"]: t["Value"] for t in desc["Tags"]}.get(OWNER_UID_TAG)
            if uid in found:
                found[uid].append(("classic", desc["LoadBalancerName"]))
    for group in ec2.describe_security_groups()["SecurityGroups"]:
        uid = {t["Key"]: t["Value"] for t in group.get("Tags", [])}.get(OWNER_UID_TAG)
        if uid in found:
            found[uid].append(("security-group", group["GroupName"]))
    return {uid: sorted(items) for uid, items in found.items()}


def lb_rules(account: Account) -> list[str]:
    group = account.client("ec2").describe_security_groups(GroupIds=[account.node_group])["SecurityGroups"][0]
    return [
        r.get("Description", "")
        for p in group["IpPermissions"]
        for r in p.get("IpRanges", [])
        if r.get("Description", "").startswith("kubernetes.io/rule/")
    ]


async def test_crash_mid_create_and_mid_delete_leaks_and_duplicates_nothing(
    plain_server: ServerProcess, client: Client, moto: MotoServer, tmp_path: Path
) -> None:
    account = lay_out(moto.url, CLUSTER, cidr_index=CIDR_INDEX)
    config = account.cloud_config(
        tmp_path / "cloud.yaml", aws={"faultInjection": {"rate": 0, "latency": LATENCY}}
    )
    ccms = Ccms(plain_server, config, tmp_path)
    try:
        ccms.top_up()  # their start-up overlaps the nodes' registration
        instances = account.launch(2)
        ids = sorted(i["InstanceId"] for i in instances)
        for inst in instances:
            await register(client, inst)
        for round_, (kill_create, kill_delete) in enumerate(KILL_AFTER):
            ns = f"crash{round_}-{uuid.uuid4().hex[:5]}"
            await client.create(
                R.NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
            )
            ccms.top_up()
            specs = {
                "a": lb_service("a", [80, 443]),
                "b": lb_service("b", [8080]),
                "c": lb_service("c", [80], CLASSIC),
            }
            created = {n: await client.create(R.SERVICES, s, ns) for n, s in specs.items()}
            uids = {n: s["metadata"]["uid"] for n, s in created.items()}

            # -- killed in the middle of creating ---------------------------------------------------
            # (only the leader works, so the copy that logs "creating " is the one to kill)
            ccms.kill_leader_at("creating ", kill_create)
            half_made = owned_by(account, set(uids.values()))
            services = {s["metadata"]["name"]: s for s in (await client.list(R.SERVICES, ns))["items"]}
            assert not all(
                (s.get("status", {}).get("loadBalancer") or {}).get("ingress") for s in services.values()
            ), "the kill was meant to land before every load balancer was done"
            print(f"round {round_}: killed mid-create with {half_made}")

            async def ensured(ns: str = ns) -> dict[str, Any]:
                items = {s["metadata"]["name"]: s for s in (await client.list(R.SERVICES, ns))["items"]}
                if all(
                    (s.get("status", {}).get("loadBalancer") or {}).get("ingress") for s in items.values()
                ):
                    return items
                return {}

            items = await eventually(ensured, timeout=60, interval=0.2)
            made = owned_by(account, set(uids.values()))
            for name, uid in uids.items():
                lb = load_balancer_name(uid)
                ports = len(items[name]["spec"]["ports"])
                if name == "c":
                    assert made[uid] == [("classic", lb), ("security-group", f"k8s-elb-{lb}")], made[uid]
                else:
                    kinds = [k for k, _ in made[uid]]
                    assert kinds == ["nlb"] + ["target-group"] * ports, made[uid]
            elbv2 = account.client("elbv2")
            for name in ("a", "b"):
                (lb,) = elbv2.describe_load_balancers(Names=[load_balancer_name(uids[name])])["LoadBalancers"]
                listeners = elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
                assert sorted(li["Port"] for li in listeners) == sorted(
                    p["port"] for p in items[name]["spec"]["ports"]
                )
                for li in listeners:
                    tg = li["DefaultActions"][0]["TargetGroupArn"]
                    health = elbv2.describe_target_health(TargetGroupArn=tg)["TargetHealthDescriptions"]
                    assert sorted(h["Target"]["Id"] for h in health) == ids

            # -- killed in the middle of deleting ---------------------------------------------------
            for name in specs:
                await client.delete(R.SERVICES, name, ns)
            ccms.kill_leader_at("deleting ", kill_delete)
            print(f"round {round_}: killed mid-delete with {owned_by(account, set(uids.values()))}")

            async def all_gone(ns: str = ns, uids: dict[str, str] = uids) -> bool:
                if (await client.list(R.SERVICES, ns))["items"]:
                    return False
                return not any(owned_by(account, set(uids.values())).values()) and not lb_rules(account)

            await eventually(all_gone, timeout=60, interval=0.2)
            # The last leader stops cleanly; its standby leads the next round.
            lease = await client.get(R.LEASES, "cloud-controller-manager", "kube-system")
            assert ccms.leader(lease["spec"]["holderIdentity"]).stop() == 0, ccms.logs()
    finally:
        codes = ccms.stop()
    kills = 2 * len(KILL_AFTER)
    assert sorted(codes) == [-signal.SIGKILL] * kills + [0] * (len(codes) - kills), (codes, ccms.logs())
    # The provider's own listing agrees: nothing of any Service is left.
    inventory = account.provider(account.cloud_config(tmp_path / "observer.yaml")).inventory
    assert inventory is not None
    left = await inventory.list_owned(CLUSTER)
    assert [r for r in left if r.owner is not None and r.owner.kind == "Service"] == []
