"""Issue 3's "done when", end to end: one `pinnace server` (every controller and the scheduler
in process, as shipped) and simulated nodes in separate `pinnace node-agent` processes, driven
with real kubectl. Nothing here binds pods or writes pod status itself: the scheduler binds, the
node agents run the pods, the controllers react.

The tests share one cluster and run in file order: later ones add a node and kill one.
Timings are shortened through the same flags an operator would use.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509

from tests.integration.conftest import REPO, ServerProcess, start_server
from tests.integration.kubectl_helpers import Kubectl, eventually

GRACE = 4  # --node-monitor-grace-period: a node is Unknown this long after its last heartbeat
TOLERATION = 3  # default not-ready/unreachable tolerationSeconds added to every pod


@dataclass
class Cluster:
    server: ServerProcess
    kubectl: Kubectl
    workdir: Path
    agents: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def node_kubeconfig(self, name: str) -> Path:
        """The node's own credential (CN system:node:<name>, O system:nodes), issued by the
        cluster CA as `pinnace kubeconfig user` does; the agent never sees the admin's."""
        path = self.workdir / f"{name}.kubeconfig"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "controlplane",
                "kubeconfig",
                "user",
                "--data-dir",
                str(self.server.data_dir),
                "--client-name",
                f"system:node:{name}",
                "--org",
                "system:nodes",
                "--out",
                str(path),
            ],
            cwd=REPO,
            check=True,
        )
        return path

    def start_node(self, name: str, *extra: str) -> None:
        log = (self.workdir / f"agent-{name}.log").open("wb")
        self.agents[name] = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "controlplane",
                "--log-format",
                "text",
                "node-agent",
                "--kubeconfig",
                str(self.node_kubeconfig(name)),
                "--node-name",
                name,
                "--port",
                "0",
                "--node-status-update-frequency",
                "1s",
                "--node-lease-duration-seconds",
                "4",
                *extra,
            ],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        eventually(lambda: self.node_ready(name), timeout=60, what=f"node {name} Ready")

    def kill_node(self, name: str) -> None:
        proc = self.agents.pop(name)
        proc.kill()
        proc.wait(10)

    def node_ready(self, name: str) -> bool:
        result = self.kubectl.run("get", "node", name, "-o", "json", check=False)
        if result.returncode != 0:
            return False
        conditions = json.loads(result.stdout).get("status", {}).get("conditions") or []
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def json(self, *args: str) -> Any:
        return self.kubectl.json(*args)

    def pods(self, ns: str, selector: str = "") -> list[dict[str, Any]]:
        args = ["get", "pods", "-n", ns, "-o", "json"]
        if selector:
            args += ["-l", selector]
        items: list[dict[str, Any]] = self.json(*args)["items"]
        return items


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if not shutil.which("kubectl"):
        pytest.skip("kubectl is not installed")
    root = tmp_path_factory.mktemp("e2e")
    server = start_server(
        root / "data",
        f"--node-monitor-grace-period={GRACE}",
        f"--default-not-ready-toleration-seconds={TOLERATION}",
        f"--default-unreachable-toleration-seconds={TOLERATION}",
    )
    env = dict(os.environ)
    env["KUBECONFIG"] = str(server.kubeconfig)
    env["KUBECACHEDIR"] = str(root / "kube-cache")
    env["HOME"] = str(root)
    c = Cluster(server, Kubectl(shutil.which("kubectl") or "kubectl", env), root)
    try:
        for i in range(3):
            c.start_node(f"node-{i}")
        yield c
    finally:
        for proc in c.agents.values():
            proc.terminate()
        for proc in c.agents.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        code = server.stop()
        assert code == 0, f"server did not shut down cleanly ({code}):\n{server.log()[-4000:]}"


def namespace(c: Cluster) -> str:
    name = f"e2e-{uuid.uuid4().hex[:6]}"
    c.kubectl.run("create", "namespace", name)
    return name


def test_nodes_join_with_pod_cidrs(cluster: Cluster) -> None:
    credential = yaml.safe_load((cluster.workdir / "node-0.kubeconfig").read_text())
    pem = base64.b64decode(credential["users"][0]["user"]["client-certificate-data"])
    subject = x509.load_pem_x509_certificate(pem).subject.rfc4514_string()
    assert subject == "CN=system:node:node-0,O=system:nodes"
    nodes = cluster.json("get", "nodes", "-o", "json")["items"]
    assert len(nodes) == 3
    cidrs = {n["spec"].get("podCIDR") for n in nodes}
    assert None not in cidrs and len(cidrs) == 3


def test_deployment_rolls_out_updates_and_undoes(cluster: Cluster) -> None:
    k, ns = cluster.kubectl, namespace(cluster)
    k.run("create", "deployment", "web", "-n", ns, "--image=nginx:1.25", "--replicas=10")
    k.run("rollout", "status", "deployment/web", "-n", ns, "--timeout=90s", timeout=100)
    pods = cluster.pods(ns, "app=web")
    assert len(pods) == 10
    assert {p["spec"]["nodeName"] for p in pods} == {"node-0", "node-1", "node-2"}, "spread by the scheduler"
    assert all(p["status"]["phase"] == "Running" and p["status"].get("podIP") for p in pods)

    # An image change rolls over within maxSurge (25% of 10 -> 3) and maxUnavailable (-> 2).
    k.run("set", "image", "deployment/web", "-n", ns, "nginx=nginx:1.26")
    worst_total, worst_ready = 0, 10
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        pods = [p for p in cluster.pods(ns, "app=web") if not p["metadata"].get("deletionTimestamp")]
        ready = sum(
            1
            for p in pods
            if any(
                c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or []
            )
        )
        worst_total, worst_ready = max(worst_total, len(pods)), min(worst_ready, ready)
        dep = cluster.json("get", "deployment", "web", "-n", ns, "-o", "json")
        status = dep["status"]
        if (
            status.get("observedGeneration") == dep["metadata"]["generation"]
            and status.get("updatedReplicas") == 10
            and status.get("availableReplicas") == 10
            and status.get("replicas") == 10
        ):
            break
        time.sleep(0.2)
    k.run("rollout", "status", "deployment/web", "-n", ns, "--timeout=60s", timeout=70)
    assert worst_total <= 13, f"surge limit broken: {worst_total} pods at once"
    assert worst_ready >= 8, f"unavailability limit broken: only {worst_ready} ready"
    assert {c["image"] for p in cluster.pods(ns, "app=web") for c in p["spec"]["containers"]} == {
        "nginx:1.26"
    }

    k.run("rollout", "undo", "deployment/web", "-n", ns)
    k.run("rollout", "status", "deployment/web", "-n", ns, "--timeout=60s", timeout=70)
    dep = cluster.json("get", "deployment", "web", "-n", ns, "-o", "json")
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.25"
    assert dep["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"

    for replicas in (4, 12):
        k.run("scale", "deployment/web", "-n", ns, f"--replicas={replicas}")
        k.run("rollout", "status", "deployment/web", "-n", ns, "--timeout=60s", timeout=70)
        eventually(
            lambda n=replicas: (
                len(  # type: ignore[misc]
                    [p for p in cluster.pods(ns, "app=web") if not p["metadata"].get("deletionTimestamp")]
                )
                == n
            ),
            timeout=60,
            what=f"{replicas} pods",
        )


def test_service_endpoints_follow_pod_readiness(cluster: Cluster) -> None:
    k, ns = cluster.kubectl, namespace(cluster)
    k.run("create", "deployment", "api", "-n", ns, "--image=nginx", "--replicas=3", "--port=80")
    k.run("rollout", "status", "deployment/api", "-n", ns, "--timeout=60s", timeout=70)
    k.run("expose", "deployment", "api", "-n", ns, "--port=8080", "--target-port=80")
    pods = cluster.pods(ns, "app=api")
    ips = {p["status"]["podIP"] for p in pods}

    def ready_ips() -> set[str]:
        ep = cluster.json("get", "endpoints", "api", "-n", ns, "-o", "json")
        return {a["ip"] for s in ep.get("subsets") or [] for a in s.get("addresses") or []}

    eventually(lambda: ready_ips() == ips, timeout=30, what="endpoints of the ready pods")
    slices = cluster.json(
        "get", "endpointslices", "-n", ns, "-l", "kubernetes.io/service-name=api", "-o", "json"
    )
    slice_ips = {a for s in slices["items"] for e in s["endpoints"] for a in e["addresses"]}
    assert slice_ips == ips

    victim = pods[0]
    k.run("annotate", "pod", victim["metadata"]["name"], "-n", ns, "sim.pinnace.dev/ready=false")
    eventually(
        lambda: ready_ips() == ips - {victim["status"]["podIP"]}, timeout=30, what="unready pod leaves"
    )

    def slice_ready() -> bool:
        found = cluster.json(
            "get", "endpointslices", "-n", ns, "-l", "kubernetes.io/service-name=api", "-o", "json"
        )
        for s in found["items"]:
            for e in s["endpoints"]:
                if victim["status"]["podIP"] in e["addresses"]:
                    return e["conditions"]["ready"] is False
        return False

    eventually(slice_ready, timeout=30, what="slice marks it not ready")

    logs = k.run("logs", victim["metadata"]["name"], "-n", ns)
    assert logs.stdout.strip(), "kubectl logs reaches the node agent through the API server"


def test_daemonset_statefulset_and_job(cluster: Cluster) -> None:
    k, ns = cluster.kubectl, namespace(cluster)
    manifests = f"""
apiVersion: apps/v1
kind: DaemonSet
metadata: {{name: agent, namespace: {ns}}}
spec:
  selector: {{matchLabels: {{app: agent}}}}
  template:
    metadata: {{labels: {{app: agent}}}}
    spec: {{containers: [{{name: a, image: busybox}}]}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: db, namespace: {ns}}}
spec:
  serviceName: db
  replicas: 3
  selector: {{matchLabels: {{app: db}}}}
  template:
    metadata: {{labels: {{app: db}}}}
    spec: {{containers: [{{name: db, image: postgres}}]}}
---
apiVersion: batch/v1
kind: Job
metadata: {{name: batch, namespace: {ns}}}
spec:
  completions: 3
  parallelism: 2
  template:
    metadata: {{annotations: {{sim.pinnace.dev/run-seconds: "1"}}}}
    spec:
      restartPolicy: Never
      containers: [{{name: work, image: busybox}}]
"""
    k.run("apply", "-f", "-", stdin=manifests)
    k.run("rollout", "status", "daemonset/agent", "-n", ns, "--timeout=60s", timeout=70)
    assert sorted(p["spec"]["nodeName"] for p in cluster.pods(ns, "app=agent")) == [
        "node-0",
        "node-1",
        "node-2",
    ]

    k.run("rollout", "status", "statefulset/db", "-n", ns, "--timeout=90s", timeout=100)
    db = sorted(cluster.pods(ns, "app=db"), key=lambda p: p["metadata"]["name"])
    assert [p["metadata"]["name"] for p in db] == ["db-0", "db-1", "db-2"]
    started = [p["status"]["startTime"] for p in db]
    assert started == sorted(started), "OrderedReady starts db-0, then db-1, then db-2"

    k.run("wait", "--for=condition=Complete", "job/batch", "-n", ns, "--timeout=60s", timeout=70)
    job = cluster.json("get", "job", "batch", "-n", ns, "-o", "json")
    assert job["status"]["succeeded"] == 3

    # A node added later gets its daemon pod.
    cluster.start_node("node-3")
    eventually(
        lambda: "node-3" in {p["spec"].get("nodeName") for p in cluster.pods(ns, "app=agent")},
        timeout=30,
        what="daemon pod on the new node",
    )
    k.run("rollout", "status", "daemonset/agent", "-n", ns, "--timeout=60s", timeout=70)


def test_unschedulable_pod_waits_for_a_node_that_fits(cluster: Cluster) -> None:
    k, ns = cluster.kubectl, namespace(cluster)
    pod = f"""
apiVersion: v1
kind: Pod
metadata: {{name: big, namespace: {ns}}}
spec:
  containers:
  - name: c
    image: busybox
    resources: {{requests: {{cpu: "16"}}}}
"""
    k.run("apply", "-f", "-", stdin=pod)

    def failed_scheduling() -> str:
        events = cluster.json(
            "get", "events", "-n", ns, "--field-selector", "reason=FailedScheduling", "-o", "json"
        )
        return " ".join(e["message"] for e in events["items"])

    eventually(lambda: "Insufficient cpu" in failed_scheduling(), timeout=30, what="FailedScheduling")
    message = failed_scheduling()
    assert message.startswith("0/4 nodes are available: 4 Insufficient cpu."), message
    got = cluster.json("get", "pod", "big", "-n", ns, "-o", "json")
    scheduled = [c for c in got["status"]["conditions"] if c["type"] == "PodScheduled"]
    assert scheduled and scheduled[0]["status"] == "False" and scheduled[0]["reason"] == "Unschedulable"

    cluster.start_node("node-big", "--cpu", "32")
    k.run("wait", "--for=condition=Ready", "pod/big", "-n", ns, "--timeout=60s", timeout=70)
    assert cluster.json("get", "pod", "big", "-n", ns, "-o", "json")["spec"]["nodeName"] == "node-big"


def test_dead_node_is_tainted_and_its_pods_move(cluster: Cluster) -> None:
    k, ns = cluster.kubectl, namespace(cluster)
    k.run("create", "deployment", "mover", "-n", ns, "--image=nginx", "--replicas=6")
    k.run("rollout", "status", "deployment/mover", "-n", ns, "--timeout=60s", timeout=70)
    victim = "node-big"
    before = [p for p in cluster.pods(ns, "app=mover") if p["spec"]["nodeName"] == victim]
    if not before:  # make sure the dead node holds something that must move
        k.run("scale", "deployment/mover", "-n", ns, "--replicas=12")
        k.run("rollout", "status", "deployment/mover", "-n", ns, "--timeout=60s", timeout=70)
        before = [p for p in cluster.pods(ns, "app=mover") if p["spec"]["nodeName"] == victim]
    assert before, "the scheduler put some pods on the largest node"
    cluster.kill_node(victim)

    def unreachable() -> bool:
        node = cluster.json("get", "node", victim, "-o", "json")
        ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
        taints = {(t["key"], t["effect"]) for t in node["spec"].get("taints") or []}
        return ready["status"] == "Unknown" and ("node.kubernetes.io/unreachable", "NoExecute") in taints

    eventually(unreachable, timeout=GRACE + 20, what="node Unknown and tainted")

    def moved() -> bool:
        pods = [p for p in cluster.pods(ns, "app=mover") if not p["metadata"].get("deletionTimestamp")]
        running = [p for p in pods if p["status"].get("phase") == "Running"]
        return len(running) == len(pods) and all(p["spec"].get("nodeName") != victim for p in pods)

    eventually(moved, timeout=TOLERATION + 60, what="pods recreated on live nodes")
    # The Deployment's status catches up with the replacement pods (a status write later).
    k.run("rollout", "status", "deployment/mover", "-n", ns, "--timeout=60s", timeout=70)


def test_drain_honours_a_pod_disruption_budget(cluster: Cluster) -> None:
    k, ns = cluster.kubectl, namespace(cluster)
    k.run("create", "deployment", "guarded", "-n", ns, "--image=nginx", "--replicas=2")
    k.run("rollout", "status", "deployment/guarded", "-n", ns, "--timeout=60s", timeout=70)
    k.run("create", "poddisruptionbudget", "guard", "-n", ns, "--selector=app=guarded", "--min-available=2")
    eventually(
        lambda: (
            cluster.json("get", "pdb", "guard", "-n", ns, "-o", "json")
            .get("status", {})
            .get("currentHealthy")
            == 2
        ),
        timeout=30,
        what="PDB status",
    )
    node = cluster.pods(ns, "app=guarded")[0]["spec"]["nodeName"]
    result = k.run(
        "drain",
        node,
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--timeout=5s",
        check=False,
        timeout=60,
    )
    assert result.returncode != 0
    assert "Cannot evict pod as it would violate the pod's disruption budget." in result.stderr
    assert len(cluster.pods(ns, "app=guarded")) == 2
    k.run("uncordon", node)


def test_deleting_a_namespace_removes_everything_in_it(cluster: Cluster) -> None:
    k, ns = cluster.kubectl, namespace(cluster)
    k.run("create", "deployment", "doomed", "-n", ns, "--image=nginx", "--replicas=3")
    k.run("create", "configmap", "settings", "-n", ns, "--from-literal=a=b")
    k.run("expose", "deployment", "doomed", "-n", ns, "--port=80")
    k.run("rollout", "status", "deployment/doomed", "-n", ns, "--timeout=60s", timeout=70)
    k.run("delete", "namespace", ns, "--timeout=90s", timeout=100)  # returns only once it is gone
    assert k.run("get", "namespace", ns, check=False).returncode != 0
    assert not cluster.json(
        "get", "pods", "-A", "--field-selector", f"metadata.namespace={ns}", "-o", "json"
    )["items"]
