"""examples/operators/website: a real kopf operator against a real `pinnace server`.

kubectl installs the Website CRD, `kopf run --standalone` runs the operator as a user would, and
kubectl creates, updates and deletes a Website; the test then checks the children (owned through
ownerReferences), the status kopf writes through the status subresource, kopf's finalizer, the
delete handler's archive and the garbage collection of the children.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import REPO, ServerProcess
from tests.integration.kubectl_helpers import Kubectl, eventually, parse_table, row_named

EXAMPLE = REPO / "examples" / "operators" / "website"
FINALIZER = "kopf.zalando.org/KopfFinalizerMarker"


@pytest.fixture
def kubectl(kube_env: dict[str, str]) -> Kubectl:
    binary = shutil.which("kubectl")
    if binary is None:
        pytest.skip("kubectl is not installed")
    return Kubectl(binary, kube_env)


@pytest.fixture
def crd(kubectl: Kubectl) -> str:
    kubectl.run("apply", "-f", str(EXAMPLE / "crd.yaml"))
    kubectl.run("wait", "--for=condition=Established", "--timeout=20s", "crd/websites.examples.pinnace.dev")
    return "websites.examples.pinnace.dev"


@pytest.fixture
def ns(kubectl: Kubectl) -> Iterator[str]:
    name = f"website-{uuid.uuid4().hex[:8]}"
    kubectl.run("create", "namespace", name)
    yield name
    kubectl.run("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def operator(server: ServerProcess, crd: str, ns: str, tmp_path: Path) -> Iterator[Path]:
    log_path = tmp_path / "operator.log"
    env = {**os.environ, "KUBECONFIG": str(server.kubeconfig)}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "kopf", "run", "--standalone", "--verbose",
                "--namespace", ns, str(EXAMPLE / "operator.py"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tmp_path,
        )  # fmt: skip
        try:
            eventually(
                lambda: process.poll() is not None or b"Client is configured" in log_path.read_bytes(), 30
            )
            assert process.poll() is None, log_path.read_text()
            yield log_path
        finally:
            process.send_signal(signal.SIGINT)
            try:
                code = process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                raise AssertionError(
                    f"operator did not stop on SIGINT:\n{log_path.read_text()[-4000:]}"
                ) from None
    assert code == 0, log_path.read_text()[-4000:]
    text = log_path.read_text()
    assert "Traceback (most recent call last)" not in text, text[-4000:]


def get(kubectl: Kubectl, ns: str, *what: str) -> Any:
    result = kubectl.run("get", "-n", ns, *what, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def test_website_lifecycle(kubectl: Kubectl, ns: str, operator: Path) -> None:
    manifest = (EXAMPLE / "website.yaml").read_text()
    kubectl.run("apply", "-n", ns, "-f", "-", stdin=manifest)

    def ready() -> bool:
        site = get(kubectl, ns, "website", "hello")
        return bool(site and site.get("status", {}).get("phase") == "Ready")

    eventually(ready, 30, "Website hello Ready")
    site = get(kubectl, ns, "website", "hello")
    uid = site["metadata"]["uid"]
    assert FINALIZER in site["metadata"]["finalizers"]
    assert site["spec"]["image"] == "nginx:1.27-alpine"  # the CRD's schema default
    assert site["status"]["contentBytes"] == len("<h1>Hello from Pinnace</h1>")
    assert site["status"]["create_fn"] == {"children": ["hello-content", "hello"]}

    configmap = get(kubectl, ns, "configmap", "hello-content")
    deployment = get(kubectl, ns, "deployment", "hello")
    for child in (configmap, deployment):
        (owner,) = child["metadata"]["ownerReferences"]
        assert owner == {
            "apiVersion": "examples.pinnace.dev/v1",
            "kind": "Website",
            "name": "hello",
            "uid": uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    assert configmap["data"] == {"index.html": "<h1>Hello from Pinnace</h1>"}
    assert deployment["spec"]["replicas"] == 2

    rows = parse_table(kubectl.run("get", "-n", ns, "websites", "-o", "wide").stdout)
    row = row_named(rows, "hello")
    assert (row["REPLICAS"], row["PHASE"], row["BYTES"]) == ("2", "Ready", "27")

    patch = {"spec": {"content": "<h1>Updated</h1>", "replicas": 3}}
    kubectl.run("patch", "-n", ns, "website", "hello", "--type=merge", "-p", json.dumps(patch))

    def updated() -> bool:
        cm = get(kubectl, ns, "configmap", "hello-content")
        dep = get(kubectl, ns, "deployment", "hello")
        site = get(kubectl, ns, "website", "hello")
        return bool(
            cm["data"]["index.html"] == "<h1>Updated</h1>"
            and dep["spec"]["replicas"] == 3
            and site["status"].get("contentBytes") == len("<h1>Updated</h1>")
            and "update_fn/spec" in site["status"]  # kopf appends the field to the handler id
        )

    eventually(updated, 30, "children and status follow the new spec")
    events = get(kubectl, ns, "events", "--field-selector", "involvedObject.name=hello")
    reasons = {e["reason"] for e in events["items"] if e["source"].get("component") == "kopf"}
    assert {"Created", "Updated"} <= reasons

    kubectl.run("delete", "-n", ns, "website", "hello", "--timeout=30s")
    assert get(kubectl, ns, "website", "hello") is None
    archive = get(kubectl, ns, "configmap", "hello-archive")
    assert archive["data"] == {"index.html": "<h1>Updated</h1>"}
    assert "ownerReferences" not in archive["metadata"]
    # Upstream's collector may need one discovery resync (30 s) to learn a kind created moments ago.
    eventually(
        lambda: (
            get(kubectl, ns, "configmap", "hello-content") is None
            and get(kubectl, ns, "deployment", "hello") is None
        ),
        75,
        "garbage collection of the owned children",
    )
    assert "Website hello archived into ConfigMap hello-archive" in operator.read_text()
