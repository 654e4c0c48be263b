"""Done-when 4 of the cloud issue: a CCM SIGKILLed in the middle of creating and in the middle
of deleting load balancers leaves nothing leaked and nothing duplicated once it restarts.

`pinnace ccm --cloud-provider aws` runs alone against a server running none in process, so it
can be killed alone; every AWS call it makes is slowed down (the cloud config's
`aws.faultInjection.latency`) so that a kill lands between the calls of one ensure or delete.
Each round creates three Services (two NLBs, one classic ELB), kills the CCM a little after the
first load balancer started being made, restarts it and checks one load balancer per Service
with the right listeners and target groups; then deletes them, kills it again a little after
the first delete started, restarts it and checks that nothing owned by the Services is left.
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
    start_moto,
)

CLUSTER = "crash"
CLASSIC = {"service.beta.kubernetes.io/aws-load-balancer-type": "classic"}
LATENCY = 0.15  # seconds added to every AWS call of the CCM
# How long after the first "creating ..." / "deleting ..." line the CCM is killed, per round.
KILL_AFTER = ((0.4, 0.3), (1.5, 1.0))


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = start_moto(tmp_path_factory.mktemp("moto-crash"))
    yield server
    server.stop()


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
    """`pinnace ccm` as a process of its own, restarted at will."""

    def __init__(self, server: ServerProcess, config: Path, log: Path) -> None:
        self.server, self.config, self.log = server, config, log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.offset = self.log.stat().st_size if self.log.exists() else 0
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "controlplane",
                "--log-format",
                "text",
                "ccm",
                "--kubeconfig",
                str(self.server.kubeconfig),
                "--cloud-provider",
                "aws",
                "--cloud-config",
                str(self.config),
                "--controllers",
                "cloud-node,service,cloud-garbage-sweep",
                "--leader-elect-lease-duration",
                "2",
                "--leader-elect-renew-deadline",
                "1.5",
                "--leader-elect-retry-period",
                "0.25",
            ],
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env={**os.environ, **AWS_ENV},
        )

    def output(self) -> str:
        with self.log.open("rb") as f:
            f.seek(self.offset)
            return f.read().decode(errors="replace")

    def wait_for_line(self, needle: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.output():
            assert self.process is not None and self.process.poll() is None, self.output()[-3000:]
            if time.monotonic() > deadline:
                raise AssertionError(f"the CCM never logged {needle!r}:\n{self.output()[-3000:]}")
            time.sleep(0.02)

    def kill(self) -> None:
        assert self.process is not None and self.process.poll() is None, self.output()[-3000:]
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> int:
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


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
    account = lay_out(moto.url, CLUSTER)
    config = account.cloud_config(
        tmp_path / "cloud.yaml", aws={"faultInjection": {"rate": 0, "latency": LATENCY}}
    )
    instances = account.launch(2)
    ids = sorted(i["InstanceId"] for i in instances)
    for inst in instances:
        await register(client, inst)
    ccm = Ccm(plain_server, config, tmp_path / "ccm.log")
    try:
        for round_, (kill_create, kill_delete) in enumerate(KILL_AFTER):
            ns = f"crash{round_}-{uuid.uuid4().hex[:5]}"
            await client.create(
                R.NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
            )
            ccm.start()
            specs = {
                "a": lb_service("a", [80, 443]),
                "b": lb_service("b", [8080]),
                "c": lb_service("c", [80], CLASSIC),
            }
            created = {n: await client.create(R.SERVICES, s, ns) for n, s in specs.items()}
            uids = {n: s["metadata"]["uid"] for n, s in created.items()}

            # -- killed in the middle of creating ---------------------------------------------------
            ccm.wait_for_line("creating ")
            time.sleep(kill_create)
            ccm.kill()
            half_made = owned_by(account, set(uids.values()))
            services = {s["metadata"]["name"]: s for s in (await client.list(R.SERVICES, ns))["items"]}
            assert not all(
                (s.get("status", {}).get("loadBalancer") or {}).get("ingress") for s in services.values()
            ), "the kill was meant to land before every load balancer was done"
            print(f"round {round_}: killed mid-create with {half_made}")

            ccm.start()

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
            ccm.wait_for_line("deleting ")
            time.sleep(kill_delete)
            ccm.kill()
            print(f"round {round_}: killed mid-delete with {owned_by(account, set(uids.values()))}")
            ccm.start()

            async def all_gone(ns: str = ns, uids: dict[str, str] = uids) -> bool:
                if (await client.list(R.SERVICES, ns))["items"]:
                    return False
                return not any(owned_by(account, set(uids.values())).values()) and not lb_rules(account)

            await eventually(all_gone, timeout=60, interval=0.2)
            assert ccm.stop() == 0, ccm.output()[-3000:]
    finally:
        ccm.stop()
    # The provider's own listing agrees: nothing of any Service is left.
    inventory = account.provider(account.cloud_config(tmp_path / "observer.yaml")).inventory
    assert inventory is not None
    left = await inventory.list_owned(CLUSTER)
    assert [r for r in left if r.owner is not None and r.owner.kind == "Service"] == []
