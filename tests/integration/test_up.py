"""Done-when 1 and 2 of the provisioning issue: the real `pinnace up` as a subprocess.

Local cloud: three Ready nodes from nothing; a Deployment exposed as a LoadBalancer gets running
pods and an ingress address; SIGINT exits 0; a second `pinnace up` on the same data directory
resumes the same cluster (same nodes, same instances, no new ones); `pinnace down` leaves
nothing.

moto's server: `pinnace up --provider aws --aws-endpoint-url` on the account's default VPC makes
three EC2 instances whose user-data passes `cloud-init schema`; the nodes join by CSR with
providerIDs `aws:///<zone>/<instance-id>` and lose the uninitialized taint; a LoadBalancer
Service gets an NLB; `kubectl scale nodepool` to 5 and back to 2 adds and then terminates
instances; `pinnace down` leaves nothing tagged for the cluster.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.conftest import REPO, free_port
from tests.integration.moto_server import AWS_ENV, REGION, MotoServer, session, shared_moto

PINNACE = REPO / ".venv" / "bin" / "pinnace"
TAINT_UNINITIALIZED = "node.cloudprovider.kubernetes.io/uninitialized"
# Short loops: the defaults suit people, not a test's time budget.
FAST = (
    "--progress-interval",
    "0.2",
    "--fleet-poll-interval",
    "0.2",
    "--provisioner-resync-interval",
    "3",
)


@dataclass
class UpProcess:
    data_dir: Path
    port: int
    process: subprocess.Popen[bytes]
    out_path: Path
    err_path: Path

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "admin.kubeconfig"

    def output(self) -> str:
        return self.out_path.read_text(errors="replace")

    def diagnostics(self) -> str:
        log = self.data_dir / "pinnace.log"
        tail = log.read_text(errors="replace")[-6000:] if log.exists() else ""
        return (
            f"--- stdout\n{self.output()[-4000:]}\n--- stderr\n"
            f"{self.err_path.read_text(errors='replace')[-4000:]}\n--- log\n{tail}"
        )

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern, re.MULTILINE)
        while time.monotonic() < deadline:
            found = regex.search(self.output())
            if found:
                return found
            if self.process.poll() is not None:
                raise AssertionError(
                    f"pinnace up exited with {self.process.returncode}\n{self.diagnostics()}"
                )
            time.sleep(0.1)
        raise AssertionError(f"no {pattern!r} within {timeout}s\n{self.diagnostics()}")

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_up(data_dir: Path, *extra: str, port: int, env: dict[str, str] | None = None) -> UpProcess:
    data_dir.mkdir(parents=True, exist_ok=True)
    stamp = f"{data_dir.name}-{port}-{time.monotonic_ns()}"
    out_path = data_dir.parent / f"up-{stamp}.out"
    err_path = data_dir.parent / f"up-{stamp}.err"
    process = subprocess.Popen(
        [
            str(PINNACE),
            "--log-format",
            "text",
            "up",
            "--data-dir",
            str(data_dir),
            "--port",
            str(port),
            "--wait-timeout",
            "100s",
            *FAST,
            *extra,
        ],
        stdout=out_path.open("wb"),
        stderr=err_path.open("wb"),
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )
    return UpProcess(data_dir, port, process, out_path, err_path)


def run_down(
    data_dir: Path, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(PINNACE),
            "--log-format",
            "text",
            "down",
            "--data-dir",
            str(data_dir),
            "--timeout",
            "60s",
            *extra,
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        timeout=120,
        check=False,
    )


def kubectl(up: UpProcess, *args: str, check: bool = True, timeout: float = 60) -> str:
    result = subprocess.run(
        ["kubectl", "--kubeconfig", str(up.kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "KUBECACHEDIR": str(up.data_dir.parent / "kube-cache")},
    )
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)}: {result.returncode}\n{result.stderr}")
    return result.stdout


def kubectl_json(up: UpProcess, *args: str) -> Any:
    return json.loads(kubectl(up, *args, "-o", "json"))


def eventually(check: Callable[[], Any], *, timeout: float = 60, interval: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
            if result:
                return result
            last: BaseException | None = None
        except AssertionError as exc:
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout}s") from last
        time.sleep(interval)


def ready_nodes(up: UpProcess) -> list[dict[str, Any]]:
    items = kubectl_json(up, "get", "nodes")["items"]
    return [
        n
        for n in items
        if any(
            c["type"] == "Ready" and c["status"] == "True" for c in n.get("status", {}).get("conditions", [])
        )
    ]


def instance_ids(up: UpProcess) -> set[str]:
    machines = kubectl_json(up, "get", "machines")["items"]
    return {m["status"]["instanceID"] for m in machines if m.get("status", {}).get("instanceID")}


def expose_web(up: UpProcess, name: str) -> dict[str, Any]:
    """A Deployment exposed as a LoadBalancer: its pods run and the Service gets an ingress."""
    kubectl(up, "create", "deployment", name, "--image=registry.k8s.io/pause:3.10", "--replicas=2")
    kubectl(up, "expose", "deployment", name, "--port=80", "--target-port=8080", "--type=LoadBalancer")

    def pods_running() -> bool:
        pods = kubectl_json(up, "get", "pods", "-l", f"app={name}")["items"]
        return len(pods) == 2 and all(p.get("status", {}).get("phase") == "Running" for p in pods)

    eventually(pods_running, timeout=60)

    def ingress() -> dict[str, Any] | None:
        svc = kubectl_json(up, "get", "service", name)
        found = (svc.get("status", {}).get("loadBalancer", {}) or {}).get("ingress") or []
        return found[0] if found else None

    result: dict[str, Any] = eventually(ingress, timeout=60)
    return result


# --- done-when 1: the local cloud ------------------------------------------------------------


@pytest.fixture(scope="module")
def local_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("up-local") / "data"


@pytest.fixture(scope="module")
def local_up(local_dir: Path) -> Iterator[UpProcess]:
    # The first machine of a pool named flaky-* fails its install-kubelet step (done-when 3).
    up = start_up(
        local_dir,
        "--nodes",
        "3",
        "--simulate-bootstrap-failure",
        "install-kubelet@flaky-*:1",
        port=free_port(),
    )
    try:
        up.wait_for(r"is up: 3 node\(s\) Ready", timeout=100)
        yield up
    finally:
        up.stop()


def test_up_brings_three_ready_nodes(local_up: UpProcess) -> None:
    out = local_up.output()
    assert "Created NodePool 'default' with 3 node(s)" in out
    assert f"export KUBECONFIG={local_up.kubeconfig}" in out
    assert "kubectl get nodes" in out
    assert (local_up.data_dir / "VERSION").read_text().strip() == "1"
    nodes = ready_nodes(local_up)
    assert len(nodes) == 3
    for node in nodes:
        assert node["spec"]["providerID"].startswith("local:///")
        assert TAINT_UNINITIALIZED not in {t["key"] for t in node["spec"].get("taints", [])}
    machines = kubectl_json(local_up, "get", "machines")["items"]
    assert sorted(m["status"]["phase"] for m in machines) == ["Running"] * 3
    # The progress showed each machine's way there, a line per change.
    assert re.search(r"^machine default-\S+: Bootstrapping .*step=", out, re.MULTILINE), out


def test_deployment_exposed_as_load_balancer_runs_and_gets_an_address(local_up: UpProcess) -> None:
    ingress = expose_web(local_up, "web")
    assert ingress.get("ip") or ingress.get("hostname")


def test_a_failed_bootstrap_step_shows_in_the_machine_and_the_machine_is_replaced(
    local_up: UpProcess, tmp_path: Path
) -> None:
    """Done-when 3. maxUnhealthy 0 keeps the failed Machine for inspection; raising it lets the
    pool replace it, and the replacement (the fault was for one machine) joins."""
    pool = {
        "apiVersion": "infra.pinnace.dev/v1alpha1",
        "kind": "NodePool",
        "metadata": {"name": "flaky"},
        "spec": {"replicas": 1, "remediation": {"maxUnhealthy": 0}},
    }
    manifest = tmp_path / "flaky.yaml"
    manifest.write_text(json.dumps(pool))
    kubectl(local_up, "apply", "-f", str(manifest))
    selector = "infra.pinnace.dev/node-pool=flaky"
    try:

        def failed() -> dict[str, Any] | None:
            items = yaml.safe_load(kubectl(local_up, "get", "machine", "-l", selector, "-o", "yaml"))["items"]
            return next((m for m in items if m.get("status", {}).get("phase") == "Failed"), None)

        machine = eventually(failed, timeout=60)
        status = machine["status"]
        assert status["bootstrap"]["failedStep"] == "install-kubelet"
        step = next(s for s in status["bootstrap"]["steps"] if s["name"] == "install-kubelet")
        assert step["state"] == "Failed"
        assert "step install-kubelet failed" in step["logTail"]
        assert status["failureReason"] == "BootstrapFailed"
        conditions = {c["type"]: c for c in status["conditions"]}
        assert conditions["InstallKubelet"]["status"] == "False"
        assert conditions["BootstrapSucceeded"]["status"] == "False"
        # The progress view polls on its own interval: it may print the line a moment after kubectl saw it.
        local_up.wait_for(r"^machine flaky-\S+: Failed\b", timeout=15)

        kubectl(
            local_up,
            "patch",
            "nodepool",
            "flaky",
            "--type=merge",
            "-p",
            '{"spec":{"remediation":{"maxUnhealthy":1}}}',
        )

        def replaced() -> bool:
            items = kubectl_json(local_up, "get", "machine", "-l", selector)["items"]
            names = {m["metadata"]["name"] for m in items}
            running = [m for m in items if m.get("status", {}).get("phase") == "Running"]
            return machine["metadata"]["name"] not in names and len(running) == 1

        eventually(replaced, timeout=90)
    finally:
        # Gone either way, so the tests after this one see only the default pool.
        kubectl(local_up, "delete", "nodepool", "flaky", "--ignore-not-found", "--wait=true", timeout=120)
        eventually(lambda: not kubectl_json(local_up, "get", "machine", "-l", selector)["items"], timeout=60)


def test_second_up_resumes_the_same_cluster_then_down_leaves_nothing(
    local_up: UpProcess, local_dir: Path
) -> None:
    nodes = {n["metadata"]["name"] for n in ready_nodes(local_up)}
    instances = instance_ids(local_up)
    ca = (local_dir / "pki" / "ca.crt").read_bytes()
    assert local_up.stop(signal.SIGINT) == 0
    assert "Stopped." in local_up.output()

    again = start_up(local_dir, port=local_up.port)
    try:
        again.wait_for(r"is up: 3 node\(s\) Ready", timeout=100)
        out = again.output()
        assert "Resuming cluster 'pinnace': node pools default" in out
        assert "Created NodePool" not in out
        assert (local_dir / "pki" / "ca.crt").read_bytes() == ca
        assert {n["metadata"]["name"] for n in ready_nodes(again)} == nodes
        assert instance_ids(again) == instances

        down = run_down(local_dir)
        assert down.returncode == 0, down.stdout + down.stderr
        assert "deleting NodePool default" in down.stdout
        assert "nothing tagged kubernetes.io/cluster/pinnace=owned is left" in down.stdout
        assert kubectl_json(again, "get", "machines")["items"] == []
    finally:
        assert again.stop(signal.SIGTERM) == 0, again.diagnostics()


def test_port_in_use_is_a_clear_error(local_dir: Path, tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        up = start_up(tmp_path / "busy", port=port)
        code = up.process.wait(timeout=60)
    err = up.err_path.read_text()
    assert code == 1
    assert f"port {port} on 127.0.0.1 is already in use" in err
    assert "--port" in err
    assert "Traceback" not in err


# --- done-when 2: moto's server --------------------------------------------------------------


@pytest.fixture(scope="module")
def moto(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> MotoServer:
    """The session's moto server: other modules use VPCs of their own, this one the default VPC."""
    return shared_moto(request.config, tmp_path_factory.mktemp("moto"))


@pytest.fixture(scope="module")
def aws_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("up-aws") / "data"


@pytest.fixture(scope="module")
def aws_up(moto: MotoServer, aws_dir: Path) -> Iterator[UpProcess]:
    up = start_up(
        aws_dir,
        "--provider",
        "aws",
        "--aws-endpoint-url",
        moto.url,
        "--region",
        REGION,
        "--cluster-name",
        "up-moto",
        "--nodes",
        "3",
        port=free_port(),
        env=dict(AWS_ENV),
    )
    try:
        up.wait_for(r"is up: 3 node\(s\) Ready", timeout=100)
        yield up
    finally:
        up.stop()


def ec2(moto: MotoServer) -> Any:
    return session().client("ec2", endpoint_url=moto.url, region_name=REGION)


def default_vpc(moto: MotoServer) -> str:
    vpcs = ec2(moto).describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]
    return str(vpcs[0]["VpcId"])


def load_balancers(moto: MotoServer) -> list[dict[str, Any]]:
    """The NLBs in the default VPC (the cluster's; other modules' are in VPCs of their own)."""
    elbv2 = session().client("elbv2", endpoint_url=moto.url, region_name=REGION)
    vpc = default_vpc(moto)
    return [lb for lb in elbv2.describe_load_balancers()["LoadBalancers"] if lb.get("VpcId") == vpc]


def cluster_instances(
    moto: MotoServer, states: tuple[str, ...] = ("pending", "running")
) -> list[dict[str, Any]]:
    reply = ec2(moto).describe_instances(
        Filters=[
            {"Name": "tag:kubernetes.io/cluster/up-moto", "Values": ["owned"]},
            {"Name": "instance-state-name", "Values": list(states)},
        ]
    )
    return [i for r in reply["Reservations"] for i in r["Instances"]]


def test_aws_instances_carry_valid_cloud_init(aws_up: UpProcess, moto: MotoServer, tmp_path: Path) -> None:
    instances = cluster_instances(moto)
    assert len(instances) == 3
    assert {i["VpcId"] for i in instances} == {default_vpc(moto)}
    # The default pool spreads over the default VPC's first three zones.
    assert sorted(i["Placement"]["AvailabilityZone"] for i in instances) == [f"{REGION}{z}" for z in "abc"]
    for inst in instances:
        attr = ec2(moto).describe_instance_attribute(InstanceId=inst["InstanceId"], Attribute="userData")
        raw = base64.b64decode(attr["UserData"]["Value"])
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        assert raw.startswith(b"#cloud-config")
        path = tmp_path / f"{inst['InstanceId']}.yaml"
        path.write_bytes(raw)
        result = subprocess.run(
            ["cloud-init", "schema", "--config-file", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_aws_nodes_joined_by_csr_with_provider_ids_and_initialised(
    aws_up: UpProcess, moto: MotoServer
) -> None:
    by_id = {i["InstanceId"]: i for i in cluster_instances(moto)}
    nodes = ready_nodes(aws_up)
    assert len(nodes) == 3
    for node in nodes:
        match = re.fullmatch(r"aws:///([a-z0-9-]+)/(i-[0-9a-f]+)", node["spec"]["providerID"])
        assert match, node["spec"]["providerID"]
        zone, instance_id = match.groups()
        assert instance_id in by_id
        assert by_id[instance_id]["Placement"]["AvailabilityZone"] == zone
        assert TAINT_UNINITIALIZED not in {t["key"] for t in node["spec"].get("taints", [])}
    csrs = kubectl_json(aws_up, "get", "csr")["items"]
    client_csrs = [
        c for c in csrs if c["spec"]["signerName"] == "kubernetes.io/kube-apiserver-client-kubelet"
    ]
    joined = {
        c["spec"]["username"]
        for c in client_csrs
        if any(cond["type"] == "Approved" for cond in c.get("status", {}).get("conditions", []))
        and c.get("status", {}).get("certificate")
    }
    assert len(joined) >= 3
    assert all(user.startswith("system:bootstrap:") for user in joined)


def test_aws_load_balancer_service_gets_an_nlb(aws_up: UpProcess, moto: MotoServer) -> None:
    ingress = expose_web(aws_up, "web")
    assert [lb["DNSName"] for lb in load_balancers(moto) if lb["Type"] == "network"] == [ingress["hostname"]]
    # The Service stays for `pinnace down` to clean up; its pods would only slow the drains down.
    kubectl(aws_up, "delete", "deployment", "web", "--wait=true")


def test_aws_scale_nodepool_up_then_down(aws_up: UpProcess, moto: MotoServer) -> None:
    kubectl(aws_up, "scale", "nodepool", "default", "--replicas=5")
    eventually(lambda: len(ready_nodes(aws_up)) == 5 and len(cluster_instances(moto)) == 5, timeout=60)
    kubectl(aws_up, "scale", "nodepool", "default", "--replicas=2")
    eventually(lambda: len(cluster_instances(moto)) == 2 and len(ready_nodes(aws_up)) == 2, timeout=60)
    terminated = cluster_instances(moto, ("shutting-down", "terminated"))
    assert len(terminated) == 3
    remaining = {n["spec"]["providerID"].rsplit("/", 1)[1] for n in ready_nodes(aws_up)}
    assert remaining == {i["InstanceId"] for i in cluster_instances(moto)}


def test_aws_down_leaves_nothing_tagged(aws_up: UpProcess, moto: MotoServer, aws_dir: Path) -> None:
    down = run_down(aws_dir, env=dict(AWS_ENV))
    assert down.returncode == 0, down.stdout + down.stderr + aws_up.diagnostics()
    assert "nothing tagged kubernetes.io/cluster/up-moto=owned is left" in down.stdout
    assert cluster_instances(moto) == []
    assert load_balancers(moto) == []
    elbv2 = session().client("elbv2", endpoint_url=moto.url, region_name=REGION)
    vpc = default_vpc(moto)
    assert [g for g in elbv2.describe_target_groups()["TargetGroups"] if g.get("VpcId") == vpc] == []
    # (moto keeps the tags of deleted resources, so ask for the resources themselves.)
    owned = [{"Name": "tag:kubernetes.io/cluster/up-moto", "Values": ["owned"]}]
    assert ec2(moto).describe_security_groups(Filters=owned)["SecurityGroups"] == []
    live = cluster_instances(moto, ("pending", "running", "stopping", "stopped"))
    assert live == []
    tables = ec2(moto).describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["RouteTables"]
    assert [r for t in tables for r in t["Routes"] if r.get("InstanceId")] == []
    assert aws_up.stop(signal.SIGINT) == 0, aws_up.diagnostics()


def test_wait_timeout_lists_the_stuck_machines_and_exits_1(tmp_path: Path) -> None:
    up = start_up(tmp_path / "slow", "--nodes", "2", "--wait-timeout", "0.2s", port=free_port())
    code = up.process.wait(timeout=60)
    out = up.output()
    assert code == 1, up.diagnostics()
    assert "error: the nodes were not all Ready after 0.2s (--wait-timeout):" in out
    assert "nodes ready: 0/2 (default 0/2)" in out
    assert re.search(r"default: \d machine\(s\) not created yet|  default-\S+: \w+, node ", out), out
    assert "Traceback" not in up.err_path.read_text()
