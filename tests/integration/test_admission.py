"""Admission plugins against a real `pinnace server`, through kubectl and the Python client."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml
from kubernetes.client import ApiClient, CoreV1Api, SchedulingV1Api
from kubernetes.client.rest import ApiException

from tests.integration.conftest import ServerProcess, kubectl_binaries, wait_for_root_ca
from tests.integration.kubectl_helpers import Kubectl, parse_table, row_named

NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"


@pytest.fixture(scope="module")
def api(server: ServerProcess) -> Iterator[ApiClient]:
    client: ApiClient = kubernetes.config.new_client_from_config(config_file=str(server.kubeconfig))
    yield client
    client.close()


@pytest.fixture
def core(api: ApiClient) -> CoreV1Api:
    return CoreV1Api(api)


@pytest.fixture
def namespace(core: CoreV1Api) -> Iterator[str]:
    name = f"adm-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


@pytest.fixture
def kubectl(kube_env: dict[str, str]) -> Kubectl:
    binaries = kubectl_binaries()
    if not binaries:
        pytest.skip("no kubectl binary installed")
    newest = sorted(binaries, key=lambda b: Path(b).name)[-1]
    return Kubectl(newest, kube_env)


def pod_manifest(name: str, *, resources: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "c", "image": "nginx:1.27"}
    if resources is not None:
        container["resources"] = resources
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [container], **spec},
    }


def kubectl_create(kubectl: Kubectl, namespace: str, manifest: dict[str, Any], *extra: str) -> Any:
    return kubectl.run(
        "create", "-n", namespace, "-f", "-", *extra, stdin=yaml.safe_dump(manifest), check=False
    )


def test_every_pod_gets_service_account_priority_and_default_tolerations(
    kubectl: Kubectl, namespace: str
) -> None:
    created = kubectl_create(kubectl, namespace, pod_manifest("plain"), "-o", "json")
    assert created.returncode == 0, created.stderr
    spec = json.loads(created.stdout)["spec"]
    assert spec["serviceAccountName"] == spec["serviceAccount"] == "default"
    assert spec["priority"] == 0 and spec["preemptionPolicy"] == "PreemptLowerPriority"
    assert spec["tolerations"] == [
        {"key": NOT_READY, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
        {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
    ]
    tolerant = pod_manifest("tolerant", tolerations=[{"operator": "Exists"}])
    spec = json.loads(kubectl_create(kubectl, namespace, tolerant, "-o", "json").stdout)["spec"]
    assert spec["tolerations"] == [{"operator": "Exists"}]
    # A label change (an update) keeps what admission set.
    kubectl.run("label", "-n", namespace, "pod", "plain", "tier=web")
    again = kubectl.json("get", "-n", namespace, "pod", "plain")["spec"]
    assert again["priority"] == 0 and len(again["tolerations"]) == 2


def test_service_accounts_must_exist_and_their_credentials_are_mounted(
    kubectl: Kubectl, core: CoreV1Api, namespace: str
) -> None:
    # A fresh namespace: `default` appears moments after it, and the pod waits for it.
    created = json.loads(kubectl_create(kubectl, namespace, pod_manifest("plain"), "-o", "json").stdout)
    spec = created["spec"]
    [volume] = spec["volumes"]
    assert volume["name"].startswith("kube-api-access-")
    sources = volume["projected"]["sources"]
    assert sources[0] == {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}
    assert sources[1]["configMap"]["name"] == "kube-root-ca.crt"
    assert spec["containers"][0]["volumeMounts"] == [
        {
            "name": volume["name"],
            "readOnly": True,
            "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
        }
    ]
    # What the volume projects exists: the root CA's ConfigMap.
    wait_for_root_ca(core, namespace)

    # An account that opts out, with pull secrets: no volume, its secrets.
    core.create_namespaced_service_account(
        namespace,
        {
            "metadata": {"name": "builder"},
            "automountServiceAccountToken": False,
            "imagePullSecrets": [{"name": "registry"}],
        },
    )
    built = pod_manifest("built", serviceAccountName="builder")
    spec = json.loads(kubectl_create(kubectl, namespace, built, "-o", "json").stdout)["spec"]
    assert "volumes" not in spec and "volumeMounts" not in spec["containers"][0]
    assert spec["imagePullSecrets"] == [{"name": "registry"}]

    # An account that does not exist refuses the pod, with upstream's words.
    refused = kubectl_create(kubectl, namespace, pod_manifest("ghostly", serviceAccountName="ghost"))
    assert refused.returncode != 0
    assert (
        f'pods "ghostly" is forbidden: error looking up service account {namespace}/ghost: '
        'serviceaccount "ghost" not found'
    ) in refused.stderr


def test_priority_classes(kubectl: Kubectl, api: ApiClient, namespace: str) -> None:
    rows = parse_table(kubectl.run("get", "priorityclasses").stdout)
    assert row_named(rows, "system-node-critical")["VALUE"] == "2000001000"
    assert row_named(rows, "system-cluster-critical")["VALUE"] == "2000000000"

    critical = kubectl_create(
        kubectl,
        namespace,
        pod_manifest("critical", priorityClassName="system-cluster-critical"),
        "-o",
        "json",
    )
    assert json.loads(critical.stdout)["spec"]["priority"] == 2000000000

    refused = kubectl_create(kubectl, namespace, pod_manifest("x", priorityClassName="foo"))
    assert refused.returncode != 0
    assert (
        'Error from server (Forbidden): error when creating "STDIN": pods "x" is forbidden: '
        in refused.stderr
    )
    assert "no PriorityClass with name foo was found" in refused.stderr

    scheduling = SchedulingV1Api(api)
    first, second = f"default-{uuid.uuid4().hex[:6]}", f"other-{uuid.uuid4().hex[:6]}"
    scheduling.create_priority_class({"metadata": {"name": first}, "value": 1000, "globalDefault": True})
    try:
        with pytest.raises(ApiException) as info:
            scheduling.create_priority_class(
                {"metadata": {"name": second}, "value": 5, "globalDefault": True}
            )
        assert info.value.status == 403
        assert json.loads(info.value.body)["message"] == (
            f'priorityclasses.scheduling.k8s.io "{second}" is forbidden: PriorityClass {first} is already '
            "marked as default. Only one default can exist"
        )
        defaulted = json.loads(kubectl_create(kubectl, namespace, pod_manifest("d"), "-o", "json").stdout)
        assert defaulted["spec"]["priorityClassName"] == first and defaulted["spec"]["priority"] == 1000
    finally:
        scheduling.delete_priority_class(first)


def test_limit_ranges(kubectl: Kubectl, core: CoreV1Api, namespace: str) -> None:
    core.create_namespaced_limit_range(
        namespace,
        {
            "metadata": {"name": "limits"},
            "spec": {
                "limits": [
                    {
                        "type": "Container",
                        "max": {"cpu": "1", "memory": "1Gi"},
                        "defaultRequest": {"cpu": "100m"},
                    },
                    {"type": "Pod", "max": {"memory": "1536Mi"}},
                ]
            },
        },
    )
    created = json.loads(kubectl_create(kubectl, namespace, pod_manifest("small"), "-o", "json").stdout)
    # `max` alone makes the default limit; the default request is the explicit one.
    assert created["spec"]["containers"][0]["resources"] == {
        "limits": {"cpu": "1", "memory": "1Gi"},
        "requests": {"cpu": "100m", "memory": "1Gi"},
    }
    assert created["metadata"]["annotations"]["kubernetes.io/limit-ranger"].startswith(
        "LimitRanger plugin set: "
    )

    big = pod_manifest("big", resources={"limits": {"cpu": "2"}})
    refused = kubectl_create(kubectl, namespace, big)
    assert refused.returncode != 0
    assert (
        'Error from server (Forbidden): error when creating "STDIN": pods "big" is forbidden: '
        "maximum cpu usage per Container is 1, but limit is 2"
    ) in refused.stderr

    two = pod_manifest("two")
    two["spec"]["containers"].append({"name": "d", "image": "nginx:1.27"})
    refused = kubectl_create(kubectl, namespace, two)
    assert "maximum memory usage per Pod is 1536Mi, but limit is 2Gi" in refused.stderr


def test_resource_quota(kubectl: Kubectl, core: CoreV1Api, namespace: str) -> None:
    # Every namespace holds the root CA's ConfigMap (root-ca-cert-publisher): room for it and one
    # more, as upstream's e2e counts the ConfigMaps already there.
    wait_for_root_ca(core, namespace)
    core.create_namespaced_resource_quota(
        namespace, {"metadata": {"name": "q"}, "spec": {"hard": {"pods": "2", "count/configmaps": "2"}}}
    )
    # A server-side dry run is checked but charges nothing.
    assert kubectl_create(kubectl, namespace, pod_manifest("a"), "--dry-run=server").returncode == 0
    for name in ("a", "b"):
        result = kubectl_create(kubectl, namespace, pod_manifest(name))
        assert result.returncode == 0, result.stderr
    refused = kubectl_create(kubectl, namespace, pod_manifest("c"))
    assert refused.returncode != 0
    assert (
        'pods "c" is forbidden: exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2'
    ) in refused.stderr
    quota = core.read_namespaced_resource_quota("q", namespace)
    assert quota.status.used["pods"] == "2"

    kubectl.run("create", "configmap", "one", "-n", namespace)
    refused = kubectl.run("create", "configmap", "two", "-n", namespace, check=False)
    assert "exceeded quota: q, requested: count/configmaps=1, used: count/configmaps=2" in refused.stderr

    # Deleting frees the slot at once: usage is counted from what is stored.
    kubectl.run("delete", "pod", "a", "-n", namespace, "--wait=false")
    assert kubectl_create(kubectl, namespace, pod_manifest("c")).returncode == 0


def test_compute_quota_needs_container_resources(kubectl: Kubectl, core: CoreV1Api, namespace: str) -> None:
    core.create_namespaced_resource_quota(
        namespace,
        {"metadata": {"name": "compute"}, "spec": {"hard": {"requests.cpu": "1", "limits.memory": "1Gi"}}},
    )
    refused = kubectl_create(kubectl, namespace, pod_manifest("bare"))
    assert (
        'pods "bare" is forbidden: failed quota: compute: must specify limits.memory for: c; requests.cpu for: c'
    ) in refused.stderr
    sized = pod_manifest("sized", resources={"requests": {"cpu": "600m"}, "limits": {"memory": "512Mi"}})
    assert kubectl_create(kubectl, namespace, sized).returncode == 0
    sized["metadata"]["name"] = "sized2"
    refused = kubectl_create(kubectl, namespace, sized)
    assert (
        "exceeded quota: compute, requested: requests.cpu=600m, used: requests.cpu=600m, limited: requests.cpu=1"
        in (refused.stderr)
    )


def test_concurrent_creates_never_overrun_a_quota(core: CoreV1Api, namespace: str) -> None:
    core.create_namespaced_resource_quota(
        namespace, {"metadata": {"name": "q"}, "spec": {"hard": {"pods": "3"}}}
    )

    def attempt(i: int) -> int:
        try:
            core.create_namespaced_pod(namespace, pod_manifest(f"racer-{i}"))
            return 201
        except ApiException as exc:
            return int(exc.status)

    with ThreadPoolExecutor(max_workers=10) as pool:
        statuses = list(pool.map(attempt, range(10)))
    assert sorted(statuses) == [201] * 3 + [403] * 7
    assert len(core.list_namespaced_pod(namespace).items) == 3
